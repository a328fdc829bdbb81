"""How the end of a fit is judged where the residuals' precision or their number matters.

``rounding_epsilon``: the rounding unit of the residuals (a float32 model on the float64 host
carries float32's, ``LoopConfig.output_epsilon``); ``one_residual``: m = 1, where every
gradient cosine is 1; ``end_cosine`` and ``limit_cosine``: the stationarity measures of a fit
that can go no further (a step rounded to nothing, the damping at its ceiling). Used by
``marquardt._core.iteration.judge`` and ``prepare``.
"""

from __future__ import annotations

from marquardt import _termination
from marquardt._core.records import LoopConfig

__all__ = ["rounding_epsilon", "one_residual", "end_cosine", "limit_cosine"]


def rounding_epsilon(cfg: LoopConfig, dtype) -> float:
    """ε of the residuals: the state's dtype's, or the coarser precision of the user's
    function's outputs (``LoopConfig.output_epsilon``: a float32 model on the float64 host,
    whose residuals differ from the model's values by float32 rounding however they are
    stored). The residuals' noise level (``_termination.rounded_away``, ``lost_direction``)
    and a cost change's (``_gain.gain_ratio_at_rounding``) follow it; the stationarity
    thresholds stay the state's (``end_cosine``)."""
    return max(_termination.machine_epsilon(dtype), cfg.output_epsilon)


def one_residual(f) -> bool:
    """The problem has a single residual (m = 1, known from the static shape of r)."""
    m = f.shape[-1]
    return m is not None and int(m) == 1


def end_cosine(cfg: LoopConfig, xp, prep):
    """The gradient cosine that decides whether a fit that can go no further (its step rounded
    to nothing, its damping at the ceiling) ends at a stationary point: ``prep.cosine``, cut
    to what residuals of precision ``LoopConfig.output_epsilon`` resolve where that is set
    (``_termination.resolved_cosine``). Only these two verdicts, which end nothing that would
    not end anyway, see it: the tests that decide when a fit stops (the step tests' first-order
    check, ``_gain.gain_ratio_at_rounding``) keep the cosine itself, since Σⱼ ‖Jⱼ‖ |xⱼ|
    overstates the model's size where its terms cancel (MGH Meyer: a float32 model stopped
    by ``ftol`` at f = 88.8 with it, 87.9459 = f* without)."""
    if cfg.output_epsilon > 0:
        return _termination.resolved_cosine(prep.cosine, prep.lin.r_norm, prep.model_size,
                                            cfg.output_epsilon, xp)
    return prep.cosine


def limit_cosine(xp, prep, f, cosine):
    """The stationarity measure of a damping at its ceiling: the gradient cosine (``cosine``,
    ``end_cosine``), or with one residual (whose cosine is 1 wherever J ≠ 0) the gradient
    against D (``_termination.scaled_gradient_cosine``)."""
    if one_residual(f):
        return _termination.scaled_gradient_cosine(prep.g, prep.lin.r_norm, prep.sqrt_d, xp)
    return cosine
