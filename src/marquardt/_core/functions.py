"""The user's residual function as the host executor calls it: on NumPy arrays.

An ``Evaluator`` holds ``residual(x) -> r`` and ``residual_and_jacobian(x) -> (r, J)`` on one
problem with a leading axis (x (1, n), r (1, m), J (1, m, n)), float64 NumPy. The NumPy
evaluator here calls the user's function as SciPy does (a float64 ``ndarray`` x of shape (n,))
with finite differences or the user's ``jac``, and needs no TensorFlow; a TensorFlow model
gets a compiled one (``marquardt._backend.tensorflow.host_functions``).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from marquardt._backend.numpy import xp
from marquardt._core import numdiff

__all__ = ["Evaluator", "numpy_evaluator"]


class Evaluator(NamedTuple):
    """The residual function of one problem, for the host executor.

    Attributes:
        residual: x (1, n) → r (1, m).
        residual_and_jacobian: x (1, n) → (r (1, m), J (1, m, n)).
        jacobian_with_residual: J costs little beside r (autodiff of a compiled model): the
            executor evaluates both at every candidate.
        first: (r, J) at x0 when already computed, else None.
    """

    residual: Callable
    residual_and_jacobian: Callable
    jacobian_with_residual: bool = False
    first: tuple | None = None


def _as_vector(value, m: int, who: str) -> np.ndarray:
    r = np.asarray(value, dtype=np.float64)
    if r.shape != (m,):
        r = np.atleast_1d(r)
        if r.shape != (m,):
            raise ValueError(f"`{who}` must return the same shape (m,) = ({m},) at every call. "
                             f"Received: shape {r.shape}")
    return r


def _as_jacobian(value, m: int, n: int) -> np.ndarray:
    j = np.asarray(value, dtype=np.float64)
    if j.shape != (m, n):
        if j.size == m * n and m * n == 1:
            return j.reshape(1, 1)  # SciPy accepts a scalar or 1-D jac for m = n = 1
        raise ValueError(f"`jac` must return an array of shape (m, n) = ({m}, {n}). "
                         f"Received: shape {j.shape}")
    return j


def numpy_evaluator(fun: Callable, jac, n: int, m: int, lb: np.ndarray, ub: np.ndarray,
                    diff_step: float | None, who: str = "fun") -> Evaluator:
    """The evaluator of ``fun(x) -> r`` called on NumPy (n,) vectors.

    Args:
        fun: ``fun(x) -> r`` with extra arguments already bound; its output is converted to
            float64 (any array-like: NumPy, a TensorFlow eager tensor).
        jac: ``"2-point"`` or ``"3-point"`` (finite differences, SciPy's rules,
            ``marquardt._core.numdiff``), or a callable ``jac(x) -> J`` (m, n).
        n, m: the numbers of parameters and residuals.
        lb, ub: the bounds (1, n), for the finite-difference steps.
        diff_step: the relative finite-difference step (SciPy's default when None).
        who: the name of ``fun`` in error messages.
    """

    def residual(x):
        return _as_vector(fun(x[0]), m, who)[None]

    if callable(jac):
        def residual_and_jacobian(x):
            return residual(x), _as_jacobian(jac(x[0]), m, n)[None]
    else:
        def many(xs):  # (B, 1, n) -> (B, 1, m)
            return np.stack([residual(xs[b]) for b in range(xs.shape[0])])

        residual_and_jacobian = numdiff.finite_difference_jacobian(
            xp, residual, many, n, jac, lb, ub, diff_step)
    return Evaluator(residual=residual, residual_and_jacobian=residual_and_jacobian)
