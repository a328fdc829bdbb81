"""The batch kernel (``_backend/numpy/native_kernel.py``): the core's steps emitted for one
problem and looped over K problems in C with a C model give ``curve_fit_batch``'s host
results (the same core on NumPy arrays) to rounding, with the same status, iterations and
evaluations; threads give the one thread's bits."""

from __future__ import annotations

import numpy as np
import pytest

from marquardt import _batch
from marquardt._backend.numpy import native_kernel, native_load
from marquardt._backend.numpy.native_slots import Unsupported
from marquardt._batch_results import BatchOutputs
from marquardt._options import with_jacobian_calls

pytestmark = pytest.mark.skipif(native_load.compiler() is None, reason="no C compiler")

TOL = dict(ftol=1e-8, xtol=1e-8, gtol=1e-8)

#: Gpufit's 2-D Gaussian (amplitude, centre x and y, width, offset), written by hand in C with
#: its analytic Jacobian, to the kernel's model contract (``native_kernel.MODEL_CONTRACT``);
#: an amplitude above 1e300 makes it fail (returns 1), for the error's test
GAUSS2D_C = r"""
static int mq_cmodel(const double *p, const mq_data *d, double *r, double *J) {
    const double a = p[0], x0 = p[1], y0 = p[2], s = p[3], b = p[4], s2 = s * s;
    if (a > 1e300) return 1;
    const double *xs = d->x, *ys = d->x + d->x_row;
    for (long i = 0; i < d->m; i++) {
        const double dx = xs[i] - x0, dy = ys[i] - y0, q = dx * dx + dy * dy;
        const double e = exp(-q / (2.0 * s2)), w = d->w ? d->w[i] : 1.0;
        r[i] = (a * e + b - d->y[i]) * w;
        if (J) {
            double *row = J + 5 * i;
            row[0] = w * e; row[1] = w * a * e * dx / s2; row[2] = w * a * e * dy / s2;
            row[3] = w * a * e * q / (s2 * s); row[4] = w;
        }
    }
    return 0;
}
"""


def gauss2d(xy, a, x0, y0, s, b):
    return a * np.exp(-((xy[0] - x0) ** 2 + (xy[1] - y0) ** 2) / (2 * s * s)) + b


def gauss2d_jac(xy, a, x0, y0, s, b):
    dx, dy, s2 = xy[0] - x0, xy[1] - y0, s * s
    e = np.exp(-(dx * dx + dy * dy) / (2 * s2))
    return np.stack([e, a * e * dx / s2, a * e * dy / s2, a * e * (dx * dx + dy * dy) / (s2 * s),
                     np.ones_like(e)], axis=1)


def data(k, seed=0):
    """``benchmarks/batch.py``'s problems: 5 × 5 pixels, 5% noise, starts within 10%."""
    rng = np.random.default_rng(seed)
    g = np.arange(5, dtype=float)
    xy = np.stack([a.ravel() for a in np.meshgrid(g, g)])
    p = np.stack([rng.uniform(5, 15, k), 2 + rng.uniform(-0.5, 0.5, k),
                  2 + rng.uniform(-0.5, 0.5, k), rng.uniform(0.8, 1.2, k),
                  rng.uniform(0.5, 1.5, k)], axis=1)
    y = gauss2d(xy, *(p.T[:, :, None]))
    y = y + 0.05 * p[:, :1] * rng.standard_normal(y.shape)
    return xy, y, p * rng.uniform(0.9, 1.1, p.shape)


def kernel_for(bounded=False, **options):
    cfg, d_fixed, _, _ = _batch._loop_config(dict(TOL, **options), 5, bounded)
    cfg = with_jacobian_calls(cfg, 0, 5, False)  # the model's J: no evaluations counted
    return native_kernel.build(cfg, 25, 5, GAUSS2D_C), d_fixed


@pytest.fixture(scope="module")
def free():
    return kernel_for()


def assert_like_host(state, res, x_rtol=1e-10):
    np.testing.assert_allclose(state.x, res.x, rtol=x_rtol, atol=0)
    np.testing.assert_array_equal(state.status, res.status)
    np.testing.assert_array_equal(state.nit, res.nit)
    np.testing.assert_array_equal(state.nfev, res.nfev)
    np.testing.assert_allclose(2.0 * state.cost, res.chisq, rtol=1e-10)


def test_results_equal_the_host_batch(free):
    kernel, d_fixed = free
    xy, y, p0 = data(40)
    state = native_kernel.solve(kernel, xy, y, None, p0, d_fixed=d_fixed)
    res = _batch.curve_fit_batch(gauss2d, xy, y, p0, jac=gauss2d_jac, **TOL)
    assert_like_host(state, res)
    # the state is what ``curve_fit_batch`` stores: its outputs follow
    out = BatchOutputs(40, 25, 5, p0)
    lb, ub = np.full((40, 5), -np.inf), np.full((40, 5), np.inf)
    out.store(np.arange(40), state, kernel.cfg, lb, ub)
    np.testing.assert_allclose(out.pcov, res.cov / (res.redchi[:, None, None]), rtol=1e-7)


def test_weights_and_per_problem_x(free):
    kernel, d_fixed = free
    xy, y, p0 = data(24, seed=1)
    sigma = np.random.default_rng(2).uniform(0.5, 2.0, y.shape)
    xs = np.repeat(xy[None], 24, axis=0) + 0.01 * np.arange(24)[:, None, None]
    state = native_kernel.solve(kernel, xs, y, 1.0 / sigma, p0, d_fixed=d_fixed)
    res = _batch.curve_fit_batch(gauss2d, xs, y, p0, sigma=sigma, jac=gauss2d_jac, **TOL)
    assert_like_host(state, res)


def test_bounds():
    kernel, d_fixed = kernel_for(bounded=True)
    xy, y, p0 = data(24, seed=3)
    lb = np.array([0.0, 1.0, 1.0, 0.5, 0.0])
    ub = np.array([20.0, 3.0, 3.0, 1.05, 1.0])  # width and offset: often at their bounds
    p0 = np.clip(p0, lb + 0.01, ub - 0.01)
    state = native_kernel.solve(kernel, xy, y, None, p0, lb, ub, d_fixed=d_fixed)
    res = _batch.curve_fit_batch(gauss2d, xy, y, p0, jac=gauss2d_jac, bounds=(lb, ub), **TOL)
    assert_like_host(state, res)
    assert np.any(state.x == ub) or np.any(state.x == lb)


def test_threads_give_one_threads_bits(free):
    kernel, d_fixed = free
    xy, y, p0 = data(37, seed=4)
    one = native_kernel.solve(kernel, xy, y, None, p0, d_fixed=d_fixed)
    two = native_kernel.solve(kernel, xy, y, None, p0, d_fixed=d_fixed, threads=3)
    xs, ys, ps = data(400, seed=7)  # enough problems for several ranges per thread
    many = [native_kernel.solve(kernel, xs, ys, None, ps, d_fixed=d_fixed, threads=t)
            for t in (1, 2)]
    for a, b in zip(*many):
        assert a.tobytes() == b.tobytes()
    for a, b in zip(one, two):
        assert a.tobytes() == b.tobytes()


def test_not_finite_at_the_start(free):
    kernel, d_fixed = free
    xy, y, p0 = data(4, seed=5)
    y[1, 3] = np.nan
    state = native_kernel.solve(kernel, xy, y, None, p0, d_fixed=d_fixed)
    res = _batch.curve_fit_batch(gauss2d, xy, y, p0, jac=gauss2d_jac, nan_policy="omit", **TOL)
    assert state.status[1] == -3 and state.nit[1] == 0  # NON_FINITE at p0
    np.testing.assert_array_equal(state.status[[0, 2, 3]], res.status[[0, 2, 3]])


def test_a_trust_radius_has_no_kernel():
    cfg, _, _, _ = _batch._loop_config(dict(TOL, damping="trust-region"), 5, False)
    with pytest.raises(Unsupported):
        native_kernel.build(cfg, 25, 5, GAUSS2D_C)


def test_built_once_per_process(free):
    kernel, _ = free
    assert kernel_for()[0] is kernel


def test_a_model_that_fails_stops_with_an_error(free):
    kernel, d_fixed = free
    xy, y, p0 = data(3, seed=6)
    p0[2, 0] = 1e301
    with pytest.raises(RuntimeError, match="problem 2: the model returned nonzero"):
        native_kernel.solve(kernel, xy, y, None, p0, d_fixed=d_fixed)


def test_the_kernel_preludes_products_to_rounding():
    """``prelude(kernel=True)``'s plain-loop products (``np_gemv_cm`` both ways, ``np_matmul``
    for JᵀJ and for two matrices) against NumPy's."""
    import ctypes

    from marquardt._backend.numpy.native_prelude import init, prelude

    source = prelude(native_load.blas().ilp64, kernel=True) + r"""
void t_gemv(int trans, long rows, long cols, const double *a, const double *x, double *y) {
    np_gemv_cm(trans, rows, cols, a, rows, x, 1, y); }
void t_matmul(const double *a, long sa0, long sa1, const double *b, long sb0, long sb1,
              long m, long n, long p, double *out) {
    np_matmul(a, sa0, sa1, b, sb0, sb1, m, n, p, out); }
"""
    lib = native_load.load(source, True, native_kernel.FLAGS)
    init(lib, native_load.blas())
    ptr = lambda a: ctypes.c_void_p(a.ctypes.data)  # noqa: E731
    rng = np.random.default_rng(0)
    j = rng.standard_normal((25, 5))  # row-major: column-major 5 x 25 for gemv
    x5, x25 = rng.standard_normal(5), rng.standard_normal(25)
    y25, y5 = np.empty(25), np.empty(5)
    lib.t_gemv(1, 5, 25, ptr(j), ptr(x5), ptr(y25))  # (column-major 5 x 25)ᵀ x = J x
    lib.t_gemv(0, 5, 25, ptr(j), ptr(x25), ptr(y5))  # Jᵀ x
    np.testing.assert_allclose(y25, j @ x5, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y5, j.T @ x25, rtol=1e-12, atol=1e-12)
    out = np.empty((5, 5))
    lib.t_matmul(ptr(j), ctypes.c_long(1), ctypes.c_long(5), ptr(j), ctypes.c_long(5),
                 ctypes.c_long(1), ctypes.c_long(5), ctypes.c_long(25), ctypes.c_long(5),
                 ptr(out))  # JᵀJ: one pointer, swapped strides
    np.testing.assert_allclose(out, j.T @ j, rtol=1e-12, atol=1e-12)
    assert np.array_equal(out, out.T)
    b = rng.standard_normal((25, 3))
    out2 = np.empty((5, 3))
    lib.t_matmul(ptr(j), ctypes.c_long(1), ctypes.c_long(5), ptr(b), ctypes.c_long(3),
                 ctypes.c_long(1), ctypes.c_long(5), ctypes.c_long(25), ctypes.c_long(3),
                 ptr(out2))
    np.testing.assert_allclose(out2, j.T @ b, rtol=1e-12, atol=1e-12)
