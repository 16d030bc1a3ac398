#!/usr/bin/env python3
"""The paper and README.md's results: each is the rendering of its template
from the log and results, no number is typed into either template by hand,
and the generator runs on a small log and on records of every vintage."""
import copy
import difflib
import os
import re

import pytest

from conftest import (PROJECT_DIR, TINY_ARGS, load_module, run_python,
                      run_transfer)

# The paper is rendered with the dev tools of today's stack; the task's
# stack (Python 3.8, TensorFlow 2.6) installs no matplotlib.
pytest.importorskip('matplotlib', reason='the paper is rendered on '
                    'TensorFlow 2.21\'s stack, which has matplotlib')

BLOG = os.path.join(PROJECT_DIR, 'blog')
RESULTS = os.path.join(PROJECT_DIR, 'results')
LOG = os.path.join(RESULTS, 'experiments.jsonl')
TEMPLATE = os.path.join(BLOG, 'paper.template.md')
PAPER = os.path.join(BLOG, 'paper.md')
README = os.path.join(PROJECT_DIR, 'README.md')
README_TEMPLATE = os.path.join(BLOG, 'readme_results.template.md')
FIGURES = ['predictions.png', 'learning_curves.png',
           'accuracy_vs_cpu_minutes.png', 'confusion_matrix.png',
           'benchmark.png']
MARK = '\x00'  # stands for each placeholder's value in the literal text
CODE = '\x01'  # stands for each inline code span in the prose

# The only numbers the template may state itself, outside code: each
# pattern is matched on the prose with whitespace collapsed, placeholders
# replaced by MARK and inline code by CODE.  Every entry must be used
# (test_no_number_is_typed_into_the_template fails on an unused one).
ALLOWED = {
    'section reference': r'\bsection \d+(?:\.\d+)*',
    'year, in-text citation': r'(?<=, )(?:19|20)\d\d(?=\))',
    'year, reference list': r'\((?:19|20)\d\d\)\.',
    'year of a proceedings': r'\b(?:CVPR|ICML|NIPS|ICANN) (?:19|20)\d\d\.',
    # run numbers are checked against the log below
    'run number': r'\b[Rr]uns? \d+(?:(?:, | and | to | or )\d+)*\b',
    # fixed facts of the data set, the network and the libraries
    'data set name': r'\bCIFAR-10\b',
    'CIFAR image size': r'\b32x32\b',
    'CIFAR set sizes': r'\b50,000 training and 10,000 test images\b',
    'CIFAR test set size': r'\ball 10,000\b',
    'exact test images': r'\b0-999\b',
    'JPEG-degraded test images': r'\b1000-9999\b',
    'network name': r'\bMobileNetV2(?: 1\.0/224)?',
    'network term': r'\bstride-2\b',
    'CPU generation': r'\bZen [45]\b',
    # a maintainers' thread cited without its numbers
    'issue reference': r'\bissue \d+\b',
    'library versions': r'\bKeras [23](?: and [23])?\b',
    'data types': r'\b(?:b?float|int)(?:8|16|32)\b',
    'hash name': r'\bSHA-256\b',
    # targets, not results
    'accuracy targets': r'\b(?:87|95)%',
    # quoted from the data's description, and said to be
    'DATA.md quote': re.escape(
        '(quality 75, 4:2:0 chroma subsampling, about 5.8 grey levels off '
        'per pixel on average, according to ' + CODE),
}
# The README's results state fewer fixed numbers: the same patterns, those
# it needs.
README_ALLOWED = {name: ALLOWED[name]
                  for name in ('exact test images', 'data types',
                               'CPU generation')}
HEADING_NUMBER = re.compile(r'^(#{1,6} )\d+(?:\.\d+)*\.?(?= )', re.M)
FENCE = re.compile(r'^```(\w*)\n(.*?)^```$', re.M | re.S)
INLINE_CODE = re.compile(r'`[^`\n]+`')


def generator():
    """blog/make_figures.py, imported (no TensorFlow, no matplotlib)."""
    return load_module(os.path.join(BLOG, 'make_figures.py'),
                       'make_figures')


def read(path):
    """A file's text."""
    with open(path) as f:
        return f.read()


def logged_percentages(path):
    """Every accuracy in a log, formatted as the paper quotes them."""
    quoted = set()
    for record in generator().load_records(path):
        values = list(record.get('accuracy', {}).values())
        for view in record.get('accuracy_by_view', {}).values():
            values += list(view.values())
        values += [e['val_accuracy'] for e in record.get('epochs', [])]
        quoted |= {'{:.2f}%'.format(100 * v) for v in values}
    return quoted


def split_code(literal):
    """(prose, code pieces) of a rendered text: fenced python blocks (code
    quoted from 0-transfer.py) are dropped; other fenced blocks and inline
    code spans become code pieces, the spans leaving CODE in the prose."""
    code = []

    def fenced(match):
        """Keep a non-python block as code; drop it from the prose."""
        if match.group(1) != 'python':
            code.append(match.group(2))
        return ''

    def inline(match):
        """Keep an inline span as code; leave CODE in the prose."""
        code.append(match.group(0))
        return CODE

    prose = INLINE_CODE.sub(inline, FENCE.sub(fenced, literal))
    return prose, code


def typed_numbers(literal, runs, allowed=None):
    """Numbers of the template's own text that no placeholder produced and
    no allowed pattern (default ALLOWED) covers, and allowed entries that
    cover nothing."""
    prose, code = split_code(literal)
    found = []
    # In code, a digit may only be part of a name, path or commit (a token
    # with a letter): `--epochs 3` would be a typed number.
    for piece in code:
        found += ['code: {}'.format(token) for token in piece.split()
                  if re.search(r'\d', token)
                  and not re.search(r'[A-Za-z_]', token)]
    prose = ' '.join(HEADING_NUMBER.sub(r'\1', prose).split())
    unused = []
    for name, pattern in (ALLOWED if allowed is None else allowed).items():
        matches = list(re.finditer(pattern, prose))
        if not matches:
            unused.append(name)
        if name == 'run number':
            found += ['no such run: {}'.format(m.group(0)) for m in matches
                      if any(not 1 <= int(n) <= runs
                             for n in re.findall(r'\d+', m.group(0)))]
        prose = re.sub(pattern, ' ', prose)
    found += ['prose: ...{}...'.format(prose[max(0, m.start() - 40):
                                             m.end() + 40])
              for m in re.finditer(r'\d+(?:[.,]\d+)*', prose)]
    return found, unused


def test_paper_is_the_rendering_of_its_template():
    """blog/paper.md is, byte for byte, the template rendered from the
    committed log and results (rerun make_figures.py --text-only after
    editing any of them).  Its appendix names commits found with git log:
    this needs the full history, which CI's clone has."""
    rendered = generator().render_paper(TEMPLATE, LOG, RESULTS)
    assert_is_rendering(read(PAPER), rendered, 'blog/paper.md')


def assert_is_rendering(committed, rendered, name):
    """Fail, showing the diff, if the committed text is not the rendering."""
    diff = ''.join(list(difflib.unified_diff(
        committed.splitlines(True), rendered.splitlines(True), name,
        'rendering'))[:60])
    assert committed == rendered, (
        '{} differs from the rendering of its template; run '
        '.venv/bin/python blog/make_figures.py --text-only\n{}'.format(
            name, diff))


def test_no_number_is_typed_into_the_template():
    """Every number of the paper comes from a placeholder, except those
    ALLOWED: the template's own text, placeholders masked, has no other
    digit, and each ALLOWED entry is needed."""
    module = generator()
    sources = module.load_sources(LOG, RESULTS)
    literal = module.render_text(read(TEMPLATE), sources, marker=MARK)
    found, unused = typed_numbers(literal, len(sources.records))
    assert found == [], 'numbers typed into blog/paper.template.md:\n' + \
        '\n'.join(found)
    assert unused == [], 'ALLOWED entries matching nothing: remove them'


def test_readme_results_are_the_rendering_of_their_template():
    """README.md's results section is its heading and the generated block,
    and the block is, byte for byte, blog/readme_results.template.md
    rendered from the committed log and results."""
    module = generator()
    readme = read(README)
    block = module.generated_block(readme)
    rendered = module.render_text(read(README_TEMPLATE),
                                  module.load_sources(LOG, RESULTS))
    assert_is_rendering(block, rendered, 'README.md\'s results')
    section = readme[readme.index('## Results\n'):
                     readme.index('## What was and was not verified')]
    assert section == '## Results\n\n{}\n{}{}\n\n'.format(
        module.README_START, block, module.README_END)


def test_no_number_is_typed_into_the_readme_template():
    """Every number of README.md's results comes from a placeholder, except
    those README_ALLOWED (each of them needed)."""
    module = generator()
    sources = module.load_sources(LOG, RESULTS)
    literal = module.render_text(read(README_TEMPLATE), sources, marker=MARK)
    found, unused = typed_numbers(literal, len(sources.records),
                                  README_ALLOWED)
    assert found == [], ('numbers typed into blog/readme_results.template.md'
                         ':\n' + '\n'.join(found))
    assert unused == [], 'README_ALLOWED entries matching nothing'


def test_generated_block_is_replaced_between_its_markers():
    """Only the lines between the two marker lines change; a README without
    them is refused."""
    module = generator()
    start, end = module.README_START, module.README_END
    text = 'a\n{}\nold\nlines\n{}\nb {}\n'.format(start, end, start)
    assert module.with_generated_block(text, 'new\n') == \
        'a\n{}\nnew\n{}\nb {}\n'.format(start, end, start)
    assert module.generated_block(text) == 'old\nlines\n'
    for broken in ('a\n', '{}\n{}\n'.format(end, start), start + '\n'):
        with pytest.raises(module.RenderError, match='README.md needs'):
            module.with_generated_block(broken, 'new\n')


def test_typed_numbers_are_found():
    """The check above sees a number in prose, in an inline command and a
    shell block, and a reference to a run the log lacks."""
    text = ('Runs 1 and 2 took 17.2 min. `--epochs 3`\n\n```\nrun --x 4\n'
            '```\nSee run 9.')
    found, _ = typed_numbers(text, runs=2)
    assert len(found) == 4, found
    assert typed_numbers('Runs 1 and 2; `cifar10.h5` `e7ee13a`.', 2)[0] == []


def record(number, **changes):
    """A synthetic log record in the oldest format, then changed."""
    base = {
        'config': {'backbone': 'MobileNetV2', 'cut': None, 'epochs': 3,
                   'image_size': 224, 'batch_size': 128, 'holdout': 50,
                   'learning_rate': 3e-4, 'label_smoothing': 0.1,
                   'dropout': 0.2, 'seed': 0, 'data_dir': 'data',
                   'output': 'cifar10.h5', 'note': 'a | b'},
        'accuracy': {'holdout': 0.9, 'test': 0.8, 'test_exact_0_999': 0.85},
        'cache_reused': {'fit': False}, 'cut': 'block_13_project_BN',
        'epochs': [{'epoch': 1, 'seconds': 10.0, 'val_accuracy': 0.88,
                    'accuracy': 0.9}],
        'finished': '2026-01-0{}T00:00:00+00:00'.format(number),
        'machine': {'cores': 2, 'cpu': 'CPU', 'keras': '3', 'numpy': '2',
                    'python': '3', 'tensorflow': '2'},
        'peak_memory_mib': 1000.0, 'timings': {
            'load_data': 1.0, 'build': 1.0, 'extract': 5.0, 'train': 10.0},
        'train_images': 100, 'trainable_params': 1000, 'wall_seconds': 60.0,
    }
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = dict(base[key], **value)
        else:
            base[key] = value
    return base


def test_records_of_every_vintage():
    """Old records (no CPU time, no --shift) and new ones (new options and
    accuracies, a failed run without accuracy) render; a missing value is
    '-' in a table, a clear error in the text."""
    module = generator()
    records = [
        record(1),
        record(2, cpu_seconds=90.0, accuracy={'holdout_single': 0.87},
               cut='block_6_project_BN',
               config={'shift': 1, 'cut': 'block_6_project_BN',
                       'train_images': 80, 'mirror': True, 'flips': False,
                       'preset': 'fast', 'output': 'other.h5'}),
        {'config': {'epochs': 2, 'image_size': 96, 'holdout': 50},
         'error': 'KeyboardInterrupt: ', 'machine': {'cores': 2}},
    ]
    sources = module.Sources(records, {})
    text = module.render_text(
        '{{runs}}|{{run2.accuracy_holdout_single}}|{{runs.holdout}}|'
        '{{run2.config_preset}}|{{holdout}}|{{run1.map_side}}\n'
        '{{experiments_table}}\n{{reproduction_table}}', sources)
    assert text.startswith('3|87.00%|90.00%|fast|90.00%|7\n')
    assert '| 1 | 2026-01-01 00:00 |' in text
    assert '2.0 (wall x cores)' in text and '| 1.5 |' in text
    assert 'a \\| b' in text
    assert '--cut block_6_project_BN' in text and '--no-flips' in text
    assert '--train-images 80' in text and '--preset' not in text
    assert '| 3 |' in text and '| - |' in text
    for name in ('run3.holdout', 'run2.map_side', 'run4.holdout',
                 'no_such_value', 'benchmark.cached_ms'):
        with pytest.raises(module.RenderError, match=re.escape(name)):
            module.render_text('{{' + name + '}}', sources)


LATEST_TABLES = ('{{sweep_table}}\n{{sweep_pending}}\n{{sweep_findings}}\n'
                 '{{mirror_table}}\n{{mirror_verdict}}\n{{fast_table}}\n'
                 '{{fast_verdict}}\n{{fast_grade}}\n{{seeds_table}}\n'
                 '{{seeds_summary}}\n{{default_targets_table}}')


def test_latest_tables_say_pending_without_their_runs():
    """On a log of one old record (no views, cache sizes, map shapes or
    presets) not on real data, the tables of the sweep, the mirror, the fast
    preset and the default's seeds render as sentences saying nothing has
    finished."""
    module = generator()
    text = module.render_text(LATEST_TABLES, module.Sources(
        [record(1, config={'data_dir': None})], {}))
    assert 'No run of the cut sweep has finished yet.' in text
    assert 'Pending (its row appears when its run finishes): block_6' in text
    assert 'No run has measured both views yet.' in text
    assert 'No run of the fast preset has finished yet.' in text
    assert 'pending (results/grade_fast.txt is not written yet)' in text
    assert 'Mean and spread over seeds: pending.' in text
    assert text.count('| pending |') == len(module.DEFAULT_TARGET_LIST)


def test_latest_tables_render_from_synthetic_records():
    """Sweep runs with and without feature_shape, fast runs, the default's
    seeds (one reusing part of the cache) and the grader's output render;
    the map falls back only for known cuts at 160 px."""
    module = generator()
    views = {'single': {'holdout': 0.9, 'test_exact_0_999': 0.85},
             'mirror_average': {'holdout': 0.91, 'test_exact_0_999': 0.85}}
    cache = {'fit': 100.0, 'fit_flipped': 100.0, 'holdout': 50.0,
             'test': 100.0}

    def sweep(number, cut, size, **changes):
        """A sweep record of that cut and input size."""
        return record(number, cut=cut, accuracy_by_view=views,
                      cache_mib=cache, cpu_seconds=600.0, config={
                          'cut': cut, 'train_images': 10000, 'epochs': 4,
                          'image_size': size, 'output': 'sweep.h5',
                          'note': 'cut sweep: ' + cut}, **changes)

    def default(number, seed, holdout, output='cifar10.h5', **changes):
        """A run of the current default configuration."""
        return record(number, cut='block_6_project_BN', cache_mib=cache,
                      accuracy_by_view=views, seconds_to_saved_model=900.0,
                      accuracy={'holdout': holdout}, config={
                          'cut': None, 'epochs': 3, 'image_size': 160,
                          'train_images': 0, 'flips': True, 'mirror': True,
                          'seed': seed, 'preset': 'default',
                          'output': output}, **changes)

    fast = {'preset': 'fast', 'image_size': 128, 'train_images': 30000}
    above = {'test_exact_0_999': 0.9}
    records = [
        record(1),
        sweep(2, 'block_10_project_BN', 160),
        sweep(3, 'block_6_project_BN', 224),
        sweep(4, 'block_13_project_BN', 128, feature_shape=[4, 4, 160]),
        record(5, seconds_to_saved_model=200.0, config=fast, accuracy=above),
        record(6, seconds_to_saved_model=300.0, config=fast, accuracy=above),
        default(7, 0, 0.94),
        default(8, 1, 0.96, 'seed1.h5',
                cache_reused={'fit': True, 'holdout': False}),
        record(9, seconds_to_saved_model=100.0, config=fast, accuracy=above),
    ]
    grade = ('# fast model finished 2026-01-05T00:00:00+00:00\n'
             '0-main.py on 1000 test images from data\n'
             '8/8 - accuracy: 0.8810 - loss: 0.5\n')
    sources = module.Sources(records, {}, {'grade_fast.txt': grade})
    text = module.render_text(LATEST_TABLES, sources)
    assert '| 2 | block_10_project_BN | 10x10x96 | 250 | 5 | 10 |' in text
    assert '| 3 | block_6_project_BN | - |' in text
    assert '| 4 | block_13_project_BN | 4x4x160 |' in text
    assert 'Every cut of the sweep has finished.' in text
    assert 'block_10_project_BN (run 2) reached' in text
    assert ('by 0.00 points mirror-averaged and 0.00 in the single view: '
            'under our 1-point rule') in text
    assert '| 91.00% | +1.00 | 85.00% | 85.00% | +0.00 |' in text
    assert 'the held-out gains of run 2 (+1.00), run 3 (+1.00)' in text
    assert ('with seeds 0, 1 changed its held-out accuracy by +1.00, '
            '+1.00 points: a gain with every seed') in text
    assert '| 5 | 200 |' in text and '| 6 | 300 |' in text
    # only the graded run can meet the fast target; 4 targets of the default
    assert '| differs from run 5 | grader, test 0-999 | target met |' in text
    assert '| same | 0.8810 | yes |' in text
    assert text.count('| not graded | not graded |') == 2
    assert text.count('| yes |') == 1 + 4 and 'Run 5 met it.' in text
    assert 'accuracy 0.8810 on 1000 test images (the model of run 5)' in text
    assert '| 8 | 1 | 96.00% |' in text and '| reused: fit |' in text
    assert 'mean of 95.00 (in percent) and a spread' in text
    assert '2.00 points' in text
    assert '| mean 95.00 (94.00%, 96.00%) | yes |' in text
    assert '| 1.0 min (run 7) | yes |' in text
    assert module.reported_run(records) is records[6]
    assert [number for number, _ in module.default_runs(sources)] == [7, 8]


def test_default_runs_share_the_reported_runs_computation():
    """A run of the default configuration has the reported run's options
    but for its seed, output, log, note and cache folder (data and weights
    compared by file name), and its cut; any other difference, or a preset,
    makes it another configuration."""
    module = generator()
    reported = record(1, config={'weights': '../w/mobilenet.h5',
                                 'preset': 'default', 'shift': 1})
    same = copy.deepcopy(reported)
    same['config'].update(seed=1, output='/runs/seed1.h5', note='seed 1',
                          log='/elsewhere/log.jsonl', cache_dir='/cache',
                          data_dir='/work/data/', weights='/w/mobilenet.h5',
                          preset=None)
    assert module.is_default_run(same, reported)
    for name, value in [('learning_rate', 1e-3), ('shift', 0),
                        ('dropout', 0.5), ('batch_size', 64),
                        ('holdout', 100), ('label_smoothing', 0.0),
                        ('preset', 'fast'), ('data_dir', 'other'),
                        ('flips', False)]:
        other = copy.deepcopy(same)
        other['config'][name] = value
        assert not module.is_default_run(other, reported), name
    other = copy.deepcopy(same)
    other['cut'] = 'block_6_project_BN'
    assert not module.is_default_run(other, reported)


def default_seed_run(template, seed, holdout, finished, output,
                     reused=False, minutes=40):
    """A run of the current default, made from a logged run of its cut."""
    run = copy.deepcopy(template)
    run['config'].update(train_images=0, epochs=3, seed=seed, output=output,
                         note='the default, seed {}'.format(seed))
    run.update(train_images=45000, finished=finished,
               wall_seconds=60 * minutes,
               cache_reused={name: reused for name in run['cache_reused']})
    run['accuracy'] = dict(run['accuracy'], holdout=holdout)
    return run


def test_texts_pick_up_the_default_seeds():
    """When seed 0 of the default writes cifar10.h5 and the grader's output
    names it, and seed 1 finishes, the paper and README.md render with them:
    the reported run, its grade, the seeds and every target, and verdicts
    saying by how much a target (a lower and an upper limit) was
    missed."""
    module = generator()
    sources = module.load_sources(LOG, RESULTS)
    cut = 'block_6_project_BN'
    sweep = next(r for r in sources.records if module.is_sweep_run(r)
                 and module.run_cut(r) == cut)
    seeds = [default_seed_run(sweep, 0, 0.947, '2027-01-01T00:00:00+00:00',
                              'cifar10.h5', minutes=50),
             default_seed_run(sweep, 1, 0.951, '2027-01-01T01:00:00+00:00',
                              'seed1.h5', reused=True)]
    # the log without its own runs of the default, which may have landed
    sources.records = [r for r in sources.records
                       if not module.is_default_run(r, seeds[0])]
    runs = len(sources.records)
    sources.records += seeds
    sources.texts['grade.txt'] = (
        '# cifar10.h5 finished 2027-01-01T00:00:00+00:00\n'
        '0-main.py on 1000 test images from data\n'
        '8/8 - accuracy: 0.9520 - loss: 0.5\n')
    assert sources.reported is sources.records[-2]
    assert module.is_default_run(sources.records[-1], sources.reported)
    readme = module.render_text(read(README_TEMPLATE), sources)
    paper = module.render_text(read(TEMPLATE), sources)
    for text in (readme, paper):
        assert '| {} | 0 | 94.70% |'.format(runs + 1) in text
        assert '| {} | 1 | 95.10% |'.format(runs + 2) in text
        assert '| pending |' not in text
        assert ('Missed: held-out accuracy, mean of seeds 0 and 1, by 0.10 '
                'points; wall time end to end, training images extracted, '
                'by 5.0 min.') in text
    assert 'run {} of the log'.format(runs + 1) in readme
    assert 'accuracy 0.9520 on 1000 test images (results/grade.txt)' in readme
    abstract = ' '.join(
        paper[paper.index('## Abstract'):paper.index('## 1.')].split())
    assert ('comes from run {}, whose configuration we call the default (cut '
            'after {}'.format(runs + 1, cut)) in abstract
    assert 'was missed by 0.10 points; that of 95.0%' in abstract
    assert 'through the grader was reached.' in abstract


def test_generator_runs_on_a_small_log(tmp_path, cifar_dir):
    """Two tiny runs, then every figure and the table of runs from their
    log."""
    args = TINY_ARGS + ['--data-dir', cifar_dir]
    for seed in ('0', '1'):
        result = run_transfer(args + ['--seed', seed], tmp_path)
        assert result.returncode == 0, result.stderr[-2000:]
    out = tmp_path / 'blog'
    out.mkdir()
    log = str(tmp_path / 'results' / 'experiments.jsonl')
    result = run_python([os.path.join(BLOG, 'make_figures.py'),
                         '--figures-only', '--data-dir', cifar_dir,
                         '--log', log, '--model', str(tmp_path / 'cifar10.h5'),
                         '--output-dir', str(out)], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in FIGURES:
        assert (out / name).stat().st_size > 1000, name
    module = generator()
    table = module.experiments_table(module.Sources(
        module.load_records(log), {}))
    quoted = set(re.findall(r'\d+\.\d\d%', table))
    assert quoted and quoted <= logged_percentages(log)


@pytest.mark.skipif(not os.path.exists(PAPER), reason='no paper yet')
def test_every_accuracy_in_the_paper_is_in_the_log():
    """Each two-decimal percentage of blog/paper.md is a logged accuracy."""
    quoted = set(re.findall(r'\d+\.\d\d%', read(PAPER)))
    assert quoted
    assert quoted <= logged_percentages(LOG), quoted - logged_percentages(LOG)


def test_paper_links_only_existing_figures():
    """Every image the paper shows is committed beside it."""
    linked = re.findall(r'!\[[^\]]*\]\(([^)]+)\)', read(TEMPLATE))
    assert 'predictions.png' == linked[0]
    for name in linked:
        assert os.path.exists(os.path.join(BLOG, name)), name


def race_curve(name, points, levels):
    """A curve of results/time_to_accuracy.json: (seconds, accuracy)
    points and the seconds to each level (None: not reached)."""
    return {'name': name, 'points': [{'seconds': s, 'accuracy': a}
                                     for s, a in points],
            'seconds_to': levels,
            'best_accuracy': max(a for _, a in points)}


def test_race_ratios_and_lower_bounds():
    """The usual method's time over ours: a ratio where both reached a
    level (87%: 600 / 100 s), a lower bound where only ours did (90%: its
    whole run of 1200 s over our 300 s), nothing where ours did not."""
    module = generator()
    ours = race_curve('fast', [(100, 0.88), (300, 0.91)],
                      {'87': 100, '90': 300, '93': None})
    usual = race_curve('usual', [(600, 0.875), (1200, 0.88)],
                       {'87': 600, '90': None, '93': None})
    assert module.usual_ratio_cell(ours, usual) == '87%: 6.0x, 90%: > 4.0x'
    assert module.usual_ratio_cell(usual, usual) == '-'


def test_race_runs_are_not_fast_or_default_runs():
    """A run the race logged (its note starts with RACE_NOTE) with the
    fast preset is not a run of the fast preset's table; the same run
    without the note is."""
    module = generator()
    fast = record(1, config={'preset': 'fast',
                             'note': module.RACE_NOTE + ' fast'})
    assert module.is_race_run(fast) and not module.is_fast_run(fast)
    fast['config']['note'] = 'README fast command'
    assert module.is_fast_run(fast)
