"""``curve_fit``'s data: the checks of xdata, ydata and sigma, SciPy's NaN policy, and the
weights that sigma gives the residuals (a vector of 1/σ, or the inverse Cholesky factor of a
covariance), shared with ``curve_fit_batch`` (``_batch_inputs``) and its Dask front door."""

from __future__ import annotations

import numpy as np

from marquardt import _checks

__all__ = ["check_enough_points", "inverse_sigma", "prepare_curve_data"]


def inverse_sigma(s: np.ndarray) -> np.ndarray:
    """1/σ, the weights of the residuals, from finite standard deviations σ (any shape), which
    must be positive."""
    if np.any(s <= 0):
        raise ValueError("`sigma` must be positive. Received: sigma with minimum "
                         f"{float(s.min())!r}")
    return 1.0 / s


def check_enough_points(m: int, n: int, *, per_problem: bool = False) -> None:
    """At least as many data points (per problem, in a batch) as parameters. A TypeError, as
    SciPy's ``curve_fit`` raises (its message too), for one fit; ValueError in a batch."""
    if m < n:
        if per_problem:
            raise ValueError("`ydata` must have at least as many points per problem as there "
                             f"are parameters. Received: {m} data points for {n} parameters "
                             f"(p0 has length {n})")
        raise TypeError(f"The number of func parameters={n} must not exceed the number of "
                        f"data points={m}: `ydata` needs at least one point per parameter. "
                        f"Received: {m} data points for {n} parameters")


NAN_POLICIES = (None, "raise", "omit")


def _check_nan_policy(nan_policy) -> None:
    """SciPy's values of ``nan_policy``; 'propagate' is refused, as by SciPy."""
    if nan_policy == "propagate":
        raise ValueError("`nan_policy='propagate'` is not supported by this function.")
    if nan_policy not in NAN_POLICIES:
        raise ValueError("nan_policy must be one of {None, 'raise', 'omit'}. "
                         f"Received: nan_policy={nan_policy!r}")


def _omit_nan(x, y, sigma, nan_policy):
    """SciPy's ``nan_policy`` (``check_finite=False``): 'raise' on a NaN in xdata or ydata,
    'omit' drops the points (columns of x, rows and columns of a covariance sigma) that have
    one; 'propagate' is refused, as by SciPy."""
    _check_nan_policy(nan_policy)
    if nan_policy is None:
        return x, y, sigma
    has_nan = np.isnan(y)
    if isinstance(x, np.ndarray) and x.ndim >= 1:
        if y.ndim == 1 and x.shape[-1] != y.size:  # which x goes with which point?
            raise ValueError(f"`xdata` must have its last dimension equal to len(ydata)="
                             f"{y.size} for nan_policy={nan_policy!r} to find the points to "
                             f"omit. Received: xdata with shape {x.shape}, ydata with shape "
                             f"{y.shape}")
        x_nan = np.isnan(x)
        has_nan = has_nan | x_nan.any(axis=tuple(range(x_nan.ndim - 1)))
    if not has_nan.any():
        return x, y, sigma
    if nan_policy == "raise":
        raise ValueError("The input contains nan values: `xdata` or `ydata` has NaN at "
                         f"{int(has_nan.sum())} point(s) (nan_policy='raise').")
    keep = ~has_nan
    if isinstance(x, np.ndarray) and x.ndim >= 1:
        x = x[..., keep]
    if sigma is not None:
        sigma = np.asarray(sigma)
        if sigma.ndim == 1 and sigma.size == y.size:
            sigma = sigma[keep]
        elif sigma.ndim == 2:
            sigma = sigma[keep][:, keep]
    return x, y[keep], sigma


def prepare_curve_data(xdata, ydata, sigma, *, name_prefix: str = "", check_finite=True,
                       nan_policy=None):
    """Checked float64 arrays (xdata, ydata, weights kind, weights).

    As in SciPy: ``xdata`` that is not a list, tuple or array (None, an object the model
    knows, a table such as a pandas DataFrame whose columns the model reads by name) is passed
    to the model as it is; a scalar ``ydata`` is broadcast to the model's output (returned
    0-d; the caller broadcasts it); a scalar ``sigma`` weighs every point alike. Other array
    values (TensorFlow, JAX, a pandas Series) are converted like arrays."""
    passthrough = not isinstance(xdata, (list, tuple, np.ndarray)) and (
        not hasattr(xdata, "shape") or hasattr(xdata, "columns"))
    x = xdata if passthrough else _checks.as_float_array(xdata, f"{name_prefix}xdata")
    y = _checks.as_float_array(ydata, f"{name_prefix}ydata", ndim=(0, 1))
    _check_nan_policy(nan_policy)
    # SciPy: nan_policy acts where check_finite is False (its default when nan_policy is
    # given); an explicit check_finite=True checks first, and a NaN is a ValueError
    if not check_finite:
        x, y, sigma = _omit_nan(x, y, sigma, nan_policy)
    hint = (f". check_finite=True checks before nan_policy={nan_policy!r} acts (SciPy's "
            "meaning); leave check_finite out to let it act" if check_finite and
            nan_policy is not None else "")
    try:
        if check_finite or nan_policy is not None:
            if not passthrough:
                _checks.check_finite(x, f"{name_prefix}xdata")
        # ydata always: a non-finite value makes the residuals at p0 non-finite whatever the
        # model (SciPy's trf then raises "Residuals are not finite in the initial point"), and
        # the error should name the data rather than the residual function built from it
        _checks.check_finite(y, f"{name_prefix}ydata")
    except ValueError as exc:
        if hint:
            raise ValueError(f"{exc}{hint}") from None
        if check_finite or nan_policy is not None:
            raise
        raise ValueError(f"{exc}. check_finite=False skips the check, not the need: the "
                         "residuals would not be finite; pass nan_policy='omit' to leave such "
                         "points out") from None
    m = y.size
    if sigma is None:
        return x, y, "none", np.ones(m)
    s = _checks.as_float_array(sigma, "sigma", ndim=(0, 1, 2))
    _checks.check_finite(s, "sigma")
    if s.size == 1 and s.ndim <= 1:
        return x, y, "diag", inverse_sigma(np.broadcast_to(s.reshape(()), (m,)))
    if s.shape == (m,):
        return x, y, "diag", inverse_sigma(s)
    if s.shape == (m, m):
        try:
            chol = np.linalg.cholesky(s)
        except np.linalg.LinAlgError:
            raise ValueError("`sigma` given as a covariance matrix must be positive definite. "
                             "Received: a matrix that is not") from None
        return x, y, "full", np.linalg.inv(chol)
    raise ValueError(f"`sigma` must be a scalar or have shape (m,) or (m, m) with m={m}. "
                     f"Received: sigma with shape {s.shape}")
