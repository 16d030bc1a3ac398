#!/usr/bin/env python3
"""Interrupted and concurrent runs, determinism, several devices, memory."""
import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np

from conftest import (PROJECT_DIR, TINY_ARGS, describe_saved_model,
                      run_python, run_transfer)

# Runs 0-transfer's main() with one stage patched to SIGKILL the process:
# argv[1] is the stage, the rest are the command-line arguments.  Appends
# to events.jsonl, in the working folder, one line per cache part it got
# ({"part", "reused"}) and one just before the kill ({"killed", ...}).
KILLER = textwrap.dedent('''
    import json, os, signal, sys
    sys.path.insert(0, {project!r})
    transfer = __import__('0-transfer')
    stage = sys.argv[1]


    def note(**event):
        with open('events.jsonl', 'a') as f:
            f.write(json.dumps(event) + '\\n')


    def die(**event):
        note(killed=stage, **event)
        os.kill(os.getpid(), signal.SIGKILL)


    real_cached_features = transfer.cached_features

    def cached_features(extractor, images, name, *args):
        features, reused = real_cached_features(extractor, images, name,
                                                *args)
        note(part=name, reused=reused)
        return features, reused
    transfer.cached_features = cached_features

    if stage == 'extract':
        real_extract = transfer.extract_features

        def extract_features(*args):
            for count, (start, batch) in enumerate(real_extract(*args)):
                if count == 1:  # the first chunk is in the cache file
                    die(rows_written=start)
                yield start, batch
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

# Batches of 8: the 180 training images are extracted in two chunks (128
# images, then 52), so a kill between them leaves a half-written cache.
KILL_ARGS = TINY_ARGS + ['--batch-size', '8']


def last_record(work):
    """Return the last record of the experiment log in folder work."""
    with open(os.path.join(str(work), 'results', 'experiments.jsonl')) as f:
        return json.loads(f.read().splitlines()[-1])


def run_killed(stage, args, work):
    """Run the KILLER script in work, killed in stage; return its events."""
    script = work / 'killer.py'
    script.write_text(KILLER)
    events = work / 'events.jsonl'
    if events.exists():
        events.unlink()
    result = run_python([str(script), stage] + args, work)
    assert result.returncode == -9, (stage, result.stderr[-2000:])
    with open(str(events)) as f:
        events = [json.loads(line) for line in f]
    assert events[-1]['killed'] == stage, events
    return events


def test_sigkill_in_each_stage(tmp_path, cifar_dir, calibrated_weights):
    """SIGKILL while extracting, training, then saving, in one folder.

    extract: killed with the first of two chunks of the fit part written
    to its cache file: the next run extracts that part again.
    train: killed at the first batch, after every training part was
    cached: the next run reuses them all.
    save: killed with the new model file half-written: the model already
    in place is untouched (the other kills come before any saving).
    A last run completes, reusing the training parts.  (Calibrated
    weights: written activations are not zeros.)
    """
    args = KILL_ARGS + ['--data-dir', cifar_dir,
                        '--weights', calibrated_weights]
    cache = tmp_path / 'cache'
    kill, = run_killed('extract', args, tmp_path)  # in the first part
    rows = kill['rows_written']
    path, = cache.glob('*fit-*.npy')  # whatever its name
    partial = np.load(str(path))
    partial = partial.reshape(len(partial), -1)
    assert 0 < rows < len(partial)
    assert np.abs(partial[:rows]).max(1).min() > 0  # every row written
    assert not partial[rows:].any()  # none of the second chunk
    assert not list(cache.glob('fit-*.json'))  # no record: not complete

    parts = {e['part']: e['reused'] for e in
             run_killed('train', args, tmp_path) if 'part' in e}
    assert parts == {'fit': False, 'fit_flipped': False, 'holdout': False}

    (tmp_path / 'cifar10.h5').write_bytes(b'old model')  # any bytes will do
    parts = {e['part']: e['reused'] for e in
             run_killed('save', args, tmp_path) if 'part' in e}
    assert parts == {'fit': True, 'fit_flipped': True, 'holdout': True}
    assert (tmp_path / 'cifar10.h5').read_bytes() == b'old model'

    result = run_transfer(args, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    reused = last_record(tmp_path)['cache_reused']
    # No killed run reached the parts extracted for evaluation.
    assert {part for part in reused if reused[part]} == {
        'fit', 'fit_flipped', 'holdout'}, reused
    assert describe_saved_model(tmp_path) == ('Lambda', '(None, 10)', True)


def test_killed_extraction_is_extracted_again(tmp_path, cifar_dir):
    """The part whose extraction was killed is rebuilt, never reused."""
    args = KILL_ARGS + ['--data-dir', cifar_dir]
    run_killed('extract', args, tmp_path)
    result = run_transfer(args, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert not any(last_record(tmp_path)['cache_reused'].values())


# Runs 0-transfer's main() (argv[2:]) logging to the file argv[1], shared
# by the runs, one line per event in the order they happen: [pid, event,
# lock], event one of wait (for the lock), hold, extract, free.  Holding a
# lock to extract, it waits until the other run waits for that lock (or
# has died, or 60 s have passed): the two runs are sure to meet there.
SHARED = textwrap.dedent('''
    import contextlib, json, os, sys, time
    sys.path.insert(0, {project!r})
    transfer = __import__('0-transfer')
    log, held = sys.argv[1], []


    def note(event, lock):
        with open(log, 'a') as f:
            f.write(json.dumps([os.getpid(), event, lock]) + '\\n')


    def other_waits_or_died(lock):
        with open(log) as f:
            others = [e for e in map(json.loads, f) if e[0] != os.getpid()]
        return (any(e[1:] == ['wait', lock] for e in others)
                or any(not os.path.exists('/proc/%d' % e[0]) for e in others))


    real_lock = transfer.file_lock

    @contextlib.contextmanager
    def file_lock(path):
        lock = os.path.basename(path)
        note('wait', lock)
        with real_lock(path):
            note('hold', lock)
            held.append(lock)
            yield
            held.remove(lock)
            note('free', lock)
    transfer.file_lock = file_lock

    real_extract = transfer.extract_features

    def extract_features(*args):
        note('extract', held[-1])
        deadline = time.time() + 60
        while not other_waits_or_died(held[-1]) and time.time() < deadline:
            time.sleep(0.05)
        return real_extract(*args)
    transfer.extract_features = extract_features
    transfer.main(sys.argv[2:])
''').format(project=PROJECT_DIR)


def test_two_runs_at_once_share_the_cache(tmp_path, cifar_dir):
    """Two runs started together on one cache folder.

    For every cache part, one run extracts it while the other is seen
    waiting for its lock, which it gets only once the first frees it: each
    part is extracted exactly once, and reused by the other run.
    """
    script, log = tmp_path / 'shared.py', tmp_path / 'events.jsonl'
    script.write_text(SHARED)
    runs = []
    for name in ('a', 'b'):
        (tmp_path / name).mkdir()
        command = [sys.executable, str(script), str(log)] + TINY_ARGS + [
            '--data-dir', cifar_dir, '--cache-dir', str(tmp_path / 'cache')]
        runs.append(subprocess.Popen(
            command, cwd=str(tmp_path / name), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True))
    for run in runs:
        _, stderr = run.communicate(timeout=600)
        assert run.returncode == 0, stderr[-2000:]
    with open(str(log)) as f:
        events = [tuple(json.loads(line)) for line in f]
    first, second = (last_record(tmp_path / n) for n in ('a', 'b'))
    locks = {lock for _, _, lock in events if lock.endswith('.npy')}
    assert {lock.rsplit('-', 1)[0] for lock in locks} == \
        set(first['cache_reused'])
    for lock in locks:
        seen = [(pid, event) for pid, event, name in events if name == lock]
        extractors = [pid for pid, event in seen if event == 'extract']
        assert len(extractors) == 1, seen
        pids = {pid for pid, _ in seen}
        assert len(pids) == 2, seen
        extractor, = extractors
        other, = pids - {extractor}
        assert seen.index((other, 'wait')) < seen.index((extractor, 'free')) \
            < seen.index((other, 'hold')), seen
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


# Prints a line: 'MiB', the float16 activations of one image, the peak
# anonymous memory while caching the first 256 images, then while caching
# the first 1,024 (argv[1]: cache folder).  Anonymous: not backed by a
# file, so the pages of the cache's memory map do not count.
EXTRACT = textwrap.dedent('''
    import sys, threading
    import numpy as np
    sys.path.insert(0, {project!r})
    transfer = __import__('0-transfer')


    def anonymous_mib():
        with open('/proc/self/status') as f:
            return next(int(line.split()[1]) for line in f
                        if line.startswith('RssAnon:')) / 1024


    def peak_while(function, *args):
        peak, done = [anonymous_mib()], threading.Event()

        def sample():
            while not done.wait(0.002):
                peak.append(anonymous_mib())
        thread = threading.Thread(target=sample)
        thread.start()
        try:
            function(*args)
        finally:
            done.set()
            thread.join()
        return max(peak)


    # Cut after the stem at 96 px: 48x48x32 activations, 144 KiB an image.
    extractor, _, _ = transfer.build_models(
        'MobileNetV2', 96, None, 'Conv1_relu', 0.0)
    sizes = [np.prod(extractor.output.shape[1:]) * 2 / 2 ** 20]
    images = np.random.default_rng(0).integers(
        0, 256, (2048, 32, 32, 3), dtype=np.uint8)
    for count in (256, 1024, 2048):
        sizes.append(peak_while(transfer.cached_features,
                                transfer.FrozenPass(extractor, 8),
                                images[:count], str(count), sys.argv[1], {{}}))
    print('MiB', *sizes)
''').format(project=PROJECT_DIR)


def test_extraction_memory_does_not_grow_with_images(tmp_path):
    """Peak memory while caching 256 images (warming the allocator up),
    1,024, then 2,048.

    The 1,024 more images leave 144 MiB of activations.  Streamed into the
    memory-mapped cache 128 at a time (16 batches of 8), the peak grows by
    far less than half of that; holding all the outputs at once (one
    predict call, or a list of the chunks before writing) grows it by more.
    (From 256 to 1,024 images TensorFlow 2.6 without oneDNN grew by 49-57
    MiB, 2,048 then added 19: warm-up, not growth with the images.)
    """
    script = tmp_path / 'extract.py'
    script.write_text(EXTRACT)
    result = run_python([str(script), str(tmp_path / 'cache')], tmp_path)
    shutil.rmtree(str(tmp_path / 'cache'), ignore_errors=True)  # 180 MB
    assert result.returncode == 0, result.stderr[-2000:]
    line = [line for line in result.stdout.splitlines()
            if line.startswith('MiB ')][-1]
    per_image, _, small, large = map(float, line.split()[1:])
    assert large - small < 1024 * per_image / 2, \
        'peak grew {:.0f} MiB'.format(large - small)
