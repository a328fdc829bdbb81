"""Finite-difference Jacobians with SciPy's step rules, for any executor.

``2-point`` (forward) and ``3-point`` (central) differences, as ``scipy.optimize`` takes them
(``_numdiff.approx_derivative``): step hᵢ = rel_step · sign(xᵢ) · max(1, |xᵢ|), rel_step =
ε^(1/2) or ε^(1/3); a step that would cross the upper bound is taken the other way, and a
central difference that would cross the lower bound becomes the one-sided second-order
formula (−3 f(x) + 4 f(x + h) − f(x + 2h)) / 2h. Batched over K problems, written against
the array namespace ``xp``; the caller says how the n perturbed points are evaluated
(``many``: a loop on the host, a vectorised map in a graph).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["finite_difference_jacobian", "default_rel_step"]


def default_rel_step(method: str) -> float:
    """SciPy's relative step: ε^(1/2) for ``2-point``, ε^(1/3) for ``3-point``."""
    eps = np.finfo(np.float64).eps
    return eps ** 0.5 if method == "2-point" else eps ** (1.0 / 3.0)


def finite_difference_jacobian(xp, residual: Callable, many: Callable, n: int, method: str,
                               lb, ub, rel_step: float | None = None) -> Callable:
    """``fn(x) -> (r, J)`` for x (K, n), J (K, m, n), by ``method`` differences.

    Args:
        xp: the array namespace.
        residual: ``residual(x) -> r`` (K, m).
        many: ``many(xs) -> rs`` for xs (B, K, n): the residuals at B points per problem.
        n: the number of parameters.
        method: ``"2-point"`` or ``"3-point"``.
        lb, ub: the bounds (K, n) (±inf for none).
        rel_step: the relative step; SciPy's default when None.
    """
    if rel_step is None:
        rel_step = default_rel_step(method)

    def fn(x):
        r = residual(x)
        sign = xp.where(xp.greater_equal(x, 0.0), xp.ones_like(x), -xp.ones_like(x))
        h = rel_step * sign * xp.maximum(xp.abs(x), 1.0)
        h = xp.where(xp.greater(x + h, ub), -xp.abs(h), h)  # away from a near upper bound
        h = (x + h) - x  # the step actually representable
        eye = xp.eye(n, dtype=x.dtype)  # (n, n)
        hx = xp.expand_dims(h, 0) * xp.expand_dims(eye, 1)  # (n, K, n): row i moves x_i
        ht = xp.expand_dims(xp.swapaxes(h, 0, 1), -1)  # (n, K, 1)
        x_b = xp.expand_dims(x, 0)
        f_plus = many(x_b + hx)
        if method == "2-point":
            cols = (f_plus - xp.expand_dims(r, 0)) / ht
        else:
            lo_ok = xp.expand_dims(xp.swapaxes(xp.greater_equal(x - h, lb), 0, 1), -1)
            central = (f_plus - many(x_b - hx)) / (2.0 * ht)
            one_sided = (-3.0 * xp.expand_dims(r, 0) + 4.0 * f_plus
                         - many(x_b + 2.0 * hx)) / (2.0 * ht)
            cols = xp.where(lo_ok, central, one_sided)
        return r, xp.transpose(cols, (1, 2, 0))

    return fn
