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
           "gain_ratio_with_noise_floor", "at_noise_floor", "gain_ratio_at_rounding",
           "ROUNDING_CHANGE"]

#: The rounding of a change of the cost, in units of ε ‖r‖ Σⱼ ‖Jⱼ‖ |xⱼ|
#: (``gain_ratio_at_rounding``). Each residual carries a rounding error of a few ε times the
#: size of the model's terms, at most ε Σⱼ |Jᵢⱼ xⱼ| for a model linear in a parameter, so that
#: F(x) − F(x + p) = Σᵢ rᵢ (rᵢ − rᵢ(x + p)) + ... is uncertain by about ε ‖r‖ Σⱼ ‖Jⱼ‖ |xⱼ|.
#: 10: the mean NIST LRE of ``damping='trust-region'`` is the same (9.92 with the hand models
#: and exact Jacobians of ``tests/nist_models.py``) for 1, 10 and 100.
ROUNDING_CHANGE = 10.0


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
    return xp.where(at_noise_floor(actual, predicted, cost, noise, xp), xp.ones_like(rho), rho)


def at_noise_floor(actual, predicted, cost, noise, xp=None):
    """(…,) bool: the step's predicted reduction is positive and it and the actual change of
    F are both at or below ``noise · |F|``, where ``gain_ratio_with_noise_floor`` sets ρ = 1."""
    xp = xp or array_namespace(actual, predicted)
    level = noise * xp.abs(cost)
    return xp.logical_and(xp.logical_and(xp.greater(predicted, 0.0),
                                         xp.less_equal(predicted, level)),
                          xp.less_equal(xp.abs(actual), level))


def gain_ratio_at_rounding(rho, actual, predicted, level, stationary, xp=None):
    """ρ, or 1 where the step's predicted reduction and its actual change of F are both at or
    below ``level``, the rounding of F's changes, at a point that is ``stationary``.

    Near a minimum of a fit whose residuals are small next to the model's values (NIST's
    Lanczos3: ‖r‖ = 1e-4 on data of size 1), the Gauss-Newton step's predicted reduction falls
    below what the residuals can resolve (their rounding, of order ε times the model's values,
    not ε times r). Its gain ratio is then the ratio of two rounding errors: negative as often
    as not, so that the step is rejected, the damping rises and the fit ends by ``xtol`` on the
    shrunken steps one Gauss-Newton step short of the least-squares point (LRE 6.1 against
    7.6 with the step taken). The model's step is the better estimate there: J and r are
    exact to rounding, the cost's difference is not. The step is taken (ρ = 1) and, its
    cost change being below ``ftol``, it is the last.

    ``stationary``: only where the gradient cosine is already small
    (``_termination.STATIONARY_COSINE``): elsewhere a tiny predicted reduction is a short
    step, not a converged fit, and a cost that rises by ``level`` at every such step
    (MGH Kowalik-Osborne from 10·x₀, on a pole of its rational model) must not pass for one.

    Args:
        rho: the gain ratio as computed (``gain_ratio``).
        actual: F(x) − F(x + p).
        predicted: L(0) − L(p).
        level: the rounding of F's changes, ``ROUNDING_CHANGE`` · ε ‖r‖ Σⱼ ‖Jⱼ‖ |xⱼ|.
        stationary: bool, the gradient cosine at x is small.
    """
    xp = xp or array_namespace(rho, actual, predicted)
    tiny = xp.logical_and(xp.logical_and(xp.greater(predicted, 0.0),
                                         xp.less_equal(predicted, level)),
                          xp.less_equal(xp.abs(actual), level))
    return xp.where(xp.logical_and(tiny, stationary), 1.0, rho)
