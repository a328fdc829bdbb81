"""``curve_fit``: SciPy's signature and meaning, on the LM engine, in float64."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from marquardt import _checks
from marquardt._covariance import correlation_matrix, covariance_from_jacobian, standard_errors
from marquardt._least_squares import Problem, solve_problem
from marquardt._options import SolveOptions, check_jac
from marquardt._parameters import prepare_bounds, prepare_p0

__all__ = ["check_enough_points", "curve_fit", "inverse_sigma", "prepare_curve_data"]



def inverse_sigma(s: np.ndarray) -> np.ndarray:
    """1/σ, the weights of the residuals, from finite standard deviations σ (any shape), which
    must be positive."""
    if np.any(s <= 0):
        raise ValueError("`sigma` must be positive. Received: sigma with minimum "
                         f"{float(s.min())!r}")
    return 1.0 / s


def check_enough_points(m: int, n: int, *, per_problem: bool = False) -> None:
    """At least as many data points (per problem, in a batch) as parameters."""
    if m < n:
        each = " per problem" if per_problem else ""
        raise ValueError(f"`ydata` must have at least as many points{each} as there are "
                         f"parameters. Received: {m} data points for {n} parameters (p0 has "
                         f"length {n})")


def prepare_curve_data(xdata, ydata, sigma, *, name_prefix: str = ""):
    """Checked float64 arrays (xdata, ydata, weights kind, weights)."""
    x = _checks.as_float_array(xdata, f"{name_prefix}xdata")
    y = _checks.as_float_array(ydata, f"{name_prefix}ydata", ndim=1)
    _checks.check_finite(x, f"{name_prefix}xdata")
    _checks.check_finite(y, f"{name_prefix}ydata")
    m = y.size
    if x.ndim >= 1 and x.shape[-1] != m:
        raise ValueError(f"`xdata` must have its last dimension equal to len(ydata)={m}. "
                         f"Received: xdata with shape {x.shape}, ydata with shape {y.shape}")
    if sigma is None:
        return x, y, "none", np.ones(m)
    s = _checks.as_float_array(sigma, "sigma", ndim=(1, 2))
    _checks.check_finite(s, "sigma")
    if s.shape == (m,):
        return x, y, "diag", inverse_sigma(s)
    if s.shape == (m, m):
        try:
            chol = np.linalg.cholesky(s)
        except np.linalg.LinAlgError:
            raise ValueError("`sigma` given as a covariance matrix must be positive definite. "
                             "Received: a matrix that is not") from None
        return x, y, "full", np.linalg.inv(chol)
    raise ValueError(f"`sigma` must have shape (m,) or (m, m) with m={m}. "
                     f"Received: sigma with shape {s.shape}")


def curve_fit(
    f: Callable,
    xdata: Any,
    ydata: Any,
    p0: Any = None,
    sigma: Any = None,
    absolute_sigma: bool = False,
    check_finite: bool = True,
    bounds: tuple = (-np.inf, np.inf),
    method: str | None = None,
    jac: str | Callable = "auto",
    *,
    full_output: bool = False,
    **kwargs: Any,
):
    """Fit ``f(xdata, *params) ≈ ydata`` by weighted least squares (Levenberg-Marquardt).

    Minimises Σᵢ ((f(xᵢ; p) − yᵢ)/σᵢ)² (or rᵀΣ⁻¹r for a full covariance ``sigma``), with
    SciPy's meaning for every argument.

    Args:
        f: the model ``f(x, *params)``, returning shape (m,); called first with NumPy values
            as SciPy calls it. Written in NumPy, it runs as in SciPy without TensorFlow;
            written with TensorFlow ops (it returns a tensor), it receives tensors and gets
            exact autodiff Jacobians.
        xdata: the independent variable(s): shape (m,), or (k, m) for k variables.
        ydata: the dependent data, shape (m,).
        p0: initial parameters (n,); default ones, with n read from ``f``'s signature.
        sigma: uncertainties of ``ydata``: standard deviations (m,) or a covariance (m, m).
        absolute_sigma: if True, ``sigma`` is absolute and ``pcov`` is not rescaled by the
            reduced χ²; if False (default) only relative weights matter.
        check_finite: kept for SciPy compatibility; inputs are always checked (NaN or Inf
            raise ``ValueError``).
        bounds: ``(lb, ub)`` on the parameters.
        method: ``None`` or ``'lm'``.
        jac: ``'auto'`` (exact autodiff for a TensorFlow model, ``'2-point'`` for a NumPy one),
            ``'forward'``, ``'reverse'``, ``'2-point'``, ``'3-point'`` or a callable
            ``jac(x, *params) -> (m, n)``.
        full_output: also return the ``OptimizeResult``, which adds ``pcov``, ``perr``
            (standard errors), ``correlation``, ``chisq``, ``redchi`` and ``dof``.
        **kwargs: options of ``marquardt.least_squares`` (ftol, xtol, gtol, x_scale, loss,
            f_scale, diff_step, max_nfev, verbose, callback, damping, solver).

    Returns:
        ``(popt, pcov)``, or ``(popt, pcov, result)`` with ``full_output=True``. ``pcov`` is
        computed from the SVD of the Jacobian of the weighted residuals at ``popt`` (see
        ``marquardt._covariance``); its diagonal's square roots are the standard errors.

    Example:
        >>> import numpy as np, tensorflow as tf, marquardt
        >>> x = np.linspace(0, 4, 50); y = 2.5 * np.exp(-1.3 * x) + 0.5
        >>> popt, pcov = marquardt.curve_fit(lambda x, a, b, c: a * tf.exp(-b * x) + c, x, y,
        ...                                  p0=[1, 1, 0])
        >>> np.round(popt, 6).tolist()
        [2.5, 1.3, 0.5]
    """
    _checks.reject_unknown_kwargs(kwargs, "curve_fit", SolveOptions._fields)
    if not callable(f):
        raise TypeError(f"`f` must be callable. Received: f={_checks.short_repr(f)}")
    if method not in (None, "lm"):
        raise ValueError(f"`method` must be None or 'lm'. Received: method={method!r}")
    x, y, kind, w = prepare_curve_data(xdata, ydata, sigma)
    p0 = prepare_p0(p0, f)
    n, m = p0.size, y.size
    check_enough_points(m, n)
    lb, ub = prepare_bounds(bounds, n)
    user_jac = jac
    check_jac(jac)

    def weigh(r):
        if kind == "diag":
            return r * w
        if kind == "full":
            return w @ r
        return r

    def host_fun(p):
        return weigh(np.asarray(f(x, *p), dtype=np.float64) - y)

    def host_jac(p):
        jm = np.asarray(user_jac(x, *p), dtype=np.float64)
        return jm * w[:, None] if kind == "diag" else weigh(jm)

    def checked(out):
        if np.shape(out) != y.shape:
            raise ValueError(f"`f(xdata, *p0)` must return shape {y.shape} like ydata. "
                             f"Received: shape {np.shape(out)}")
        return out - y

    def probe():
        return checked(f(x.copy(), *p0))

    def tensor_probe():
        import tensorflow as tf
        return checked(f(tf.constant(x), *[tf.constant(v) for v in p0]))

    def tensorflow():  # a model written with TensorFlow ops (a callable jac runs on the host)
        from marquardt._backend.tensorflow.host_functions import curve_fit_problem
        return curve_fit_problem(f, kind, jac, x, y, w)

    options = SolveOptions(**kwargs)._asdict()
    problem = Problem(probe=probe, tensor_probe=tensor_probe, host_fun=host_fun,
                      host_jac=host_jac if callable(jac) else None,
                      jac="callable" if callable(jac) else jac, tensorflow=tensorflow, n=n)
    res = solve_problem(problem, p0, bounds=(lb, ub), method="lm", **options)
    # SciPy's convention: the χ² rescaling uses 2·cost whatever the loss.
    pcov = covariance_from_jacobian(res.jac, 2.0 * res.cost, absolute_sigma=absolute_sigma)
    if not full_output:
        return res.x, pcov
    dof = m - n
    res.pcov = pcov
    res.perr = standard_errors(pcov)
    res.correlation = correlation_matrix(pcov)
    res.chisq = 2.0 * res.cost
    res.dof = dof
    res.redchi = res.chisq / dof if dof > 0 else np.inf
    return res.x, pcov, res

