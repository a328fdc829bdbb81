"""Batched fits: ``curve_fit_batch`` against one-at-a-time ``curve_fit``, and the engine pieces
whose behaviour only shows with more than one problem in a batch.

Tolerances: the equality tests use ftol = xtol = gtol = 1e-10. At the defaults (ftol = 1e-15,
just above machine epsilon) the ftol test compares cost changes at the rounding level of the
cost itself, so two runs whose arithmetic differs in the last bit (XLA's ``exp`` against
Eigen's, or Eigen's scalar tail of a SIMD loop) may stop one iteration apart; see
docs/batch.md. Without XLA and with m a multiple of the SIMD width the batched arithmetic is
the one-at-a-time arithmetic, bit for bit, at any tolerance (``test_bit_identical_...``).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import tensorflow as tf
from scipy.optimize import OptimizeWarning

import marquardt
from marquardt._curve_fit import fit_curve
from marquardt._errors import NoGradientError
from marquardt import Status
from marquardt._backend.tensorflow.solve_loop import RUNNING
from marquardt._batch import BatchMessages, curve_fit_batch
from marquardt._solvers import CholeskySolver, UnrolledCholeskySolver, solve_normal

#: damping: the batch's default (Nielsen's rule), stated for the one-at-a-time fits it is
#: compared with, whose default is the trust radius
TOL = dict(ftol=1e-10, xtol=1e-10, gtol=1e-10, damping="nielsen")
SOLVER = "cholesky_unrolled"


def double_exp(t, a1, k1, a2, k2):
    """The 4-parameter double exponential decay (a fluorescence lifetime pixel)."""
    return a1 * tf.exp(-k1 * t) + a2 * tf.exp(-k2 * t)


def gauss2d(xy, a, x0, y0, s, b):
    """Gpufit's GAUSS_2D: amplitude, centre, width and offset on a pixel grid."""
    return a * tf.exp(-((xy[0] - x0) ** 2 + (xy[1] - y0) ** 2) / (2 * s * s)) + b


def decay(t, a, k):
    return a * tf.exp(-k * t)


def decay_jac(t, a, k):
    e = tf.exp(-k * t)
    return tf.stack([e, -a * t * e], axis=-1)


def double_exp_data(k, seed=0, m=64):
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 10.0, m)
    p = np.stack([rng.uniform(0.5, 1.5, k), rng.uniform(1.5, 3.0, k),
                  rng.uniform(0.2, 0.8, k), rng.uniform(0.1, 0.5, k)], axis=1)
    y = p[:, :1] * np.exp(-p[:, 1:2] * t) + p[:, 2:3] * np.exp(-p[:, 3:4] * t)
    y += 0.01 * rng.standard_normal(y.shape)
    return t, y, p * rng.uniform(0.8, 1.2, p.shape)


def gauss2d_data(k, seed=0, size=5):
    rng = np.random.default_rng(seed)
    g = np.arange(size, dtype=float)
    xy = np.stack([a.ravel() for a in np.meshgrid(g, g)])
    c = (size - 1) / 2
    p = np.stack([rng.uniform(5, 15, k), c + rng.uniform(-0.5, 0.5, k),
                  c + rng.uniform(-0.5, 0.5, k), rng.uniform(0.8, 1.2, k),
                  rng.uniform(0.5, 1.5, k)], axis=1)
    y = p[:, :1] * np.exp(-((xy[0] - p[:, 1:2]) ** 2 + (xy[1] - p[:, 2:3]) ** 2)
                          / (2 * p[:, 3:4] ** 2)) + p[:, 4:5]
    y += 0.05 * p[:, :1] * rng.standard_normal(y.shape)
    return xy, y, p * rng.uniform(0.9, 1.1, p.shape)


def decay_data(k, seed=0, m=12):
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 3.0, m)
    p = np.stack([rng.uniform(1, 3, k), rng.uniform(0.5, 2, k)], axis=1)
    y = p[:, :1] * np.exp(-p[:, 1:2] * t) + 0.01 * rng.standard_normal((k, m))
    return t, y, np.ones_like(p)


def assert_same_fit(res, k, popt, pcov, one, rtol=1e-8) -> bool:
    """Problem k of a batch result equals a one-at-a-time ``curve_fit`` result: x, cost and
    cov to ``rtol``. Returns whether the stopping decisions (status, nfev, nit) are the same
    too: the batch (compiled, TensorFlow/XLA kernels) and ``curve_fit`` (the host executor,
    NumPy/LAPACK) run the same core iteration, but where two tests fire within rounding of
    each other (gtol and ftol at the last step) their kernels' last bits may pick either."""
    assert res.success[k] == one.success, k
    assert abs(int(res.nit[k]) - one.nit) <= 1 and abs(int(res.nfev[k]) - one.nfev) <= 2, k
    np.testing.assert_allclose(res.x[k], popt, rtol=rtol, atol=0)
    np.testing.assert_allclose(res.cost[k], one.cost, rtol=rtol)
    np.testing.assert_allclose(res.cov[k], pcov, rtol=0, atol=rtol * np.abs(pcov).max())
    return (res.status[k], res.nfev[k], res.nit[k]) == (one.status, one.nfev, one.nit)


def test_cholesky_fallback_is_per_system():
    """A system that is not positive definite takes the eigen route alone; the others keep the
    Cholesky step they would get one at a time (bit for bit)."""
    rng = np.random.default_rng(1)
    jm = rng.standard_normal((30, 4)) * [1.0, 10.0, 100.0, 0.1]
    a0, g0 = jm.T @ jm, rng.standard_normal(4)
    a = np.stack([a0, np.ones((4, 4))])  # the second is singular: its Cholesky fails
    g = np.stack([g0, np.ones(4)])
    lam, d = np.array([1e-3, 1e-30]), np.stack([np.diag(a0), np.ones(4)])
    both = np.asarray(solve_normal(a, g, lam, d))
    alone = np.asarray(solve_normal(a[:1], g[:1], lam[:1], d[:1]))
    np.testing.assert_array_equal(both[0], alone[0])
    singular = np.asarray(solve_normal(a[1:], g[1:], lam[1:], d[1:]))
    assert np.all(np.isfinite(both[1]))
    np.testing.assert_array_equal(both[1], singular[0])


def test_unrolled_cholesky_matches_kernel_cholesky():
    """The entry-by-entry Cholesky gives the kernel's step to rounding, and falls back to the
    eigen route per system exactly like it (one regular, one rank-deficient system)."""
    rng = np.random.default_rng(0)
    for n in (1, 2, 5, 8):
        jm = rng.standard_normal((3, 40, n)) * np.logspace(0, 2, n)
        jm[2] = 0.0
        jm[2, :, 0] = 1.0  # rank one
        r = rng.standard_normal((3, 40))
        d = np.maximum(np.einsum("kmi,kmi->ki", jm, jm), 1.0)
        for lam in (np.full(3, 1e-3), np.full(3, 1e-30)):
            steps = [np.asarray(s.solve(s.factor(jm, r, d), lam))
                     for s in (UnrolledCholeskySolver(), CholeskySolver())]
            assert np.all(np.isfinite(steps[0]))
            np.testing.assert_allclose(steps[0], steps[1], rtol=1e-12, atol=0)


# --- equality with one-at-a-time curve_fit -------------------------------------------------


def _compiled_steps(model) -> dict:
    """The batch's compiled steps of ``model``: cache key -> how many times it was traced."""
    from marquardt._backend.tensorflow import driver
    return {key: fn.experimental_get_tracing_count() for key, fn in driver._cache.items()
            if key[0] == "curve_fit_batch" and key[1] is model}


@pytest.mark.parametrize("model, data", [(double_exp, double_exp_data), (gauss2d, gauss2d_data)],
                         ids=["double_exp", "gauss2d"])
def test_equals_one_at_a_time(model, data):
    """200 random problems: x, cov and cost as ``curve_fit`` gives them, and the same status,
    nfev and nit for at least 195 of them (``assert_same_fit``)."""
    x, y, p0 = data(200)
    res = curve_fit_batch(model, x, y, p0, solver=SOLVER, kernel=False, **TOL)
    # new data of the same shapes runs the compiled step as it is: no new cache entry and no
    # new trace (counted, not timed: another test of this worker may have compiled it first)
    compiled = _compiled_steps(model)
    assert compiled
    curve_fit_batch(model, x, *data(200, seed=1)[1:], solver=SOLVER, kernel=False, **TOL)
    assert _compiled_steps(model) == compiled, "new data must not recompile"
    assert res.x.shape == (200, p0.shape[1]) and res.cov.shape == (200, p0.shape[1], p0.shape[1])
    assert np.all(res.success)
    same = 0
    for k in range(200):
        popt, pcov, one = fit_curve(model, x, y[k], p0[k], solver=SOLVER, **TOL)
        same += assert_same_fit(res, k, popt, pcov, one)
    assert same >= 195, same
    np.testing.assert_allclose(res.stderr, np.sqrt(np.diagonal(res.cov, axis1=1, axis2=2)))
    np.testing.assert_allclose(res.chisq, 2 * res.cost)
    np.testing.assert_array_equal(res.dof, y.shape[1] - p0.shape[1])


@pytest.mark.slow
def test_same_answers_as_one_at_a_time_at_default_tolerances():
    """No XLA: the compiled batch and the host executor of ``curve_fit`` run the same core
    iteration on different kernels (TensorFlow's against NumPy and LAPACK), so the last,
    rounding-level ftol decisions may differ (up to 6 evaluations here; the executors' own
    agreement on a shared problem is ``tests/test_core_executors.py``): the costs agree to
    1e-10, the
    parameters of these ill-conditioned double exponentials to 1e-7."""
    t, y, p0 = double_exp_data(20, seed=3)
    res = curve_fit_batch(double_exp, t, y, p0, solver=SOLVER, jit_compile=False)
    for k in range(20):
        popt, pcov, one = fit_curve(double_exp, t, y[k], p0[k], solver=SOLVER,
                                    damping="nielsen")
        assert res.success[k] and one.success
        np.testing.assert_allclose(res.cost[k], one.cost, rtol=1e-10)
        np.testing.assert_allclose(res.x[k], popt, rtol=1e-7)


def test_noise_and_nan_problems_do_not_disturb_others():
    """Pure-noise problems, a problem with NaN points, an all-NaN problem and one that is not
    finite at its p0, mixed in: every other answer is unchanged bit for bit; each odd problem
    reports its own status."""
    t, y, p0 = double_exp_data(200)
    base = curve_fit_batch(double_exp, t, y, p0, solver=SOLVER, **TOL)
    rng = np.random.default_rng(5)
    noise = 0.3 * rng.standard_normal((2, t.size))
    holes = y[7].copy()
    holes[[2, 5, 40]] = np.nan
    odd_y = np.vstack([noise, holes, np.full(t.size, np.nan), y[9]])
    odd_p0 = np.vstack([p0[:2], p0[7], p0[8], [1.0, -800.0, 1.0, 1.0]])  # exp(800 t) = inf
    order = np.r_[0:60, 200, 60:120, 201:205, 120:200]
    res = curve_fit_batch(double_exp, t, np.vstack([y, odd_y])[order],
                          np.vstack([p0, odd_p0])[order], solver=SOLVER, nan_policy="omit",
                          **TOL)
    pos = np.argsort(order)  # where each problem went
    good = pos[:200]
    for name in ("x", "cost", "cov", "status", "nfev", "nit"):
        np.testing.assert_array_equal(res[name][good], base[name], err_msg=name)
    noisy, with_holes, empty, not_finite = pos[200:202], pos[202], pos[203], pos[204]
    assert np.all(np.isfinite(res.cost[noisy]))
    keep = ~np.isnan(holes)
    popt, pcov, one = fit_curve(double_exp, t[keep], holes[keep], p0[7],
                                solver=SOLVER, **TOL)
    assert_same_fit(res, with_holes, popt, pcov, one)
    assert res.npoints[with_holes] == t.size - 3 and res.dof[with_holes] == t.size - 7
    assert res.fun[with_holes][~keep].tolist() == [0.0, 0.0, 0.0]
    assert res.status[empty] == Status.IMPROPER_INPUT and not res.success[empty]
    assert "0 points present for 4 parameters" in res.message[empty]
    np.testing.assert_array_equal(res.x[empty], p0[8])
    assert res.status[not_finite] == Status.NON_FINITE
    assert "non-finite (at p0)" in res.message[not_finite]


@pytest.mark.parametrize("jac", ["2-point", "3-point", "callable"])
def test_numpy_model_not_finite_at_p0_says_so(jac):
    """A NumPy model (host executor) whose residuals are NaN at one problem's p0: its message
    says "at p0", as a TensorFlow model's does; the finite differences of the Jacobian there
    (nfev 3 or 5) hid it."""
    t = np.linspace(0.1, 4.0, 30)

    def f(t, a, k):
        return a * np.sqrt(k) * np.exp(-t)

    def jac_f(t, a, k):
        return np.stack([np.sqrt(k) * np.exp(-t), 0.5 * a / np.sqrt(k) * np.exp(-t)], axis=-1)

    y = np.tile(3.0 * np.exp(-t), (2, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NumPy's invalid sqrt; the model is rank-deficient
        res = curve_fit_batch(f, t, y, p0=[[1.0, 1.0], [1.0, -1.0]],
                              jac=jac_f if jac == "callable" else jac)
    assert res.status.tolist()[1] == Status.NON_FINITE and res.nit[1] == 0
    assert res.message[1] == "The residuals or the Jacobian became non-finite (at p0)."


def test_the_batch_residual_takes_a_model_of_unknown_static_shape():
    """The vectorised residual accepts an output of static shape (None,) (``tf.numpy_function``)
    and checks its shape when it runs; it raised at trace time."""
    from marquardt._backend.tensorflow.batch import batched_residual

    def wrapped(t, a, k):
        return a * tf.numpy_function(lambda e: e, [tf.exp(-k * t)], tf.float64)

    def short(t, a, k):
        return a * tf.numpy_function(lambda e: e[:-1], [tf.exp(-k * t)], tf.float64)

    p, y = tf.constant(P2[:2]), tf.constant(Y2[:2])
    w = tf.ones_like(y)
    r = batched_residual(wrapped, shared_x=True)(p, tf.constant(T), y, w)
    np.testing.assert_allclose(r.numpy(), P2[:2, :1] * np.exp(-P2[:2, 1:] * T) - Y2[:2],
                               rtol=1e-12)
    with pytest.raises(tf.errors.InvalidArgumentError,  # checked when the graph runs
                       match=r"Shape of tensor .*\[2,11\] is not compatible with expected "
                             r"shape \[\?,12\]"):
        batched_residual(short, shared_x=True)(p, tf.constant(T), y, w)


@pytest.mark.slow  # 6 s on the busy 2-core machine: the stepper's graph without XLA
def test_a_model_of_unknown_static_shape_runs_without_xla():
    """A model that wraps a NumPy/SciPy function in ``tf.numpy_function`` (a Voigt profile,
    say) has no gradient, so the batch's message says jac='2-point'; its output's static
    shape is (None,), which the batch rejected ("must return shape (12,) ... Received: shape
    (None,)"), so that advice led to an error. It runs now, without XLA (PyFunc is not an
    XLA op), and equals the NumPy model's answer."""
    def wrapped(t, a, k):
        e = tf.numpy_function(lambda tt, kk: np.exp(-kk * tt), [tf.convert_to_tensor(t), k],
                              tf.float64)
        return a * e

    res = curve_fit_batch(wrapped, T, Y2[:2], P2[0], jac="2-point", jit_compile=False)
    ref = curve_fit_batch(lambda t, a, k: a * np.exp(-k * t), T, Y2[:2], P2[0])
    np.testing.assert_allclose(res.x, ref.x, rtol=1e-7)
    assert res.success.all()


# --- data layouts and options, on a small model ------------------------------------------


def test_per_problem_x_p0_and_sigma():
    t, y, p0 = decay_data(6)
    rng = np.random.default_rng(1)
    tk = t + rng.uniform(0, 0.1, (6, t.size))  # each problem its own x
    p0k = p0 * rng.uniform(0.8, 1.2, p0.shape)
    sigma = rng.uniform(0.01, 0.03, (6, t.size))
    res = curve_fit_batch(decay, tk, y, p0k, sigma=sigma, solver=SOLVER, jit_compile=False,
                          **TOL)
    for k in range(6):
        popt, pcov, one = fit_curve(decay, tk[k], y[k], p0k[k], sigma=sigma[k],
                                    solver=SOLVER, **TOL)
        assert_same_fit(res, k, popt, pcov, one)
    absolute = curve_fit_batch(decay, tk, y, p0k, sigma=sigma, absolute_sigma=True,
                               solver=SOLVER, jit_compile=False, **TOL)
    _, pcov, _ = fit_curve(decay, tk[0], y[0], p0k[0], sigma=sigma[0],
                           absolute_sigma=True, solver=SOLVER, **TOL)
    np.testing.assert_allclose(absolute.cov[0], pcov, rtol=1e-8)


def test_shared_sigma_and_analytic_jacobian():
    t, y, p0 = decay_data(5)
    sigma = np.linspace(0.01, 0.02, t.size)
    res = curve_fit_batch(decay, t, y, p0, sigma=sigma, jac=decay_jac, solver=SOLVER,
                          jit_compile=False, **TOL)
    for k in range(5):
        popt, pcov, one = fit_curve(decay, t, y[k], p0[k], sigma=sigma,
                                    jac=decay_jac, solver=SOLVER,
                                    **TOL)
        assert_same_fit(res, k, popt, pcov, one)


def test_per_problem_bounds():
    t, y, p0 = decay_data(4)
    lb = np.array([[0.0, 0.0]] * 4)
    ub = np.array([[10.0, 10.0], [10.0, 0.6], [0.9, 10.0], [10.0, 10.0]])  # 1, 2: active
    res = curve_fit_batch(decay, t, y, 0.5 * np.ones((4, 2)), bounds=(lb, ub), solver=SOLVER,
                          jit_compile=False, **TOL)
    for k in range(4):
        popt, pcov, one = fit_curve(decay, t, y[k], [0.5, 0.5], bounds=(lb[k], ub[k]),
                                    solver=SOLVER, **TOL)
        assert_same_fit(res, k, popt, pcov, one)
    assert res.x[1, 1] == 0.6 and res.x[2, 0] == 0.9


def test_per_problem_several_variables_and_p0_from_signature():
    rng = np.random.default_rng(2)
    xk = rng.uniform(-1, 1, (3, 2, 10))

    def plane(x, a, b, c):
        return a * x[0] + b * x[1] + c

    y = 1.5 * xk[:, 0] - 0.25 * xk[:, 1] + np.array([[0.0], [1.0], [2.0]])
    res = curve_fit_batch(plane, xk, y, jit_compile=False)  # p0 = ones(3), from the signature
    np.testing.assert_allclose(res.x, [[1.5, -0.25, 0.0], [1.5, -0.25, 1.0],
                                       [1.5, -0.25, 2.0]], atol=1e-10)


def test_chunks_and_padding_are_invisible():
    t, y, p0 = decay_data(11)
    whole = curve_fit_batch(decay, t, y, p0, solver=SOLVER, jit_compile=False, **TOL)
    chunked = curve_fit_batch(decay, t, y, p0, solver=SOLVER, jit_compile=False, chunk_size=4,
                              **TOL)
    np.testing.assert_allclose(chunked.x, whole.x, rtol=1e-12)
    np.testing.assert_array_equal(chunked.status, whole.status)
    np.testing.assert_array_equal(chunked.nfev, whole.nfev)


def test_messages_and_summary(capsys):
    t, y, p0 = decay_data(3)
    res = curve_fit_batch(decay, t, y, p0, solver=SOLVER, jit_compile=False, verbose=1,
                          kernel=False, **TOL)
    out = capsys.readouterr().out
    assert "curve_fit_batch: 3 fits" in out and "on the compiled executor; FTOL 3" in out
    assert isinstance(res.message, BatchMessages) and len(res.message) == 3
    assert res.message[0].startswith("`ftol` termination condition is satisfied (relative")
    assert res.message[1:] == [res.message[1], res.message[2]]
    assert "FTOL: 3" in repr(res.message)
    assert res.success.dtype == bool and res.status.dtype == np.int32


# --- validation at the front door ----------------------------------------------------------

T, Y2, P2 = decay_data(3)


def test_messages_are_indexed_as_the_other_fields():
    """``res.message[~res.success]`` (a boolean mask) and an integer array give the list of
    those problems' messages, as the other fields are indexed; they raised TypeError ('only
    0-dimensional arrays can be converted to Python scalars')."""
    def decay_np(t, a, k):
        return a * np.exp(-k * t)

    t = np.linspace(0.0, 3.0, 12)
    y = np.stack([2.0 * np.exp(-1.3 * t), np.nan * t, 1.5 * np.exp(-0.5 * t)])
    res = curve_fit_batch(decay_np, t, y, [1.0, 1.0], nan_policy="omit")
    assert res.success.tolist() == [True, False, True]
    failed = np.flatnonzero(~res.success)
    assert res.message[~res.success] == [res.message[int(k)] for k in failed]
    assert res.message[np.array([2, 0])] == [res.message[2], res.message[0]]
    assert res.message[[1]] == [res.message[1]] and res.message[np.int64(1)] == res.message[1]
    with pytest.raises(IndexError, match=r"`message` takes an integer, a slice, or a 1-D "
                                         r"array.*Received: an index of shape \(1, 1\)"):
        res.message[np.zeros((1, 1), int)]


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(ydata=Y2[0]), ValueError, r"`ydata` must have 2 dimension\(s\), shape \(K, m\): one "
                                    r"row of m points per problem \(one problem: ydata\[None\], "
                                    r"shape \(1, m\)\)\. Received: ydata with shape \(12,\)$"),
    (dict(ydata=Y2.reshape(3, 3, 4)), ValueError, r"ydata.reshape\(K, -1\), with xdata's point "
                                                  r"axes flattened.*shape \(3, 3, 4\)$"),
    (dict(ydata=Y2[:, :0]), ValueError, r"`ydata` must not be empty"),
    (dict(ydata=np.where(np.eye(3, 12) > 0, np.nan, Y2)), ValueError,
     r"`ydata` must not contain NaN unless nan_policy='omit'.*ydata\[0, 0\]=nan"),
    (dict(ydata=np.where(np.eye(3, 12) > 0, np.inf, Y2)), ValueError,
     r"`ydata` must not contain infinite values\. Received: ydata\[0, 0\]=inf \(3 infinite"),
    (dict(ydata=np.where(np.eye(3, 12) > 0, -np.inf, Y2), nan_policy="omit"), ValueError,
     r"`ydata` must not contain infinite values"),
    (dict(nan_policy="propagate"), ValueError, r"`nan_policy` must be one of"),
    (dict(xdata=T[:-1]), ValueError, r"`xdata` must have shape \(m,\) or \(k, m\).*"
                                     r"Received: xdata with shape \(11,\)"),
    (dict(xdata=np.ones((2, 3, 12))), ValueError, r"`xdata` must have shape"),
    # ydata transposed, (m, K): the message says where m and K come from, and the likely fix
    (dict(ydata=Y2.T), ValueError, r"with m=3 points and K=12 problems \(`ydata`'s shape "
                                   r"\(K, m\) = \(12, 3\): one row per problem\)\. Received: "
                                   r"xdata with shape \(12,\); if the columns of `ydata` are "
                                   r"the problems, pass ydata\.T$"),
    (dict(xdata=np.ones((2, 12)), shared_x=False), ValueError,
     r"`xdata` per problem \(shared_x=False\) must have shape \(K, m\)"),
    (dict(xdata=np.r_[T[:-1], np.nan]), ValueError, r"`xdata` must contain only finite"),
    (dict(p0=np.ones(3)), TypeError, r"`p0` must have one value per parameter of `f` \(2\)"),
    (dict(p0=np.ones((2, 2))), ValueError, r"`p0` must have shape \(n,\) or \(K, n\) with K=3"),
    (dict(p0=[1.0, np.nan]), ValueError, r"`p0` must contain only finite values"),
    (dict(p0=[[1.0, 1.0], [1.0, 1.0], [1.0, np.nan]]), ValueError,
     r"`p0` must contain only finite values\. Received: p0\[2, 1\]=nan \(1 non-finite"),
    (dict(p0="ab"), ValueError, r"`p0` must hold real numbers"),
    (dict(sigma=np.ones(5)), ValueError, r"`sigma` must have shape \(m,\) or \(K, m\)"),
    (dict(sigma=-np.ones(12)), ValueError, r"`sigma` must be positive\. Received: sigma with "
                                           r"minimum -1\.0$"),
    (dict(bounds=(0.0, np.ones((2, 2)))), ValueError, r"`bounds` ub must be a scalar or have "
                                                       r"shape \(n,\) or \(K, n\)"),
    (dict(bounds=(np.ones((3, 2)), 1.0)), ValueError, r"`bounds` must satisfy lb < ub.*lb\[0, 0\]"),
    (dict(bounds=(2.0, 3.0)), ValueError, r"`p0` must lie within `bounds`.*p0\[0, 0\]"),
    (dict(jac="central"), ValueError, r"`jac` must be one of"),
    (dict(chunk_size=0), ValueError, r"`chunk_size` must be a positive integer"),
    (dict(jit_compile="yes"), TypeError, r"`jit_compile` must be True or False"),
    (dict(solver="qr"), ValueError, r"`solver` must be one of"),
    (dict(loss="l1"), ValueError, r"`loss` must be one of"),
    (dict(max_nfev=0), ValueError, r"`max_nfev` must be a positive integer"),
    (dict(ftol=np.inf), ValueError, r"`ftol` must be a finite number or None"),
    (dict(verbose=2), ValueError, r"`verbose` must be 0 or 1"),
    (dict(callback=print), TypeError, r"curve_fit_batch\(\) got unexpected keyword argument"
                                      r"\(s\): callback"),
    (dict(f=3), TypeError, r"`f` must be callable"),
    (dict(f=lambda t, a, k: a * tf.exp(-k * t[:5])), ValueError,
     r"`f\(xdata, \*p0\)` must return shape \(12,\) for one problem. Received: shape \(5,\)"),
    (dict(jac=lambda t, a, k: tf.ones((12, 3), tf.float64)), ValueError,
     r"`jac\(xdata, \*p0\)` must return shape \(12, 2\)"),
    (dict(f=lambda t, a, k: {}["rate"]), KeyError,
     r"`f` raised for problem 0 at its p0: 'rate'"),
    (dict(f=lambda t, a, k: tf.math.betainc(a + 0 * t, 2.0 + 0 * t, 0.3 + 0 * t)
          * tf.exp(-k * t)),
     ValueError, r"^`f` cannot be differentiated by TensorFlow with respect to parameter 0: "
                 r"autodiff gives a zero Jacobian column"),
    (dict(jac=lambda t, a, k: 1 / 0), ZeroDivisionError,
     r"^`jac` raised for problem 0 at its p0: division by zero$"),
    # a Python branch on a parameter runs eagerly (the probe) but cannot be traced: as for
    # one fit, NoGradientError in our words, not TensorFlow's OperatorNotAllowedInGraphError
    (dict(f=lambda t, a, k: a * tf.exp(-k * t) if k > 0 else a + 0 * t), NoGradientError,
     r"^`f` cannot be traced by TensorFlow for the batch: it calls NumPy on its input or "
     r"branches in Python on a parameter \(OperatorNotAllowedInGraphError: Using a symbolic "
     r"`tf\.Tensor` as a Python `bool` is not allowed\)\. Write it with TensorFlow ops"),
    # NumPy values at the first call give float64 * float32 = float32; the autodiff check's
    # float64 tensors then met the float32 x: TensorFlow's bare InvalidArgumentError, now
    # named, with the remedies (float64 constants, or the whole fit in float32)
    (dict(f=lambda t, a, k: a * tf.exp(-k * tf.cast(t, tf.float32))),
     tf.errors.InvalidArgumentError,
     r"^`f` raised for problem 0 at its p0: cannot compute Mul .* \(a float32 tensor, such "
     r"as tf\.constant\(0\.5\) .* meets the float64 parameters: .* or pass dtype='float32' "
     r"to fit in single precision\)$"),
    # a model that refuses NumPy (x.shape.rank): its tensors' float32 error is the one
    # reported (the NumPy call's AttributeError said nothing of the cause)
    (dict(f=lambda t, a, k: a * tf.exp(-k * tf.cast(t, tf.float32)) if t.shape.rank else 0),
     tf.errors.InvalidArgumentError,
     r"^`f` raised for problem 0 at its p0: .* double tensor but is a float tensor .* or pass "
     r"dtype='float32' to fit in single precision\)$"),
    (dict(dtype="float16"), ValueError,
     r"^`dtype` must be 'float64' or 'float32'\. Received: dtype='float16'$"),
    (dict(dtype=32), ValueError, r"^`dtype` must be 'float64' or 'float32'\. Received: dtype=32$"),
    (dict(f=lambda t, a, k: a * np.exp(-k * t), dtype="float32"), ValueError,
     r"^`dtype` must be 'float64' for a model written with NumPy"),
    (dict(xdata=T[:1], ydata=Y2[:, :1]), ValueError,
     r"`ydata` must have at least as many points per problem as there are parameters\. "
     r"Received: 1 data points for 2 parameters"),
])
def test_input_errors(kwargs, error, match):
    args = dict(f=decay, xdata=T, ydata=Y2, p0=P2[0])
    args.update(kwargs)
    with pytest.raises(error, match=match):
        curve_fit_batch(args.pop("f"), args.pop("xdata"), args.pop("ydata"), args.pop("p0"),
                        **args)


def test_the_autodiff_check_runs_once_per_model_whose_parameters_are_all_connected(monkeypatch):
    """The eager check for missing gradients (``check_model_autodiff``) runs at a model's
    first batch; once every parameter had a nonzero gradient, later batches of that model
    skip it. A model with a zero column at its check is checked again next time, and one
    whose gradient is missing raises at every call."""
    from marquardt._backend.tensorflow import host_functions, jacobian

    calls = []
    real = jacobian.zero_gradient_parameters
    monkeypatch.setattr(host_functions, "zero_gradient_parameters",
                        lambda *a: calls.append(1) or real(*a))

    def connected(t, a, k):
        return a * tf.exp(-k * t)

    def flat_at_zero(t, a, k):  # ∂/∂k of a·exp(−(k t)²) is 0 at k = 0
        return a * tf.exp(-(k * t) ** 2)

    for _ in range(3):
        curve_fit_batch(connected, T, Y2, P2[0])
    assert len(calls) == 1
    for _ in range(2):
        with pytest.warns(OptimizeWarning, match="rank < n = 2"):  # k stays 0: a zero column
            curve_fit_batch(flat_at_zero, T, Y2, [1.0, 0.0], max_nfev=3)
    assert len(calls) == 3
    missing = lambda t, a, k: tf.math.betainc(a + 0 * t, 2.0 + 0 * t, 0.3 + 0 * t)  # noqa: E731
    for _ in range(2):
        with pytest.raises(ValueError, match="cannot be differentiated by TensorFlow"):
            curve_fit_batch(missing, T, Y2, P2[0])
    assert len(calls) == 5


def test_a_model_that_fails_on_a_per_problem_xdata_taken_by_shape_is_told_of_shared_x():
    """Two 5×5 images on a shared (2, 25) grid: K = k = 2, so the shape makes xdata one row
    per problem and the model gets a (25,) x. Its error (a wrong shape, or an exception) now
    says how xdata was read and names ``shared_x=True``; with it the fit runs."""
    def gauss2d(xy, a, x0, y0, s, b):
        return a * np.exp(-((xy[0] - x0) ** 2 + (xy[1] - y0) ** 2) / (2 * s * s)) + b

    def unpacking(xy, a, x0, y0, s, b):
        xx, yy = xy
        return gauss2d((xx, yy), a, x0, y0, s, b)

    g = np.arange(5.0)
    xy = np.stack([a.ravel() for a in np.meshgrid(g, g)])
    images = np.stack([gauss2d(xy, 10.0, 2.0, 2.0, 1.0, 1.0)] * 2)
    hint = (r"\(xdata with shape \(2, 25\) was taken as one row of x per problem, its first "
            r"dimension being K=2; pass shared_x=True if its rows are variables shared by every "
            r"problem\)")
    with pytest.raises(ValueError, match=r"must return shape \(25,\) for one problem\. "
                                         r"Received: shape \(\) for problem 0 " + hint):
        curve_fit_batch(gauss2d, xy, images, [8.0, 2.0, 2.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"^`f` raised for problem 0 at its p0 " + hint
                                         + r": too many values to unpack"):
        curve_fit_batch(unpacking, xy, images, [8.0, 2.0, 2.0, 1.0, 1.0])
    res = curve_fit_batch(gauss2d, xy, images, [8.0, 2.0, 2.0, 1.0, 1.0], shared_x=True)
    np.testing.assert_allclose(res.x, [[10.0, 2.0, 2.0, 1.0, 1.0]] * 2, rtol=1e-8)


def test_stopped_problem_does_not_reach_the_solver():
    """A problem that is not finite at its start stops at once; the batched Cholesky solve must
    then see a trivial system for it, not its NaN one: before, the whole batch took the eigen
    fallback at every attempt, and without XLA the eigen kernel raised on the NaN matrix."""
    from marquardt import _solvers
    from marquardt._backend.tensorflow.jacobian import autodiff_jacobian
    from marquardt._backend.tensorflow.solve_loop import LoopConfig, run_loop

    calls = []
    original = _solvers._eigen_factor_normal

    def counted(*args):
        calls.append(1)
        return original(*args)

    t = np.linspace(0.0, 3.0, 12)
    y = 2.0 * np.exp(-1.3 * t)

    def residual(p):
        return p[:, :1] * tf.exp(-p[:, 1:] * t) - y

    cfg = LoopConfig(damping=marquardt.Nielsen(), solver=CholeskySolver(), scaling="marquardt",
                     loss="linear", f_scale=1.0, ftol=1e-10, xtol=1e-10, gtol=1e-10,
                     max_nfev=100, bounded=False)
    x0 = tf.constant([[1.0, 1.0], [1.0, -1000.0]], tf.float64)  # exp(1000 t) overflows
    inf = tf.constant(np.full((2, 2), np.inf))
    _solvers._eigen_factor_normal = counted
    try:  # eagerly, so that only the branch taken runs
        state, _ = run_loop(cfg, residual, autodiff_jacobian(residual, 2, 12), x0, -inf, inf,
                            tf.ones((2, 2), tf.float64))
    finally:
        _solvers._eigen_factor_normal = original
    assert state.status.numpy()[1] == Status.NON_FINITE
    np.testing.assert_allclose(state.x.numpy()[0], [2.0, 1.3], rtol=1e-9)
    assert calls == []


def test_eigen_kernel_gives_nan_for_a_non_finite_system_instead_of_raising():
    """Without XLA TensorFlow's eigh raised InvalidArgumentError for the whole batch when one
    system had an inf entry; XLA's gives NaN for that system. Now both give NaN for it, and
    the other systems what they get alone."""
    from marquardt._backend.tensorflow import xp as tfx

    a = np.array([[[np.inf, 0.0], [0.0, 1.0]], [[2.0, 1.0], [1.0, 2.0]]])
    w, q = tfx.eigh(tf.constant(a))
    assert np.isnan(w.numpy()[0]).all() and np.isnan(q.numpy()[0]).all()
    w1, q1 = tf.linalg.eigh(tf.constant(a[1:]))
    np.testing.assert_array_equal(w.numpy()[1], w1.numpy()[0])
    np.testing.assert_array_equal(q.numpy()[1], q1.numpy()[0])


@pytest.mark.slow  # 3.5 s on the busy 2-core machine (two compilations without XLA)
def test_a_start_whose_normal_matrix_overflows_does_not_fail_the_batch_without_xla():
    """p0 = (1e-300, 1e300): ∂r/∂a = e^(−√k t) + 1/a = 1e300, so JᵀJ holds inf and the
    Cholesky solve falls back on eigh, which without XLA raised for the whole batch
    (InvalidArgumentError: 'Self-adjoint eigen decomposition was not successful'). The
    problem now ends as with XLA, and the other problem is what it is alone."""
    def model(t, a, k):
        return a * tf.exp(-tf.sqrt(k) * t) + tf.math.log(a)

    t = np.linspace(0.1, 3.0, 30)
    y = np.stack([2.0 * np.exp(-t) + np.log(2.0)] * 2)
    with pytest.warns(OptimizeWarning, match="could not be estimated for 1 fit"):  # ∂r/∂k = 0
        res = curve_fit_batch(model, t, y, [[1.5, 1.2], [1e-300, 1e300]], jit_compile=False,
                              chunk_size=2)
    alone = curve_fit_batch(model, t, y[:1], [1.5, 1.2], jit_compile=False, chunk_size=2)
    assert res.status[1] == Status.GTOL and res.success[0]
    np.testing.assert_array_equal(res.x[0], alone.x[0])


def _decay_engine(k, p0_scale=1.0):
    """The engine's pieces for k decay problems (n = 2): ``(residual, cfg, args, m)``, where
    ``args`` are the solver's and the stepper's ``(x0, lb, ub, d_fixed, data)``."""
    from marquardt._backend.tensorflow.batch import batched_residual
    from marquardt._backend.tensorflow.solve_loop import LoopConfig

    t, y, p0 = decay_data(k)
    cfg = LoopConfig(damping=marquardt.Nielsen(), solver=UnrolledCholeskySolver(),
                     scaling="marquardt", loss="linear", f_scale=1.0, ftol=1e-10, xtol=1e-10,
                     gtol=1e-10, max_nfev=100, bounded=False)
    c64 = lambda a: tf.constant(np.asarray(a, np.float64))  # noqa: E731
    inf = np.full((k, 2), np.inf)
    args = (c64(p0 * p0_scale), c64(-inf), c64(inf), c64(np.ones((k, 2))),
            (c64(t), c64(y), c64(np.ones_like(y))))
    return batched_residual(decay, shared_x=True), cfg, args, t.size


def test_rounds_with_restarts_equal_one_solve():
    """``build_stepper``: a batch run in rounds of one iteration, with problems started in
    different rounds (``restart``), takes the steps of one uninterrupted ``run_loop``."""
    from marquardt._backend.tensorflow import driver
    from marquardt._backend.tensorflow.solve_loop import idle_state

    from marquardt._backend.tensorflow.solve_loop import run_loop

    residual, cfg, args, m = _decay_engine(4)
    x0, lb, ub, d_fixed, data = args
    once, _ = run_loop(cfg, *driver.residual_functions(residual, 2, m, "auto", data, lb, ub,
                                                       None, False), x0, lb, ub, d_fixed)
    step = driver.build_stepper(residual, 2, m, "auto", cfg)
    state = idle_state(4, m, 2)
    for start in ([True, True, False, False], [False, False, True, True]) + ([False] * 4,) * 60:
        state = step(state, tf.constant(start), *args, tf.constant(1), tf.constant(0))
    for name in ("x", "cost", "status", "nfev", "njev", "nit", "lam"):
        np.testing.assert_array_equal(getattr(state, name), getattr(once, name), err_msg=name)


def test_round_ends_once_no_more_than_min_running_problems_run():
    """``build_stepper``'s ``min_running``: a round stops after the first iteration that
    leaves no more than that many problems running (the slots ``curve_fit_batch`` refills),
    and not before; with 0 it runs until all are done or ``iterations`` are spent."""
    from marquardt._backend.tensorflow import driver
    from marquardt._backend.tensorflow.solve_loop import idle_state

    # starts spread from 0.5 to 2 times p0: problems that need different iterations
    residual, cfg, args, m = _decay_engine(8, np.linspace(0.5, 2.0, 8)[:, None])
    step = driver.build_stepper(residual, 2, m, "auto", cfg)
    fresh, stale = tf.constant([True] * 8), tf.constant([False] * 8)
    # one iteration per call: the states after 1, 2, ... iterations
    state = step(idle_state(8, m, 2), fresh, *args, tf.constant(0), tf.constant(0))
    after = [state]
    while np.any(after[-1].status.numpy() == RUNNING):
        after.append(step(after[-1], stale, *args, tf.constant(1), tf.constant(0)))
    running = [int(np.sum(a.status.numpy() == RUNNING)) for a in after]
    assert len(set(running[1:])) > 3, running  # the problems finish at different iterations
    reached = sorted(set(running[1:]) - {0})  # floors equal to a count reached: 'at or
    # below' and 'below' stop at different iterations there
    for floor, cap in [(f, 1000) for f in reached] + [(6, 1000), (3, 1000), (0, 1000), (0, 2)]:
        want = min(cap, max(1, next(i for i, r in enumerate(running) if r <= floor)))
        got = step(idle_state(8, m, 2), fresh, *args, tf.constant(cap), tf.constant(floor))
        for name in ("x", "status", "nfev", "nit", "lam"):
            np.testing.assert_array_equal(getattr(got, name), getattr(after[want], name),
                                          err_msg=f"min_running={floor}: {name}")


# --- a NumPy model: the host executor, no TensorFlow --------------------------------------


def double_exp_np(t, a1, k1, a2, k2):
    """The double exponential in NumPy: broadcasts over problems as written."""
    return a1 * np.exp(-k1 * t) + a2 * np.exp(-k2 * t)


def double_exp_np_scalar(t, a1, k1, a2, k2):
    """The same, written so that it cannot broadcast (float() of each parameter)."""
    a1, k1, a2, k2 = (float(v) for v in (a1, k1, a2, k2))
    return a1 * np.exp(-k1 * t) + a2 * np.exp(-k2 * t)


@pytest.mark.parametrize("model", [double_exp_np, double_exp_np_scalar],
                         ids=["broadcasting", "per-problem calls"])
def test_numpy_model_equals_one_at_a_time(model):
    """A NumPy model runs on the host executor with finite differences (SciPy's '2-point',
    asked for: at ``jac='auto'`` the broadcasting model, a closed form, would get its exact
    partials): every problem gets what ``curve_fit`` gives it alone (the same stopping decisions; x to
    rounding: NumPy's vectorised exp may round a long row differently in the last bit, and
    an absent point is a zero row here, a removed one there), whether the model is called
    for many problems at once (it broadcasts) or once per problem (it does not)."""
    t, y, p0 = double_exp_data(40, seed=5)
    y[3, [1, 7]] = np.nan
    res = curve_fit_batch(model, t, y, p0, nan_policy="omit", jac="2-point", **TOL)
    assert res.success.all()
    for k in range(40):
        present = ~np.isnan(y[k])
        popt, pcov, one = fit_curve(model, t[present], y[k][present], p0[k],
                                    solver=SOLVER, **TOL)
        assert (res.status[k], res.nfev[k], res.nit[k]) == (one.status, one.nfev, one.nit), k
        # the same cost to rounding; x as far as the cost determines it: within 1e-4 of its
        # standard errors (problem 29 of this set is ill-conditioned: x differs by 2.8e-8
        # relative on an AVX-512 machine, where a long row's exp rounds differently)
        np.testing.assert_allclose(res.cost[k], one.cost, rtol=1e-12, atol=0)
        np.testing.assert_array_less(np.abs(res.x[k] - popt), 1e-4 * np.sqrt(np.diag(pcov)))
        np.testing.assert_allclose(res.cov[k], pcov, rtol=1e-6)


def test_numpy_model_in_threads_gives_the_same_fits(monkeypatch):
    """``workers=2``: the problems solved in shards side by side, in two threads; each fit has
    the same stopping decisions and evaluations as in one thread, its x and cost to rounding
    (a problem's last digits depend on its shard's memory layout only)."""
    import marquardt._batch_host as host_module
    monkeypatch.setattr(host_module, "HOST_CHUNK", 16)  # 60 problems: 4 shards of 15
    t, y, p0 = double_exp_data(60, seed=8)
    one = curve_fit_batch(double_exp_np, t, y, p0, **TOL)
    two = curve_fit_batch(double_exp_np, t, y, p0, workers=2, **TOL)
    for field in ("status", "nfev", "njev", "nit"):
        np.testing.assert_array_equal(getattr(two, field), getattr(one, field))
    np.testing.assert_allclose(two.x, one.x, rtol=1e-7)
    np.testing.assert_allclose(two.cost, one.cost, rtol=1e-10)
    np.testing.assert_array_equal(curve_fit_batch(double_exp_np, t, y, p0, workers=-1, **TOL).nfev,
                                  one.nfev)


@pytest.mark.parametrize("workers", [0, -2, 1.5, True, "2"])
def test_workers_must_be_a_positive_integer_or_minus_one(workers):
    t, y, p0 = double_exp_data(2, seed=8)
    with pytest.raises(ValueError, match=r"^`workers` must be None, a positive integer or -1 "
                                         rf"\(one thread per core\)\. Received: workers="):
        curve_fit_batch(double_exp_np, t, y, p0, workers=workers)


def test_a_float32_numpy_model_is_differenced_and_judged_as_curve_fit_does(monkeypatch):
    """A NumPy model that returns float32 (a float32-only kernel, an explicit cast) gets
    float32-sized difference steps and float32's rounding in its stopping tests, as
    ``curve_fit`` gives it: each problem is the one-at-a-time fit, bit for bit. The batch
    differenced it with float64's step (1.5e-8), so its Jacobian was float32 rounding
    noise and every problem ended in STALLED ('No step lowers the cost'). (One problem
    still stalls; the one-at-a-time fit would then fit it again with D = I, which the batch
    does not do: compared without that second fit.)"""
    from marquardt import _restart
    monkeypatch.setattr(_restart, "wanted", lambda *args: False)
    def decay32(t, a, k, c):
        return (a * np.exp(-k * t) + c).astype(np.float32)

    rng = np.random.default_rng(2)
    t = np.linspace(0.0, 5.0, 40)
    p = np.column_stack([rng.uniform(1, 3, 8), rng.uniform(0.5, 2, 8), rng.uniform(0, 1, 8)])
    y = p[:, :1] * np.exp(-p[:, 1:2] * t) + p[:, 2:] + 0.02 * rng.standard_normal((8, 40))
    res = curve_fit_batch(decay32, t, y, [1.0, 1.0, 0.0])
    assert res.success.sum() >= 6
    for k in range(8):
        popt, pcov, one = fit_curve(decay32, t, y[k], [1.0, 1.0, 0.0], solver=SOLVER,
                                    damping="nielsen")
        assert (res.status[k], res.nfev[k]) == (one.status, one.nfev), k
        np.testing.assert_array_equal(res.x[k], popt)


def test_numpy_model_with_its_jacobian_and_refused_autodiff():
    def jac(t, a1, k1, a2, k2):
        e1, e2 = np.exp(-k1 * t), np.exp(-k2 * t)
        return np.stack([e1, -a1 * t * e1, e2, -a2 * t * e2], axis=1)

    t, y, p0 = double_exp_data(12, seed=6)
    res = curve_fit_batch(double_exp_np, t, y, p0, jac=jac, **TOL)
    for k in range(12):
        popt, _, _ = fit_curve(double_exp_np, t, y[k], p0[k], jac=jac, solver=SOLVER, **TOL)
        np.testing.assert_allclose(res.x[k], popt, rtol=1e-8)
    # asked for autodiff, the model is called with tensors: np.exp gives k1 and k2 no
    # gradient, and the error names the first of them
    with pytest.raises(ValueError, match=r"`f` cannot be differentiated by TensorFlow with "
                                         r"respect to parameter 1: .*jac='2-point'"):
        curve_fit_batch(double_exp_np, t, y, p0, jac="forward")


def test_numpy_jacobian_called_for_many_problems_at_once_in_any_axes_order():
    """A callable jac that broadcasts as the model does is called for many problems at once,
    whatever the order of its axes (SciPy's np.stack(columns, axis=1) makes a batch's
    (k, n, m), np.array(columns).T its (m, k, n)), with the same fits bit for bit as a jac
    that cannot broadcast (called per problem)."""
    calls = {"stack": 0, "transpose": 0}

    def jac_stack(t, a1, k1, a2, k2):
        calls["stack"] += 1
        e1, e2 = np.exp(-k1 * t), np.exp(-k2 * t)
        return np.stack([e1, -a1 * t * e1, e2, -a2 * t * e2], axis=1)

    def jac_transpose(t, a1, k1, a2, k2):
        calls["transpose"] += 1
        e1, e2 = np.exp(-k1 * t), np.exp(-k2 * t)
        return np.array([e1, -a1 * t * e1, e2, -a2 * t * e2]).T

    def jac_scalar(t, a1, k1, a2, k2):
        return jac_stack(t, *(float(v) for v in (a1, k1, a2, k2)))

    t, y, p0 = double_exp_data(30, seed=6)
    one = curve_fit_batch(double_exp_np, t, y, p0, jac=jac_scalar, **TOL)
    calls["stack"] = 0
    for name, jac in (("stack", jac_stack), ("transpose", jac_transpose)):
        res = curve_fit_batch(double_exp_np, t, y, p0, jac=jac, **TOL)
        assert calls[name] < 3 * one.njev.max(), (name, calls[name])  # not once per problem
        for field in ("x", "cov", "fun", "status", "nfev", "njev"):
            np.testing.assert_array_equal(getattr(res, field), getattr(one, field))


def test_rank_deficient_fits_get_an_infinite_covariance_as_curve_fit_gives_them():
    """A fit whose Jacobian at the solution is rank-deficient gets inf for ``cov`` and
    ``stderr``, as ``curve_fit`` (SciPy's ``lm``) gives it, with one ``OptimizeWarning`` for
    the batch; the batch used to return the pseudo-inverse, whose zero variance claimed the
    parameters that do nothing exactly determined (stderr 0). A dark pixel (zeros: a = 0
    leaves μ free, χ² = 0) and a peak started far outside the data (a and μ do nothing)
    beside a normal problem, which is unaffected."""
    def peak(x, a, mu, b):
        return a * np.exp(-0.5 * (x - mu) ** 2) + b

    x = np.linspace(0.0, 10.0, 21)
    noise = 0.01 * np.random.default_rng(0).standard_normal((3, 21))
    y = np.stack([peak(x, 2.0, 4.0, 0.5), 0.0 * x, 0.5 + 0.0 * x]) + noise
    y[1] = 0.0
    p0 = np.array([[1.5, 4.5, 0.0], [1.0, 5.0, 0.1], [1.0, 1e3, 0.0]])
    with pytest.warns(OptimizeWarning, match=r"could not be estimated for 2 fit\(s\): the "
                                             r"Jacobian at the solution has rank < n = 3"):
        res = curve_fit_batch(peak, x, y, p0)
    assert res.success.all()
    assert np.isinf(res.cov[1:]).all() and np.isinf(res.stderr[1:]).all()
    for k in range(3):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            popt, pcov = marquardt.curve_fit(peak, x, y[k], p0[k], damping="nielsen")
        np.testing.assert_allclose(res.x[k], popt, rtol=1e-8, atol=1e-15)
        if k:
            assert np.isinf(pcov).all()
        else:
            np.testing.assert_allclose(res.cov[k], pcov, rtol=0, atol=1e-6 * pcov.max())


def test_a_fit_with_as_many_points_as_parameters_warns_as_curve_fit_does():
    """A problem left with m = n points by ``nan_policy='omit'`` has no covariance: the
    batch warns with SciPy's ``OptimizeWarning``, as ``curve_fit`` does for one fit (it was a
    ``RuntimeWarning``, which a filter on ``OptimizeWarning`` let through), from the user's
    line."""
    def decay_np(t, a, k):
        return a * np.exp(-k * t)

    t = np.linspace(0.0, 3.0, 12)
    y = np.stack([2.0 * np.exp(-1.3 * t) + 0.01 * np.cos(7 * t)] * 2)
    y[1, 2:] = np.nan
    with pytest.warns(OptimizeWarning, match=r"could not be estimated for 1 fit\(s\): they "
                                             r"have no more residuals than parameters") as seen:
        res = curve_fit_batch(decay_np, t, y, [1.0, 1.0], nan_policy="omit")
    assert seen[0].filename == __file__
    assert np.isinf(res.cov[1]).all() and np.isfinite(res.cov[0]).all()


def test_another_k_does_not_recompile():
    """A TensorFlow model's compiled step (``kernel=False``: XLA) is traced once: batches of
    3, 37 and 300 problems all run in the same ``chunk_size`` slots."""
    from marquardt._backend.tensorflow import driver

    def decay_tf(t, a, k):  # a model of this test's own, so the count starts here
        return a * tf.exp(-k * t)

    t, y, p0 = decay_data(300)
    for k in (3, 37, 300):
        res = curve_fit_batch(decay_tf, t, y[:k], p0[:k], chunk_size=64, kernel=False, **TOL)
        assert res.success.all()
    steps = [fn for key, fn in driver._cache.items() if key[0] == "curve_fit_batch"
             and key[1] is decay_tf]
    assert len(steps) == 1 and steps[0].experimental_get_tracing_count() == 1


def test_float32_agrees_with_float64():
    """``dtype='float32'``: the same fits to single precision, at its default tolerances
    (1e-6): every problem converges, each parameter within 1% of its standard error of the
    float64 answer (median 1e-5 relative), results returned in float64."""
    xy, y, p0 = gauss2d_data(200, seed=11)
    r64 = curve_fit_batch(gauss2d, xy, y, p0, chunk_size=64)
    r32 = curve_fit_batch(gauss2d, xy, y, p0, chunk_size=64, dtype="float32")
    assert r64.success.all() and r32.success.all()
    assert r32.x.dtype == np.float64 and r32.cov.dtype == np.float64
    assert np.all(np.abs(r32.x - r64.x) <= 1e-2 * r64.stderr)
    assert np.median(np.abs(r32.x - r64.x) / np.abs(r64.x)) < 1e-5
    np.testing.assert_allclose(r32.stderr, r64.stderr, rtol=1e-3)
    np.testing.assert_allclose(r32.cost, r64.cost, rtol=1e-5)


def _float32_model(t, a, k):
    if t.shape.rank is None:  # refuses NumPy values (a tuple shape): called with tensors
        raise TypeError("tensors only")
    return a * tf.exp(-k * tf.cast(t, tf.float32)) * tf.constant(1.0)  # float32 constant


def test_a_float32_model_runs_with_dtype_float32():
    """A model written in float32 (``tf.cast(t, tf.float32)``, a float32 ``tf.constant``)
    fits with ``dtype='float32'``: the first call and the autodiff check pass it float32
    tensors, as the compiled solve does (they passed float64 tensors, and the fit failed with
    "cannot compute Mul as input #1 was expected to be a double tensor")."""
    rates = np.array([0.5, 1.0, 2.0])
    y = 2.0 * np.exp(-rates[:, None] * T)
    res = curve_fit_batch(_float32_model, T, y, [1.0, 1.0], dtype="float32",
                          jit_compile=False, chunk_size=4)
    assert res.success.all()
    np.testing.assert_allclose(res.x, np.stack([np.full(3, 2.0), rates], axis=1), rtol=1e-5)


def test_float32_differences_take_float32_sized_steps():
    """``dtype='float32'`` with ``jac='2-point'``: the default relative step is float32's
    ε^(1/2) (3.5e-4, as ``curve_fit`` takes for a float32 model); float64's 1.5e-8 is below
    float32's rounding, x + h == x, and every problem stopped at p0 as NON_FINITE (0/0)."""
    rates = np.array([0.5, 1.0, 2.0])
    y = 2.0 * np.exp(-rates[:, None] * T)
    res = curve_fit_batch(decay, T, y, [1.0, 1.0], dtype="float32", jac="2-point",
                          jit_compile=False, chunk_size=4)
    assert res.success.all()
    np.testing.assert_allclose(res.x, np.stack([np.full(3, 2.0), rates], axis=1), rtol=1e-5)


def test_nan_policy_omit_drops_nan_in_xdata_and_ignores_sigma_there_as_curve_fit_does():
    """SciPy's curve_fit(nan_policy='omit') drops a point whose x or y is NaN, with its σ:
    the batch does the same (a shared x's NaN for every problem, a per-problem x's for its
    problem), and a NaN σ at an omitted point is no error; at a kept point it still is."""
    def decay(t, a, b, c):
        return a * np.exp(-b * t) + c

    t = np.linspace(0.0, 4.0, 30)
    y = 2.0 * np.exp(-t) + 0.3 + 0.001 * np.sin(9.0 * t)
    sigma = np.linspace(0.01, 0.02, 30)
    tx, sx = t.copy(), sigma.copy()
    tx[5], sx[5] = np.nan, np.nan
    one = marquardt.curve_fit(decay, np.delete(t, 5), np.delete(y, 5), p0=[1, 1, 0],
                              sigma=np.delete(sigma, 5))[0]
    shared = curve_fit_batch(decay, tx, np.stack([y, y]), p0=[1, 1, 0], sigma=sx,
                             nan_policy="omit")
    np.testing.assert_array_equal(shared.npoints, [29, 29])
    np.testing.assert_allclose(shared.x, [one, one], rtol=1e-9)
    # per problem: the second keeps its point 5, whose σ is NaN: refused
    with pytest.raises(ValueError, match=r"`sigma` must contain only finite values. "
                                         r"Received: sigma\[5\]=nan"):
        curve_fit_batch(decay, np.stack([tx, t]), np.stack([y, y]), p0=[1, 1, 0], sigma=sx,
                        nan_policy="omit")
    per_problem = curve_fit_batch(decay, np.stack([tx, t]), np.stack([y, y]), p0=[1, 1, 0],
                                  nan_policy="omit")
    np.testing.assert_array_equal(per_problem.npoints, [29, 30])
    np.testing.assert_allclose(per_problem.x[0],
                               marquardt.curve_fit(decay, np.delete(t, 5), np.delete(y, 5),
                                                   p0=[1, 1, 0])[0], rtol=1e-9)
    with pytest.raises(ValueError, match=r"`xdata` must contain only finite values"):
        curve_fit_batch(decay, tx, np.stack([y, y]), p0=[1, 1, 0])  # 'raise'


def test_scipy_curve_fit_keywords_are_taken_as_curve_fit_takes_them():
    def decay(t, a, b):
        return a * np.exp(-b * t)

    t = np.linspace(0.0, 4.0, 30)
    y = np.stack([2.0 * np.exp(-t), 3.0 * np.exp(-0.5 * t)])
    ours = curve_fit_batch(decay, t, y, p0=[1, 1], max_nfev=7)
    scipy_names = curve_fit_batch(decay, t, y, p0=[1, 1], maxfev=7, method="lm")
    np.testing.assert_array_equal(scipy_names.x, ours.x)
    np.testing.assert_array_equal(scipy_names.nfev, ours.nfev)
    with pytest.raises(ValueError, match=r"`method` must be None or 'lm'.*Received: "
                                         r"method='trf'"):
        curve_fit_batch(decay, t, y, p0=[1, 1], method="trf")
    with pytest.raises(TypeError, match=r"curve_fit_batch\(\) got both `maxfev` and "
                                        r"`max_nfev`"):
        curve_fit_batch(decay, t, y, p0=[1, 1], maxfev=7, max_nfev=7)


def test_numpy_model_differenced_relative_to_its_parameters_sizes():
    # NIST Hahn1's two starts as two problems of a NumPy model: difference steps relative to
    # each problem's start magnitudes, as curve_fit's (tests/test_curve_fit.py); with SciPy
    # least_squares' ε^½·max(1, |b|) the ~1e-7 cubic coefficients ended with 2 correct digits
    from marquardt import nist
    from nist_models import numpy_problem
    p, f = numpy_problem("Hahn1")

    y = np.stack([p.target(), p.target()])
    res = curve_fit_batch(f, p.x, y, np.array(p.starts), ftol=1e-15, xtol=1e-15, gtol=1e-15)
    for k in range(2):
        assert nist.lre(res.x[k], p.certified).min() >= 5.0
    assert np.all(res.nfev < 400)
