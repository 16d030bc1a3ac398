#!/usr/bin/env python3
"""Benchmark the cached pipeline against training through the whole network.

In one run on one data subset, each measurement in a fresh process (so
that its peak resident memory is its own):
- frozen-pass throughput of the extractor (Lambda + frozen prefix), in
  images/s and GFLOP/s, in float32 and under the mixed_bfloat16 policy;
- time per training image of our method (suffix + head on cached
  activations) and of the usual one (the same frozen backbone and head
  trained on upsized images through the whole network every epoch);
- from the experiment log, the time our default run took to reach 87% on
  the held-out split, and the no-cache time extrapolated from the same
  number of epochs (both methods make the same updates).
Writes results/benchmark.json and prints a summary.
"""
import argparse
import json
import multiprocessing
import os
import platform
import resource
import sys
import time

import numpy as np

PROJECT_DIR = os.path.dirname(os.path.abspath(__file__))
TARGET = 0.87
# Zen 5 cores: two 512-bit FMA pipes = 32 fp32 multiply-adds per cycle.
FP32_FLOPS_PER_CYCLE = 64


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


def peak_mib():
    """Return this process's peak resident memory in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


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
    extractor, _, _ = transfer.build_models(
        'MobileNetV2', args.image_size, args.weights,
        transfer.BACKBONES['MobileNetV2'][1], 0.2)
    extractor.predict(images[:args.batch_size], verbose=0)  # warm up
    seconds = timed(lambda: extractor.predict(
        images, batch_size=args.batch_size, verbose=0), 2)
    flops = 2 * multiply_adds(extractor)
    return {'policy': policy, 'images_per_second': len(images) / seconds,
            'gflop_per_image': flops / 1e9,
            'gflop_per_second': flops * len(images) / seconds / 1e9,
            'peak_memory_mib': peak_mib()}


def measure_training(args, cached):
    """Seconds per training image, with the cache or through everything."""
    transfer = transfer_module()
    images = load_images(transfer, args)
    labels = np.eye(10, dtype='float32')[
        np.arange(len(images)) % 10]
    extractor, trainer, stitched = transfer.build_models(
        'MobileNetV2', args.image_size, args.weights,
        transfer.BACKBONES['MobileNetV2'][1], 0.2)
    model = trainer if cached else stitched
    inputs = extractor.predict(images, verbose=0) if cached else images
    transfer.compile_model(model, 3e-4, 0.1, 1000)
    model.fit(inputs[:args.batch_size], labels[:args.batch_size],
              batch_size=args.batch_size, verbose=0)  # warm up
    seconds = timed(lambda: model.fit(inputs, labels,
                                      batch_size=args.batch_size,
                                      verbose=0), 2)
    return {'method': 'cached' if cached else 'no_cache',
            'seconds_per_image': seconds / len(images),
            'trainable_params': int(sum(np.prod(w.shape) for w in
                                        model.trainable_weights)),
            'peak_memory_mib': peak_mib()}


def load_images(transfer, args):
    """Return the first --images training images as float32."""
    (x_train, _), _ = transfer.load_cifar10(args.data_dir)
    return x_train[:args.images].astype('float32')


def time_to_target(log_path, defaults, train_seconds_per_image):
    """Time to TARGET on the held-out split of the last logged run of the
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
            and any(e['val_accuracy'] >= TARGET for e in r['epochs'])]
    if not runs:
        return None
    run = runs[-1]
    epoch = next(e for e in run['epochs'] if e['val_accuracy'] >= TARGET)
    before_training = sum(run['timings'][stage] for stage in
                          ('load_data', 'build', 'extract'))
    images_per_epoch = 2 * run['train_images']  # with the flipped copies
    return {'run_finished': run['finished'], 'config': run['config'],
            'epochs_to_target': epoch['epoch'],
            'ours_seconds': before_training + epoch['seconds'],
            'ours_extraction_seconds': run['timings']['extract'],
            'no_cache_seconds_extrapolated':
            epoch['epoch'] * images_per_epoch * train_seconds_per_image}


def in_fresh_process(function, *args):
    """Run function(*args) in a new Python process; return its result."""
    context = multiprocessing.get_context('spawn')
    with context.Pool(1, maxtasksperchild=1) as pool:
        return pool.apply(function, args)


def main():
    """Run every measurement and write results/benchmark.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data-dir', required=True)
    parser.add_argument('--weights', required=True)
    parser.add_argument('--images', type=int, default=512)
    defaults = transfer_module().DEFAULTS
    parser.add_argument('--image-size', type=int,
                        default=defaults['image_size'])
    parser.add_argument('--batch-size', type=int, default=128)
    parser.add_argument('--ghz', type=float, default=2.6,
                        help='core clock for the fp32 peak (cpu MHz)')
    parser.add_argument('--log', default=os.path.join(
        PROJECT_DIR, 'results', 'experiments.jsonl'))
    parser.add_argument('--output', default=os.path.join(
        PROJECT_DIR, 'results', 'benchmark.json'))
    args = parser.parse_args()

    extraction = [in_fresh_process(measure_extraction, args, policy)
                  for policy in ('float32', 'mixed_bfloat16')]
    cached, no_cache = (in_fresh_process(measure_training, args, cached)
                        for cached in (True, False))
    peak = os.cpu_count() * args.ghz * FP32_FLOPS_PER_CYCLE
    result = {
        'config': vars(args), 'machine': platform.platform(),
        'cores': os.cpu_count(), 'fp32_peak_gflop_per_second': peak,
        'extraction': extraction, 'training': [cached, no_cache],
        'epoch_speedup': no_cache['seconds_per_image']
        / cached['seconds_per_image'],
        'time_to_87': time_to_target(args.log, defaults,
                                     no_cache['seconds_per_image']),
    }
    for entry in extraction:
        entry['fraction_of_fp32_peak'] = entry['gflop_per_second'] / peak
    with open(args.output, 'w') as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result, indent=1))


if __name__ == '__main__':
    main()
