"""Parameter covariance, standard errors and correlations from the Jacobian at the solution.

With J the Jacobian of the weighted residuals rᵢ = (f(xᵢ; p) − yᵢ)/σᵢ at the solution,

    pcov = (JᵀJ)⁺ · s²,       s² = Σrᵢ² / (m − n)   (reduced χ²; s² = 1 if absolute_sigma)

where ⁺ is the pseudo-inverse computed from the thin SVD J = UΣVᵀ, (JᵀJ)⁺ = V Σ⁻² Vᵀ, with
singular values below ε · max(m, n) · σ₁ dropped, as ``scipy.optimize.curve_fit`` does. The SVD
avoids squaring the condition number of J; the NIST certified standard deviations are
reproduced to 6+ digits this way (``tests/test_nist.py``).
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["covariance_from_jacobian", "standard_errors", "correlation_matrix"]


def covariance_from_jacobian(jac: np.ndarray, sum_squares: float, *, absolute_sigma: bool = False
                             ) -> np.ndarray:
    """Covariance of the fitted parameters (n, n); ``inf`` entries when m ≤ n and not absolute.

    Args:
        jac: Jacobian of the weighted residuals at the solution, shape (m, n).
        sum_squares: Σ rᵢ² at the solution (twice the cost).
        absolute_sigma: treat σ as absolute standard deviations (no χ² rescaling).
    """
    m, n = jac.shape
    _, s, vt = np.linalg.svd(jac, full_matrices=False)
    keep = s > np.finfo(np.float64).eps * max(m, n) * (s[0] if s.size else 0.0)
    s, vt = s[keep], vt[: int(keep.sum())]
    pcov = (vt.T / s**2) @ vt
    if absolute_sigma:
        return pcov
    if m > n:
        return pcov * (sum_squares / (m - n))
    warnings.warn("Covariance of the parameters could not be estimated: there are no more "
                  "residuals than parameters (m <= n)", RuntimeWarning, stacklevel=3)
    return np.full((n, n), np.inf)


def standard_errors(pcov: np.ndarray) -> np.ndarray:
    """One-sigma standard errors √diag(pcov), in the units of the parameters."""
    return np.sqrt(np.diagonal(pcov, axis1=-2, axis2=-1))


def correlation_matrix(pcov: np.ndarray) -> np.ndarray:
    """Correlation matrix pcovᵢⱼ / (σᵢ σⱼ); NaN where a standard error is zero or infinite."""
    se = standard_errors(pcov)
    with np.errstate(invalid="ignore", divide="ignore"):
        return pcov / (se[..., :, None] * se[..., None, :])
