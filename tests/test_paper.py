#!/usr/bin/env python3
"""The paper and README.md's table are renderings of the results: each
number comes from the data, each data-dependent claim is checked, and a
record that contradicts a claim stops the rendering, naming it."""
import copy
import difflib
import glob
import json
import os
import re

import pytest

from conftest import PROJECT_DIR, load_module, run_python

BLOG = os.path.join(PROJECT_DIR, 'blog')
PAPER = os.path.join(BLOG, 'paper.md')
TEMPLATE = os.path.join(BLOG, 'paper.template.md')
README = os.path.join(PROJECT_DIR, 'README.md')
report = load_module(os.path.join(BLOG, 'report.py'), 'report')
MARK = '\x00'  # stands for each placeholder's value
# The only numbers the template may type itself, outside code blocks.
ALLOWED = [
    r'^#+ \d+(\.\d+)*\.? ',  # section headings
    r'\b([Ss]ection|Table|Figure) \d+(\.\d+)?',
    r'\((19|20)\d\d\)|, (19|20)\d\d\)|(CVPR|ICML|ICLR|NIPS|ICANN) (19|20)\d\d',
    r'\b[Rr]uns? \d+((, | and | to )\d+)*|\| \d+, \d+ \|',  # checked below
    r'CIFAR-10|MobileNetV2 1\.0/224|MobileNetV2|32x32|SHA-256',
    r'\b50,000 training and 10,000 test images|\ball 10,000',
    r'\b(b?float|int)(8|16|32)\b',
    r'Python 3\.8|TensorFlow 2\.(6\.5|6|21)|Keras [23](\.6)?|\b2\.6\b',
    r'quality 75, 4:2:0 chroma subsampling, about 5\.8 grey levels',  # DATA
    r'`[^`]*`',  # code: commits, layer names, commands
]


def read(path):
    """A file's text."""
    with open(path) as f:
        return f.read()


def diff(committed, rendered):
    """The first lines of a unified diff of two texts."""
    return ''.join(list(difflib.unified_diff(
        committed.splitlines(True), rendered.splitlines(True)))[:40])


@pytest.fixture(scope='module')
def data():
    """The committed results."""
    return report.load()


def test_paper_is_the_rendering(data):
    """blog/paper.md is the template rendered from the committed results
    (after new results: .venv/bin/python blog/report.py)."""
    rendered = report.render(read(TEMPLATE), data)
    assert read(PAPER) == rendered, diff(read(PAPER), rendered)


def test_readme_table_is_the_rendering(data):
    """README.md's table is the rendering; the rest is hand-written."""
    committed = read(README)
    assert committed == report.with_table(committed, data), diff(
        committed, report.with_table(committed, data))
    with pytest.raises(report.RenderError, match='README.md needs'):
        report.with_table('no markers\n', data)


def typed_numbers(literal, runs):
    """Numbers of a template's own text (placeholders masked) that no
    ALLOWED pattern covers, and run numbers the log lacks."""
    prose = re.sub(r'(?ms)^```.*?^```$', '', literal)
    found = ['no such run: ' + m.group(0) for m in re.finditer(
        ALLOWED[3], prose) if any(int(n) > runs for n in re.findall(
            r'\d+', m.group(0)))]
    for pattern in ALLOWED:
        prose = re.sub(pattern, ' ', prose, flags=re.M)
    return found + ['{}: ...{}...'.format(m.group(0), prose[
        max(0, m.start() - 30):m.end() + 30]) for m in re.finditer(
            r'\d+(\.\d+)?', prose)]


def test_no_number_is_typed_into_the_template(data):
    """Every number of the paper comes from a placeholder but the ALLOWED
    (checked to find what they should)."""
    literal = report.PLACEHOLDER.sub(MARK, read(TEMPLATE))
    assert typed_numbers(literal, len(data.runs)) == []
    found = typed_numbers('Run 3 took 17.2 min. `a 4` run 999', 20)
    assert [f.split(':')[0] for f in found] == ['no such run', '17.2']


def test_every_percentage_is_measured(data):
    """Each percentage with decimals in the paper is an accuracy of the
    log, the race, the grader or the ensembles, the mean of the default's
    seeds, or the goal."""
    measured = set()
    for r in data.runs:
        views = list(r['accuracy_by_view'].values()) + [r['accuracy']]
        measured |= {report.pct(x) for view in views for x in view.values()}
        measured |= {report.pct(e[k]) for e in r['epochs']
                     for k in ('accuracy', 'val_accuracy')}
    for curve in data.curves.values():
        measured |= {report.pct(p['accuracy']) for p in curve['points']}
    measured |= {report.pct(x) for x in sum(data.grades.values(), [])}
    measured |= {report.pct(x) for e in data.ensembles.values()
                 for x in e['each'] + e['first_k_averaged']}
    measured |= {report.values(data)[k] for k in ('seeds.mean', 'goal')}
    paper = read(PAPER)  # the appendix quotes the runs' notes
    quoted = set(re.findall(r'\b\d+\.\d+%', paper[:paper.index('## App')]))
    assert quoted and quoted <= measured, quoted - measured


def contradict(data, change):
    """Data built from the committed records and results after change
    (a function of records, results and texts) alters copies of them."""
    records = [json.loads(line) for line in read(
        os.path.join(report.RESULTS, 'experiments.jsonl')).splitlines()
        if line]
    results, texts = copy.deepcopy(data.results), dict(data.texts)
    change(records, results, texts)
    return report.Data(records, results, texts, data.const)


def mirror_loses(records, results, texts):
    """Seed 1 of the default (run 13): single view above mirror-averaged."""
    records[12]['accuracy_by_view']['single']['holdout'] = 0.97


def mixup_wins(records, results, texts):
    """Mixup's seed 0 (run 38) ahead of its baseline (run 32)."""
    records[37]['accuracy']['holdout'] = 0.93


def averaging_loses(records, results, texts):
    """Two sweep models averaged below the better alone."""
    results['ensemble_sweep']['first_k_averaged'][1] = 0.92


def sweep_reordered(records, results, texts):
    """The sweep's block_10 run (run 9) ahead of block_6's."""
    records[8]['accuracy']['holdout'] = 0.95
    records[8]['accuracy_by_view']['mirror_average']['holdout'] = 0.95


def usual_reaches_bar(records, results, texts):
    """The usual recipe reaches 87% in the race."""
    for curve in results['time_to_accuracy']['curves']:
        curve['seconds_to']['87'] = curve['seconds_to'].get('87') or 1500.0


def grader_fails(records, results, texts):
    """The grader scores the committed model below the task's bar."""
    texts['grade.txt'] = texts['grade.txt'].replace('0.8820', '0.8620')


def new_committed_model(records, results, texts):
    """A later default run writes cifar10.h5 (grade.txt not redone)."""
    records.append(copy.deepcopy(records[16]))
    records[-1]['finished'] = '2099-01-01T00:00:00+00:00'


@pytest.mark.parametrize('change, claim', [
    (mirror_loses, 'two_seeds_mirror_gains'),
    (sweep_reordered, 'sweep_order'),
    (usual_reaches_bar, 'race_order'),
    (grader_fails, 'models_pass'),
    (new_committed_model, 'grades_are_of_these_runs'),
    (mixup_wins, 'levers_at_ten_thousand'),
    (averaging_loses, 'averaging_gains')])
def test_a_contradicting_record_breaks_its_claim(data, change, claim):
    """Rendering stops, naming the claim the changed data contradict."""
    def broken(d):
        """The names of the claims d breaks."""
        return {text.split(':')[0] for text in report.broken_claims(d)}
    assert claim not in broken(contradict(data, lambda *a: None))
    assert claim in broken(contradict(data, change))
    with pytest.raises(report.RenderError, match=claim):
        report.render(read(TEMPLATE), contradict(data, change))


def test_runs_are_chosen_by_role(data):
    """The committed model's run wrote cifar10.h5 without a preset; the
    fast run is the one the grader scored, not a later probe nor the
    race's; the race's runs are not runs of the default."""
    assert data.reported['config']['output'] == 'cifar10.h5'
    assert data.reported['finished'] in data.texts['grade.txt']
    assert data.fast['finished'] in data.texts['grade_fast.txt']
    assert not any(r['config']['note'].startswith(report.RACE_NOTE)
                   for r in data.default_runs + [data.fast])

    def probe(records, results, texts):
        """A later, ungraded fast run."""
        records.append(dict(copy.deepcopy(records[15]), finished='2099'))
    assert contradict(data, probe).fast['number'] == data.fast['number']


def test_records_of_every_vintage(data):
    """Old records get today's fields; a new record's commit is its own."""
    first, record = data.runs[0], json.loads(json.dumps(data.runs[-1]))
    assert (first['config']['mirror'], first['config']['shift']) == (
        False, 0)
    assert first['engine'] == 'keras' and not first['cpu_logged']
    assert first['cpu_minutes'] == first['wall_seconds'] * 2 / 60
    assert data.runs[1]['peak_memory_mib_at_stage_end']['train'] > 0
    assert data.runs[6]['machine']['commit'] == 'e036901'
    record['machine']['commit'] = 'a' * 40 + '+'
    assert report.normalise(record, 1)['machine']['commit'] == 'aaaaaaa+'


def test_text_renders_without_tensorflow():
    """The text needs no TensorFlow; the script's constants are read."""
    code = ('import sys; sys.path.insert(0, {!r}); import report; '
            'd = report.load(); report.values(d); '
            'print("tensorflow" in sys.modules, d.const["TASK_ACCURACY"], '
            'd.const["EXACT_TEST_IMAGES"], d.defaults["cut"])').format(BLOG)
    result = run_python(['-c', code], PROJECT_DIR)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:3] == ['False', '0.87', '1000']


def test_figures_are_drawn_and_linked(tmp_path):
    """Every figure the paper links is in blog/ and drawn by figures.py
    from the results (the confusion matrix needs TensorFlow); no figure
    lies unused; the method diagram comes first."""
    pytest.importorskip('matplotlib')
    linked = re.findall(r'!\[[^\]]*\]\(([^)]+)\)', read(TEMPLATE))
    assert linked[0] == 'method.png'
    assert sorted(linked) == sorted(
        os.path.basename(p) for p in glob.glob(os.path.join(BLOG, '*.png')))
    result = run_python([os.path.join(BLOG, 'figures.py'), '--output-dir',
                         str(tmp_path)], PROJECT_DIR)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        set(linked) - {'confusion_matrix.png'})


def test_sizes():
    """The paper reads in minutes, the code stays small."""
    paper = read(PAPER)
    assert len(paper[:paper.index('## Appendix')].split()) <= 4000
    assert sum(len(read(p).splitlines())
               for p in glob.glob(os.path.join(BLOG, '*.py'))) <= 650
    assert len(read(README).splitlines()) <= 180
    assert len(read(__file__).splitlines()) <= 250
