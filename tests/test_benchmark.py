#!/usr/bin/env python3
"""The benchmark's accounting (FLOP, bytes, peak, time to accuracy) on
cases small enough to count by hand."""
import os

import numpy as np
import pytest

from conftest import PROJECT_DIR, load_module


@pytest.fixture(scope='module')
def benchmark():
    """benchmark.py as a module."""
    return load_module(os.path.join(PROJECT_DIR, 'benchmark.py'),
                       'benchmark')


def test_multiply_adds_of_a_known_model(transfer, benchmark):
    """Conv 3x3 (3 -> 8 channels, 'same', 8x8 output), depthwise 3x3 over
    8 channels at stride 2 (4x4 output), then Dense 128 -> 10, counted by
    hand: 8*8*8*3*3*3 + 4*4*8*3*3 + 128*10 = 13824 + 1152 + 1280."""
    K = transfer.K
    images = K.Input((8, 8, 3))
    x = K.layers.Conv2D(8, 3, padding='same', use_bias=False)(images)
    x = K.layers.DepthwiseConv2D(3, strides=2, padding='same',
                                 use_bias=False)(x)
    x = K.layers.Flatten()(x)
    inner = K.Model(images, K.layers.Dense(10)(x))
    outer = K.Model(images, inner(images))  # nested models are counted
    assert benchmark.multiply_adds(outer) == 13824 + 1152 + 1280


def test_layer_traffic_of_a_known_model(transfer, benchmark):
    """Conv 3x3 (3 -> 4 channels, 8x8, no bias), BatchNorm, ReLU6, in
    float32, counted by hand: the conv reads 8*8*3 and 3*3*3*4 weights and
    writes 8*8*4 (556 values), BatchNorm reads and writes 8*8*4 plus its
    4 x 4 statistics (528), ReLU6 reads and writes 8*8*4 (512).  Fused,
    only the conv's traffic remains."""
    K = transfer.K
    images = K.Input((8, 8, 3))
    x = K.layers.Conv2D(4, 3, padding='same', use_bias=False)(images)
    x = K.layers.ReLU(6.0)(K.layers.BatchNormalization()(x))
    inner = K.Model(images, x)
    outer = K.Model(images, inner(images))
    assert benchmark.layer_traffic(outer, K) == (
        4 * (556 + 528 + 512), 4 * 556)


CPUINFO = """processor\t: 0
vendor_id\t: {vendor}
cpu family\t: {family}
model\t\t: 2
model name\t: Some CPU
cpu MHz\t\t: 2600.000
flags\t\t: fpu fma {flags}

processor\t: 1
vendor_id\t: {vendor}
cpu family\t: {family}
model\t\t: 2
model name\t: Some CPU
cpu MHz\t\t: 1000.000
flags\t\t: fpu fma {flags}
"""


@pytest.mark.parametrize('vendor, family, flags, per_cycle', [
    ('AuthenticAMD', 25, 'avx2 avx512f', 32),  # Zen 4: 256-bit datapaths
    ('AuthenticAMD', 26, 'avx2 avx512f', 64),  # Zen 5: 512-bit ones
    ('GenuineIntel', 6, 'avx2 avx512f', 64),
    ('GenuineIntel', 6, 'avx2', 32),
])
def test_fp32_peak_from_cpuinfo(tmp_path, benchmark, vendor, family, flags,
                                per_cycle):
    """FLOP per cycle from vendor, family and flags; the peak of 2 cores
    at the first CPU's clock (2.6 GHz) is 2 x 2.6 x that."""
    path = tmp_path / 'cpuinfo'
    path.write_text(CPUINFO.format(vendor=vendor, family=family,
                                   flags=flags))
    cpu = benchmark.cpu_facts(str(path))
    assert (cpu['vendor'], cpu['family'], cpu['mhz']) == (vendor, family,
                                                          2600.0)
    assert benchmark.fp32_flops_per_cycle(cpu) == per_cycle
    assert benchmark.fp32_peak(cpu, 2) == pytest.approx(2 * 2.6 * per_cycle)


def test_time_to_levels_takes_the_first_point_at_each_level(benchmark):
    """87% first reached at 20 s, 90% at 30 s (not at 40 s, where the
    curve dips and recovers), 93% and 95% never; the best accuracy is
    0.91."""
    points = [{'seconds': s, 'accuracy': a} for s, a in
              ((10, 0.80), (20, 0.88), (30, 0.91), (35, 0.89),
               (40, 0.905))]
    assert benchmark.time_to_levels(points) == {
        'seconds_to': {'87': 20, '90': 30, '93': None, '95': None},
        'best_accuracy': 0.91}
    # 90% as float32 logs it (0.8999999761581421) counts as 90%
    points[2]['accuracy'] = float(np.float32(0.9))
    assert benchmark.time_to_levels(points)['seconds_to']['90'] == 30


def test_ensemble_averages_the_first_k_models(benchmark):
    """Three models, each right on two of three images; the mean of the
    first two is right on one more than either, all three on all."""
    labels = np.array([0, 1, 2])
    first = np.array([[.6, .4, 0], [.1, .5, .4], [.45, .1, .45]])
    second = np.array([[.3, .2, .5], [.2, .6, .2], [.1, .3, .6]])
    third = np.array([[.7, .3, 0], [.6, .4, 0], [0, .2, .8]])
    result = benchmark.ensemble_accuracies([first, second, third], labels)
    assert result['each'] == pytest.approx([2 / 3, 2 / 3, 2 / 3])
    assert result['first_k_averaged'] == pytest.approx([2 / 3, 1, 1])


@pytest.mark.parametrize('name, needed', [('ensemble', '--models'),
                                          ('throughput', '--weights')])
def test_a_benchmark_names_the_argument_it_lacks(benchmark, capsys, name,
                                                 needed):
    """Each benchmark asks for what it uses: the ensemble for models, the
    others for weights."""
    with pytest.raises(SystemExit) as stop:
        benchmark.main([name, '--data-dir', 'unused'])
    error = capsys.readouterr().err.splitlines()[-1]  # after the usage
    assert stop.value.code == 2 and needed in error


def test_the_ensemble_needs_no_weights(benchmark, tmp_path):
    """Without --weights, the ensemble goes on to look for the runs that
    wrote its models in the log."""
    log = tmp_path / 'log.jsonl'
    log.write_text('')
    with pytest.raises(SystemExit) as stop:
        benchmark.main(['ensemble', '--data-dir', 'unused', '--models',
                        'm.h5', '--log', str(log)])
    assert 'wrote m.h5' in str(stop.value.code)
