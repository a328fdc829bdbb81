"""The damping matrix D of ``(JᵀJ + λD) δ = −Jᵀr``, stored as its diagonal ``d``.

* ``identity``: D = I, Levenberg (1944). λ then has the units of JᵀJ, and one λ damps all
  parameters alike whatever their units.
* ``marquardt``: D = diag(JᵀJ), Marquardt (1963), made robust as in MINPACK (Moré 1978,
  ``lmder``'s ``mode = 1``) and Ceres: a running maximum over iterations, so that a column that
  shrinks never makes its parameter undamped, and zero columns start at 1. The step is then
  invariant to rescaling the parameters. This is SciPy's ``x_scale='jac'``.
* ``fixed``: D = diag(1 / x_scale²) from a user's characteristic scales (SciPy's ``x_scale``).
"""

from __future__ import annotations

from marquardt._xp import array_namespace

__all__ = ["marquardt_diagonal", "MIN_DIAGONAL"]

#: Floor on the Marquardt diagonal, so that D stays invertible (Ceres' ``min_lm_diagonal``
#: is 1e-6 on its own scaling; ours is relative-free and only guards division by zero).
MIN_DIAGONAL = 1e-300


def marquardt_diagonal(d_prev, diag_a, xp=None):
    """Running-max Marquardt diagonal: ``max(d_prev, diag(JᵀJ))``, with zero entries set to 1.

    Args:
        d_prev: the previous diagonal, or ``None`` at the first iteration.
        diag_a: diag(JᵀJ) at the current point (squared column norms of J).
    """
    xp = xp or array_namespace(diag_a, d_prev)
    fresh = xp.where(xp.greater(diag_a, 0.0), diag_a, xp.ones_like(diag_a))
    if d_prev is None:
        return xp.maximum(fresh, MIN_DIAGONAL)
    return xp.maximum(d_prev, xp.maximum(diag_a, MIN_DIAGONAL))
