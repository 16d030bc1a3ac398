#!/usr/bin/env python3
"""Draw the paper's figures into blog/: all but the confusion matrix from
the log and results/ (matplotlib); with --data-dir, also cifar10.h5's
confusion matrix on the exact test images (TensorFlow).
"""
import argparse
import os
import sys

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report  # noqa: E402

CLASSES = 'airplane automobile bird cat deer dog frog horse ship truck'.split()


def save(fig, ax, name, out, **labels):
    """Label the axes, write the figure as out/name and close it."""
    ax.set(**labels)
    fig.tight_layout()
    fig.savefig(os.path.join(out, name), dpi=120)
    plt.close(fig)


def method(d, out):
    """The method at a glance: what runs once, the cache, what trains."""
    fig, ax = plt.subplots(figsize=(9, 3.6))
    ax.axis('off')
    o = d.defaults
    for x, y, w, text, colour in [
            (0.1, 2.2, 1.6, 'CIFAR-10\nimages\n32x32', '#eeeeee'),
            (1.9, 2.2, 1.6, 'upsizing Lambda\n32 to {0}x{0}'.format(
                o['image_size']), '#dde8f5'),
            (3.7, 2.2, 1.9, 'frozen prefix\nup to {}\nruns once'.format(
                o['cut']), '#c8d8ee'),
            (5.9, 2.2, 1.9, 'float16 cache on disk\n{} map per image\n'
             '(memory-mapped, keyed)'.format('x'.join(map(str, d.reported[
                 'feature_shape']))), '#f5e6c8'),
            (5.9, 0.3, 1.9, 'trainable suffix\n+ new head\n{} epochs'.format(
                o['epochs']), '#d5ecd4'),
            (1.9, 0.3, 2.9, 'cifar10.h5: one flat model\nLambda, prefix, '
             'suffix,\nhead, mirror average', '#eeeeee')]:
        ax.add_patch(matplotlib.patches.FancyBboxPatch(
            (x, y), w, 1.1, boxstyle='round,pad=0.05', fc=colour, ec='0.33'))
        ax.text(x + w / 2, y + 0.55, text, ha='center', va='center',
                fontsize=8.5)
    for i, (start, end) in enumerate([
            ((1.7, 2.75), (1.9, 2.75)), ((3.5, 2.75), (3.7, 2.75)),
            ((5.6, 2.75), (5.9, 2.75)), ((6.85, 2.2), (6.85, 1.45)),
            ((5.9, 0.85), (4.85, 0.85)), ((4.6, 2.2), (4.2, 1.45))]):
        ax.annotate('', end, start, arrowprops={
            'arrowstyle': '->', 'lw': 1.5, 'ls': '--' if i == 5 else '-'})
    for x, y, text in [(6.95, 1.8, 'batches of cached maps\n(training images'
                        ' and mirrors),\nshuffled, shifted by up to one cell'),
                       (2.6, 1.85, 'once: extraction'),
                       (6.4, 0.1, 'every epoch: training'),
                       (2.3, 0.1, 'after training: stitched and saved')]:
        ax.text(x, y, text, fontsize=8, va='center')
    save(fig, ax, 'method.png', out, xlim=(0, 9), ylim=(0, 3.6))


def frontier(d, out):
    """Held-out accuracy against CPU-minutes, every run; default starred."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for r in d.runs:
        star = report.options(r) == report.options(d.reported)
        x, y = r['cpu_minutes'], 100 * r['accuracy']['holdout']
        ax.plot(x, y, '*' if star else 'o', ms=11 if star else 6,
                color='C3' if star else 'C0', fillstyle='full' if
                r['cpu_logged'] and r['extracted'] else 'none')
        ax.annotate(r['number'], (x, y), xytext=(4, -3), fontsize=7,
                    textcoords='offset points')
    for e in d.ensembles.values():  # k models averaged: their CPU-minutes
        for k, accuracy in enumerate(e['first_k_averaged'][1:], 2):
            runs = e['runs'][:k]
            x, y = sum(r['cpu_minutes'] for r in runs), 100 * accuracy
            ax.plot(x, y, 'D', color='C2')
            ax.annotate('+'.join(str(r['number']) for r in runs), (x, y),
                        xytext=(4, -3), fontsize=7, textcoords='offset points')
    save(fig, ax, 'accuracy_vs_cpu_minutes.png', out, xlabel='CPU-minutes '
         '(user + system; hollow: cache reused, or wall minutes x cores)',
         ylabel='held-out accuracy (%)', title='Accuracy against compute, '
         'every run\n(stars: the default; run {}: the committed model; '
         'diamonds: runs averaged)'.format(d.reported['number']))


def cut_sweep(d, out):
    """Held-out accuracy after each epoch, per cut; the saved model's."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, r in enumerate(d.sweep):
        epochs = [e['epoch'] for e in r['epochs']]
        ax.plot(epochs, [100 * e['val_accuracy'] for e in r['epochs']],
                'o-', color='C{}'.format(i), label='run {}: cut after {}'
                .format(r['number'], r['cut']))
        ax.plot(epochs[-1] + 0.15, 100 * r['accuracy']['holdout'], '*',
                ms=11, color='C{}'.format(i))
    ax.legend(fontsize=8, title='stars: mirror-averaged')
    save(fig, ax, 'cut_sweep.png', out, xticks=epochs, xlabel='epoch',
         ylabel='held-out accuracy (%)', title='Cut sweep, one seed per cut')


def race(d, out):
    """Held-out accuracy after each epoch against wall minutes, per method."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, c in d.curves.items():
        ax.plot([p['seconds'] / 60 for p in c['points']],
                [100 * p['accuracy'] for p in c['points']], 'o-',
                label=name.replace('usual', 'usual recipe').replace(
                    'fast', 'fast preset'))
    for level in c['seconds_to']:
        ax.axhline(float(level), color='grey', ls='--', lw=0.8)
    ax.legend(fontsize=8)
    save(fig, ax, 'time_to_accuracy.png', out, xlim=(0, None),
         xlabel='wall minutes since the process started',
         ylabel='held-out accuracy, single view (%)',
         title='Time to accuracy from an empty cache')


def confusion(model_path, data_dir, out):
    """The saved model's confusion matrix on the exact test images."""
    import numpy as np
    sys.path.insert(0, report.PROJECT)
    transfer = __import__('0-transfer')
    _, (images, labels) = transfer.load_cifar10(data_dir)
    exact = transfer.EXACT_TEST_IMAGES
    labels = np.asarray(labels[:exact]).ravel().astype(int)
    model = transfer.K.models.load_model(model_path)
    predicted = model.predict(transfer.preprocess_data(
        images[:exact], labels)[0], verbose=0).argmax(1)
    matrix = np.bincount(10 * labels + predicted, minlength=100).reshape(
        10, 10)
    fig, ax = plt.subplots(figsize=(6, 5.5))
    ax.imshow(matrix, cmap='Blues')
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, value, ha='center', va='center', fontsize=7,
                color='white' if value > matrix.max() / 2 else 'black')
    ax.set_xticks(range(10), CLASSES, rotation=45, ha='right')
    ax.set_yticks(range(10), CLASSES)
    save(fig, ax, 'confusion_matrix.png', out, xlabel='predicted',
         ylabel='true', title='Confusion matrix of cifar10.h5, exact test '
         'images 0-{}'.format(exact - 1))


def main(argv=None):
    """Draw the figures the arguments allow."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data-dir', help='CIFAR-10 folder, for the '
                        'confusion matrix (needs TensorFlow)')
    parser.add_argument('--output-dir', default=report.BLOG)
    args, d = parser.parse_args(argv), report.load()
    for draw in (method, frontier, cut_sweep, race):
        draw(d, args.output_dir)
    if args.data_dir:
        confusion(os.path.join(report.PROJECT, 'cifar10.h5'), args.data_dir,
                  args.output_dir)


if __name__ == '__main__':
    main()
