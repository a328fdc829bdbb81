"""``curve_fit_batch``'s results: the per-problem arrays filled as problems finish
(``BatchOutputs``) and the K status messages, formatted when read (``BatchMessages``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from marquardt._core.records import LoopConfig
from marquardt._covariance import unscaled_covariances
from marquardt._outcome import termination_detail
from marquardt._robust import model_rescale, rescale
from marquardt._status import Status, status_message
from marquardt._termination import STATIONARY_COSINE, gradient_cosine

__all__ = ["BatchOutputs", "BatchMessages"]


class BatchOutputs:
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

    def store(self, idx: np.ndarray, state, cfg: LoopConfig, lb, ub, grad=None, cov=None,
              ok=None) -> None:
        """The final states of problems ``idx``; ``grad`` (Jᵀr) and ``cov`` ((JᵀJ)⁻¹ where
        ``ok``) where the executor formed them already (the batch kernel, linear loss)."""
        with np.errstate(over="ignore", invalid="ignore"):  # diverged problems: inf, nan
            self._store(idx, state, cfg, lb, ub, grad, cov, ok)

    def _store(self, idx: np.ndarray, state, cfg: LoopConfig, lb, ub, grad, cov, ok) -> None:
        x, fun = state.x, state.f
        rt, jt = (np.asarray(t) for t in rescale(cfg.loss, fun, state.j, cfg.f_scale))
        if cfg.loss != "linear":  # J and r rescaled: the executor's are not these
            grad = cov = ok = None
        if grad is None:
            grad = np.einsum("kmn,km->kn", jt, rt)
        if cfg.bounded:  # the gradient components that push against an active bound
            tol = 1e-10 * np.maximum(1.0, np.abs(x))
            at_lb = x <= lb + tol * np.isfinite(lb)
            at_ub = x >= ub - tol * np.isfinite(ub)
            grad = np.where((at_lb & (grad > 0)) | (at_ub & (grad < 0)), 0.0, grad)
        self.x[idx], self.fun[idx], self.cost[idx] = x, fun, state.cost
        self.chisq[idx] = 2.0 * state.cost  # SciPy's convention, whatever the loss
        self.optimality[idx] = np.max(np.abs(grad), axis=1)
        # their messages quote the gradient cosine
        gtol = np.isin(state.status, (int(Status.GTOL), int(Status.STALLED)))
        if gtol.any():  # on the step's model, as the core measured it
            mrt, mjt = (np.asarray(t) for t in model_rescale(cfg.loss, fun[gtol],
                                                              state.j[gtol], cfg.f_scale))
            self.cosine[idx[gtol]] = np.asarray(gradient_cosine(
                grad[gtol], np.linalg.norm(mrt, axis=1), np.linalg.norm(mjt, axis=1)))
        if cov is None:
            self.pcov[idx] = unscaled_covariances(jt)
        else:  # NumPy's routes for the rest (the SVD's, or NaN for a J that is not finite)
            if not ok.all():
                cov[~ok] = unscaled_covariances(jt[~ok])
            self.pcov[idx] = cov
        self.status[idx], self.nfev[idx] = state.status, state.nfev
        self.njev[idx], self.nit[idx], self.lam[idx] = state.njev, state.nit, state.lam
        self.last_reduction[idx], self.last_step[idx] = state.last_reduction, state.last_step
        self.x_norm[idx] = state.x_norm


class BatchMessages(Sequence):
    """The K status messages of a batch, each formatted when read (a batch of 10⁶ fits does
    not build 10⁶ strings it may never show)."""

    def __init__(self, out: BatchOutputs, cfg: LoopConfig, npoints, n: int,
                 stationary: float = STATIONARY_COSINE):
        self._status, self._out, self._cfg = out.status, out, cfg
        self._stationary = stationary  # the solve's precision's (``stationary_cosine``)
        self._npoints, self._n = npoints, n

    def __len__(self) -> int:
        return len(self._status)

    def __getitem__(self, k):
        """One message for an integer; a list of them for a slice, an integer array or a
        boolean mask (``res.message[~res.success]``), as the other fields are indexed."""
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(len(self)))]
        if not isinstance(k, (int, np.integer)):
            rows = np.arange(len(self))[np.asarray(k)]
            if rows.ndim != 1:
                raise IndexError("`message` takes an integer, a slice, or a 1-D array of "
                                 "indices or booleans. Received: an index of shape "
                                 f"{np.shape(k)}")
            return [self[int(i)] for i in rows]
        status = Status(int(self._status[k]))
        o = self._out
        if status == Status.IMPROPER_INPUT:
            detail = f"{int(self._npoints[k])} points present for {self._n} parameters"
        elif (status == Status.NON_FINITE and o.nit[k] == 0
              and o.nfev[k] <= 1 + self._cfg.jac_nfev):  # r (and a difference J) at p0 only
            detail = "at p0"
        else:
            detail = termination_detail(status, self._cfg, cost=float(o.cost[k]),
                                        last_reduction=float(o.last_reduction[k]),
                                        last_step=float(o.last_step[k]),
                                        x_norm=float(o.x_norm[k]), nfev=int(o.nfev[k]),
                                        lam=float(o.lam[k]), cosine=float(o.cosine[k]),
                                        stationary=self._stationary)
        return status_message(status, detail)

    def __repr__(self) -> str:
        counts = ", ".join(f"{Status(int(v)).name}: {c}" for v, c in
                           zip(*np.unique(self._status, return_counts=True)))
        return f"BatchMessages({len(self)} messages; {counts})"
