#!/usr/bin/env python3
"""The models: every backbone splits and stitches back to the same function,
and BatchNorm stays in inference mode while the suffix trains."""
import numpy as np
import pytest


@pytest.mark.parametrize('name', ['MobileNetV2', 'ResNet50', 'EfficientNetB0',
                                  'DenseNet121', 'VGG16', 'InceptionV3',
                                  'Xception'])
def test_stitched_model_equals_prefix_then_suffix(transfer, name):
    """images -> stitched == images -> extractor -> trainer (weights=None)."""
    assert name in transfer.BACKBONES
    module, cut, size = transfer.BACKBONES[name]
    extractor, trainer, stitched = transfer.build_models(
        name, size, None, cut, 0.2)
    assert type(stitched.layers[1]).__name__ == 'Lambda'
    images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)) \
        .astype('float32')
    direct = stitched.predict(images, verbose=0)
    through_cache = trainer.predict(extractor.predict(images, verbose=0),
                                    verbose=0)
    assert direct.shape == (4, 10)
    np.testing.assert_allclose(direct, through_cache, atol=1e-5)
    assert not extractor.trainable_weights
    assert trainer.trainable_weights


def test_cut_inside_a_block_is_refused(transfer):
    """A cut that a skip connection crosses cannot be split."""
    with pytest.raises(ValueError, match='block boundary'):
        transfer.build_models('MobileNetV2', 32, None, 'block_14_expand',
                              0.2)


def test_unknown_backbone_and_small_input_are_refused(transfer):
    """Clear errors before any model is built."""
    with pytest.raises(ValueError, match='unknown backbone'):
        transfer.build_backbone('NoSuchNet', 32, None)
    with pytest.raises(ValueError, match='image-size'):
        transfer.build_backbone('InceptionV3', 32, None)


@pytest.fixture(scope='module')
def fitted(transfer):
    """Fit the trainer one epoch on random activations; return its suffix
    and head as (layer, weights before, weights after) triples."""
    extractor, trainer, _ = transfer.build_models(
        'MobileNetV2', 32, None, 'block_13_project_BN', 0.2)
    layers = trainer.layers[1:-3] + [
        trainer.get_layer('predictions')]
    before = [[w.numpy() for w in layer.weights] for layer in layers]
    transfer.compile_model(trainer, 1e-2, 10, weight_decay=0,
                           label_smoothing=0.1)
    features = np.random.default_rng(0).normal(
        size=(64,) + tuple(extractor.output.shape[1:])).astype('float32')
    labels = np.eye(10, dtype='float32')[np.arange(64) % 10]
    trainer.fit(features, labels, epochs=1, batch_size=16, verbose=0)
    after = [[w.numpy() for w in layer.weights] for layer in layers]
    return list(zip(layers, before, after))


def test_training_keeps_batchnorm_statistics(transfer, fitted):
    """Fitting leaves every BatchNorm weight of the suffix as it was."""
    norms = [(layer, before, after) for layer, before, after in fitted
             if isinstance(layer, transfer.K.layers.BatchNormalization)]
    assert norms
    for layer, before, after in norms:
        for a, b in zip(before, after):
            np.testing.assert_array_equal(a, b, err_msg=layer.name)


def test_training_changes_every_suffix_kernel(transfer, fitted):
    """Fitting changes the kernels of the suffix's own convolutions, not
    only the head's: the backbone's last blocks are trained too."""
    kernels = [(layer.name, a, b) for layer, before, after in fitted
               if not isinstance(layer,
                                 transfer.K.layers.BatchNormalization)
               for a, b in zip(before, after)]
    names = {name for name, _, _ in kernels}
    assert 'predictions' in names and 'block_16_project' in names
    assert len(names) > 10, names
    unchanged = [name for name, a, b in kernels if np.array_equal(a, b)]
    assert not unchanged, 'not trained: ' + ', '.join(unchanged)


@pytest.mark.parametrize('cut', ['block_5_add', 'block_6_project_BN',
                                 'block_10_project_BN', 'block_13_project_BN',
                                 'block_16_project_BN'])
def test_every_swept_cut_computes_the_uncut_backbone(transfer, cut,
                                                     calibrated_weights):
    """prefix then suffix == the whole backbone, at each cut of the sweep
    (calibrated weights: activations near 1, not underflowing)."""
    backbone = transfer.build_backbone('MobileNetV2', 32, calibrated_weights)
    prefix, suffix = transfer.split_backbone(backbone, cut)
    images = transfer.upsize_images(
        np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3))
        .astype('float32'), 32, 'mobilenet_v2')
    whole = backbone.predict(images, verbose=0)
    assert np.abs(whole).mean() > 1e-2
    # Float rounding differs between one graph and two (seen: 1.2e-5 on
    # Keras 2); a wrong split differs at the scale of the outputs.
    K = transfer.K
    head = K.Model(backbone.input, prefix(backbone.input))
    features = K.Input(head.output.shape[1:])
    tail = K.Model(features, suffix(features))
    np.testing.assert_allclose(
        tail.predict(head.predict(images, verbose=0), verbose=0), whole,
        rtol=1e-3, atol=1e-4)


def test_mirror_model_averages_image_and_mirror(transfer, calibrated_weights):
    """With mirror, the stitched model's output is the mean of the trained
    path on the images and on their horizontal mirrors (at 72 px, so that
    the model flips resized images while the cache holds resized flips)."""
    transfer.set_random_seed(0)  # the head's initial weights
    extractor, trainer, stitched = transfer.build_models(
        'MobileNetV2', 72, calibrated_weights, 'block_6_project_BN', 0.2,
        mirror=True)
    assert type(stitched.layers[1]).__name__ == 'Lambda'
    images = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3)) \
        .astype('float32')

    def cached_path(x):
        """The trainer's probabilities on the extractor's activations."""
        return trainer.predict(extractor.predict(x, verbose=0), verbose=0)

    single, mirrored = cached_path(images), cached_path(images[:, :, ::-1])
    # The views differ ten times more than the tolerance below (by how
    # much depends on the head's random weights and the CPU's rounding).
    assert np.abs(single - mirrored).max() > 0.01
    # Resizing a flip and flipping a resize differ by float rounding only:
    # about 1e-4 in the probabilities, three orders below a missing flip.
    np.testing.assert_allclose(stitched.predict(images, verbose=0),
                               (single + mirrored) / 2, atol=1e-3)


def test_weight_decay_shrinks_every_trained_weight_but_biases(transfer):
    """One AdamW step ends at the Adam step's weights less decay x rate x
    the weights it started from, biases excepted (Keras 2.11 and later)."""
    if not transfer.ADAM_DECAYS:
        pytest.skip('this Keras\'s Adam has no weight decay')
    _, trainer, _ = transfer.build_models(
        'MobileNetV2', 32, None, 'block_13_project_BN', 0)
    start = [w.numpy() + ('bias' in w.name)  # a bias of 0 cannot shrink
             for w in trainer.trainable_weights]
    features = np.random.default_rng(0).normal(
        size=(16,) + tuple(trainer.input.shape[1:])).astype('float32')
    labels = np.eye(10, dtype='float32')[np.arange(16) % 10]
    rate, decay, stepped = 0.1, 0.5, {}
    for weight_decay in (0, decay):
        for w, value in zip(trainer.trainable_weights, start):
            w.assign(value)
        transfer.compile_model(trainer, rate, 10, weight_decay=weight_decay,
                               label_smoothing=0.1)
        trainer.fit(features, labels, batch_size=16, verbose=0)
        stepped[weight_decay] = [w.numpy() for w in trainer.trainable_weights]
    biases = 0
    for w, begin, adam, adamw in zip(trainer.trainable_weights, start,
                                     stepped[0], stepped[decay]):
        shrink = 0 if 'bias' in w.name else decay * rate
        biases += 'bias' in w.name
        np.testing.assert_allclose(adamw, adam - shrink * begin, atol=1e-5,
                                   err_msg=w.name)
    assert biases == 1  # the head's; MobileNetV2's convolutions have none


def test_weight_decay_is_refused_where_adam_has_none(transfer):
    """On Keras 2.6, --weight-decay is an error up front, not at training;
    every later stack has it."""
    assert transfer.ADAM_DECAYS == (
        not transfer.tf.__version__.startswith('2.6.'))
    argv = ['--weight-decay', '0.01']
    if transfer.ADAM_DECAYS:
        assert transfer.parse_args(argv).weight_decay == 0.01
    else:
        with pytest.raises(SystemExit):
            transfer.parse_args(argv)
