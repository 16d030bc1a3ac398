#!/usr/bin/env python3
"""The benchmark's FLOP accounting on a model small enough to count by
hand."""
import os

from conftest import PROJECT_DIR, load_module


def test_multiply_adds_of_a_known_model(transfer):
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
    benchmark = load_module(os.path.join(PROJECT_DIR, 'benchmark.py'),
                            'benchmark')
    assert benchmark.multiply_adds(outer) == 13824 + 1152 + 1280
