#!/usr/bin/env python3
"""Train a CIFAR-10 classifier by transfer learning from a Keras backbone.

Run as a script, it loads CIFAR-10, upsizes the 32x32 images inside the
model (the first layer is a Lambda), runs the frozen prefix of an ImageNet
backbone once over the data and caches its activations on disk, trains the
backbone's last blocks plus a new head on that cache, stitches
Lambda + prefix + suffix + head into one image-to-label model and saves it,
compiled, as cifar10.h5.  Importing this module runs nothing.
"""
import argparse
import contextlib
import datetime
import fcntl
import functools
import glob
import hashlib
import inspect
import json
from importlib import metadata
import os
import pickle
import platform
import random
import resource
import shutil
import sys
import tempfile
import time
import urllib.error

# TensorFlow 2.6 leaves oneDNN off unless asked (it doubles the frozen
# pass there); later versions turn it on by default.  Read at import.
os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '1')

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow.keras as K  # noqa: E402

NUM_CLASSES = 10
IMAGE_SHAPE = (32, 32, 3)
CIFAR_TRAIN_FILES = ['data_batch_{}'.format(i) for i in range(1, 6)]
CIFAR_TEST_FILE = 'test_batch'
EXACT_TEST_IMAGES = 1000  # test images 0-999 of the shared copy are exact
SPLIT_SEED = 0  # draws the held-out split, whatever --seed is

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

DEFAULTS = {
    'backbone': 'MobileNetV2',
    'image_size': 160,
    'epochs': 3,
    'batch_size': 128,
    'learning_rate': 3e-4,
    'label_smoothing': 0.1,
    'dropout': 0.2,
    'holdout': 5000,
    'train_images': 0,  # 0: every training image not held out
    'seed': 0,
    'shift': 1,
    'flips': True,
    'mirror': True,
}

# --preset NAME: option values that replace DEFAULTS (explicit options win).
PRESETS = {
    'default': {},
    # The task's 87% in a few minutes (MobileNetV2): small input, a late
    # cut, part of the data.
    'fast': {'backbone': 'MobileNetV2', 'cut': 'block_13_project_BN',
             'image_size': 128, 'epochs': 2, 'train_images': 30000,
             'holdout': 2000, 'flips': False},
}

# Extraction calls predict on this many batches at a time: enough to
# amortise predict's start-up, few enough to keep memory bounded.
CHUNK_BATCHES = 16

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
    """Keras' BackupAndRestore callback, its checkpoint kept after fit.

    TensorFlow 2.6 has only the experimental one, which deletes its
    checkpoint when fit ends: a run killed while saving then retrains.
    """
    if hasattr(K.callbacks, 'BackupAndRestore'):
        return K.callbacks.BackupAndRestore(directory,
                                            delete_checkpoint=False)
    return K.callbacks.experimental.BackupAndRestore(directory)


def add_switch(parser, name, default, help):
    """Add --name and --no-name (argparse's BooleanOptionalAction needs
    Python 3.9)."""
    dest = name.replace('-', '_')
    group = parser.add_mutually_exclusive_group()
    group.add_argument('--' + name, dest=dest, action='store_true',
                       help='{} (default: {})'.format(help, default))
    group.add_argument('--no-' + name, dest=dest, action='store_false')
    parser.set_defaults(**{dest: default})


# --------------------------------------------------------------- data

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
            try:
                if isinstance(inputs, list):
                    tensors[id(output)] = layer([tensors[id(t)]
                                                 for t in inputs])
                else:
                    tensors[id(output)] = layer(tensors[id(inputs)])
            except KeyError:
                raise InputError('cannot cut there: layer {} also reads a '
                                 'tensor from before the cut; choose a layer '
                                 'at a block boundary'.format(layer.name))
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
    """Build the models of the pipeline.

    Returns (extractor, trainer, stitched):
    extractor: images -> upsize -> frozen prefix (run once, cached);
    trainer: cached activations -> suffix -> head (trained);
    stitched: images -> upsize -> prefix -> suffix -> head (saved); with
    mirror, it averages its predictions on the image and on its mirror.
    """
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
    trainer = K.Model(features, classify(features), name='trainer')
    probabilities = classify(activations)
    if mirror:
        # Resizing commutes with the flip, so the mirror's activations are
        # those cached for the flipped images.
        mirrored = K.layers.Lambda(mirror_images, name='mirror')(upsized)
        probabilities = K.layers.Average(name='mirror_average')(
            [probabilities, classify(prefix(mirrored))])
    stitched = K.Model(images, probabilities, name='cifar10')
    return extractor, trainer, stitched


def distribution_strategy():
    """Return a MirroredStrategy over the GPUs if there are several.

    Otherwise the default strategy (one device).
    """
    if len(tf.config.list_logical_devices('GPU')) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def compile_model(model, learning_rate, label_smoothing, decay_steps):
    """Compile with Adam, a cosine learning-rate decay and label smoothing."""
    schedule = K.optimizers.schedules.CosineDecay(learning_rate, decay_steps)
    model.compile(
        optimizer=K.optimizers.Adam(schedule),
        loss=K.losses.CategoricalCrossentropy(label_smoothing=label_smoothing),
        metrics=['accuracy'])


def compile_for_evaluation(model):
    """Compile the saved model for evaluate(), in the one form that every
    stack loads from a Keras 2 file: a plain loss and optimizer by name (a
    schedule or a loss object's config fails in Keras 3), and accuracy as
    a metric object (Keras 3 cannot call the name 'accuracy' from it)."""
    model.compile(optimizer='adam', loss='categorical_crossentropy',
                  metrics=[K.metrics.CategoricalAccuracy(name='accuracy')])


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


def extract_features(extractor, images, batch_size,
                     chunk_batches=CHUNK_BATCHES):
    """Yield (start, float16 output) over images, chunk_batches batches
    per predict call (one call per batch would cost about a third of the
    throughput)."""
    chunk = chunk_batches * batch_size
    progress = K.utils.Progbar(len(images), unit_name='image')
    for start in range(0, len(images), chunk):
        part = images[start:start + chunk].astype('float32')
        yield start, extractor.predict(part, batch_size=batch_size,
                                       verbose=0).astype('float16')
        progress.add(len(part))


def cached_features(extractor, images, name, cache_dir, key, batch_size):
    """Return the extractor's output over images, computing it only once.

    The cache file's name holds a hash of key (backbone, cut, input size,
    prefix weights, data, flip); a JSON record beside it holds the key and
    the file's checksum, and is written last, so a truncated, corrupt or
    foreign cache is detected and rebuilt.  Returns (features, reused).
    """
    key = dict(key, data=hashlib.sha256(images.tobytes()).hexdigest(),
               shape=list(images.shape))
    path = os.path.join(cache_dir, '{}-{}.npy'.format(name, digest(key)))
    record_path = path[:-len('.npy')] + '.json'
    os.makedirs(cache_dir, exist_ok=True)
    with file_lock(path):
        problem = cache_problem(path, record_path, key)
        if problem is None:
            print('Reusing cached {} features: {}'.format(name, path))
            return np.load(path, mmap_mode='r'), True
        print('Extracting {} features ({}): {}'.format(name, problem, path))
        shape = (len(images),) + tuple(extractor.output.shape[1:])
        with atomic_path(path) as temporary:
            features = np.lib.format.open_memmap(temporary, mode='w+',
                                                 dtype='float16', shape=shape)
            for start, batch in extract_features(extractor, images,
                                                 batch_size):
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


class EpochLog(K.callbacks.Callback):
    """Record each epoch's metrics and wall seconds of training, in memory
    and in path (JSON), so that a resumed run keeps the epochs before its
    interruption."""

    def __init__(self, path):
        """Load the epochs a killed run recorded at path, if any."""
        super().__init__()
        self.path = path
        self.epochs = []
        with contextlib.suppress(OSError, ValueError):
            with open(path) as f:
                self.epochs = json.load(f)

    def on_train_begin(self, logs=None):
        """Start the clock where the recorded epochs left it."""
        done = self.epochs[-1]['seconds'] if self.epochs else 0
        self.start = time.time() - done

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


def machine_description():
    """Return versions and CPU facts for the experiment log."""
    cpu = platform.processor()
    with contextlib.suppress(OSError):
        with open('/proc/cpuinfo') as f:
            names = [line.split(':', 1)[1].strip() for line in f
                     if line.startswith('model name')]
        cpu = names[0] if names else cpu
    package, version = keras_stack().split()
    return {'python': platform.python_version(), 'tensorflow': tf.__version__,
            'keras': version, 'legacy_keras': package == 'tf_keras',
            'numpy': np.__version__, 'cpu': cpu, 'cores': os.cpu_count(),
            'script_sha256': sha256_of_file(os.path.abspath(__file__))}


def keras_stack():
    """Return the Keras package in use and its version, e.g. keras 3.15.1
    (tf_keras when TF_USE_LEGACY_KERAS=1)."""
    package = ('tf_keras' if os.environ.get('TF_USE_LEGACY_KERAS') == '1'
               else 'keras')
    return '{} {}'.format(package, metadata.version(package))


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


def append_record(log_path, record):
    """Append one JSON line to the experiment log."""
    with file_lock(log_path):
        with open(log_path, 'a') as f:
            f.write(json.dumps(record, sort_keys=True) + '\n')


def check_writable(directory, option):
    """Fail early, before any long work, if directory is not writable."""
    try:
        os.makedirs(directory, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as error:
        raise InputError('{}: cannot write to {} ({}); choose a writable '
                         'location'.format(option, directory, error.strerror))


def load_weights_argument(weights):
    """Map the --weights option to Keras' weights argument."""
    if weights == 'none':
        return None
    if weights != 'imagenet' and not os.path.isfile(weights):
        raise InputError('--weights {}: no such file; pass a local Keras '
                         'weight file, imagenet or none'.format(weights))
    return weights


class CachedBatches(K.utils.Sequence):
    """Shuffled float32 batches read from cached float16 activations.

    parts: arrays of activations of the same images (e.g. as is and
    flipped); every epoch visits each image in each part once.  Reading
    batch by batch keeps memory bounded: Keras would copy whole arrays.
    shift: translate each map by up to this many cells (edges repeated),
    drawn anew every epoch.  A cell of an n x n map spans 32/n of the
    original 32 pixels (3.2 for a 10x10 map): one cell is close to the
    usual 4-pixel pad-and-crop augmentation of CIFAR training.
    Epoch e's order and shifts depend on (seed, e) alone, so a run resumed
    at first_epoch draws what the uninterrupted run would have.
    """

    def __init__(self, parts, labels, batch_size, seed, shift=0,
                 first_epoch=0):
        """Hold the parts (memory-mapped), one-hot labels and the seed."""
        super().__init__()
        self.parts, self.labels, self.batch_size = parts, labels, batch_size
        self.shift, self.seed = shift, seed
        self.epoch = first_epoch - 1
        self.on_epoch_end()

    def __len__(self):
        """Batches per epoch."""
        return -(-len(self.order) // self.batch_size)

    def __getitem__(self, index):
        """Return batch number index: (activations, labels)."""
        batch = slice(index * self.batch_size, (index + 1) * self.batch_size)
        part, row = np.divmod(self.order[batch], len(self.labels))
        x = np.stack([self.parts[p][r] for p, r in zip(part, row)])
        if self.shift:
            s = self.shift
            height, width = x.shape[1:3]
            padded = np.pad(x, ((0, 0), (s, s), (s, s), (0, 0)), mode='edge')
            x = np.stack([image[dy:dy + height, dx:dx + width] for image,
                          (dy, dx) in zip(padded, self.offsets[batch])])
        return x.astype('float32'), self.labels[row]

    def on_epoch_end(self):
        """Draw the next epoch's order of (part, image) pairs, and shifts."""
        self.epoch += 1
        rng = np.random.default_rng([self.seed, self.epoch])
        self.order = rng.permutation(len(self.parts) * len(self.labels))
        self.offsets = rng.integers(0, 2 * self.shift + 1,
                                    (len(self.order), 2))


@contextlib.contextmanager
def stage(name, report):
    """Record a stage's wall seconds, and the peak memory at its end."""
    start = time.time()
    yield
    report['timings'][name] = time.time() - start
    report['stage_peak_memory_mib'][name] = peak_memory_mib()


def train(args, report):
    """Run the whole pipeline for parsed command-line args, filling the
    run's record (report) as each stage ends."""
    directories = [os.path.abspath(directory) for directory in
                   (os.path.dirname(args.output), args.cache_dir,
                    os.path.dirname(args.log))]
    for directory, option in zip(directories,
                                 ('--output', '--cache-dir', '--log')):
        check_writable(directory, option)
    remove_stale_temporaries(directories)
    report.update(timings={}, stage_peak_memory_mib={})
    set_random_seed(args.seed)
    strategy = distribution_strategy()

    with stage('load_data', report), download_errors():
        (x_train, y_train), (x_test, y_test) = load_cifar10(args.data_dir)
        holdout_index, fit_index = split_indices(
            len(x_train), args.holdout, args.train_images)

    with stage('build', report), strategy.scope(), download_errors():
        cut = args.cut or BACKBONES[args.backbone][1]
        extractor, trainer, stitched = build_models(
            args.backbone, args.image_size,
            load_weights_argument(args.weights), cut, args.dropout,
            args.mirror)
        key = extractor_key(extractor, args.backbone, cut, args.image_size)

    report.update(cut=cut, train_images=len(fit_index),
                  feature_shape=list(extractor.output.shape[1:]),
                  replicas=strategy.num_replicas_in_sync,
                  trainable_params=int(sum(np.prod(w.shape) for w in
                                           trainer.trainable_weights)),
                  cache_reused={}, cache_mib={})

    def features_of(name, images):
        """Cached prefix activations of images; notes reuse and size."""
        features, report['cache_reused'][name] = cached_features(
            extractor, np.ascontiguousarray(images), name, args.cache_dir,
            key, args.batch_size)
        report['cache_mib'][name] = os.path.getsize(
            features.filename) / 2 ** 20
        return features

    with stage('extract', report):
        # Horizontal flips, the usual CIFAR augmentation, are cached once
        # as a second copy of the training images.
        fit_parts = [features_of('fit', x_train[fit_index])]
        if args.flips:
            fit_parts.append(features_of('fit_flipped',
                                         x_train[fit_index][:, :, ::-1]))
        holdout = np.asarray(features_of('holdout', x_train[holdout_index]),
                             'float32')

    # A run killed before its model was saved leaves its last completed
    # epoch in backup; the same command resumes from it (one run at a time:
    # the lock).
    backup = os.path.join(args.cache_dir, 'backup-' + digest(
        [key, {name: value for name, value in vars(args).items()
               if name not in ('output', 'log', 'note')}]))
    with file_lock(backup):
        with stage('train', report):
            epoch_log = EpochLog(os.path.join(backup, 'epochs.json'))
            report['resumed_after_epoch'] = len(epoch_log.epochs)
            if epoch_log.epochs:
                print('Resuming training after epoch {} of {} ({})'.format(
                    len(epoch_log.epochs), args.epochs, backup))
            batches = CachedBatches(fit_parts, one_hot(y_train[fit_index]),
                                    args.batch_size, args.seed, args.shift,
                                    first_epoch=len(epoch_log.epochs))
            with strategy.scope():
                compile_model(trainer, args.learning_rate,
                              args.label_smoothing, len(batches) * args.epochs)
                compile_for_evaluation(stitched)
            # shuffle=False: the batches shuffle themselves (Keras 2 would
            # also reorder them, differently after a resume).
            holdout_labels = one_hot(y_train[holdout_index])
            trainer.fit(batches, epochs=args.epochs, shuffle=False,
                        validation_data=(holdout, holdout_labels),
                        callbacks=[backup_and_restore(backup), epoch_log],
                        verbose=1)
            report['epochs'] = epoch_log.epochs

        with stage('save', report):
            check = x_train[holdout_index][:VERIFY_IMAGES]
            views = [holdout[:VERIFY_IMAGES]]
            if args.mirror:
                views.append(extractor.predict(check[:, :, ::-1], verbose=0))
            save_verified(stitched, check, predict_views(trainer, views),
                          args.output)
            report['seconds_to_saved_model'] = seconds_since_process_start()
            shutil.rmtree(backup, ignore_errors=True)  # nothing to resume

    with stage('evaluate', report):  # flipped and test features: for this
        sets = {'holdout': (x_train[holdout_index], y_train[holdout_index]),
                'test': (x_test, y_test)}
        views = {'single': {}, 'mirror_average': {}}
        for name, (images, labels) in sets.items():
            single = holdout if name == 'holdout' else features_of(
                name, images)
            mirrored = features_of(name + '_flipped', images[:, :, ::-1])
            for view, parts in (('single', [single]),
                                ('mirror_average', [single, mirrored])):
                predicted = predict_views(trainer, parts).argmax(1)
                views[view][name] = accuracy_of(predicted, labels)
                if name == 'test':
                    views[view]['test_exact_0_999'] = accuracy_of(
                        predicted[:EXACT_TEST_IMAGES],
                        labels[:EXACT_TEST_IMAGES])
    report.update(
        accuracy=views['mirror_average' if args.mirror else 'single'],
        accuracy_by_view=views)


def predict_views(trainer, views):
    """Mean of the trainer's probabilities over views of the same images
    (cached activations of the images, of their mirrors)."""
    return np.mean([trainer.predict(np.asarray(view, 'float32'), verbose=0)
                    for view in views], axis=0)


def accuracy_of(predicted, labels):
    """Fraction of predicted classes equal to the integer labels."""
    return float(np.mean(predicted == labels))


def save_verified(stitched, images, expected, output):
    """Save stitched to output atomically, after checking the saved file.

    The reloaded model must predict on raw images the probabilities
    expected from the cached (float16) path for the same images.
    """
    with atomic_path(output) as temporary:
        stitched.save(temporary)
        reloaded = K.models.load_model(temporary)
        saved = reloaded.predict(images.astype('float32'), verbose=0)
        difference = float(np.max(np.abs(saved - expected)))
        if difference > VERIFY_TOLERANCE:
            raise RuntimeError('saved model disagrees with the trained one '
                               '(max probability difference {:.4f}); {} left '
                               'unchanged'.format(difference, output))
        print('Saved {} (reloaded; max probability difference from the '
              'cached path {:.5f})'.format(output, difference))


def parse_args(argv=None):
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--preset', default='default', choices=PRESETS,
                        help='a set of defaults: fast reaches the task\'s '
                        '87%% in minutes; options given explicitly win')
    parser.add_argument('--backbone', default=DEFAULTS['backbone'],
                        choices=sorted(BACKBONES))
    parser.add_argument('--cut', help='last frozen layer (default: a block '
                        'boundary chosen per backbone)')
    parser.add_argument('--image-size', type=int,
                        default=DEFAULTS['image_size'],
                        help='side the 32x32 images are upsized to')
    parser.add_argument('--data-dir', help='folder in the official '
                        'cifar-10-batches-py layout (default: Keras download)')
    parser.add_argument('--weights', default='imagenet',
                        help='local Keras weight file (no top), imagenet '
                        '(download) or none (random)')
    parser.add_argument('--cache-dir', default='cache',
                        help='where frozen-prefix activations are cached')
    parser.add_argument('--output', default='cifar10.h5')
    parser.add_argument('--log', default=os.path.join('results',
                                                      'experiments.jsonl'),
                        help='experiment log to append a JSON record to')
    parser.add_argument('--note', default='',
                        help='why this run was made (kept in the log)')
    parser.add_argument('--shift', type=int, default=DEFAULTS['shift'],
                        help='random translation of the cached maps, in '
                        'cells, while training (0: none)')
    add_switch(parser, 'flips', DEFAULTS['flips'],
               'cache and train on mirrored copies too')
    add_switch(parser, 'mirror', DEFAULTS['mirror'], 'the saved model '
               'averages its predictions on each image and its mirror')
    parser.add_argument('--train-images', type=int,
                        default=DEFAULTS['train_images'],
                        help='train on this many of the images not held '
                        'out (0: all)')
    for name in ('epochs', 'batch_size', 'holdout', 'seed'):
        parser.add_argument('--' + name.replace('_', '-'), type=int,
                            default=DEFAULTS[name])
    for name in ('learning_rate', 'label_smoothing', 'dropout'):
        parser.add_argument('--' + name.replace('_', '-'), type=float,
                            default=DEFAULTS[name])
    preset, _ = parser.parse_known_args(argv)
    parser.set_defaults(**PRESETS[preset.preset])
    args = parser.parse_args(argv)
    for name in ('epochs', 'batch_size', 'image_size'):
        if getattr(args, name) < 1:
            parser.error('--{} must be a positive integer'
                         .format(name.replace('_', '-')))
    if args.shift < 0 or args.train_images < 0:
        parser.error('--shift and --train-images must be 0 or more')
    if args.learning_rate <= 0 or not 0 <= args.dropout < 1 \
            or not 0 <= args.label_smoothing < 1:
        parser.error('--learning-rate must be > 0; --dropout and '
                     '--label-smoothing in [0, 1)')
    return args


def main(argv=None):
    """Command-line entry point: train, save, log.  Bad input exits 1 with
    a one-line error; any other failure keeps its traceback."""
    args = parse_args(argv)
    started = time.time()
    record = {'config': vars(args), 'machine': machine_description()}
    try:
        train(args, record)
    except InputError as error:
        sys.exit('error: {}'.format(' '.join(str(error).split())))
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
