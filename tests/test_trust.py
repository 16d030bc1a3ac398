#!/usr/bin/env python3
"""What the cache key holds, which errors become one-line messages, the
record of a run that fails after its save, stale temporary files, and
resuming a run killed during training."""
import json
import os

import numpy as np
import pytest

from conftest import TINY_ARGS, run_patched, run_python, run_transfer

OLD_MODEL = b'a good model from an earlier run'


def records(work):
    """Return the records of the experiment log in folder work."""
    path = os.path.join(str(work), 'results', 'experiments.jsonl')
    with open(path) as f:
        return [json.loads(line) for line in f]


def nearest_upsize(images, size, application):
    """Another upsizing (nearest neighbour) for the cache-key test."""
    import tensorflow as tf
    resized = tf.image.resize(images, (size, size), method='nearest')
    return getattr(tf.keras.applications, application).preprocess_input(
        resized)


def test_changed_upsizing_or_stack_gets_a_new_cache(transfer, monkeypatch):
    """Same prefix weights, another upsizing function or Keras stack: the
    key, and so the cache file, differs."""
    def key():
        """The extractor key of a freshly built model (seeded weights)."""
        transfer.set_random_seed(0)
        extractor, _, _ = transfer.build_models(
            'MobileNetV2', 32, None, 'block_13_project_BN', 0.2)
        return transfer.extractor_key(extractor, 'MobileNetV2',
                                      'block_13_project_BN', 32)

    original = key()
    monkeypatch.setattr(transfer, 'upsize_images', nearest_upsize)
    changed = key()
    assert changed['prefix_weights'] == original['prefix_weights']
    assert {name for name in original
            if original[name] != changed[name]} == {'extractor_code'}
    monkeypatch.undo()
    monkeypatch.setattr(transfer, 'keras_stack', lambda: 'keras 0.0.0')
    other_stack = key()
    assert other_stack['keras'] != original['keras']
    assert transfer.digest(other_stack) != transfer.digest(original)


def test_unexpected_errors_keep_their_traceback(tmp_path, cifar_dir):
    """A ValueError or OSError from deep inside training is a bug, not bad
    input: it exits non-zero with its traceback; the old model stays."""
    for error in ('ValueError', 'OSError'):
        work = tmp_path / error
        work.mkdir()
        (work / 'cifar10.h5').write_bytes(OLD_MODEL)
        result = run_patched('''
            def broken(self, index):
                raise {}('deep inside a batch')
            transfer.CachedBatches.__getitem__ = broken
        '''.format(error), TINY_ARGS + ['--data-dir', cifar_dir], work)
        assert result.returncode != 0
        assert 'Traceback' in result.stderr
        assert 'deep inside a batch' in result.stderr.splitlines()[-1]
        assert (work / 'cifar10.h5').read_bytes() == OLD_MODEL


def test_failure_after_the_save_still_logs_the_run(tmp_path, cifar_dir):
    """The model was replaced, then the evaluation failed: the run's record
    is in the log, with the error, and the failure is not hidden."""
    (tmp_path / 'cifar10.h5').write_bytes(OLD_MODEL)
    result = run_patched('''
        def broken(predicted, labels):
            raise RuntimeError('evaluation failed')
        transfer.accuracy_of = broken
    ''', TINY_ARGS + ['--data-dir', cifar_dir], tmp_path)
    assert result.returncode != 0 and 'Traceback' in result.stderr
    assert (tmp_path / 'cifar10.h5').read_bytes() != OLD_MODEL
    record, = records(tmp_path)
    assert record['error'] == 'RuntimeError: evaluation failed'
    assert record['seconds_to_saved_model'] > 0 and record['epochs']


def test_stale_temporaries_of_dead_runs_are_removed(tmp_path, cifar_dir):
    """A dead run's temporary files go at the next start; a live run's
    stay."""
    cache = tmp_path / 'cache'
    cache.mkdir()
    dead = [tmp_path / '.cifar10.99999999.tmp.h5',
            cache / '.fit-0123.99999999.tmp.npy']
    alive = cache / '.fit-4567.{}.tmp.npy'.format(os.getpid())
    for path in dead + [alive]:
        path.write_bytes(b'half written')
    result = run_transfer(TINY_ARGS + ['--data-dir', cifar_dir], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not any(path.exists() for path in dead)
    assert alive.exists()
    assert result.stdout.count('left by a run that died') == 2


# Where a run is killed in training: after epoch 1 was logged and
# checkpointed (at epoch 2's start), or between the two (the log comes
# first); and after how many epochs the resumed run's fit then starts.
KILLS = {
    'after_checkpoint': ('on_epoch_begin', 'if epoch == 1:', 1),
    'between_log_and_checkpoint': ('on_epoch_end', 'if epoch == 0:', 0),
}


@pytest.mark.parametrize('kill', sorted(KILLS))
def test_run_killed_in_training_resumes(transfer, tmp_path, cifar_dir, kill):
    """SIGKILL in epoch 2 of 3, or between epoch 1's log entry and its
    checkpoint; the same command again continues where the checkpoint
    left off and saves the model an uninterrupted run saves (predictions
    equal to 1e-4; a fast learning rate makes any lost or repeated step
    show), with the same epochs in its record.  Dropout is off: its random
    state is not restored, so with dropout a resumed run is equivalent,
    not identical."""
    method, condition, resumed_after = KILLS[kill]
    args = TINY_ARGS[:] + ['--data-dir', cifar_dir, '--dropout', '0',
                           '--learning-rate', '0.01']
    args[args.index('--epochs') + 1] = '3'
    killed, whole = tmp_path / 'killed', tmp_path / 'whole'
    killed.mkdir()
    whole.mkdir()
    result = run_patched('''
        class Killer(transfer.EpochLog):
            def {method}(self, epoch, logs=None):
                super().{method}(epoch, logs)
                {condition}
                    os.kill(os.getpid(), signal.SIGKILL)
        transfer.EpochLog = Killer
    '''.format(method=method, condition=condition), args, killed)
    assert result.returncode == -9, result.stderr[-3000:]
    assert not (killed / 'results' / 'experiments.jsonl').exists()
    resumed = run_transfer(args, killed)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert 'Resuming training after epoch 1 of 3' in resumed.stdout
    assert run_transfer(args, whole).returncode == 0
    after, = records(killed)
    reference, = records(whole)
    assert (after['resumed_after_epoch'], reference['resumed_after_epoch']) \
        == (resumed_after, 0)
    assert [e['epoch'] for e in after['epochs']] == [1, 2, 3]
    for field in ('loss', 'val_accuracy'):
        np.testing.assert_allclose([e[field] for e in after['epochs']],
                                   [e[field] for e in reference['epochs']],
                                   atol=1e-4)
    images = np.random.default_rng(0).integers(0, 256, (32, 32, 32, 3))
    predictions = [transfer.K.models.load_model(str(work / 'cifar10.h5'))
                   .predict(images.astype('float32'), verbose=0)
                   for work in (killed, whole)]
    np.testing.assert_allclose(*predictions, atol=1e-4)
    assert not [path for path in (killed / 'cache').glob('backup-*')
                if path.is_dir()]


def test_run_killed_while_saving_keeps_its_training(tmp_path, cifar_dir):
    """SIGKILL while the model is being saved: the checkpoint of the last
    epoch survives, so the same command saves without training again."""
    args = TINY_ARGS + ['--data-dir', cifar_dir]
    result = run_patched('''
        def save(model, path, *args, **kwargs):
            os.kill(os.getpid(), signal.SIGKILL)
        transfer.K.Model.save = save
    ''', args, tmp_path)
    assert result.returncode == -9
    resumed = run_transfer(args, tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert 'Resuming training after epoch 1 of 1' in resumed.stdout
    record, = records(tmp_path)
    assert record['resumed_after_epoch'] == 1 and len(record['epochs']) == 1
