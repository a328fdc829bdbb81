"""``curve_fit``: SciPy's signature and meaning, on the LM engine, in float64."""

from __future__ import annotations

import functools

from typing import Any, Callable

import numpy as np

from marquardt import _checks
from marquardt._errors import OutputError
from marquardt._backend.numpy import compiled_curve
from marquardt._core.functions import CurveModel
from marquardt._covariance import correlation_matrix, covariance_from_jacobian, standard_errors
from marquardt._curve_data import check_enough_points, prepare_curve_data
from marquardt._least_squares import Problem, solve_problem
from marquardt._leastsq_options import (LEASTSQ_OPTIONS, check_lm_method, leastsq_names,
                                       transposed)
from marquardt._values import is_jax_value, is_tensorflow_value
from marquardt._options import SolveOptions, check_jac
from marquardt._parameters import feasible_start, prepare_bounds, prepare_p0
from marquardt._status import Status

__all__ = ["curve_fit", "fit_curve", "minpack_info"]

_NDARRAY = np.ndarray
_F64 = np.dtype(np.float64)
_SCALAR = np.float64



#: ``leastsq`` options that SciPy's ``curve_fit`` passes on for ``method='lm'``, and the
#: ``least_squares`` option each becomes.


def _solve_options(kwargs: dict) -> dict:
    """``least_squares`` options from ``curve_fit``'s ``**kwargs``: SciPy's ``maxfev`` (the
    ``leastsq`` name) is ``max_nfev`` (0, leastsq's default, means our default), ``epsfcn`` is ``diff_step = √epsfcn``, ``factor`` the trust region's and ``diag``
    (scale factors of the parameters) is ``x_scale = 1/diag``; ``args`` is refused as by
    SciPy."""
    if not kwargs:
        return dict(_DEFAULT_OPTIONS)
    if "args" in kwargs:
        raise ValueError("'args' is not a supported keyword argument: `curve_fit` passes the "
                         "parameters to `f` itself. Received: args=" +
                         _checks.short_repr(kwargs["args"]))
    _checks.reject_unknown_kwargs(kwargs, "curve_fit", SolveOptions._fields + LEASTSQ_OPTIONS)
    return SolveOptions(**leastsq_names(kwargs))._asdict()


_DEFAULT_OPTIONS = SolveOptions()._asdict()


def _x_hint(x, y) -> str:
    """Where the model's wrong output shape may come from: an array ``xdata`` whose last
    dimension is not len(ydata) (SciPy passes any xdata to the model, as we do; a model of
    meshgrid arrays may ravel its output to match ydata)."""
    if isinstance(x, np.ndarray) and x.ndim >= 1 and y.ndim == 1 and x.shape[-1] != y.size:
        return f" (xdata has shape {x.shape}, ydata {y.shape})"
    return ""


def fit_curve(f: Callable, xdata: Any, ydata: Any, p0: Any = None, sigma: Any = None,
              absolute_sigma: bool = False, check_finite: bool | None = None,
              bounds: Any = (-np.inf, np.inf), method: str | None = None, jac: Any = None,
              nan_policy: str | None = None, **kwargs: Any):
    """``curve_fit``'s work, returning ``(popt, pcov, result)`` whatever the outcome (the
    command line and the NIST runner report failed fits instead of raising)."""
    return _fit_curve(f, xdata, ydata, p0, sigma, absolute_sigma, check_finite, bounds,
                      method, jac, nan_policy, kwargs, lean=False)


def _fit_curve(f, xdata, ydata, p0, sigma, absolute_sigma, check_finite, bounds, method, jac,
               nan_policy, kwargs: dict, *, lean: bool):
    """``fit_curve`` with ``curve_fit``'s ``**kwargs`` as the dict ``kwargs``. ``lean``: the
    caller reads only popt, pcov and the result's ``success``, ``status`` and ``message``
    (``curve_fit`` without ``full_output``): the result is left without its history and the
    statistics derived from pcov (``perr``, ``correlation``, ``chisq``, ``redchi``,
    ``dof``)."""
    if not callable(f):
        raise TypeError(f"`f` must be callable. Received: f={_checks.short_repr(f)}")
    check_lm_method(method)
    if kwargs.get("col_deriv"):  # leastsq's: a callable jac returns (n, m), its columns
        if callable(jac):
            jac = transposed(jac)
    kwargs.pop("col_deriv", None)
    options = _solve_options(kwargs)
    if jac is None:
        jac = "auto"
    check_jac(jac)
    if check_finite is None:
        check_finite = nan_policy is None
    x, y, kind, w = prepare_curve_data(xdata, ydata, sigma, check_finite=check_finite,
                                       nan_policy=nan_policy)
    p0_given = p0 is not None
    p0 = prepare_p0(p0, f)
    n = p0.size
    bounds = prepare_bounds(bounds, n)
    lb, ub = bounds
    if not p0_given:
        p0 = feasible_start(lb, ub)
    passthrough = not isinstance(x, np.ndarray)
    if y.ndim == 0:  # SciPy broadcasts a scalar ydata against the model's output
        y = np.broadcast_to(y, np.shape(np.asarray(f(x, *p0), dtype=np.float64))).copy()
        w = np.broadcast_to(w.reshape(-1)[:1], y.shape).copy() if kind != "full" else w
    m = y.size
    if m != 1:  # SciPy's rule: one data point may fit any number of parameters
        check_enough_points(m, n)
    user_jac = jac

    def weigh(r):
        if kind == "diag":
            return r * w
        if kind == "full":
            return w @ r
        return r

    # the residuals weigh(f(x, *p) - y) as host_fun returns them, written out per kind of
    # weights (a float64 array is np.asarray's answer itself); p, a float64 (n,) array, is
    # passed as the np.float64 scalars that unpacking it gives, made from its floats (two
    # thirds of the cost of iterating over the array)
    if kind == "diag":
        def host_fun(p):
            out = f(x, *map(_SCALAR, p.tolist()))
            if type(out) is not _NDARRAY or out.dtype is not _F64:
                out = np.asarray(out, dtype=np.float64)
            return (out - y) * w
    elif kind == "full":
        def host_fun(p):
            out = f(x, *map(_SCALAR, p.tolist()))
            if type(out) is not _NDARRAY or out.dtype is not _F64:
                out = np.asarray(out, dtype=np.float64)
            return w @ (out - y)
    else:  # no weights
        def host_fun(p):
            out = f(x, *map(_SCALAR, p.tolist()))
            if type(out) is not _NDARRAY or out.dtype is not _F64:
                out = np.asarray(out, dtype=np.float64)
            return out - y

    def jac_finish(out):  # a callable jac's (m, n), weighted (C reads it without this)
        jm = np.asarray(out, dtype=np.float64)
        if jm.ndim < 2:  # (np.atleast_2d's rule)
            jm = np.atleast_2d(jm)
        if jm.shape != (m, n):
            raise ValueError(f"`jac` must return an array of shape (m, n) = ({m}, {n}). "
                             f"Received: shape {jm.shape}")
        return jm * w[:, None] if kind == "diag" else weigh(jm)

    compiled, curve_model, exact = None, False, None
    if kind != "full" and y.ndim == 1:  # what host_fun is made of, for the native
        # executor to call f and form (f - y)·w in C (``native_model.ModelCall``)
        def finish(out):
            if type(out) is not _NDARRAY or out.dtype is not _F64:
                out = np.asarray(out, dtype=np.float64)
            return (out - y) * w if kind == "diag" else out - y

        weights = w if kind == "diag" else None
        curve_model = compiled_curve.eligible(x, y, jac)
        if curve_model:  # the model compiled once its fits paid for it
            compiled = compiled_curve.for_fit(f, x, y, weights, p0, lambda: returned.get("r0"))
        if compiled_curve.exact_eligible(x, y, jac):  # a TensorFlow model's, exact partials
            exact = compiled_curve.for_fit(f, x, y, weights, p0, None, exact=True)
        if exact is not None:  # its fits on the compiled form (``compiled_curve``)
            def host_fun(p):
                return exact.residuals(p)
            compiled = exact
        host_fun.curve = CurveModel(f, x, y, weights, finish, compiled,
                                    jac if callable(jac) else None, jac_finish)

    def host_complex(p):  # jac='cs': the model on complex parameters
        r = np.asarray(f(x, *p)) - y
        return w @ r if kind == "full" else (r * w if kind == "diag" else r)

    def host_jac(p):
        return jac_finish(user_jac(x, *p))

    def checked(out):
        if (out.shape if type(out) is np.ndarray else np.shape(out)) != y.shape:
            got = "None" if out is None else f"shape {np.shape(out)}"
            raise OutputError(f"`f(xdata, *p0)` must return shape {y.shape} like ydata. "
                              f"Received: {got}{_x_hint(x, y)}")
        return out - y

    returned = {}

    def probe(start):  # the weighted residuals at the start, what host_fun returns (r(p0))
        raw = f(x.copy() if not passthrough else x, *start)
        if isinstance(raw, np.ndarray) and raw.dtype.kind == "f":
            returned["dtype"] = raw.dtype  # a float32 model: float32-sized difference steps
        out = checked(raw)
        if is_jax_value(out):  # computed in float64 (``first_call``)
            return weigh(out)
        if is_tensorflow_value(out):
            returned["tensorflow"] = out.dtype.name == "float64"  # (its compiled form's rent)
            return out
        r0 = host_weighted(out)
        returned["r0"] = (start, r0)  # (the compiled residuals' check: ``compiled_curve``)
        return r0

    def host_weighted(out):
        return weigh(np.asarray(out, dtype=np.float64))

    def tensor_probe(start):
        if passthrough:
            raise TypeError("xdata is passed to the model as it is")
        from marquardt._backend.tensorflow.host_functions import call_with_tensors
        return checked(call_with_tensors(f, x, *start))

    def tensorflow():  # a model written with TensorFlow ops (a callable jac runs on the host)
        from marquardt._backend.tensorflow.host_functions import curve_fit_problem
        return curve_fit_problem(f, kind, "auto" if jac == "cs" else jac, x, y, w)

    def jax_problem():  # a model written with jax.numpy
        if passthrough:
            return None
        from marquardt._backend.jax.host_functions import curve_fit_problem
        return curve_fit_problem(f, kind, x, y, w)

    if exact is not None:  # residuals and exact partials compiled: TensorFlow is not called
        probe = exact.residuals
        jac = host_jac = exact.jacobian_function(host_fun)
    elif callable(jac) and hasattr(host_fun, "curve"):
        # the native loop calls the user's jac from C, as it calls f (``native_model``)
        host_jac = compiled_curve.native_jacobian(host_jac, host_fun, "callable", n, m)
    problem = Problem(probe=probe, tensor_probe=tensor_probe, host_fun=host_fun,
                      host_jac=host_jac if callable(jac) else None,
                      jac="callable" if callable(jac) else jac, tensorflow=tensorflow, n=n,
                      host_complex=host_complex, jax=None if passthrough else jax_problem,
                      output_dtype=lambda: returned.get("dtype"), who="f", start="p0",
                      call="f(xdata, *p0)")
    # a NumPy model's difference steps relative to its parameters' sizes, as MINPACK's in
    # SciPy's curve_fit (``marquardt._core.numdiff``: the start's magnitudes as the floor)
    res = solve_problem(problem, p0, bounds=bounds, method="lm", **options,
                        typical_steps=True, history=not lean)
    if compiled is None and curve_model:  # the model's rent (its evaluations in Python)
        if returned.get("tensorflow"):  # a TensorFlow model: its residuals and Jacobians
            compiled_curve.pay(f, x, n, res.nfev + (res.njev or 0), exact=True)
        elif "tensorflow" not in returned:
            compiled_curve.pay(f, x, n, res.nfev)
    # SciPy's convention: the χ² rescaling uses 2·cost whatever the loss.
    pcov = covariance_from_jacobian(res.jac, 2.0 * res.cost, absolute_sigma=absolute_sigma,
                                    singular="inf")
    if lean:
        return res.x, pcov, res
    dof = m - n
    res.pcov = pcov
    res.perr = standard_errors(pcov)
    res.correlation = correlation_matrix(pcov, res.perr)
    res.chisq = 2.0 * res.cost
    res.dof = dof
    res.redchi = res.chisq / dof if dof > 0 else np.inf
    return res.x, pcov, res


@functools.cache
def _ipvt_base() -> int:
    """1 where the installed SciPy's ``leastsq`` returns MINPACK's ``ipvt`` counted from 1 (the
    Fortran MINPACK), 0 where from 0 (SciPy 1.17's C MINPACK, whose own covariance code indexes
    with it directly). Asked once, of a two-parameter linear problem whose pivoted QR puts the
    second column first."""
    from scipy.optimize import leastsq

    info = leastsq(lambda p: np.array([p[0], 10.0 * p[1]]), [1.0, 1.0], full_output=True)[2]
    return int(np.min(info["ipvt"]))


def minpack_info(res) -> dict:
    """SciPy's ``infodict`` of ``curve_fit(..., full_output=True)`` for ``method='lm'``:
    ``nfev``, ``fvec`` (the weighted residuals), and MINPACK's QR of the final Jacobian
    J P = Q R: ``fjac`` (n, m), whose transpose's first n rows hold R in their upper
    triangle, ``ipvt`` (P as column indices, counted from 0 or 1 as the installed SciPy's
    ``leastsq`` counts them: ``_ipvt_base``) and ``qtf`` = (Qᵀ fvec)[:n]; also
    ``njev``, ``nit`` and ``result`` (marquardt's ``OptimizeResult``)."""
    from scipy.linalg import qr

    j = np.asarray(res.jac, dtype=np.float64)
    m, n = j.shape
    q, r, perm = qr(j, mode="economic", pivoting=True)
    fjac = np.zeros((m, n))
    k = min(m, n)
    fjac[:k, :] = r[:k, :]
    return {"nfev": res.nfev, "fvec": np.asarray(res.fun), "fjac": fjac.T.copy(),
            "ipvt": (perm + _ipvt_base()).astype(np.int32),
            "qtf": (q.T @ np.asarray(res.fun))[:n],
            "njev": res.njev, "nit": res.nit, "result": res}



#: marquardt's (SciPy ``least_squares``') status -> MINPACK ``lmder``'s ``info``, which SciPy's
#: ``curve_fit(method='lm', full_output=True)`` returns as ``ier`` (MINPACK User Guide, Moré,
#: Garbow and Hillstrom 1980, §4 "lmder"): 1 ftol, 2 xtol, 3 both, 4 gtol (orthogonality).
_MINPACK_IER = {Status.FTOL: 1, Status.XTOL: 2, Status.FTOL_XTOL: 3, Status.GTOL: 4,
                Status.DAMPING_LIMIT: 1}


def minpack_ier(status: int) -> int:
    """SciPy's ``ier`` for a ``curve_fit`` that ended with ``status`` (other statuses, such as
    a callback's stop, are returned as they are)."""
    return _MINPACK_IER.get(Status(status), int(status))


def curve_fit(
    f: Callable,
    xdata: Any,
    ydata: Any,
    p0: Any = None,
    sigma: Any = None,
    absolute_sigma: bool = False,
    check_finite: bool | None = None,
    bounds: Any = (-np.inf, np.inf),
    method: str | None = None,
    jac: str | Callable | None = None,
    *,
    full_output: bool = False,
    nan_policy: str | None = None,
    **kwargs: Any,
):
    """Fit ``f(xdata, *params) ≈ ydata`` by weighted least squares (Levenberg-Marquardt).

    Minimises Σᵢ ((f(xᵢ; p) − yᵢ)/σᵢ)² (or rᵀΣ⁻¹r for a full covariance ``sigma``), with
    SciPy's signature and meaning for every argument, its errors and its warnings.

    Args:
        f: the model ``f(x, *params)``, returning shape (m,); called first with NumPy values
            as SciPy calls it. Written in NumPy, it runs as in SciPy without TensorFlow;
            written with TensorFlow ops (it returns a tensor), it receives tensors and gets
            exact autodiff Jacobians; written with ``jax.numpy`` (it returns a JAX array),
            the fit is one ``jax.jit`` solve with exact Jacobians, in float64 (docs/jax.md).
            A NumPy model that is one closed-form expression of its parameters and points
            (``a * np.exp(-b * t) + c``), fitted with differences again and again, is
            compiled once its fits have paid for it (120,000 evaluations; 10,000 where it is
            on disk: ``_backend/numpy/compiled_curve.py``): each later fit calls ``f`` once,
            at p0, to check the compiled form, and the results agree with ``f``'s to the
            differences' accuracy. A TensorFlow model of that kind is captured from its graph
            after 600 evaluations (100 where on disk) and its later fits run on the compiled
            residuals and exact partials without calling it: like a ``tf.function``, it keeps
            what it read from Python when it was captured. ``MARQUARDT_NATIVE=0`` turns both
            off.
        xdata: the independent variable(s): shape (m,), or (k, m) for k variables; anything
            else (None, an object) is passed to ``f`` as it is, as in SciPy.
        ydata: the dependent data, shape (m,), or a scalar broadcast to ``f``'s output.
        p0: initial parameters (n,); default ones, with n read from ``f``'s signature, moved
            inside ``bounds`` as SciPy does (the middle of a finite [lb, ub], lb + 1 or ub − 1
            where one bound is finite). A p0 of more dimensions is flattened, as SciPy's
            ``curve_fit`` (method 'lm') flattens it.
        sigma: uncertainties of ``ydata``: a scalar, standard deviations (m,) or a
            covariance (m, m).
        absolute_sigma: if True, ``sigma`` is absolute and ``pcov`` is not rescaled by the
            reduced χ²; if False (default) only relative weights matter.
        check_finite: refuse NaN or Inf in the inputs (ValueError); default True unless
            ``nan_policy`` is given (SciPy's rule).
        bounds: ``(lb, ub)`` on the parameters, or a ``scipy.optimize.Bounds``. Unlike
            SciPy's ``lm``, marquardt's LM takes bounds itself; a p0 on a bound starts 1e-10
            inside it, as with SciPy's ``trf`` (``least_squares``).
        method: ``None`` or ``'lm'``; SciPy's ``'trf'`` and ``'dogbox'`` are refused with a
            ValueError that says why (bounds and robust losses need no other method here).
        jac: ``None`` or ``'auto'`` (default: exact autodiff for a TensorFlow model,
            ``'2-point'`` for a NumPy one), ``'forward'``, ``'reverse'``, ``'2-point'``,
            ``'3-point'``, ``'cs'`` or a callable ``jac(x, *params) -> (m, n)``. A NumPy
            model's difference steps are relative to each parameter's size, as MINPACK's in
            SciPy's ``curve_fit`` (and ``least_squares``' here): hᵢ = diff_stepᵢ · max(|pᵢ|,
            |p0ᵢ|) (``diff_step`` one number or one per parameter; |p0ᵢ| = 0 counts as 1;
            ``marquardt._core.numdiff``), so that parameters of 1e-7 and of 1e3 are both
            moved by about ε^½ of themselves.
        full_output: also return SciPy's ``infodict, mesg, ier`` (see Returns).
        nan_policy: ``None``, ``'raise'`` or ``'omit'`` (drop the points with a NaN in
            ``xdata`` or ``ydata``), as in SciPy ≥ 1.11; ``'propagate'`` is refused.
        **kwargs: options of ``marquardt.least_squares`` (ftol, xtol, gtol, x_scale, loss,
            f_scale, diff_step, max_nfev, verbose, callback, damping, solver), and SciPy
            ``leastsq``'s ``maxfev`` (= max_nfev), ``epsfcn`` (diff_step = √epsfcn),
            ``diag`` (x_scale = 1/diag), ``factor`` (the trust region's initial radius
            factor, ``TrustRegion(factor=...)``: MINPACK's meaning; our default 1, SciPy
            ``trf``'s, where MINPACK's is 100) and ``col_deriv`` (True: a callable ``jac``
            returns (n, m)).

    Returns:
        ``(popt, pcov)``, or with ``full_output=True`` ``(popt, pcov, infodict, mesg, ier)``:
        ``infodict`` holds SciPy's ``nfev``, ``fvec``, ``fjac``, ``ipvt``, ``qtf`` and
        marquardt's ``njev``, ``nit`` and ``result``, the ``OptimizeResult`` with ``pcov``,
        ``perr`` (standard errors), ``correlation``, ``chisq``, ``redchi``, ``dof`` and the
        history; ``mesg`` the termination message; ``ier`` MINPACK's ``info`` as SciPy's
        ``curve_fit`` (``method='lm'``) returns it: 1 ftol, 2 xtol, 3 both, 4 gtol (a minimum
        to working precision, ``Status.DAMPING_LIMIT``, is 1); ``infodict['result'].status``
        keeps marquardt's status (the numbering of SciPy's ``least_squares``). ``pcov`` comes from the SVD
        of the Jacobian of the weighted residuals at ``popt`` (``marquardt._covariance``).

    Raises:
        RuntimeError: "Optimal parameters not found: ..." when the fit did not converge
            (``max_nfev`` reached, non-finite values), as in SciPy; not when a callback
            stopped it.
        ValueError, TypeError: invalid arguments, as SciPy raises them.

    Warns:
        OptimizeWarning: the covariance could not be estimated (a rank-deficient Jacobian,
            or no more points than parameters with relative sigma); ``pcov`` is then inf.

    Example:
        >>> import numpy as np, tensorflow as tf, marquardt
        >>> x = np.linspace(0, 4, 50); y = 2.5 * np.exp(-1.3 * x) + 0.5
        >>> popt, pcov = marquardt.curve_fit(lambda x, a, b, c: a * tf.exp(-b * x) + c, x, y,
        ...                                  p0=[1, 1, 0])
        >>> np.round(popt, 6).tolist()
        [2.5, 1.3, 0.5]
    """
    popt, pcov, res = _fit_curve(f, xdata, ydata, p0, sigma, absolute_sigma, check_finite,
                                 bounds, method, jac, nan_policy, kwargs,
                                 lean=not full_output)
    if not res.success and res.status != Status.CALLBACK:
        raise RuntimeError("Optimal parameters not found: " + res.message)
    if not full_output:
        return popt, pcov
    return popt, pcov, minpack_info(res), res.message, minpack_ier(res.status)
