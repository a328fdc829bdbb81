"""Batched fits: ``curve_fit_batch`` against one-at-a-time ``curve_fit``, and the engine pieces
whose behaviour only shows with more than one problem in a batch."""

from __future__ import annotations

import numpy as np

from marquardt._solvers import CholeskySolver, UnrolledCholeskySolver, solve_normal


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
