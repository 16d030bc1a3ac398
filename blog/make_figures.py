#!/usr/bin/env python3
"""Make the paper's figures and tables from the experiment log and model.

One command regenerates everything in blog/:
    .venv/bin/python blog/make_figures.py \
        --data-dir ../shared/cifar-10-batches-py
It reads results/experiments.jsonl, results/benchmark.json (if present) and
cifar10.h5, writes the PNG figures beside the paper, and renders
blog/paper.md from blog/paper.template.md, replacing each {{name}} with a
number or table computed from the log, so the text cannot drift from it.
"""
import argparse
import json
import os
import re
import sys

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

BLOG_DIR = os.path.dirname(os.path.abspath(__file__))
PROJECT_DIR = os.path.dirname(BLOG_DIR)
CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog',
           'horse', 'ship', 'truck']
EXACT = 1000  # test images 0-999 of the shared copy are exact


def load_records(path):
    """Return the experiment log's records, oldest first."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def percent(value):
    """Format an accuracy in [0, 1] as a percentage with two decimals."""
    return '{:.2f}%'.format(100 * value)


def cpu_minutes(record):
    """The run's CPU time in minutes (user + system).

    Records older than that field get wall minutes times cores, an upper
    bound.
    """
    if 'cpu_seconds' in record:
        return record['cpu_seconds'] / 60
    return record['wall_seconds'] / 60 * record['machine']['cores']


def changes(record, reference):
    """Describe how a record's configuration differs from reference's."""
    skip = {'note', 'log', 'output', 'cache_dir', 'data_dir', 'weights'}
    names = sorted(set(record['config']) | set(reference['config']))
    diff = ['{}={}'.format(k, record['config'].get(k, '(no such option)'))
            for k in names if k not in skip and
            record['config'].get(k) != reference['config'].get(k)]
    return ', '.join(diff) or 'same'


def reported_run(records):
    """The last run on real data that wrote the default cifar10.h5."""
    real = [r for r in records if r['config'].get('data_dir')
            and r['config']['output'] == 'cifar10.h5']
    return (real or records)[-1]


def setup_seconds(record):
    """Seconds spent before training: loading, building, extraction."""
    return sum(record['timings'][stage]
               for stage in ('load_data', 'build', 'extract'))


def time_to(record, accuracy):
    """Seconds from the start until held-out accuracy first reached
    accuracy (extraction included); infinite if it never did."""
    return min([setup_seconds(record) + e['seconds'] for e in record['epochs']
                if e['val_accuracy'] >= accuracy] or [float('inf')])


def experiments_table(records, reference):
    """Markdown table: every run, what changed, why, and its results."""
    lines = ['| # | finished (UTC) | differs from the reported run | why '
             '| epochs | held-out '
             '| test 0-999 (exact) | full test | CPU-min |',
             '| --- | --- | --- | --- | --- | --- | --- | --- | --- |']
    for number, r in enumerate(records, 1):
        a = r['accuracy']
        lines.append('| {} | {} | {} | {} | {} | {} | {} | {} | {:.1f} |'
                     .format(number, r['finished'][:16].replace('T', ' '),
                             changes(r, reference),
                             r['config'].get('note') or '-',
                             r['config']['epochs'], percent(a['holdout']),
                             percent(a['test_exact_0_999']),
                             percent(a['test']), cpu_minutes(r)))
    return '\n'.join(lines)


def plot_learning_curves(records, path):
    """Held-out accuracy after each epoch against wall minutes."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for number, r in enumerate(records, 1):
        minutes = [(setup_seconds(r) + e['seconds']) / 60
                   for e in r['epochs']]
        ax.plot(minutes, [100 * e['val_accuracy'] for e in r['epochs']],
                'o-', label='run {}: {} px{}'.format(
                    number, r['config']['image_size'],
                    ', cache reused' if any(r['cache_reused'].values())
                    else ''))
    ax.axhline(87, color='grey', ls=':', label='87%')
    ax.set(xlabel='wall minutes since start (extraction included)',
           ylabel='held-out accuracy (%)',
           title='Learning curves (input size in the legend)')
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_accuracy_vs_cpu(records, path):
    """Exact-test accuracy of every run against its CPU-minutes."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for number, r in enumerate(records, 1):
        x, y = cpu_minutes(r), 100 * r['accuracy']['test_exact_0_999']
        reused = any(r['cache_reused'].values())
        ax.plot(x, y, 'o', color='C0', fillstyle='none' if reused else 'full')
        ax.annotate(str(number), (x, y), textcoords='offset points',
                    xytext=(4, 4))
    ax.set(xlabel='CPU-minutes (user + system time)',
           ylabel='accuracy on exact test images 0-999 (%)',
           title='Accuracy against compute, every run\n(hollow: cache '
           'reused, its extraction not counted)')
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_predictions(images, labels, predicted, path, count=24):
    """A grid of exact test images with predictions, right or wrong."""
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


def benchmark_values(benchmark):
    """Numbers and a paragraph for the paper from results/benchmark.json."""
    cached, no_cache = benchmark['training']
    fp32, bf16 = benchmark['extraction']
    values = {
        'epoch_speedup': '{:.1f}'.format(benchmark['epoch_speedup']),
        'cached_ms': '{:.1f}'.format(1000 * cached['seconds_per_image']),
        'no_cache_ms': '{:.1f}'.format(1000 * no_cache['seconds_per_image']),
        'cached_mib': '{:.0f}'.format(cached['peak_memory_mib']),
        'no_cache_mib': '{:.0f}'.format(no_cache['peak_memory_mib']),
        'fp32_images_per_second': '{:.0f}'.format(fp32['images_per_second']),
        'bf16_images_per_second': '{:.0f}'.format(bf16['images_per_second']),
        'gflop_per_image': '{:.2f}'.format(fp32['gflop_per_image']),
        'gflop_per_second': '{:.0f}'.format(fp32['gflop_per_second']),
        'peak_fraction': '{:.0f}%'.format(
            100 * fp32['fraction_of_fp32_peak']),
        'fp32_peak': '{:.0f}'.format(benchmark['fp32_peak_gflop_per_second']),
        'benchmark_images': benchmark['config']['images'],
    }
    target = benchmark['time_to_87']
    values['time_to_87'] = 'not reached in the log' if target is None else (
        '{:.1f} minutes with the cache ({:.1f} of them extraction, then {} '
        'epoch) against about {:.1f} minutes extrapolated without it'
        .format(target['ours_seconds'] / 60,
                target['ours_extraction_seconds'] / 60,
                target['epochs_to_target'],
                target['no_cache_seconds_extrapolated'] / 60))
    return values


def whole_run_values(record, benchmark):
    """The reported run's extraction + training minutes, and the same
    epochs without the cache, extrapolated from the benchmark."""
    no_cache = benchmark['training'][1]['seconds_per_image']
    images = 2 * record['train_images'] * record['config']['epochs']
    return {'ours_run_minutes': '{:.1f}'.format(
                (record['timings']['extract'] + record['timings']['train'])
                / 60),
            'no_cache_run_minutes': '{:.1f}'.format(images * no_cache / 60)}


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


def render(template_path, values, output_path):
    """Replace each {{name}} of the template; refuse unknown names."""
    with open(template_path) as f:
        text = f.read()
    unknown = set(re.findall(r'{{(\w+)}}', text)) - set(values)
    if unknown:
        raise KeyError('template names without a value: {}'
                       .format(sorted(unknown)))
    text = re.sub(r'{{(\w+)}}', lambda m: str(values[m.group(1)]), text)
    with open(output_path, 'w') as f:
        f.write(text)


def main(argv=None):
    """Make every figure and render the paper."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data-dir', required=True,
                        help='CIFAR-10 folder (cifar-10-batches-py layout)')
    parser.add_argument('--log', default=os.path.join(
        PROJECT_DIR, 'results', 'experiments.jsonl'))
    parser.add_argument('--benchmark', default=os.path.join(
        PROJECT_DIR, 'results', 'benchmark.json'))
    parser.add_argument('--model', default=os.path.join(PROJECT_DIR,
                                                        'cifar10.h5'))
    parser.add_argument('--template', default=os.path.join(
        BLOG_DIR, 'paper.template.md'))
    parser.add_argument('--output-dir', default=BLOG_DIR)
    args = parser.parse_args(argv)

    records = load_records(args.log)
    main_run = reported_run(records)
    out = args.output_dir
    plot_learning_curves(records, os.path.join(out, 'learning_curves.png'))
    plot_accuracy_vs_cpu(records,
                         os.path.join(out, 'accuracy_vs_cpu_minutes.png'))
    images, labels, predicted = model_predictions(args.model, args.data_dir)
    plot_predictions(images, labels, predicted,
                     os.path.join(out, 'predictions.png'))
    plot_confusion(labels, predicted,
                   os.path.join(out, 'confusion_matrix.png'))
    values = {
        'experiments_table': experiments_table(records, main_run),
        'runs': len(records),
        'holdout': percent(main_run['accuracy']['holdout']),
        'test_exact': percent(main_run['accuracy']['test_exact_0_999']),
        'test_full': percent(main_run['accuracy']['test']),
        'wall_minutes': '{:.1f}'.format(main_run['wall_seconds'] / 60),
        'extract_minutes': '{:.1f}'.format(
            main_run['timings']['extract'] / 60),
        'train_minutes': '{:.1f}'.format(main_run['timings']['train'] / 60),
        'peak_gib': '{:.1f}'.format(main_run['peak_memory_mib'] / 1024),
        'epochs': main_run['config']['epochs'],
        'image_size': main_run['config']['image_size'],
        'time_to_87_minutes': '{:.1f}'.format(time_to(main_run, 0.87) / 60),
        'train_images': main_run['train_images'],
        'extracted_images': '{:,}'.format(2 * main_run['train_images']
                                          + main_run['config']['holdout']),
        'versions': 'TensorFlow {tensorflow}, Keras {keras}, Python {python}, '
                    'numpy {numpy}, {cores} cores of an {cpu}'
                    .format(**main_run['machine']),
    }
    with open(args.benchmark) as f:
        benchmark = json.load(f)
    plot_benchmark(benchmark, os.path.join(out, 'benchmark.png'))
    values.update(benchmark_values(benchmark))
    values.update(whole_run_values(main_run, benchmark))
    render(args.template, values, os.path.join(out, 'paper.md'))
    print('wrote figures and paper.md to {}'.format(out))


if __name__ == '__main__':
    main()
