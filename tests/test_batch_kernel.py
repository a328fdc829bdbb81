"""``curve_fit_batch`` on the per-problem kernel (``marquardt._batch_kernel``): which calls run
there, that they give the other executors' fits to rounding with the same stopping decisions,
and the errors of ``kernel=True`` where it cannot run."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from marquardt import _batch_kernel
from marquardt._backend.numpy import native_load
from marquardt._batch import curve_fit_batch

pytestmark = pytest.mark.skipif(native_load.compiler() is None, reason="no C compiler")

TOL = dict(ftol=1e-10, xtol=1e-10, gtol=1e-10)


def decay(t, a, k, c):
    return a * np.exp(-k * t) + c


def decay_tf(t, a, k, c):
    return a * tf.exp(-k * t) + c


def data(k, seed=0, m=20):
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 3.0, m)
    p = np.stack([rng.uniform(1, 3, k), rng.uniform(0.5, 2, k), rng.uniform(-0.5, 0.5, k)], 1)
    y = decay(t, *(p.T[:, :, None])) + 0.01 * rng.standard_normal((k, m))
    return t, y, p * rng.uniform(0.8, 1.2, p.shape)


@pytest.fixture(autouse=True)
def fresh():
    _batch_kernel.reset()
    yield
    _batch_kernel.reset()


def solved() -> int:
    return _batch_kernel.STATS["problems"]


def assert_same_fits(a, b, rtol=1e-9):
    """The same stopping decisions, x and cost to rounding."""
    np.testing.assert_array_equal(a.status, b.status)
    np.testing.assert_array_equal(a.nfev, b.nfev)
    np.testing.assert_array_equal(a.nit, b.nit)
    np.testing.assert_allclose(a.x, b.x, rtol=rtol, atol=1e-12)
    np.testing.assert_allclose(a.cost, b.cost, rtol=1e-9, atol=1e-300)
    np.testing.assert_allclose(a.cov, b.cov, rtol=1e-6, atol=1e-14)


def test_numpy_model_moves_to_the_kernel_once_its_rent_is_paid(monkeypatch):
    """A closed-form NumPy model at ``jac='auto'``: the host with the captured exact Jacobian
    first (no calls of the model counted for Jacobians: nfev = njev), the kernel once the
    host has evaluated ``LOAD_POINTS`` points; the same fits either way."""
    t, y, p0 = data(60)
    monkeypatch.setattr(_batch_kernel, "LOAD_POINTS", 60 * 20 * 3)
    monkeypatch.setattr(_batch_kernel, "COMPILE_POINTS", 60 * 20 * 3)
    host = curve_fit_batch(decay, t, y, p0, **TOL)
    assert solved() == 0 and host.success.all()
    np.testing.assert_array_equal(host.nfev, host.njev)  # exact J: no difference calls
    kernel = curve_fit_batch(decay, t, y, p0, **TOL)
    assert solved() == 60
    assert_same_fits(kernel, host)
    assert kernel.message[0] == host.message[0] or kernel.status[0] == host.status[0]


def test_rent_counts_the_points_the_host_evaluated(monkeypatch):
    """Below ``LOAD_POINTS`` the host runs again; the count is nfev × m summed."""
    t, y, p0 = data(10)
    res = curve_fit_batch(decay, t, y, p0, **TOL)
    assert solved() == 0
    (rent,) = _batch_kernel._RENT.values()
    assert rent == int(res.nfev.sum()) * 20


def test_kernel_true_false_and_native_off(monkeypatch, capsys):
    """``kernel=True`` builds it at once; ``kernel=False`` and ``MARQUARDT_NATIVE=0`` never
    use it; the three give the same fits; ``verbose=1`` names where they ran."""
    t, y, p0 = data(30, seed=1)
    on = curve_fit_batch(decay, t, y, p0, kernel=True, verbose=1, **TOL)
    assert solved() == 30 and "on the per-problem kernel;" in capsys.readouterr().out
    off = curve_fit_batch(decay, t, y, p0, kernel=False, verbose=1, **TOL)
    assert solved() == 30 and "on the host;" in capsys.readouterr().out
    monkeypatch.setenv("MARQUARDT_NATIVE", "0")
    env = curve_fit_batch(decay, t, y, p0, **TOL)
    assert solved() == 30
    assert_same_fits(on, off)
    assert_same_fits(env, off)


def test_tensorflow_model_runs_on_the_kernel_without_xla():
    """A closed-form TensorFlow model goes to the kernel at once (no compiled step is traced
    for it) and gives the compiled executor's fits (autodiff's Jacobian; as a graph, XLA's
    compilation would take seconds) to rounding."""
    from marquardt._backend.tensorflow import driver
    t, y, p0 = data(40, seed=2)

    def model(t, a, k, c):  # this test's own, so that no other test compiled it
        return a * tf.exp(-k * t) + c

    res = curve_fit_batch(model, t, y, p0, **TOL)
    assert solved() == 40
    assert not [key for key in driver.keys() if key[0] == "curve_fit_batch" and key[1] is model]
    xla = curve_fit_batch(model, t, y, p0, kernel=False, jit_compile=False, **TOL)
    assert solved() == 40
    assert_same_fits(res, xla, rtol=1e-8)


def test_weights_absent_points_bounds_and_per_problem_x():
    """``sigma``, ``nan_policy='omit'``, finite bounds and one x per problem: the kernel's
    fits are the host's (same exact Jacobian)."""
    t, y, p0 = data(24, seed=3)
    y[2, [0, 5]] = np.nan
    sigma = np.linspace(0.5, 2.0, 20)
    x = np.tile(t, (24, 1)) * np.linspace(0.9, 1.1, 24)[:, None]
    y = decay(x, 2.0, 1.0, 0.1) + 0.01 * np.random.default_rng(4).standard_normal(y.shape)
    y[2, [0, 5]] = np.nan
    p0[:, 1] = np.minimum(p0[:, 1], 0.95)
    kw = dict(sigma=sigma, nan_policy="omit", bounds=([0, 0, -1], [10, 0.99, 1]), **TOL)
    on = curve_fit_batch(decay, x, y, p0, kernel=True, **kw)
    assert solved() == 24
    off = curve_fit_batch(decay, x, y, p0, kernel=False, **kw)
    assert_same_fits(on, off)
    assert on.npoints[2] == 18 and on.fun[2, 0] == 0.0
    assert np.any(on.x[:, 1] == 0.99)  # some fits end on the bound


def test_threads_give_one_threads_bits():
    t, y, p0 = data(1000, seed=5)
    one = curve_fit_batch(decay, t, y, p0, kernel=True, workers=1, **TOL)
    two = curve_fit_batch(decay, t, y, p0, kernel=True, workers=2, **TOL)
    for field in ("x", "cost", "nfev", "nit", "status", "cov"):
        np.testing.assert_array_equal(getattr(one, field), getattr(two, field))


def test_another_k_reuses_the_kernel():
    """The kernel is built once per model and configuration, whatever K."""
    t, y, p0 = data(50, seed=6)
    for k in (1, 7, 50):
        assert curve_fit_batch(decay, t, y[:k], p0[:k], kernel=True, **TOL).success.all()
    assert len(_batch_kernel._KERNELS) == 1


@pytest.mark.parametrize("f, kwargs, why", [
    (lambda t, a, k, c: np.where(t > 1, a, k) * t + c, {}, "closed-form"),
    (decay, {"jac": "2-point"}, "jac='2-point'"),
    (decay, {"damping": "trust-region"}, "trust radius"),
])
def test_kernel_true_names_why_it_cannot(f, kwargs, why):
    t, y, p0 = data(4)
    with pytest.raises(ValueError, match="`kernel=True`, but this batch has no kernel: .*"
                       + why.replace("(", r"\(").replace("'", ".")):
        curve_fit_batch(f, t, y, p0, kernel=True, **kwargs)


def test_kernel_must_be_a_bool():
    t, y, p0 = data(2)
    with pytest.raises(TypeError, match=r"`kernel` must be None, True or False. "
                                        r"Received: kernel='yes'"):
        curve_fit_batch(decay, t, y, p0, kernel="yes")


def test_kernel_covariances_are_numpys_and_fall_back_where_they_must():
    """The kernel forms Jᵀr and (JᵀJ)⁻¹ (the direct route of
    ``_covariance.unscaled_covariances``) in C: NumPy's to rounding; a fit whose J has a zero
    column takes NumPy's route there (inf, with the rank warning), as on the host."""
    t, y, p0 = data(40, seed=7)
    res = curve_fit_batch(decay, t, y, p0, kernel=True, absolute_sigma=True, **TOL)
    assert solved() == 40
    host = curve_fit_batch(decay, t, y, p0, kernel=False, absolute_sigma=True, **TOL)
    np.testing.assert_allclose(res.cov, host.cov, rtol=1e-9)
    np.testing.assert_allclose(res.optimality, host.optimality, rtol=1e-6, atol=1e-14)

    def blind(t, a, k, c):  # c does not change the model: its column is 0
        return a * np.exp(-k * t) + 0.0 * c

    with pytest.warns(Warning, match="could not be estimated for 40 fit"):
        res = curve_fit_batch(blind, t, y, p0, kernel=True, **TOL)
    assert np.isinf(res.cov).all()


def test_a_tensorflow_capture_is_kept_and_checked_again(monkeypatch):
    """A TensorFlow model's graph is captured once per function and shape; each later call
    checks the tree against the model at one start, so a closure's constant that changed
    is captured anew (the fits follow the model as it is now)."""
    from marquardt import _model_capture
    calls = []
    capture = _model_capture.capture_model
    monkeypatch.setattr(_model_capture, "capture_model",
                        lambda *a, **k: calls.append(1) or capture(*a, **k))
    scale = [2.0]

    def model(t, a, k, c):
        return scale[0] * a * tf.exp(-k * t) + c

    t, y, p0 = data(20, seed=9)
    first = curve_fit_batch(model, t, y, p0, **TOL)
    again = curve_fit_batch(model, t, y, p0, **TOL)
    assert len(calls) == 1 and solved() == 40
    np.testing.assert_array_equal(first.x, again.x)
    scale[0] = 4.0
    changed = curve_fit_batch(model, t, y, p0, **TOL)
    assert len(calls) == 2
    np.testing.assert_allclose(changed.x[:, 0], first.x[:, 0] / 2, rtol=1e-8)
