#!/usr/bin/env python3
"""Shared fixtures: the project module, tiny CIFAR-10 folders, a runner."""
import importlib
import importlib.util
import os
import pickle
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, PROJECT_DIR)

# Small, fast settings every CLI test shares: no weights, 32x32 inputs.
TINY_ARGS = ['--weights', 'none', '--image-size', '32', '--epochs', '1',
             '--batch-size', '16', '--holdout', '20']


def write_cifar_dir(path, per_batch=40, seed=0, learnable=False):
    """Write a tiny CIFAR-10 folder in the official python pickle layout.

    Random pixels and labels; learnable: an image of class c has pixels
    25 c to 25 c + 19, a class a model can tell after one short epoch.
    Protocol 4: Keras 3's restricted unpickler refuses protocol 2 pickles
    written by Python 3.
    """
    rng = np.random.default_rng(seed)
    os.makedirs(path, exist_ok=True)
    names = ['data_batch_{}'.format(i) for i in range(1, 6)] + ['test_batch']
    for name in names:
        labels = rng.integers(0, 10, per_batch)
        data = rng.integers(0, 20 if learnable else 256, (per_batch, 3072),
                            dtype=np.uint8)
        if learnable:
            data += (25 * labels[:, None]).astype(np.uint8)
        batch = {b'batch_label': name.encode(), b'labels': labels.tolist(),
                 b'data': data, b'filenames': [b'img.png'] * per_batch}
        with open(os.path.join(path, name), 'wb') as f:
            pickle.dump(batch, f, protocol=4)
    with open(os.path.join(path, 'batches.meta'), 'wb') as f:
        pickle.dump({b'label_names': [b'c%d' % i for i in range(10)]}, f,
                    protocol=4)
    return str(path)


def load_module(path, name):
    """Import the Python file at path (a script, not a package) as name."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_python(args, cwd, env=None, **kwargs):
    """Run python with args in cwd (env: the environment, default this
    process's); return the CompletedProcess."""
    env = dict(env or os.environ, TF_CPP_MIN_LOG_LEVEL='2')
    return subprocess.run([sys.executable] + list(args), cwd=str(cwd),
                          env=env, capture_output=True, text=True, **kwargs)


# Runs 0-transfer's main() after executing a patch: argv[1] is Python code
# that may replace attributes of `transfer`; the rest are CLI arguments.
PATCHED_MAIN = textwrap.dedent('''
    import os, signal, sys
    sys.path.insert(0, {project!r})
    transfer = __import__('0-transfer')
    exec(sys.argv[1])
    transfer.main(sys.argv[2:])
''').format(project=PROJECT_DIR)


def run_patched(patch, args, cwd):
    """Run the CLI with args in cwd after the patch (Python source)."""
    return run_python(['-c', PATCHED_MAIN, textwrap.dedent(patch)] + args,
                      cwd)


def load_saved_model(cwd, **env):
    """Load cwd/cifar10.h5 in a fresh process as the grader does (import
    0-transfer, default load_model arguments), with env added to the
    environment; return the CompletedProcess, which prints the class of
    the first layer, the output shape and whether the model is compiled."""
    code = ('import sys; sys.path.insert(0, {!r}); '
            '__import__("0-transfer"); import tensorflow.keras as K; '
            'm = K.models.load_model("cifar10.h5"); '
            'print(type(m.layers[1]).__name__, "|", m.output_shape, "|", '
            'm.optimizer is not None)').format(PROJECT_DIR)
    return run_python(['-c', code], cwd, env=dict(os.environ, **env))


def describe_saved_model(cwd):
    """Return (first layer's class, output shape, compiled) of the model
    that load_saved_model loads; fail if it does not load."""
    result = load_saved_model(cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    layer, shape, compiled = result.stdout.splitlines()[-1].split(' | ')
    return layer, shape, compiled == 'True'


def run_transfer(args, cwd):
    """Run 0-transfer.py with args in cwd."""
    return run_python([os.path.join(PROJECT_DIR, '0-transfer.py')] + args,
                      cwd)


@pytest.fixture(scope='session')
def transfer():
    """The 0-transfer module, imported as the grader does."""
    return importlib.import_module('0-transfer')


@pytest.fixture(scope='session')
def cifar_dir(tmp_path_factory):
    """A tiny CIFAR-10 folder (40 images per batch file)."""
    return write_cifar_dir(tmp_path_factory.mktemp('data') /
                           'cifar-10-batches-py')


@pytest.fixture(scope='session')
def learnable_cifar_dir(tmp_path_factory):
    """A tiny CIFAR-10 folder whose classes are brightness levels."""
    return write_cifar_dir(tmp_path_factory.mktemp('learnable') /
                           'cifar-10-batches-py', learnable=True)


@pytest.fixture(scope='session')
def calibrated_weights(tmp_path_factory, transfer):
    """A MobileNetV2 weight file (no top) for --weights: random, with each
    BatchNorm's statistics set to those of its input on random images.

    Random initial weights (--weights none) shrink the activations about
    tenfold a block: at block_13_project_BN they are near 1e-10, zeros in
    the float16 cache.  Calibrated, they are near 1.
    """
    K = transfer.K
    transfer.set_random_seed(0)  # the same weights whatever ran before
    backbone = K.applications.MobileNetV2(
        include_top=False, weights=None, input_shape=(32, 32, 3))
    for layer in backbone.layers:
        if isinstance(layer, K.layers.BatchNormalization):
            layer.momentum = 0.0  # moving statistics := this batch's
    images = np.random.default_rng(0).integers(0, 256, (64, 32, 32, 3))
    backbone(transfer.upsize_images(images.astype('float32'), 32,
                                    'mobilenet_v2'), training=True)
    path = str(tmp_path_factory.mktemp('weights') / 'calibrated.weights.h5')
    with warnings.catch_warnings():  # Keras 3 on numpy 2: one per weight
        warnings.simplefilter('ignore', DeprecationWarning)
        backbone.save_weights(path)
    return path
