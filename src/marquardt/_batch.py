"""``curve_fit_batch``: many independent fits of one model, each problem its own LM solve.

Microscopy (a lifetime per pixel), MRI (a T2 per voxel), spectroscopy (a peak per spectrum):
the same small model fitted to thousands of data sets; K problems share each array operation.

How it is built (nothing here is a second LM implementation: the LM core,
``marquardt._core.iteration``, is batched over a leading problem axis, each problem with its
own λ, acceptance and termination):

* A NumPy model runs on the host executor (``marquardt._core.host``): no compilation, no
  TensorFlow; the model is called for many problems at once (``_core.functions.
  model_evaluator``: parameters as (k, 1) columns that broadcast, or one call per problem),
  finite differences vectorised over the problems, a callable ``jac`` called per problem;
  each iteration works on the problems still running.
* A JAX model runs in ``_backend/jax/batch.py``: the one-problem model vmapped, the core in
  ``lax.while_loop`` under ``jax.jit``, chunks of power-of-two slots (docs/jax.md). With
  finite differences it runs on the host executor, the model vmapped and jitted per
  power-of-two row count (``_backend/jax/host_model.py``).
* A TensorFlow model runs in the compiled executor (``_backend/tensorflow/batch_stepper.py``):
  the one-problem model vectorised by ``tf.vectorized_map``, its exact forward-mode Jacobian,
  the problems streamed through ``chunk_size`` slots of one compiled step (XLA by default)
  with finished problems replaced by the next ones. The damped systems are solved by
  ``UnrolledCholeskySolver`` by default.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from marquardt import _batch_inputs as _inputs
from marquardt import _batch_host
from marquardt import _batch_kernel as _kernel
from marquardt import _checks, _dask
from marquardt._core import numdiff
from marquardt._errors import NoGradientError
from marquardt._batch_results import BatchMessages, BatchOutputs
from marquardt._covariance import optimize_warning, scale_by_reduced_chisq, standard_errors
from marquardt._curve_data import check_enough_points
from marquardt._options import (AUTODIFF_MODES, COMPLEX_STEP, DIFFERENCE_MODES, SolveOptions,
                                check_jac, loop_config, with_jacobian_calls)
from marquardt._leastsq_options import LEASTSQ_OPTIONS, check_lm_method, leastsq_names
from marquardt._least_squares import output_epsilon
from marquardt._parameters import (check_within_bounds, feasible_start, prepare_bounds,
                                   prepare_p0, strictly_feasible)
from marquardt._result import OptimizeResult
from marquardt._status import Status
from marquardt._termination import stationary_cosine

__all__ = ["curve_fit_batch", "fit", "check_settings", "BatchMessages", "DEFAULT_CHUNK_SIZE"]

#: ``least_squares``' options less ``callback`` (one per problem would be K callbacks).
_OPTIONS = tuple(f for f in SolveOptions._fields if f != "callback")

#: Problems solved side by side. Large enough that the per-op cost of the loop is shared by
#: many problems, small enough that the arrays stay in cache and that the last problems to
#: finish (which keep every slot iterating) cost little. Measured on 2 CPU cores, K = 10,000
#: (docs/batch.md): clean data, 8 alternated runs, median fits/s at 2048 / 1024 / 512 slots:
#: double exponential 39,200 / 48,500 / 41,000, 2-D Gaussian 46,800 / 49,700 / 44,400; with
#: pure-noise problems, which run long and keep every slot of the last round iterating, 2-D
#: Gaussian at 1% noise 7.3-8.7 s → 4.0-4.6 s from 2048 to 1024, at 20% 12.3-13.7 → 7.4-9.0 s.
DEFAULT_CHUNK_SIZE = 1024

#: The batch's damping policy unless ``damping`` is given: Nielsen's rule, not the trust
#: radius of ``least_squares`` (``_options.DEFAULT_DAMPING``). The radius needs the spectrum
#: of every problem's system at every iteration (an eigen-decomposition of A with the
#: Cholesky solvers) and 8 Newton steps of its secular equation per attempt: measured
#: 2026-12-03 (busy 2-core machine, CPU time, K = 2,000 double exponentials, 64 points),
#: 2.2× Nielsen's CPU time with a NumPy model and 8.5× with a TensorFlow model, for the
#: same evaluations per problem; many small fits from one start are a throughput problem.
DEFAULT_BATCH_DAMPING = "nielsen"

def curve_fit_batch(
    f: Callable,
    xdata: Any,
    ydata: Any,
    p0: Any = None,
    *,
    sigma: Any = None,
    absolute_sigma: bool = False,
    bounds: tuple = (-np.inf, np.inf),
    jac: str | Callable = "auto",
    nan_policy: str = "raise",
    shared_x: bool | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    jit_compile: bool = True,
    dtype: str = "float64",
    workers: int | None = None,
    kernel: bool | None = None,
    **options: Any,
) -> OptimizeResult:
    """Fit one model ``f(x, *params)`` to K independent data sets, in one vectorised solve.

    Each problem k minimises Σᵢ ((f(xₖᵢ; pₖ) − yₖᵢ)/σₖᵢ)² by Levenberg-Marquardt, exactly as
    ``marquardt.curve_fit(f, xdata_k, ydata[k], p0_k, ...)`` does (same model function, same
    options and defaults, same termination tests), with its own damping, acceptance and
    termination: a finished problem stops changing while the others go on, and a problem that
    diverges or turns NaN reports its own status without disturbing the others.

    Args:
        f: the model for ONE problem, ``f(x, *params)``, as for ``curve_fit``: receives that
            problem's x (shape (m,) or (k, m)) and its parameters; returns shape (m,).
            Written in NumPy, it runs on the host without TensorFlow (called for many
            problems at once when it broadcasts: each parameter a column of shape (k, 1)).
            Written with TensorFlow ops, it is vectorised by ``tf.vectorized_map`` and
            compiled; define it once (not as a new lambda per call): the compiled solve is
            cached per function. Written with ``jax.numpy``, it is vectorised by
            ``jax.vmap`` and solved under ``jax.jit`` in float64, K padded to a power of two
            up to ``chunk_size`` so that another K rarely recompiles (docs/jax.md).
        xdata: shared by all problems, shape (m,) or (k, m) for k variables; or one per
            problem, shape (K, m) or (K, k, m). See ``shared_x`` when k equals K.
        ydata: the data, shape (K, m): one row per problem. A Dask array (chunked over
            the K problems) makes the call lazy: the result's fields are Dask arrays of
            the same problem chunks, each block solved by this function on a Dask
            worker when they are computed; per-problem ``p0``, ``sigma``, bounds and
            ``xdata`` (NumPy or Dask) are rechunked to match (docs/dask.md).
        p0: start values, shape (n,) for all problems or (K, n); default ones, with n read
            from ``f``'s signature.
        sigma: uncertainties of ``ydata`` (standard deviations), shape (m,) shared or (K, m).
        absolute_sigma: as in ``curve_fit``: if False, each covariance is scaled by its
            problem's reduced χ².
        bounds: ``(lb, ub)``, each a scalar, shape (n,), or shape (K, n) per problem.
        jac: ``'auto'`` (exact: forward-mode autodiff for a TensorFlow model; for a NumPy
            model that is one closed-form expression of its parameters and points, such as
            ``a*np.exp(-b*t) + c``, its symbolic partials (``marquardt._model_capture``),
            else ``'2-point'``), ``'forward'``, ``'reverse'``, ``'2-point'``, ``'3-point'``,
            or a callable ``jac(x, *params) -> (m, n)`` for one problem (vectorised like a
            TensorFlow ``f``; called once per problem for a NumPy one).
        nan_policy: ``'raise'`` (default): NaN in ``ydata`` is an error. ``'omit'``: a NaN
            marks that point of that problem as absent (zero weight), as SciPy's
            ``curve_fit(nan_policy='omit')`` drops it: a NaN in ``ydata``, or in ``xdata``
            (shared x: the point of every problem; per-problem x: of its problem); ``sigma``
            at an absent point is not used (a NaN there is no error). A problem left with
            fewer points than parameters gets status ``IMPROPER_INPUT`` and is not fitted.
        shared_x: whether ``xdata`` is shared (True) or per problem (False). Default: a
            2-D ``xdata`` whose first dimension equals K is per problem; pass
            ``shared_x=True`` for k = K shared variables.
        chunk_size: problems solved side by side by a TensorFlow model's compiled step
            (memory grows with it, not with K). Every batch uses this many slots, so a call
            with another K reuses the compilation; many small batches run faster with a
            smaller ``chunk_size`` (one compilation for it).
        jit_compile: compile a TensorFlow model's solve with XLA (default). The first call
            for a model and shape pays the compilation (seconds); later calls reuse it. Pass
            False for a model with ops XLA cannot compile. (A NumPy model is not compiled.)
        dtype: the working precision of a TensorFlow model's solve, ``'float64'``
            (default) or ``'float32'`` (the data, parameters, model and LM arithmetic in
            single precision: faster, to about 1e-6 relative; ``ftol``, ``xtol`` and
            ``gtol`` default to ``FLOAT32_TOL`` = 1e-6, and the core's stationarity
            thresholds scale with √(ε/ε₆₄), ``marquardt._termination``). Results are
            returned in float64 either way. The model gets x and the parameters as tensors
            of this dtype from its first call on: a model with float32 constants
            (``tf.cast(t, tf.float32)``) needs ``'float32'``. A NumPy or JAX model runs in
            float64 only.
        workers: threads: the per-problem kernel's (default: one per core, at least 256
            problems each); on the host, NumPy models' problems in shards side by side
            (default 1: the model is then called from several threads; -1: one per core).
            A TensorFlow or JAX model's compiled batch runs a stream per core and ignores it.
        kernel: whether a closed-form model (see ``jac``; NumPy or TensorFlow, float64, an
            exact Jacobian) is fitted by the per-problem kernel: the model and its partials
            compiled to C with the LM core's steps, one whole fit per problem, the problems
            shared among ``workers`` threads (default: one per core). None (default): on a
            CPU, a TensorFlow model at once (instead of XLA's compilation), a NumPy model
            once the host executor has done about a second of its work (then also in later
            processes: the kernel is cached on disk), docs/batch.md. True: now (ValueError
            naming why where it cannot). False: never. The executors agree to rounding.
        **options: ``ftol``, ``xtol``, ``gtol``, ``x_scale``, ``loss``, ``f_scale``,
            ``diff_step``, ``max_nfev`` with ``least_squares``' meanings and defaults
            (``max_nfev`` counts per problem); ``damping`` (default ``'nielsen'``, not
            ``least_squares``' trust radius: ``DEFAULT_BATCH_DAMPING``); ``solver`` (default
            ``'cholesky_unrolled'``, see ``marquardt._solvers``; ``'svd'`` is the most
            accurate for ill-conditioned models, 3 times slower batched, and needs
            ``jit_compile=False``: XLA's SVD is very slow on CPU); ``verbose`` (0, or 1 for
            a one-line summary). A problem of pure noise may run to ``max_nfev`` (1,200
            evaluations for n = 5) and keeps the slots iterating meanwhile: for data with
            many such problems set ``max_nfev`` (docs/batch.md). SciPy's ``curve_fit``
            keywords are taken as ``curve_fit`` takes them: ``method`` (None or 'lm'),
            ``maxfev``, ``epsfcn`` and ``diag``.

    Returns:
        ``OptimizeResult`` with, per problem: ``x`` (K, n), ``cov`` (K, n, n), ``stderr``
        (K, n), ``cost`` (K,) (½ Σ r²), ``chisq`` (K,), ``dof`` (K,), ``redchi`` (K,),
        ``fun`` (K, m) (weighted residuals; 0 at absent points), ``optimality`` (K,)
        (‖Jᵀr‖∞), ``status`` (K,) (``marquardt.Status`` codes), ``success`` (K,), ``nfev``,
        ``njev``, ``nit`` (K,), ``message`` (a sequence of K strings, each with its
        measured numbers); and ``npoints`` (K,), the points present per problem. For a
        Dask ``ydata``, each of these is a Dask array (``message`` of strings); compute the
        ones you need together (``dask.compute(res.x, res.stderr)``): each block is solved
        once per computation.

    Raises:
        ValueError, TypeError: invalid arguments (shapes that disagree, NaN without
            ``nan_policy='omit'``, a ``p0`` of the wrong shape, empty data, ...), each naming
            the argument and what was received. A problem whose residuals are not finite at
            its ``p0`` is not an error: it reports status ``NON_FINITE``.

    Example:
        >>> import numpy as np, tensorflow as tf, marquardt
        >>> t = np.linspace(0, 4, 30)
        >>> rates = np.array([0.5, 1.0, 2.0])
        >>> y = 2.0 * np.exp(-rates[:, None] * t)
        >>> res = marquardt.curve_fit_batch(lambda t, a, k: a * tf.exp(-k * t), t, y,
        ...                                 p0=[1.0, 1.0])
        >>> np.round(res.x, 6).tolist()
        [[2.0, 0.5], [2.0, 1.0], [2.0, 2.0]]
    """
    check_lm_method(options.pop("method", None))  # SciPy's curve_fit keywords, as curve_fit
    _checks.reject_unknown_kwargs(options, "curve_fit_batch", _OPTIONS + LEASTSQ_OPTIONS)
    options = leastsq_names(options, "curve_fit_batch")  # fit's `bounded` refused above too
    if not _dask.is_dask_array(ydata) and _dask.is_dask_array(getattr(ydata, "data", None)):
        ydata = ydata.data  # an xarray DataArray (or the like) backed by Dask: stays lazy
    if _dask.is_dask_array(ydata):
        return _dask.curve_fit_batch(
            f, xdata, ydata, p0, sigma=sigma, absolute_sigma=absolute_sigma, bounds=bounds,
            jac=jac, nan_policy=nan_policy, shared_x=shared_x, chunk_size=chunk_size,
            jit_compile=jit_compile, dtype=dtype, workers=workers, kernel=kernel, **options)
    return fit(f, xdata, ydata, p0, sigma=sigma, absolute_sigma=absolute_sigma, bounds=bounds,
               jac=jac, nan_policy=nan_policy, shared_x=shared_x, chunk_size=chunk_size,
               jit_compile=jit_compile, dtype=dtype, workers=workers, kernel=kernel,
               **options)


def check_settings(f, jac, nan_policy: str, shared_x, chunk_size, jit_compile,
                   options: dict, dtype="float64", kernel: bool | None = None) -> int:
    """The checks of ``curve_fit_batch``'s arguments that need no data (the Dask front door
    runs them before building its graph); returns the checked ``chunk_size``."""
    _inputs.check_dtype(dtype)
    _checks.reject_unknown_kwargs(options, "curve_fit_batch", _OPTIONS)
    if not callable(f):
        raise TypeError(f"`f` must be callable. Received: f={_checks.short_repr(f)}")
    _inputs.check_nan_policy(nan_policy)
    _inputs.check_shared_x(shared_x)
    check_jac(jac)
    chunk_size = _inputs.check_chunk_size(chunk_size)
    if not isinstance(jit_compile, bool):
        raise TypeError("`jit_compile` must be True or False. "
                        f"Received: jit_compile={jit_compile!r}")
    if kernel is not None and not isinstance(kernel, bool):
        raise TypeError(f"`kernel` must be None, True or False. Received: kernel={kernel!r}")
    if jac == COMPLEX_STEP:
        raise ValueError("`jac` must be 'auto', 'forward', 'reverse', '2-point', '3-point' or a "
                         "callable in a batch: the complex step ('cs') is for least_squares "
                         "and curve_fit. Received: jac='cs'")
    return chunk_size


def fit(f: Callable, xdata: Any, ydata: Any, p0: Any = None, *, sigma: Any = None,
        absolute_sigma: bool = False, bounds: tuple = (-np.inf, np.inf), jac="auto",
        nan_policy: str = "raise", shared_x: bool | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE, jit_compile: bool = True,
        dtype: str = "float64", bounded: bool | None = None, workers: int | None = None,
        kernel: bool | None = None, **options: Any) -> OptimizeResult:
    """``curve_fit_batch`` on in-memory arrays (NumPy, or anything ``np.asarray`` takes).

    ``bounded``: whether the core projects steps on the bounds (``LoopConfig.bounded``);
    default: whether any bound is finite. The Dask front door passes the whole call's
    answer to every block, so that a block whose own bounds are all infinite runs the same
    configuration (and compiled step) as the others.
    """
    started = time.perf_counter()
    chunk_size = check_settings(f, jac, nan_policy, shared_x, chunk_size, jit_compile, options,
                                dtype, kernel)
    dtype = _inputs.check_dtype(dtype)
    threads = _inputs.check_workers(workers)
    y, present = _inputs.prepare_ydata(ydata, nan_policy)
    k_all, m = y.shape
    x, shared, present = _inputs.prepare_xdata(xdata, k_all, m, shared_x, present, nan_policy)
    hint = _inputs.per_problem_hint(x.shape, shared_x, shared)
    shared_x = shared
    p0_given = p0 is not None
    p0 = prepare_p0(p0, f, batch=k_all)
    n = p0.shape[1]
    check_enough_points(m, n, per_problem=True)
    inv_sigma = _inputs.prepare_sigma(sigma, k_all, m,
                                      present if nan_policy == "omit" else None)
    lb, ub = prepare_bounds(bounds, n, batch=k_all)
    if not p0_given:  # SciPy's curve_fit start for each problem
        p0 = feasible_start(lb, ub)
    check_within_bounds(p0, lb, ub, "p0")
    typical = numdiff.typical_magnitudes(p0)  # difference steps' sizes: the starts as given
    p0 = strictly_feasible(p0, lb, ub)  # as curve_fit (SciPy's trf): a start on a bound moves
    if bounded is None:
        bounded = bool(np.isfinite(lb).any() or np.isfinite(ub).any())
    # every option checked before the first call of f
    cfg, d_fixed, diff_step, verbose = _loop_config(options, n, bounded, dtype)
    backend, f_dtype = _inputs.probe(f, jac, x, shared_x, p0[0], m, n, hint, dtype)
    tensorflow = backend == "tensorflow"
    if dtype != np.float64 and not tensorflow:
        raise ValueError(f"`dtype` must be 'float64' for a model written with "
                         f"{'NumPy' if backend != 'jax' else 'JAX'}: single precision is for a "
                         f"TensorFlow model. Received: dtype={dtype.name!r}")
    jax_model = backend == "jax" and (jac in AUTODIFF_MODES or callable(jac))
    batch_model = None
    if backend == "jax" and not jax_model:  # finite differences on the host, in float64:
        from marquardt._backend.jax.host_model import batch_model as jitted_model
        # the model jitted per padded shape where it can be traced, else called eagerly
        batch_model = jitted_model(f, x, shared_x, p0[0])
        f = _batch_host.host_model(f)
    npoints = present.sum(axis=1)
    improper = npoints < n
    todo = np.flatnonzero(~improper)
    max_nfev_given = options.get("max_nfev") is not None
    # a closed-form model on the per-problem kernel, where it applies (``_batch_kernel``)
    kernel_wanted, kernel, plan = kernel, None, None
    if todo.size:  # a closed-form model: its exact Jacobian, on the kernel where it runs
        plan, why = _kernel.plan(f, jac, backend, f_dtype, dtype, x, shared_x, p0, todo)
        if plan is None and kernel_wanted:
            raise ValueError(f"`kernel=True`, but this batch has no kernel: {why}")
    if plan is not None:
        exact_cfg = _kernel.exact_config(cfg, n, max_nfev_given)
        if kernel_wanted is not False:
            kernel, why = _kernel.kernel_for(plan, exact_cfg, m, n, now=bool(kernel_wanted))
            if kernel is None and kernel_wanted:
                raise ValueError(f"`kernel=True`, but this batch has no kernel: {why}")
        if kernel is None and plan.backend == "numpy":
            jac = plan.jacobian  # on the host (until the kernel pays): the same Jacobian
    # finite differences count their calls in nfev (and max_nfev), as in least_squares
    mode = ("2-point" if jac == "auto" and not (tensorflow or jax_model) else jac)
    if jax_model:
        mode = "auto"
    cfg = (exact_cfg if kernel is not None else
           with_jacobian_calls(cfg, numdiff.calls_per_jacobian(mode) * n, n, max_nfev_given))
    out = BatchOutputs(k_all, m, n, p0)

    def store(idx, state, grad=None, cov=None, ok=None):
        out.store(idx, state, cfg, lb[idx], ub[idx], grad, cov, ok)

    if todo.size and kernel is not None:
        _kernel.solve(kernel, x, shared_x, y, present, inv_sigma, p0, lb, ub, d_fixed, todo,
                      store, workers)
    elif todo.size and jax_model:
        from marquardt._backend.jax import batch as jax_batch
        from marquardt._backend.jax.host_functions import tracing_errors
        try:
            jax_batch.solve(f, jac, shared_x, cfg, todo, chunk_size,
                            (x, y, present, inv_sigma, p0, lb, ub, d_fixed), store)
        except tracing_errors() as exc:
            raise NoGradientError(
                f"`f` cannot be differentiated by JAX: it converts a traced parameter to NumPy "
                f"or branches on one in Python ({type(exc).__name__}). Write it with jax.numpy "
                "(jnp.where for branches) for exact Jacobians, or pass jac='2-point' (or "
                "'3-point') to run it on the host with finite differences.") from exc
    elif todo.size and tensorflow:
        from marquardt._backend.tensorflow import batch_stepper
        from marquardt._backend.tensorflow.host_functions import tracing_errors
        if diff_step is None and isinstance(jac, str) and jac in DIFFERENCE_MODES:
            # the working precision's step (ε^(1/2) or ε^(1/3) of float32: 3.5e-4, 4.9e-3):
            # float64's 1.5e-8 is below float32's rounding, x + h == x and J = 0/0
            diff_step = numdiff.default_rel_step(jac, dtype)
        try:
            batch_stepper.solve(f, jac, shared_x, cfg, diff_step, jit_compile, todo,
                                chunk_size, (x, y, present, inv_sigma, p0, lb, ub, d_fixed),
                                store, dtype)
        except tracing_errors() as exc:
            # TensorFlow's text: a trace of the user's code, then one long line; its first sentence
            last = (str(exc).strip().splitlines() or [""])[-1].strip()
            first = last.removeprefix(f"{type(exc).__name__}: ").split(". ")[0].rstrip(".")
            raise NoGradientError(
                "`f` cannot be traced by TensorFlow for the batch: it calls NumPy on its input "
                f"or branches in Python on a parameter ({type(exc).__name__}: {first}). Write "
                "it with TensorFlow ops (tf.where for branches), or with NumPy, which the "
                "batch runs on the host with finite differences.") from exc
    elif todo.size:  # a float32 model: float32-sized steps, judged at its rounding
        _batch_host.solve_on_host(f, jac, x, shared_x, y, present, inv_sigma, p0, lb, ub, d_fixed,
                       cfg._replace(output_epsilon=output_epsilon(f_dtype)), diff_step, todo,
                       store, f_dtype, typical, batch_model, threads)
        if plan is not None and plan.backend == "numpy" and kernel_wanted is None:  # its rent
            _kernel.pay(plan, exact_cfg, m, n, out.nfev[todo])
    dof = npoints - n  # problems with too few points keep BatchOutputs' IMPROPER_INPUT status
    cov = out.pcov
    _warn_rank_deficient(todo[np.isinf(cov[todo]).any(axis=(1, 2))], n)
    if not absolute_sigma:
        cov[todo] = scale_by_reduced_chisq(cov[todo], out.chisq[todo], dof[todo])
    with np.errstate(divide="ignore", invalid="ignore"):
        redchi = np.where(dof > 0, out.chisq / np.where(dof > 0, dof, 1), np.inf)
    status = out.status
    result = OptimizeResult(
        x=out.x, cov=cov, stderr=standard_errors(cov), cost=out.cost, chisq=out.chisq,
        dof=dof, redchi=redchi, fun=out.fun, optimality=out.optimality, status=status,
        success=status > 0, nfev=out.nfev, njev=out.njev, nit=out.nit,
        message=BatchMessages(out, cfg, npoints, n, stationary_cosine(dtype)),
        npoints=npoints,
    )
    if verbose:
        elapsed = time.perf_counter() - started
        counts = ", ".join(f"{Status(int(v)).name} {c}" for v, c in
                           zip(*np.unique(status, return_counts=True)))
        where = ("the per-problem kernel" if kernel is not None else "JAX" if jax_model
                 else "the compiled executor" if tensorflow else "the host")
        print(f"curve_fit_batch: {k_all} fits in {elapsed:.3g} s "
              f"({k_all / elapsed:.4g} fits/s) on {where}; {counts}")
    return result


def _warn_rank_deficient(problems: np.ndarray, n: int) -> None:
    """One ``OptimizeWarning`` for the fits whose Jacobian at the solution is rank-deficient
    (their ``cov`` and ``stderr`` are inf, as ``curve_fit`` warns and returns for one fit).
    No indices: in a Dask block they would count from the block's first problem."""
    if problems.size:
        _checks.warn_user(
            f"Covariance of the parameters could not be estimated for {problems.size} fit(s): "
            f"the Jacobian at the solution has rank < n = {n} (a parameter, or a combination "
            "of them, does not change the model); their `cov` and `stderr` are inf "
            "(np.isinf(res.stderr).any(axis=1) finds them)", optimize_warning())


#: ``ftol``, ``xtol`` and ``gtol`` of a float32 solve unless given: ~8 ε₃₂ (ε₃₂ = 1.2e-7),
#: where float64's defaults (1e-15, 1e-12) are below what single precision can resolve.
FLOAT32_TOL = 1e-6


def _loop_config(options: dict, n: int, bounded: bool, dtype=np.float64):
    """The engine's ``LoopConfig`` from ``least_squares``' options (batch defaults), validated."""
    defaults = dict(solver="cholesky_unrolled", damping=DEFAULT_BATCH_DAMPING)
    if np.dtype(dtype) == np.float32:
        defaults.update(ftol=FLOAT32_TOL, xtol=FLOAT32_TOL, gtol=FLOAT32_TOL)
    opts = SolveOptions(**defaults)._replace(**options)._asdict()
    opts.pop("callback")
    verbose = opts.pop("verbose")
    if verbose not in (0, 1):
        raise ValueError(f"`verbose` must be 0 or 1. Received: verbose={verbose!r}")
    cfg, d_fixed, diff_step = loop_config(n, bounded=bounded, **opts)
    return cfg, d_fixed, diff_step, verbose
