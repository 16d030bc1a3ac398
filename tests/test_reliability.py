#!/usr/bin/env python3
"""Interrupted and concurrent runs, determinism, several devices, memory."""
import hashlib
import json
import os
import subprocess
import sys
import textwrap

from conftest import (PROJECT_DIR, TINY_ARGS, describe_saved_model,
                      run_python, run_transfer)

# Runs 0-transfer's main() with one stage patched to SIGKILL the process:
# argv[1] is the stage, the rest are the command-line arguments.
KILLER = textwrap.dedent('''
    import os, signal, sys
    sys.path.insert(0, {project!r})
    transfer = __import__('0-transfer')
    stage = sys.argv[1]


    def die():
        os.kill(os.getpid(), signal.SIGKILL)


    if stage == 'extract':
        real_extract = transfer.extract_features

        def extract_features(*args):
            for item in real_extract(*args):
                die()  # the temporary cache file exists, not yet filled
                yield item
        transfer.extract_features = extract_features
    elif stage == 'train':
        class Killer(transfer.EpochLog):
            def on_train_batch_end(self, batch, logs=None):
                die()
        transfer.EpochLog = Killer
    elif stage == 'save':
        real_save = transfer.K.Model.save

        def save(model, path, *args, **kwargs):
            real_save(model, path, *args, **kwargs)
            os.truncate(path, os.path.getsize(path) // 2)
            die()
        transfer.K.Model.save = save
    transfer.main(sys.argv[2:])
''').format(project=PROJECT_DIR)


def sha256(path):
    """Return the SHA-256 of a file."""
    with open(str(path), 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def last_record(work):
    """Return the last record of the experiment log in folder work."""
    with open(os.path.join(str(work), 'results', 'experiments.jsonl')) as f:
        return json.loads(f.read().splitlines()[-1])


def test_sigkill_in_each_stage_keeps_the_old_model(tmp_path, cifar_dir):
    """Killed while extracting, training or saving: old model intact.

    No half-written cache is trusted, and the next run completes, reusing
    the caches that were completed before the kill.
    """
    args = TINY_ARGS + ['--data-dir', cifar_dir]
    assert run_transfer(args, tmp_path).returncode == 0
    good = sha256(tmp_path / 'cifar10.h5')
    other_seed = args + ['--seed', '1']  # new split and weights: new caches
    script = tmp_path / 'killer.py'
    script.write_text(KILLER)
    for stage in ('extract', 'train', 'save'):
        result = run_python([str(script), stage] + other_seed, tmp_path)
        assert result.returncode == -9, (stage, result.stderr[-2000:])
        assert sha256(tmp_path / 'cifar10.h5') == good, stage
        if stage == 'extract':
            assert 'Extracting fit features' in result.stdout
        else:  # the run killed in extraction left nothing trusted
            assert 'Reusing' in result.stdout or stage == 'train'
    result = run_transfer(other_seed, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    reused = last_record(tmp_path)['cache_reused']
    # Training parts were completed before the later kills; the test part
    # is extracted only after saving, which no killed run reached.
    assert reused == {'fit': True, 'fit_flipped': True, 'holdout': True,
                      'test': False}
    assert sha256(tmp_path / 'cifar10.h5') != good
    assert describe_saved_model(tmp_path) == ('Lambda', '(None, 10)', True)


def test_killed_extraction_is_extracted_again(tmp_path, cifar_dir):
    """The part whose extraction was killed is rebuilt, never reused."""
    args = TINY_ARGS + ['--data-dir', cifar_dir]
    script = tmp_path / 'killer.py'
    script.write_text(KILLER)
    killed = run_python([str(script), 'extract'] + args, tmp_path)
    assert killed.returncode == -9
    result = run_transfer(args, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert not any(last_record(tmp_path)['cache_reused'].values())


def test_two_runs_at_once_share_the_cache(tmp_path, cifar_dir):
    """Both finish; each cache part is extracted by exactly one of them."""
    cache = str(tmp_path / 'cache')
    runs = []
    for name in ('a', 'b'):
        (tmp_path / name).mkdir()
        command = [sys.executable, os.path.join(PROJECT_DIR, '0-transfer.py')]
        command += TINY_ARGS + ['--data-dir', cifar_dir, '--cache-dir', cache]
        runs.append(subprocess.Popen(
            command, cwd=str(tmp_path / name), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True))
    for run in runs:
        _, stderr = run.communicate(timeout=600)
        assert run.returncode == 0, stderr[-2000:]
    first, second = (last_record(tmp_path / n) for n in ('a', 'b'))
    for part in first['cache_reused']:
        assert {first['cache_reused'][part],
                second['cache_reused'][part]} == {True, False}, part
    assert first['accuracy'] == second['accuracy']


def test_same_seed_same_result(tmp_path, cifar_dir):
    """Two runs with one seed on one machine (shifts on): equal accuracies.

    Losses may differ in the last bits (multithreaded float reductions on
    the CPU are not ordered), so they are compared to 1e-4 relative.
    """
    records = []
    for name in ('a', 'b'):
        (tmp_path / name).mkdir()
        args = TINY_ARGS + ['--data-dir', cifar_dir, '--seed', '3',
                            '--epochs', '2', '--shift', '1']
        assert run_transfer(args, tmp_path / name).returncode == 0
        records.append(last_record(tmp_path / name))
    first, second = records
    assert first['accuracy'] == second['accuracy']
    for a, b in zip(first['epochs'], second['epochs']):
        assert abs(a['loss'] - b['loss']) <= 1e-4 * abs(a['loss'])


MIRRORED = textwrap.dedent('''
    import sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices('CPU')[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    sys.path.insert(0, {project!r})
    transfer = __import__('0-transfer')
    # Stand in two logical CPUs for two GPUs.
    real_list = tf.config.list_logical_devices
    tf.config.list_logical_devices = lambda kind=None: real_list('CPU')
    real_mirrored = tf.distribute.MirroredStrategy
    tf.distribute.MirroredStrategy = (
        lambda: real_mirrored(['/cpu:0', '/cpu:1']))
    transfer.main(sys.argv[1:])
''').format(project=PROJECT_DIR)


def test_two_devices_train_with_mirrored_strategy(tmp_path, cifar_dir):
    """Two logical devices: MirroredStrategy, and a model that loads."""
    script = tmp_path / 'mirrored.py'
    script.write_text(MIRRORED)
    result = run_python([str(script)] + TINY_ARGS + ['--data-dir',
                                                     cifar_dir], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert last_record(tmp_path)['replicas'] == 2
    assert describe_saved_model(tmp_path) == ('Lambda', '(None, 10)', True)


EXTRACT = textwrap.dedent('''
    import resource, sys
    import numpy as np
    sys.path.insert(0, {project!r})
    transfer = __import__('0-transfer')
    extractor, _, _ = transfer.build_models(
        'MobileNetV2', 128, None, 'block_13_project_BN', 0.0)
    images = np.random.default_rng(0).integers(
        0, 256, (int(sys.argv[1]), 32, 32, 3), dtype=np.uint8)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    transfer.cached_features(extractor, images, 'part', sys.argv[2],
                             {{}}, batch_size=64)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print((after - before) / 1024)
''').format(project=PROJECT_DIR)


def test_extraction_memory_does_not_grow_with_images(tmp_path):
    """Peak memory of extraction: 500 images vs 2,500 images.

    Upsized to 128x128 in float32, 2,000 more images would take 393 MB at
    once; streamed in batches, the peak grows by far less.
    """
    script = tmp_path / 'extract.py'
    script.write_text(EXTRACT)
    growth = []
    for count in (500, 2500):
        result = run_python([str(script), str(count),
                             str(tmp_path / str(count))], tmp_path)
        assert result.returncode == 0, result.stderr[-2000:]
        growth.append(float(result.stdout.split()[-1]))
    assert growth[1] - growth[0] < 100, growth
