"""Capturing TensorFlow curve models as formula trees (``_backend/tensorflow/capture``, reached
through ``_model_capture.capture_model``), against TensorFlow's own values and autodiff."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from marquardt._backend.numpy import native_load  # noqa: E402
from marquardt._model_capture import capture_model  # noqa: E402

needs_cc = pytest.mark.skipif(native_load.compiler() is None, reason="no C compiler")

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("_batch_benchmark", ROOT / "benchmarks" / "batch.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

XY, _, P_GAUSS = bench.gauss2d_data(3, seed=0)   # (2, 25), 3 starts of 5 parameters
T, _, P_EXP = bench.double_exp_data(3, seed=0)   # (64,), 3 starts of 4 parameters
CASES = {"gauss2d": (bench.gauss2d, XY, P_GAUSS), "double_exp": (bench.double_exp, T, P_EXP)}


def tf_values_and_jacobian(f, x, p):
    """f's values and its Jacobian (m, n) by TensorFlow's forward-mode autodiff (column j:
    the tangent of f along pⱼ; cheaper eagerly than ``GradientTape.jacobian``)."""
    params = [tf.constant(v) for v in p]
    columns = []
    for j, q in enumerate(params):
        with tf.autodiff.ForwardAccumulator(q, tf.constant(1.0, tf.float64)) as acc:
            out = f(tf.constant(x), *params[:j], q, *params[j + 1:])
        columns.append(acc.jvp(out, unconnected_gradients="zero"))
    return out.numpy(), tf.stack(columns, axis=1).numpy()


@pytest.mark.parametrize("name", sorted(CASES))
def test_benchmark_models_captured_with_tensorflows_values_and_jacobian(name):
    f, x, starts = CASES[name]
    model = capture_model(f, x, starts)
    assert model is not None
    assert model.variables == (("x0", "x1") if x.ndim == 2 else ("x0",))
    assert model.parameters == tuple(f"p{j}" for j in range(starts.shape[1]))
    for p in starts:
        value, jacobian = tf_values_and_jacobian(f, x, p)
        np.testing.assert_allclose(model.values(x, p), value, rtol=1e-13, atol=0)
        np.testing.assert_allclose(model.jacobian(x, p), jacobian, rtol=1e-12, atol=1e-15)


@needs_cc
@pytest.mark.parametrize("name", sorted(CASES))
def test_compiled_benchmark_models_match_tensorflow(name):
    from marquardt._backend.numpy.native_formula import load_cmodel

    f, x, starts = CASES[name]
    compiled = load_cmodel(capture_model(f, x, starts, backend="tensorflow"))
    p = starts[1]
    value, jacobian = tf_values_and_jacobian(f, x, p)
    y = np.cos(np.arange(x.shape[-1]))
    r, J = compiled(p, x, y)
    np.testing.assert_allclose(r, value - y, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(J, jacobian, rtol=1e-12, atol=1e-15)


C = tf.constant(0.25, tf.float64)  # a scalar eager tensor the model's closure holds


def every_op(xy, a, b, c):
    """One use of each op read (rows taken four ways, the rewrites, a Cast, AddN, Atan2)."""
    u, v = tf.unstack(xy)
    w = tf.gather(xy, 1) + xy[0, :] - xy[-1]
    s = tf.sin(a * u) + tf.cos(b * v) + tf.tan(0.1 * u) + tf.atan(b * u) + tf.asin(0.1 * u / a)
    s += tf.acos(0.1 * v / a) + tf.sinh(0.1 * c * u) + tf.cosh(0.1 * v) + tf.tanh(c - u)
    s += tf.abs(v - b) + tf.math.log(b + u) + tf.sqrt(a + v) + tf.math.atan2(u - 1.0, b)
    s += tf.math.rsqrt(a + u) + tf.sigmoid(c * v) + tf.square(b - u) + tf.math.reciprocal(a + v)
    s += tf.math.squared_difference(u, c) + tf.add_n([u, v, w]) * tf.cast(2, tf.float64)
    return s + (a + u) ** b + 2.0 ** (c * v) - C * tf.exp(-c * u) / (1.0 + v)


def test_every_op_captured_with_tensorflows_values_and_jacobian():
    p = np.array([1.7, 0.8, 0.4])
    model = capture_model(every_op, XY, p)
    assert model is not None
    value, jacobian = tf_values_and_jacobian(every_op, XY, p)
    np.testing.assert_allclose(model.values(XY, p), value, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(model.jacobian(XY, p), jacobian, rtol=1e-12, atol=1e-13)


def test_a_tf_function_model_is_traced_through_its_python_function():
    model = tf.function(lambda t, a, k: a * tf.exp(-k * t))
    captured = capture_model(model, T, [2.0, 0.5])
    assert captured is not None
    np.testing.assert_allclose(captured.values(T, [2.0, 0.5]), 2.0 * np.exp(-0.5 * T),
                               rtol=1e-13)


STATE = tf.Variable(2.0, dtype=tf.float64)


@tf.function
def _inner(t, a):
    return a * t


def _branch(t, a, b):
    if a > 0:  # a Python branch on a tensor
        return a * t
    return b * t


@pytest.mark.parametrize("f", [
    lambda t, a, b: tf.where(t > a, t, b),
    lambda t, a, b: tf.reduce_sum(a * t) + b * t,
    lambda t, a, b: tf.cond(a > 0, lambda: a * t, lambda: b * t),
    _branch,
    lambda t, a, b: a * t + b * tf.constant(np.ones(64)),       # an array constant (data)
    lambda t, a, b: a * t + b * tf.random.normal((64,), dtype=tf.float64),
    lambda t, a, b: tf.math.expm1(a * t) + b,                   # not in the whitelist
    lambda t, a, b: STATE * a * t + b,                          # a variable
    lambda t, a, b: _inner(t, a) + b,                           # a nested tf.function
    lambda t, a, b: a * t * tf.constant(2.0) + b,               # float32 meets float64
    lambda t, a, b: tf.reshape(tf.reshape(a * t, (8, 8)), (64,)) + b,
    lambda t, a, b: a + b,                                      # a scalar result
    lambda t, a, b: tf.stack([a * t, b * t]),                   # a result of the wrong shape
    lambda t, a, b: a * t + tf.cast(tf.cast(b * t, tf.float32), tf.float64),
    lambda t, a, b: a * t + b * t[0],                           # a point indexed
], ids=["where", "reduce_sum", "cond", "branch", "array-constant", "random", "expm1",
        "variable", "nested-function", "float32", "reshape", "scalar", "stack", "float32-cast",
        "point"])
def test_refused(f):
    assert capture_model(f, T, [1.0, 2.0]) is None


def _printing(xy, a):
    tf.print(a)
    return a * xy[0]


@pytest.mark.parametrize("f", [
    lambda xy, a: a * xy[2],                                    # no such row
    lambda xy, a: a * xy[:, 0],                                 # a column
    lambda xy, a: a * tf.unstack(xy, axis=1)[0],                # unstacked along the points
    lambda xy, a: a * xy[0, 1:],                                # part of a row
    lambda xy, a: a * xy[0, ::-1],                              # a row reversed
    lambda xy, a: a * xy[0][::-1],                              # a row, then reversed
    lambda xy, a: a * xy + 0.0,                                 # xdata itself, (2, 25)
    _printing,                                                  # a stateful op
], ids=["row-2", "column", "unstack-points", "part-row", "reversed-row", "reversed", "whole",
        "print"])
def test_refused_uses_of_xdata(f):
    assert capture_model(f, XY, [1.0], backend="tensorflow") is None


def test_refused_when_values_differ_from_f():
    calls = []

    def changing(t, a):  # traced once, then another model when called eagerly
        calls.append(1)
        return a * t if len(calls) == 1 else a * t + 1e-9

    assert capture_model(changing, T, [1.0], backend="tensorflow") is None


def test_backend_is_checked():
    with pytest.raises(ValueError, match=r"`backend` must be one of .* backend='jax'"):
        capture_model(bench.double_exp_np, T, P_EXP, backend="jax")
    assert capture_model(bench.double_exp, T, P_EXP, backend="numpy") is None


def test_numpy_models_are_captured_without_importing_tensorflow():
    code = ("import sys, numpy as np\n"
            "from marquardt._model_capture import capture_model\n"
            "t = np.linspace(0.0, 1.0, 9)\n"
            "assert capture_model(lambda t, a, k: a * np.exp(-k * t), t, [1.0, 2.0]) is not None\n"
            "assert capture_model(lambda t, a, k: np.where(t > a, t, k), t, [1.0, 2.0]) is None\n"
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)
