"""Robust loss functions for least squares, with SciPy's definitions and conventions.

A loss ρ(z) acts on z = (r / f_scale)²; the cost is F = ½ Σ f_scale² ρ(zᵢ). Each function below
returns (ρ, ρ′, ρ″) evaluated at z (scipy.optimize.least_squares documents the same five).

The LM step is taken on rescaled residuals and Jacobian (Triggs et al. 2000, "Bundle adjustment
— a modern synthesis", §4.3; the correction SciPy and Ceres apply):

    α = ρ′ + 2 ρ″ z  (floored at EPS),  r̃ = (ρ′ / √α) r,  J̃ = √α J,

so that J̃ᵀr̃ = ρ′ Jᵀr is the exact gradient of F and J̃ᵀJ̃ its Gauss-Newton Hessian, including
the curvature of ρ.
"""

from __future__ import annotations

from keras import ops

__all__ = ["LOSSES", "loss_terms", "robust_cost", "rescale"]

EPS = 2.220446049250313e-16


def _linear(z):
    return z, ops.ones_like(z), ops.zeros_like(z)


def _soft_l1(z):
    t = 1.0 + z
    s = ops.sqrt(t)
    return 2.0 * (s - 1.0), 1.0 / s, -0.5 / (t * s)


def _huber(z):
    small = ops.less_equal(z, 1.0)
    sz = ops.sqrt(ops.maximum(z, 1.0))
    rho = ops.where(small, z, 2.0 * sz - 1.0)
    d1 = ops.where(small, ops.ones_like(z), 1.0 / sz)
    d2 = ops.where(small, ops.zeros_like(z), -0.5 / (sz * ops.maximum(z, 1.0)))
    return rho, d1, d2


def _cauchy(z):
    t = 1.0 + z
    return ops.log1p(z), 1.0 / t, -1.0 / (t * t)


def _arctan(z):
    t = 1.0 + z * z
    return ops.arctan(z), 1.0 / t, -2.0 * z / (t * t)


#: name → ρ(z) returning (ρ, ρ′, ρ″); the five of ``scipy.optimize.least_squares``.
LOSSES = {
    "linear": _linear,
    "soft_l1": _soft_l1,
    "huber": _huber,
    "cauchy": _cauchy,
    "arctan": _arctan,
}


def loss_terms(loss: str, r, f_scale: float):
    """(ρ, ρ′, ρ″) at z = (r / f_scale)², with ρ scaled to cost units (× f_scale²)."""
    z = (r / f_scale) ** 2
    rho, d1, d2 = LOSSES[loss](z)
    return rho * f_scale**2, d1, d2 / f_scale**2


def robust_cost(loss: str, r, f_scale: float):
    """F = ½ Σ f_scale² ρ((r / f_scale)²) over the last axis."""
    if loss == "linear":
        return 0.5 * ops.sum(r * r, axis=-1)
    rho, _, _ = loss_terms(loss, r, f_scale)
    return 0.5 * ops.sum(rho, axis=-1)


def rescale(loss: str, r, j, f_scale: float):
    """(r̃, J̃) for the LM step under a robust loss (identity for ``linear``)."""
    if loss == "linear":
        return r, j
    _, d1, d2 = loss_terms(loss, r, f_scale)
    alpha = ops.maximum(d1 + 2.0 * d2 * r * r, EPS)
    sa = ops.sqrt(alpha)
    return r * d1 / sa, j * ops.expand_dims(sa, -1)
