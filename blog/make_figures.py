#!/usr/bin/env python3
"""Render the paper and README.md's results from the log; draw figures.

One command regenerates everything in blog/ and README.md's results:
    .venv/bin/python blog/make_figures.py \
        --data-dir ../shared/cifar-10-batches-py

The TEXT needs nothing but results/experiments.jsonl and results/*.json
and *.txt: no CIFAR data, no TensorFlow, no matplotlib (`--text-only`
renders just that).  It is blog/paper.md, rendered from
blog/paper.template.md, and the results section of README.md: the lines
between README_START and README_END, rendered from
blog/readme_results.template.md (same placeholders).  The figures drawn
from the log need matplotlib; the two drawn from the saved model's
predictions (predictions.png, confusion_matrix.png) also need --data-dir
and TensorFlow.

Placeholders of the template, each replaced by a value computed from the
log or the results (an unknown name, or a run lacking the value, stops the
rendering with a message):

    {{name}}              a FIXED value (targets, the sweep's design), a
                          DERIVED value (tables, comparisons), or else a
                          RUN_FIELDS value of the reported run
    {{run4.field}}        RUN_FIELDS value of run 4 (1-based log order);
                          {{run4.number}} is its number in the log
    {{reported.field}}    ... of a run named by its role (NAMED_RUNS: the
                          reported run, the benchmarked run, the first run
                          of the cut sweep, the reported fast run)
    {{runs2-6.field}}     its range over runs 2 to 6 ("min to max"; runs
                          lacking the field are left out); {{runs.field}}
                          over every run
    {{benchmark.field}}   BENCHMARK_FIELDS value of results/benchmark.json
                          (any results/NAME.json is source NAME, its
                          fields those of RESULT_FIELDS[NAME] if any:
                          {{throughput.field}}, {{time_to_accuracy.field}})

RUN_FIELDS also answer accuracy_KEY (record['accuracy'][KEY] as a
percentage) and config_KEY (record['config'][KEY] as is), so a new record
field is usable without code.  To add a value, add an entry to FIXED,
RUN_FIELDS, BENCHMARK_FIELDS or a @derived function; to add a table, a
@derived function returning markdown_table(columns, rows); then use its
name in the template.  Tables of runs picked by a property (the cut sweep,
the fast preset, the seeds of the default) are table_or(field_columns(...),
rows, what to say while no such run has finished): a run still running
shows as a missing row or a "pending" sentence, never as an error.  The
benchmark's race logs its fast and default runs (notes starting with
RACE_NOTE); they are reported from results/time_to_accuracy.json, not as
runs of the fast preset or of the default.  Text files of results/ (the
grader's output) are Sources.texts.
"""
import argparse
import functools
import glob
import hashlib
import json
import math
import os
import re
import subprocess
import sys

BLOG_DIR = os.path.dirname(os.path.abspath(__file__))
PROJECT_DIR = os.path.dirname(BLOG_DIR)
CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog',
           'horse', 'ship', 'truck']
EXACT = 1000  # test images 0-999 of the shared copy are exact
CIFAR_TEST_IMAGES = 10000
CIFAR_SIDE = 32  # pixels per side of a CIFAR-10 image
TARGET = 0.87  # the task's held-out accuracy target
# Input pixels per cell of the cached map, for cuts whose stride we know
# (MobileNetV2's old default cut: the output of its last stride-2 block).
CUT_STRIDES = {'block_13_project_BN': 32}
# The cut sweep: its runs have these options and a note starting with
# SWEEP_NOTE; its cuts are listed so that one still running shows as such.
SWEEP_OPTIONS = {'train_images': 10000, 'epochs': 4}
SWEEP_NOTE = 'cut sweep'
SWEEP_CUTS = ['block_6_project_BN', 'block_10_project_BN',
              'block_13_project_BN']
# The cached map (cells, cells, channels) of the sweep's cuts at 160 px,
# for records logged before 'feature_shape' was.
MAPS_AT_160 = {'block_6_project_BN': [10, 10, 64],
               'block_10_project_BN': [10, 10, 96],
               'block_13_project_BN': [5, 5, 160]}
# The targets set for the default configuration (the reported run's: see
# is_default_run), whose seeds are compared with each other.
DEFAULT_TARGETS = {'holdout': 0.95, 'seeds': (0, 1), 'exact': 0.95,
                   'wall_minutes': 45, 'peak_gib': 8, 'cache_gb': 10}
# MobileNetV2's inverted-residual blocks are block_1 ... block_16.
MOBILENET_BLOCKS = 16
# The grader's output for the reported run's cifar10.h5.
GRADE = 'grade.txt'
# Stages of a run, in order, as its record's 'timings' name them.
STAGES = [('load_data', 'loading'), ('build', 'building'),
          ('extract', 'extraction'), ('train', 'training'),
          ('save', 'saving'), ('evaluate', 'test evaluation')]
# The fast preset's target: TARGET on test images 0-999, saved within
# this many seconds of the process start; the grader's output for it.
FAST_SECONDS = 240
FAST_GRADE = 'grade_fast.txt'
TWO_SEED_POINTS = 1  # a smaller difference needs two seeds to be a finding
# Configuration keys that are not options of a run's computation.
NOT_OPTIONS = {'note', 'log', 'output', 'cache_dir', 'data_dir', 'weights',
               'preset'}
# Paths to shared files, which runs reach by different paths: the same
# file if the same name.
SHARED_FILES = ('data_dir', 'weights')
PLACEHOLDER = re.compile(r'{{([\w.-]+)}}')
# README.md's results section is the rendering of README_TEMPLATE between
# these two lines.
README_TEMPLATE = 'readme_results.template.md'
README_START = ('<!-- results: generated by blog/make_figures.py from '
                'blog/readme_results.template.md -->')
README_END = '<!-- end of generated results -->'
# The benchmark's race (results/time_to_accuracy.json): the notes of the
# runs it logs start with RACE_NOTE; its methods, as the text names them.
RACE_NOTE = 'benchmark race:'
RACE_METHODS = {'fast': 'fast preset', 'default': 'default',
                'usual': 'usual method'}
# results/benchmark.json assumed a Zen 5 core's fp32 FLOP per cycle; the
# Zen 4 (AMD CPU family 25) of its session runs its widest vector
# instructions on datapaths half as wide: 2 (multiply-add) x 8 lanes x 2
# FMA pipes per cycle.
ZEN4 = {'family': 25, 'flop_per_cycle': 2 * 8 * 2}


class Missing(LookupError):
    """A record or result lacks what a value needs (older or failed run)."""


class RenderError(ValueError):
    """The template names values that cannot be computed."""


def dig(data, *keys):
    """Return data[key1][key2]...; raise Missing if any is absent or None."""
    for key in keys:
        try:
            data = data[key]
        except (KeyError, IndexError, TypeError):
            raise Missing('no {}'.format('/'.join(map(str, keys))))
    if data is None:
        raise Missing('{} is empty'.format('/'.join(map(str, keys))))
    return data


# ---------------------------------------------------------------- sources

class Sources:
    """Everything the text is computed from: the log's records (oldest
    first), the results' JSON files by name (file stem) and their text
    files (such as the grader's output) by file name."""

    def __init__(self, records, results, texts=None):
        """Hold the records, the results and the texts."""
        self.records = records
        self.results = results
        self.texts = texts or {}

    @property
    def reported(self):
        """The reported run: see reported_run."""
        return reported_run(self.records)

    def result(self, name):
        """Return results/NAME.json's content or raise Missing."""
        if name not in self.results:
            raise Missing('no results/{}.json'.format(name))
        return self.results[name]


def load_records(path):
    """Return the experiment log's records, oldest first."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def load_sources(log_path, results_dir):
    """Read the log, every results_dir/*.json and results_dir/*.txt."""
    results, texts = {}, {}
    for path in sorted(glob.glob(os.path.join(results_dir, '*.json'))):
        with open(path) as f:
            results[os.path.splitext(os.path.basename(path))[0]] = json.load(f)
    for path in sorted(glob.glob(os.path.join(results_dir, '*.txt'))):
        with open(path) as f:
            texts[os.path.basename(path)] = f.read()
    return Sources(load_records(log_path), results, texts)


def preset(record):
    """The run's --preset ('default' for runs before presets)."""
    return record['config'].get('preset') or 'default'


def reported_run(records):
    """The last run on real data, without a preset, that wrote the
    default cifar10.h5."""
    real = [r for r in records if r['config'].get('data_dir')
            and r['config'].get('output') == 'cifar10.h5'
            and preset(r) == 'default' and 'accuracy' in r]
    return (real or records)[-1]


def benchmark_run(sources):
    """The run results/benchmark.json compared itself with (named by its
    finish time), which section 3.3 races against the no-cache method."""
    finished = dig(sources.result('benchmark'), 'time_to_87', 'run_finished')
    for record in sources.records:
        if record.get('finished') == finished:
            return record
    raise Missing('no run finished at {}, the benchmark\'s'.format(finished))


def run_cut(record):
    """The last frozen layer of a run, as resolved by the run (a config
    says None for its backbone's default cut)."""
    return record.get('cut') or record['config'].get('cut')


def is_sweep_run(record):
    """Whether a finished run belongs to the cut sweep."""
    config = record['config']
    return ('accuracy' in record
            and all(config.get(k) == v for k, v in SWEEP_OPTIONS.items())
            and (config.get('note') or '').lower().startswith(SWEEP_NOTE))


def is_race_run(record):
    """Whether the benchmark's race logged the run (see RACE_NOTE)."""
    return (record['config'].get('note') or '').startswith(RACE_NOTE)


def computation(record):
    """What a run computed, for comparing runs: its options (cut resolved)
    but its seed and NOT_OPTIONS, and the SHARED_FILES by file name."""
    config = options(record)
    kept = {k: v for k, v in config.items()
            if k not in NOT_OPTIONS and k != 'seed'}
    kept.update((k, config[k] and os.path.basename(config[k].rstrip('/')))
                for k in SHARED_FILES if k in config)
    return kept


def is_default_run(record, reported):
    """Whether a finished run on real data, without a preset, has the
    default configuration: the reported run's computation (any seed,
    output, log, note or cache folder)."""
    return ('accuracy' in record and preset(record) == 'default'
            and record['config'].get('data_dir')
            and computation(record) == computation(reported))


# ------------------------------------------------------- per-run values

def percent(value):
    """Format an accuracy in [0, 1] as a percentage with two decimals."""
    return '{:.2f}%'.format(100 * value)


def accuracy(record, key):
    """The record's accuracy of that name, in [0, 1]."""
    return dig(record, 'accuracy', key)


def flip_parts(record):
    """How many copies of each training image are cached and trained on:
    2 with horizontal flips (older records: always), else 1."""
    return 2 if record['config'].get('flips', True) else 1


def extracted_images(record):
    """Images the frozen prefix ran over before training: the training
    images (and their flips) and the held-out split."""
    return (flip_parts(record) * dig(record, 'train_images')
            + dig(record, 'config', 'holdout'))


def setup_seconds(record):
    """Seconds spent before training: loading, building, extraction."""
    return sum(dig(record, 'timings', stage)
               for stage in ('load_data', 'build', 'extract'))


def first_epoch_at(record, target):
    """The first epoch whose held-out accuracy reached target."""
    for epoch in record.get('epochs') or []:
        if epoch['val_accuracy'] >= target:
            return epoch
    raise Missing('held-out accuracy never reached {}'.format(target))


def time_to(record, target):
    """Seconds from the start until the held-out accuracy first reached
    target (extraction included)."""
    return setup_seconds(record) + first_epoch_at(record, target)['seconds']


def feature_shape(record):
    """The cached map's shape [cells, cells, channels]: as logged, or for
    the sweep's cuts at 160 px (MAPS_AT_160) when the record predates it."""
    if record.get('feature_shape'):
        return record['feature_shape']
    if (record['config'].get('image_size') == 160
            and run_cut(record) in MAPS_AT_160):
        return MAPS_AT_160[run_cut(record)]
    raise Missing('no feature_shape, and no known map for cut {} at {} px'
                  .format(run_cut(record), record['config'].get('image_size')))


def map_side(record):
    """Cells per side of the cached map: as logged (feature_shape), else
    input size / the cut's stride."""
    try:
        return feature_shape(record)[0]
    except Missing:
        pass
    config = record['config']
    cut = run_cut(record)
    if cut not in CUT_STRIDES:
        raise Missing('stride of cut {} unknown: add it to CUT_STRIDES'
                      .format(cut))
    side, remainder = divmod(config['image_size'], CUT_STRIDES[cut])
    if remainder:
        raise Missing('{} px is not a multiple of the stride'
                      .format(config['image_size']))
    return side


def wall_times_cores(record):
    """True when the record has no CPU time (older runs): its CPU-minutes
    can only be estimated as wall time times cores, an upper bound."""
    return 'cpu_seconds' not in record


def cpu_or_wall_cores_minutes(record):
    """CPU-minutes, or wall minutes times cores when no CPU time was
    logged (see wall_times_cores)."""
    if wall_times_cores(record):
        return dig(record, 'wall_seconds') / 60 * record['machine']['cores']
    return record['cpu_seconds'] / 60


def by_view(record, view, key):
    """An accuracy of the run under one view of the test images ('single'
    or 'mirror_average'), in [0, 1]."""
    return dig(record, 'accuracy_by_view', view, key)


def mirror_gain(record, key):
    """Points by which averaging over the mirror image changed an
    accuracy (positive: it helped)."""
    return 100 * (by_view(record, 'mirror_average', key)
                  - by_view(record, 'single', key))


def cache_mib(record, parts=None):
    """MiB of the run's cached activations, of the named parts or all."""
    sizes = dig(record, 'cache_mib')
    return sum(size for name, size in sizes.items()
               if parts is None or name in parts)


def seconds_per_epoch(record):
    """Mean wall seconds of one training epoch."""
    epochs = dig(record, 'epochs')
    return epochs[-1]['seconds'] / len(epochs)


def blocks_after(cut):
    """How many of MobileNetV2's inverted-residual blocks follow a cut."""
    match = re.fullmatch(r'block_(\d+)_\w+', cut or '')
    if not match:
        raise Missing('blocks after cut {} unknown'.format(cut))
    return MOBILENET_BLOCKS - int(match.group(1))


def trained_blocks(record):
    """How many of MobileNetV2's inverted-residual blocks follow the run's
    cut (and so are trained)."""
    if record['config'].get('backbone') != 'MobileNetV2':
        raise Missing('not a MobileNetV2 run')
    return blocks_after(run_cut(record))


def stage_minutes(record):
    """Wall minutes of each logged stage, 'extraction 6.4 / training 10.2
    / ...' (stages under 0.05 min included, as 0.0)."""
    timings = dig(record, 'timings')
    return ' / '.join('{} {}'.format(name, one_decimal(timings[key] / 60))
                      for key, name in STAGES if key in timings)


def describe_options(record):
    """A run's configuration in words: cut, input size, epochs, training
    images, flips and mirror averaging."""
    config = record['config']
    size, images = config['image_size'], config.get('train_images')
    return ('cut after {}, {}x{} input, {} epochs, {}, flips {}, {}'.format(
        run_cut(record), size, size, config['epochs'],
        '{} training images'.format(whole(images)) if images
        else 'every training image not held out',
        'cached' if config.get('flips', True) else 'off',
        'mirror-averaged' if config.get('mirror') else 'single view'))


def one_decimal(value):
    """Format with one decimal."""
    return '{:.1f}'.format(value)


def whole(value):
    """Format as a whole number with thousands separators."""
    return '{:,.0f}'.format(value)


def plain(value):
    """Format as is ('{}'), e.g. an image size."""
    return '{}'.format(value)


def short(value):
    """Format a float compactly ('{:g}'), e.g. a learning rate."""
    return '{:g}'.format(value)


def one_decimal_percent(value):
    """Format a fraction as a percentage with one decimal."""
    return '{:.1f}%'.format(100 * value)


def signed(value):
    """Format with a sign and two decimals, e.g. points gained."""
    return '{:+.2f}'.format(value)


def percents(values):
    """Format a list of accuracies as percentages, comma-separated."""
    return ', '.join(percent(value) for value in values)


def stack(record):
    """'TensorFlow T, Keras K (or tf_keras K), Python P' of a run."""
    machine = dig(record, 'machine')
    return 'TensorFlow {}, {} {}, Python {}'.format(
        machine['tensorflow'],
        'tf_keras' if machine.get('legacy_keras') else 'Keras',
        machine['keras'], machine['python'])


# The engine of a run's frozen pass, by its record's 'engine'; runs logged
# before the field had Keras predict only; None: the run extracted nothing.
ENGINES = {'keras': 'Keras predict', 'tflite': 'TFLite (XNNPACK)', None: '-'}


def engine(record):
    """The engine that ran a record's frozen pass."""
    return ENGINES[record['engine']] if 'engine' in record \
        else ENGINES['keras']


# name: (value of a record, format).  The value may raise Missing.
RUN_FIELDS = {
    'holdout': (lambda r: accuracy(r, 'holdout'), percent),
    'test_exact': (lambda r: accuracy(r, 'test_exact_0_999'), percent),
    'test_full': (lambda r: accuracy(r, 'test'), percent),
    'train_accuracy': (lambda r: dig(r, 'epochs', -1, 'accuracy'),
                       one_decimal_percent),
    # points by which the JPEG-degraded full test set trails images 0-999
    'jpeg_gap': (lambda r: 100 * (accuracy(r, 'test_exact_0_999')
                                  - accuracy(r, 'test')), one_decimal),
    'exact_standard_error': (
        lambda r: 100 * math.sqrt(accuracy(r, 'test_exact_0_999') * (
            1 - accuracy(r, 'test_exact_0_999')) / EXACT), one_decimal),
    'wall_minutes': (lambda r: dig(r, 'wall_seconds') / 60, one_decimal),
    'extract_minutes': (lambda r: dig(r, 'timings', 'extract') / 60,
                        one_decimal),
    'train_minutes': (lambda r: dig(r, 'timings', 'train') / 60,
                      one_decimal),
    'cpu_minutes': (lambda r: dig(r, 'cpu_seconds') / 60, one_decimal),
    'evaluate_minutes': (lambda r: dig(r, 'timings', 'evaluate') / 60,
                         one_decimal),
    'stack': (stack, plain),
    'cpu': (lambda r: dig(r, 'machine', 'cpu'), plain),
    'engine': (engine, plain),
    'peak_gib': (lambda r: dig(r, 'peak_memory_mib') / 1024, one_decimal),
    'peak_mib': (lambda r: dig(r, 'peak_memory_mib'), whole),
    'time_to_87_minutes': (lambda r: time_to(r, TARGET) / 60, one_decimal),
    'epochs_to_87': (lambda r: first_epoch_at(r, TARGET)['epoch'], plain),
    'image_size': (lambda r: dig(r, 'config', 'image_size'), plain),
    'epochs': (lambda r: dig(r, 'config', 'epochs'), plain),
    'shift': (lambda r: dig(r, 'config', 'shift'), plain),
    'batch_size': (lambda r: dig(r, 'config', 'batch_size'), plain),
    'learning_rate': (lambda r: dig(r, 'config', 'learning_rate'), short),
    'label_smoothing': (lambda r: dig(r, 'config', 'label_smoothing'),
                        short),
    'dropout': (lambda r: dig(r, 'config', 'dropout'), short),
    'holdout_images': (lambda r: dig(r, 'config', 'holdout'), whole),
    'train_images': (lambda r: dig(r, 'train_images'), whole),
    'extracted_images': (extracted_images, whole),
    # float32 bytes of the upsized RGB images the cache stands in for
    'upsized_gb': (lambda r: extracted_images(r) * dig(
        r, 'config', 'image_size') ** 2 * 3 * 4 / 1e9, whole),
    'map_side': (map_side, plain),
    'cell_pixels': (lambda r: CIFAR_SIDE / map_side(r), one_decimal),
    'trainable_millions': (lambda r: dig(r, 'trainable_params') / 1e6,
                           one_decimal),
    'cores': (lambda r: dig(r, 'machine', 'cores'), plain),
    'cut': (run_cut, plain),
    'seed': (lambda r: dig(r, 'config', 'seed'), plain),
    'cached_map': (feature_shape, lambda shape: 'x'.join(map(str, shape))),
    # MiB of what training reads: the training images (and flips) and the
    # held-out split
    'training_cache_mib': (lambda r: cache_mib(
        r, ('fit', 'fit_flipped', 'holdout')), whole),
    'cache_gib': (lambda r: cache_mib(r) / 1024, one_decimal),
    'extract_seconds': (lambda r: dig(r, 'timings', 'extract'), whole),
    'seconds_per_epoch': (seconds_per_epoch, whole),
    'trainable_params': (lambda r: dig(r, 'trainable_params'), whole),
    'holdout_by_epoch': (lambda r: [e['val_accuracy'] for e in
                                    dig(r, 'epochs')], percents),
    'seconds_to_saved': (lambda r: dig(r, 'seconds_to_saved_model'), whole),
    'minutes_to_saved': (lambda r: dig(r, 'seconds_to_saved_model') / 60,
                         one_decimal),
    'holdout_single': (lambda r: by_view(r, 'single', 'holdout'), percent),
    'holdout_mirror': (lambda r: by_view(r, 'mirror_average', 'holdout'),
                       percent),
    'exact_single': (lambda r: by_view(r, 'single', 'test_exact_0_999'),
                     percent),
    'exact_mirror': (lambda r: by_view(r, 'mirror_average',
                                       'test_exact_0_999'), percent),
    'mirror_gain_holdout': (lambda r: mirror_gain(r, 'holdout'), signed),
    'mirror_gain_exact': (lambda r: mirror_gain(r, 'test_exact_0_999'),
                          signed),
    'trained_blocks': (trained_blocks, plain),
    'stage_minutes': (stage_minutes, plain),
    'options': (describe_options, plain),
    'configuration': (lambda r: '{}, seed {}'.format(
        describe_options(r), r['config'].get('seed')), plain),
    # CPU seconds per wall second: near the core count if the run had the
    # machine to itself and used every core
    'cpu_per_wall': (lambda r: dig(r, 'cpu_seconds') / dig(r, 'wall_seconds'),
                     '{:.2f}'.format),
    # the saved model's size, where the record has it
    'model_mib': (lambda r: dig(r, 'model_mib'), one_decimal),
}


def run_field(name):
    """(value, format) of a run field, including the generic accuracy_KEY
    and config_KEY; raise Missing for an unknown name."""
    if name in RUN_FIELDS:
        return RUN_FIELDS[name]
    if name.startswith('accuracy_'):
        return (lambda r: accuracy(r, name[len('accuracy_'):]), percent)
    if name.startswith('config_'):
        return (lambda r: dig(r, 'config', name[len('config_'):]), plain)
    raise Missing('no run field {}'.format(name))


def run_value(record, name):
    """The formatted run field name of one record."""
    value, form = run_field(name)
    return form(value(record))


def range_value(records, name):
    """'min to max' of a run field over records (those lacking it are left
    out), or one value when all agree."""
    value, form = run_field(name)
    values = []
    for record in records:
        try:
            values.append(value(record))
        except Missing:
            pass
    if not values:
        raise Missing('no run has {}'.format(name))
    low, high = form(min(values)), form(max(values))
    return low if low == high else '{} to {}'.format(low, high)


# ----------------------------------------------------- benchmark values

def entry_where(result, entries, key, value):
    """The entry of the list result[entries] whose key is value; Missing
    if there is none."""
    for entry in dig(result, entries):
        if entry[key] == value:
            return entry
    raise Missing('no {} with {} {}'.format(entries, key, value))


def extraction(benchmark, policy):
    """The benchmark's frozen-pass measurement under a dtype policy."""
    return entry_where(benchmark, 'extraction', 'policy', policy)


def training(benchmark, method):
    """The benchmark's training measurement of a method."""
    return entry_where(benchmark, 'training', 'method', method)


def time_to_87_text(benchmark):
    """Sentence: time to 87% with the cache against without it."""
    target = benchmark.get('time_to_87')
    if target is None:
        return 'not reached in the log'
    return ('{:.1f} minutes with the cache ({:.1f} of them extraction, then '
            '{} epoch) against about {:.1f} minutes extrapolated without it'
            .format(target['ours_seconds'] / 60,
                    target['ours_extraction_seconds'] / 60,
                    target['epochs_to_target'],
                    target['no_cache_seconds_extrapolated'] / 60))


def zen4_peak(benchmark):
    """GFLOP/s of the benchmark's cores at its assumed clock if each did
    ZEN4's fp32 FLOP per cycle."""
    return (dig(benchmark, 'cores') * dig(benchmark, 'config', 'ghz')
            * ZEN4['flop_per_cycle'])


BENCHMARK_FIELDS = {
    'epoch_speedup': lambda b: one_decimal(dig(b, 'epoch_speedup')),
    'cached_ms': lambda b: one_decimal(
        1000 * training(b, 'cached')['seconds_per_image']),
    'no_cache_ms': lambda b: one_decimal(
        1000 * training(b, 'no_cache')['seconds_per_image']),
    'cached_mib': lambda b: whole(training(b, 'cached')['peak_memory_mib']),
    'no_cache_mib': lambda b: whole(
        training(b, 'no_cache')['peak_memory_mib']),
    'fp32_images_per_second': lambda b: whole(
        extraction(b, 'float32')['images_per_second']),
    'bf16_images_per_second': lambda b: whole(
        extraction(b, 'mixed_bfloat16')['images_per_second']),
    'gflop_per_image': lambda b: '{:.2f}'.format(
        extraction(b, 'float32')['gflop_per_image']),
    'gflop_per_second': lambda b: whole(
        extraction(b, 'float32')['gflop_per_second']),
    'peak_fraction': lambda b: '{:.0f}%'.format(
        100 * extraction(b, 'float32')['fraction_of_fp32_peak']),
    # ... of the peak of Zen 4 cores (ZEN4) at the assumed clock
    'zen4_peak': lambda b: whole(zen4_peak(b)),
    'zen4_peak_fraction': lambda b: '{:.0f}%'.format(
        100 * extraction(b, 'float32')['gflop_per_second'] / zen4_peak(b)),
    'fp32_peak': lambda b: whole(dig(b, 'fp32_peak_gflop_per_second')),
    'flop_per_cycle': lambda b: whole(
        dig(b, 'fp32_peak_gflop_per_second') / dig(b, 'cores')
        / dig(b, 'config', 'ghz')),
    'images': lambda b: plain(dig(b, 'config', 'images')),
    'image_size': lambda b: plain(dig(b, 'config', 'image_size')),
    'cores': lambda b: plain(dig(b, 'cores')),
    'ghz': lambda b: short(dig(b, 'config', 'ghz')),
    'time_to_87': time_to_87_text,
}


def cpu_text(result):
    """The CPU a benchmark ran on, from /proc/cpuinfo: 'NAME (VENDOR, family
    F, model M)'."""
    return '{name} ({vendor}, family {family}, model {model})'.format(
        **dig(result, 'cpu'))


def pipeline(throughput):
    """The throughput benchmark's measurement of the pipeline's own
    setting, the reference of the others."""
    return entry_where(throughput, 'settings', 'name', 'pipeline')


def bandwidth(throughput):
    """GB/s of the faster bandwidth measurement (numpy copy, TensorFlow
    add), which the benchmark's bandwidth bounds use."""
    return max(dig(throughput, 'measured', 'numpy_copy_gb_per_second'),
               dig(throughput, 'measured', 'tensorflow_add_gb_per_second'))


def flop_per_byte(throughput, kind):
    """The extractor's fp32 FLOP per byte of memory traffic per image,
    kind 'unfused' or 'fused' (see benchmark.py's layer_traffic)."""
    return (1e3 * dig(throughput, 'measured', 'gflop_per_image')
            / dig(throughput, 'measured', kind + '_mb_per_image'))


def bound_fraction(throughput, kind):
    """The pipeline's images/s as a fraction of the bandwidth bound."""
    return (pipeline(throughput)['images_per_second']
            / dig(throughput, 'bandwidth_bound_images_per_second', kind))


def round_spread(entry):
    """How far a setting's rounds differed: (fastest - slowest) / fastest,
    in images/s."""
    rounds = dig(entry, 'images_per_second_by_round')
    return (max(rounds) - min(rounds)) / max(rounds)


def whole_percent(value):
    """Format a fraction as a whole percentage."""
    return '{:.0f}%'.format(100 * value)


# {{throughput.field}}: results/throughput.json (benchmark.py throughput).
THROUGHPUT_FIELDS = {
    'cpu': cpu_text,
    'cores': lambda t: plain(dig(t, 'cores')),
    'ghz': lambda t: '{:.2f}'.format(dig(t, 'cpu', 'mhz') / 1e3),
    'flop_per_cycle': lambda t: plain(dig(
        t, 'fp32_flops_per_cycle_per_core')),
    'fp32_peak': lambda t: whole(dig(t, 'fp32_peak_gflop_per_second')),
    'images': lambda t: plain(dig(t, 'config', 'images')),
    'image_size': lambda t: plain(dig(t, 'config', 'image_size')),
    'batch_size': lambda t: plain(dig(t, 'config', 'batch_size')),
    'rounds': lambda t: plain(dig(t, 'config', 'rounds')),
    'matmul_gflop_per_second': lambda t: whole(dig(
        t, 'measured', 'matmul_gflop_per_second')),
    'matmul_peak_fraction': lambda t: one_decimal_percent(
        dig(t, 'measured', 'matmul_gflop_per_second')
        / dig(t, 'fp32_peak_gflop_per_second')),
    # how many times the pipeline's GFLOP/s the matmul reached
    'matmul_over_pipeline': lambda t: one_decimal(
        dig(t, 'measured', 'matmul_gflop_per_second')
        / pipeline(t)['gflop_per_second']),
    'copy_gb_per_second': lambda t: one_decimal(dig(
        t, 'measured', 'numpy_copy_gb_per_second')),
    'add_gb_per_second': lambda t: one_decimal(dig(
        t, 'measured', 'tensorflow_add_gb_per_second')),
    'gflop_per_image': lambda t: '{:.3f}'.format(dig(
        t, 'measured', 'gflop_per_image')),
    'unfused_mb_per_image': lambda t: one_decimal(dig(
        t, 'measured', 'unfused_mb_per_image')),
    'fused_mb_per_image': lambda t: one_decimal(dig(
        t, 'measured', 'fused_mb_per_image')),
    'unfused_flop_per_byte': lambda t: one_decimal(
        flop_per_byte(t, 'unfused')),
    'fused_flop_per_byte': lambda t: one_decimal(flop_per_byte(t, 'fused')),
    # FLOP per byte at which the bandwidth would feed the fp32 peak
    'peak_flop_per_byte': lambda t: '{:.0f}'.format(
        dig(t, 'fp32_peak_gflop_per_second') / bandwidth(t)),
    'unfused_bound': lambda t: whole(dig(
        t, 'bandwidth_bound_images_per_second', 'unfused')),
    'fused_bound': lambda t: whole(dig(
        t, 'bandwidth_bound_images_per_second', 'fused')),
    'pipeline_images_per_second': lambda t: whole(
        pipeline(t)['images_per_second']),
    'pipeline_gflop_per_second': lambda t: whole(
        pipeline(t)['gflop_per_second']),
    'pipeline_peak_fraction': lambda t: one_decimal_percent(
        pipeline(t)['fraction_of_fp32_peak']),
    'pipeline_of_unfused_bound': lambda t: whole_percent(
        bound_fraction(t, 'unfused')),
    'pipeline_of_fused_bound': lambda t: whole_percent(
        bound_fraction(t, 'fused')),
    # the arithmetic a pass exactly at a bandwidth bound would do
    'unfused_bound_peak_fraction': lambda t: one_decimal_percent(
        bound_peak_fraction(t, 'unfused')),
    'fused_bound_peak_fraction': lambda t: one_decimal_percent(
        bound_peak_fraction(t, 'fused')),
}


def bound_peak_fraction(throughput, kind):
    """The fraction of the fp32 peak a pass would reach at the bandwidth
    bound of kind 'unfused' or 'fused'."""
    return (dig(throughput, 'bandwidth_bound_images_per_second', kind)
            * dig(throughput, 'measured', 'gflop_per_image')
            / dig(throughput, 'fp32_peak_gflop_per_second'))


def race_curve(race, name):
    """The race's curve of the named method ('fast', 'default', 'usual')."""
    return entry_where(race, 'curves', 'name', name)


def levels_of(curve):
    """A race curve's held-out accuracy levels, as its keys ('87', ...),
    from the lowest."""
    return sorted(dig(curve, 'seconds_to'), key=float)


def race_levels(race):
    """The race's levels (those of its first curve; all have the same)."""
    return levels_of(dig(race, 'curves', 0))


def levels_text(levels):
    """Levels ('87', ...) in words: '87, 90 and 93%'."""
    return '{} and {}%'.format(', '.join(levels[:-1]), levels[-1])


# {{time_to_accuracy.field}}: results/time_to_accuracy.json (benchmark.py
# race).
RACE_FIELDS = {
    'cpu': cpu_text,
    'cores': lambda r: plain(dig(r, 'cores')),
    'holdout': lambda r: whole(dig(r, 'holdout')),
    'holdout_option': lambda r: plain(dig(r, 'holdout')),
    'budget_minutes': lambda r: short(dig(r, 'config', 'budget_minutes')),
    'levels': lambda r: levels_text(race_levels(r)),
    'usual_image_size': lambda r: plain(dig(
        race_curve(r, 'usual'), 'image_size')),
    'usual_learning_rate': lambda r: short(dig(
        race_curve(r, 'usual'), 'learning_rate')),
    'usual_peak_gib': lambda r: one_decimal(dig(
        race_curve(r, 'usual'), 'peak_memory_mib') / 1024),
}
# The fields of results/NAME.json by NAME; BENCHMARK_FIELDS for the others.
RESULT_FIELDS = {'throughput': THROUGHPUT_FIELDS,
                 'time_to_accuracy': RACE_FIELDS}


# ------------------------------------------------------- derived values

DERIVED = {}


def derived(function):
    """Register function(sources) -> text as the placeholder of its name."""
    DERIVED[function.__name__] = function
    return function


@derived
def runs(sources):
    """Number of logged runs."""
    return str(len(sources.records))


def run_number(sources, record):
    """A record's number in the log (1-based)."""
    return sources.records.index(record) + 1


@derived
def versions(sources):
    """Hardware and software of the reported run."""
    return ('TensorFlow {tensorflow}, Keras {keras}, Python {python}, '
            'numpy {numpy}, {cores} cores of an {cpu}'
            .format(**sources.reported['machine']))


@derived
def size_speedup(sources):
    """How much faster the frozen pass ran in results/benchmark.json than
    in results/benchmark_224.json (images per second), in percent."""
    ratio = (extraction(sources.result('benchmark'), 'float32')
             ['images_per_second']
             / extraction(sources.result('benchmark_224'), 'float32')
             ['images_per_second'])
    return '{:.0f}%'.format(100 * (ratio - 1))


def race(sources):
    """The benchmarked run against the no-cache method, epoch by epoch: for
    k epochs, (k, seconds of extraction + k epochs with the cache, seconds
    of k epochs through the whole network extrapolated from the
    benchmark)."""
    record, benchmark = benchmark_run(sources), sources.result('benchmark')
    if dig(benchmark, 'config', 'image_size') != record['config'][
            'image_size']:
        raise Missing('results/benchmark.json was measured at another '
                      'input size than the benchmarked run')
    if training(benchmark, 'no_cache').get('trainable_params') not in (
            None, record.get('trainable_params')):
        raise Missing('results/benchmark.json trained another suffix '
                      '(cut) than the benchmarked run')
    per_image = training(benchmark, 'no_cache')['seconds_per_image']
    per_epoch = flip_parts(record) * dig(record, 'train_images') * per_image
    extract = dig(record, 'timings', 'extract')
    return [(e['epoch'], extract + e['seconds'], e['epoch'] * per_epoch)
            for e in dig(record, 'epochs')]


def cache_lead(sources):
    """(epoch count before the cache leads, then the first at which it
    does) as race entries."""
    entries = race(sources)
    for before, entry in zip([None] + entries, entries):
        if entry[1] < entry[2]:
            if before is None:
                raise Missing('the cache leads from the first epoch: '
                              'rewrite the text around cache_wins_*')
            return before, entry
    raise Missing('the cache never leads within the logged epochs')


@derived
def cache_wins_from_epoch(sources):
    """First epoch at which extraction + training with the cache took less
    time than the same epochs through the whole network."""
    return str(cache_lead(sources)[1][0])


@derived
def epochs_before_win(sources):
    """The epoch count just before the cache leads."""
    return str(cache_lead(sources)[0][0])


# Minutes of the race just before and at the epoch the cache takes the
# lead (cache_lead's two entries), with and without the cache.
for _name, _entry, _column in (('ours_minutes_before_win', 0, 1),
                               ('no_cache_minutes_before_win', 0, 2),
                               ('ours_minutes_at_win', 1, 1),
                               ('no_cache_minutes_at_win', 1, 2)):
    DERIVED[_name] = (lambda sources, entry=_entry, column=_column:
                      one_decimal(cache_lead(sources)[entry][column] / 60))


@derived
def ours_run_minutes(sources):
    """The benchmarked run's extraction + training minutes."""
    timings = benchmark_run(sources)['timings']
    return one_decimal((timings['extract'] + timings['train']) / 60)


@derived
def no_cache_run_minutes(sources):
    """The benchmarked run's epochs without the cache, extrapolated."""
    return one_decimal(race(sources)[-1][2] / 60)


@derived
def benchmark_default_note(sources):
    """Whether the benchmarked run has the default configuration (the
    benchmark is not rerun with every new default)."""
    if is_default_run(benchmark_run(sources), sources.reported):
        return 'the default configuration'
    return 'not the default configuration (the reported run\'s)'


# ---------------------------------------------------------------- tables

def markdown_table(columns, rows):
    """A markdown table: columns is [(header, cell(row) -> text)]."""
    lines = ['| ' + ' | '.join(header for header, _ in columns) + ' |',
             '|' + ' --- |' * len(columns)]
    for row in rows:
        cells = [str(cell(row)).replace('|', '\\|') for _, cell in columns]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def cell(record, name):
    """A run field for a table cell, '-' when the record lacks it."""
    try:
        return run_value(record, name)
    except Missing:
        return '-'


def options(record):
    """The run's configuration with its cut resolved (a record's config
    says None for the default cut, which changed between runs)."""
    return dict(record['config'], cut=run_cut(record))


def changes(record, reference):
    """Describe how a record's configuration differs from reference's."""
    mine, theirs = options(record), options(reference)
    names = sorted(set(mine) | set(theirs))
    diff = ['{}={}'.format(k, mine.get(k, '(not an option then)'))
            for k in names if k not in NOT_OPTIONS and
            mine.get(k) != theirs.get(k)]
    return ', '.join(diff) or 'same'


def cpu_cell(record):
    """CPU-minutes, labelled when only wall time times cores is known."""
    try:
        minutes = one_decimal(cpu_or_wall_cores_minutes(record))
    except Missing:
        return '-'
    return minutes + (' (wall x cores)' if wall_times_cores(record) else '')


def numbered(records):
    """(run number, record) pairs, numbered from 1."""
    return list(enumerate(records, 1))


def finished_text(record):
    """When the run finished, 'YYYY-MM-DD HH:MM' (UTC), or '-'."""
    return record.get('finished', '-')[:16].replace('T', ' ')


def cache_state(record):
    """Whether the run extracted its cache, reused an earlier run's, or
    reused some parts (named)."""
    reused = record.get('cache_reused', {})
    names = sorted(name for name, value in reused.items() if value)
    if not names:
        return 'extracted'
    if len(names) == len(reused):
        return 'reused'
    return 'reused: ' + ', '.join(names)


# Columns of the table of every run: (header, cell of (number, record)).
# Adding a column is one line here.
EXPERIMENT_COLUMNS = [
    ('#', lambda nr: nr[0]),
    ('finished (UTC)', lambda nr: finished_text(nr[1])),
    ('differs from the reported run', lambda nr: nr[2]),
    ('why', lambda nr: nr[1]['config'].get('note') or '-'),
    ('epochs', lambda nr: nr[1]['config'].get('epochs', '-')),
    ('held-out', lambda nr: cell(nr[1], 'holdout')),
    ('test 0-{} (exact)'.format(EXACT - 1),
     lambda nr: cell(nr[1], 'test_exact')),
    ('full test', lambda nr: cell(nr[1], 'test_full')),
    ('CPU-min', lambda nr: cpu_cell(nr[1])),
]


@derived
def experiments_table(sources):
    """Markdown table: every run, what changed, why, and its results."""
    reference = sources.reported
    return markdown_table(EXPERIMENT_COLUMNS, [
        (number, record, changes(record, reference))
        for number, record in numbered(sources.records)])


def option(name, value):
    """The command-line option that sets a configuration value."""
    flag = '--' + name.replace('_', '-')
    if isinstance(value, bool):
        return flag if value else '--no-' + name.replace('_', '-')
    if isinstance(value, float):
        return '{} {:g}'.format(flag, value)
    return '{} {}'.format(flag, value)


def option_names(records):
    """(options every run shares with the same value, the others)."""
    configs = [options(r) for r in records]
    names = sorted({k for c in configs for k in c} - NOT_OPTIONS)
    common = [k for k in names
              if all(k in c for c in configs)
              and len({json.dumps(c[k]) for c in configs}) == 1
              and configs[0][k] is not None]
    return common, [k for k in names if k not in common]


@derived
def common_options(sources):
    """Options with one value in every run, as a command-line fragment."""
    common, _ = option_names(sources.records)
    return ' '.join(option(k, options(sources.records[0])[k])
                    for k in common)


def run_options(record, names):
    """A record's values of the named options, as a command line."""
    config = options(record)
    return ' '.join(option(k, config[k]) for k in names
                    if config.get(k) is not None)


@functools.lru_cache(maxsize=None)
def script_commits():
    """{SHA-256 of 0-transfer.py: the first commit (abbreviated) whose
    0-transfer.py has it}, from git; {} without git or its history.  CI
    runs on a full clone, where this matches the working copy's."""
    def git(*args):
        """The output of a git command in the project."""
        return subprocess.run(('git', '-C', PROJECT_DIR) + args, check=True,
                              capture_output=True).stdout
    found = {}
    try:
        # newest first, so the oldest commit of a content is kept
        for commit in git('log', '--format=%H', '--',
                          '0-transfer.py').decode().split():
            script = git('show', commit + ':0-transfer.py')
            found[hashlib.sha256(script).hexdigest()] = commit[:7]
    except (OSError, subprocess.CalledProcessError):
        return {}
    return found


@derived
def run_commits(sources):
    """Markdown list: the runs that logged their script's SHA-256, grouped
    by the first commit whose 0-transfer.py has it (see script_commits)."""
    groups = {}
    for number, record in numbered(sources.records):
        sha = record.get('machine', {}).get('script_sha256')
        if sha:
            commit = script_commits().get(sha)
            groups.setdefault('`{}`'.format(commit) if commit else
                              'not found (no git history, or a script no '
                              'commit holds)', []).append(str(number))
    if not groups:
        raise Missing('no run logged its script\'s SHA-256')
    return '\n'.join('- run{} {}: {}'.format(
        's' if len(numbers) > 1 else '', ', '.join(numbers), commit)
        for commit, numbers in groups.items())


@derived
def reproduction_table(sources):
    """Markdown table: each run's options beyond the common ones, and
    whether it extracted its cache or reused an earlier run's."""
    _, varying = option_names(sources.records)
    columns = [
        ('run', lambda nr: nr[0]),
        ('options', lambda nr: '`{}`'.format(run_options(nr[1], varying))),
        ('cache', lambda nr: cache_state(nr[1])),
    ]
    return markdown_table(columns, numbered(sources.records))


# ------------------------------------------- tables of the later runs

def runs_where(sources, keep):
    """(run number, record) pairs of the runs keep(record) selects."""
    return [(number, record) for number, record in numbered(sources.records)
            if keep(record)]


def field_columns(*pairs):
    """Columns of a table of (number, record) rows: the run number, then
    one per (header, run field name), '-' where a record lacks it."""
    return [('run', lambda nr: nr[0])] + [
        (header, lambda nr, name=name: cell(nr[1], name))
        for header, name in pairs]


def table_or(columns, rows, pending):
    """The markdown table of the rows, or the sentence pending if none."""
    return markdown_table(columns, rows) if rows else pending


def best_run(rows, value):
    """The (number, record) row of the highest value(record), the first of
    equals; rows whose record lacks the value are left out."""
    scored = []
    for number, record in rows:
        try:
            scored.append((value(record), -number, record))
        except Missing:
            pass
    if not scored:
        raise Missing('no run yet')
    _, number, record = max(scored, key=lambda entry: entry[:2])
    return -number, record


def has_views(record):
    """Whether the record has accuracies by view (single, mirror)."""
    return 'accuracy_by_view' in record


def is_fast_run(record):
    """Whether a finished run used --preset fast, outside the race."""
    return (preset(record) == 'fast' and 'accuracy' in record
            and not is_race_run(record))


def sweep_runs(sources):
    """(number, record) of each finished run of the cut sweep."""
    return runs_where(sources, is_sweep_run)


def default_runs(sources):
    """(number, record) of each run of the default configuration, outside
    the race."""
    return runs_where(sources, lambda record: is_default_run(
        record, sources.reported) and not is_race_run(record))


def latest_by_seed(rows):
    """{seed: (number, record)} of the latest row of each seed."""
    return {row[1]['config'].get('seed'): row for row in rows}


@derived
def reported_run_summary(sources):
    """The reported run: its number, configuration and accuracies."""
    record = sources.reported
    return ('run {} of the log (cut after {}, {}x{} input, {} epochs, seed '
            '{}, finished {} UTC): {} held-out, {} on the exact test images '
            '0-{}'.format(
                run_number(sources, record), cell(record, 'cut'),
                cell(record, 'image_size'), cell(record, 'image_size'),
                cell(record, 'epochs'), cell(record, 'seed'),
                finished_text(record), cell(record, 'holdout'),
                cell(record, 'test_exact'), EXACT - 1))


def run_field_row(name):
    """A REPORTED_ROWS value: the run field name of the reported run."""
    return lambda sources, record: run_value(record, name)


# README's table of the reported run: (label, value(sources, record),
# optional).  A value the record lacks is '-', and an optional row is left
# out (the model's size: logged by no run so far).
REPORTED_ROWS = [
    ('run', lambda sources, record: 'run {} of the log, finished {} UTC'
     .format(run_number(sources, record), finished_text(record)), False),
    ('configuration', run_field_row('configuration'), False),
    ('held-out accuracy', lambda sources, record: '{} ({} training images '
     'held out)'.format(run_value(record, 'holdout'),
                        run_value(record, 'holdout_images')), False),
    ('test accuracy, exact images 0-{}'.format(EXACT - 1),
     run_field_row('test_exact'), False),
    ('test accuracy, all {} ({}-{} JPEG-degraded)'.format(
        whole(CIFAR_TEST_IMAGES), EXACT, CIFAR_TEST_IMAGES - 1),
     run_field_row('test_full'), False),
    ('`0-main.py` through `grade.py`',
     lambda sources, record: reported_grade(sources), False),
    ('wall minutes per stage', run_field_row('stage_minutes'), False),
    ('wall time end to end', lambda sources, record: '{} min ({} '
     'CPU-minutes)'.format(run_value(record, 'wall_minutes'),
                           run_value(record, 'cpu_minutes')), False),
    ('peak resident memory', lambda sources, record: '{} GiB'.format(
        run_value(record, 'peak_gib')), False),
    ('`cifar10.h5`', lambda sources, record: '{} MiB'.format(
        run_value(record, 'model_mib')), True),
]


@derived
def reported_table(sources):
    """Markdown table for README: what the committed cifar10.h5 is."""
    record, rows = sources.reported, []
    for label, value, optional in REPORTED_ROWS:
        try:
            rows.append((label, value(sources, record)))
        except Missing:
            if not optional:
                rows.append((label, '-'))
    return markdown_table([('', lambda row: row[0]),
                           ('value', lambda row: row[1])], rows)


# The cut sweep: one row per cut.
SWEEP_COLUMNS = field_columns(
    ('cut', 'cut'), ('cached map', 'cached_map'),
    ('cache of fit + flips + held-out (MiB)', 'training_cache_mib'),
    ('extraction (s)', 'extract_seconds'),
    ('training s per epoch', 'seconds_per_epoch'),
    ('trainable parameters', 'trainable_params'),
    ('held-out after each epoch', 'holdout_by_epoch'),
    ('final held-out, single view', 'holdout_single'),
    ('final held-out, mirror-averaged', 'holdout_mirror'),
) + [('CPU-min', lambda nr: cpu_cell(nr[1]))]


@derived
def sweep_table(sources):
    """Markdown table: each finished run of the cut sweep."""
    return table_or(SWEEP_COLUMNS, sweep_runs(sources),
                    'No run of the cut sweep has finished yet.')


@derived
def sweep_pending(sources):
    """Sentence: which of the sweep's cuts have no finished run yet."""
    done = {run_cut(record) for _, record in sweep_runs(sources)}
    waiting = [cut for cut in SWEEP_CUTS if cut not in done]
    if not waiting:
        return 'Every cut of the sweep has finished.'
    return ('Pending (its row appears when its run finishes): {}.'
            .format(', '.join(waiting)))


@derived
def sweep_findings(sources):
    """Sentence: the sweep's cut of the highest mirror-averaged held-out
    accuracy so far, its lead over the next cut in both views, and whether
    that lead passes the two-seed rule (times are not compared: the runs
    shared the cores with other jobs)."""
    rows = sorted(sweep_runs(sources), reverse=True, key=lambda row: by_view(
        row[1], 'mirror_average', 'holdout'))
    if len(rows) < 2:
        return 'No finding yet: fewer than two cuts have finished.'
    (number, best), (second, runner_up) = rows[:2]
    leads = [100 * (by_view(best, view, 'holdout')
                    - by_view(runner_up, view, 'holdout'))
             for view in ('mirror_average', 'single')]
    return ('So far ({} of {} cuts), {} (run {}) reached the highest '
            'mirror-averaged held-out accuracy, {}, ahead of {} (run {}) by '
            '{:.2f} points mirror-averaged and {:.2f} in the single view: {}.'
            .format(len(rows), len(SWEEP_CUTS), run_cut(best), number,
                    run_value(best, 'holdout_mirror'), run_cut(runner_up),
                    second, leads[0], leads[1],
                    'under our {}-point rule in at least one view, so their '
                    'order rests on one seed each'.format(TWO_SEED_POINTS)
                    if min(leads) < TWO_SEED_POINTS else
                    'at least {} point in both views, on one seed each'
                    .format(TWO_SEED_POINTS)))


@derived
def sweep_holdout_by_cut(sources):
    """The sweep's mirror-averaged held-out accuracy per cut, in
    SWEEP_CUTS order: 'block_6_project_BN 93.22% (run 8), ...', a cut
    without a finished run 'pending'."""
    latest = {run_cut(record): (number, record)
              for number, record in sweep_runs(sources)}
    return ', '.join(
        '{} {} (run {})'.format(cut, cell(latest[cut][1], 'holdout_mirror'),
                                latest[cut][0]) if cut in latest
        else '{} pending'.format(cut) for cut in SWEEP_CUTS)


def first_sweep_run(sources):
    """The sweep's first finished run (for the options its runs share)."""
    rows = sweep_runs(sources)
    if not rows:
        raise Missing('no run of the cut sweep has finished')
    return rows[0][1]


MIRROR_COLUMNS = field_columns(
    ('cut', 'cut'), ('input px', 'image_size'),
    ('training images', 'train_images'),
    ('held-out, single', 'holdout_single'),
    ('held-out, mirror-averaged', 'holdout_mirror'),
    ('held-out gain (points)', 'mirror_gain_holdout'),
    ('test 0-{}, single'.format(EXACT - 1), 'exact_single'),
    ('test 0-{}, mirror-averaged'.format(EXACT - 1), 'exact_mirror'),
    ('test 0-{} gain (points)'.format(EXACT - 1), 'mirror_gain_exact'))


@derived
def mirror_table(sources):
    """Markdown table: single view against mirror average, every run that
    measured both."""
    return table_or(MIRROR_COLUMNS, runs_where(sources, has_views),
                    'No run has measured both views yet.')


@derived
def mirror_verdict(sources):
    """Sentence: which held-out gains reach TWO_SEED_POINTS, and what the
    seeds of the default configuration say about the smaller ones (the
    test images are not evidence for a choice)."""
    large = ['run {} ({})'.format(number, signed(mirror_gain(r, 'holdout')))
             for number, r in runs_where(sources, has_views)
             if abs(mirror_gain(r, 'holdout')) >= TWO_SEED_POINTS]
    first = ('the held-out gain{} of {} reach{} {} point'.format(
        's' if len(large) > 1 else '', ', '.join(large),
        'es' if len(large) == 1 else '', TWO_SEED_POINTS)
             if large else 'no held-out difference reaches {} point'
             .format(TWO_SEED_POINTS))
    seeds = latest_by_seed(row for row in default_runs(sources)
                           if has_views(row[1]))
    if len(seeds) < 2:
        return ('{}; the default configuration has {} with both views so '
                'far, so no gain under {} point is a finding yet'.format(
                    first, 'one seed' if seeds else 'no run',
                    TWO_SEED_POINTS))
    gains = [mirror_gain(seeds[seed][1], 'holdout') for seed in sorted(seeds)]
    return ('{}; the default configuration with seeds {} changed its '
            'held-out accuracy by {} points: {}'.format(
                first, ', '.join(map(str, sorted(seeds))),
                ', '.join(map(signed, gains)),
                'a gain with every seed' if all(g > 0 for g in gains) else
                'not a gain with every seed, so no finding'))


def fast_grade_of(sources, record):
    """The grader's accuracy on images 0-999 (as printed) of a fast run's
    model, from results/FAST_GRADE; None if it graded another model."""
    try:
        return grade_exact(sources, FAST_GRADE, record)
    except Missing:
        return None


def fast_target_met(sources, record):
    """'yes' if the grader scored the fast run's model at least TARGET on
    test images 0-999 and the model was saved within FAST_SECONDS of the
    start, 'no', 'not graded' without the grader's output for this run."""
    printed = fast_grade_of(sources, record)
    if printed is None:
        return 'not graded'
    saved = record.get('seconds_to_saved_model')
    if saved is None:
        return '-'
    return 'yes' if float(printed) >= TARGET and saved <= FAST_SECONDS \
        else 'no'


FAST_COLUMNS = field_columns(
    ('s to the saved model', 'seconds_to_saved'), ('held-out', 'holdout'),
    ('test 0-{}, logged'.format(EXACT - 1), 'test_exact'),
    ('input px', 'image_size'), ('training images', 'train_images'),
    ('epochs', 'epochs'), ('held-out images', 'holdout_images'))


@derived
def fast_table(sources):
    """Markdown table: every run of the fast preset, how its options differ
    from the reported fast run's, the grader's accuracy and the verdict."""
    rows = runs_where(sources, is_fast_run)
    if not rows:
        return 'No run of the fast preset has finished yet.'
    reference = fast_run(sources)
    return markdown_table(FAST_COLUMNS + [
        ('differs from run {}'.format(run_number(sources, reference)),
         lambda nr: changes(nr[1], reference)),
        ('grader, test 0-{}'.format(EXACT - 1),
         lambda nr: fast_grade_of(sources, nr[1]) or 'not graded'),
        ('target met', lambda nr: fast_target_met(sources, nr[1]))], rows)


@derived
def fast_verdict(sources):
    """Sentence: which fast runs met the target."""
    verdicts = [(number, fast_target_met(sources, record))
                for number, record in runs_where(sources, is_fast_run)]
    met = [str(number) for number, verdict in verdicts if verdict == 'yes']
    if met:
        return '{} {} met it.'.format('Runs' if len(met) > 1 else 'Run',
                                      ', '.join(met))
    return 'No fast run has met it yet ({} finished, {} graded).'.format(
        len(verdicts), sum(v != 'not graded' for _, v in verdicts))


def grader_accuracies(text):
    """[(images, accuracy as printed)] of the grader's output: the last
    'accuracy: X' after each 'on N test images' line."""
    found, images = {}, None
    for line in text.splitlines():
        evaluation = re.search(r'on (\d+) test images', line)
        if evaluation:
            images = int(evaluation.group(1))
        printed = re.findall(r'accuracy: ([\d.]+)', line)
        if printed and images is not None:
            found[images] = printed[-1]
    return sorted(found.items())


def grader_text(sources, name):
    """The grader's output saved as results/NAME; Missing if absent."""
    if name not in sources.texts:
        raise Missing('results/{} is not written yet'.format(name))
    return sources.texts[name]


def graded_run(sources, name):
    """(number, record) of the run whose model results/NAME graded, named
    in it by the run's finish time; Missing if it names no logged run."""
    stamp = re.search(r'finished (\d{4}-\d\d-\d\dT[\d:]+[+-][\d:]+)',
                      grader_text(sources, name))
    for number, record in numbered(sources.records):
        if stamp and record.get('finished') == stamp.group(1):
            return number, record
    raise Missing('results/{} does not name a logged run'.format(name))


def grade_of(sources, name, record):
    """{images: accuracy as printed} of results/NAME, which must have
    graded record's model; Missing otherwise."""
    number, graded = graded_run(sources, name)
    if graded is not record:
        raise Missing('results/{} graded run {}, not run {}'.format(
            name, number, run_number(sources, record)))
    accuracies = dict(grader_accuracies(grader_text(sources, name)))
    if not accuracies:
        raise Missing('results/{} holds no accuracy line'.format(name))
    return accuracies


def graded_text(accuracies):
    """'accuracy A on N test images; ...' of the grader's accuracies."""
    return ', '.join('accuracy {} on {} test images'.format(value, images)
                     for images, value in sorted(accuracies.items()))


def grade_exact(sources, name, record):
    """The grader's accuracy on the exact images 0-999 (as printed) of
    record's model, from results/NAME; Missing if it has none."""
    accuracies = grade_of(sources, name, record)
    if EXACT not in accuracies:
        raise Missing('results/{} has no accuracy on {} images'.format(
            name, EXACT))
    return accuracies[EXACT]


def pending_or(function, *args):
    """function(*args), or 'pending (why)' if it raises Missing."""
    try:
        return function(*args)
    except Missing as error:
        return 'pending ({})'.format(error)


@derived
def fast_grade(sources):
    """The grader's accuracies for the fast model (results/FAST_GRADE),
    the run whose model it graded, or 'pending' if it is not written."""
    try:
        accuracies = grader_accuracies(grader_text(sources, FAST_GRADE))
    except Missing as error:
        return 'pending ({})'.format(error)
    if not accuracies:
        return 'results/{} holds no accuracy line'.format(FAST_GRADE)
    try:
        graded = ' (the model of run {})'.format(
            graded_run(sources, FAST_GRADE)[0])
    except Missing:
        graded = ' (the output does not name a logged run)'
    return graded_text(dict(accuracies)) + graded


def fast_run(sources):
    """The reported fast run: the one results/FAST_GRADE graded, else the
    latest fast run."""
    try:
        record = graded_run(sources, FAST_GRADE)[1]
        if is_fast_run(record):
            return record
    except Missing:
        pass
    rows = runs_where(sources, is_fast_run)
    if not rows:
        raise Missing('no run of the fast preset has finished')
    return rows[-1][1]


@derived
def fast_grade_exact(sources):
    """The grader's accuracy on images 0-999 of the fast run's model, as
    printed, or 'pending (why)'."""
    return pending_or(grade_exact, sources, FAST_GRADE, fast_run(sources))


@derived
def reported_grade(sources):
    """The grader's accuracies of the reported run's cifar10.h5 (from
    results/GRADE if it names that run), or 'pending (why)'."""
    return pending_or(lambda: graded_text(grade_of(
        sources, GRADE, sources.reported)) + ' (results/{})'.format(GRADE))


SEEDS_COLUMNS = field_columns(
    ('seed', 'seed'), ('held-out (mirror-averaged)', 'holdout'),
    ('test 0-{} (exact)'.format(EXACT - 1), 'test_exact'),
    ('wall min', 'wall_minutes'), ('min to the saved model',
                                   'minutes_to_saved'),
    ('peak memory (GiB)', 'peak_gib'), ('cache (GiB)', 'cache_gib'),
) + [('cache', lambda nr: cache_state(nr[1]))]


@derived
def seeds_table(sources):
    """Markdown table: each run of the current default configuration."""
    return table_or(SEEDS_COLUMNS, default_runs(sources),
                    'No run of the current default configuration has '
                    'finished yet.')


def target_seed_runs(sources):
    """{seed: record} of the latest default run of each target seed;
    Missing names the seeds still pending."""
    runs = latest_by_seed(default_runs(sources))
    pending = [seed for seed in DEFAULT_TARGETS['seeds'] if seed not in runs]
    if pending:
        raise Missing('{} {} not finished'.format(
            'seeds' if len(pending) > 1 else 'seed',
            ' and '.join(map(str, pending))))
    return {seed: runs[seed][1] for seed in DEFAULT_TARGETS['seeds']}


STACK_COLUMNS = field_columns(
    ('stack', 'stack'), ('frozen pass', 'engine'),
    ('extraction (min)', 'extract_minutes'),
    ('training (min)', 'train_minutes'),
    ('test evaluation, its extraction included (min)', 'evaluate_minutes'),
    ('end to end (min)', 'wall_minutes'), ('held-out', 'holdout'),
    ('test 0-{} (exact)'.format(EXACT - 1), 'test_exact'))


@derived
def stacks_table(sources):
    """Markdown table: each run of the default that extracted its training
    parts on the reported run's CPU, whatever its stack."""
    cpu = dig(sources.reported, 'machine', 'cpu')
    rows = [(number, record) for number, record in default_runs(sources)
            if dig(record, 'machine', 'cpu') == cpu
            and not record['cache_reused'].get('fit')]
    return table_or(STACK_COLUMNS, rows, 'No run of the default from an '
                    'empty cache on this CPU has finished yet.')


@derived
def seeds_summary(sources):
    """Sentence: mean and spread of the held-out accuracy over the seeds
    of the default configuration (latest run of each)."""
    runs = latest_by_seed(default_runs(sources))
    if not runs:
        return 'Mean and spread over seeds: pending.'
    values = [accuracy(runs[seed][1], 'holdout') for seed in sorted(runs)]
    seeds = ', '.join(map(str, sorted(runs)))
    if len(values) < 2:
        return ('Only seed {} has finished, so there is no spread yet; its '
                'held-out accuracy is {}.'.format(seeds, percent(values[0])))
    return ('Over seeds {}, the held-out accuracy has a mean of {:.2f} (in '
            'percent) and a spread (largest minus smallest) of {:.2f} '
            'points.'.format(seeds, 100 * sum(values) / len(values),
                             100 * (max(values) - min(values))))


def target_holdout(sources):
    """(percent, measured) of the held-out target: mean over its seeds."""
    values = [accuracy(record, 'holdout')
              for record in target_seed_runs(sources).values()]
    mean = 100 * sum(values) / len(values)
    return mean, 'mean {:.2f} ({})'.format(mean, percents(values))


def target_exact(sources):
    """(percent, measured) of the exact-test target: the grader on the
    reported run's cifar10.h5."""
    record = sources.reported
    printed = grade_exact(sources, GRADE, record)
    return 100 * float(printed), '{} (run {}, results/{})'.format(
        printed, run_number(sources, record), GRADE)


def extracting_default_runs(sources):
    """Default runs that extracted their training images' cache (reusing
    it would understate the wall time)."""
    return [row for row in default_runs(sources)
            if not row[1].get('cache_reused', {}).get('fit')]


def target_largest(rows, value, unit):
    """A measure of an upper limit: (largest value over rows, measured)."""
    number, record = best_run(rows, value)
    return value(record), '{:.1f} {} (run {})'.format(value(record), unit,
                                                      number)


class Target:
    """A target set for the default configuration: its name, its limit
    (a lower limit if at_least, else an upper one), the unit and decimals
    of a shortfall, and measure(sources) -> (value, measured text), which
    raises Missing while its runs are pending."""

    def __init__(self, name, limit, measure, at_least, unit, decimals):
        """Hold the target's parts."""
        self.name, self.limit, self.measure = name, limit, measure
        self.at_least, self.unit, self.decimals = at_least, unit, decimals

    @property
    def label(self):
        """The target in words, with its limit."""
        limit = ('{:.1f}%'.format(self.limit) if self.unit == 'points'
                 else '{} {}'.format(self.limit, self.unit))
        return '{}: at {} {}'.format(
            self.name, 'least' if self.at_least else 'most', limit)

    def shortfall(self, value):
        """By how much value misses the limit (0 or less: it does not)."""
        return (self.limit - value if self.at_least else value - self.limit)

    def amount(self, value):
        """The shortfall in words, e.g. '1.10 points'."""
        return '{:.{}f} {}'.format(self.shortfall(value), self.decimals,
                                   self.unit)


TARGET_SEEDS = ' and '.join(map(str, DEFAULT_TARGETS['seeds']))
# The targets of the current default configuration, in the table's order.
DEFAULT_TARGET_LIST = [
    Target('held-out accuracy, mean of seeds ' + TARGET_SEEDS,
           100 * DEFAULT_TARGETS['holdout'], target_holdout, True,
           'points', 2),
    Target('test accuracy on the exact images 0-{} through the grader'
           .format(EXACT - 1), 100 * DEFAULT_TARGETS['exact'], target_exact,
           True, 'points', 2),
    Target('wall time end to end, training images extracted',
           DEFAULT_TARGETS['wall_minutes'], lambda sources: target_largest(
               extracting_default_runs(sources),
               lambda r: dig(r, 'wall_seconds') / 60, 'min'),
           False, 'min', 1),
    Target('peak resident memory', DEFAULT_TARGETS['peak_gib'],
           lambda sources: target_largest(
               default_runs(sources),
               lambda r: dig(r, 'peak_memory_mib') / 1024, 'GiB'),
           False, 'GiB', 1),
    Target('cache on disk', DEFAULT_TARGETS['cache_gb'],
           lambda sources: target_largest(
               default_runs(sources),
               lambda r: cache_mib(r) * 2 ** 20 / 1e9, 'GB'),
           False, 'GB', 1),
]
TARGETS = {'holdout': DEFAULT_TARGET_LIST[0], 'exact': DEFAULT_TARGET_LIST[1]}


def measured(sources, target):
    """(value, measured text) of a target; (None, why) while pending."""
    try:
        return target.measure(sources)
    except Missing as error:
        return None, str(error)


def target_met(target, value):
    """'yes', 'no', or 'pending' if value is None."""
    if value is None:
        return 'pending'
    return 'yes' if target.shortfall(value) <= 0 else 'no'


def target_row(sources, target):
    """(target, measured, met, value) of one target; value is None while
    its runs are pending."""
    value, text = measured(sources, target)
    return (target.label, text if value is not None else 'pending: ' + text,
            target_met(target, value), value)


@derived
def default_targets_table(sources):
    """Markdown table: the default configuration's targets, measured."""
    columns = [('target', lambda row: row[0]),
               ('measured', lambda row: row[1]), ('met', lambda row: row[2])]
    return markdown_table(columns, [target_row(sources, target)
                                    for target in DEFAULT_TARGET_LIST])


@derived
def default_targets_shortfall(sources):
    """Sentence: how far each missed target is missed, and how many are
    pending."""
    rows = [(target, target_row(sources, target))
            for target in DEFAULT_TARGET_LIST]
    missed = ['{}, by {}'.format(target.name, target.amount(row[3]))
              for target, row in rows if row[2] == 'no']
    pending = sum(row[2] == 'pending' for _, row in rows)
    if missed:
        text = 'Missed: {}.'.format('; '.join(missed))
    elif pending:
        text = 'No target is missed so far.'
    else:
        text = 'Every target is met.'
    if pending:
        text += ' {} of {} {} pending.'.format(
            pending, len(rows), 'is' if pending == 1 else 'are')
    return text


def verdict(sources, target):
    """'reached', 'missed by X points' or 'not measured yet (why)'."""
    value, text = measured(sources, target)
    met = target_met(target, value)
    if met == 'pending':
        return 'not measured yet ({})'.format(text)
    return 'reached' if met == 'yes' else 'missed by ' + target.amount(value)


@derived
def holdout_target_verdict(sources):
    """Whether the default reached its held-out target (see verdict)."""
    return verdict(sources, TARGETS['holdout'])


@derived
def exact_target_verdict(sources):
    """Whether the default's cifar10.h5 reached its target on the exact
    test images through the grader (see verdict)."""
    return verdict(sources, TARGETS['exact'])


# ------------------------------------------- the race and the throughput

def minutes_to(curve, level):
    """Wall minutes from the process start until the curve first reached
    the level ('87', ...); Missing if it never did."""
    seconds = dig(curve, 'seconds_to').get(level)
    if seconds is None:
        raise Missing('{} never reached {}%'.format(curve['name'], level))
    return seconds / 60


def reach_cell(curve, level):
    """Minutes to the level, or 'not reached (best X%)'."""
    try:
        return one_decimal(minutes_to(curve, level))
    except Missing:
        return 'not reached (best {})'.format(
            one_decimal_percent(curve['best_accuracy']))


def usual_ratio_cell(curve, usual):
    """The usual method's time to each level this curve reached over this
    curve's: '87%: 2.1x'; where the usual method never reached the level,
    more than its whole run over this curve's time: '87%: > 13.5x'; '-'
    for the usual method itself or a curve that reached no level."""
    if curve is usual:
        return '-'
    cells = []
    for level in levels_of(curve):
        seconds = curve['seconds_to'][level]
        if seconds is None:
            continue
        if usual['seconds_to'][level] is None:
            cells.append('{}%: > {}x'.format(level, one_decimal(
                usual['points'][-1]['seconds'] / seconds)))
        else:
            cells.append('{}%: {}x'.format(level, one_decimal(
                usual['seconds_to'][level] / seconds)))
    return ', '.join(cells) or '-'


def race_run_cell(sources, curve):
    """The log's number of the run that drew a curve (by its finish time),
    or '-' (the usual method, or a run not in this log)."""
    finished = curve.get('run_finished')
    for number, record in numbered(sources.records):
        if finished and record.get('finished') == finished:
            return str(number)
    return '-'


def race_record(sources, name):
    """The logged run that drew the race's curve of name ('fast',
    'default')."""
    curve = race_curve(sources.result('time_to_accuracy'), name)
    for record in sources.records:
        if record.get('finished') == curve['run_finished']:
            return record
    raise Missing('the race\'s {} run is not in the log'.format(name))


@derived
def race_fast_train_images(sources):
    """Training images of the race's fast preset run (or 'pending')."""
    return pending_or(lambda: whole(
        race_record(sources, 'fast')['train_images']))


@derived
def race_default_train_images(sources):
    """Training images of the race's default run (or 'pending')."""
    return pending_or(lambda: whole(
        race_record(sources, 'default')['train_images']))


def extraction_rate(record):
    """Images/s of a run's extract stage: its training images (twice with
    flips) and held-out images over the stage's seconds."""
    config = record['config']
    images = (record['train_images'] * (2 if config.get('flips') else 1)
              + config['holdout'])
    return images / record['timings']['extract']


@derived
def race_default_extraction_rate(sources):
    """Images/s of the race's default run's whole extraction (or
    'pending')."""
    return pending_or(lambda: whole(extraction_rate(
        race_record(sources, 'default'))))


@derived
def race_default_extraction_peak_fraction(sources):
    """That rate's arithmetic as a fraction of the fp32 peak (the FLOP
    per image and the peak from results/throughput.json, measured on the
    same machine), or 'pending'."""
    throughput = sources.result('throughput')
    return pending_or(lambda: one_decimal_percent(
        extraction_rate(race_record(sources, 'default'))
        * dig(throughput, 'measured', 'gflop_per_image')
        / dig(throughput, 'fp32_peak_gflop_per_second')))


@derived
def race_table(sources):
    """Markdown table: each method of the race, its time to each level, its
    best held-out accuracy, the usual method's time over its own, and the
    time to and held-out accuracy of the saved model."""
    race = sources.result('time_to_accuracy')
    columns = [('method', lambda c: RACE_METHODS.get(c['name'], c['name'])),
               ('run', lambda c: race_run_cell(sources, c))] + [
        ('min to {}%'.format(level), lambda c, level=level: reach_cell(
            c, level)) for level in race_levels(race)] + [
        ('best held-out, single view',
         lambda c: one_decimal_percent(c['best_accuracy'])),
        ('usual method\'s time / this one\'s', lambda c: usual_ratio_cell(
            c, race_curve(race, 'usual'))),
        ('min to the saved model', lambda c: one_decimal(
            c['seconds_to_saved_model'] / 60)
         if 'seconds_to_saved_model' in c else '-'),
        ('saved model held-out, mirror-averaged', lambda c:
         one_decimal_percent(c['saved_model_holdout_accuracy'])
         if 'saved_model_holdout_accuracy' in c else '-')]
    return markdown_table(columns, dig(race, 'curves'))


def reached_text(curve):
    """'L% after N.N min' of the highest level the curve reached, or 'none
    of 87, 90 and 93%'."""
    reached = [level for level in levels_of(curve)
               if curve['seconds_to'][level] is not None]
    if not reached:
        return 'none of {}'.format(levels_text(levels_of(curve)))
    return '{}% after {} min'.format(
        reached[-1], one_decimal(minutes_to(curve, reached[-1])))


@derived
def race_summary(sources):
    """Sentence: the highest level each method reached and when, the usual
    method's best in its budget, and how many times as long it took to the
    highest level it shared with the default."""
    race = sources.result('time_to_accuracy')
    fast, default, usual = (race_curve(race, name)
                            for name in ('fast', 'default', 'usual'))
    text = ('Timed from the process start, the fast preset reached {} and '
            'the default {}; the usual method, in its {}-minute budget, '
            'reached {} (best {})'.format(
                reached_text(fast), reached_text(default),
                short(dig(race, 'config', 'budget_minutes')),
                reached_text(usual),
                one_decimal_percent(usual['best_accuracy'])))
    lowest = levels_of(fast)[0]
    if usual['seconds_to'][lowest] is None and fast['seconds_to'][lowest]:
        text += ('. The usual method\'s whole run lasted {} times as long '
                 'as the fast preset took to reach {}%, and ended below '
                 'it'.format(one_decimal(usual['points'][-1]['seconds']
                                         / fast['seconds_to'][lowest]),
                             lowest))
    return text + '.'


THROUGHPUT_COLUMNS = [
    ('setting (one change from the pipeline)', lambda e: e['name']),
    ('images/s, best round', lambda e: whole(e['images_per_second'])),
    ('images/s by round', lambda e: ', '.join(
        whole(value) for value in e['images_per_second_by_round'])),
    ('GFLOP/s', lambda e: whole(e['gflop_per_second'])),
    ('of the fp32 peak', lambda e: one_decimal_percent(
        e['fraction_of_fp32_peak'])),
]


@derived
def throughput_table(sources):
    """Markdown table: the frozen pass under each setting of the throughput
    benchmark, against the pipeline's own."""
    throughput = sources.result('throughput')
    reference = pipeline(throughput)['images_per_second']
    return markdown_table(THROUGHPUT_COLUMNS + [
        ('images/s against the pipeline', lambda e: '{:+d}%'.format(
            round(100 * (e['images_per_second'] / reference - 1))))],
        dig(throughput, 'settings'))


@derived
def throughput_verdict(sources):
    """Sentence: which settings ran within the pipeline's range of rounds,
    and which ran faster or slower in every round (see
    throughput_groups)."""
    groups = throughput_groups(sources.result('throughput'))
    return ('A setting counts as faster (slower) only if every one of its '
            'rounds was faster (slower) than every round of the pipeline, '
            'by more than the pipeline\'s own rounds differ; the change '
            'given is that of the best rounds. Neither: {}. Faster in every '
            'round: {}. Slower in every round: {}.'.format(
                *('; '.join(groups[name]) or 'none'
                  for name in ('within', 'faster', 'slower'))))


def throughput_groups(throughput):
    """The settings but the pipeline's, as 'name (+N%)' (best round against
    best round), grouped: 'faster' if its slowest round beat the
    pipeline's fastest, 'slower' if its fastest lost to the pipeline's
    slowest, each by more than the pipeline's rounds' spread; else
    'within'."""
    reference = pipeline(throughput)
    ours, noise = (reference['images_per_second_by_round'],
                   round_spread(reference))
    groups = {'within': [], 'faster': [], 'slower': []}
    for entry in dig(throughput, 'settings'):
        if entry is reference:
            continue
        rounds = entry['images_per_second_by_round']
        group = ('faster' if min(rounds) > max(ours) * (1 + noise) else
                 'slower' if max(rounds) < min(ours) * (1 - noise) else
                 'within')
        groups[group].append('{} ({:+d}%)'.format(entry['name'], round(
            100 * (entry['images_per_second']
                   / reference['images_per_second'] - 1))))
    return groups


@derived
def throughput_faster(sources):
    """Sentence: the settings faster than the pipeline beyond noise (see
    throughput_groups), or that none was."""
    faster = throughput_groups(sources.result('throughput'))['faster']
    if not faster:
        return ('No setting tried ran faster than the pipeline in every '
                'round, beyond its rounds\' spread')
    return ('Faster than the pipeline in every round, beyond its rounds\' '
            'spread: {}'.format('; '.join(faster)))


@derived
def peak_check(sources):
    """Sentence: whether TensorFlow's matmul stayed under the theoretical
    peak; if it did not, the cores ran above the clock /proc/cpuinfo
    reports, and the pipeline's share of the matmul's rate bounds its
    share of the real peak."""
    throughput = sources.result('throughput')
    matmul = dig(throughput, 'measured', 'matmul_gflop_per_second')
    if matmul <= dig(throughput, 'fp32_peak_gflop_per_second'):
        return ''
    return ('The matmul beat that peak, so the cores ran faster than the '
            'clock /proc/cpuinfo reports (a virtual machine shows the '
            'nominal clock, not the boost): the real peak is at least the '
            'matmul\'s rate, and the pipeline reached at most {} of it.'
            .format(one_decimal_percent(
                pipeline(throughput)['gflop_per_second'] / matmul)))


@derived
def roofline_reading(sources):
    """Sentence: where the pipeline's images/s lies against the bandwidth
    bounds (unfused, fused), with its rounds' spread as the tolerance, and
    what that says of memory traffic as its limit."""
    throughput = sources.result('throughput')
    reference = pipeline(throughput)
    rate, noise = reference['images_per_second'], round_spread(reference)
    bounds = dig(throughput, 'bandwidth_bound_images_per_second')
    if rate > bounds['fused'] * (1 + noise):
        return ('That is faster than even the fused traffic allows: the '
                'caches keep part of the maps between layers, or the '
                'measured bandwidth understates the pass\'s, and the bounds '
                'do not explain the rate.')
    if rate >= bounds['unfused'] * (1 - noise):
        return ('That lies between the two bounds (the unfused one less '
                'the spread of the pipeline\'s rounds): at the measured '
                'bandwidth, the traffic of the maps between layers is '
                'enough to account for the rate, whatever the arithmetic.')
    return ('That is below the unfused bound by more than the pipeline\'s '
            'rounds differ, so memory traffic alone does not account for '
            'the rate.')


# ------------------------------------------------------------- rendering

# Placeholders of fixed values, not measured: the targets, the exact
# images, the sweep's design.
FIXED = {
    'exact_count': whole(EXACT), 'exact_images': str(EXACT),
    'fast_target_minutes': short(FAST_SECONDS / 60),
    'fast_target_percent': one_decimal_percent(TARGET),
    'holdout_target_percent': one_decimal_percent(DEFAULT_TARGETS['holdout']),
    'exact_target_percent': one_decimal_percent(DEFAULT_TARGETS['exact']),
    'target_seeds': TARGET_SEEDS,
    'sweep_cuts': ', '.join(SWEEP_CUTS),
    'sweep_options': ' '.join(option(name, value)
                              for name, value in SWEEP_OPTIONS.items()),
    'zen4_family': plain(ZEN4['family']),
    'zen4_flop_per_cycle': plain(ZEN4['flop_per_cycle']),
}
# Runs a placeholder may name by role: {{reported.holdout}}.
NAMED_RUNS = {'reported': lambda sources: sources.reported,
              'benchmarked': benchmark_run, 'sweep': first_sweep_run,
              'fast': fast_run}


def parse_source(source, sources):
    """What a placeholder's source names: ('run', [record]), ('runs',
    records) or ('result', content)."""
    if source in NAMED_RUNS:
        return 'run', [NAMED_RUNS[source](sources)]
    single = re.fullmatch(r'run(\d+)', source)
    if single:
        number = int(single.group(1))
        if not 1 <= number <= len(sources.records):
            raise Missing('no run {} in the log'.format(number))
        return 'run', [sources.records[number - 1]]
    several = re.fullmatch(r'runs(?:(\d+)-(\d+))?', source)
    if several:
        first, last = several.groups()
        if first is None:
            return 'runs', sources.records
        first, last = int(first), int(last)
        if not 1 <= first <= last <= len(sources.records):
            raise Missing('runs {}-{} not all in the log'.format(first, last))
        return 'runs', sources.records[first - 1:last]
    return 'result', sources.result(source)


def resolve(name, sources):
    """The text of one placeholder name; raise Missing if it has none."""
    source, _, field = name.rpartition('.')
    if not source:
        if field in FIXED:
            return FIXED[field]
        if field in DERIVED:
            return DERIVED[field](sources)
        return run_value(sources.reported, field)
    kind, target = parse_source(source, sources)
    if kind == 'run' and field == 'number':
        return str(run_number(sources, target[0]))
    if kind == 'run':
        return run_value(target[0], field)
    if kind == 'runs':
        return range_value(target, field)
    fields = RESULT_FIELDS.get(source, BENCHMARK_FIELDS)
    if field not in fields:
        raise Missing('no field {} of results/{}.json'.format(field, source))
    return fields[field](target)


def render_text(template, sources, marker=None):
    """Replace each {{name}} of the template by its value (or by marker,
    to see the template's own text); refuse names without a value."""
    values, problems = {}, []
    for name in sorted(set(PLACEHOLDER.findall(template))):
        try:
            values[name] = resolve(name, sources)
        except Missing as error:
            problems.append('{{{{{}}}}}: {}'.format(name, error))
    if problems:
        raise RenderError('template names without a value:\n'
                          + '\n'.join(problems))
    return PLACEHOLDER.sub(lambda m: values[m.group(1)] if marker is None
                           else marker, template)


def read_text(path):
    """A file's text."""
    with open(path) as f:
        return f.read()


def render_paper(template_path, log_path, results_dir):
    """The paper's text rendered from the template, the log and results."""
    return render_text(read_text(template_path),
                       load_sources(log_path, results_dir))


def block_bounds(lines):
    """Indexes of the README_START and README_END lines; RenderError if
    either is missing or out of order."""
    stripped = [line.rstrip('\n') for line in lines]
    try:
        start = stripped.index(README_START)
        return start, stripped.index(README_END, start + 1)
    except ValueError:
        raise RenderError('README.md needs the line {} and, after it, the '
                          'line {}'.format(README_START, README_END))


def generated_block(text):
    """The lines of a README between README_START and README_END."""
    lines = text.splitlines(True)
    start, end = block_bounds(lines)
    return ''.join(lines[start + 1:end])


def with_generated_block(text, block):
    """A README's text with the lines between README_START and README_END
    replaced by block."""
    lines = text.splitlines(True)
    start, end = block_bounds(lines)
    return ''.join(lines[:start + 1]) + block + ''.join(lines[end:])


def render_readme(readme_path, template_path, log_path, results_dir):
    """README.md's text with its results block rendered from the template,
    the log and results."""
    block = render_text(read_text(template_path),
                        load_sources(log_path, results_dir))
    return with_generated_block(read_text(readme_path), block)


# --------------------------------------------------------------- figures

def pyplot():
    """matplotlib's pyplot on the Agg backend (imported only for figures)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def epoch_curve(record):
    """(wall minutes since the start, held-out accuracy in %) after each
    epoch: loading, building and extraction, then the epoch's seconds."""
    start = setup_seconds(record)
    epochs = dig(record, 'epochs')
    if not epochs:
        raise Missing('no epochs')
    return ([(start + e['seconds']) / 60 for e in epochs],
            [100 * e['val_accuracy'] for e in epochs])


def plot_learning_curves(records, path):
    """Held-out accuracy after each epoch against wall minutes."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for number, r in numbered(records):
        try:
            minutes, accuracies = epoch_curve(r)
        except Missing:
            continue
        label = 'run {}: {} px{}'.format(
            number, r['config']['image_size'], ', cache reused' if any(
                r.get('cache_reused', {}).values()) else '')
        # the colour cycle has ten colours: dash the runs after them
        ax.plot(minutes, accuracies, 'o-' if number <= 10 else 'o--',
                label=label)
    ax.axhline(100 * TARGET, color='grey', ls=':',
               label='{:.0f}%'.format(100 * TARGET))
    ax.set(xlabel='wall minutes since start (extraction included)',
           ylabel='held-out accuracy (%)',
           title='Learning curves (input size in the legend)')
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_cut_sweep(sources, path):
    """Held-out accuracy after each epoch of each cut of the sweep against
    wall minutes since the run's start."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    cores = set()
    for number, r in sweep_runs(sources):
        minutes, accuracies = epoch_curve(r)
        ax.plot(minutes, accuracies, 'o-', label='run {}: cut after {}'
                .format(number, run_cut(r)))
        cores.add(r['machine']['cores'])
    ax.set(xlabel='wall minutes since the start of the run (extraction '
           'included) on the\nmachine\'s {} cores, shared with test suites: '
           'upper bounds'.format(' or '.join(map(str, sorted(cores)))),
           ylabel='held-out accuracy, single view (%)',
           title='Cut sweep: held-out accuracy after each epoch')
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_accuracy_vs_cpu(records, path):
    """Exact-test accuracy of every run against its CPU-minutes (wall
    minutes times cores where no CPU time was logged, marked)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for number, r in numbered(records):
        try:
            x = cpu_or_wall_cores_minutes(r)
            y = 100 * accuracy(r, 'test_exact_0_999')
        except Missing:
            continue
        reused = any(r.get('cache_reused', {}).values())
        estimated = wall_times_cores(r)
        ax.plot(x, y, 's' if estimated else 'o', color='C0',
                fillstyle='none' if reused else 'full')
        ax.annotate(str(number) + (' (wall x cores)' if estimated else ''),
                    (x, y), textcoords='offset points', xytext=(4, 4),
                    fontsize=8)
    ax.margins(x=0.15)
    ax.set(xlabel='CPU-minutes (user + system time)',
           ylabel='accuracy on exact test images 0-{} (%)'
           .format(EXACT - 1),
           title='Accuracy against compute, every run\n(hollow: cache '
           'reused, its extraction not counted;\nsquare: no CPU time '
           'logged, wall minutes x cores)')
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_predictions(images, labels, predicted, path, count=24):
    """A grid of exact test images with predictions, right or wrong."""
    plt = pyplot()
    fig, axes = plt.subplots(3, count // 3, figsize=(count // 3 * 1.3, 5))
    for ax, image, label, guess in zip(axes.ravel(), images, labels,
                                       predicted):
        ax.imshow(image)
        right = label == guess
        ax.set_title(CLASSES[guess] if right else '{}\n(is {})'.format(
            CLASSES[guess], CLASSES[label]), fontsize=8,
            color='green' if right else 'red')
        ax.axis('off')
    fig.suptitle('CIFAR-10 test images 0-{}: predictions of cifar10.h5 '
                 '(green right, red wrong)'.format(count - 1), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_confusion(labels, predicted, path):
    """Confusion matrix on the exact test images."""
    import numpy as np
    plt = pyplot()
    matrix = np.zeros((10, 10), int)
    np.add.at(matrix, (labels, predicted), 1)
    fig, ax = plt.subplots(figsize=(6, 5.5))
    ax.imshow(matrix, cmap='Blues')
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, value, ha='center', va='center', fontsize=7,
                color='white' if value > matrix.max() / 2 else 'black')
    ax.set_xticks(range(10), CLASSES, rotation=45, ha='right')
    ax.set_yticks(range(10), CLASSES)
    ax.set(xlabel='predicted', ylabel='true',
           title='Confusion matrix, exact test images 0-{}'
           .format(len(labels) - 1))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_benchmark(benchmark, path):
    """Seconds per training image: cached pipeline against no cache."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3))
    methods = [t['method'] for t in benchmark['training']]
    values = [1000 * t['seconds_per_image'] for t in benchmark['training']]
    ax.barh(methods, values, color=['C0', 'C1'])
    for y, value in enumerate(values):
        ax.text(value, y, ' {:.1f} ms'.format(value), va='center')
    ax.set(xlabel='training time per image (ms), lower is better',
           title='One epoch: {:.1f}x faster on the cache'
           .format(benchmark['epoch_speedup']))
    ax.set_xlim(0, max(values) * 1.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_time_to_accuracy(race, path):
    """The race: held-out accuracy (single view) after each epoch of each
    method against wall minutes since its process started; dashed lines at
    the race's levels, a dotted one at the usual method's budget."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for curve in dig(race, 'curves'):
        points = dig(curve, 'points')
        ax.plot([p['seconds'] / 60 for p in points],
                [100 * p['accuracy'] for p in points], 'o-',
                label=RACE_METHODS.get(curve['name'], curve['name']))
    for level in race_levels(race):
        ax.axhline(float(level), color='grey', ls='--', lw=0.8)
        ax.annotate('{}%'.format(level), (1, float(level)),
                    xycoords=('axes fraction', 'data'), xytext=(3, 0),
                    textcoords='offset points', va='center', fontsize=8,
                    color='grey')
    ax.axvline(dig(race, 'config', 'budget_minutes'), color='grey', ls=':',
               label='the usual method\'s budget')
    ax.set(xlabel='wall minutes since the process started (loading, '
           'building and, for ours, extraction included)',
           ylabel='held-out accuracy, single view (%)',
           title='Time to accuracy from an empty cache, {} held-out images, '
           '{} cores'.format(whole(dig(race, 'holdout')), race['cores']))
    ax.set_xlim(left=0)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def model_predictions(model_path, data_dir):
    """Return exact test images, labels and cifar10.h5's predictions."""
    sys.path.insert(0, PROJECT_DIR)
    transfer = __import__('0-transfer')
    _, (x_test, y_test) = transfer.load_cifar10(data_dir)
    x, y = x_test[:EXACT], y_test[:EXACT].astype(int)
    model = transfer.K.models.load_model(model_path)
    predicted = model.predict(transfer.preprocess_data(x, y)[0],
                              verbose=0).argmax(1)
    return x, y, predicted


def draw_log_figures(sources, out):
    """The figures drawn from the log and results alone."""
    plot_learning_curves(sources.records,
                         os.path.join(out, 'learning_curves.png'))
    plot_accuracy_vs_cpu(sources.records,
                         os.path.join(out, 'accuracy_vs_cpu_minutes.png'))
    if sweep_runs(sources):
        plot_cut_sweep(sources, os.path.join(out, 'cut_sweep.png'))
    if 'benchmark' in sources.results:
        plot_benchmark(sources.results['benchmark'],
                       os.path.join(out, 'benchmark.png'))
    if 'time_to_accuracy' in sources.results:
        plot_time_to_accuracy(sources.results['time_to_accuracy'],
                              os.path.join(out, 'time_to_accuracy.png'))


def draw_model_figures(model_path, data_dir, out):
    """The figures drawn from the saved model's test predictions."""
    images, labels, predicted = model_predictions(model_path, data_dir)
    plot_predictions(images, labels, predicted,
                     os.path.join(out, 'predictions.png'))
    plot_confusion(labels, predicted,
                   os.path.join(out, 'confusion_matrix.png'))


def write_file(path, text):
    """Write text to path and say so."""
    with open(path, 'w') as f:
        f.write(text)
    print('wrote {}'.format(path))


def write_texts(args):
    """Render the paper into the output folder and README.md's results
    block in place (both are rendered before either is written)."""
    paper = render_paper(args.template, args.log, args.results_dir)
    readme = render_readme(args.readme, args.readme_template, args.log,
                           args.results_dir)
    write_file(os.path.join(args.output_dir, 'paper.md'), paper)
    write_file(args.readme, readme)


def main(argv=None):
    """Render the paper and README's results, and draw the figures the
    arguments allow."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data-dir', help='CIFAR-10 folder (cifar-10-'
                        'batches-py layout), for the model\'s figures')
    parser.add_argument('--log', default=os.path.join(
        PROJECT_DIR, 'results', 'experiments.jsonl'))
    parser.add_argument('--results-dir', default=os.path.join(
        PROJECT_DIR, 'results'), help='folder of the *.json results')
    parser.add_argument('--model', default=os.path.join(PROJECT_DIR,
                                                        'cifar10.h5'))
    parser.add_argument('--template', default=os.path.join(
        BLOG_DIR, 'paper.template.md'))
    parser.add_argument('--output-dir', default=BLOG_DIR)
    parser.add_argument('--readme', default=os.path.join(PROJECT_DIR,
                                                         'README.md'),
                        help='README whose results block is rendered')
    parser.add_argument('--readme-template', default=os.path.join(
        BLOG_DIR, README_TEMPLATE))
    what = parser.add_mutually_exclusive_group()
    what.add_argument('--text-only', action='store_true',
                      help='render paper.md and README.md\'s results only '
                      '(log and results alone)')
    what.add_argument('--figures-only', action='store_true',
                      help='draw the figures only')
    args = parser.parse_args(argv)

    out = args.output_dir
    if not args.figures_only:
        write_texts(args)
    if args.text_only:
        return
    draw_log_figures(load_sources(args.log, args.results_dir), out)
    if args.data_dir:
        draw_model_figures(args.model, args.data_dir, out)
        print('drew every figure in {}'.format(out))
    else:
        print('drew the log\'s figures in {}; without --data-dir, not '
              'predictions.png and confusion_matrix.png'.format(out))


if __name__ == '__main__':
    main()
