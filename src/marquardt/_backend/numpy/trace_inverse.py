"""γ = P − ρ·tr(m⁻¹) of m = A + ρI by the host's LAPACK: the kernels of Bayesian
regularisation's effective number of parameters on the host
(``marquardt._backend.tensorflow.linalg.host_effective_parameters``), not part of the core's
array namespace. The choice between the Cholesky route and the eigenvalue fallback is the
shared one (``marquardt.keras._evidence.effective_parameters``), run here on NumPy, so that a
failed ``potrf`` costs no second hand-over from TensorFlow."""

from __future__ import annotations

import numpy as np

__all__ = ["trace_inverse_or_nan", "eigenvalues", "effective_parameters"]


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


def eigenvalues(m):
    """The eigenvalues of the symmetric m, in m's dtype, by LAPACK's ``syevd`` without
    eigenvectors (``_evidence.effective_parameters`` hands it a float32 m for a float32
    model)."""
    from scipy.linalg import eigh

    return eigh(np.asarray(m), eigvals_only=True, driver="evd", check_finite=False)


def effective_parameters(m, rho, eps: float | None = None):
    """``(γ, fallback)`` of m = A + ρI (ρ > 0) on the host: γ = P − ρ·tr(m⁻¹) by
    ``trace_inverse_or_nan``; where ``potrf`` fails or γ falls outside [0, P], from the
    eigenvalues of m (``eigenvalues``: LAPACK ``syevd``, ``_evidence.gamma_by_eigenvalues``),
    ``fallback`` then 1 (int32). ``eps``: the rounding unit of the model's dtype (default
    m's)."""
    from marquardt._backend.numpy import xp as npx
    from marquardt.keras import _evidence

    m = np.asarray(m)
    rho = np.asarray(rho, m.dtype)
    eps = float(np.finfo(m.dtype).eps) if eps is None else eps
    gamma, fallback = _evidence.effective_parameters(
        npx, trace_inverse_or_nan, eigenvalues, m, rho,
        np.asarray(m.shape[0], m.dtype), eps)
    return np.asarray(gamma, m.dtype), np.asarray(fallback, np.int32)
