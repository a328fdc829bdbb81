"""The covariance's scaled SVD in C (``native_covariance``): the NumPy route's pcov bit for
bit (``_covariance._pinv_normal``) over shapes, both memory orders, column scales from 1e-5
to 1e5 and the special cases (a zero, NaN, Inf or collinear column, a vanished or huge one),
and None where C does not serve."""

from __future__ import annotations

import numpy as np
import pytest

from marquardt import _covariance as cv
from marquardt._backend.numpy import native_covariance, native_load

pytestmark = pytest.mark.skipif(native_load.compiler() is None, reason="no C compiler")


def _both(jac, **kwargs):
    """pcov (or the error's repr) by the NumPy route and with the C one."""
    out = []
    previous = cv._native_scaled_svd
    try:
        for route in (None, native_covariance.scaled_svd):
            cv._native_scaled_svd = route
            try:
                with np.errstate(all="ignore"):
                    out.append(cv.covariance_from_jacobian(jac, 0.7, **kwargs).tobytes())
            except Exception as exc:  # noqa: BLE001 - compared as they are
                out.append(repr(exc))
    finally:
        cv._native_scaled_svd = previous
    return out


def _orders(a):
    return [np.ascontiguousarray(a), np.asfortranarray(a),
            np.ascontiguousarray(a.T).T]  # numdiff's: a transposed C-ordered array


def test_random_jacobians_bit_for_bit():
    rng = np.random.default_rng(7)
    used = 0
    for m, n in [(2, 2), (7, 3), (8, 2), (50, 3), (60, 5), (129, 4), (300, 6)]:
        for _ in range(6):
            a = rng.standard_normal((m, n)) * 10.0 ** rng.uniform(-5, 5, n)
            for jac in _orders(a):
                want, got = _both(jac)
                assert want == got, (m, n, jac.flags.c_contiguous)
                used += native_covariance.scaled_svd(jac, cv._EPS * m) is not None
    assert used > 0


@pytest.mark.parametrize("case", ["zero", "nan", "inf", "collinear", "tiny", "huge",
                                  "negative-zero"])
@pytest.mark.filterwarnings("ignore::Warning")
def test_special_columns_as_the_numpy_route(case):
    a = np.random.default_rng(3).standard_normal((50, 3))
    if case == "zero":
        a[:, 1] = 0.0
    elif case == "nan":
        a[3, 2] = np.nan
    elif case == "inf":
        a[3, 0] = np.inf
    elif case == "collinear":
        a[:, 2] = 3.0 * a[:, 0]
    elif case == "tiny":
        a[:, 1] *= 1e-300
    elif case == "huge":
        a *= 1e200
    else:
        a[:, 0] = -0.0
    for jac in _orders(a):
        for singular in ("inf", "pinv"):
            want, got = _both(jac, singular=singular)
            assert want == got


def test_none_where_c_does_not_serve():
    cut = cv._EPS * 50
    a = np.random.default_rng(4).standard_normal((50, 3))
    assert native_covariance.scaled_svd(a[::2], cut) is None  # neither order
    assert native_covariance.scaled_svd(a[:, :1].copy(), cut) is None  # n = 1
    assert native_covariance.scaled_svd(a.astype(np.float32), cut) is None
    lost = a.copy()
    lost[:, 2] = 0.0
    assert native_covariance.scaled_svd(lost, cut) is None  # a column lost: NumPy's route
    scale, s, vt = native_covariance.scaled_svd(a, cut)
    assert scale.shape == (3,) and s.shape == (3,) and vt.shape == (3, 3)
    assert vt.flags.c_contiguous
