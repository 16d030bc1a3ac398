#!/usr/bin/env python3
"""Benchmark the cached pipeline: epochs, extraction throughput, and time
to accuracy against the usual public method.

Four measurements, each a subcommand, each writing one file in results/:
- epoch (results/benchmark.json): on one data subset, each in a fresh
  process, the frozen pass in float32 and mixed_bfloat16, and the time per
  training image with the cache and through the whole network; the time
  our default run took to reach 87% held-out, from the experiment log;
- throughput (results/throughput.json): the frozen pass of the default
  extractor under one changed setting at a time (batch, chunk, threads,
  oneDNN, bfloat16, XLA), against the CPU's fp32 peak (from
  /proc/cpuinfo), TensorFlow's matmul, and a memory-bandwidth roofline;
- race (results/time_to_accuracy.json): held-out accuracy against wall
  seconds from process start for the fast preset, the default, and the
  usual public method (frozen ImageNet MobileNetV2, Lambda to 224, global
  pooling and a dense head, Keras fit on the images), all on one held-out
  split; time to 87, 90, 93 and 95%;
- ensemble (results/ensemble.json): held-out accuracy of saved models
  (--models) and of the average of their predictions, the first k of
  them for each k.
"""
import argparse
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

PROJECT_DIR = os.path.dirname(os.path.abspath(__file__))
RESULTS_DIR = os.path.join(PROJECT_DIR, 'results')
# Held-out accuracies the race times besides the task's bar.
HIGHER_LEVELS = (0.90, 0.93, 0.95)

# fp32 FLOP per cycle per core = 2 (multiply-add) x lanes x FMA pipes, by
# (vendor, CPU family); AMD's family 25 (Zen 3 and Zen 4) runs 512-bit
# instructions on 256-bit datapaths, family 26 (Zen 5, EPYC) on 512-bit
# ones.  Intel: two 512-bit FMA pipes with AVX-512 (Xeon Gold and
# Platinum; Xeon Silver and some Gold parts have one), else two 256-bit
# ones.  Family 26 is taken to be a server part (mobile Zen 5 has 256-bit
# datapaths).
FLOPS_PER_CYCLE = {('AuthenticAMD', 25): 2 * 8 * 2,
                   ('AuthenticAMD', 26): 2 * 16 * 2}
INTEL_FLOPS_PER_CYCLE = {'avx512f': 2 * 16 * 2, 'avx2': 2 * 8 * 2}

# The usual public method (race): frozen backbone at the ImageNet size,
# Keras' default Adam learning rate, our batch size.
USUAL_IMAGE_SIZE = 224
USUAL_LEARNING_RATE = 1e-3
USUAL_MAX_EPOCHS = 1000  # more than any budget allows: the budget stops it


def transfer_module():
    """Import 0-transfer from the project folder."""
    sys.path.insert(0, PROJECT_DIR)
    return __import__('0-transfer')


def multiply_adds(model):
    """Count a model's multiply-adds per image in its conv and dense layers.

    Conv2D: output pixels x output channels x kernel area x input channels;
    DepthwiseConv2D: output pixels x channels x kernel area; Dense:
    inputs x outputs.  BatchNorm, activations and adds are left out.
    """
    total = 0
    for layer in model.layers:
        if hasattr(layer, 'layers'):
            total += multiply_adds(layer)
        else:
            # Conv2D (h, w, in, out), DepthwiseConv2D (h, w, in, 1) and
            # Dense (in, out) kernels: one multiply-add per kernel entry
            # per output pixel.  Keras 2 names the depthwise one apart.
            kernel = getattr(layer, 'depthwise_kernel', None)
            if kernel is None:
                kernel = getattr(layer, 'kernel', None)
            if kernel is not None:
                out_pixels = int(np.prod(layer.output.shape[1:-1]))
                total += out_pixels * int(np.prod(kernel.shape))
    return total


def timed(function, repeats):
    """Return the best wall time of function() over repeats calls."""
    best = float('inf')
    for _ in range(repeats):
        start = time.time()
        function()
        best = min(best, time.time() - start)
    return best


def measure_extraction(args, policy):
    """Frozen-pass throughput (images/s, GFLOP/s) under a dtype policy."""
    transfer = transfer_module()
    transfer.K.mixed_precision.set_global_policy(policy)
    images = load_images(transfer, args)
    extractor = default_extractor(transfer, args)
    extractor.predict(images[:args.batch_size], verbose=0)  # warm up
    seconds = timed(lambda: extractor.predict(
        images, batch_size=args.batch_size, verbose=0), 2)
    flops = 2 * multiply_adds(extractor)
    return {'policy': policy, 'images_per_second': len(images) / seconds,
            'gflop_per_image': flops / 1e9,
            'gflop_per_second': flops * len(images) / seconds / 1e9,
            'peak_memory_mib': transfer.peak_memory_mib()}


def measure_training(args, cached):
    """Seconds per training image, with the cache or through everything."""
    transfer = transfer_module()
    images = load_images(transfer, args)
    labels = np.eye(10, dtype='float32')[
        np.arange(len(images)) % 10]
    extractor, classifier, stitched = default_models(transfer, args)
    model = classifier if cached else stitched
    inputs = extractor.predict(images, verbose=0) if cached else images
    transfer.compile_model(
        model, transfer.DEFAULTS['learning_rate'], 1000,
        weight_decay=transfer.DEFAULTS['weight_decay'],
        label_smoothing=transfer.DEFAULTS['label_smoothing'])
    model.fit(inputs[:args.batch_size], labels[:args.batch_size],
              batch_size=args.batch_size, verbose=0)  # warm up
    seconds = timed(lambda: model.fit(inputs, labels,
                                      batch_size=args.batch_size,
                                      verbose=0), 2)
    return {'method': 'cached' if cached else 'no_cache',
            'seconds_per_image': seconds / len(images),
            'trainable_params': int(sum(np.prod(w.shape) for w in
                                        model.trainable_weights)),
            'peak_memory_mib': transfer.peak_memory_mib()}


def load_images(transfer, args):
    """Return the first --images training images as float32."""
    (x_train, _), _ = transfer.load_cifar10(args.data_dir)
    return x_train[:args.images].astype('float32')


def reached(accuracy, level):
    """Whether a logged float32 accuracy reaches level (0.9 is logged as
    0.8999999761581421)."""
    return round(accuracy, 6) >= level


def time_to_target(log_path, defaults, train_seconds_per_image, target):
    """Time to target on the held-out split of the last logged run of the
    default configuration (an option missing from an older record had no
    effect then) made from scratch (no cache reused), and the
    no-cache method's time extrapolated to the same number of epochs: both
    make the same updates, the no-cache one recomputing the frozen prefix
    for every image."""
    with open(log_path) as f:
        records = [json.loads(line) for line in f]
    runs = [r for r in records if r['config'].get('data_dir')
            and all(r['config'].get(k, v) == v for k, v in defaults.items())
            and not any(r['cache_reused'].values())
            and any(reached(e['val_accuracy'], target)
                    for e in r['epochs'])]
    if not runs:
        return None
    run = runs[-1]
    epoch = next(e for e in run['epochs']
                 if reached(e['val_accuracy'], target))
    before_training = sum(run['timings'][stage] for stage in
                          ('load_data', 'build', 'extract'))
    images_per_epoch = 2 * run['train_images']  # with the flipped copies
    return {'run_finished': run['finished'], 'config': run['config'],
            'epochs_to_target': epoch['epoch'],
            'ours_seconds': before_training + epoch['seconds'],
            'ours_extraction_seconds': run['timings']['extract'],
            'no_cache_seconds_extrapolated':
            epoch['epoch'] * images_per_epoch * train_seconds_per_image}


def in_fresh_process(function, *args, env=None):
    """Run function(*args) in a new Python process, with env added to its
    environment; return its result."""
    saved = dict(os.environ)
    os.environ.update(env or {})
    try:
        context = multiprocessing.get_context('spawn')
        with context.Pool(1, maxtasksperchild=1) as pool:
            return pool.apply(function, args)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def cpu_facts(path='/proc/cpuinfo'):
    """Vendor, family, model, name, flags and clock of the first CPU."""
    with open(path) as f:
        first = f.read().split('\n\n')[0]
    fields = dict((k.strip(), v.strip()) for k, _, v in
                  (line.partition(':') for line in first.splitlines()))
    return {'vendor': fields['vendor_id'], 'family': int(fields['cpu family']),
            'model': int(fields['model']), 'name': fields['model name'],
            'flags': fields['flags'].split(), 'mhz': float(fields['cpu MHz'])}


def fp32_flops_per_cycle(cpu):
    """fp32 FLOP per cycle per core of a CPU described by cpu_facts."""
    if cpu['vendor'] == 'GenuineIntel':
        for flag, flops in INTEL_FLOPS_PER_CYCLE.items():
            if flag in cpu['flags']:
                return flops
    return FLOPS_PER_CYCLE[cpu['vendor'], cpu['family']]


def fp32_peak(cpu, cores):
    """Theoretical fp32 GFLOP/s of cores at the clock /proc/cpuinfo shows."""
    return cores * cpu['mhz'] / 1e3 * fp32_flops_per_cycle(cpu)


# ---------------------------------------------------------------- epoch

def epoch_benchmark(args):
    """The per-image epoch comparison (results/benchmark.json)."""
    extraction = [in_fresh_process(measure_extraction, args, policy)
                  for policy in ('float32', 'mixed_bfloat16')]
    cached, no_cache = (in_fresh_process(measure_training, args, cached)
                        for cached in (True, False))
    cpu = cpu_facts()
    peak = fp32_peak(cpu, os.cpu_count())
    defaults = transfer_module().DEFAULTS
    for entry in extraction:
        entry['fraction_of_fp32_peak'] = entry['gflop_per_second'] / peak
    return {'extraction': extraction, 'training': [cached, no_cache],
            'fp32_peak_gflop_per_second': peak,
            'epoch_speedup': no_cache['seconds_per_image']
            / cached['seconds_per_image'],
            'time_to_87': time_to_target(args.log, defaults,
                                         no_cache['seconds_per_image'],
                                         transfer_module().TASK_ACCURACY)}


# ------------------------------------------------ extraction throughput

# What may move the frozen pass, one change at a time from the pipeline's
# own setting (batch 128, CHUNK_BATCHES batches per predict call,
# TensorFlow's default threads, oneDNN on, float32, no XLA).  env is set
# before TensorFlow loads.
THROUGHPUT_SETTINGS = (
    [{'name': 'pipeline'},
     {'name': 'pipeline, writing the cache file', 'write_cache': True}]
    + [{'name': 'batch {}'.format(b), 'batch_size': b}
       for b in (8, 32, 512)]
    + [{'name': 'batches per predict call: {}'.format(c),
        'chunk_batches': c} for c in (1, 4)]
    + [{'name': 'threads: intra-op {}, inter-op {}'.format(a, e),
        'intra_op': a, 'inter_op': e} for a, e in ((1, 1), (2, 1), (1, 2))]
    + [{'name': 'TFLite (XNNPACK)', 'engine': 'tflite'},
       {'name': 'TFLite, one interpreter on every core', 'engine': 'tflite',
        'interpreters': 1},
       {'name': 'oneDNN off', 'env': {'TF_ENABLE_ONEDNN_OPTS': '0'}},
       {'name': 'mixed_bfloat16', 'policy': 'mixed_bfloat16'},
       {'name': 'XLA (jit_compile)', 'jit_compile': True}])


def default_models(transfer, args):
    """The default configuration's models, at args.image_size and with
    args.weights."""
    backbone = transfer.DEFAULTS['backbone']
    return transfer.build_models(
        backbone, args.image_size, args.weights,
        transfer.BACKBONES[backbone][1], transfer.DEFAULTS['dropout'])


def default_extractor(transfer, args):
    """The default configuration's extractor (Lambda + frozen prefix)."""
    return default_models(transfer, args).extractor


def measure_setting(args, setting):
    """Frozen-pass throughput of the default extractor under one setting:
    the pipeline's extract_features (predict, then float16), or with
    write_cache its cached_features (which also hashes the images, writes
    the cache file and checksums it)."""
    transfer = transfer_module()
    tf = transfer.tf
    tf.config.threading.set_intra_op_parallelism_threads(
        setting.get('intra_op', 0))
    tf.config.threading.set_inter_op_parallelism_threads(
        setting.get('inter_op', 0))
    transfer.K.mixed_precision.set_global_policy(
        setting.get('policy', 'float32'))
    images = load_images(transfer, args)
    extractor = default_extractor(transfer, args)
    if setting.get('jit_compile'):
        extractor.compile(jit_compile=True)
    batch_size = setting.get('batch_size', transfer.DEFAULTS['batch_size'])
    chunk_batches = setting.get('chunk_batches', transfer.CHUNK_BATCHES)
    frozen = transfer.FrozenPass(extractor, batch_size,
                                 setting.get('engine', 'keras'),
                                 setting.get('interpreters'))

    def extract():
        """The pipeline's extraction loop, its output dropped."""
        if setting.get('write_cache'):
            with tempfile.TemporaryDirectory() as cache_dir:
                transfer.cached_features(frozen, images, 'benchmark',
                                         cache_dir, {})
        else:
            for _ in transfer.extract_features(frozen, images,
                                               chunk_batches):
                pass

    frozen(images[:batch_size])  # warm up: tracing, XLA or TFLite compiling
    seconds = timed(extract, 2)
    flops = 2 * multiply_adds(extractor)
    return dict(setting, batch_size=batch_size, chunk_batches=chunk_batches,
                images_per_second=len(images) / seconds,
                gflop_per_second=flops * len(images) / seconds / 1e9,
                peak_memory_mib=transfer.peak_memory_mib())


def layer_traffic(model, K):
    """Bytes per image that a model's layers read and write in float32.

    Returns (unfused, fused): every layer reading its inputs and weights
    and writing its output once, or, as when BatchNorm, ReLU6 and padding
    are fused into the convolution before them, only the convolutions,
    additions and Lambdas doing so.  Caches are taken to keep nothing
    between layers, which holds when a batch's maps exceed the L3 cache.
    """
    fused_types = (K.layers.Conv2D, K.layers.DepthwiseConv2D,
                   K.layers.Add, K.layers.Lambda)
    unfused = fused = 0
    for layer in model.layers:
        if hasattr(layer, 'layers'):
            inner = layer_traffic(layer, K)
            unfused, fused = unfused + inner[0], fused + inner[1]
        elif not isinstance(layer, K.layers.InputLayer):
            tensors = layer.input if isinstance(layer.input, list) else [
                layer.input]
            elements = sum(int(np.prod(t.shape[1:])) for t in tensors)
            elements += int(np.prod(layer.output.shape[1:]))
            elements += sum(int(np.prod(w.shape)) for w in layer.weights)
            unfused += 4 * elements
            if isinstance(layer, fused_types):
                fused += 4 * elements
    return unfused, fused


def measure_machine(args):
    """What the machine can do, measured: TensorFlow's fp32 matmul
    GFLOP/s, memory bandwidth (numpy copy on one core, a TensorFlow
    elementwise add on all), and the default extractor's FLOP and bytes
    per image."""
    transfer = transfer_module()
    tf = transfer.tf
    side = args.matmul_size
    a = tf.random.uniform((side, side))
    matmul = timed(lambda: tf.matmul(a, a).numpy(), 3)
    size = args.stream_mib * 2 ** 20
    source = np.ones(size // 4, 'float32')
    target = np.empty_like(source)
    copy = timed(lambda: np.copyto(target, source), 3)
    tensor = tf.constant(source)
    add = timed(lambda: tf.add(tensor, 1.0).numpy(), 3)
    extractor = default_extractor(transfer, args)
    unfused, fused = layer_traffic(extractor, transfer.K)
    return {'matmul_gflop_per_second': 2 * side ** 3 / matmul / 1e9,
            # read + write, as STREAM counts them
            'numpy_copy_gb_per_second': 2 * size / copy / 1e9,
            # the add reads and writes once, .numpy() copies the result
            'tensorflow_add_gb_per_second': 4 * size / add / 1e9,
            'gflop_per_image': 2 * multiply_adds(extractor) / 1e9,
            'unfused_mb_per_image': unfused / 1e6,
            'fused_mb_per_image': fused / 1e6}


def throughput_benchmark(args):
    """The extraction throughput study (results/throughput.json)."""
    cpu = cpu_facts()
    peak = fp32_peak(cpu, os.cpu_count())  # fails early on an unknown CPU
    machine = in_fresh_process(measure_machine, args)
    # Rounds of every setting in turn, each in a fresh process; the best
    # round counts (other load on the machine only ever slows a pass).
    rounds = [[in_fresh_process(measure_setting, args, setting,
                                env=setting.get('env'))
               for setting in THROUGHPUT_SETTINGS]
              for _ in range(args.rounds)]
    settings = [dict(max(measured, key=lambda m: m['images_per_second']),
                     images_per_second_by_round=[
                         m['images_per_second'] for m in measured])
                for measured in zip(*rounds)]
    bandwidth = max(machine['numpy_copy_gb_per_second'],
                    machine['tensorflow_add_gb_per_second'])
    for entry in settings:
        entry['fraction_of_fp32_peak'] = entry['gflop_per_second'] / peak
    return {'fp32_flops_per_cycle_per_core': fp32_flops_per_cycle(cpu),
            'fp32_peak_gflop_per_second': peak,
            'measured': machine, 'settings': settings,
            # images/s if memory traffic alone set the pace
            'bandwidth_bound_images_per_second': {
                kind: bandwidth * 1e3 / machine[kind + '_mb_per_image']
                for kind in ('unfused', 'fused')}}


# ----------------------------------------------------------------- race

def race_levels():
    """The held-out accuracies the race times: the task's bar, then
    HIGHER_LEVELS."""
    return (transfer_module().TASK_ACCURACY,) + HIGHER_LEVELS


def time_to_levels(points):
    """Seconds to each of race_levels() (None if never reached) and the
    best accuracy, from a curve's points (seconds, accuracy)."""
    seconds_to = {}
    for level in race_levels():
        times = [p['seconds'] for p in points
                 if reached(p['accuracy'], level)]
        seconds_to['{:.0f}'.format(100 * level)] = min(times, default=None)
    return {'seconds_to': seconds_to,
            'best_accuracy': max(p['accuracy'] for p in points)}


def run_pipeline(args, name, options, work):
    """Run 0-transfer.py from an empty cache; return its curve: each
    epoch's single-view held-out accuracy at its end."""
    note = 'benchmark race: {} ({})'.format(name, ' '.join(options) or
                                            'default options')
    command = [sys.executable, os.path.join(PROJECT_DIR, '0-transfer.py'),
               '--data-dir', os.path.abspath(args.data_dir),
               '--weights', os.path.abspath(args.weights),
               '--cache-dir', os.path.join(work, name + '-cache'),
               '--output', os.path.join(work, name + '.h5'),
               '--log', args.log, '--note', note] + options
    subprocess.run(command, check=True, cwd=work)
    with open(args.log) as f:
        record = [json.loads(line) for line in f][-1]
    if record['config']['note'] != note:
        raise RuntimeError('another run wrote to {} meanwhile'.format(
            args.log))
    points = [{'seconds': e['seconds_since_process_start'],
               'accuracy': e['val_accuracy'], 'epoch': e['epoch']}
              for e in record['epochs']]
    return dict(time_to_levels(points), name=name, options=options,
                points=points, run_finished=record['finished'],
                seconds_to_saved_model=record['seconds_to_saved_model'],
                saved_model_holdout_accuracy=record['accuracy']['holdout'])


def train_usual_method(args, holdout):
    """The usual public method: ImageNet MobileNetV2, frozen, behind a
    Lambda that upsizes to 224; global average pooling and a dense softmax
    head; Keras fit on the images (every step runs the whole network) with
    validation on the held-out split after each epoch; stopped after
    args.budget_minutes of wall time since process start."""
    transfer = transfer_module()
    K = transfer.K
    (x_train, y_train), _ = transfer.load_cifar10(args.data_dir)
    holdout_index, fit_index = transfer.split_indices(len(x_train), holdout)
    backbone = K.applications.MobileNetV2(
        include_top=False, weights=args.weights,
        input_shape=(USUAL_IMAGE_SIZE, USUAL_IMAGE_SIZE, 3))
    backbone.trainable = False
    images = K.Input(transfer.IMAGE_SHAPE)
    x = K.layers.Lambda(transfer.upsize_images, arguments={
        'size': USUAL_IMAGE_SIZE, 'application': 'mobilenet_v2'})(images)
    x = K.layers.GlobalAveragePooling2D()(backbone(x, training=False))
    model = K.Model(images, K.layers.Dense(
        transfer.NUM_CLASSES, activation='softmax')(x))
    model.compile(optimizer=K.optimizers.Adam(USUAL_LEARNING_RATE),
                  loss='categorical_crossentropy', metrics=['accuracy'])
    budget = 60 * args.budget_minutes
    points = []

    class Clock(K.callbacks.Callback):
        """Stop at the budget; note each epoch's held-out accuracy."""

        def on_train_batch_end(self, batch, logs=None):
            """Stop (the epoch is then validated) once over budget."""
            if transfer.seconds_since_process_start() > budget:
                self.model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            """Note the time and held-out accuracy."""
            points.append({'seconds': transfer.seconds_since_process_start(),
                           'accuracy': float(logs['val_accuracy']),
                           'epoch': epoch + 1})

    model.fit(x_train[fit_index].astype('float32'),
              transfer.one_hot(y_train[fit_index]),
              batch_size=transfer.DEFAULTS['batch_size'],
              epochs=USUAL_MAX_EPOCHS,
              validation_data=(x_train[holdout_index].astype('float32'),
                               transfer.one_hot(y_train[holdout_index])),
              callbacks=[Clock()], verbose=2)
    return dict(time_to_levels(points), name='usual', points=points,
                image_size=USUAL_IMAGE_SIZE,
                learning_rate=USUAL_LEARNING_RATE,
                budget_minutes=args.budget_minutes,
                peak_memory_mib=transfer.peak_memory_mib())


def race_benchmark(args):
    """Time to accuracy of the fast preset, the default and the usual
    method, one after the other, on the default held-out split."""
    holdout = str(transfer_module().DEFAULTS['holdout'])
    with tempfile.TemporaryDirectory() as work:
        curves = [run_pipeline(args, 'fast', ['--preset', 'fast',
                                              '--holdout', holdout], work),
                  run_pipeline(args, 'default', [], work)]
    curves.append(in_fresh_process(train_usual_method, args, int(holdout)))
    usual = curves[-1]['seconds_to']
    for curve in curves:
        curve['usual_over_this'] = {
            level: usual[level] / seconds for level, seconds in
            curve['seconds_to'].items() if seconds and usual[level]}
    return {'curves': curves, 'holdout': int(holdout)}


def ensemble_accuracies(probabilities, labels):
    """Accuracy of each model's probabilities, and of the mean of the
    first k models' for k = 1, 2, ..."""
    def accuracy(p):
        """Fraction of the images whose top class is their label."""
        return float(np.mean(np.argmax(p, 1) == labels))
    return {'each': [accuracy(p) for p in probabilities],
            'first_k_averaged': [accuracy(np.mean(probabilities[:k], 0))
                                 for k in range(1, len(probabilities) + 1)]}


def ensemble_benchmark(args):
    """Held-out accuracy of the saved --models alone and averaged, on the
    held-out split of the logged runs that wrote them (the last run logged
    with each as --output), which must share it."""
    transfer = transfer_module()
    with open(args.log) as f:
        records = [json.loads(line) for line in f]
    runs = []
    for path in args.models:
        writers = [r for r in records if os.path.abspath(
            r['config']['output']) == os.path.abspath(path)]
        if not writers:
            sys.exit('no run in {} wrote {}'.format(args.log, path))
        runs.append(writers[-1])
    if len({r['config']['holdout'] for r in runs}) != 1:
        sys.exit('the models were trained on different held-out splits')
    split = transfer.load_split(args.data_dir,
                                runs[0]['config']['holdout'], 0)
    probabilities = [transfer.K.models.load_model(path).predict(
        split.holdout_images.astype('float32'), batch_size=args.batch_size,
        verbose=0) for path in args.models]
    return dict(ensemble_accuracies(probabilities, split.holdout_labels),
                models=args.models, holdout=len(split.holdout_labels),
                runs_finished=[r['finished'] for r in runs])


def main(argv=None):
    """Run one benchmark and write its results file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('benchmark', choices=('epoch', 'throughput', 'race',
                                              'ensemble'))
    parser.add_argument('--data-dir', required=True)
    parser.add_argument('--weights', help='backbone weights (all but '
                        'ensemble)')
    parser.add_argument('--images', type=int, default=512,
                        help='training images timed (epoch, throughput)')
    defaults = transfer_module().DEFAULTS
    parser.add_argument('--image-size', type=int,
                        default=defaults['image_size'])
    parser.add_argument('--batch-size', type=int,
                        default=defaults['batch_size'])
    parser.add_argument('--matmul-size', type=int, default=4096)
    parser.add_argument('--stream-mib', type=int, default=512,
                        help='array size of the bandwidth measurement')
    parser.add_argument('--rounds', type=int, default=2,
                        help='measurements of each setting (throughput)')
    parser.add_argument('--budget-minutes', type=float, default=25,
                        help='wall time of the usual method (race)')
    parser.add_argument('--models', nargs='+',
                        help='saved models to average (ensemble)')
    parser.add_argument('--log', default=os.path.join(
        RESULTS_DIR, 'experiments.jsonl'))
    parser.add_argument('--output', help='default: results/benchmark.json, '
                        'throughput.json, time_to_accuracy.json or '
                        'ensemble.json')
    args = parser.parse_args(argv)
    needed = 'models' if args.benchmark == 'ensemble' else 'weights'
    if not getattr(args, needed):
        parser.error('the {} benchmark needs --{}'.format(args.benchmark,
                                                          needed))
    output = args.output or os.path.join(RESULTS_DIR, {
        'epoch': 'benchmark.json', 'throughput': 'throughput.json',
        'race': 'time_to_accuracy.json',
        'ensemble': 'ensemble.json'}[args.benchmark])
    run = {'epoch': epoch_benchmark, 'throughput': throughput_benchmark,
           'race': race_benchmark,
           'ensemble': ensemble_benchmark}[args.benchmark]
    cpu = {k: v for k, v in cpu_facts().items() if k != 'flags'}
    commit = transfer_module().source_commit()  # before: HEAD may move
    result = dict(run(args), config=vars(args), machine=platform.platform(),
                  cpu=cpu, cores=os.cpu_count(), commit=commit)
    with open(output, 'w') as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result, indent=1))


if __name__ == '__main__':
    main()
