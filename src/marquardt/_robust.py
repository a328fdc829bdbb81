"""Robust loss functions for least squares, with SciPy's definitions and conventions.

A loss ρ(z) acts on z = (r / f_scale)²; the cost is F = ½ Σ f_scale² ρ(zᵢ). Each function below
returns (ρ, ρ′, ρ″) evaluated at z (scipy.optimize.least_squares documents the same five).

Two rescalings of r and J, both with J̃ᵀr̃ = ρ′ Jᵀr, the exact gradient of F:

* ``model_rescale``, the Gauss-Newton model the LM step is taken on (Ceres' ``Corrector``,
  ``internal/ceres/corrector.cc``): where ρ″ > 0, the curvature correction of Triggs et al.
  (2000, "Bundle adjustment — a modern synthesis", §4.3)::

      α = ρ′ + 2 ρ″ z,  r̃ = (ρ′ / √α) r,  J̃ = √α J;

  where ρ″ ≤ 0 (every robust loss here, everywhere), the iteratively reweighted form
  r̃ = √ρ′ r, J̃ = √ρ′ J. For ρ″ < 0 the corrected curvature α falls to zero (huber beyond
  f_scale) or below (cauchy and arctan for z > 1, 1/√3): floored at EPS, as SciPy does, it
  leaves a model with no curvature along the outliers, whose minimiser is at infinity, and
  a residual r̃ = ρ′r/√EPS ~ 10⁸ ρ′r. Under a trust region (SciPy's ``trf``) the radius bounds
  that step; under LM damping λ must climb to ~10¹⁶ before a step is accepted, and once the
  points come back into the quadratic zone diag(J̃ᵀJ̃), the Marquardt scaling, grows by 15
  orders of magnitude under that λ: the steps shrink to 1e-16 and ``ftol``/``xtol`` stop far
  from the minimum (issue #14); the gradient cosine divided by ‖r̃‖ ~ 10⁸ ‖r‖ means nothing
  either. The reweighted model keeps ρ′ JᵀJ ⪰ the true Gauss-Newton curvature; since every
  ρ here is concave in z, ½ Σ ρ′(zₖ) rᵢ² + const majorises the cost of the linearised
  residuals (the majorise-minimise argument behind IRLS), so a step of the model is never
  more optimistic than the cost it is judged on.
* ``rescale``, SciPy's ``scale_for_robust_loss_function`` (Triggs with α floored at EPS):
  what ``OptimizeResult.jac`` and ``fun`` report, as SciPy's ``least_squares`` does.

Either way the gain ratio and acceptance compare the true robust costs F (``robust_cost``).
"""

from __future__ import annotations

from marquardt._xp import array_namespace

__all__ = ["LOSSES", "loss_terms", "robust_cost", "cost_terms", "rescale", "model_rescale"]

EPS = 2.220446049250313e-16


def _linear(z, xp=None):
    xp = xp or array_namespace(z)
    return z, xp.ones_like(z), xp.zeros_like(z)


def _soft_l1(z, xp=None):
    xp = xp or array_namespace(z)
    t = 1.0 + z
    s = xp.sqrt(t)
    return 2.0 * (s - 1.0), 1.0 / s, -0.5 / (t * s)


def _huber(z, xp=None):
    xp = xp or array_namespace(z)
    small = xp.less_equal(z, 1.0)
    sz = xp.sqrt(xp.maximum(z, 1.0))
    rho = xp.where(small, z, 2.0 * sz - 1.0)
    d1 = xp.where(small, xp.ones_like(z), 1.0 / sz)
    d2 = xp.where(small, xp.zeros_like(z), -0.5 / (sz * xp.maximum(z, 1.0)))
    return rho, d1, d2


def _cauchy(z, xp=None):
    xp = xp or array_namespace(z)
    t = 1.0 + z
    return xp.log1p(z), 1.0 / t, -1.0 / (t * t)


def _arctan(z, xp=None):
    xp = xp or array_namespace(z)
    t = 1.0 + z * z
    return xp.arctan(z), 1.0 / t, -2.0 * z / (t * t)


#: name → ρ(z) returning (ρ, ρ′, ρ″); the five of ``scipy.optimize.least_squares``.
LOSSES = {
    "linear": _linear,
    "soft_l1": _soft_l1,
    "huber": _huber,
    "cauchy": _cauchy,
    "arctan": _arctan,
}


def loss_terms(loss, r, f_scale: float, xp=None):
    """(ρ, ρ′, ρ″) at z = (r / f_scale)², with ρ scaled to cost units (× f_scale²).

    ``loss`` is a name of ``LOSSES`` or, as in SciPy, a callable ``loss(z) -> (3, m)`` array
    of ρ, ρ′, ρ″ for z of shape (m,) (NumPy; called per problem)."""
    xp = xp or array_namespace(r)
    z = (r / f_scale) ** 2
    if callable(loss):
        terms = xp.stack([xp.asarray(loss(zk), dtype=z.dtype) for zk in z])  # (K, 3, m)
        rho, d1, d2 = terms[:, 0], terms[:, 1], terms[:, 2]
    else:
        rho, d1, d2 = LOSSES[loss](z, xp)
    return rho * f_scale**2, d1, d2 / f_scale**2


def robust_cost(loss: str, r, f_scale: float, xp=None):
    """F = ½ Σ f_scale² ρ((r / f_scale)²) over the last axis."""
    xp = xp or array_namespace(r)
    if loss == "linear":
        return 0.5 * xp.sum(r * r, axis=-1)
    rho, _, _ = loss_terms(loss, r, f_scale, xp)
    return 0.5 * xp.sum(rho, axis=-1)


def cost_terms(loss: str, r, f_scale: float, xp=None):
    """The per-residual terms ½ f_scale² ρ((rᵢ / f_scale)²) whose sum is the cost."""
    xp = xp or array_namespace(r)
    if loss == "linear":
        return 0.5 * r * r
    rho, _, _ = loss_terms(loss, r, f_scale, xp)
    return 0.5 * rho


def rescale(loss: str, r, j, f_scale: float, xp=None):
    """(r̃, J̃) for the LM step under a robust loss (identity for ``linear``)."""
    if loss == "linear":
        return r, j
    xp = xp or array_namespace(r, j)
    _, d1, d2 = loss_terms(loss, r, f_scale, xp)
    alpha = xp.maximum(d1 + 2.0 * d2 * r * r, EPS)
    sa = xp.sqrt(alpha)
    return r * d1 / sa, j * xp.expand_dims(sa, -1)


def model_rescale(loss: str, r, j, f_scale: float, xp=None):
    """(r̃, J̃) of the Gauss-Newton model of the LM step (identity for ``linear``): Triggs'
    correction where ρ″ > 0 (there α = ρ′ + 2ρ″z > ρ′), the reweighted √ρ′ r, √ρ′ J
    elsewhere (Ceres' ``Corrector``; the module docstring says why)."""
    if loss == "linear":
        return r, j
    xp = xp or array_namespace(r, j)
    _, d1, d2 = loss_terms(loss, r, f_scale, xp)
    d1 = xp.maximum(d1, EPS)
    alpha = xp.where(xp.greater(d2, 0.0), d1 + 2.0 * d2 * r * r, d1)
    sa = xp.sqrt(alpha)
    return r * d1 / sa, j * xp.expand_dims(sa, -1)
