#!/usr/bin/env python3
"""Bad input to the command line: a one-line error, nothing overwritten."""
import os
import shutil

import pytest

from conftest import TINY_ARGS, run_python, run_transfer

SENTINEL = b'a good model from an earlier run'


@pytest.fixture
def work(tmp_path):
    """A folder holding a previous cifar10.h5 that must survive."""
    (tmp_path / 'cifar10.h5').write_bytes(SENTINEL)
    return tmp_path


def assert_clean_failure(result, work, *words):
    """Non-zero exit, one 'error:' line naming words, no traceback."""
    assert result.returncode != 0
    assert 'Traceback' not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith('error:') or 'error:' in last, last
    for word in words:
        assert word in last, (word, last)
    assert (work / 'cifar10.h5').read_bytes() == SENTINEL


def test_missing_data_dir(work):
    """A --data-dir that does not exist."""
    result = run_transfer(TINY_ARGS + ['--data-dir', str(work / 'nope')],
                          work)
    assert_clean_failure(result, work, 'missing', '--data-dir')


def test_incomplete_data_dir(work, cifar_dir):
    """A --data-dir without its test batch."""
    partial = work / 'partial'
    shutil.copytree(cifar_dir, str(partial))
    os.remove(str(partial / 'test_batch'))
    result = run_transfer(TINY_ARGS + ['--data-dir', str(partial)], work)
    assert_clean_failure(result, work, 'test_batch', 'missing')


@pytest.mark.parametrize('content', [b'not a pickle',
                                     b'\x80\x04\x95\x05\x00\x00\x00\x00\x00'
                                     b'\x00\x00]\x94.'])
def test_file_that_is_not_a_cifar_batch(work, cifar_dir, content):
    """A batch file holding garbage, or a pickle of something else."""
    broken = work / 'broken'
    shutil.copytree(cifar_dir, str(broken))
    (broken / 'data_batch_3').write_bytes(content)
    result = run_transfer(TINY_ARGS + ['--data-dir', str(broken)], work)
    assert_clean_failure(result, work, 'data_batch_3',
                         'not a CIFAR-10 python batch')


def test_weights_file_of_another_model(work, cifar_dir):
    """A Keras weight file saved from a different model."""
    code = ('import tensorflow.keras as K; '
            'm = K.Sequential([K.Input((4,)), K.layers.Dense(3)]); '
            'm.save_weights("other.weights.h5")')
    assert run_python(['-c', code], work).returncode == 0
    args = TINY_ARGS + ['--data-dir', cifar_dir,
                        '--weights', str(work / 'other.weights.h5')]
    result = run_transfer(args, work)
    assert_clean_failure(result, work, '--weights', 'does not fit')


def test_weights_file_that_is_not_hdf5(work, cifar_dir):
    """A file that is no weight file at all."""
    (work / 'junk.h5').write_bytes(b'junk')
    args = TINY_ARGS + ['--data-dir', cifar_dir,
                        '--weights', str(work / 'junk.h5')]
    result = run_transfer(args, work)
    assert_clean_failure(result, work, '--weights', 'does not fit')


@pytest.mark.parametrize('option', ['--output', '--cache-dir', '--log'])
def test_unwritable_location(work, cifar_dir, option):
    """A path below a regular file cannot be written."""
    (work / 'a_file').write_bytes(b'')
    target = str(work / 'a_file' / 'inside')
    result = run_transfer(TINY_ARGS + ['--data-dir', cifar_dir, option,
                                       target], work)
    assert_clean_failure(result, work, option, 'cannot write')


@pytest.mark.parametrize('args', [['--epochs', '0'], ['--batch-size', '-4'],
                                  ['--image-size', '0'],
                                  ['--learning-rate', '-1'],
                                  ['--holdout', '0'], ['--crops', '-1'],
                                  ['--test-images', '-1'],
                                  ['--mixup', '-0.2'], ['--mixup', 'nan'],
                                  ['--weight-decay', '-1'],
                                  ['--weight-decay', 'nan'],
                                  ['--weight-decay', 'inf'],
                                  ['--backbone', 'NoSuchNet']])
def test_nonsensical_numbers(work, cifar_dir, args):
    """Zero or negative sizes, unknown backbones: refused up front."""
    result = run_transfer(TINY_ARGS + ['--data-dir', cifar_dir] + args, work)
    assert_clean_failure(result, work, args[0])


def test_failed_download_names_the_offline_options(work):
    """No data folder and no reachable server: say how to run offline."""
    env = {'KERAS_HOME': str(work / 'keras_home'),
           'https_proxy': 'http://127.0.0.1:9',
           'HTTPS_PROXY': 'http://127.0.0.1:9'}
    os.environ.update(env)
    try:
        result = run_transfer(['--weights', 'none', '--image-size', '32'],
                              work)
    finally:
        for name in env:
            del os.environ[name]
    assert_clean_failure(result, work, '--data-dir', '--weights',
                         'KERAS_HOME')
