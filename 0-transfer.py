#!/usr/bin/env python3
"""Train a CIFAR-10 classifier by transfer learning from a Keras backbone.

Run as a script, it loads CIFAR-10, upsizes the 32x32 images inside the
model (the first layer is a Lambda), runs the frozen prefix of an ImageNet
backbone once over the data and caches its activations on disk, trains the
backbone's last blocks plus a new head on that cache, stitches
Lambda + prefix + suffix + head into one flat image-to-label model and
saves it, compiled, as cifar10.h5.

Importing it trains nothing and writes nothing.  It registers the Lambda
layers' functions, so that saved models load, and gives Keras 3 the
K.backend.learning_phase that the task's grader calls.

The file reads in pipeline order: configuration, the stacks it runs on,
data, models, cache, training, saving and evaluation, the run's record,
the command line.
"""
import argparse
import collections
import concurrent.futures
import contextlib
import datetime
import errno
import fcntl
import functools
import glob
import hashlib
import importlib.util
import inspect
import json
from importlib import metadata
import os
import pickle
import platform
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import warnings


def cpuinfo(field):
    """Return the first value of field in /proc/cpuinfo ('' without one)."""
    with contextlib.suppress(OSError):
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith(field):
                    return line.split(':', 1)[1].strip()
    return ''


def onednn_crashes():
    """Whether this is TensorFlow 2.6 on an AMD CPU, where its oneDNN dies
    of SIGFPE (seen on Zen 4 in this project's VMs, even in a pooling layer,
    whatever DNNL_MAX_CPU_ISA says)."""
    try:
        version = metadata.version('tensorflow')
    except metadata.PackageNotFoundError:
        return False
    return version.startswith('2.6.') and cpuinfo('vendor_id') == \
        'AuthenticAMD'


# Read when TensorFlow is imported.  TensorFlow 2.6 leaves oneDNN off
# unless asked (it doubles the frozen pass there on Intel); later versions
# turn it on by default.
if not onednn_crashes():
    os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '1')

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow.keras as K  # noqa: E402

# ------------------------------------------------------ configuration

NUM_CLASSES = 10
IMAGE_SHAPE = (32, 32, 3)
CIFAR_TRAIN_FILES = ['data_batch_{}'.format(i) for i in range(1, 6)]
CIFAR_TEST_FILE = 'test_batch'
EXACT_TEST_IMAGES = 1000  # test images 0-999 of the shared copy are exact
TASK_ACCURACY = 0.87  # the task's bar for the saved model's test accuracy
SPLIT_SEED = 0  # draws the held-out split and crop moves, whatever --seed

# name: (its keras.applications module, default cut layer, minimum input)
# The cut is the last frozen layer: its output is the only tensor that
# crosses into the trainable rest of the network.
BACKBONES = {
    'MobileNetV2': ('mobilenet_v2', 'block_6_project_BN', 32),
    'ResNet50': ('resnet50', 'conv5_block2_out', 32),
    'EfficientNetB0': ('efficientnet', 'block6d_add', 32),
    'DenseNet121': ('densenet', 'pool4_pool', 32),
    'VGG16': ('vgg16', 'block4_pool', 32),
    'InceptionV3': ('inception_v3', 'mixed9', 75),
    'Xception': ('xception', 'block14_sepconv1_act', 71),
}

# Every option of the command line, name: (default, help).  The presets,
# the benchmark and the tests read their defaults from here.
OPTIONS = {
    'backbone': ('MobileNetV2', 'the keras.applications backbone'),
    'cut': (None, 'last frozen layer (default: the backbone\'s in '
            'BACKBONES, a block boundary)'),
    'image_size': (160, 'side, in pixels, the 32x32 images are upsized to'),
    'epochs': (3, 'passes over the cached training set'),
    'batch_size': (128, 'images per batch, for extraction and training'),
    'learning_rate': (3e-4, 'Adam\'s initial rate, decayed to 0 on a '
                      'cosine'),
    'weight_decay': (0.0, 'Adam\'s decoupled weight decay (AdamW), per '
                     'unit of learning rate, of every trained weight but '
                     'the biases (0: none; needs Keras 2.11 or later)'),
    'label_smoothing': (0.1, 'of the training loss'),
    'dropout': (0.2, 'before the new head'),
    'holdout': (5000, 'training images held out to choose on'),
    'train_images': (0, 'train on this many of the others (0: all)'),
    'test_images': (0, 'after saving, score the model on the first this '
                    'many test images (0: all)'),
    'seed': (0, 'the head\'s initial weights, batch order, shifts'),
    'shift': (1, 'random translation of the cached maps while training, '
              'in cells (0: none)'),
    'mixup': (0.0, 'mix each cached training map and its label with '
              'another of the batch, in proportions drawn from '
              'Beta(a, a) (0: none)'),
    'flips': (True, 'cache and train on mirrored copies too'),
    'crops': (0, 'cache this many pad-and-crop copies of the training '
              'images too (of their mirrors as well, with flips); each '
              'visit of an image reads one copy at random'),
    'mirror': (True, 'the saved model averages its predictions on each '
               'image and its mirror'),
    'data_dir': (None, 'folder in the official cifar-10-batches-py layout '
                 '(default: Keras\' download)'),
    'weights': ('imagenet', 'local Keras weight file (no top), imagenet '
                '(download) or none (random)'),
    'cache_dir': ('cache', 'where the frozen prefix\'s activations are '
                  'cached'),
    'output': ('cifar10.h5', 'the saved model'),
    'log': ('results/experiments.jsonl', 'experiment log, one JSON record '
            'appended per run'),
    'note': ('', 'why this run was made (kept in the log)'),
}
DEFAULTS = {name: default for name, (default, _) in OPTIONS.items()}

# --preset NAME: option values that replace DEFAULTS (explicit options win).
PRESETS = {
    'default': {},
    # The task's bar in about a minute (MobileNetV2): small input, a late
    # cut, 20,000 images seen once, in small batches at a higher rate;
    # after saving, scored on the exact test images only.
    'fast': {'backbone': 'MobileNetV2', 'cut': 'block_13_project_BN',
             'image_size': 128, 'epochs': 1, 'train_images': 20000,
             'holdout': 2000, 'flips': False, 'batch_size': 64,
             'learning_rate': 1e-3,
             'test_images': 1000},  # EXACT_TEST_IMAGES, for report.py's ast
    # The best held-out accuracy we measured (runs 45, 46 of the log), for
    # longer training: three more blocks train, for four epochs.
    'accurate': {'backbone': 'MobileNetV2', 'cut': 'block_3_project_BN',
                 'shift': 2, 'epochs': 4},
}

# A pad-and-crop copy moves an image by up to this many pixels each way
# (edges reflected), the usual CIFAR augmentation.
CROP_PIXELS = 4

# Extraction calls predict on this many batches at a time: enough to
# amortise predict's start-up, few enough to keep memory bounded.
CHUNK_BATCHES = 16

# The classifier predicts on cached activations this many at a time
# (Keras' 32 took 1.3 to 1.7 times as long in a probe).
PREDICT_BATCH = 256

# The saved model is checked against the cached path on this many images.
VERIFY_IMAGES = 64
VERIFY_TOLERANCE = 0.02  # largest probability difference (float16 cache)


class InputError(ValueError):
    """Bad input to this script: the message says what was wrong and what
    to do.  Only these become one-line errors; any other keeps its
    traceback."""


# ------------------------------------------------------------- stacks
# The script runs on the task's stack (Python 3.8, TensorFlow 2.6, Keras
# 2.6) and on TensorFlow 2.21 with Keras 3 or with tf_keras (Keras 2).
# What differs between them is handled here, by feature, not by version.

KERAS_3 = hasattr(K, 'ops')  # Keras 2 has no keras.ops

# Keras 2.11 gave every optimizer a decoupled weight_decay (AdamW's);
# Keras 2.6's Adam has none.
ADAM_DECAYS = 'weight_decay' in inspect.signature(K.optimizers.Adam).parameters


def learning_phase():
    """Return 0 (inference): Keras 2's learning phase, gone in Keras 3."""
    return 0


# The grader runs `K.learning_phase = K.backend.learning_phase` after
# importing this module (the import's one side effect besides registering
# the functions below); Keras 3 no longer has that function.
if not hasattr(K.backend, 'learning_phase'):
    K.backend.learning_phase = learning_phase


class DepthwiseConv2D(K.layers.DepthwiseConv2D):
    """Keras 3's DepthwiseConv2D, accepting the groups=1 that Keras 2
    writes into its config (Keras 3 refuses it when loading a Keras 2
    file)."""

    def __init__(self, *args, groups=1, **kwargs):
        """Drop groups (always 1 for a depthwise layer)."""
        super().__init__(*args, **kwargs)


if KERAS_3:
    K.utils.get_custom_objects()['DepthwiseConv2D'] = DepthwiseConv2D


class NamedFunction:
    """A function that a Lambda layer saves by name, not as bytecode.

    Keras 2 stores a plain Python function's bytecode in the model file,
    which neither Keras 3 (safe mode) nor another Python version can load;
    any other callable it stores by its __name__, and finds again among
    the custom objects.
    """

    def __init__(self, function):
        """Wrap function and register it under its own name."""
        functools.update_wrapper(self, function)
        K.utils.get_custom_objects()[self.__name__] = self

    def __call__(self, *args, **kwargs):
        """Call the wrapped function."""
        return self.__wrapped__(*args, **kwargs)


def saved_by_name(function):
    """Decorate a Lambda layer's function so that model files store it by
    name on every stack, and every stack finds it once this module is
    imported (Keras 3 by its registered name, Keras 2 by its own)."""
    named = NamedFunction(function)  # also what Keras 3 finds in Keras 2 files
    if KERAS_3:
        return K.utils.register_keras_serializable(
            package='cifar10_transfer')(function)
    return named


def set_random_seed(seed):
    """Seed Python, numpy and TensorFlow (Keras' helper needs TF 2.7+)."""
    if hasattr(K.utils, 'set_random_seed'):
        return K.utils.set_random_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    tf.random.set_seed(seed)


def backup_and_restore(directory):
    """Keras' BackupAndRestore callback, its checkpoint kept after fit (the
    model is saved after it: a run killed while saving need not train
    again)."""
    if hasattr(K.callbacks, 'BackupAndRestore'):
        return K.callbacks.BackupAndRestore(directory,
                                            delete_checkpoint=False)

    class KeptBackupAndRestore(K.callbacks.experimental.BackupAndRestore):
        """TensorFlow 2.6's experimental callback, which would delete its
        checkpoint when fit ends."""

        def on_train_end(self, logs=None):
            """Drop the training state as the parent does, keeping its
            files."""
            del self._training_state
            del self.model._training_state
    return KeptBackupAndRestore(directory)


def add_switch(parser, name, default, help):
    """Add --name and --no-name (argparse's BooleanOptionalAction needs
    Python 3.9)."""
    dest = name.replace('-', '_')
    group = parser.add_mutually_exclusive_group()
    group.add_argument('--' + name, dest=dest, action='store_true',
                       help=help)
    group.add_argument('--no-' + name, dest=dest, action='store_false')
    parser.set_defaults(**{dest: default})


# --------------------------------------------------------------- data

def preprocess_data(X, Y):
    """Prepare CIFAR-10 arrays for the saved model.

    X: numpy array (m, 32, 32, 3) of pixel values 0-255 (uint8 or float).
    Y: numpy array (m,) or (m, 1) of integer labels 0-9.
    Returns X_p, float32 pixels (the model upsizes and scales them itself),
    and Y_p, float32 one-hot labels (m, 10).
    """
    X, Y = np.asarray(X), np.asarray(Y)
    if X.ndim != 4 or X.shape[1:] != IMAGE_SHAPE:
        raise ValueError('X must have shape (m, 32, 32, 3), got {}: pass '
                         'CIFAR-10 images as loaded'.format(X.shape))
    if Y.ndim not in (1, 2) or Y.shape[1:] not in ((), (1,)):
        raise ValueError('Y must have shape (m,) or (m, 1), got {}'
                         .format(Y.shape))
    if len(X) != len(Y):
        raise ValueError('X and Y differ in length: {} images, {} labels'
                         .format(len(X), len(Y)))
    for name, array in (('X', X), ('Y', Y)):
        if array.dtype.kind not in 'iuf':  # not timedelta64, bool, ...
            raise ValueError('{} must be numeric, got dtype {}'
                             .format(name, array.dtype))
        if not np.all(np.isfinite(array)):
            raise ValueError('{} contains NaN or infinite values'
                             .format(name))
    labels = Y.reshape(-1)
    if np.any((labels < 0) | (labels >= NUM_CLASSES) | (labels % 1 != 0)):
        raise ValueError('Y must hold integer labels 0-9')
    return X.astype('float32'), one_hot(labels)


def one_hot(labels):
    """Return float32 one-hot rows (m, 10) for integer labels."""
    return np.eye(NUM_CLASSES, dtype='float32')[labels.astype('int64')]


class _CifarUnpickler(pickle.Unpickler):
    """Unpickler that builds only the numpy arrays CIFAR batches hold."""

    ALLOWED = {('numpy', 'ndarray'), ('numpy', 'dtype'),
               ('numpy.core.multiarray', '_reconstruct'),
               ('numpy._core.multiarray', '_reconstruct')}

    def find_class(self, module, name):
        """Refuse every global but numpy's array reconstruction."""
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError('unexpected object {}.{}'
                                         .format(module, name))
        return super().find_class(module, name)


def read_cifar_batch(path):
    """Read one batch file of the official python layout: (X, Y)."""
    try:
        with open(path, 'rb') as f:
            batch = _CifarUnpickler(f, encoding='bytes').load()
        data = np.asarray(batch[b'data'], dtype='uint8').reshape(-1, 3072)
        labels = np.asarray(batch[b'labels'], dtype='uint8')
    except FileNotFoundError:
        raise InputError('{} is missing: --data-dir must be a folder in the '
                         'official cifar-10-batches-py layout'.format(path))
    except Exception as error:
        raise InputError('{} is not a CIFAR-10 python batch ({}): point '
                         '--data-dir at an extracted cifar-10-batches-py '
                         'folder'.format(path, error))
    if len(data) != len(labels):
        raise InputError('{} holds {} images but {} labels'
                         .format(path, len(data), len(labels)))
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def load_cifar10(data_dir=None):
    """Return ((X_train, Y_train), (X_test, Y_test)), labels shaped (m,).

    From data_dir (official python layout) or Keras' downloader.
    """
    if data_dir is None:
        (x_train, y_train), (x_test, y_test) = K.datasets.cifar10.load_data()
        return (x_train, y_train.ravel()), (x_test, y_test.ravel())
    train = [read_cifar_batch(os.path.join(data_dir, name))
             for name in CIFAR_TRAIN_FILES]
    test = read_cifar_batch(os.path.join(data_dir, CIFAR_TEST_FILE))
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return (x_train, y_train), test


def split_indices(count, holdout, train_images=0):
    """Return sorted (held-out, training) indices of count images.

    One held-out split for every seed and every train_images (0: all
    the rest), so that runs compare on the same images and share its
    cache.
    """
    if not 0 < holdout < count:
        raise InputError('--holdout must be between 1 and {}'
                         .format(count - 1))
    order = np.random.default_rng(SPLIT_SEED).permutation(count)
    return (np.sort(order[:holdout]),
            np.sort(order[holdout:][:train_images or None]))


# The images and integer labels of one run: the training images it fits
# on, the held-out ones it chooses on, and the test set.
Split = collections.namedtuple('Split', [
    'fit_images', 'fit_labels', 'holdout_images', 'holdout_labels',
    'test_images', 'test_labels'])


def load_split(data_dir, holdout, train_images, test_images=0):
    """Load CIFAR-10 and split its training set: a Split, with the first
    test_images test images (0: all)."""
    (x_train, y_train), (x_test, y_test) = load_cifar10(data_dir)
    holdout_index, fit_index = split_indices(len(x_train), holdout,
                                             train_images)
    test = slice(test_images or None)
    return Split(x_train[fit_index], y_train[fit_index],
                 x_train[holdout_index], y_train[holdout_index],
                 x_test[test], y_test[test])


# ------------------------------------------------------------- models

@saved_by_name
def upsize_images(images, size, application):
    """Resize 32x32 images to size x size, then scale them as the backbone's
    keras.applications module does.

    Uses no global but tf, so that a saved Lambda holding it loads anywhere
    this module is imported.
    """
    resized = tf.image.resize(images, (size, size))
    return getattr(tf.keras.applications, application).preprocess_input(
        resized)


@saved_by_name
def mirror_images(images):
    """Flip NHWC images left to right."""
    return tf.reverse(images, axis=[2])


def flip(images):
    """Mirror NHWC images left to right, as the saved model's Lambda does."""
    return np.asarray(mirror_images(images))


def crop_copy(images, copy):
    """Pad-and-crop copy number copy of images: each moved by up to
    CROP_PIXELS pixels each way, edges reflected.  The moves depend on
    copy and the images' order, not on --seed, so every seed shares the
    copy's cache."""
    p, side = CROP_PIXELS, images.shape[1]
    padded = np.pad(images, ((0, 0), (p, p), (p, p), (0, 0)), mode='reflect')
    moves = np.random.default_rng([SPLIT_SEED, copy]).integers(
        0, 2 * p + 1, (len(images), 2))
    return np.stack([image[dy:dy + side, dx:dx + side]
                     for image, (dy, dx) in zip(padded, moves)])


# extractor: images -> upsize -> frozen prefix (run once, cached);
# classifier: cached activations -> suffix -> head (trained);
# stitched: images -> upsize -> prefix -> suffix -> head (saved).
Models = collections.namedtuple('Models', 'extractor classifier stitched')


def build_backbone(name, image_size, weights):
    """Return the ImageNet backbone without its top, at image_size."""
    if name not in BACKBONES:
        raise InputError('unknown backbone {}: choose one of {}'
                         .format(name, ', '.join(BACKBONES)))
    minimum = BACKBONES[name][2]
    if image_size < minimum:
        raise InputError('{} needs --image-size >= {}'.format(name, minimum))
    constructor = getattr(K.applications, name)
    try:
        return constructor(include_top=False, weights=weights,
                           input_shape=(image_size, image_size, 3))
    except (ValueError, OSError) as error:
        if weights in (None, 'imagenet'):
            raise
        raise InputError('--weights {} does not fit {} without its top ({}): '
                         'pass that model\'s no-top Keras weight file'
                         .format(weights, name, error))


class Segment:
    """A run of a backbone's layers, called again on a new tensor.

    The layers (and so their weights) are shared with the backbone.  Models
    built from segments are flat, not nested: Keras 3 cannot load the
    Keras 2 file of a model that nests others.
    """

    def __init__(self, graph, start):
        """graph: (layer, its input, its output) in the backbone, in graph
        order; start: the backbone tensor that the new tensor stands for."""
        self.graph, self.start = graph, start
        self.layers = [layer for layer, _, _ in graph]

    def __call__(self, tensor):
        """Call the layers on tensor; return the last layer's output."""
        tensors = {id(self.start): tensor}
        for layer, inputs, output in self.graph:
            sources = inputs if isinstance(inputs, list) else [inputs]
            if any(id(source) not in tensors for source in sources):
                raise InputError('cannot cut there: layer {} also reads a '
                                 'tensor from before the cut; choose a layer '
                                 'at a block boundary'.format(layer.name))
            new = [tensors[id(source)] for source in sources]
            tensors[id(output)] = layer(new if isinstance(inputs, list)
                                        else new[0])
        return tensors[id(self.graph[-1][2])]


def split_backbone(backbone, cut_layer):
    """Split backbone after cut_layer into (prefix, suffix) segments."""
    names = [layer.name for layer in backbone.layers]
    if cut_layer not in names:
        raise InputError('--cut {}: {} has no layer of that name; choose one '
                         'of its block ends, e.g. {}'.format(
                             cut_layer, backbone.name, names[-2]))
    # Read each layer's own tensors before any call gives it a second one.
    graph = [(layer, layer.input, layer.output)
             for layer in backbone.layers[1:]]  # [0] is the input layer
    cut = names.index(cut_layer)
    return (Segment(graph[:cut], backbone.input),
            Segment(graph[cut:], backbone.get_layer(cut_layer).output))


def build_models(backbone_name, image_size, weights, cut_layer, dropout,
                 mirror=False):
    """Build the models of the pipeline: Models (see there).  With
    mirror, the stitched model averages its predictions on each image and
    on its mirror."""
    backbone = build_backbone(backbone_name, image_size, weights)
    prefix, suffix = split_backbone(backbone, cut_layer)
    # Frozen BatchNormalization layers run in inference mode (Keras 2 and
    # 3): training keeps the ImageNet statistics instead of replacing them
    # with those of small batches of upsized CIFAR images.
    for layer in prefix.layers:
        layer.trainable = False
    for layer in suffix.layers:
        if isinstance(layer, K.layers.BatchNormalization):
            layer.trainable = False

    images = K.Input(IMAGE_SHAPE, name='images')
    upsized = K.layers.Lambda(
        upsize_images, name='upsize',
        arguments={'size': image_size,
                   'application': BACKBONES[backbone_name][0]})(images)
    activations = prefix(upsized)
    extractor = K.Model(images, activations, name='extractor')

    head = [K.layers.GlobalAveragePooling2D(name='avg_pool'),
            K.layers.Dropout(dropout, name='dropout'),
            K.layers.Dense(NUM_CLASSES, activation='softmax',
                           name='predictions')]

    def classify(activations):
        """Run the trainable suffix, then the head."""
        x = suffix(activations)
        for layer in head:
            x = layer(x)
        return x

    features = K.Input(activations.shape[1:], name='cached_features')
    classifier = K.Model(features, classify(features), name='classifier')
    probabilities = classify(activations)
    if mirror:
        # Resizing commutes with the flip, so the mirror's activations are
        # those cached for the flipped images.
        mirrored = K.layers.Lambda(mirror_images, name='mirror')(upsized)
        probabilities = K.layers.Average(name='mirror_average')(
            [probabilities, classify(prefix(mirrored))])
    stitched = K.Model(images, probabilities, name='cifar10')
    return Models(extractor, classifier, stitched)


def distribution_strategy():
    """Return a MirroredStrategy over the GPUs if there are several.

    Otherwise the default strategy (one device).
    """
    if len(tf.config.list_logical_devices('GPU')) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def adam(schedule, weight_decay):
    """Adam on schedule; with weight_decay, AdamW: each step also shrinks
    every trained weight but the biases by weight_decay times the step's
    learning rate (the BatchNorm layers are frozen)."""
    if not weight_decay:
        return K.optimizers.Adam(schedule)
    optimizer = K.optimizers.Adam(schedule, weight_decay=weight_decay)
    optimizer.exclude_from_weight_decay(var_names=['bias'])
    return optimizer


def compile_model(model, learning_rate, decay_steps, *, weight_decay,
                  label_smoothing):
    """Compile with Adam(W), a cosine learning-rate decay and label
    smoothing."""
    schedule = K.optimizers.schedules.CosineDecay(learning_rate, decay_steps)
    model.compile(
        optimizer=adam(schedule, weight_decay),
        loss=K.losses.CategoricalCrossentropy(label_smoothing=label_smoothing),
        metrics=['accuracy'])


def compile_for_evaluation(model):
    """Compile the saved model for evaluate(), in the one form that every
    stack loads from a Keras 2 file: a plain loss and optimizer by name (a
    schedule or a loss object's config fails in Keras 3), and accuracy as
    a metric object (Keras 3 cannot call the name 'accuracy' from it)."""
    model.compile(optimizer='adam', loss='categorical_crossentropy',
                  metrics=[K.metrics.CategoricalAccuracy(name='accuracy')])


# -------------------------------------------------------------- cache

@contextlib.contextmanager
def file_lock(path):
    """Hold an exclusive lock on path + '.lock' (waits for other runs)."""
    with open(path + '.lock', 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside path; move it into place on success.

    A failed or killed run leaves the old file (if any) untouched.
    """
    directory, name = os.path.split(os.path.abspath(path))
    stem, extension = os.path.splitext(name)
    temporary = os.path.join(directory, '.{}.{}.tmp{}'.format(
        stem, os.getpid(), extension))
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def digest(value):
    """Return the first 20 hex digits of the SHA-256 of value as JSON."""
    text = json.dumps(value, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def sha256_of_file(path):
    """Return the SHA-256 hex digest of a file's bytes."""
    hasher = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 24), b''):
            hasher.update(block)
    return hasher.hexdigest()


def weights_fingerprint(model):
    """Return a SHA-256 of a model's weights (names the frozen prefix)."""
    hasher = hashlib.sha256()
    for weights in model.get_weights():
        hasher.update(np.ascontiguousarray(weights).tobytes())
    return hasher.hexdigest()


def extractor_key(extractor, backbone, cut, image_size):
    """Return what determines the cached activations besides the images:
    backbone, cut, input size, the prefix's weights, the upsizing code, the
    backbone's preprocessing code, and the TensorFlow and Keras versions
    that run them."""
    application = getattr(K.applications, BACKBONES[backbone][0])
    upsize = inspect.unwrap(extractor.get_layer('upsize').function)
    code = (inspect.getsource(upsize)
            + inspect.getsource(application.preprocess_input))
    return {'backbone': backbone, 'cut': cut, 'image_size': image_size,
            'prefix_weights': weights_fingerprint(extractor),
            'extractor_code': hashlib.sha256(code.encode()).hexdigest(),
            'keras': keras_stack(), 'tensorflow': tf.__version__}


def keras_engine(extractor, batch_size):
    """Return a function running extractor on images with Keras predict."""
    return functools.partial(extractor.predict, batch_size=batch_size,
                             verbose=0)


def lite_interpreter(content, threads):
    """Return a TFLite interpreter of a converted model, on threads
    threads."""
    with warnings.catch_warnings():  # 2.21: use the ai-edge-litert package
        warnings.simplefilter('ignore')
        interpreter = tf.lite.Interpreter(model_content=content,
                                          num_threads=threads)
    interpreter.allocate_tensors()
    return interpreter


def has_xnnpack():
    """Whether this TensorFlow's Lite runs graphs on XNNPACK (2.21 does,
    2.6's pip build does not): a one-op probe's plan then holds a DELEGATE
    node."""
    if not hasattr(tf, 'lite'):
        return False
    add_one = tf.function(lambda x: x + 1,
                          input_signature=[tf.TensorSpec([1], tf.float32)])
    convert = tf.lite.TFLiteConverter.from_concrete_functions
    # 2.21 wants the function's owner too (and warns without it); 2.6
    # takes no such argument.
    owner = (add_one,) if 'trackable_obj' in inspect.signature(
        convert).parameters else ()
    content = convert([add_one.get_concrete_function()], *owner).convert()
    return any(op['op_name'] == 'DELEGATE'
               for op in lite_interpreter(content, 1)._get_ops_details())


def lite_engine(extractor, interpreters=None):
    """Return a function running extractor on images with TensorFlow
    Lite's XNNPACK delegate; None where this TensorFlow's Lite has no
    XNNPACK (2.6: there it is slower than Keras).

    The interpreters (default: one per core) share the cores and the
    images, each running its share one image at a time.  In probes, batch
    1 ran fastest (630-703 images/s on 2 Xeon cores, batch 128: 523), and
    one interpreter per core was steadier than one on both (AMD Zen 4,
    benchmark.py throughput: 1,242 and 1,277 images/s against 1,221 and
    829).
    """
    if not has_xnnpack():
        return None
    content = tf.lite.TFLiteConverter.from_keras_model(extractor).convert()
    cores = os.cpu_count() or 1
    count = interpreters or cores
    workers = [lite_interpreter(content, max(1, cores // count))
               for _ in range(count)]

    def run_one(interpreter, images):
        """The outputs of one interpreter for images (invoke releases
        Python's lock, so the interpreters run in parallel)."""
        source = interpreter.get_input_details()[0]['index']
        target = interpreter.get_output_details()[0]['index']
        outputs = []
        for image in images:
            interpreter.set_tensor(source, image[None])
            interpreter.invoke()
            outputs.append(interpreter.get_tensor(target)[0])
        return outputs

    def run(images):
        """The extractor's outputs for images, in order (one call at a
        time: the interpreters are shared)."""
        shares = np.array_split(images, len(workers))
        with concurrent.futures.ThreadPoolExecutor(len(shares)) as pool:
            parts = pool.map(run_one, workers, shares)
            return np.stack([output for part in parts for output in part])
    return run


class FrozenPass:
    """The extractor's forward pass, on the fastest engine here: 'tflite'
    (XNNPACK) where this TensorFlow has it, else 'keras' (predict).  The
    engine is chosen, and the model converted, when first needed.  The two
    agree to float32 rounding, far below the cache's float16 rounding, so
    caches do not depend on the engine."""

    def __init__(self, extractor, batch_size, engine=None,
                 interpreters=None):
        """engine: 'tflite' or 'keras' to choose it; interpreters: see
        lite_engine (tests, benchmark)."""
        self.extractor, self.batch_size = extractor, batch_size
        self.shape = tuple(extractor.output.shape[1:])
        self.engine, self.interpreters, self.run = engine, interpreters, None

    def __call__(self, images):
        """Return the extractor's float16 outputs for float32 images."""
        if self.run is None:
            lite = self.lite() if self.engine in (None, 'tflite') else None
            if self.engine == 'tflite' and lite is None:
                raise RuntimeError('TensorFlow Lite without XNNPACK here')
            self.engine = 'tflite' if lite else 'keras'
            self.run = lite or keras_engine(self.extractor, self.batch_size)
        return self.run(images).astype('float16')

    def lite(self):
        """lite_engine's function, or None (saying why) if converting the
        extractor fails: Keras predict runs every model."""
        try:
            return lite_engine(self.extractor, self.interpreters)
        except Exception as error:  # a layer TFLite cannot convert, ...
            print('TensorFlow Lite failed ({}: {}); running Keras predict'
                  .format(type(error).__name__, error))
            return None


def extract_features(frozen, images, chunk_batches=CHUNK_BATCHES):
    """Yield (start, float16 output) over images, chunk_batches batches
    at a time (Keras predict: one call per batch cost 19% of the
    throughput in a measurement)."""
    chunk = chunk_batches * frozen.batch_size
    progress = K.utils.Progbar(len(images), unit_name='image')
    for start in range(0, len(images), chunk):
        part = images[start:start + chunk].astype('float32')
        yield start, frozen(part)
        progress.add(len(part))


def cache_path(name, images, cache_dir, key):
    """Return the cache file of images under name, and its full key (key,
    the images' hash and shape)."""
    key = dict(key, data=hashlib.sha256(images.tobytes()).hexdigest(),
               shape=list(images.shape))
    return os.path.join(cache_dir, '{}-{}.npy'.format(name, digest(key))), key


def cached_features(frozen, images, name, cache_dir, key):
    """Return the frozen pass's output over images, computing it only once.

    The cache file's name holds a hash of key (backbone, cut, input size,
    prefix weights, the images); a JSON record beside it holds the key and
    the file's checksum, and is written last, so a truncated, corrupt or
    foreign cache is detected and rebuilt.  Returns (features, reused).
    """
    path, key = cache_path(name, images, cache_dir, key)
    record_path = path[:-len('.npy')] + '.json'
    os.makedirs(cache_dir, exist_ok=True)
    with file_lock(path):
        problem = cache_problem(path, record_path, key)
        if problem is None:
            print('Reusing cached {} features: {}'.format(name, path))
            return np.load(path, mmap_mode='r'), True
        print('Extracting {} features ({}): {}'.format(name, problem, path))
        with atomic_path(path) as temporary:
            features = np.lib.format.open_memmap(
                temporary, mode='w+', dtype='float16',
                shape=(len(images),) + frozen.shape)
            reserve_space(temporary, '--cache-dir')
            for start, batch in extract_features(frozen, images):
                features[start:start + len(batch)] = batch
            features.flush()
            del features
            record = dict(key=key, sha256=sha256_of_file(temporary))
        with atomic_path(record_path) as temporary:
            with open(temporary, 'w') as f:
                json.dump(record, f, indent=1, sort_keys=True)
        return np.load(path, mmap_mode='r'), False


def cache_problem(path, record_path, key):
    """Return why the cache at path cannot be used, or None if it can."""
    if not os.path.exists(path):
        return 'no cache yet'
    if not os.path.exists(record_path):
        return 'cache file without its record, rebuilding'
    try:
        with open(record_path) as f:
            record = json.load(f)
    except ValueError:
        return 'cache record unreadable, rebuilding'
    if record.get('key') != key:
        return 'cache made for another configuration, rebuilding'
    if record.get('sha256') != sha256_of_file(path):
        return 'cache file corrupt or truncated, rebuilding'
    return None


class FeatureCache:
    """The frozen pass's activations of named image sets, each computed
    once and kept in cache_dir; what each set cost goes into the run's
    record (extraction is timed wherever it happens, evaluation included),
    with the engine that ran it."""

    def __init__(self, frozen, key, cache_dir, record):
        """Hold what cached_features needs, and the record to fill."""
        self.frozen, self.key, self.cache_dir = frozen, key, cache_dir
        self.record = record
        for field in ('cache_reused', 'cache_mib', 'extraction_seconds'):
            record.setdefault(field, {})

    def __call__(self, name, images):
        """Return the activations of images (memory-mapped float16)."""
        start = time.time()
        features, reused = cached_features(
            self.frozen, np.ascontiguousarray(images), name,
            self.cache_dir, self.key)
        self.record['extraction_seconds'][name] = time.time() - start
        self.record['cache_reused'][name] = reused
        self.record['cache_mib'][name] = os.path.getsize(
            features.filename) / 2 ** 20
        if not reused:
            self.record['engine'] = self.frozen.engine
        return features

    def missing_bytes(self, sets):
        """Bytes that caching the image sets ({name: images}) will write:
        those of the sets not cached yet."""
        row = np.dtype('float16').itemsize * int(np.prod(self.frozen.shape))
        return sum(len(images) * row for name, images in sets.items()
                   if not os.path.exists(cache_path(
                       name, np.ascontiguousarray(images), self.cache_dir,
                       self.key)[0]))


# ----------------------------------------------------------- training

class CachedBatches(K.utils.Sequence):
    """Shuffled float32 batches read from cached float16 activations.

    parts: one item per way of seeing the training images (e.g. as is,
    and flipped), each a list of views: arrays of activations of the same
    images (e.g. the images and pad-and-crop copies of them).  Every epoch
    visits each image in each part once, reading one of the part's views
    at random.  Reading batch by batch keeps memory bounded: Keras would
    copy whole arrays.
    shift: translate each map by up to this many cells (edges repeated),
    drawn anew every epoch.  A cell of an n x n map spans 32/n of the
    original 32 pixels (3.2 for a 10x10 map): one cell is close to the
    usual 4-pixel pad-and-crop augmentation of CIFAR training.
    mixup: mix each map and its label with the batch's map and label in
    the mirrored position (mixup of cached activations), in proportions
    drawn from Beta(mixup, mixup); 0 for none.
    Epoch e's order, views, shifts and mixes depend on (seed, e) alone, so
    a run resumed at first_epoch draws what the uninterrupted run would
    have.
    """

    def __init__(self, parts, labels, batch_size, seed, shift=0,
                 first_epoch=0, mixup=0):
        """Hold the parts (memory-mapped), one-hot labels and the seed."""
        super().__init__()
        self.parts, self.labels, self.batch_size = parts, labels, batch_size
        self.shift, self.seed, self.mixup = shift, seed, mixup
        self.start_epoch(first_epoch)

    def __len__(self):
        """Batches per epoch."""
        return -(-len(self.order) // self.batch_size)

    def __getitem__(self, index):
        """Return batch number index: (activations, labels)."""
        batch = slice(index * self.batch_size, (index + 1) * self.batch_size)
        part, row = np.divmod(self.order[batch], len(self.labels))
        x = np.stack([self.parts[p][v][r] for p, v, r in
                      zip(part, self.views[batch], row)])
        if self.shift:
            s = self.shift
            height, width = x.shape[1:3]
            padded = np.pad(x, ((0, 0), (s, s), (s, s), (0, 0)), mode='edge')
            x = np.stack([image[dy:dy + height, dx:dx + width] for image,
                          (dy, dx) in zip(padded, self.offsets[batch])])
        x, y = x.astype('float32'), self.labels[row]
        if self.mixup:
            share = self.shares[batch].astype('float32')[:, None]
            y = share * y + (1 - share) * y[::-1]
            share = share[:, :, None, None]
            x = share * x + (1 - share) * x[::-1]
        return x, y

    def start_epoch(self, epoch):
        """Draw epoch's order, views and shifts, as the epoch to read
        next."""
        self.epoch = epoch - 1
        self.on_epoch_end()

    def on_epoch_end(self):
        """Draw the next epoch's order of (part, image) pairs, the view
        each reads, and shifts."""
        self.epoch += 1
        rng = np.random.default_rng([self.seed, self.epoch])
        self.order = rng.permutation(len(self.parts) * len(self.labels))
        self.offsets = rng.integers(0, 2 * self.shift + 1,
                                    (len(self.order), 2))
        views = np.array([len(views) for views in self.parts])
        self.views = rng.integers(0, views[self.order // len(self.labels)])
        if self.mixup:
            self.shares = rng.beta(self.mixup, self.mixup, len(self.order))


class EpochLog(K.callbacks.Callback):
    """Record each epoch's metrics and wall seconds of training, in memory
    and in path (JSON), so that a resumed run keeps the epochs before its
    interruption.

    It comes before BackupAndRestore in fit's callbacks: an epoch is
    logged, then checkpointed.  A run killed between the two has logged an
    epoch that the checkpoint lacks; resumed, fit trains it again, and the
    log forgets it and has the batches drawn for it (on_epoch_begin).  So
    a kill at any point keeps the log and the batch order of an
    uninterrupted run.
    """

    def __init__(self, path):
        """Load the epochs a killed run recorded at path, if any.  Set
        batches to the CachedBatches that fit reads before it runs."""
        super().__init__()
        self.path, self.batches = path, None
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.epochs = []
        with contextlib.suppress(OSError, ValueError):
            with open(path) as f:
                self.epochs = json.load(f)
        self.resumed_after = len(self.epochs)  # until fit says otherwise
        self.first = True

    def on_train_begin(self, logs=None):
        """Start the clock where the recorded epochs left it."""
        done = self.epochs[-1]['seconds'] if self.epochs else 0
        self.start = time.time() - done

    def on_epoch_begin(self, epoch, logs=None):
        """At fit's first epoch: forget epochs the checkpoint lacks, and
        draw the batches of this epoch."""
        if not self.first:
            return
        self.first, self.resumed_after = False, epoch
        if len(self.epochs) > epoch:
            print('Epoch {} was logged but not checkpointed: training it '
                  'again'.format(epoch + 1))
            del self.epochs[epoch:]
            self.on_train_begin()
        if self.batches.epoch != epoch:
            self.batches.start_epoch(epoch)

    def on_epoch_end(self, epoch, logs=None):
        """Append the epoch's metrics and elapsed seconds; save them."""
        entry = {k: float(v) for k, v in (logs or {}).items()
                 if k in ('loss', 'accuracy', 'val_loss', 'val_accuracy')}
        entry.update(epoch=epoch + 1, seconds=time.time() - self.start,
                     seconds_since_process_start=seconds_since_process_start())
        self.epochs.append(entry)
        with atomic_path(self.path) as temporary:
            with open(temporary, 'w') as f:
                json.dump(self.epochs, f)


@contextlib.contextmanager
def resume_folder(cache_dir, key, args):
    """Yield the folder where training leaves its last completed epoch,
    locked: a run killed before its model was saved resumes from it when
    the same command runs again (one run at a time)."""
    options = {name: value for name, value in vars(args).items()
               if name not in ('output', 'log', 'note', 'test_images')}
    folder = os.path.join(cache_dir, 'backup-' + digest([key, options]))
    with file_lock(folder):
        yield folder


def fit_with_resume(classifier, parts, split, holdout_features, args,
                    folder):
    """Train classifier on the cached parts, resuming from folder; return
    the log of every epoch (those before a resume included) and how many
    of them came before the resume."""
    epoch_log = EpochLog(os.path.join(folder, 'epochs.json'))
    done = len(epoch_log.epochs)
    if done:
        print('Resuming training after epoch {} of {} ({})'.format(
            done, args.epochs, folder))
    epoch_log.batches = CachedBatches(
        parts, one_hot(split.fit_labels), args.batch_size, args.seed,
        args.shift, first_epoch=done, mixup=args.mixup)
    compile_model(classifier, args.learning_rate,
                  len(epoch_log.batches) * args.epochs,
                  weight_decay=args.weight_decay,
                  label_smoothing=args.label_smoothing)
    # shuffle=False: the batches shuffle themselves (Keras 2 would also
    # reorder them, differently after a resume).
    classifier.fit(epoch_log.batches, epochs=args.epochs, shuffle=False,
                   validation_data=(holdout_features,
                                    one_hot(split.holdout_labels)),
                   callbacks=[epoch_log, backup_and_restore(folder)],
                   verbose=1)
    return epoch_log.epochs, epoch_log.resumed_after


# ------------------------------------------------ saving and evaluation

def predict(classifier, features):
    """The classifier's probabilities for cached activations."""
    return classifier.predict(np.asarray(features, 'float32'),
                              batch_size=PREDICT_BATCH, verbose=0)


def predict_views(classifier, views):
    """Mean of the classifier's probabilities over views of the same
    images (cached activations of the images, of their mirrors)."""
    return np.mean([predict(classifier, view) for view in views], axis=0)


def accuracy_of(predicted, labels):
    """Fraction of predicted classes equal to the integer labels."""
    return float(np.mean(predicted == labels))


def save_verified(models, frozen, split, holdout_features, mirror, output):
    """Save the stitched model to output atomically, after checking that
    the saved file predicts on raw held-out images what the cached
    (float16) path, through the frozen pass, predicts for them."""
    images = split.holdout_images[:VERIFY_IMAGES]
    views = [holdout_features[:VERIFY_IMAGES]]
    if mirror:
        views.append(frozen(flip(images).astype('float32')))
    expected = predict_views(models.classifier, views)
    with atomic_path(output) as temporary:
        models.stitched.save(temporary)
        reloaded = K.models.load_model(temporary)
        saved = reloaded.predict(images.astype('float32'), verbose=0)
        difference = float(np.max(np.abs(saved - expected)))
        if difference > VERIFY_TOLERANCE:
            raise RuntimeError('saved model disagrees with the trained one '
                               '(max probability difference {:.4f}); {} left '
                               'unchanged'.format(difference, output))
        print('Saved {} (reloaded; max probability difference from the '
              'cached path {:.5f})'.format(output, difference))


def evaluate(classifier, cache, sets, split, holdout_features):
    """Accuracy on the held-out and test images, in the single view and
    averaged with the mirrors; the test's also on its exact images 0-999.
    Returns {view: {set: accuracy}}."""
    labels = {'holdout': split.holdout_labels, 'test': split.test_labels}
    by_view = {'single': {}, 'mirror_average': {}}
    for name in ('holdout', 'test'):
        as_is = holdout_features if name == 'holdout' \
            else cache(name, sets[name])
        views = [predict(classifier, features) for features in (
            as_is, cache(name + '_flipped', sets[name + '_flipped']))]
        for view, count in (('single', 1), ('mirror_average', 2)):
            predicted = np.mean(views[:count], axis=0).argmax(1)
            by_view[view][name] = accuracy_of(predicted, labels[name])
            if name == 'test':
                by_view[view]['test_exact_0_999'] = accuracy_of(
                    predicted[:EXACT_TEST_IMAGES],
                    labels[name][:EXACT_TEST_IMAGES])
    return by_view


# ---------------------------------------------------- the run's record

def seconds_since_process_start():
    """Return wall seconds since this process started (Linux /proc)."""
    with open('/proc/self/stat') as f:
        # Field 22, start time in clock ticks after boot; the command name
        # (field 2, in parentheses) may hold spaces.
        ticks = int(f.read().rsplit(')', 1)[1].split()[19])
    with open('/proc/uptime') as f:
        uptime = float(f.read().split()[0])
    return uptime - ticks / os.sysconf('SC_CLK_TCK')


def peak_memory_mib():
    """Return this process's peak resident memory in MiB (Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine_description():
    """Return versions and CPU facts for the experiment log."""
    cpu = cpuinfo('model name') or platform.processor()
    package, version = keras_stack().split()
    return {'python': platform.python_version(), 'tensorflow': tf.__version__,
            'keras': version, 'legacy_keras': package == 'tf_keras',
            'numpy': np.__version__, 'cpu': cpu, 'cores': os.cpu_count(),
            'cpu_family_model': '/'.join(filter(None, (  # Zen 4 or 5?
                cpuinfo('cpu family'), cpuinfo('model\t')))),
            'script_sha256': sha256_of_file(os.path.abspath(__file__)),
            'commit': source_commit()}


def keras_stack():
    """Return the Keras package in use and its version, e.g. keras 3.15.1
    (tf_keras where TF_USE_LEGACY_KERAS=1 made TensorFlow 2.21 use it)."""
    legacy = not KERAS_3 and importlib.util.find_spec('tf_keras')
    package = 'tf_keras' if legacy else 'keras'
    return '{} {}'.format(package, metadata.version(package))


def source_commit():
    """Return the git commit of this file's checkout, '+' appended if the
    file differs from it, or None outside a git checkout."""
    folder = os.path.dirname(os.path.abspath(__file__))

    def git(*command):
        """Run git in folder; return its CompletedProcess."""
        return subprocess.run(['git'] + list(command), cwd=folder,
                              capture_output=True, text=True)
    try:
        head = git('rev-parse', 'HEAD')
        changed = git('diff', '--quiet', 'HEAD', '--',
                      os.path.basename(__file__)).returncode != 0
    except OSError:  # no git
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ('+' if changed else '')


@contextlib.contextmanager
def stage(name, record):
    """Record a stage's wall seconds, and the process's peak memory when
    it ends (the peak so far, not the stage's own)."""
    start = time.time()
    yield
    record['timings'][name] = time.time() - start
    record['peak_memory_mib_at_stage_end'][name] = peak_memory_mib()


def append_record(log_path, record):
    """Append one JSON line to the experiment log."""
    with file_lock(log_path):
        with open(log_path, 'a') as f:
            f.write(json.dumps(record, sort_keys=True) + '\n')


# ------------------------------------------------------- command line

def check_writable(directory, option):
    """Fail early, before any long work, if directory is not writable."""
    try:
        os.makedirs(directory, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as error:
        raise InputError('{}: cannot write to {} ({}); choose a writable '
                         'location'.format(option, directory, error.strerror))


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)  # no space, or over the quota


def check_space(needs):
    """Fail early, before any long work, unless each filesystem has room
    for what the run will write there.  needs: {(option, folder): bytes};
    folders on one filesystem add up."""
    by_device = collections.defaultdict(list)
    for (option, folder), size in needs.items():
        by_device[os.stat(folder).st_dev].append((option, folder, size))
    for wants in by_device.values():
        needed = sum(size for _, _, size in wants)
        free = shutil.disk_usage(wants[0][1]).free
        if needed > free:
            raise InputError('{}: this run writes {:,} bytes on {} and '
                             '{:,} are free; free some space, or choose '
                             'another folder'.format(
                                 ', '.join('{} {}'.format(option, folder)
                                           for option, folder, _ in wants),
                                 needed, 'their filesystem' if len(wants) > 1
                                 else 'its filesystem', free))


def reserve_space(path, option):
    """Allocate path's blocks on disk now: a memory-mapped write that finds
    the disk full kills the process (SIGBUS) instead of raising."""
    with open(path, 'r+b') as f:
        try:
            os.posix_fallocate(f.fileno(), 0, os.path.getsize(path))
        except OSError as error:
            if error.errno not in DISK_FULL:
                raise
            raise disk_full(error, path, option)


def disk_full(error, path, option=''):
    """Return an InputError for a write to path (option's folder) that
    found no space: error's errno is in DISK_FULL."""
    where = os.path.abspath(str(path)) if path else 'a file'
    return InputError('{}: no space left writing {} ({}); free some space '
                      'there, or choose another folder'.format(
                          option or 'disk full', where, error.strerror))


def load_weights_argument(weights):
    """Map the --weights option to Keras' weights argument."""
    if weights == 'none':
        return None
    if weights != 'imagenet' and not os.path.isfile(weights):
        raise InputError('--weights {}: no such file; pass a local Keras '
                         'weight file, imagenet or none'.format(weights))
    return weights


def remove_stale_temporaries(directories):
    """Delete temporary files (.NAME.PID.tmp.EXT) of runs that died."""
    for directory in directories:
        for path in glob.glob(os.path.join(directory, '.*.*.tmp*')):
            pid = os.path.basename(path).split('.tmp')[0].rsplit('.', 1)[-1]
            if pid.isdigit() and not os.path.exists('/proc/' + pid):
                os.remove(path)
                print('Removed {}, left by a run that died (PID {})'
                      .format(path, pid))


@contextlib.contextmanager
def download_errors():
    """Turn a failed Keras download (its error is raised while handling a
    URLError) into an InputError that says how to run offline."""
    try:
        yield
    except Exception as error:
        if not isinstance(error.__context__, urllib.error.URLError):
            raise
        raise InputError('download failed ({}). Offline, pass --data-dir DIR '
                         '(a cifar-10-batches-py folder) and --weights FILE '
                         '(a Keras weight file), or put the files Keras '
                         'would download under $KERAS_HOME (default '
                         '~/.keras)'.format(error)) from error


def output_folders(args):
    """The folders the run writes to, {option: absolute path}."""
    return {option: os.path.abspath(folder) for option, folder in (
        ('--output', os.path.dirname(args.output)),
        ('--cache-dir', args.cache_dir),
        ('--log', os.path.dirname(args.log)))}


def prepare_folders(args):
    """Fail early if an output folder is not writable; remove what runs
    that died left there."""
    folders = output_folders(args)
    for option, folder in folders.items():
        check_writable(folder, option)
    remove_stale_temporaries(folders.values())


def training_parts(flips, crops):
    """Names of the cached training sets, by part (see CachedBatches): the
    images and their crop copies; with flips, the mirrors of those."""
    as_is = ['fit'] + ['fit_crop{}'.format(copy)
                       for copy in range(1, crops + 1)]
    return [as_is] + ([[name + '_flipped' for name in as_is]] if flips
                      else [])


def image_sets(split, flips, crops):
    """The image sets whose activations the run caches, by name: the
    training parts' (horizontal flips, the usual CIFAR augmentation, are
    cached once, as mirrored copies), and the held-out and test images with
    their mirrors (the saved model may average over both)."""
    as_is = training_parts(flips, crops)[0]
    sets = {'fit': split.fit_images, 'holdout': split.holdout_images,
            'test': split.test_images}
    sets.update({name: crop_copy(split.fit_images, copy)
                 for copy, name in enumerate(as_is[1:], 1)})
    mirrored = ['holdout', 'test'] + (as_is if flips else [])
    sets.update({name + '_flipped': flip(sets[name]) for name in mirrored})
    return sets


def build_pipeline(args, record):
    """Build the models and the cache key for args; note in the record what
    they are.  Returns (models, key)."""
    cut = args.cut or BACKBONES[args.backbone][1]
    models = build_models(args.backbone, args.image_size,
                          load_weights_argument(args.weights), cut,
                          args.dropout, args.mirror)
    record.update(cut=cut,
                  feature_shape=list(models.extractor.output.shape[1:]),
                  trainable_params=int(sum(
                      np.prod(w.shape)
                      for w in models.classifier.trainable_weights)))
    return models, extractor_key(models.extractor, args.backbone, cut,
                                 args.image_size)


def space_needed(models, cache, sets, args):
    """What the run will write, {(option, folder): bytes}: the activations
    not cached yet, the resume checkpoint (weights and Adam's two moments),
    the model (float32 weights; written beside the old one), the record."""
    float32 = np.dtype('float32').itemsize
    margin = 2 ** 20  # configs, headers, the log's record
    sizes = {'--cache-dir': cache.missing_bytes(sets)
             + 3 * float32 * models.classifier.count_params() + margin,
             '--output': float32 * models.stitched.count_params() + margin,
             '--log': margin}
    return {(option, folder): sizes[option]
            for option, folder in output_folders(args).items()}


def train(args, record):
    """Run the pipeline for parsed args, filling the run's record as each
    stage ends."""
    prepare_folders(args)
    record.update(timings={}, peak_memory_mib_at_stage_end={})
    set_random_seed(args.seed)
    strategy = distribution_strategy()
    with stage('load_data', record), download_errors():
        split = load_split(args.data_dir, args.holdout, args.train_images,
                           args.test_images)
        sets = image_sets(split, args.flips, args.crops)
    with stage('build', record), strategy.scope(), download_errors():
        models, key = build_pipeline(args, record)
    record.update(train_images=len(split.fit_labels),
                  replicas=strategy.num_replicas_in_sync)
    cache = FeatureCache(FrozenPass(models.extractor, args.batch_size), key,
                         args.cache_dir, record)
    check_space(space_needed(models, cache, sets, args))

    with stage('extract', record):  # the test's features: in 'evaluate'
        parts = [[cache(name, sets[name]) for name in views]
                 for views in training_parts(args.flips, args.crops)]
        holdout_features = np.asarray(cache('holdout', sets['holdout']),
                                      'float32')
    with resume_folder(args.cache_dir, key, args) as folder:
        with stage('train', record), strategy.scope():
            record['epochs'], record['resumed_after_epoch'] = fit_with_resume(
                models.classifier, parts, split, holdout_features, args,
                folder)
            compile_for_evaluation(models.stitched)
        with stage('save', record):
            save_verified(models, cache.frozen, split, holdout_features,
                          args.mirror, args.output)
            record['seconds_to_saved_model'] = seconds_since_process_start()
            shutil.rmtree(folder, ignore_errors=True)  # nothing to resume
    with stage('evaluate', record):
        by_view = evaluate(models.classifier, cache, sets, split,
                           holdout_features)
    record.update(accuracy_by_view=by_view, accuracy=by_view[
        'mirror_average' if args.mirror else 'single'])


def parse_args(argv=None):
    """Parse the command line: every option of OPTIONS, and --preset."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--preset', default='default', choices=PRESETS,
                        help='a set of defaults: fast reaches the task\'s '
                        '{:g}%% in about a minute, accurate trains longer '
                        'for a little more; options given explicitly win'
                        .format(100 * TASK_ACCURACY))
    for name, (default, help) in OPTIONS.items():
        flag = '--' + name.replace('_', '-')
        if isinstance(default, bool):
            add_switch(parser, name.replace('_', '-'), default, help)
        elif name == 'backbone':
            parser.add_argument(flag, default=default, help=help,
                                choices=sorted(BACKBONES))
        else:
            parser.add_argument(flag, default=default, help=help, type=None
                                if default is None or isinstance(default, str)
                                else type(default))
    preset, _ = parser.parse_known_args(argv)
    parser.set_defaults(**PRESETS[preset.preset])
    args = parser.parse_args(argv)
    for name in ('epochs', 'batch_size', 'image_size'):
        if getattr(args, name) < 1:
            parser.error('--{} must be a positive integer'
                         .format(name.replace('_', '-')))
    if min(args.shift, args.train_images, args.test_images, args.crops) < 0 \
            or not args.mixup >= 0:  # also refuses nan
        parser.error('--shift, --train-images, --test-images, --crops and '
                     '--mixup must be 0 or more')
    if args.learning_rate <= 0 or not 0 <= args.dropout < 1 \
            or not 0 <= args.label_smoothing < 1:
        parser.error('--learning-rate must be > 0; --dropout and '
                     '--label-smoothing in [0, 1)')
    if not 0 <= args.weight_decay < np.inf:  # also refuses nan
        parser.error('--weight-decay must be 0 or more, and finite')
    if args.weight_decay and not ADAM_DECAYS:
        parser.error('--weight-decay needs Keras 2.11 or later (this '
                     'Keras\'s Adam has no weight decay); leave it at 0')
    return args


def main(argv=None):
    """Command-line entry point: train, save, log.  Bad input exits 1 with
    a one-line error; any other failure keeps its traceback."""
    args = parse_args(argv)
    started = time.time()
    record = {'config': vars(args), 'machine': machine_description()}
    try:
        try:
            train(args, record)
        except OSError as error:
            if error.errno not in DISK_FULL:
                raise
            raise disk_full(error, error.filename)
    except InputError as error:
        record['error'] = ' '.join(str(error).split())
        sys.exit('error: ' + record['error'])
    except BaseException as error:
        record['error'] = '{}: {}'.format(type(error).__name__, error)
        raise
    finally:
        # A run that replaced cifar10.h5 is logged even if what comes after
        # the save failed.
        if 'seconds_to_saved_model' in record:
            usage = resource.getrusage(resource.RUSAGE_SELF)
            record.update(
                wall_seconds=time.time() - started,
                cpu_seconds=usage.ru_utime + usage.ru_stime,
                peak_memory_mib=peak_memory_mib(),
                finished=datetime.datetime.now(datetime.timezone.utc)
                .isoformat(timespec='seconds'))
            append_record(args.log, record)
    print(json.dumps(record['accuracy']))


if __name__ == '__main__':
    main()
