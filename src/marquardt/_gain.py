"""Predicted reduction and gain ratio of an LM step.

Glossary (used throughout the step code):

* r — residual vector (m,); cost F(x) = ½‖r‖² (robust losses rescale r and J first).
* J — Jacobian ∂r/∂x (m, n); g = Jᵀr the gradient of F.
* λ — damping; D = diag(d) the damping matrix; δ — the step; p — the step actually taken
  (δ projected onto the bounds).
* L(p) = F + gᵀp + ½‖Jp‖² — the Gauss-Newton model of F(x + p).
* ρ = (F(x) − F(x + p)) / (L(0) − L(p)) — gain ratio, actual over predicted reduction.

For the unprojected LM step, (JᵀJ + λD)δ = −g gives the cheaper identity
L(0) − L(δ) = ½ δᵀ(λDδ − g) (Madsen, Nielsen & Tingleff 2004, eq. 3.14), which needs no J
(the Keras trainer only holds JᵀJ). Both forms are positive for a proper step.
"""

from __future__ import annotations

from marquardt._xp import array_namespace

__all__ = ["predicted_reduction", "quadratic_reduction", "gain_ratio",
           "gain_ratio_with_noise_floor"]


def predicted_reduction(g, delta, lam, d, xp=None):
    """L(0) − L(δ) = ½ δᵀ(λDδ − g) for the exact LM step δ (batched over leading dims)."""
    xp = xp or array_namespace(g, delta)
    return 0.5 * xp.sum(delta * (xp.expand_dims(lam, -1) * d * delta - g), axis=-1)


def quadratic_reduction(g, curvature, p, xp=None):
    """L(0) − L(p) = −gᵀp − ½ pᵀAp for any step p (projected steps too), given the curvature
    term pᵀAp (A = JᵀJ: ‖Jp‖² when J is held, from the normal equations when it is not)."""
    xp = xp or array_namespace(g, p)
    return -xp.sum(g * p, axis=-1) - 0.5 * curvature


def gain_ratio(actual, predicted, xp=None):
    """ρ = actual / predicted reduction; −∞ when the prediction is not positive or the actual
    reduction is not finite (a step into NaN land is a failed step)."""
    xp = xp or array_namespace(actual, predicted)
    ok = xp.logical_and(xp.greater(predicted, 0.0), xp.isfinite(actual))
    return xp.where(ok, actual / xp.where(ok, predicted, 1.0), float("-inf"))


def gain_ratio_with_noise_floor(actual, predicted, cost, noise, xp=None):
    """ρ as ``gain_ratio``, except that a step whose predicted and actual changes of F are both
    at or below the rounding level of F (``noise · |F|``) counts as a good step (ρ = 1).

    Near a minimum the predicted reduction ½δᵀ(λDδ − g) falls below what F can resolve; its
    ratio to the measured change is then noise, and the plain gain ratio would reject the step
    and drive λ to its ceiling one or two Gauss-Newton steps short of the minimiser. A step
    with a non-positive prediction or a non-finite actual change still gets ρ = −∞.

    Args:
        actual: F(x) − F(x + δ).
        predicted: L(0) − L(δ).
        cost: F(x), the cost at the start point.
        noise: relative rounding level of F, e.g. 16 ulps of the model's dtype
            (16 · 2⁻²³ for float32).
    """
    xp = xp or array_namespace(actual, predicted)
    rho = gain_ratio(actual, predicted, xp)
    level = noise * xp.abs(cost)
    tiny = xp.logical_and(xp.logical_and(xp.greater(predicted, 0.0),
                                         xp.less_equal(predicted, level)),
                          xp.less_equal(xp.abs(actual), level))
    return xp.where(tiny, xp.ones_like(rho), rho)
