"""tr(m⁻¹) of a symmetric positive definite matrix by the host's LAPACK: a kernel for
Bayesian regularisation's γ (``marquardt._backend.tensorflow.linalg.host_trace_inverse``), not
part of the core's array namespace."""

from __future__ import annotations

import numpy as np

__all__ = ["trace_inverse_or_nan"]


def trace_inverse_or_nan(m):
    """(t, ok): t = tr(m⁻¹) of one symmetric positive definite matrix as ‖L⁻¹‖²_F, L = chol(m),
    by LAPACK ``potrf`` then ``trtri`` (P³/3 flops each: the inverse of a triangular factor
    exploits the zeros that a solve against the identity, P³ flops, does not); NaN and ok
    False where ``potrf`` finds m not numerically positive definite (no exception)."""
    m = np.asarray(m)
    from scipy.linalg import lapack

    potrf, trtri = lapack.get_lapack_funcs(("potrf", "trtri"), (m,))
    # m is symmetric: its transpose is the same matrix in LAPACK's column order, so ``potrf``
    # copies it once without reordering; clean=True zeroes the strict upper triangle of the
    # factor, which ``trtri`` (in place on that copy) leaves as it is
    chol, info = potrf(m.T, lower=True, clean=True)
    if info != 0 or not np.all(np.isfinite(np.diagonal(chol))):
        return np.asarray(np.nan, m.dtype), np.asarray(False)
    inv, info = trtri(chol, lower=True, overwrite_c=True)
    if info != 0:
        return np.asarray(np.nan, m.dtype), np.asarray(False)
    flat = inv.ravel(order="K")
    t = np.asarray(np.dot(flat, flat), m.dtype)
    return t, np.asarray(bool(np.isfinite(t)))
