"""What ``marquardt._core.iteration.judge`` measures of a candidate: the sums over residuals
(actual reduction, cost, non-finite count; shard by shard for a data-parallel executor), the
curvature pᵀAp of the model along the step, and the step's length for the xtol test."""

from __future__ import annotations

from marquardt import _robust
from marquardt._core.masks import select
from marquardt._core.records import LoopConfig

__all__ = ["shard_sums", "curvature", "undamped_step"]


def shard_sums(cfg: LoopConfig, xp, f0, f1):
    """(K,) sums over the residuals at hand: F(x) − F(x_try), F(x_try) and the count of
    non-finite residuals of the candidate.

    F(x) − F(x_try) is a sum of per-residual differences: for F = ½‖r‖², ½Σ(r₀ − r₁)(r₀ + r₁),
    which keeps the digits that the difference of two sums loses near convergence. All three
    are sums over residuals, so an executor that holds the residuals in shards (one per
    replica, ``judge(reduce=...)``) adds the shards' sums to get the whole problem's.
    """
    if cfg.loss == "linear":
        actual = 0.5 * xp.sum((f0 - f1) * (f0 + f1), axis=-1)
    else:
        actual = xp.sum(_robust.cost_terms(cfg.loss, f0, cfg.f_scale, xp)
                        - _robust.cost_terms(cfg.loss, f1, cfg.f_scale, xp), axis=-1)
    cost = _robust.robust_cost(cfg.loss, f1, cfg.f_scale, xp)
    bad = xp.sum(xp.cast(xp.logical_not(xp.isfinite(f1)), actual.dtype), axis=-1)
    return actual, cost, bad


def curvature(xp, prep, p):
    """pᵀAp, as ‖J̃p‖² when J̃ is held."""
    if prep.lin.a is None:
        jp = xp.matvec(prep.lin.jt, p)
        return xp.sum(jp * jp, axis=-1)
    return xp.sum(p * xp.matvec(prep.lin.a, p), axis=-1)


def undamped_step(xp, prep, c, p, accepted):
    """‖√D p̂‖, the length the xtol test sees: for an accepted step, p with the diagonal part
    of its damping undone, p̂ᵢ = pᵢ (Aᵢᵢ + λdᵢ) / Aᵢᵢ (exact when A is diagonal); for a
    rejected one, p itself.

    An accepted step that λD, not the model, kept short says nothing about convergence. After
    a far start the running-max diagonal d (``marquardt._scaling``) keeps the large column
    norms of x0: where a column has since shrunk (λdᵢ ≫ Aᵢᵢ) its parameter barely moves while
    λ falls by a bounded factor per step (3 in Nielsen's rule), and dᵢxᵢ² makes ‖√D x‖
    large, so that ‖√D p‖ < xtol ‖√D x‖ held far from any stationary point (MGH Beale from
    100·x0 stopped at f = 7.2, gradient cosine 4e-3). Near a minimum λdᵢ ≪ Aᵢᵢ and p̂ = p.
    A rejected step is the case MINPACK's test is made for (its trust radius, on which xtol
    acts, only shrinks on failures): its p is kept.
    """
    a_ii = prep.lin.colsq
    held = xp.greater(a_ii, 0.0)
    ratio = xp.where(held, xp.expand_dims(c.lam, -1) * prep.d / xp.where(held, a_ii, 1.0),
                     0.0)
    p_hat = select(xp, accepted, p * (1.0 + ratio), p)
    return xp.norm(prep.sqrt_d * p_hat, axis=-1)
