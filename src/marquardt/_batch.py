"""``curve_fit_batch``: many independent fits of one model, as one compiled, vectorised solve.

Microscopy (a lifetime per pixel), MRI (a T2 per voxel), spectroscopy (a peak per spectrum):
the same small model fitted to thousands of data sets. ``curve_fit`` runs one compiled solve
per fit, whose many small ops cost ~0.3-1 ms per iteration whatever the problem size; here
K problems share each op.

How it is built (nothing here is a second LM implementation):

* The engine loop (``_backend/tensorflow/solve_loop.py``) is batched over a leading problem
  dimension: each problem has its own λ, acceptance and termination; finished problems are
  frozen by masks while the others go on, and a problem that turns non-finite reports its
  own status.
* The user's one-problem model ``f(x, *params)`` is vectorised over the problems by
  ``tf.vectorized_map`` (``_backend/tensorflow/batch.py``); its Jacobian comes from the
  engine's forward-mode autodiff, or from the user's analytic ``jac``.
* The problems stream through ``chunk_size`` slots (memory bounded for any K): one compiled
  step (with XLA by default, cached per model, data shape and slot count) runs a few
  iterations of every slot (``resume_loop``); between steps, finished problems are stored and
  their slots restarted with the next problems (``restart``). A slow problem (pure noise
  wandering to ``max_nfev``) thus holds one slot, not a chunk of finished ones.
* The damped systems are solved by ``UnrolledCholeskySolver`` by default: the Cholesky
  factorisation written out as elementwise operations on the slots, fused by XLA.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import numpy as np
import tensorflow as tf

from marquardt import _batch_inputs as _inputs
from marquardt import _checks
from marquardt._backend.tensorflow import driver
from marquardt._backend.tensorflow.batch import (batched_residual,
                                                 batched_residual_and_jacobian)
from marquardt._backend.tensorflow.solve_loop import RUNNING, LoopConfig, idle_state
from marquardt._covariance import (scale_by_reduced_chisq, standard_errors,
                                   unscaled_covariances)
from marquardt._curve_fit import check_enough_points
from marquardt._least_squares import (DEFAULT_FTOL, DEFAULT_GTOL, DEFAULT_XTOL, JAC_MODES,
                                      loop_config)
from marquardt._outcome import termination_detail
from marquardt._parameters import check_within_bounds, prepare_bounds, prepare_p0
from marquardt._result import OptimizeResult
from marquardt._robust import rescale
from marquardt._status import Status, status_message
from marquardt._termination import gradient_cosine

__all__ = ["curve_fit_batch", "BatchMessages", "DEFAULT_CHUNK_SIZE"]

#: Problems solved side by side. Large enough that the per-op cost of the loop is shared by
#: many problems, small enough that the arrays stay in cache and that the last problems to
#: finish (which keep every slot iterating) cost little. Measured on 2 CPU cores, K = 10,000
#: (docs/batch.md): clean data, 8 alternated runs, median fits/s at 2048 / 1024 / 512 slots:
#: double exponential 39,200 / 48,500 / 41,000, 2-D Gaussian 46,800 / 49,700 / 44,400; with
#: pure-noise problems, which run long and keep every slot of the last round iterating, 2-D
#: Gaussian at 1% noise 7.3-8.7 s → 4.0-4.6 s from 2048 to 1024, at 20% 12.3-13.7 → 7.4-9.0 s.
DEFAULT_CHUNK_SIZE = 1024

#: Most streams of slots run side by side (threads; each holds ``chunk_size`` slots).
MAX_WORKERS = 4

_OPTIONS = ("ftol", "xtol", "gtol", "x_scale", "loss", "f_scale", "diff_step", "max_nfev",
            "damping", "solver", "verbose")


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
    **options: Any,
) -> OptimizeResult:
    """Fit one model ``f(x, *params)`` to K independent data sets, in one vectorised solve.

    Each problem k minimises Σᵢ ((f(xₖᵢ; pₖ) − yₖᵢ)/σₖᵢ)² by Levenberg-Marquardt, exactly as
    ``marquardt.curve_fit(f, xdata_k, ydata[k], p0_k, ...)`` does (same model function, same
    options and defaults, same termination tests), with its own damping, acceptance and
    termination: a finished problem stops changing while the others go on, and a problem that
    diverges or turns NaN reports its own status without disturbing the others.

    Args:
        f: the model for ONE problem, ``f(x, *params)``, written with TensorFlow ops, as for
            ``curve_fit``: receives that problem's x (shape (m,) or (k, m)) as a float64
            tensor and each parameter as a float64 scalar tensor; returns shape (m,). It is
            vectorised over the problems for you (``tf.vectorized_map``). Define it once
            (not as a new lambda per call): the compiled solve is cached per function.
        xdata: shared by all problems, shape (m,) or (k, m) for k variables; or one per
            problem, shape (K, m) or (K, k, m). See ``shared_x`` when k equals K.
        ydata: the data, shape (K, m): one row per problem.
        p0: start values, shape (n,) for all problems or (K, n); default ones, with n read
            from ``f``'s signature.
        sigma: uncertainties of ``ydata`` (standard deviations), shape (m,) shared or (K, m).
        absolute_sigma: as in ``curve_fit``: if False, each covariance is scaled by its
            problem's reduced χ².
        bounds: ``(lb, ub)``, each a scalar, shape (n,), or shape (K, n) per problem.
        jac: ``'auto'`` (exact forward-mode autodiff), ``'forward'``, ``'reverse'``,
            ``'2-point'``, ``'3-point'``, or a callable ``jac(x, *params) -> (m, n)`` for one
            problem (vectorised like ``f``).
        nan_policy: ``'raise'`` (default): NaN in ``ydata`` is an error. ``'omit'``: a NaN
            marks that point of that problem as absent (zero weight); a problem left with
            fewer points than parameters gets status ``IMPROPER_INPUT`` and is not fitted.
        shared_x: whether ``xdata`` is shared (True) or per problem (False). Default: a
            2-D ``xdata`` whose first dimension equals K is per problem; pass
            ``shared_x=True`` for k = K shared variables.
        chunk_size: problems solved side by side (memory grows with it, not with K); a
            smaller batch uses the next power of two, so that varying K reuses compilations.
        jit_compile: compile the solve with XLA (default). The first call for a
            model and shape pays the compilation (seconds); later calls reuse it. Pass False
            for a model with ops XLA cannot compile.
        **options: ``ftol``, ``xtol``, ``gtol``, ``x_scale``, ``loss``, ``f_scale``,
            ``diff_step``, ``max_nfev``, ``damping`` with ``least_squares``' meanings and
            defaults (``max_nfev`` counts per problem); ``solver`` (default
            ``'cholesky_unrolled'``, see ``marquardt._solvers``; ``'svd'`` is the most
            accurate for ill-conditioned models, 3 times slower batched, and needs
            ``jit_compile=False``: XLA's SVD is very slow on CPU); ``verbose`` (0, or 1 for
            a one-line summary). A problem of pure noise may run to ``max_nfev`` (1,200
            evaluations for n = 5) and keeps the slots iterating meanwhile: for data with
            many such problems set ``max_nfev`` (docs/batch.md).

    Returns:
        ``OptimizeResult`` with, per problem: ``x`` (K, n), ``cov`` (K, n, n), ``stderr``
        (K, n), ``cost`` (K,) (½ Σ r²), ``chisq`` (K,), ``dof`` (K,), ``redchi`` (K,),
        ``fun`` (K, m) (weighted residuals; 0 at absent points), ``optimality`` (K,)
        (‖Jᵀr‖∞), ``status`` (K,) (``marquardt.Status`` codes), ``success`` (K,), ``nfev``,
        ``njev``, ``nit`` (K,), ``message`` (a sequence of K strings, each with its
        measured numbers); and ``npoints`` (K,), the points present per problem.

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
    started = time.perf_counter()
    _checks.reject_unknown_kwargs(options, "curve_fit_batch", _OPTIONS)
    if not callable(f):
        raise TypeError(f"`f` must be callable. Received: f={_checks.short_repr(f)}")
    y, present = _inputs.prepare_ydata(ydata, nan_policy)
    k_all, m = y.shape
    x, shared_x = _inputs.prepare_xdata(xdata, k_all, m, shared_x)
    p0 = prepare_p0(p0, f, batch=k_all)
    n = p0.shape[1]
    check_enough_points(m, n, per_problem=True)
    inv_sigma = _inputs.prepare_sigma(sigma, k_all, m)
    lb, ub = prepare_bounds(bounds, n, batch=k_all)
    check_within_bounds(p0, lb, ub, "p0")
    if not (callable(jac) or jac in JAC_MODES):
        raise ValueError(f"`jac` must be one of {list(JAC_MODES)} or a callable. "
                         f"Received: jac={jac!r}")
    chunk_size = _inputs.check_chunk_size(chunk_size)
    if not isinstance(jit_compile, bool):
        raise TypeError("`jit_compile` must be True or False. "
                        f"Received: jit_compile={jit_compile!r}")
    cfg, d_fixed, diff_step, verbose = _loop_config(options, n, bool(np.isfinite(lb).any()
                                                                     or np.isfinite(ub).any()))
    _inputs.probe(f, jac, x, shared_x, p0[0], m, n)

    npoints = present.sum(axis=1)
    improper = npoints < n
    todo = np.flatnonzero(~improper)
    out = _Outputs(k_all, m, n, p0)
    if todo.size:
        step = _compiled_stepper(f, jac, shared_x, n, m, cfg, diff_step, jit_compile)
        inputs = _Inputs(x, shared_x, y, present, inv_sigma, p0, lb, ub, d_fixed)
        slots = min(chunk_size, _bucket(todo.size))
        parts = np.array_split(todo, max(1, min(_workers(), todo.size // slots)))
        if len(parts) == 1:
            _stream(step, jit_compile, todo, slots, inputs, out, cfg)
        else:  # TensorFlow releases the GIL while a step runs: one stream per core
            with ThreadPoolExecutor(len(parts)) as pool:
                for done in [pool.submit(_stream, step, jit_compile, part, slots, inputs, out,
                                         cfg) for part in parts]:
                    done.result()
    dof = npoints - n  # problems with too few points keep _Outputs' IMPROPER_INPUT status
    cov = out.pcov
    if not absolute_sigma:
        cov[todo] = scale_by_reduced_chisq(cov[todo], out.chisq[todo], dof[todo])
    with np.errstate(divide="ignore", invalid="ignore"):
        redchi = np.where(dof > 0, out.chisq / np.where(dof > 0, dof, 1), np.inf)
    status = out.status
    result = OptimizeResult(
        x=out.x, cov=cov, stderr=standard_errors(cov), cost=out.cost, chisq=out.chisq,
        dof=dof, redchi=redchi, fun=out.fun, optimality=out.optimality, status=status,
        success=status > 0, nfev=out.nfev, njev=out.njev, nit=out.nit,
        message=BatchMessages(out, cfg, npoints, n), npoints=npoints,
    )
    if verbose:
        elapsed = time.perf_counter() - started
        counts = ", ".join(f"{Status(int(v)).name} {c}" for v, c in
                           zip(*np.unique(status, return_counts=True)))
        print(f"curve_fit_batch: {k_all} fits in {elapsed:.3g} s "
              f"({k_all / elapsed:.4g} fits/s); {counts}")
    return result


def _workers() -> int:
    """Streams of slots run side by side: one per core (XLA runs most of a step on one)."""
    return max(1, min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                      else (os.cpu_count() or 1), MAX_WORKERS))


def _t64(a) -> tf.Tensor:
    return tf.constant(np.ascontiguousarray(a, dtype=np.float64))


def _bucket(k: int) -> int:
    """The next power of two ≥ k: batches of varying size share a few compiled shapes."""
    return 1 << max(0, int(k - 1).bit_length())


def _loop_config(options: dict, n: int, bounded: bool):
    """The engine's ``LoopConfig`` from ``least_squares``' options (batch defaults), validated."""
    opts = {"ftol": DEFAULT_FTOL, "xtol": DEFAULT_XTOL, "gtol": DEFAULT_GTOL, "x_scale": "jac",
            "loss": "linear", "f_scale": 1.0, "diff_step": None, "max_nfev": None,
            "damping": "nielsen", "solver": "cholesky_unrolled", "verbose": 0}
    opts.update(options)
    verbose = opts.pop("verbose")
    if verbose not in (0, 1):
        raise ValueError(f"`verbose` must be 0 or 1. Received: verbose={verbose!r}")
    cfg, d_fixed, diff_step = loop_config(n, bounded=bounded, **opts)
    return cfg, d_fixed, diff_step, verbose


# --- the compiled solve --------------------------------------------------------------------


#: Outer iterations per call of the compiled step; between calls, finished problems leave
#: their slots to new ones. Fewer: slots idle less after their problem finishes; more: fewer
#: calls, each of which restarts the fresh slots (one Jacobian for all slots) and returns to
#: Python. 8 is as fast as one uninterrupted solve per chunk on clean data (most fits take
#: 5-10 iterations) and 2-4 times faster when 1% of the problems are pure noise (measured for
#: 10,000 2-D Gaussians, docs/batch.md). Passed to the step as a tensor: no recompilation.
ROUND_ITERATIONS = 8

#: While problems wait for a slot, a round also ends once no more than this fraction of the
#: slots still runs (each later iteration would cost every slot for a quarter of the work);
#: the last round, with no problem waiting, runs until all are done. A quarter against a
#: fixed 8 iterations, K = 10,000, 12 alternated runs each (docs/batch.md): double
#: exponential median 39,300 → 45,400 fits/s; 2-D Gaussian 44,400 → 45,300; refilling at
#: a half: 44,700 and 40,900.
REFILL_FRACTION = 0.25


def _compiled_stepper(f, jac, shared_x, n, m, cfg, diff_step, jit_compile):
    residual_fn = batched_residual(f, shared_x)
    jac_fn = (jac if jac in ("2-point", "3-point")
              else batched_residual_and_jacobian(f, jac, shared_x))
    key = ("curve_fit_batch", f, jac, shared_x, n, m, cfg, diff_step, jit_compile)
    return driver.cached(key, lambda: driver.build_stepper(
        residual_fn, n, m, jac_fn, cfg._replace(jit_compile=jit_compile), diff_step=diff_step))


class _Inputs:
    """The compiled step's per-slot inputs for a given assignment of problems to slots."""

    def __init__(self, x, shared_x, y, present, inv_sigma, p0, lb, ub, d_fixed):
        self.x_shared = tf.constant(x) if shared_x else None
        self.x, self.y, self.present, self.inv_sigma = x, y, present, inv_sigma
        self.p0, self.lb, self.ub, self.d_fixed = p0, lb, ub, d_fixed

    def __call__(self, rows: np.ndarray):
        w = self.present[rows].astype(np.float64)
        if self.inv_sigma is not None:
            w *= self.inv_sigma if self.inv_sigma.ndim == 1 else self.inv_sigma[rows]
        data = (self.x_shared if self.x_shared is not None else _t64(self.x[rows]),
                _t64(np.where(self.present[rows], self.y[rows], 0.0)), _t64(w))
        d = np.broadcast_to(self.d_fixed, (rows.size, self.d_fixed.size))
        return _t64(self.p0[rows]), _t64(self.lb[rows]), _t64(self.ub[rows]), _t64(d), data


def _stream(step, jit_compile: bool, todo: np.ndarray, slots: int, inputs: _Inputs,
            out: "_Outputs", cfg: LoopConfig) -> None:
    """Solve the problems ``todo`` through ``slots`` slots: each call of ``step`` runs up to
    ``ROUND_ITERATIONS`` iterations, or fewer once only ``REFILL_FRACTION`` of the slots
    still run while problems wait; then finished problems are stored and their slots given
    to the next problems. A slow problem (pure noise running to ``max_nfev``) thus holds
    one slot, not a whole chunk of finished ones."""
    m, n = inputs.y.shape[1], inputs.p0.shape[1]
    owner = np.full(slots, -1)  # the problem in each slot; -1: none
    state = idle_state(slots, m, n)
    iterations = tf.constant(ROUND_ITERATIONS, tf.int32)
    refill_at = tf.constant(int(REFILL_FRACTION * slots), tf.int32)
    drain = tf.constant(0, tf.int32)
    queued = 0
    while True:
        free = np.flatnonzero(owner < 0)
        new = todo[queued:queued + free.size]
        queued += new.size
        fresh = np.zeros(slots, bool)
        fresh[free[:new.size]] = True
        owner[free[:new.size]] = new
        if not fresh.any() and not (owner >= 0).any():
            return
        rows = np.where(owner >= 0, owner, todo[0])  # empty slots: any valid data, frozen
        state = _run(step, jit_compile, state, tf.constant(fresh), *inputs(rows), iterations,
                     refill_at if queued < todo.size else drain)
        done = np.flatnonzero((owner >= 0) & (state.status.numpy() != RUNNING))
        if done.size:
            picked = type(state)(*(t.numpy()[done] for t in state))
            out.store(owner[done], picked, cfg, inputs.lb[owner[done]], inputs.ub[owner[done]])
            owner[done] = -1


def _run(step, jit_compile: bool, *args):
    try:
        return step(*args)
    except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as exc:
        if not jit_compile:
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError("the batched solve could not be compiled with XLA "
                         f"({first}). Pass jit_compile=False to run it without XLA.") from exc


# --- results -------------------------------------------------------------------------------


class _Outputs:
    """Per-problem result arrays, filled as problems finish (the Jacobians are not kept)."""

    def __init__(self, k_all: int, m: int, n: int, p0: np.ndarray):
        nan = lambda *shape: np.full(shape, np.nan)  # noqa: E731
        self.x = p0.copy()
        self.pcov = nan(k_all, n, n)
        self.cost, self.chisq, self.optimality = nan(k_all), nan(k_all), nan(k_all)
        self.fun = nan(k_all, m)
        self.status = np.full(k_all, int(Status.IMPROPER_INPUT), np.int32)
        self.nfev, self.njev, self.nit = (np.zeros(k_all, np.int32) for _ in range(3))
        # the numbers behind each message
        self.last_reduction, self.last_step = nan(k_all), nan(k_all)
        self.x_norm, self.lam, self.cosine = nan(k_all), nan(k_all), nan(k_all)

    def store(self, idx: np.ndarray, state, cfg: LoopConfig, lb, ub) -> None:
        with np.errstate(over="ignore", invalid="ignore"):  # diverged problems: inf, nan
            self._store(idx, state, cfg, lb, ub)

    def _store(self, idx: np.ndarray, state, cfg: LoopConfig, lb, ub) -> None:
        x, fun = state.x, state.f
        rt, jt = (np.asarray(t) for t in rescale(cfg.loss, fun, state.j, cfg.f_scale))
        grad = np.einsum("kmn,km->kn", jt, rt)
        if cfg.bounded:  # the gradient components that push against an active bound
            tol = 1e-10 * np.maximum(1.0, np.abs(x))
            at_lb = x <= lb + tol * np.isfinite(lb)
            at_ub = x >= ub - tol * np.isfinite(ub)
            grad = np.where((at_lb & (grad > 0)) | (at_ub & (grad < 0)), 0.0, grad)
        self.x[idx], self.fun[idx], self.cost[idx] = x, fun, state.cost
        self.chisq[idx] = 2.0 * state.cost  # SciPy's convention, whatever the loss
        self.optimality[idx] = np.max(np.abs(grad), axis=1)
        gtol = state.status == int(Status.GTOL)  # its message quotes the gradient cosine
        if gtol.any():
            self.cosine[idx[gtol]] = np.asarray(gradient_cosine(
                grad[gtol], np.linalg.norm(rt[gtol], axis=1), np.linalg.norm(jt[gtol], axis=1)))
        self.pcov[idx] = unscaled_covariances(jt)
        self.status[idx], self.nfev[idx] = state.status, state.nfev
        self.njev[idx], self.nit[idx], self.lam[idx] = state.njev, state.nit, state.lam
        self.last_reduction[idx], self.last_step[idx] = state.last_reduction, state.last_step
        self.x_norm[idx] = state.x_norm


class BatchMessages(Sequence):
    """The K status messages of a batch, each formatted when read (a batch of 10⁶ fits does
    not build 10⁶ strings it may never show)."""

    def __init__(self, out: _Outputs, cfg: LoopConfig, npoints, n: int):
        self._status, self._out, self._cfg = out.status, out, cfg
        self._npoints, self._n = npoints, n

    def __len__(self) -> int:
        return len(self._status)

    def __getitem__(self, k):
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(len(self)))]
        status = Status(int(self._status[k]))
        o = self._out
        if status == Status.IMPROPER_INPUT:
            detail = f"{int(self._npoints[k])} points present for {self._n} parameters"
        elif status == Status.NON_FINITE and o.nit[k] == 0 and o.nfev[k] == 1:
            detail = "at p0"
        else:
            detail = termination_detail(status, self._cfg, cost=float(o.cost[k]),
                                        last_reduction=float(o.last_reduction[k]),
                                        last_step=float(o.last_step[k]),
                                        x_norm=float(o.x_norm[k]), nfev=int(o.nfev[k]),
                                        lam=float(o.lam[k]), cosine=float(o.cosine[k]))
        return status_message(status, detail)

    def __repr__(self) -> str:
        counts = ", ".join(f"{Status(int(v)).name}: {c}" for v, c in
                           zip(*np.unique(self._status, return_counts=True)))
        return f"BatchMessages({len(self)} messages; {counts})"
