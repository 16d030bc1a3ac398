#!/usr/bin/env python3
"""The command line end to end on tiny data: train, save, reload, grade."""
import glob
import importlib.util
import json
import os
import re
import shutil

import h5py
import numpy as np
import pytest

from conftest import (PROJECT_DIR, TINY_ARGS, describe_saved_model,
                      load_saved_model, run_python, run_transfer)


@pytest.fixture(scope='module')
def trained(tmp_path_factory, learnable_cifar_dir, calibrated_weights):
    """Run the CLI twice in one folder; return (folder, first, second).

    On data it can learn, with weights that pass the images on (random
    ones make the features zeros): a model whose accuracy tells.
    """
    work = tmp_path_factory.mktemp('run')
    args = TINY_ARGS + ['--data-dir', learnable_cifar_dir,
                        '--weights', calibrated_weights]
    first = run_transfer(args, work)
    assert first.returncode == 0, first.stderr[-3000:]
    second = run_transfer(args, work)
    assert second.returncode == 0, second.stderr[-3000:]
    return work, first, second


def records(work):
    """Return the experiment log's records in folder work."""
    with open(os.path.join(str(work), 'results', 'experiments.jsonl')) as f:
        return [json.loads(line) for line in f]


def test_run_writes_model_and_log_record(trained, transfer):
    """A run saves cifar10.h5 and appends a complete record."""
    work, _, _ = trained
    assert os.path.getsize(os.path.join(str(work), 'cifar10.h5')) > 0
    first, second = records(work)
    for key in ('config', 'machine', 'timings', 'epochs', 'accuracy',
                'peak_memory_mib', 'peak_memory_mib_at_stage_end',
                'wall_seconds', 'cpu_seconds'):
        assert key in first
    # extraction timed wherever it happens, the test set's included
    assert set(first['extraction_seconds']) == set(first['cache_reused'])
    assert 'test' in first['extraction_seconds']
    assert first['machine']['commit'].rstrip('+') == run_python(
        ['-c', 'import subprocess; print(subprocess.check_output('
         '["git", "rev-parse", "HEAD"], text=True))'], PROJECT_DIR
    ).stdout.strip()
    assert set(first['timings']) == {'load_data', 'build', 'extract',
                                     'train', 'save', 'evaluate'}
    assert set(first['accuracy']) == {'holdout', 'test', 'test_exact_0_999'}
    assert first['machine']['tensorflow'] and first['machine']['keras']
    if transfer.cpuinfo('cpu family'):  # x86: the CPU's generation, 25/17
        assert re.fullmatch(r'\d+/\d+', first['machine']['cpu_family_model'])
    assert len(first['epochs']) == 1 and 'val_accuracy' in first['epochs'][0]
    # the epoch's end on the clock of the time-to-accuracy curves
    epoch = first['epochs'][0]
    assert epoch['seconds'] < epoch['seconds_since_process_start'] \
        < first['seconds_to_saved_model']
    assert first['train_images'] == 5 * 40 - 20


def test_second_run_reuses_the_cache(trained):
    """The second run finds every cache and does not extract again."""
    work, first, second = trained
    before, after = records(work)
    assert not any(before['cache_reused'].values())
    assert all(after['cache_reused'].values())
    assert 'Extracting' in first.stdout and 'Extracting' not in second.stdout
    with open(os.path.join(PROJECT_DIR, '.gitignore')) as f:
        assert 'cache/' in f.read().split()


def test_saved_model_loads_in_a_fresh_process(trained):
    """Default load_model arguments, 0-transfer imported first."""
    work, _, _ = trained
    assert describe_saved_model(work) == ('Lambda', '(None, 10)', True)


def test_grader_file_reports_the_logged_accuracy(trained,
                                                 learnable_cifar_dir):
    """0-main.py, unchanged, on the redirected data: the accuracy it prints
    for cifar10.h5 is the test accuracy the run logged (within one of the
    40 images: the run predicts from float16 activations)."""
    work, _, _ = trained
    result = run_python([os.path.join(PROJECT_DIR, 'grade.py'),
                         '--data-dir', learnable_cifar_dir], work)
    assert result.returncode == 0, result.stderr[-3000:]
    printed = re.findall(r'accuracy: ([0-9.]+)', result.stdout)
    assert printed, result.stdout[-3000:]
    logged = records(work)[-1]['accuracy']['test']
    assert logged > 0.5  # learnt: a wrong pipeline would not come close
    assert abs(float(printed[-1]) - logged) <= 1 / 40, (printed, logged)


def test_saved_model_is_flat_and_names_its_functions(trained):
    """The saved file holds no Python bytecode (which safe mode and other
    Python versions refuse) and no nested model (which Keras 3 cannot load
    from a Keras 2 file): each Lambda names its function."""
    work, _, _ = trained
    with h5py.File(os.path.join(str(work), 'cifar10.h5'), 'r') as f:
        layers = json.loads(f.attrs['model_config'])['config']['layers']
    assert not [layer['name'] for layer in layers
                if layer['class_name'] in ('Functional', 'Model')]
    functions = {layer['name']: layer['config']['function']
                 for layer in layers if layer['class_name'] == 'Lambda'}
    assert set(functions) == {'upsize', 'mirror'}
    for function in functions.values():
        # Keras 2 writes the name (or bytecode, a list); Keras 3 a dict
        # holding the registered name, cifar10_transfer>NAME.
        name = function.get('config') if isinstance(function, dict) \
            else function
        assert isinstance(name, str), function
        assert name.split('>')[-1] in ('upsize_images', 'mirror_images')


def test_committed_model_loads_through_the_grader(tmp_path, cifar_dir):
    """0-main.py, unchanged, on this stack loads and evaluates the committed
    cifar10.h5 (saved on the task's stack, TensorFlow 2.6)."""
    shutil.copy(os.path.join(PROJECT_DIR, 'cifar10.h5'), str(tmp_path))
    result = run_python([os.path.join(PROJECT_DIR, 'grade.py'),
                         '--data-dir', cifar_dir], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r'accuracy: [0-9.]+', result.stdout), result.stdout


@pytest.mark.skipif(importlib.util.find_spec('tf_keras') is None,
                    reason='needs TensorFlow 2.21 with both Kerases')
def test_model_of_one_keras_on_the_other(trained):
    """TensorFlow 2.21's two Kerases: a file saved by tf_keras loads on
    Keras 3; one saved by Keras 3 fails on tf_keras with the error the
    README names (Keras 3 writes batch_shape, unknown to Keras 2)."""
    work, _, _ = trained
    legacy = os.environ.get('TF_USE_LEGACY_KERAS') == '1'
    result = load_saved_model(work, TF_USE_LEGACY_KERAS='0' if legacy
                              else '1')
    if legacy:
        assert result.returncode == 0, result.stderr[-3000:]
        assert result.stdout.split(' | ')[0].endswith('Lambda')
    else:
        assert result.returncode != 0
        assert "Unrecognized keyword arguments: ['batch_shape']" \
            in result.stderr, result.stderr[-3000:]


def test_grader_file_is_the_task_text():
    """0-main.py is the grader's file byte for byte."""
    expected = (
        "#!/usr/bin/env python3\n\nimport tensorflow.keras as K\n"
        "preprocess_data = __import__('0-transfer').preprocess_data\n\n"
        "# to fix issue with saving keras applications\n"
        "K.learning_phase = K.backend.learning_phase\n\n"
        "_, (X, Y) = K.datasets.cifar10.load_data()\n"
        "X_p, Y_p = preprocess_data(X, Y)\n"
        "model = K.models.load_model('cifar10.h5')\n"
        "model.evaluate(X_p, Y_p, batch_size=128, verbose=1)\n")
    with open(os.path.join(PROJECT_DIR, '0-main.py')) as f:
        assert f.read() == expected


def test_import_runs_nothing(tmp_path):
    """Importing 0-transfer trains nothing, writes nothing, prints nothing."""
    code = ('import sys; sys.path.insert(0, {!r}); '
            'm = __import__("0-transfer"); '
            'import tensorflow.keras as K; '
            'print(K.backend.learning_phase())').format(PROJECT_DIR)
    result = run_python(['-c', code], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout == '0\n'
    assert os.listdir(str(tmp_path)) == []


def test_help_lists_the_options():
    """--help documents every required option."""
    result = run_transfer(['--help'], PROJECT_DIR)
    assert result.returncode == 0
    for option in ('--backbone', '--data-dir', '--weights', '--cache-dir',
                   '--output', '--epochs', '--batch-size', '--seed'):
        assert option in result.stdout


@pytest.mark.parametrize('preset', ['fast', 'accurate'])
def test_a_preset_sets_its_defaults_and_options_win(transfer, preset):
    """A preset replaces the defaults with options its backbone knows (its
    cut is one of the backbone's layers); an explicit option wins."""
    chosen = transfer.parse_args(['--preset', preset])
    for name, value in transfer.PRESETS[preset].items():
        assert getattr(chosen, name) == value, name
    assert transfer.parse_args(['--preset', preset, '--epochs', '5']) \
        .epochs == 5
    backbone = transfer.build_backbone(chosen.backbone, 96, None)
    assert backbone.get_layer(chosen.cut)
    default = transfer.parse_args([])
    assert default.cut is None and default.flips and default.mirror
    assert default.epochs == transfer.DEFAULTS['epochs']
    # the fast preset scores the exact test images (a literal there)
    assert transfer.PRESETS['fast']['test_images'] == \
        transfer.EXACT_TEST_IMAGES


def test_fast_preset_runs_end_to_end(tmp_path, learnable_cifar_dir,
                                     calibrated_weights, transfer):
    """The fast preset on tiny data: a model the grader can load, trained
    on --train-images images without flips, scored on the first
    --test-images test images, logged as the fast preset."""
    result = run_transfer(['--preset', 'fast', '--image-size', '32',
                           '--holdout', '20', '--train-images', '100',
                           '--test-images', '25',
                           '--batch-size', '16', '--data-dir',
                           learnable_cifar_dir, '--weights',
                           calibrated_weights], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    record, = records(tmp_path)
    assert record['config']['preset'] == 'fast'
    assert record['cut'] == 'block_13_project_BN'
    assert record['train_images'] == 100
    assert set(record['cache_reused']) == {
        'fit', 'holdout', 'holdout_flipped', 'test', 'test_flipped'}
    assert len(record['epochs']) == transfer.PRESETS['fast']['epochs']
    for name in ('test', 'test_flipped'):
        cached, = glob.glob(str(tmp_path / 'cache' / (name + '-*.npy')))
        assert len(np.load(cached, mmap_mode='r')) == 25
    assert 0 < record['seconds_to_saved_model'] < record['wall_seconds'] + 60
    assert describe_saved_model(tmp_path) == ('Lambda', '(None, 10)', True)


def test_crops_cache_copies_of_the_training_images(tmp_path, cifar_dir):
    """--crops 2 caches two crop copies of the training images and of
    their mirrors, trains on them, and saves a model."""
    result = run_transfer(TINY_ARGS + ['--crops', '2', '--data-dir',
                                       cifar_dir], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    record, = records(tmp_path)
    assert set(record['cache_reused']) == {
        'fit', 'fit_flipped', 'fit_crop1', 'fit_crop1_flipped',
        'fit_crop2', 'fit_crop2_flipped', 'holdout', 'holdout_flipped',
        'test', 'test_flipped'}
    assert describe_saved_model(tmp_path) == ('Lambda', '(None, 10)', True)
