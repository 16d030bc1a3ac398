#!/usr/bin/env python3
"""A disk too small for the run: a one-line error before the long work,
never a bus error in the middle of it; the old model and cache stay."""
import os
import subprocess

import pytest

from conftest import TINY_ARGS, run_patched, run_transfer

OLD_MODEL = b'a good model from an earlier run'


def assert_disk_error(result, folder):
    """The run exited 1 with one error line naming folder."""
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith('error: ') and str(folder) in error, error
    return error


def test_too_little_space_stops_before_extraction(tmp_path, cifar_dir):
    """With free space read as 100 kB, the run stops before extracting
    anything, naming the folder and the bytes needed and free."""
    (tmp_path / 'cifar10.h5').write_bytes(OLD_MODEL)
    result = run_patched('''
        import collections, shutil
        Usage = collections.namedtuple('Usage', 'total used free')
        shutil.disk_usage = lambda path: Usage(10 ** 9, 10 ** 9, 10 ** 5)
    ''', TINY_ARGS + ['--data-dir', cifar_dir], tmp_path)
    error = assert_disk_error(result, tmp_path / 'cache')
    assert ' bytes on their filesystem and 100,000 are free' in error, error
    assert 'Extracting' not in result.stdout
    assert (tmp_path / 'cifar10.h5').read_bytes() == OLD_MODEL
    assert not list((tmp_path / 'cache').glob('*.npy'))


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs mounted in tmp_path (root only), unmounted after."""
    mount = tmp_path / 'small'
    mount.mkdir()
    done = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=1m', 'tmpfs',
                           str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip('cannot mount a tmpfs here: ' + done.stderr.strip())
    yield mount
    subprocess.run(['umount', str(mount)], check=True)


def test_full_disk_gives_an_error_not_a_bus_error(tmp_path, cifar_dir,
                                                  small_disk):
    """A cache folder on a 1 MiB filesystem: the run stops at the space
    check.  With the check skipped, the second cache file's allocation
    finds the disk full (96 px: 0.8 MB a part): the same kind of error,
    where a write into the memory map would have killed the process
    (SIGBUS).  The old model and cache stay; no temporary file is left."""
    (tmp_path / 'cifar10.h5').write_bytes(OLD_MODEL)
    (small_disk / 'kept.npy').write_bytes(b'an earlier cache')
    args = TINY_ARGS + ['--data-dir', cifar_dir, '--cache-dir',
                        str(small_disk), '--image-size', '96']
    checked = run_transfer(args, tmp_path)
    assert_disk_error(checked, small_disk)
    assert 'Extracting' not in checked.stdout
    unchecked = run_patched('transfer.check_space = lambda needs: None',
                            args, tmp_path)
    error = assert_disk_error(unchecked, small_disk)
    assert 'No space left on device' in error, error
    assert 'Extracting' in unchecked.stdout
    assert (tmp_path / 'cifar10.h5').read_bytes() == OLD_MODEL
    assert (small_disk / 'kept.npy').read_bytes() == b'an earlier cache'
    assert not [name for name in os.listdir(str(small_disk))
                if '.tmp' in name]
