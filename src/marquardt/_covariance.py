"""Parameter covariance, standard errors and correlations from the Jacobian at the solution.

With J the Jacobian of the weighted residuals rᵢ = (f(xᵢ; p) − yᵢ)/σᵢ at the solution,

    pcov = (JᵀJ)⁺ · s²,       s² = Σrᵢ² / (m − n)   (reduced χ²; s² = 1 if absolute_sigma)

where ⁺ is the pseudo-inverse computed from the thin SVD of J with its columns scaled to unit
length, J S = UΣVᵀ, (JᵀJ)⁺ = S V Σ⁻² Vᵀ S, with singular values below ε · max(m, n) · σ₁
dropped, as ``scipy.optimize.curve_fit`` drops them on J (the scaling makes the rank independent
of the parameters' units: ``_pinv_normal``). The SVD avoids squaring the condition number of
J; the NIST certified standard deviations are reproduced to 6+ digits this way
(``tests/test_nist.py``).
"""

from __future__ import annotations

import numpy as np

from marquardt._backend.numpy.svd_kernel import THIN_SVD_KERNEL as _SVD_THIN
from marquardt._checks import warn_user

__all__ = ["covariance_from_jacobian", "unscaled_covariances",
           "scale_by_reduced_chisq", "standard_errors", "correlation_matrix"]

#: How every ``OptimizeWarning`` of ours begins (SciPy's words): a warnings filter on it needs
#: no import of ``scipy.optimize`` (the command line's ``fit`` records them so).
NOT_ESTIMATED = "Covariance of the parameters could not be estimated"


def optimize_warning() -> type[Warning]:
    """SciPy's ``OptimizeWarning`` (imported when a warning is due: ``scipy.optimize`` is
    slow to import), the category ``curve_fit`` users filter on."""
    from scipy.optimize import OptimizeWarning
    return OptimizeWarning


def covariance_from_jacobian(jac: np.ndarray, sum_squares: float, *, absolute_sigma: bool = False,
                             singular: str = "pinv") -> np.ndarray:
    """Covariance of the fitted parameters (n, n); ``inf`` entries (and an
    ``OptimizeWarning``) when m ≤ n and not absolute.

    ``singular``: for a rank-deficient J (a singular value dropped), ``"pinv"`` keeps the
    pseudo-inverse (the covariance of the identifiable combinations), ``"inf"`` returns inf
    entries with an ``OptimizeWarning``: SciPy's ``curve_fit`` (``lm``) says "Covariance of
    the parameters could not be estimated" then.

    Args:
        jac: Jacobian of the weighted residuals at the solution, shape (m, n).
        sum_squares: Σ rᵢ² at the solution (twice the cost).
        absolute_sigma: treat σ as absolute standard deviations (no χ² rescaling).
    """
    m, n = jac.shape
    pcov, rank = _pinv_normal(jac)
    if singular == "inf" and rank < n:
        warn_user(f"{NOT_ESTIMATED}: the Jacobian at "
                  f"the solution has rank {rank} < n = {n} (a parameter, or a "
                  "combination of them, does not change the model)", optimize_warning())
        return np.full((n, n), np.inf)
    if absolute_sigma:
        return pcov
    if m > n:
        return pcov * (sum_squares / (m - n))
    warn_user(f"{NOT_ESTIMATED}: there are no more "
              "residuals than parameters (m <= n)", optimize_warning())
    return np.full((n, n), np.inf)


def _pinv_normal(jac: np.ndarray) -> tuple[np.ndarray, int]:
    """(JᵀJ)⁺ and the rank of J (m, n), judged on its columns scaled to unit length.

    SciPy's cut-off, singular values below ε · max(m, n) · σ₁ dropped, is applied twice: to
    the columns' lengths, so that a column that has vanished beside the longest (‖Jⱼ‖ ≤
    ε · max(m, n) · maxₖ ‖Jₖ‖: a Gaussian of amplitude 1e-40 leaves its centre's column at
    1e-40) counts as lost, and to the singular values of J S, S = diag(1/‖Jⱼ‖) over the other
    columns (0 for a lost one), so that collinear columns count as lost whatever the
    parameters' units. On J itself the cut-off depends on the units: a column 1e10 times
    longer than the others (a frequency multiplying times of 1.7e9 s) dropped a singular
    value that was only its scale's shadow (zoo ``sine_unix_time``: 4.4e-4 against a cut-off
    of 4.7e-3 at σ₁ = 1e11, where J S has condition number 4.5e4 and SciPy's ``lm`` gives
    finite errors). At full rank (JᵀJ)⁻¹ = S V Σ⁻² Vᵀ S from the thin SVD J S = U Σ Vᵀ,
    which also keeps its accuracy where the columns' scales differ; below it, the
    pseudo-inverse of J itself, V Σ⁻² Vᵀ from J's SVD (SciPy's cut-off on J), whose
    minimum-norm sense is in the parameters' own units."""
    m, n = jac.shape
    cut = _EPS * max(m, n)
    # the same numbers in C once the native executor is in use (no column lost, full rank)
    done = _native_scaled_svd(jac, cut) if _native_scaled_svd is not None else None
    if done is not None:
        scale, s, vt = done
    else:
        # ‖Jⱼ‖ as ``np.linalg.norm(jac, axis=0)`` forms it for real J, without its wrapper
        norms = np.sqrt(np.add.reduce(jac * jac, axis=0)) if jac.dtype == np.float64 \
            else np.linalg.norm(jac, axis=0)
        lengths = norms.tolist()
        top = cut * max(lengths) if n else 0.0
        if n and all(v > top for v in lengths):  # no column lost (a NaN: the general route)
            scale = 1.0 / norms
        else:
            kept = norms > cut * (norms.max() if norms.size else 0.0)
            scale = np.where(kept, 1.0 / np.where(kept, norms, 1.0), 0.0)
        _, s, vt = _thin_svd(jac * scale)
    values = s.tolist()
    floor = cut * values[0] if values else 0.0
    rank = sum(v > floor for v in values)  # (a NaN σ₁: none kept)
    if rank == n:
        w = vt.T * scale[:, None]  # S V
        return (w / s**2) @ w.T, rank
    _, s, vt = np.linalg.svd(jac, full_matrices=False)
    keep = s > cut * (s[0] if s.size else 0.0)
    s, vt = s[keep], vt[:int(np.count_nonzero(keep))]
    return (vt.T / s**2) @ vt, rank


def _thin_svd(a: np.ndarray):
    """``np.linalg.svd(a, full_matrices=False)``: for a float64 matrix NumPy's own LAPACK
    kernel called directly under the wrapper's error state, the same bits without its type
    checks and conversions; where the kernel flags an invalid operation (LAPACK did not
    converge), and for other arrays, ``np.linalg.svd`` itself, which raises as before."""
    if _SVD_THIN is not None and type(a) is np.ndarray and a.dtype == np.float64 and a.ndim == 2:
        try:
            with np.errstate(call=_raise_invalid, invalid="call", over="ignore",
                             divide="ignore", under="ignore"):
                return _SVD_THIN(a, signature="d->ddd")
        except _Invalid:
            pass
    return np.linalg.svd(a, full_matrices=False)


class _Invalid(Exception):
    """The SVD kernel raised the invalid-operation flag (``_thin_svd``)."""


def _raise_invalid(*_):
    raise _Invalid


_EPS = float(np.finfo(np.float64).eps)

#: ``native_covariance.scaled_svd`` once the native executor is in use
#: (``native_loop.differences_in_c``): S, s and Vᵀ of ``_pinv_normal``'s route formed in C,
#: the same bits, or None where that route cannot serve. None: NumPy only.
_native_scaled_svd = None


def standard_errors(pcov: np.ndarray) -> np.ndarray:
    """One-sigma standard errors √diag(pcov), in the units of the parameters."""
    return np.sqrt(np.asarray(pcov).diagonal(axis1=-2, axis2=-1))


def correlation_matrix(pcov: np.ndarray, se: np.ndarray | None = None) -> np.ndarray:
    """Correlation matrix pcovᵢⱼ / (σᵢ σⱼ); NaN where a standard error is zero or infinite.
    ``se``: ``standard_errors(pcov)`` where the caller has them."""
    if se is None:
        se = standard_errors(pcov)
    with np.errstate(invalid="ignore", divide="ignore"):
        return pcov / (se[..., :, None] * se[..., None, :])


#: Largest 1-norm condition number of the Jacobi-scaled normal matrix S JᵀJ S (unit diagonal)
#: for which ``unscaled_covariances`` inverts it directly: the inverse is then accurate to
#: about κ·n·ε ≤ 1e-9 relative. Worse-conditioned fits take the SVD route.
FAST_COND_MAX = 1e6
#: Largest 1-norm condition number of the unscaled JᵀJ for the direct route: far below
#: 1 / (ε · max(m, n))², where the SVD route starts dropping singular values.
FAST_COND_UNSCALED_MAX = 1e20


def unscaled_covariances(jac: np.ndarray) -> np.ndarray:
    """(JᵀJ)⁺ for each of K Jacobians (K, m, n), before any χ² scaling.

    For a batch, the SVD of every Jacobian costs more than the fits themselves (about 20 µs
    for a 25×5 matrix). The direct route inverts the Jacobi-scaled normal matrix
    A_s = S JᵀJ S, S = diag(JᵀJ)^(-1/2), in one batched call: scaling removes the
    parameters' units from the conditioning, so the inverse keeps ~κ(A_s)·ε relative accuracy.
    A fit whose κ₁(A_s) exceeds ``FAST_COND_MAX`` (or whose unscaled JᵀJ is near the SVD's
    rank cut-off, or which has a zero column) gets the SVD route; where that finds J
    rank-deficient (a parameter, or a combination of them, that does not change the model:
    a zero column, a Gaussian of zero amplitude) its covariance is ``inf``, as ``curve_fit``
    returns it (SciPy's ``lm``), not the pseudo-inverse, whose zero variance along the lost
    directions would claim those parameters exactly determined. Rows of absent points must
    be zero; a fit whose Jacobian is not finite gets NaN. ``scale_by_reduced_chisq`` then
    applies χ²/dof where σ is relative (an ``inf`` stays ``inf``).
    """
    jac = np.asarray(jac, dtype=np.float64)
    k, m, n = jac.shape
    finite = np.all(np.isfinite(jac), axis=(1, 2))
    a = np.matmul(np.swapaxes(jac, 1, 2), jac)
    diag = np.diagonal(a, axis1=1, axis2=2)
    direct = finite & np.all(diag > 0, axis=1)
    s = 1.0 / np.sqrt(np.where(direct[:, None], diag, 1.0))
    a_s = a * s[:, :, None] * s[:, None, :]
    pcov = np.full((k, n, n), np.nan)
    idx = np.flatnonzero(direct)
    if idx.size:
        every = idx.size == k  # the usual case: no gathers of the direct ones
        sub, sub_a, sub_s = (a_s, a, s) if every else (a_s[idx], a[idx], s[idx])
        if n <= SMALL_N:
            inv = _spd_inverses(sub)
        else:
            try:
                inv = np.linalg.inv(sub)
            except np.linalg.LinAlgError:  # an exactly singular matrix in the lot: one by one
                inv = np.stack([_inv_or_nan(x) for x in sub])
        norm1 = lambda t: np.max(np.sum(np.abs(t), axis=1), axis=-1)  # noqa: E731
        cov = inv * sub_s[:, :, None] * sub_s[:, None, :]
        good = (np.all(np.isfinite(inv), axis=(1, 2))
                & (norm1(sub) * norm1(inv) <= FAST_COND_MAX)
                & (norm1(sub_a) * norm1(cov) <= FAST_COND_UNSCALED_MAX))
        if every and good.all():
            return cov
        pcov[idx[good]] = cov[good]
        direct[idx[~good]] = False
    for i in np.flatnonzero(finite & ~direct):
        cov, rank = _pinv_normal(jac[i])
        pcov[i] = cov if rank == n else np.inf
    return pcov


def scale_by_reduced_chisq(pcov: np.ndarray, sum_squares: np.ndarray, dof: np.ndarray
                           ) -> np.ndarray:
    """pcov · χ²/dof per fit; ``inf`` (and one ``OptimizeWarning``) where dof ≤ 0."""
    dof = np.asarray(dof)
    ok = dof > 0
    scale = np.asarray(sum_squares, dtype=np.float64) / np.where(ok, dof, 1)
    with np.errstate(invalid="ignore"):  # inf · 0 where a rank-deficient fit has χ² = 0
        pcov = np.where(np.isinf(pcov), pcov, pcov * scale[:, None, None])
    pcov[~ok] = np.inf
    if not np.all(ok):  # SciPy's category, as curve_fit warns for one fit
        warn_user(f"{NOT_ESTIMATED} for {int((~ok).sum())} "
                  "fit(s): they have no more residuals than parameters (m <= n)",
                  optimize_warning())
    return pcov


#: Largest n whose batched inverses ``_spd_inverses`` writes out entry by entry; above it,
#: ``np.linalg.inv`` (LAPACK per matrix), whose call costs ~1.2 µs a 5 × 5 matrix.
SMALL_N = 8


def _spd_inverses(a: np.ndarray) -> np.ndarray:
    """A⁻¹ for K symmetric positive definite n × n matrices (K, n, n), n ≤ ``SMALL_N``; NaN
    for a matrix whose Cholesky factorisation meets a pivot that is not positive.

    A = LLᵀ by Cholesky–Banachiewicz, M = L⁻¹ by forward substitution, A⁻¹ = MᵀM; every
    entry is an array over the K problems (batch-last), so the ~n³/2 operations are NumPy
    calls on K numbers each instead of a LAPACK call per matrix (10,000 Jacobi-scaled 5 × 5
    normal matrices: about 7× faster than ``np.linalg.inv``). Accuracy as LAPACK's
    Cholesky-based inverse: ~κ(A)·ε relative, for the well-conditioned A of the direct route.
    """
    k, n, _ = a.shape
    col = np.ascontiguousarray(np.moveaxis(a, 0, -1))  # (n, n, K)
    low = [[None] * n for _ in range(n)]
    ok = np.ones(k, dtype=bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        for j in range(n):
            d = col[j, j].copy()
            for q in range(j):
                d -= low[j][q] * low[j][q]
            ok &= d > 0.0
            low[j][j] = np.sqrt(np.where(d > 0.0, d, np.nan))
            for i in range(j + 1, n):
                t = col[i, j].copy()
                for q in range(j):
                    t -= low[i][q] * low[j][q]
                low[i][j] = t / low[j][j]
        inv_l = [[None] * n for _ in range(n)]  # M = L⁻¹, lower triangular
        for i in range(n):
            inv_l[i][i] = 1.0 / low[i][i]
            for j in range(i):
                t = low[i][j] * inv_l[j][j]
                for q in range(j + 1, i):
                    t = t + low[i][q] * inv_l[q][j]
                inv_l[i][j] = -t * inv_l[i][i]
    out = np.empty((n, n, k))
    for i in range(n):
        for j in range(i + 1):
            t = inv_l[i][i] * inv_l[i][j]
            for q in range(i + 1, n):
                t = t + inv_l[q][i] * inv_l[q][j]
            out[i, j] = t
            out[j, i] = t
    out[:, :, ~ok] = np.nan
    return np.moveaxis(out, -1, 0)


def _inv_or_nan(a: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.inv(a)
    except np.linalg.LinAlgError:
        return np.full_like(a, np.nan)
