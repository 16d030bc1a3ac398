#!/usr/bin/env python3
"""The activation cache: reuse, and rebuilding whatever cannot be trusted."""
import json
import os
import shutil

import numpy as np
import pytest

KEY = {'backbone': 'toy', 'cut': 'pool', 'image_size': 32,
       'prefix_weights': 'abc'}


@pytest.fixture
def extractor(transfer):
    """A tiny stand-in for the frozen prefix: 8x8 average pooling."""
    K = transfer.K
    images = K.Input((32, 32, 3))
    return K.Model(images, K.layers.AveragePooling2D(8)(images))


@pytest.fixture
def images():
    """Thirty random CIFAR-shaped images."""
    return np.random.default_rng(1).integers(0, 256, (30, 32, 32, 3),
                                             dtype=np.uint8)


def build(transfer, extractor, images, cache_dir, key=KEY):
    """Return (features, reused) from the cache in cache_dir."""
    return transfer.cached_features(transfer.FrozenPass(extractor, 8), images,
                                    'part', str(cache_dir), key)


def cache_file(cache_dir):
    """Return the one .npy file in cache_dir."""
    names = [n for n in os.listdir(str(cache_dir)) if n.endswith('.npy')]
    assert len(names) == 1, names
    return os.path.join(str(cache_dir), names[0])


def test_second_call_reuses_the_same_features(transfer, extractor, images,
                                              tmp_path):
    """Built once, then read back unchanged without running the model."""
    first, reused_first = build(transfer, extractor, images, tmp_path)
    second, reused_second = build(transfer, extractor, images, tmp_path)
    assert (reused_first, reused_second) == (False, True)
    assert first.dtype == np.float16 and first.shape == (30, 4, 4, 3)
    np.testing.assert_array_equal(first, second)
    expected = images.reshape(30, 4, 8, 4, 8, 3).mean(axis=(2, 4))
    np.testing.assert_allclose(first, expected, rtol=1e-3)


def test_other_data_or_key_gets_its_own_cache(transfer, extractor, images,
                                              tmp_path):
    """Other images, or another backbone/cut/size/weights: not reused."""
    build(transfer, extractor, images, tmp_path)
    _, reused = build(transfer, extractor, images[::-1].copy(), tmp_path)
    assert not reused
    for field in KEY:
        _, reused = build(transfer, extractor, images, tmp_path,
                          dict(KEY, **{field: 'other'}))
        assert not reused, field


@pytest.mark.parametrize('damage', ['truncate', 'flip_byte', 'no_record',
                                    'bad_record'])
def test_damaged_cache_is_reported_and_rebuilt(transfer, extractor, images,
                                               tmp_path, capsys, damage):
    """Truncated, corrupted or unrecorded caches are never used."""
    good, _ = build(transfer, extractor, images, tmp_path)
    good = np.array(good)
    path = cache_file(tmp_path)
    record = path[:-4] + '.json'
    if damage == 'truncate':
        os.truncate(path, os.path.getsize(path) // 2)
    elif damage == 'flip_byte':
        with open(path, 'r+b') as f:
            f.seek(-5, os.SEEK_END)
            byte = f.read(1)
            f.seek(-5, os.SEEK_END)
            f.write(bytes([byte[0] ^ 0xFF]))
    elif damage == 'no_record':
        os.remove(record)
    else:
        with open(record, 'w') as f:
            f.write('{not json')
    capsys.readouterr()
    rebuilt, reused = build(transfer, extractor, images, tmp_path)
    assert not reused
    assert 'Extracting part features (' in capsys.readouterr().out
    np.testing.assert_array_equal(rebuilt, good)


def test_cache_of_another_configuration_moved_into_place(
        transfer, extractor, images, tmp_path):
    """A foreign cache renamed to this key's file name is detected."""
    own_dir, other_dir = tmp_path / 'own', tmp_path / 'other'
    build(transfer, extractor, images, own_dir)
    build(transfer, extractor, images, other_dir, dict(KEY, cut='other'))
    own, other = cache_file(own_dir), cache_file(other_dir)
    shutil.copy(other, own)
    shutil.copy(other[:-4] + '.json', own[:-4] + '.json')
    with open(own[:-4] + '.json') as f:
        assert json.load(f)['key']['cut'] == 'other'
    _, reused = build(transfer, extractor, images, own_dir)
    assert not reused


def test_batches_visit_every_image_of_every_part_once(transfer):
    """One epoch: each (part, image) once, as float32, labels aligned."""
    parts = [[np.arange(10, dtype='float16').reshape(10, 1, 1, 1) + offset]
             for offset in (0, 100)]
    labels = np.eye(10, dtype='float32')
    batches = transfer.CachedBatches(parts, labels, 3, seed=0)
    assert len(batches) == 7
    seen = []
    for index in range(len(batches)):
        x, y = batches[index]
        assert x.dtype == np.float32
        np.testing.assert_array_equal(x.ravel() % 100, y.argmax(1))
        seen += x.ravel().tolist()
    assert sorted(seen) == list(range(10)) + list(range(100, 110))
    first = batches[0][0].ravel().tolist()
    batches.on_epoch_end()
    assert batches[0][0].ravel().tolist() != first or len(first) < 2


def test_batches_read_one_view_of_each_visit(transfer):
    """With several views per part, an epoch still visits each (part,
    image) once, its label aligned, reading a view drawn anew each
    epoch; over epochs every view is read."""
    images = 10
    parts = [[(1000 * part + 100 * view + np.arange(images, dtype='float32'))
              .reshape(images, 1, 1, 1) for view in range(3)]
             for part in range(2)]
    labels = np.eye(10, dtype='float32')
    batches = transfer.CachedBatches(parts, labels, 4, seed=0)
    views_read = set()
    for _ in range(5):
        values = np.concatenate([batches[i][0].ravel()
                                 for i in range(len(batches))])
        aligned = np.concatenate([batches[i][1].argmax(1)
                                  for i in range(len(batches))])
        np.testing.assert_array_equal(values % 100, aligned)
        visits = sorted(zip(values // 1000, values % 100))
        assert visits == [(p, i) for p in range(2) for i in range(images)]
        views_read |= set(zip(values // 1000, values % 1000 // 100))
        batches.on_epoch_end()
    assert views_read == {(p, v) for p in range(2) for v in range(3)}


def test_resumed_batches_read_the_same_views(transfer):
    """Batches started at a later epoch read what the uninterrupted run
    reads in that epoch: the same order, views and shifts."""
    parts = [[np.full((6, 3, 3, 1), 10 * view + part, dtype='float16')
              + np.arange(6, dtype='float16').reshape(6, 1, 1, 1) / 10
              for view in range(3)] for part in range(2)]
    labels = np.eye(10, dtype='float32')[:6]
    running = transfer.CachedBatches(parts, labels, 4, seed=1, shift=1)
    running.on_epoch_end()
    running.on_epoch_end()
    resumed = transfer.CachedBatches(parts, labels, 4, seed=1, shift=1,
                                     first_epoch=2)
    for index in range(len(running)):
        for ours, theirs in zip(resumed[index], running[index]):
            np.testing.assert_array_equal(ours, theirs)


def test_training_parts_mirror_only_with_flips(transfer):
    """Without flips no training mirror is cached; with them, one per
    copy."""
    assert transfer.training_parts(False, 2) == [
        ['fit', 'fit_crop1', 'fit_crop2']]
    assert transfer.training_parts(True, 1) == [
        ['fit', 'fit_crop1'], ['fit_flipped', 'fit_crop1_flipped']]


def test_crop_copies_move_each_image_within_the_padding(transfer):
    """A crop copy keeps the images' order (so their labels) and moves
    each by at most CROP_PIXELS each way; the same copy number gives the
    same copy, another number another."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    p = transfer.CROP_PIXELS
    padded = np.pad(images, ((0, 0), (p, p), (p, p), (0, 0)), mode='reflect')
    copy = transfer.crop_copy(images, 1)
    assert copy.shape == images.shape and copy.dtype == images.dtype
    moves = set()
    for image, cropped in zip(padded, copy):
        found = [(dy, dx) for dy in range(2 * p + 1) for dx in
                 range(2 * p + 1)
                 if np.array_equal(image[dy:dy + 32, dx:dx + 32], cropped)]
        assert found, 'a copy is not a crop of its own padded image'
        moves.add(found[0])
    assert len(moves) > 1
    np.testing.assert_array_equal(transfer.crop_copy(images, 1), copy)
    assert not np.array_equal(transfer.crop_copy(images, 2), copy)


def test_shift_translates_maps_by_whole_cells(transfer):
    """With shift 1 each map moves by at most one cell, edges repeated."""
    grid = np.arange(49, dtype='float16').reshape(1, 7, 7, 1)
    batches = transfer.CachedBatches([[np.repeat(grid, 64, 0)]],
                                     np.eye(10, dtype='float32')[
                                         np.arange(64) % 10], 64, seed=0,
                                     shift=1)
    x, _ = batches[0]
    centres = {float(m[3, 3, 0]) for m in x}
    assert centres == {24 + dy * 7 + dx for dy in (-1, 0, 1)
                       for dx in (-1, 0, 1)}
    for m, (dy, dx) in zip(x, batches.offsets):
        expected = np.pad(grid[0], ((1, 1), (1, 1), (0, 0)),
                          mode='edge')[dy:dy + 7, dx:dx + 7]
        np.testing.assert_array_equal(m, expected)


@pytest.fixture(scope='module')
def default_extractor(transfer, calibrated_weights):
    """The default cut's extractor at 32 px, on calibrated weights."""
    return transfer.build_models('MobileNetV2', 32, calibrated_weights,
                                 'block_6_project_BN', 0.2).extractor


@pytest.mark.parametrize('cores, interpreters',
                         [(1, None), (4, None), (4, 1)])
def test_engines_agree_within_the_cache_rounding(transfer, default_extractor,
                                                 images, cores, interpreters,
                                                 monkeypatch):
    """TFLite (XNNPACK) and Keras predict give the same float16 features to
    one float16 step (2**-10 relative), in order however many interpreters
    share the images: a cache does not depend on the engine that made
    it."""
    monkeypatch.setattr(transfer.os, 'cpu_count', lambda: cores)
    keras = transfer.FrozenPass(default_extractor, 8, 'keras')
    lite = transfer.FrozenPass(default_extractor, 8, None, interpreters)
    from_lite = lite(images.astype('float32')).astype('float32')
    if lite.engine != 'tflite':
        pytest.skip('no XNNPACK in this TensorFlow\'s Lite (2.6)')
    from_keras = keras(images.astype('float32')).astype('float32')
    assert np.abs(from_keras).mean() > 0.1  # not underflowing to zeros
    np.testing.assert_allclose(from_lite, from_keras, rtol=2 ** -10,
                               atol=2 ** -14)
    few = lite(images[:3].astype('float32'))  # fewer images than cores
    np.testing.assert_array_equal(few, from_lite[:3].astype('float16'))


def test_keras_runs_where_tensorflow_has_no_lite(transfer, default_extractor,
                                                 images, monkeypatch):
    """Without tf.lite the frozen pass falls back to Keras predict."""
    expected = default_extractor.predict(images.astype('float32'),
                                         verbose=0).astype('float16')
    monkeypatch.delattr(transfer.tf, 'lite')
    frozen = transfer.FrozenPass(default_extractor, 8)
    np.testing.assert_array_equal(frozen(images.astype('float32')),
                                  expected)
    assert frozen.engine == 'keras'


def test_mixup_mixes_each_map_with_its_own_label(transfer):
    """Under mixup every training map is a blend of two images, and its
    label is the same blend of theirs; the blends vary."""
    images = 12
    parts = [[np.arange(images, dtype='float16').reshape(images, 1, 1, 1)
              * np.ones((1, 2, 2, 1), 'float16')]]
    labels = np.eye(images, dtype='float32')
    batches = transfer.CachedBatches(parts, labels, 4, seed=0, mixup=0.4)
    x, y = zip(*(batches[i] for i in range(len(batches))))
    x, y = np.concatenate(x), np.concatenate(y)
    np.testing.assert_allclose(x[:, 0, 0, 0], y @ np.arange(images),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(y.sum(1), 1, rtol=1e-6)
    assert np.ptp(y.max(1)) > 0.1 and np.all(y.max(1) < 1)
