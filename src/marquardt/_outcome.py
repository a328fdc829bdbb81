"""Turning a solve's final state into results: ``OptimizeResult``, the status message with its
measured numbers, the per-iteration history and the Python hook behind ``verbose=2`` and
``callback``."""

from __future__ import annotations

import inspect

import numpy as np

from marquardt._core.records import HISTORY_FIELDS, LoopConfig
from marquardt._result import OptimizeResult
from marquardt._robust import model_rescale, rescale
from marquardt._status import Status, status_message
from marquardt._summary import IterationSummary, ProgressPrinter
from marquardt._termination import STATIONARY_COSINE, gradient_cosine

__all__ = ["make_hook", "build_result", "termination_detail"]


def make_hook(callback, verbose):
    """Python hook run from the compiled loop after each iteration; returns True to stop."""
    if callback is None and verbose < 2:
        return None
    printer = ProgressPrinter() if verbose >= 2 else None
    wants_result = _takes_intermediate_result(callback)

    def hook(row: np.ndarray, x: np.ndarray, f: np.ndarray) -> bool:
        summary = _summary_from_row(row)
        if not _took_place(summary):
            return False
        if printer is not None:
            printer(summary)
        if callback is None or summary.iteration == 0:
            return False
        # SciPy's intermediate_result (x, fun, nit, nfev, cost) and our iteration summary
        info = OptimizeResult(x=x.copy(), fun=np.array(f, dtype=np.float64),
                              **summary._asdict(), nit=summary.iteration)
        try:
            if wants_result:
                return bool(callback(intermediate_result=info))
            return bool(callback(info.x.copy()))
        except StopIteration:
            return True

    return hook


def _takes_intermediate_result(callback) -> bool:
    """SciPy's rule (``scipy.optimize._optimize._wrap_callback``): a callback whose only
    parameter is named ``intermediate_result`` is passed the ``OptimizeResult`` (by that
    keyword); any other callback is passed a copy of x, ``callback(x)``."""
    if callback is None:
        return False
    try:
        parameters = inspect.signature(callback).parameters
    except (TypeError, ValueError):  # a builtin without a signature: SciPy's callback(x)
        return False
    return set(parameters) == {"intermediate_result"}


def _took_place(summary: IterationSummary) -> bool:
    """The start point, or an iteration that made an attempt. An iteration whose start already
    ended the fit (the gradient test, ``goal``, or no room in ``max_nfev`` for one more step:
    ``_core.iteration.prepare``) leaves a record with no attempt in every executor's table;
    it is no iteration for the user (SciPy's ``nit`` does not count it, nor does ours), so it
    is neither printed, passed to the callback, nor kept in the history."""
    return summary.iteration == 0 or summary.attempts > 0


def _summary_from_row(row) -> IterationSummary:
    """The ``IterationSummary`` of one ``HISTORY_FIELDS`` row (an array or a list of floats)."""
    it, cost, change, gnorm, step, rho, lam, accepted, attempts, nfev = (
        row.tolist() if hasattr(row, "tolist") else [float(a) for a in row])
    return IterationSummary(int(it), cost, change, gnorm, step, rho, lam, bool(accepted),
                            int(attempts), int(nfev))


def _history(rows) -> list[IterationSummary]:
    """The ``IterationSummary`` of each ``HISTORY_FIELDS`` row that ``_took_place``: what
    ``_summary_from_row`` and ``_took_place`` make of each row, formed in one loop (a warm
    small fit's history is built at its end, a row per iteration)."""
    if len(rows) == 0:  # (a fit that kept no history)
        return []
    make, summary = tuple.__new__, IterationSummary
    out = []
    for it, cost, change, gnorm, step, rho, lam, accepted, attempts, nfev in \
            np.asarray(rows).tolist():
        it, attempts = int(it), int(attempts)
        if it == 0 or attempts > 0:
            out.append(make(summary, (it, cost, change, gnorm, step, rho, lam, bool(accepted),
                                      attempts, int(nfev))))
    return out


#: ``Status`` by value, without the enum's call per result.
_STATUS = {int(s): s for s in Status}


def build_result(state, rows, cfg: LoopConfig, lb, ub, *, detail: bool = True
                 ) -> OptimizeResult:
    """The ``OptimizeResult`` of problem 0 of ``state`` (NumPy arrays with the problems'
    axis, or one problem's state as ``host.run(..., batched=False)`` returns it: its
    per-problem values scalars), with the history ``rows`` (one ``HISTORY_FIELDS`` row per
    iteration). ``detail`` False: a successful fit's message without its measured numbers
    (the status's sentence alone), for a caller that shows no successful fit's message
    (``curve_fit`` without ``full_output``: its gradient cosine alone costs a tenth of a
    warm fit's Python); a failed fit's message always has them."""
    if getattr(state.cost, "ndim", 0):  # (K,) arrays (or tensors): problem 0's values
        state = type(state)._make(map(np.asarray, state))
    x = state.x[0]
    f = state.f[0]
    j = state.j[0]
    rt, jt = rescale(cfg.loss, state.f, state.j, cfg.f_scale)
    rt, jt = rt[0], jt[0]
    grad = jt.T @ rt
    active = np.zeros(x.size, dtype=int)
    if cfg.bounded:
        tol = 1e-10 * np.maximum(1.0, np.abs(x))
        active[x <= lb + tol * np.isfinite(lb)] = -1
        active[x >= ub - tol * np.isfinite(ub)] = 1
        projected = np.where(((active == -1) & (grad > 0)) | ((active == 1) & (grad < 0)), 0.0, grad)
    else:
        projected = grad
    code = int(_first(state.status))
    status = _STATUS[code] if code in _STATUS else Status(code)
    nfev, nit = int(_first(state.nfev)), int(_first(state.nit))
    cost, lam = float(_first(state.cost)), float(_first(state.lam))
    detail = _detail(status, state, cfg, projected, cost, nfev, nit, lam) if (
        detail or not status.success) else ""
    return OptimizeResult(
        x=x, cost=cost, fun=f, jac=jt, grad=grad,
        optimality=_largest_magnitude(projected),
        active_mask=active, nfev=nfev, njev=int(_first(state.njev)),
        status=int(status), message=status_message(status, detail), success=status.success,
        nit=nit, damping=lam, history=_history(rows),
        raw_jac=j,
    )


def _largest_magnitude(g: np.ndarray) -> float:
    """``float(np.abs(g).max())`` (0.0 for an empty g), on Python floats: |gⱼ| and their
    maximum are exact, so the same number; NaN where g holds one, as NumPy's maximum."""
    values = [abs(v) for v in g.tolist()]
    if not values:
        return 0.0
    top = max(values)
    return top if all(v == v for v in values) else float("nan")


def _first(value):
    """Problem 0's value of a per-problem field: a (K,) array's first, a scalar itself."""
    return value[0] if getattr(value, "ndim", 0) else value


def _detail(status, state, cfg, grad, cost: float, nfev: int, nit: int, lam: float) -> str:
    cosine = None
    if status in (Status.GTOL, Status.STALLED):  # on the step's model, as the core measured it
        mrt, mjt = (t[0] for t in model_rescale(cfg.loss, state.f, state.j, cfg.f_scale))
        cosine = float(gradient_cosine(np.asarray(grad)[None], np.linalg.norm(mrt)[None],
                                       np.linalg.norm(mjt, axis=0)[None])[0])
    detail = termination_detail(status, cfg, cost=cost,
                                last_reduction=float(_first(state.last_reduction)),
                                last_step=float(_first(state.last_step)),
                                x_norm=float(_first(state.x_norm)), nfev=nfev, lam=lam,
                                cosine=cosine)
    if status == Status.NON_FINITE and nit > 0:
        return NON_FINITE_JACOBIAN
    if status == Status.GTOL and cost > 0.0 and not np.any(mjt):
        # MINPACK's and SciPy's gtol success too, but the cosine 0 is 0/0: say what it means
        detail += ZERO_JACOBIAN
    return detail


#: The detail of ``NON_FINITE`` after an accepted step: a candidate with non-finite residuals
#: is rejected, so it is the Jacobian at the accepted point (benchmarks/zoo.py, Richards from
#: 2× off: the fit ran to the edge of the model's domain, 1 + ν e^{k t_m} = 1.6e-8 > 0, and a
#: difference step crossed it; √(1 − p) + c from p = 0.5: p = 1 − 1e-8, steps of 1.5e-8).
NON_FINITE_JACOBIAN = ("the Jacobian at x, the last accepted point, whose residuals are "
                       "finite: a derivative there is not, or a difference step left the "
                       "model's domain; bounds can keep the parameters inside it")


#: Added to the ``gtol`` message where every column of J is zero at a non-zero residual: the
#: cosine's 0 then only says that no parameter moves the residuals (to working precision), as
#: on a plateau of the model (benchmarks/zoo.py, Eyring from ΔH 10× too large: k ≈ 1e-92
#: against data of 0.1, so r = −y exactly and a differenced J is 0; SciPy's ``lm`` and
#: ``trf`` report the same success at x₀).
ZERO_JACOBIAN = ("; but the Jacobian is zero: no parameter changes the residuals here (to "
                 "working precision), as on a plateau of the model (an exponential that "
                 "underflowed?); x may be far from a minimum")


def termination_detail(status, cfg: LoopConfig, *, cost: float, last_reduction: float,
                       last_step: float, x_norm: float, nfev: int, lam: float,
                       cosine: float | None = None,
                       stationary: float = STATIONARY_COSINE) -> str:
    """The measured numbers behind a termination ``status`` and their thresholds, for its
    message (``cosine``: the gradient cosine, needed for ``GTOL``; ``stationary``: the
    stationarity threshold of the fit's precision, ``_termination.stationary_cosine``)."""
    if status == Status.GTOL:
        return f"gradient cosine {cosine:.3g} <= gtol {cfg.gtol:g}"
    if status in (Status.FTOL, Status.FTOL_XTOL, Status.XTOL):
        parts = []
        if status != Status.XTOL:
            cost_before = cost + max(last_reduction, 0.0)
            rel = last_reduction / cost_before if cost_before > 0 else 0.0
            parts.append(
                f"relative cost reduction {rel:.3g} < ftol {cfg.ftol:g}" if rel >= 0 else
                f"the last step's cost change ({rel:.3g} relative) is at rounding level, "
                f"below ftol {cfg.ftol:g}")
        if status != Status.FTOL:
            rel = last_step / (cfg.xtol + x_norm)
            parts.append(f"relative step {rel:.3g} < xtol {cfg.xtol:g}")
        return "; ".join(parts)
    if status == Status.MAX_NFEV:
        if nfev < cfg.max_nfev:  # no room for a step and the Jacobian after it
            need = (f"{1 + cfg.jac_nfev} evaluations (1 for its residuals, {cfg.jac_nfev} "
                    "for the Jacobian after it)" if cfg.jac_nfev else "1 evaluation")
            return f"nfev {nfev}: one more step needs {need}, past max_nfev {cfg.max_nfev}"
        return f"nfev {nfev} >= max_nfev {cfg.max_nfev}"
    if status == Status.DAMPING_LIMIT:
        return f"lambda {lam:.3g}"
    if status == Status.STALLED:
        return f"lambda {lam:.3g}; gradient cosine {cosine:.3g} > {stationary:.3g}"
    return ""
