"""``curve_fit_batch`` on the host executor: a NumPy model (or a JAX model differenced on the
host) solved by the LM core over chunks of problems as NumPy arrays (``marquardt._core.host``),
the model called for many problems at once where it broadcasts
(``_core.functions.model_evaluator``)."""

from __future__ import annotations

from typing import Callable

import numpy as np

from marquardt._core import host
from marquardt._core.functions import model_evaluator
from marquardt._errors import NoGradientError

__all__ = ["HOST_CHUNK", "host_model", "solve_on_host"]


def host_model(f: Callable) -> Callable:
    """A JAX model evaluated on the host (finite differences): float64, NumPy out."""
    from marquardt._values import x64_if_jax

    def model(x, *params):
        with x64_if_jax():
            return np.asarray(f(x, *params))
    return model


#: Problems iterated together by the host executor (a NumPy model): large enough that the
#: iteration's Python overhead is shared, small enough to keep the Jacobians (HOST_CHUNK × m
#: × n floats) modest.
HOST_CHUNK = 8192


def solve_on_host(f, jac, x, shared_x, y, present, inv_sigma, p0, lb, ub, d_fixed, cfg,
                   diff_step, todo, store, f_dtype, typical, batch_model=None,
                   threads: int = 1) -> None:
    """A NumPy model: the host executor on chunks of at most ``HOST_CHUNK`` problems, each
    iteration on the problems still running (no compilation, no TensorFlow). ``f_dtype``: what
    the model returns (its finite-difference steps' precision, as in ``curve_fit``);
    ``typical``: the parameters' typical sizes (K, n) for those steps, from the starts as
    given (``numdiff.typical_magnitudes``); ``batch_model``: a JAX model jitted per padded
    shape (``model_evaluator``'s), or None; ``threads``: chunks solved side by side (a
    multiple of that many chunks, of equal sizes), their results stored in order by this
    thread."""
    if jac in ("forward", "reverse"):
        raise NoGradientError(
            f"`f` cannot be differentiated by TensorFlow: it returned NumPy values, so "
            f"jac={jac!r} has nothing to differentiate. Write it with TensorFlow ops for exact "
            "Jacobians, or pass jac='2-point' (or '3-point', or a callable) to use finite "
            "differences.")
    n = p0.shape[1]
    w = present.astype(np.float64)
    if inv_sigma is not None:
        w = w * inv_sigma
    # difference steps relative to the starts' magnitudes, as curve_fit's
    evaluator = model_evaluator(f, "2-point" if jac == "auto" else jac, x, shared_x,
                                np.where(present, y, 0.0), w, n, lb, ub, diff_step, f_dtype,
                                typical=typical, batch_model=batch_model)
    d = np.broadcast_to(d_fixed, (p0.shape[0], n))
    threads = max(1, min(threads, todo.size))
    if threads == 1:
        chunks = [todo[start:start + HOST_CHUNK] for start in range(0, todo.size, HOST_CHUNK)]
    else:  # a multiple of the threads, of equal sizes
        parts = -(-todo.size // HOST_CHUNK)
        chunks = np.array_split(todo, -(-parts // threads) * threads)

    def solve(idx):
        state, _ = host.run(cfg, _Rows(evaluator, idx), p0[idx], lb[idx], ub[idx],
                            np.ascontiguousarray(d[idx]))
        return idx, state

    if threads == 1:
        for idx in chunks:
            store(*solve(idx))
        return
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(threads) as pool:
        for idx, state in pool.map(solve, chunks):
            store(idx, state)


class _Rows:
    """An evaluator over problems ``idx``: the host executor's problem k is problem idx[k]."""

    jacobian_with_residual = False
    first = None

    def __init__(self, evaluator, idx):
        self._e, self._idx = evaluator, idx
        if evaluator.jacobian is None:
            self.jacobian = None

    def residual(self, p, problems):
        return self._e.residual(p, self._idx[problems])

    def residual_and_jacobian(self, p, problems):
        return self._e.residual_and_jacobian(p, self._idx[problems])

    def jacobian(self, p, r, problems):
        return self._e.jacobian(p, r, self._idx[problems])
