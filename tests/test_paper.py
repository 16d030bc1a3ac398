#!/usr/bin/env python3
"""The paper: its generator runs on a small log, its numbers are logged."""
import json
import os
import re

import pytest

from conftest import PROJECT_DIR, TINY_ARGS, run_python, run_transfer

BLOG = os.path.join(PROJECT_DIR, 'blog')
LOG = os.path.join(PROJECT_DIR, 'results', 'experiments.jsonl')
FIGURES = ['predictions.png', 'learning_curves.png',
           'accuracy_vs_cpu_minutes.png', 'confusion_matrix.png',
           'benchmark.png']


def logged_percentages(path):
    """Every accuracy in a log, formatted as the paper quotes them."""
    with open(path) as f:
        records = [json.loads(line) for line in f if line.strip()]
    quoted = set()
    for record in records:
        values = list(record['accuracy'].values())
        values += [e['val_accuracy'] for e in record['epochs']]
        quoted |= {'{:.2f}%'.format(100 * v) for v in values}
    return quoted


def test_generator_runs_on_a_small_log(tmp_path, cifar_dir):
    """Two tiny runs, then every figure and the paper from their log."""
    args = TINY_ARGS + ['--data-dir', cifar_dir]
    for seed in ('0', '1'):
        result = run_transfer(args + ['--seed', seed], tmp_path)
        assert result.returncode == 0, result.stderr[-2000:]
    out = tmp_path / 'blog'
    out.mkdir()
    result = run_python([os.path.join(BLOG, 'make_figures.py'),
                         '--data-dir', cifar_dir,
                         '--log', str(tmp_path / 'results' /
                                      'experiments.jsonl'),
                         '--model', str(tmp_path / 'cifar10.h5'),
                         '--output-dir', str(out)], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in FIGURES:
        assert (out / name).stat().st_size > 1000, name
    paper = (out / 'paper.md').read_text()
    assert '{{' not in paper
    table = paper[paper.index('### 3.2'):paper.index('### 3.3')]
    assert set(re.findall(r'\d+\.\d\d%', table)) <= logged_percentages(
        str(tmp_path / 'results' / 'experiments.jsonl'))


@pytest.mark.skipif(not os.path.exists(os.path.join(BLOG, 'paper.md')),
                    reason='no paper yet')
def test_every_accuracy_in_the_paper_is_in_the_log():
    """Each two-decimal percentage of blog/paper.md is a logged accuracy."""
    with open(os.path.join(BLOG, 'paper.md')) as f:
        quoted = set(re.findall(r'\d+\.\d\d%', f.read()))
    assert quoted
    assert quoted <= logged_percentages(LOG), quoted - logged_percentages(LOG)


def test_paper_links_only_existing_figures():
    """Every image the paper shows is committed beside it."""
    with open(os.path.join(BLOG, 'paper.template.md')) as f:
        linked = re.findall(r'!\[[^\]]*\]\(([^)]+)\)', f.read())
    assert 'predictions.png' == linked[0]
    for name in linked:
        assert os.path.exists(os.path.join(BLOG, name)), name
