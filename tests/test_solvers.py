"""Damped solvers: every method solves (JᵀJ + λD) δ = −Jᵀr; fallbacks; batching."""

import numpy as np
import pytest
import tensorflow as tf

from marquardt._solvers import (CholeskySolver, EigenSolver, KernelSolver, SVDSolver,
                                get_solver, solve_kernel, solve_normal)

SOLVERS = [SVDSolver(), EigenSolver(), CholeskySolver(), KernelSolver()]
TALL = SOLVERS[:3]  # the kernel form is for m < n (tested below on a wide J)


def reference(j, r, lam, d):
    return np.linalg.solve(j.T @ j + lam * np.diag(d), -j.T @ r)


@pytest.fixture
def system():
    rng = np.random.default_rng(0)
    j = rng.normal(size=(12, 4))
    r = rng.normal(size=12)
    d = rng.uniform(0.5, 3.0, size=4)
    return j, r, d


@pytest.mark.parametrize("solver", TALL, ids=lambda s: s.name)
@pytest.mark.parametrize("lam", [1e-8, 0.1, 1e3])
def test_solvers_match_dense_solve(solver, lam, system):
    j, r, d = system
    fac = solver.factor(tf.constant(j), tf.constant(r), tf.constant(d))
    delta = np.asarray(solver.solve(fac, tf.constant(lam, tf.float64)))
    np.testing.assert_allclose(delta, reference(j, r, lam, d), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("solver", SOLVERS, ids=lambda s: s.name)
def test_factor_reused_for_new_lambda(solver, system):
    j, r, d = system
    fac = solver.factor(tf.constant(j), tf.constant(r), tf.constant(d))
    for lam in (1.0, 10.0, 100.0):
        np.testing.assert_allclose(np.asarray(solver.solve(fac, tf.constant(lam, tf.float64))),
                                   reference(j, r, lam, d), rtol=1e-9)


@pytest.mark.parametrize("solver", SOLVERS, ids=lambda s: s.name)
def test_batched(solver):
    rng = np.random.default_rng(1)
    j = rng.normal(size=(3, 7, 2))
    r = rng.normal(size=(3, 7))
    d = np.ones((3, 2))
    lam = np.array([1e-3, 1.0, 50.0])
    fac = solver.factor(tf.constant(j), tf.constant(r), tf.constant(d))
    delta = np.asarray(solver.solve(fac, tf.constant(lam)))
    for k in range(3):
        np.testing.assert_allclose(delta[k], reference(j[k], r[k], lam[k], d[k]), rtol=1e-9)


def test_cholesky_falls_back_on_singular_system():
    # Rank-deficient J with λ = 0: Cholesky fails (NaN), the eigen route gives the
    # minimum-norm step instead of NaN.
    j = np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
    r = np.array([1.0, 2.0, 3.0])
    delta = np.asarray(solve_normal(tf.constant(j.T @ j), tf.constant(j.T @ r),
                                    tf.constant(0.0, tf.float64), tf.ones(2, tf.float64)))
    assert np.all(np.isfinite(delta))
    np.testing.assert_allclose(delta, -np.linalg.pinv(j) @ r, rtol=1e-8)


@pytest.mark.parametrize("backend", ["numpy", "tensorflow"])
@pytest.mark.parametrize("solver", SOLVERS, ids=lambda s: s.name)
def test_solve_checked_reports_each_failed_cholesky(solver, backend):
    """``solve_checked`` gives ``solve``'s step and, per system, whether the Cholesky factor
    failed: problem 0 has duplicated columns of J (A = [[1, 1], [1, 1]], singular) and λ =
    1e-20, below A's rounding level, so its factorisation fails exactly (pivot
    (1 + λ) − 1·1 = 0 in floating point); problem 1 is well posed. Solvers
    without a Cholesky factorisation never report a failure."""
    if isinstance(solver, KernelSolver):  # m < n: K = JJᵀ = [[1, 1], [1, 1]] for problem 0
        j = np.array([[[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]], [[1.0, 0.0, 2.0], [0.0, 1.0, 1.0]]])
    else:
        j = np.array([[[1.0, 1.0]] * 4, [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0]]]) * 0.5
    r = np.ones(j.shape[:2])
    d = np.ones((2, j.shape[-1]))
    lam = np.array([1e-20, 1e-3])
    arrays = (j, r, d, lam) if backend == "numpy" else tuple(map(tf.constant, (j, r, d, lam)))
    fac = solver.factor(*arrays[:3])
    delta, failed = solver.solve_checked(fac, arrays[3])
    falls_back = isinstance(solver, (CholeskySolver, KernelSolver))
    np.testing.assert_array_equal(np.asarray(failed), [falls_back, False])
    np.testing.assert_array_equal(np.asarray(delta), np.asarray(solver.solve(fac, arrays[3])))
    assert np.all(np.isfinite(np.asarray(delta)))


def test_svd_handles_rank_deficiency_and_wide_jacobian():
    rng = np.random.default_rng(2)
    j = rng.normal(size=(3, 6))  # m < n
    r = rng.normal(size=3)
    d = np.ones(6)
    for solver in (SVDSolver(), KernelSolver(), EigenSolver()):
        fac = solver.factor(tf.constant(j), tf.constant(r), tf.constant(d))
        np.testing.assert_allclose(np.asarray(solver.solve(fac, tf.constant(0.5, tf.float64))),
                                   reference(j, r, 0.5, d), rtol=1e-9)


def test_kernel_identity():
    rng = np.random.default_rng(3)
    j, r, d = rng.normal(size=(4, 9)), rng.normal(size=4), rng.uniform(1, 2, size=9)
    delta = np.asarray(solve_kernel(tf.constant(j), tf.constant(r), tf.constant(2.0, tf.float64),
                                    tf.constant(d)))
    np.testing.assert_allclose(delta, reference(j, r, 2.0, d), rtol=1e-10)


def test_svd_is_accurate_where_normal_equations_are_not():
    # κ(J) ≈ 1e9: forming JᵀJ squares it past 1/ε; the SVD keeps the digits.
    x = np.linspace(0, 1, 30)
    j = np.stack([np.ones_like(x), x, x + 1e-9 * x**2], axis=1)
    true = np.array([1.0, -2.0, 3.0])
    r = -(j @ true)
    fac = SVDSolver().factor(tf.constant(j), tf.constant(r), tf.ones(3, tf.float64))
    delta = np.asarray(SVDSolver().solve(fac, tf.constant(0.0, tf.float64)))
    np.testing.assert_allclose(j @ delta, j @ true, rtol=1e-9)


def test_get_solver():
    assert isinstance(get_solver("svd"), SVDSolver)
    with pytest.raises(ValueError, match=r"`solver` must be one of .*Received: solver='qr'"):
        get_solver("qr")
