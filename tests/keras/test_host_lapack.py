"""The host-LAPACK Cholesky of the Keras step: same answers as TensorFlow's, same failures."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import marquardt.keras as mk
from marquardt._backend.tensorflow import linalg
from marquardt._solvers import solve_normal

from keras_helpers import mlp


def _spd(n, seed=0):
    rng = np.random.default_rng(seed)
    j = rng.standard_normal((2 * n, n))
    return j.T @ j, rng.standard_normal(n)


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-4)])
def test_host_solve_equals_numpy(dtype, tol):
    a, b = _spd(150)
    x, ok = tf.function(linalg.host_cholesky_solve)(tf.constant(a, dtype), tf.constant(b, dtype))
    assert x.dtype == dtype and x.shape == (150,) and bool(ok)
    expected = np.linalg.solve(a, b)
    np.testing.assert_allclose(x.numpy(), expected, rtol=tol * np.linalg.cond(a), atol=0)


def test_host_solve_reports_indefinite_matrix():
    a, b = _spd(130)
    a[5, 5] = -1.0
    x, ok = linalg.host_cholesky_solve(tf.constant(a), tf.constant(b))
    assert not bool(ok)
    assert np.isnan(x.numpy()).all()


def test_solve_normal_with_host_kernel_and_eigen_fallback():
    a, g = _spd(140)
    d = np.ones(140)
    for lam in (1e-3, 10.0):
        ours = solve_normal(tf.constant(a), tf.constant(g), tf.constant(lam, tf.float64), tf.constant(d),
                            cholesky_solve=linalg.host_cholesky_solve)
        ref = np.linalg.solve(a + lam * np.eye(140), -g)
        np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-9)
    # a singular A with λ = 0: the host factor fails and the eigen route answers, as with TF's
    singular = a.copy()
    singular[:, 0] = singular[0, :] = 0.0
    host = solve_normal(tf.constant(singular), tf.constant(g), tf.constant(0.0, tf.float64),
                        tf.constant(d), cholesky_solve=linalg.host_cholesky_solve)
    native = solve_normal(tf.constant(singular), tf.constant(g), tf.constant(0.0, tf.float64),
                          tf.constant(d))
    assert np.isfinite(host.numpy()).all()
    np.testing.assert_allclose(host.numpy(), native.numpy(), rtol=1e-9)


def test_use_host_lapack_rules():
    assert not linalg.use_host_lapack(linalg.HOST_LAPACK_MIN_N - 1, jit_compile=False)
    big = linalg.HOST_LAPACK_MIN_N
    assert not linalg.use_host_lapack(big, jit_compile=True)
    assert linalg.use_host_lapack(big, jit_compile=False) == (
        not tf.config.list_logical_devices("GPU"))


def _train(monkeypatch, host):
    monkeypatch.setattr(linalg, "use_host_lapack", lambda n, jit_compile: host)
    calls = []
    original = linalg._lapack_cholesky_solve

    def counted(m, b):
        calls.append(m.shape)
        return original(m, b)

    monkeypatch.setattr(linalg, "_lapack_cholesky_solve", counted)
    keras.utils.set_random_seed(3)
    net = mlp((12, 12))  # 193 weights: small and quick; the patch picks the kernel
    x = np.linspace(-1, 1, 300, dtype="float32")[:, None]
    history = mk.fit(net, x, np.sin(3 * x), loss="mse", epochs=8, verbose=0)
    # one factorisation per λ tried: the host kernel ran exactly when it was chosen
    assert len(calls) == (sum(history.history["attempts"]) if host else 0)
    return history.history, np.concatenate([w.ravel() for w in net.get_weights()])


def test_training_is_the_same_with_host_lapack(monkeypatch):
    host_logs, host_w = _train(monkeypatch, True)
    tf_logs, tf_w = _train(monkeypatch, False)
    assert host_logs["attempts"] == tf_logs["attempts"]
    np.testing.assert_allclose(host_logs["loss"], tf_logs["loss"], rtol=1e-4)
    np.testing.assert_allclose(host_w, tf_w, rtol=1e-3, atol=1e-5)


def test_one_blas_thread_is_set_for_the_block_and_restored():
    """``blas_threads.one_thread``: SciPy's OpenBLAS on one thread inside the block (the
    host-LAPACK trace of Bayesian regularisation), its previous count after it."""
    from marquardt._backend.numpy import blas_threads

    setter = blas_threads._setter()
    if setter is None:
        pytest.skip("SciPy is not linked against its bundled OpenBLAS")

    def current():
        value = setter(1)
        setter(value)
        return value

    original = setter(2)
    try:
        with blas_threads.one_thread():
            assert current() == 1
        assert current() == 2
    finally:
        setter(original)
