"""``least_squares``: SciPy's signature, the LM core, exact autodiff Jacobians, float64.

A single problem runs on the host executor (``marquardt._core.host``). What the user's
function is decides how it is called: one that returns NumPy is called as SciPy calls it,
with finite differences or its ``jac``, and TensorFlow is never imported; one written with
TensorFlow ops is compiled once for its residuals and exact Jacobian
(``marquardt._backend.tensorflow.host_functions``).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from marquardt import _checks, _probe, _restart
from marquardt._core import host, numdiff
from marquardt._core.functions import numpy_evaluator
from marquardt._core.records import replaced
from marquardt._compiled_fits import jax_fit, tensorflow_fit
from marquardt._errors import NoGradientError, NonFiniteJacobianError
from marquardt._options import (AUTODIFF_MODES, DEFAULT_DAMPING, DIFFERENCE_MODES, DEFAULT_FTOL, DEFAULT_GTOL,
                                DEFAULT_XTOL, WorkerMap, check_jac, check_loss,
                                check_scipy_options, loop_config,
                                with_jacobian_calls)
from marquardt._outcome import build_result, make_hook
from marquardt._parameters import (check_within_bounds, prepare_bounds, start_values,
                                   strictly_feasible)
from marquardt._result import OptimizeResult
from marquardt._status import Status
from marquardt._termination import machine_epsilon
from marquardt._values import is_jax_value, is_tensorflow_value, x64_if_jax

__all__ = ["least_squares", "Problem", "solve_problem", "output_epsilon"]

METHODS = ("lm",)
_INF = float("inf")


class Problem(NamedTuple):
    """A single least-squares problem as the front doors hand it to ``solve_problem``.

    Attributes:
        probe: ``probe(x0) -> r``: the user's function at the start x0 (the one
            ``solve_problem`` starts from: inside the bounds), called with NumPy values; what
            it returns (NumPy or a TensorFlow tensor) decides the backend.
        host_fun: ``host_fun(x) -> r`` for x a NumPy (n,) vector (SciPy's calling convention).
        host_jac: ``host_jac(x) -> J`` (m, n), the user's callable ``jac``, or None.
        jac: the user's ``jac`` mode (``auto``, ``forward``, ``reverse``, ``2-point``,
            ``3-point``) or ``"callable"``.
        tensor_probe: ``tensor_probe(x0) -> r``: the same call with TensorFlow values, for a
            function that fails on NumPy values or, with an autodiff ``jac``, that TensorFlow
            may differentiate although it returned NumPy (plain arithmetic on its parameters).
        tensorflow: ``tensorflow() -> (residual_fn, data, tf_jac, key)``, the compiled form
            for a TensorFlow model: ``residual_fn(x, *data)`` maps (1, n) to (1, m); ``key``
            identifies the compiled functions to reuse (None: not cached). Imported lazily:
            called only when ``probe`` returned a tensor.
        n: the number of parameters.
        host_complex: ``host_complex(x) -> r`` on complex x, for ``jac='cs'`` (default:
            ``host_fun``).
        jax: ``jax() -> (one, data, key)``, the compiled form for a JAX function:
            ``one(x, *data)`` maps (n,) to (m,) (``_backend/jax/host_functions.py``); called
            only when ``probe`` returned a JAX array.
        output_dtype: ``output_dtype() -> dtype | None``, after ``probe``: the dtype of what
            the user's function returned when ``probe`` converts it (``curve_fit`` subtracts
            ydata in float64), so that finite differences of a float32 model take
            float32-sized steps; None: ``probe``'s own dtype.
        who, start, call: how errors name the user's function, its starting point and the
            call at that point: ``least_squares``' ``fun``, ``x0`` and ``fun(x0)``;
            ``curve_fit``'s ``f``, ``p0`` and ``f(xdata, *p0)``.
    """

    probe: Callable
    host_fun: Callable
    host_jac: Callable | None
    jac: str
    tensorflow: Callable
    n: int
    tensor_probe: Callable | None = None
    host_complex: Callable | None = None
    jax: Callable | None = None
    output_dtype: Callable[[], Any] | None = None
    who: str = "fun"
    start: str = "x0"
    call: str = "fun(x0)"


def least_squares(
    fun: Callable,
    x0: Any,
    jac: str | Callable = "auto",
    bounds: tuple = (-np.inf, np.inf),
    method: str = "lm",
    ftol: float | None = DEFAULT_FTOL,
    xtol: float | None = DEFAULT_XTOL,
    gtol: float | None = DEFAULT_GTOL,
    x_scale: str | Any = "jac",
    loss: str | Callable = "linear",
    f_scale: float = 1.0,
    diff_step: float | Sequence[float] | np.ndarray | None = None,
    tr_solver: str | None = None,
    tr_options: dict | None = None,
    jac_sparsity: Any = None,
    max_nfev: int | None = None,
    verbose: int = 0,
    args: Sequence = (),
    kwargs: dict | None = None,
    callback: Callable | None = None,
    workers: int | Callable | None = None,
    *,
    damping: Any = DEFAULT_DAMPING,
    solver: Any = "svd",
    **unknown: Any,
) -> OptimizeResult:
    """Solve a nonlinear least-squares problem with Levenberg-Marquardt (SciPy's signature).

    Arguments up to ``workers`` are SciPy's, in SciPy's order and with its meanings;
    ``damping`` and ``solver`` are keyword-only additions.

    Finds a local minimum of the cost F(x) = ½ Σᵢ f_scale² ρ((rᵢ(x)/f_scale)²) (ρ(z) = z for
    ``loss='linear'``, i.e. F = ½‖r(x)‖²), subject to lb ≤ x ≤ ub, by iterating

        (J̃ᵀJ̃ + λD) δ = −J̃ᵀr̃,   x ← x + δ if the cost really decreases,

    where J̃, r̃ are the Jacobian and residuals (rescaled for robust losses), D the damping
    matrix (``x_scale``) and λ the damping adapted by ``damping``.

    Args:
        fun: ``fun(x, *args, **kwargs) -> r``, the 1-D residuals (m,) (a scalar is one
            residual, m = 1, as in SciPy). It is called first as
            SciPy calls it, with x a float64 NumPy array (n,). Written in NumPy, it runs as in
            SciPy, and TensorFlow is never imported. Written with TensorFlow ops (it returns a
            tensor), it gets its exact Jacobian by autodiff, traced once; from its second
            fit on, the whole solve runs as one compiled loop. Written with ``jax.numpy`` (it
            returns a JAX array), the whole solve runs under ``jax.jit`` with exact
            ``jax.jacfwd``/``jacrev`` Jacobians, in float64, compiled once per function and
            shapes (docs/jax.md).
        x0: initial guess, shape (n,) (a scalar is treated as (1,)).
        jac: ``'auto'`` (default): exact autodiff (forward mode when n < m, reverse
            otherwise) for a function written with TensorFlow ops, SciPy's ``'2-point'`` for
            one that returns NumPy; ``'forward'``, ``'reverse'`` (autodiff; a function that
            returns NumPy is then called with tensors); finite differences ``'2-point'`` /
            ``'3-point'``; ``'cs'``, the complex step (n calls, exact to rounding for
            complex-safe NumPy code; exact autodiff for a TensorFlow function); or a callable
            ``jac(x, *args, **kwargs) -> J`` of shape (m, n) (a 1-D J is one row, as in
            SciPy; sparse matrices and ``LinearOperator`` are refused, as by SciPy's ``lm``).
        bounds: ``(lb, ub)``, scalars or arrays of shape (n,), or a
            ``scipy.optimize.Bounds``; ±inf for none. Steps are
            projected onto the box and parameters held at an active bound are frozen
            (a projected active-set LM; Kanzow, Yamashita & Fukushima 2004). An x0 on (or
            within 1e-10·max(1, |bound|) of) a finite bound starts that far inside it, as
            SciPy's ``trf`` starts (``make_strictly_feasible``).
        method: ``'lm'`` (the only method; use ``marquardt.scipy`` for SciPy's ``trf``).
        ftol, xtol, gtol: termination tolerances with SciPy's meanings (see
            ``marquardt._termination``); None disables a test (SciPy's ``trf`` rule; its
            ``lm`` needs all three ≥ ε). A tolerance below machine epsilon ε warns that it
            disables its test, and all three below ε is a ValueError, as in SciPy. Defaults
            1e-15, 1e-12, 1e-12 (SciPy: 1e-8), which the NIST certified accuracy needs.
        x_scale: ``'jac'`` (default; D = running max of diag(JᵀJ), Marquardt 1963 / MINPACK's
            ``mode=1``), or characteristic scales of the parameters (D = diag(1/x_scale²);
            ``x_scale=1.0`` gives Levenberg's D = I). A fit with ``'jac'`` that ends
            ``STALLED`` (no step lowers the cost, away from a stationary point: a saturated
            parameter that Moré's D let run to where its column vanishes) is fitted again
            from x0 with ``x_scale=1.0`` with the evaluations left, and the lower cost is
            returned; ``nfev`` and ``njev`` count both fits, ``callback`` sees both, and
            ``nit`` and ``history`` are the returned fit's.
        loss: ``'linear'``, ``'soft_l1'``, ``'huber'``, ``'cauchy'`` or ``'arctan'``, or a
            callable ``loss(z) -> (3, m)`` array of ρ(z), ρ′(z), ρ″(z) for z = (r/f_scale)²
            (SciPy's convention). ``res.jac`` is then the rescaled Jacobian J̃ (J̃ᵀJ̃ the
            Gauss-Newton Hessian of the robust cost), as in SciPy.
        f_scale: soft margin between inlier and outlier residuals (> 0), in residual units.
        diff_step: relative step for finite differences, one number or one per parameter
            (array_like of n, as SciPy takes it; default ε^(1/2) or ε^(1/3), ε the
            machine epsilon of the residuals' dtype: float32 residuals get wider steps). The
            step of parameter i is diff_stepᵢ · max(|xᵢ|, |x0ᵢ|) (|x0ᵢ| = 0 counts as 1): relative
            to the parameter, as SciPy documents it ("x * diff_step"), where SciPy's code takes
            max(|xᵢ|, 1), which moves a parameter of 1e-7 by 10 % of itself
            (``marquardt._core.numdiff``).
        tr_solver, tr_options: accepted as SciPy's ``lm`` accepts them (None, ``'exact'`` or
            ``'lsmr'``; a dict) and, as there, not used: the damped system is solved densely
            by ``solver``.
        jac_sparsity: must be None (SciPy's ``lm`` refuses it too; marquardt's Jacobians are
            dense).
        max_nfev: the most calls of ``fun``, a hard limit past the start (whose residuals
            and Jacobian are always formed, as SciPy's ``lm`` forms them); finite differences
            count their calls, as in SciPy's ``lm``. A step is tried only where the Jacobian
            that would follow its acceptance fits too, so that the result's ``jac`` (and
            ``curve_fit``'s pcov) is always at the returned x: below 1 + 2 Jacobians' calls
            no step is taken (SciPy's ``lm`` overruns the limit instead). Default
            ``max(1000, 200 * (n + 1))`` steps' worth:
            that many times (1 + the calls one Jacobian costs) (MGH17 from NIST's first
            start needs 588 steps).
        verbose: 0 silent, 1 a final report, 2 a progress table per iteration.
        args, kwargs: extra arguments of ``fun`` (and ``jac``). NumPy arrays among ``args`` are
            passed to the compiled solve as float64 tensors, so re-fitting new data of the
            same shape does not retrace.
        callback: called after each iteration, with SciPy's two signatures: a callback
            whose only parameter is named ``intermediate_result`` gets an ``OptimizeResult``
            holding SciPy's fields (``x``, ``fun``: the residuals at x, ``nit``, ``nfev``,
            ``cost``) and the ``IterationSummary`` fields; any other gets a copy of x,
            ``callback(x)``. Returning True or raising ``StopIteration`` stops the solve
            (status ``CALLBACK``).
            Unlike SciPy's ``lm``, which ignores it with a warning, the callback is called.
        workers: how the n points of a finite-difference Jacobian are evaluated, as in
            SciPy: None or 1 in turn, an int k > 1 (or -1, every CPU) in a
            ``multiprocessing.Pool`` of k processes (``fun`` must pickle), or a map-like
            callable ``workers(f, xs)``. Results are identical to a serial run.
        damping: ``'trust-region'`` (default: λ from a trust radius, as MINPACK's ``lmder``
            behind SciPy's ``lm``, and SciPy's ``trf``), ``'nielsen'`` (Nielsen's gain-ratio
            rule) or ``'trainlm'``, or a policy object (``marquardt.TrustRegion(...)``,
            ``marquardt.Nielsen(...)``, ``marquardt.TrainLM(...)``). The trust radius is the
            default since issue #14: it solves more hard starts (MGH 41/57 against Nielsen's
            39), reaches SciPy trf's robust cost on every case of ``benchmarks/robust.py``
            (132/132 against 129) and is as accurate on NIST (docs/benchmarks.md).
        solver: ``'svd'`` (default, accurate), ``'eigen'``, ``'cholesky'`` or ``'kernel'``.

    Returns:
        ``OptimizeResult`` with SciPy's fields ``x, cost, fun, jac, grad, optimality,
        active_mask, nfev, njev, status, message, success`` and ours ``nit, damping,
        history``.

    Raises:
        ValueError, TypeError: invalid arguments, or a residual that is not 1-D or not finite
            at ``x0``, each naming the argument and what was received.

    Example:
        >>> import numpy as np, tensorflow as tf, marquardt
        >>> t = np.linspace(0, 3, 20); y = 2.0 * np.exp(-1.3 * t)
        >>> res = marquardt.least_squares(lambda p: p[0] * tf.exp(-p[1] * t) - y, [1.0, 1.0])
        >>> np.round(res.x, 6).tolist()
        [2.0, 1.3]

    References:
        K. Levenberg (1944); D. W. Marquardt, SIAM J. Appl. Math. 11, 431-441 (1963);
        J. J. Moré, "The Levenberg-Marquardt algorithm: implementation and theory" (1978);
        H. B. Nielsen (1999).
    """
    _checks.reject_unknown_kwargs(unknown, "least_squares")
    check_scipy_options(tr_solver, tr_options, jac_sparsity)
    if not callable(fun):
        raise TypeError(f"`fun` must be callable. Received: fun={_checks.short_repr(fun)}")
    x0 = start_values(x0, "x0")
    n = x0.size
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, dict):
        raise TypeError(f"`kwargs` must be a dict. Received: kwargs={_checks.short_repr(kwargs)}")
    if not isinstance(args, (tuple, list)):
        args = (args,)
    check_jac(jac)

    def tensorflow():
        from marquardt._backend.tensorflow.host_functions import least_squares_problem
        return least_squares_problem(fun, "auto" if jac == "cs" else jac, args, kwargs)

    def tensor_probe(start):
        from marquardt._backend.tensorflow.host_functions import call_with_tensors
        return call_with_tensors(lambda x: fun(x, *args, **kwargs), start)

    def jax_problem():
        from marquardt._backend.jax.host_functions import least_squares_problem
        return least_squares_problem(fun, args, kwargs)

    problem = Problem(
        probe=lambda start: fun(start.copy(), *args, **kwargs), tensor_probe=tensor_probe,
        host_fun=_BoundFunction(fun, args, kwargs),
        host_jac=(lambda x: jac(x, *args, **kwargs)) if callable(jac) else None,
        jac="callable" if callable(jac) else jac, tensorflow=tensorflow, n=n, jax=jax_problem)
    with WorkerMap(workers) as mapper:
        return solve_problem(
            problem, x0, bounds=bounds, method=method, ftol=ftol, xtol=xtol, gtol=gtol,
            x_scale=x_scale, loss=loss, f_scale=f_scale, diff_step=diff_step,
            max_nfev=max_nfev, verbose=verbose, callback=callback, damping=damping,
            solver=solver, workers=mapper, typical_steps=True)


class _BoundFunction:
    """``fun`` with its ``args`` and ``kwargs`` bound, picklable (for ``workers``)."""

    def __init__(self, fun, args, kwargs):
        self.fun, self.args, self.kwargs = fun, tuple(args), dict(kwargs)

    def __call__(self, x):
        return self.fun(x, *self.args, **self.kwargs)


def _host_jac_mode(problem: Problem):
    """The NumPy evaluator's ``jac``: the callable, or a difference rule."""
    if problem.jac == "callable":
        return problem.host_jac
    return "2-point" if problem.jac == "auto" else problem.jac


def solve_problem(problem: Problem, x0: np.ndarray, *, bounds, method, ftol, xtol, gtol,
                  x_scale, loss, f_scale, diff_step, max_nfev, verbose, callback, damping,
                  solver, workers: Callable | None = None,
                  typical_steps: bool = False, history: bool = True) -> OptimizeResult:
    """Validate the options, call the function at x0, run the host executor, build the
    result. ``workers``: a map-like callable for the finite-difference points, or None.
    ``typical_steps``: a NumPy function's difference steps relative to the start's magnitudes
    (``curve_fit``'s rule, ``marquardt._core.numdiff``), not SciPy ``least_squares``' 1.
    ``history``: the result needs its ``history``; False (``curve_fit`` without
    ``full_output``, which returns popt and pcov only) leaves it empty where the host
    executor runs the fit and neither a callback nor ``verbose`` reads the rows, and a
    successful fit's message without its measured numbers (``build_result``'s ``detail``)
    unless ``verbose`` prints it.

    A fit with Moré's scaling (``x_scale='jac'``) that ends ``STALLED``, or in a success
    where a parameter it moved has an exactly zero column of J, is fitted again from x0 with
    D = I and, where a fit still stalls, continued from there (``_restart.fit_again``), within
    what is left of ``max_nfev``."""
    options = dict(bounds=bounds, method=method, ftol=ftol, xtol=xtol, gtol=gtol,
                   loss=loss, f_scale=f_scale, diff_step=diff_step, verbose=verbose,
                   callback=callback, damping=damping, solver=solver, workers=workers,
                   typical_steps=typical_steps, history=history)
    result, cfg = _solve_once(problem, x0, x_scale=x_scale, max_nfev=max_nfev, **options)
    if _restart.wanted(result, cfg, x0):
        def solve(start: np.ndarray = x0, **changed) -> OptimizeResult:
            return _solve_once(problem, start, **{**options, **changed})[0]
        result = _restart.fit_again(solve, result, cfg, verbose)
    if verbose >= 1:
        print(f"{result.message}\nFunction evaluations {result.nfev}, initial cost "
              f"{result.history[0].cost:.4e}, final cost {result.cost:.4e}, first-order "
              f"optimality {result.optimality:.2e}.")
    return result



def _solve_once(problem: Problem, x0: np.ndarray, *, bounds, method, ftol, xtol, gtol,
                x_scale, loss, f_scale, diff_step, max_nfev, verbose, callback, damping,
                solver, workers: Callable | None = None, typical_steps: bool = False,
                history: bool = True, noise: float = 0.0):
    """One fit from x0 (``solve_problem``'s body): the result and the loop's configuration.
    ``noise``: the gain ratio's noise floor (``LoopConfig.noise``; 0: none), for the
    continuation of a stalled fit (``_restart.fit_again``)."""
    n = problem.n
    if method not in METHODS:
        raise ValueError(
            "`method` must be 'lm': marquardt implements Levenberg-Marquardt, with bounds and "
            "robust losses (what SciPy's 'trf' and 'dogbox' add); leave `method` out, or call "
            f"scipy.optimize for SciPy's trust-region methods. Received: method={method!r}")
    lb, ub = prepare_bounds(bounds, n)  # (curve_fit's, already checked, as they are)
    # checked bounds hold no NaN and lb < ub: lb is finite where it is not -inf, ub where
    # it is not +inf
    bounded = bool(max(lb.tolist()) > -_INF or min(ub.tolist()) < _INF)
    if bounded:  # (without bounds no start is outside them or on one)
        check_within_bounds(x0, lb, ub, problem.start)
    # the parameters' typical sizes for difference steps: the start as given (a start of 0
    # moved 1e-10 inside its bound is still of size 1), formed where differences are taken
    x_given = x0
    if bounded:  # SciPy's trf: a start on a bound is moved inside
        x0 = strictly_feasible(x0, lb, ub)
    if verbose not in (0, 1, 2):
        raise ValueError(f"`verbose` must be 0, 1 or 2. Received: verbose={verbose!r}")
    if callback is not None and not callable(callback):
        raise TypeError(f"`callback` must be callable or None. Received: callback={callback!r}")
    check_loss(loss)
    options = dict(ftol=ftol, xtol=xtol, gtol=gtol, x_scale=x_scale, loss=loss,
                   f_scale=f_scale, diff_step=diff_step, max_nfev=max_nfev, damping=damping,
                   solver=solver, bounded=bounded)
    # every option checked before the first call of fun
    cfg, d_fixed, diff_step = loop_config(n, **options)
    cfg = replaced(cfg, record_history=True, callback=make_hook(callback, verbose))
    if noise:
        cfg = replaced(cfg, noise=noise)

    tensor_probe = problem.tensor_probe
    r0 = _probe.first_call(lambda: problem.probe(x0),
                    None if tensor_probe is None else (lambda: tensor_probe(x0)), problem.jac,
                    problem.who, f"at {problem.start}")
    m = _probe.residual_vector(r0, problem.who, problem.call, scalar_ok=True).size
    row = lambda a: np.asarray(a, np.float64)[None]  # noqa: E731
    x0b, lbb, ubb, d_fixed_b = row(x0), row(lb), row(ub), row(d_fixed)
    evaluator = state = None
    tensorflow_value, jax_value = is_tensorflow_value(r0), is_jax_value(r0)
    tensorflow = tensorflow_value and problem.jac != "callable"
    jax_model = (jax_value and problem.jax is not None
                 and problem.jac in AUTODIFF_MODES + ("cs",))
    host_fun = problem.host_fun
    if jax_value and not jax_model:  # finite differences or a callable jac
        host_fun, r0 = _x64_function(problem.host_fun), np.asarray(r0, np.float64)
    autodiff = tensorflow or jax_model
    jac_nfev = 0 if autodiff else numdiff.calls_per_jacobian(_host_jac_mode(problem)) * n
    cfg = with_jacobian_calls(cfg, jac_nfev, n, max_nfev is not None)
    if jax_model:
        state, rows, evaluator = jax_fit(problem, x0b, lbb, ubb, d_fixed_b, m, cfg)
    elif tensorflow:
        eps = output_epsilon(np.dtype(r0.dtype.as_numpy_dtype))
        if eps > 0 and problem.jac in DIFFERENCE_MODES:  # float32 out: steps and judgement
            # for float32's precision, as for a NumPy function (``numpy_evaluator``)
            if diff_step is None:
                diff_step = numdiff.default_rel_step(problem.jac, r0.dtype.as_numpy_dtype)
            cfg = replaced(cfg, output_epsilon=eps)
        state, rows, evaluator = tensorflow_fit(problem, x0b, lbb, ubb, d_fixed_b, m, cfg,
                                                  diff_step)
        if state is None and evaluator is None:  # finite differences, run eagerly
            cfg = with_jacobian_calls(cfg, numdiff.calls_per_jacobian(problem.jac) * n, n,
                                      max_nfev is not None)
    if state is None and evaluator is None:  # NumPy, or a TensorFlow function run eagerly
        if problem.jac in ("forward", "reverse"):
            raise NoGradientError(
                f"`{problem.who}` cannot be differentiated by TensorFlow: it returned NumPy "
                f"values, so "
                f"jac={problem.jac!r} has nothing to differentiate. Write it with TensorFlow "
                "ops for exact Jacobians, or pass jac='2-point' (or '3-point', or a callable) "
                "to use finite differences.")
        f_dtype = _output_dtype(problem, r0)
        mode = _host_jac_mode(problem)
        typical = (numdiff.typical_magnitudes(np.asarray(x_given, np.float64)[None])
                   if typical_steps and isinstance(mode, str) and mode in DIFFERENCE_MODES
                   else None)
        evaluator = numpy_evaluator(host_fun, mode, n, m, lbb, ubb,
                                    diff_step, r0=None if tensorflow_value else r0,
                                    f_dtype=f_dtype, workers=workers,
                                    complex_fun=problem.host_complex,
                                    typical=typical)
        # the residuals are float64 here, but carry only the precision the function returned
        eps = output_epsilon(f_dtype)
        if eps != cfg.output_epsilon:
            cfg = replaced(cfg, output_epsilon=eps)
    if state is None:
        if not history and cfg.callback is None and verbose == 0:  # no row is read
            cfg = replaced(cfg, record_history=False)
        state, rows = host.run(cfg, evaluator, x0b, lbb, ubb, d_fixed_b, batched=False)
    # (a result without history is ``curve_fit``'s lean one: no successful fit's message read)
    result = build_result(state, rows, cfg, lb, ub, detail=history or verbose > 0)
    if result.status == Status.NON_FINITE and result.nit == 0 and \
            result.nfev == 1 + cfg.jac_nfev:  # r(x0) is finite (``residual_vector``): J is not
        exact = getattr(problem.host_jac, "exact_partials", False)  # a model's compiled form
        mode = ("autodiff" if autodiff or exact else "callable" if problem.jac == "callable"
                else _host_jac_mode(problem))
        raise NonFiniteJacobianError(_probe.non_finite_jacobian(result.jac, problem.who,
                                                                problem.start, mode))
    return result, cfg


def _x64_function(fun: Callable) -> Callable:
    """A JAX function called on the host (finite differences, a callable ``jac``): in
    float64, as NumPy output."""
    def call(x):
        with x64_if_jax():
            return np.asarray(fun(x))
    return call


def output_epsilon(dtype) -> float:
    """``LoopConfig.output_epsilon`` for a function that returns ``dtype``: its ε where coarser
    than float64's (float32, float16), else 0 (the state's own)."""
    if dtype is _FLOAT64:  # (a NumPy float64 result: its dtype object is this one)
        return 0.0
    eps = machine_epsilon(dtype)
    return eps if eps > machine_epsilon(np.float64) else 0.0


_FLOAT64 = np.dtype(np.float64)


def _output_dtype(problem: Problem, r0) -> Any:
    """The dtype the user's function returned (``Problem.output_dtype``), else ``r0``'s."""
    dtype = problem.output_dtype() if problem.output_dtype is not None else None
    return dtype if dtype is not None else getattr(r0, "dtype", np.float64)
