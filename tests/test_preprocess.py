#!/usr/bin/env python3
"""preprocess_data: its output contract and its errors on bad input."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp


def images(m, dtype='uint8'):
    """Return m random CIFAR-shaped images."""
    return np.random.default_rng(0).integers(0, 256, (m, 32, 32, 3)) \
        .astype(dtype)


@pytest.mark.parametrize('label_shape', [(5,), (5, 1)])
def test_output_contract(transfer, label_shape):
    """Pixels come back float32 unchanged, labels one-hot (m, 10)."""
    X = images(5)
    Y = np.arange(5, dtype='uint8').reshape(label_shape)
    X_p, Y_p = transfer.preprocess_data(X, Y)
    assert X_p.dtype == np.float32 and X_p.shape == (5, 32, 32, 3)
    np.testing.assert_array_equal(X_p, X)
    assert Y_p.dtype == np.float32 and Y_p.shape == (5, 10)
    np.testing.assert_array_equal(Y_p.argmax(1), np.arange(5))
    np.testing.assert_array_equal(Y_p.sum(1), 1)


@pytest.mark.parametrize('X, Y, message', [
    (np.zeros((5, 32, 32)), np.zeros(5), 'shape'),
    (np.zeros((5, 28, 28, 3)), np.zeros(5), 'shape'),
    (np.zeros((5, 32, 32, 3)), np.zeros((5, 2)), 'shape'),
    (np.full((5, 32, 32, 3), 'a'), np.zeros(5), 'numeric'),
    (np.zeros((5, 32, 32, 3)), np.array(['1'] * 5), 'numeric'),
    (np.zeros((5, 32, 32, 3)), np.zeros(4), 'length'),
    (np.zeros((5, 32, 32, 3)), np.array([0, 1, 2, 3, 10]), '0-9'),
    (np.zeros((5, 32, 32, 3)), np.array([0, 1, 2, 3, -1]), '0-9'),
    (np.zeros((5, 32, 32, 3)), np.array([0, 1, 2, 3, 1.5]), '0-9'),
    (np.full((5, 32, 32, 3), np.nan), np.zeros(5), 'NaN'),
    (np.full((5, 32, 32, 3), np.inf), np.zeros(5), 'NaN'),
    (np.zeros((5, 32, 32, 3)), np.array([0, 1, 2, 3, np.nan]), 'NaN'),
])
def test_bad_input_raises_clear_value_error(transfer, X, Y, message):
    """Each kind of bad input raises a ValueError that names the problem."""
    with pytest.raises(ValueError, match=message):
        transfer.preprocess_data(X, Y)


@settings(max_examples=60, deadline=None)
@given(X=hnp.arrays(hnp.scalar_dtypes(), hnp.array_shapes(max_dims=4,
                                                          max_side=4)),
       Y=hnp.arrays(hnp.scalar_dtypes(), hnp.array_shapes(max_dims=2,
                                                          max_side=4)))
def test_any_malformed_input_gives_value_error(transfer, X, Y):
    """Arbitrary shapes and dtypes: a ValueError, never another error."""
    with pytest.raises(ValueError):
        transfer.preprocess_data(X, Y)


@settings(max_examples=30, deadline=None)
@given(m=st.integers(1, 4),
       dtype=st.sampled_from(['uint8', 'int32', 'float32', 'float64']),
       label_dtype=st.sampled_from(['uint8', 'int64', 'float32']),
       column=st.booleans(), data=st.data())
def test_any_valid_input_is_accepted(transfer, m, dtype, label_dtype,
                                     column, data):
    """Valid images of any numeric dtype and labels 0-9 in either shape."""
    labels = np.array(data.draw(st.lists(st.integers(0, 9), min_size=m,
                                         max_size=m)), dtype=label_dtype)
    X_p, Y_p = transfer.preprocess_data(
        images(m, dtype), labels.reshape(-1, 1) if column else labels)
    assert X_p.shape == (m, 32, 32, 3) and Y_p.shape == (m, 10)
    np.testing.assert_array_equal(Y_p.argmax(1), labels.astype(int))
