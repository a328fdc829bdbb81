"""The host-LAPACK kernels of the JAX Keras step (``_backend/jax/linalg.py``): the same
answers as XLA's kernels, failures reported as XLA's route reports them, OpenBLAS' thread count
restored, and a training run that takes the same steps either way."""

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest

import marquardt.keras as mk
from marquardt import _solvers
from marquardt._backend.jax import keras_bayes, linalg
from marquardt._backend.jax import xp as jxp
from marquardt._backend.numpy import blas_threads
from marquardt._backend.numpy import xp as npx


def spd(p, seed=0, rows=None):
    rng = np.random.default_rng(seed)
    j = rng.standard_normal((rows or 2 * p, p))
    return j.T @ j, rng.standard_normal(p)


def test_host_solve_equals_xla_to_rounding():
    a, b = spd(200)
    m = jnp.asarray(a + 1e-3 * np.eye(200))
    x_host, ok_host = jax.jit(linalg.host_cholesky_solve)(m, jnp.asarray(b))
    x_xla, ok_xla = jax.jit(jxp.cholesky_solve_or_nan)(m, jnp.asarray(b))
    assert bool(ok_host) and bool(ok_xla)
    assert x_host.dtype == jnp.float64 and x_host.shape == (200,)
    scale = np.linalg.norm(np.asarray(x_xla))
    assert np.linalg.norm(np.asarray(x_host) - np.asarray(x_xla)) <= 1e-10 * scale
    np.testing.assert_allclose(np.asarray(m) @ np.asarray(x_host), b, rtol=0, atol=1e-8)


def test_host_solve_batched_under_vmap():
    ms, bs = zip(*(spd(150, seed=s) for s in range(3)))
    ms, bs = jnp.asarray(np.stack(ms)), jnp.asarray(np.stack(bs))
    x, ok = jax.jit(jax.vmap(linalg.host_cholesky_solve))(ms, bs)
    assert x.shape == (3, 150) and ok.shape == (3,) and bool(jnp.all(ok))
    for i in range(3):
        np.testing.assert_allclose(np.asarray(x[i]), np.linalg.solve(ms[i], bs[i]), rtol=1e-8)


def test_failed_factorisation_is_reported_and_the_eigen_route_solves():
    a, g = spd(160, rows=100)  # rank 100 < 160: singular
    a = jnp.asarray(a)
    g = jnp.asarray(g)
    indefinite = a - 1.0 * jnp.eye(160)
    x, ok = jax.jit(linalg.host_cholesky_solve)(indefinite, g)
    assert not bool(ok) and bool(jnp.all(jnp.isnan(x)))
    # the damped solve: λ = -1 would be indefinite; λ tiny on the singular A fails potrf
    d = jnp.ones(160)
    lam = jnp.asarray(-0.5)

    def solve(kernel):
        return _solvers.solve_normal_checked(a, g, lam, d, xp=jxp, cholesky_solve=kernel)

    step_host, failed_host = jax.jit(lambda: solve(linalg.host_cholesky_solve))()
    step_xla, failed_xla = jax.jit(lambda: solve(None))()
    assert bool(failed_host) and bool(failed_xla)
    assert bool(jnp.all(jnp.isfinite(step_host)))
    np.testing.assert_allclose(np.asarray(step_host), np.asarray(step_xla), rtol=1e-9)


def test_host_trace_inverse_equals_xla_and_reports_failure():
    a, _ = spd(300)
    m = jnp.asarray(a + np.eye(300))
    t_host, ok = jax.jit(linalg.host_trace_inverse)(m)
    assert bool(ok)
    np.testing.assert_allclose(float(t_host), float(np.trace(np.linalg.inv(np.asarray(m)))),
                               rtol=1e-10)
    t_route, ok_route = jax.jit(keras_bayes.trace_inverse)(m)  # P ≥ 128 on a CPU: the host's
    assert bool(ok_route)
    np.testing.assert_allclose(float(t_route), float(t_host), rtol=1e-12)
    t_bad, ok_bad = jax.jit(linalg.host_trace_inverse)(m - 1e6 * jnp.eye(300))
    assert not bool(ok_bad) and np.isnan(float(t_bad))
    t_route_bad, ok_route_bad = jax.jit(keras_bayes.trace_inverse)(m - 1e6 * jnp.eye(300))
    # reported, NaN: effective_parameters' eigenvalue route takes over (tests/bayes_cases.py)
    assert not bool(ok_route_bad) and np.isnan(float(t_route_bad))


@pytest.mark.skipif(blas_threads._setter() is None, reason="SciPy's OpenBLAS has no local "
                    "thread count")
def test_one_blas_thread_inside_and_the_count_restored(monkeypatch):
    setter = blas_threads._setter()
    seen = []
    real = npx.cholesky_solve_or_nan

    def spy(m, b):
        previous = setter(1)  # returns the count in force, sets the same one
        seen.append(previous)
        return real(m, b)

    monkeypatch.setattr(npx, "cholesky_solve_or_nan", spy)
    original = setter(3)
    try:
        a, b = spd(130)
        linalg._lapack_cholesky_solve(a + np.eye(130), b)
        assert seen == [1]
        assert setter(3) == 3  # restored to what the caller had
    finally:
        setter(original)


def test_use_host_lapack_on_cpu_from_the_threshold():
    assert jax.default_backend() == "cpu"
    assert linalg.use_host_lapack(linalg.HOST_LAPACK_MIN_N)
    assert not linalg.use_host_lapack(linalg.HOST_LAPACK_MIN_N - 1)


def _train(epochs=4):
    rng = np.random.default_rng(1)
    x = np.linspace(-1.0, 1.0, 300)[:, None].astype("float32")
    y = np.sinc(5.0 * x).astype("float32")
    net = keras.Sequential([keras.Input((1,)), keras.layers.Dense(12, "tanh"),
                            keras.layers.Dense(12, "tanh"), keras.layers.Dense(1)])
    net.set_weights([rng.uniform(-0.5, 0.5, w.shape).astype("float32")
                     for w in net.get_weights()])  # P = 193
    history = mk.fit(net, x, y, loss="mse", epochs=epochs, batch_size="full", verbose=0,
                     shuffle=False)
    return history.history["loss"], history.history["lam"]


def test_training_takes_the_same_steps_on_host_and_xla(monkeypatch):
    loss_host, lam_host = _train()
    monkeypatch.setattr(linalg, "HOST_LAPACK_MIN_N", 10**9)  # XLA's kernels
    loss_xla, lam_xla = _train()
    assert loss_host[-1] < loss_host[0]
    np.testing.assert_allclose(loss_host, loss_xla, rtol=1e-4)
    np.testing.assert_allclose(lam_host, lam_xla, rtol=1e-4)
