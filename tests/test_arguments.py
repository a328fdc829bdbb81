"""``args`` split into tensor inputs and static values (``_backend/tensorflow/arguments.py``):
the two rules, and each front door keeping its own."""

import numpy as np
import pytest
import tensorflow as tf

import marquardt
from marquardt._backend.tensorflow import arguments
from marquardt.scipy import residual_functions

T = np.linspace(0.0, 1.0, 6)


@pytest.mark.parametrize("value, float_dtype, row_dtype", [
    (np.ones(3, np.float32), tf.float64, tf.float64),
    (tf.ones(3, tf.float32), tf.float64, tf.float64),
    (np.array(2.0), tf.float64, None),          # 0-d: an input of least_squares only
    (np.arange(3), None, tf.int64),             # integer: an input of the bridge only
    (np.ones(3, bool), None, tf.bool),
    (np.ones(3, complex), None, None),
    (np.array(["a", "b"]), None, None),
    ([1.0, 2.0], None, None),                   # lists and numbers stay as they are
    (2.0, None, None),
])
def test_rules(value, float_dtype, row_dtype):
    for rule, dtype in ((arguments.float_arrays, float_dtype), (arguments.row_arrays, row_dtype)):
        layout = arguments.split_args((value,), rule)
        if dtype is None:
            assert layout.slots == (("static", value),) and layout.data == ()
        else:
            assert layout.slots == (("tensor", 0),) and layout.data[0].dtype == dtype


def test_call_args_puts_the_tensors_back_in_order():
    layout = arguments.split_args(("a", T, 3, 2 * T), arguments.float_arrays)
    assert layout.slots[0] == ("static", "a") and layout.slots[2] == ("static", 3)
    assert [s[0] for s in layout.slots] == ["static", "tensor", "static", "tensor"]
    out = layout.call_args(("first", "second"))
    assert out == ["a", "first", 3, "second"]


def test_least_squares_hands_integer_arrays_to_fun_as_numpy():
    idx = np.array([0, 2, 4])
    seen = []

    def fun(p, t, i):
        seen.append((type(t).__name__, type(i)))
        return p[0] * tf.gather(t, i) - 2.0 * T[i]

    res = marquardt.least_squares(fun, [1.0], args=(T, idx))
    np.testing.assert_allclose(res.x, [2.0], rtol=1e-10)
    assert all(kind is np.ndarray for _, kind in seen)
    assert any(name != "ndarray" for name, _ in seen)  # T is a tensor input


def test_bridge_splits_integer_labels_by_row():
    """per_sample gives each one-row batch its own label: integer arrays are row data."""
    labels = np.array([0, 1, 0, 1, 0, 1])
    y = np.where(labels == 1, 3.0, 1.0) * T

    def fun(p, t, lab, y):
        return (p[0] + (p[1] - p[0]) * tf.cast(lab, tf.float64)) * t - y

    f, jac = residual_functions(fun, [1.0, 1.0], args=(T, labels, y), mode="per_sample")
    _, ref = residual_functions(fun, [1.0, 1.0], args=(T, labels, y), mode="forward")
    np.testing.assert_allclose(jac(np.array([1.5, 2.5])), ref(np.array([1.5, 2.5])), rtol=1e-12)
