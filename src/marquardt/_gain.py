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

from keras import ops

__all__ = ["predicted_reduction", "model_reduction", "gain_ratio",
           "gain_ratio_with_noise_floor"]


def predicted_reduction(g, delta, lam, d):
    """L(0) − L(δ) = ½ δᵀ(λDδ − g) for the exact LM step δ (batched over leading dims)."""
    return 0.5 * ops.sum(delta * (ops.expand_dims(lam, -1) * d * delta - g), axis=-1)


def model_reduction(g, jp, p):
    """L(0) − L(p) = −gᵀp − ½‖Jp‖² for any step p, given Jp (valid for projected steps)."""
    return -ops.sum(g * p, axis=-1) - 0.5 * ops.sum(jp * jp, axis=-1)


def gain_ratio(actual, predicted):
    """ρ = actual / predicted reduction; −∞ when the prediction is not positive or the actual
    reduction is not finite (a step into NaN land is a failed step)."""
    ok = ops.logical_and(ops.greater(predicted, 0.0), ops.isfinite(actual))
    safe = ops.where(ok, predicted, ops.ones_like(predicted))
    return ops.where(ok, actual / safe, ops.full_like(actual, float("-inf")))


def gain_ratio_with_noise_floor(actual, predicted, cost, noise):
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
    rho = gain_ratio(actual, predicted)
    level = noise * ops.abs(cost)
    tiny = ops.logical_and(ops.logical_and(ops.greater(predicted, 0.0),
                                           ops.less_equal(predicted, level)),
                           ops.less_equal(ops.abs(actual), level))
    return ops.where(tiny, ops.ones_like(rho), rho)
