"""The batch's covariances (``marquardt._covariance.unscaled_covariances``): the direct route
(a Jacobi-scaled inverse) agrees with the SVD of each Jacobian, and a fit whose J has lost
rank gets ``inf`` whichever route first took it."""

from __future__ import annotations

import numpy as np
import pytest

from marquardt._covariance import SMALL_N, _pinv_normal, _spd_inverses, unscaled_covariances

RNG = np.random.default_rng(3)


def _one_at_a_time(jac):
    out = []
    for j in jac:
        cov, rank = _pinv_normal(j)
        out.append(cov if rank == j.shape[1] else np.full_like(cov, np.inf))
    return np.stack(out)


@pytest.mark.parametrize("lost", ["none", "nearly equal columns", "zero column"])
def test_batched_covariances_equal_the_svd_route(lost):
    jac = RNG.standard_normal((40, 25, 5))
    jac[3, :, 1] *= 1e-6  # badly scaled but full rank: the scaling keeps it direct
    if lost == "nearly equal columns":  # every diagonal > 0: all start on the direct route
        jac[7, :, 4] = jac[7, :, 3] * (1 + 1e-13)
    elif lost == "zero column":
        jac[7, :, 2] = 0.0
    got = unscaled_covariances(jac)
    want = _one_at_a_time(jac)
    assert np.isinf(got[7]).all() == (lost != "none")
    finite = np.isfinite(want).all(axis=(1, 2))
    # the two routes agree to ~κ(scaled JᵀJ)·ε; problem 3 is the worst conditioned
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-7)


def test_a_jacobian_that_is_not_finite_gets_nan():
    jac = RNG.standard_normal((4, 10, 3))
    jac[2, 0, 0] = np.nan
    got = unscaled_covariances(jac)
    assert np.isnan(got[2]).all() and np.isfinite(np.delete(got, 2, axis=0)).all()


@pytest.mark.parametrize("n", range(1, SMALL_N + 1))
def test_small_inverses_written_out_equal_lapack(n):
    jac = RNG.standard_normal((30, 12, n)) * np.logspace(0, 2, n)
    a = np.swapaxes(jac, 1, 2) @ jac
    got = _spd_inverses(a)
    want = np.linalg.inv(a)
    scale = np.abs(want).max(axis=(1, 2))[:, None, None]
    assert np.max(np.abs(got - want) / scale) < 1e-12
    assert np.array_equal(got, np.swapaxes(got, 1, 2))  # symmetric by construction


def test_a_matrix_that_is_not_positive_definite_gets_nan_alone():
    a = np.stack([np.eye(3), np.eye(3), np.diag([1.0, 0.0, 1.0]), np.diag([1.0, 1.0, -2.0])])
    a[1, 0, 1] = a[1, 1, 0] = 0.5
    got = _spd_inverses(a)
    assert np.array_equal(got[0], np.eye(3))
    np.testing.assert_allclose(got[1], np.linalg.inv(a[1]), rtol=1e-15, atol=1e-15)
    assert np.isnan(got[2]).all() and np.isnan(got[3]).all()


def test_a_long_column_does_not_drop_a_singular_value_its_scale_only_shadows():
    # zoo sine_unix_time: a frequency multiplies times of 1.7e9 s, so its column is 1e10 times
    # the others; J's smallest singular value fell under SciPy's cut-off ε·max(m, n)·σ₁ on the
    # unscaled J (curve_fit: pcov inf, "rank 3 < n = 4") though J S has condition number ~1e4
    from marquardt._covariance import covariance_from_jacobian
    j = RNG.standard_normal((200, 4))
    j[:, 1] = j[:, 0] + 1e-4 * j[:, 1]  # nearly collinear, well within float64
    j[:, 0] *= 1e11
    s = 1.0 / np.linalg.norm(j, axis=0)
    want = s[:, None] * np.linalg.inv((j * s).T @ (j * s)) * s[None, :]
    cov, rank = _pinv_normal(j)
    assert rank == 4
    np.testing.assert_allclose(cov, want, rtol=1e-6)
    np.testing.assert_allclose(covariance_from_jacobian(j, 1.0, absolute_sigma=True,
                                                        singular="inf"), want, rtol=1e-6)
    np.testing.assert_allclose(unscaled_covariances(j[None])[0], want, rtol=1e-6)


def test_without_numpys_thin_svd_kernel_the_wrapper_gives_the_same_bits(monkeypatch):
    """NumPy 1.x names its SVD gufuncs otherwise (``THIN_SVD_KERNEL`` None): the covariance and
    the host's SVD then call ``np.linalg.svd`` itself, with the same results."""
    from marquardt import _covariance
    from marquardt._backend.numpy import single

    jac = np.random.default_rng(3).standard_normal((20, 4))
    fast_cov, fast_svd = _pinv_normal(jac), single.svd(jac[None])
    monkeypatch.setattr(_covariance, "_SVD_THIN", None)
    monkeypatch.setattr(single, "_SVD_THIN", None)
    slow_cov, slow_svd = _pinv_normal(jac), single.svd(jac[None])
    assert fast_cov[0].tobytes() == slow_cov[0].tobytes() and fast_cov[1] == slow_cov[1] == 4
    assert all(a.tobytes() == b.tobytes() for a, b in zip(fast_svd, slow_svd))
