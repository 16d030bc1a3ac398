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


# Each defect the generator can put into otherwise valid arrays, and the
# word the ValueError must name.  Only 'x_shape' changes the shape of X:
# every other defect reaches the checks that come after the shape check.
DEFECTS = {'x_shape': 'shape', 'y_shape': 'shape', 'length': 'length',
           'x_dtype': 'numeric', 'y_dtype': 'numeric',
           'x_not_finite': 'NaN', 'y_not_finite': 'NaN',
           'label_out_of_range': '0-9', 'label_not_integer': '0-9'}
NUMERIC = st.one_of(hnp.integer_dtypes(), hnp.unsigned_integer_dtypes(),
                    hnp.floating_dtypes())
# numpy counts timedelta64 as an integer type: preprocess_data refuses it
# all the same (test_timedelta_and_0d_labels_are_refused).
NOT_NUMERIC = st.one_of(hnp.boolean_dtypes(), hnp.complex_number_dtypes(),
                        hnp.datetime64_dtypes(), hnp.byte_string_dtypes(),
                        hnp.unicode_string_dtypes())


def with_one(draw, array, values):
    """Return array with one element, drawn, set to a value drawn."""
    array.flat[draw(st.integers(0, array.size - 1))] = draw(values)
    return array


@st.composite
def cifar_arrays(draw, defect=None):
    """Draw (X, Y): valid CIFAR-10 arrays of any numeric dtypes, labels
    (m,) or (m, 1), then spoil them with the one defect named, if any."""
    m = draw(st.integers(1, 4))
    X = draw(hnp.arrays('uint8', (m, 32, 32, 3))).astype(draw(NUMERIC))
    Y = draw(hnp.arrays('uint8', m, elements=st.integers(0, 9)))
    Y = Y.astype(draw(NUMERIC)).reshape((m, 1) if draw(st.booleans())
                                        else m)
    floats = hnp.floating_dtypes()
    not_finite = st.sampled_from([np.nan, np.inf, -np.inf])
    if defect == 'x_shape':
        near_misses = [(32, 32, 3), (m, 32, 32), (m, 32, 32, 1),
                       (m, 3, 32, 32), (m, 28, 28, 3), (1, m, 32, 32, 3)]
        shape = draw(hnp.array_shapes(min_dims=0, max_dims=5, max_side=4)
                     | st.sampled_from(near_misses))
        X = draw(hnp.arrays(hnp.scalar_dtypes(), shape))
    elif defect == 'y_shape':  # 0-d: test_timedelta_and_0d_labels_are_refused
        Y = np.resize(Y, draw(st.sampled_from([(m, 2), (m, 10), (m, 1, 1),
                                               (1, m, 1)])))
    elif defect == 'length':
        n = draw(st.integers(0, 6).filter(lambda n: n != m))
        Y = np.resize(Y, (n,) + Y.shape[1:])
    elif defect == 'x_dtype':
        X = X.astype(draw(NOT_NUMERIC))
    elif defect == 'y_dtype':
        Y = Y.astype(draw(NOT_NUMERIC))
    elif defect == 'x_not_finite':
        X = with_one(draw, X.astype(draw(floats)), not_finite)
    elif defect == 'y_not_finite':
        Y = with_one(draw, Y.astype(draw(floats)), not_finite)
    elif defect == 'label_out_of_range':
        Y = with_one(draw, Y.astype(draw(hnp.integer_dtypes(sizes=(16, 64))
                                         | floats)),
                     st.integers(-300, -1) | st.integers(10, 300))
    elif defect == 'label_not_integer':
        Y = with_one(draw, Y.astype(draw(floats)),
                     st.integers(0, 9).map(lambda label: label + 0.5))
    return X, Y


@pytest.mark.parametrize('defect', [None] + sorted(DEFECTS))
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_generated_arrays(transfer, defect, data):
    """Valid arrays pass through; each defect raises a ValueError naming
    it, whatever dtypes and values the rest of the arrays hold."""
    X, Y = data.draw(cifar_arrays(defect))
    if defect is not None:
        with pytest.raises(ValueError, match=DEFECTS[defect]):
            transfer.preprocess_data(X, Y)
        return
    X_p, Y_p = transfer.preprocess_data(X, Y)
    assert X_p.dtype == np.float32 and Y_p.dtype == np.float32
    np.testing.assert_array_equal(X_p, X.astype('float32'))
    assert Y_p.shape == (len(Y), 10)
    np.testing.assert_array_equal(Y_p.argmax(1), Y.reshape(-1))
    np.testing.assert_array_equal(Y_p.sum(1), 1)


@pytest.mark.parametrize('X, Y', [
    (np.zeros((2, 32, 32, 3), 'timedelta64[s]'), np.zeros(2)),
    (np.zeros((2, 32, 32, 3)), np.zeros(2, 'timedelta64[s]')),
    (np.zeros((1, 32, 32, 3)), np.array(3)),
])
def test_timedelta_and_0d_labels_are_refused(transfer, X, Y):
    """timedelta64 (an integer type to numpy) and 0-d labels: once accepted
    or a TypeError."""
    with pytest.raises(ValueError):
        transfer.preprocess_data(X, Y)
