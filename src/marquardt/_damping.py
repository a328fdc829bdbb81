"""Damping policies: how λ responds to the quality of a step.

Symbols: λ the damping parameter of ``(JᵀJ + λD) δ = −Jᵀr``; ρ the gain ratio, actual over
predicted reduction of the cost (see ``_gain.py``). A policy is a small immutable object with
four pure functions, so it runs unchanged inside ``tf.while_loop`` and on batched tensors
(one λ per problem), on NumPy arrays on the host or on tensors in a compiled graph (each method
takes the array namespace ``xp``, found from its arguments when not given; ``marquardt._xp``)::

    state = policy.init(scale)          # scale = max_i A_ii / D_ii at the start point
    accepted = policy.accept(rho)        # take the step?
    state = policy.update(state, rho)   # λ for the next attempt or iteration
    policy.exhausted(state)              # λ beyond its ceiling: stop

The loop never looks inside ``DampingState``; the policies are tested alone with exact
accept/reject sequences (``tests/test_damping.py``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

from marquardt._xp import array_namespace

__all__ = ["DampingState", "Nielsen", "TrainLM", "DampingPolicy", "get_damping"]


class DampingState(NamedTuple):
    """λ and the policy's memory. ``nu`` is Nielsen's growth factor (unused by trainlm)."""

    lam: Any
    nu: Any


@dataclasses.dataclass(frozen=True)
class Nielsen:
    """The gain-ratio rule of Nielsen (1999), as in Madsen, Nielsen & Tingleff (2004) and Ceres.

    After a step with gain ratio ρ::

        accepted (ρ > min_rho):  λ ← λ · max(1/3, 1 − (2ρ − 1)³),  ν ← 2
        rejected:                λ ← λ · ν,                        ν ← 2ν

    The cubic makes λ fall smoothly when the quadratic model is good (ρ → 1, λ/3) and barely
    move when it is mediocre (ρ ≈ ½), avoiding the oscillation of fixed factors; the doubling
    ν makes repeated failures escalate fast.

    Args:
        tau: initial λ relative to the largest scaled diagonal, λ₀ = τ · maxᵢ Aᵢᵢ/Dᵢᵢ.
            1e-3 is MNT's recommendation for a start believed far from the solution (§3.2).
        min_rho: smallest gain ratio that accepts a step. 1e-3 is Ceres'
            ``min_relative_decrease``; MNT use 0.
        lam_min, lam_max: λ is clamped below at ``lam_min`` and the solve stops once it exceeds
            ``lam_max`` (Ceres' trust-region radius limits 1e16 and 1e-32 give λ in
            [1e-16, 1e32]; we floor lower, at 1e-30, so that Gauss-Newton steps stay possible
            on well-scaled problems).

    References:
        H. B. Nielsen, "Damping parameter in Marquardt's method", IMM-REP-1999-05, DTU (1999).
        K. Madsen, H. B. Nielsen, O. Tingleff, "Methods for non-linear least squares problems",
        2nd ed., DTU (2004), eq. (3.14) and Algorithm 3.16.
    """

    tau: float = 1e-3
    min_rho: float = 1e-3
    lam_min: float = 1e-30
    lam_max: float = 1e32
    name: str = "nielsen"

    def init(self, scale, xp=None) -> DampingState:
        xp = xp or array_namespace(scale)
        lam = xp.maximum(self.tau * scale, self.lam_min)
        return DampingState(lam=lam, nu=xp.full_like(lam, 2.0))

    def accept(self, rho, xp=None):
        xp = xp or array_namespace(rho)
        return xp.greater(rho, self.min_rho)

    def update(self, state: DampingState, rho, xp=None) -> DampingState:
        xp = xp or array_namespace(rho, state.lam)
        ok = self.accept(rho, xp)
        safe_rho = xp.where(ok, rho, xp.zeros_like(rho))
        shrink = xp.maximum(1.0 / 3.0, 1.0 - (2.0 * safe_rho - 1.0) ** 3)
        lam = xp.where(ok, state.lam * shrink, state.lam * state.nu)
        lam = xp.maximum(lam, self.lam_min)
        nu = xp.where(ok, xp.full_like(state.nu, 2.0), 2.0 * state.nu)
        return DampingState(lam=lam, nu=nu)

    def exhausted(self, state: DampingState, xp=None):
        xp = xp or array_namespace(state.lam)
        return xp.greater(state.lam, self.lam_max)


@dataclasses.dataclass(frozen=True)
class TrainLM:
    """MATLAB ``trainlm``'s multiplicative rule, with its constants.

    λ (MATLAB's ``mu``) starts at ``mu``; an attempt is accepted when the cost decreases
    (ρ > 0)::

        accepted: λ ← max(λ · mu_dec, 1e-20)     rejected: λ ← λ · mu_inc

    and training stops once λ exceeds ``mu_max``. The damping matrix is the identity
    (Levenberg's form); use it with ``x_scale=1.0`` / ``damping_matrix="identity"`` to reproduce
    MATLAB exactly.

    Args:
        mu: initial λ (trainlm's ``net.trainParam.mu`` = 0.001).
        mu_dec: factor on success (``mu_dec`` = 0.1).
        mu_inc: factor on failure (``mu_inc`` = 10).
        mu_max: ceiling (``mu_max`` = 1e10).

    References:
        MathWorks, Deep Learning Toolbox, ``trainlm`` documentation (training parameters).
        M. T. Hagan, M. B. Menhaj, "Training feedforward networks with the Marquardt
        algorithm", IEEE Trans. Neural Networks 5(6), 989-993 (1994).
    """

    mu: float = 1e-3
    mu_dec: float = 0.1
    mu_inc: float = 10.0
    mu_max: float = 1e10
    mu_min: float = 1e-20
    name: str = "trainlm"

    def init(self, scale, xp=None) -> DampingState:
        xp = xp or array_namespace(scale)
        lam = xp.full_like(scale, self.mu)
        return DampingState(lam=lam, nu=xp.ones_like(lam))

    def accept(self, rho, xp=None):
        xp = xp or array_namespace(rho)
        return xp.greater(rho, 0.0)

    def update(self, state: DampingState, rho, xp=None) -> DampingState:
        xp = xp or array_namespace(rho, state.lam)
        ok = self.accept(rho, xp)
        lam = xp.where(ok, xp.maximum(state.lam * self.mu_dec, self.mu_min),
                       state.lam * self.mu_inc)
        return DampingState(lam=lam, nu=state.nu)

    def exhausted(self, state: DampingState, xp=None):
        xp = xp or array_namespace(state.lam)
        return xp.greater(state.lam, self.mu_max)


DampingPolicy = Nielsen | TrainLM

_BY_NAME = {"nielsen": Nielsen, "trainlm": TrainLM}


def get_damping(damping: str | DampingPolicy) -> DampingPolicy:
    """Resolve ``damping`` given by name (``"nielsen"``, ``"trainlm"``) or as a policy object."""
    if isinstance(damping, (Nielsen, TrainLM)):
        return damping
    if isinstance(damping, str) and damping.lower() in _BY_NAME:
        return _BY_NAME[damping.lower()]()
    raise ValueError(
        f"`damping` must be one of {sorted(_BY_NAME)} or a policy object (Nielsen(...), "
        f"TrainLM(...)). Received: damping={damping!r}"
    )
