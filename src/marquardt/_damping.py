"""Damping policies: how λ responds to the quality of a step.

Symbols: λ the damping parameter of ``(JᵀJ + λD) δ = −Jᵀr``; ρ the gain ratio, actual over
predicted reduction of the cost (see ``_gain.py``). A policy is a small immutable object with
four pure functions, so it runs unchanged inside ``tf.while_loop`` and on batched tensors
(one λ per problem), on NumPy arrays on the host or on tensors in a compiled graph (each method
takes the array namespace ``xp``, found from its arguments when not given; ``marquardt._xp``)::

    state = policy.init(scale, x_norm=‖√D x₀‖)   # scale = max_i A_ii / D_ii at the start point
    accepted = policy.accept(rho)                  # take the step?
    state = policy.update(state, rho, step=m)     # λ for the next attempt or iteration
    policy.exhausted(state)                        # λ beyond its ceiling: stop

``m`` is the ``StepMeasure`` of the attempt (its scaled length ‖√D p‖), which
only the trust-region rule reads. A policy with ``needs_spectrum`` (``TrustRegion``) keeps a
radius Δ rather than λ and turns it into λ with ``policy.fit(state, spectrum)``, from the
solver's factorisation (``marquardt._solvers.Spectrum``); the core calls it once the system of
an iteration is factored and after each rejected attempt.

The loop never looks inside ``DampingState``; the policies are tested alone with exact
accept/reject sequences (``tests/test_damping.py``).
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any, NamedTuple

from marquardt._xp import array_namespace

__all__ = ["DampingState", "StepMeasure", "Nielsen", "TrainLM", "TrustRegion", "DampingPolicy",
           "get_damping"]


class DampingState(NamedTuple):
    """λ and the policy's memory: ``nu`` is Nielsen's growth factor (unused by trainlm), the
    trust radius Δ for ``TrustRegion``."""

    lam: Any
    nu: Any


class StepMeasure(NamedTuple):
    """What an attempt measured besides ρ, for a policy that reads it (``TrustRegion``)."""

    norm: Any  # (K,) ‖√D p‖, the scaled length of the step p


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
    needs_spectrum = False

    def init(self, scale, xp=None, x_norm=None) -> DampingState:
        xp = xp or array_namespace(scale)
        lam = xp.maximum(self.tau * scale, self.lam_min)
        return DampingState(lam=lam, nu=xp.full_like(lam, 2.0))

    def accept(self, rho, xp=None):
        xp = xp or array_namespace(rho)
        return xp.greater(rho, self.min_rho)

    def update(self, state: DampingState, rho, xp=None, step=None) -> DampingState:
        xp = xp or array_namespace(rho, state.lam)
        ok = self.accept(rho, xp)
        safe_rho = xp.where(ok, rho, 0.0)
        shrink = xp.maximum(1.0 / 3.0, 1.0 - (2.0 * safe_rho - 1.0) ** 3)
        lam = xp.where(ok, state.lam * shrink, state.lam * state.nu)
        lam = xp.maximum(lam, self.lam_min)
        nu = xp.where(ok, 2.0, 2.0 * state.nu)
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
        mu_min: floor of λ after a decrease (trainlm's 1e-20).

    Raises:
        ValueError: values MATLAB's trainlm refuses: ``mu`` not > 0, ``mu_dec`` outside
            [0, 1], ``mu_inc`` not > 1 (MATLAB allows 1, with which λ never grows), ``mu_max``
            below ``mu``; also ``mu_min`` not > 0.

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
    needs_spectrum = False

    def __post_init__(self):
        # MATLAB's trainlm refuses the same values ("Mu is not a positive real value", "Mu_dec
        # is not a real value between 0 and 1", "Mu_inc is not a real value greater than 1",
        # "Mu is greater than Mu_max"); accepted, they trained nothing and reported a minimum
        # (mu <= 0, mu_max < mu) or ran every epoch at the start point (mu_inc < 1)
        def check(name, ok, must):
            value = getattr(self, name)
            if not (isinstance(value, numbers.Real) and not isinstance(value, bool) and ok(value)):
                raise ValueError(f"`{name}` must be {must}. Received: {name}={value!r}")

        check("mu", lambda v: 0 < v < float("inf"), "a finite number > 0")
        check("mu_dec", lambda v: 0 <= v <= 1, "a number in [0, 1]")
        check("mu_inc", lambda v: 1 < v < float("inf"), "a finite number > 1")
        check("mu_min", lambda v: 0 < v < float("inf"), "a finite number > 0")
        check("mu_max", lambda v: self.mu <= v, f"a number >= mu = {self.mu!r}")

    def init(self, scale, xp=None, x_norm=None) -> DampingState:
        xp = xp or array_namespace(scale)
        lam = xp.full_like(scale, self.mu)
        return DampingState(lam=lam, nu=xp.ones_like(lam))

    def accept(self, rho, xp=None):
        xp = xp or array_namespace(rho)
        return xp.greater(rho, 0.0)

    def update(self, state: DampingState, rho, xp=None, step=None) -> DampingState:
        xp = xp or array_namespace(rho, state.lam)
        ok = self.accept(rho, xp)
        lam = xp.where(ok, xp.maximum(state.lam * self.mu_dec, self.mu_min),
                       state.lam * self.mu_inc)
        return DampingState(lam=lam, nu=state.nu)

    def exhausted(self, state: DampingState, xp=None):
        xp = xp or array_namespace(state.lam)
        return xp.greater(state.lam, self.mu_max)


@dataclasses.dataclass(frozen=True)
class TrustRegion:
    """λ controlled through a trust radius Δ, as MINPACK's ``lmder`` and SciPy's ``trf``.

    Each attempt takes the λ whose step fits the radius in the scaled norm (Moré 1978)::

        λ = λ_min                 when the Gauss-Newton step has ‖√D δ(λ_min)‖ ≤ Δ
        λ : ‖√D δ(λ)‖ = Δ         otherwise (the secular equation, ``fit``)

    and after it (ρ the gain ratio, p the step)::

        ρ < ¼:                    Δ ← ¼ · min(Δ, ‖√D p‖)      (trf's shrink)
        ρ > ¾ or λ = λ_min:       Δ ← 2‖√D p‖                 (lmder's growth)
        otherwise:                Δ unchanged

    A step is accepted when ρ > ``min_rho`` (lmder's 1e-4). The first radius is

        Δ₀ = max(factor · ‖√D x₀‖, ‖√D δ(τ · maxᵢ Aᵢᵢ/Dᵢᵢ)‖),

    the larger of MINPACK's Δ₀ (``factor`` when x₀ = 0) and the length of the step of
    Nielsen's λ₀ with ``tau`` (settled at the first factorisation): ‖√D x₀‖ alone is tiny when
    x₀ is zero in a well-determined parameter (MGH Powell badly scaled from 10·x₀: x₀ = (0,
    10), Δ₀ = 4.5e-4 and the path goes down the valley x₂ → ∞), and Nielsen's λ₀ alone lets
    a first step from a far start go where the curvature at x₀ says (MGH Meyer from 100·x₀).
    The constants were chosen on ``benchmarks/mgh.py`` and ``benchmarks/robust.py``
    (docs/benchmarks.md).

    Compared with Nielsen's rule, λ here is a function of the step's length: after a success
    the next step may be at most twice as long, and a Gauss-Newton step is taken as soon as
    it fits.

    The secular equation is solved on the solver's spectrum (``marquardt._solvers.Spectrum``):
    φ(λ) = ‖√D δ(λ)‖ = (Σᵢ bᵢ²/(wᵢ + λ)²)^½, and Newton's method on h(λ) = 1/φ(λ) − 1/Δ,
    which is concave and nearly linear in λ (Hebden 1973; Moré 1978 §5), converges
    monotonically from the left::

        λ ← λ + (φ − Δ)/Δ · φ² / Σᵢ bᵢ²/(wᵢ + λ)³

    started at λ_min, where the iterates rise to the root without passing it (the tangent
    of a concave h lies above it); no residual evaluation, elementwise work on the spectrum.
    A fixed number of iterations (``newton_steps``), with no test on the values, so that the
    same code runs in a graph and traced on the host (``_backend/numpy/trace.py``). 8: on the
    57 MGH starts, 7,758 radii, 11 are met to worse than 1e-6 relative and one to worse than
    1e-3 (MINPACK's ``lmpar`` stops at 0.1); 5 leaves 21 worse than 0.1.

    Args:
        factor: Δ₀ relative to ‖√D x₀‖ (MINPACK's ``factor``; 100 there, 1 in trf, whose
            Δ₀ is ‖x₀ / x_scale‖).
        tau: Nielsen's λ₀ relative to the largest scaled diagonal, for the second bound on Δ₀;
            0: MINPACK's Δ₀ alone.
        min_rho: smallest gain ratio that accepts a step.
        lam_min: the λ of a Gauss-Newton step (a floor, so that a zero singular value gives a
            zero component instead of 0/0).
        lam_max: the solve stops (damping limit) once the λ of the radius exceeds it.
        newton_steps: iterations of the secular equation's Newton method.

    References:
        J. J. Moré, "The Levenberg-Marquardt algorithm: implementation and theory", Numerical
        Analysis, Lecture Notes in Mathematics 630, 105-116 (1978).
        B. S. Garbow, K. E. Hillstrom, J. J. Moré, MINPACK-1 ``lmder.f``, ``lmpar.f`` (1980).
        SciPy ``optimize/_lsq/common.py``: ``update_tr_radius``.
        M. D. Hebden, "An algorithm for minimization using exact second derivatives", AERE
        TP 515 (1973).
    """

    factor: float = 1.0
    tau: float = 0.1
    min_rho: float = 1e-4
    lam_min: float = 1e-30
    lam_max: float = 1e32
    newton_steps: int = 8
    name: str = "trust-region"
    needs_spectrum = True

    def init(self, scale, xp=None, x_norm=None) -> DampingState:
        """Δ₀ is settled at the first factorisation (``fit``): until then ``nu`` holds −Δ₀ of
        MINPACK's rule (negative: not yet settled) and ``lam`` Nielsen's λ₀ = τ · scale."""
        xp = xp or array_namespace(scale)
        if x_norm is None:
            x_norm = xp.zeros_like(scale)
        delta = xp.where(xp.greater(x_norm, 0.0), self.factor * x_norm,
                         xp.full_like(scale, self.factor))
        lam0 = xp.maximum(self.tau * scale, self.lam_min) if self.tau else xp.full_like(
            scale, self.lam_max)
        return DampingState(lam=lam0, nu=-delta)

    def accept(self, rho, xp=None):
        xp = xp or array_namespace(rho)
        return xp.greater(rho, self.min_rho)

    def update(self, state: DampingState, rho, xp=None, step: StepMeasure | None = None
               ) -> DampingState:
        """The radius after an attempt (``lam`` is left for ``fit``)."""
        xp = xp or array_namespace(rho, state.lam)
        delta, norm = state.nu, step.norm
        newton = xp.less_equal(state.lam, self.lam_min)
        failed = xp.logical_not(xp.greater_equal(rho, 0.25))  # NaN counts as a failure
        new = xp.where(failed, 0.25 * xp.minimum(delta, norm),
                       xp.where(xp.logical_or(xp.greater(rho, 0.75), newton), 2.0 * norm,
                                delta))
        # a step of no length or of no number (NaN land): a tenth of the radius
        new = xp.where(xp.logical_and(xp.greater(new, 0.0), xp.isfinite(new)), new, 0.1 * delta)
        return DampingState(lam=state.lam, nu=new)

    def fit(self, state: DampingState, spectrum, xp=None) -> DampingState:
        """The state with λ ≥ λ_min such that ‖√D δ(λ)‖ = Δ, or λ_min when the Gauss-Newton
        step fits in Δ; at the first factorisation Δ₀ is settled first (``init``):
        Δ₀ = max(factor ‖√D x₀‖, ‖√D δ(τ · scale)‖)."""
        xp = xp or array_namespace(state.nu, spectrum.w)
        w, b2 = spectrum.w, spectrum.b * spectrum.b

        def length(lam):
            q = 1.0 / (w + xp.expand_dims(lam, -1))
            return xp.sqrt(xp.sum(b2 * q * q, axis=-1))

        first = xp.less(state.nu, 0.0)
        settled = xp.maximum(-state.nu, length(state.lam))
        nu = xp.where(first, settled, state.nu)
        return DampingState(lam=self._lam_for(nu, w, b2, xp), nu=nu)

    def _lam_for(self, nu, w, b2, xp):
        # per-problem values (K,), the spectrum's (K, n): the same operations as on (K, 1)
        # columns, but the host's one-problem namespace keeps them scalars
        delta = nu
        lam = xp.full_like(delta, self.lam_min)
        fits = None
        for _ in range(self.newton_steps):
            q = 1.0 / (w + xp.expand_dims(lam, -1))
            bq = b2 * q * q
            s0 = xp.sum(bq, axis=-1)
            f = xp.sqrt(s0)
            long_ = xp.greater(f, delta)
            if fits is None:
                fits = xp.logical_not(long_)
            s1 = xp.sum(bq * q, axis=-1)
            # from the left of the root Newton's iterates rise monotonically to it (h concave);
            # a step that rounding left at or past the root keeps its λ
            step = (f - delta) / delta * s0 / xp.where(long_, s1, 1.0)
            lam = xp.where(long_, lam + step, lam)
        return xp.where(fits, self.lam_min, lam)

    def exhausted(self, state: DampingState, xp=None):
        xp = xp or array_namespace(state.lam)
        return xp.logical_or(xp.greater(state.lam, self.lam_max),
                             xp.logical_not(xp.greater(state.nu, 0.0)))


DampingPolicy = Nielsen | TrainLM | TrustRegion

_BY_NAME = {"nielsen": Nielsen, "trainlm": TrainLM, "trust-region": TrustRegion}


def get_damping(damping: str | DampingPolicy) -> DampingPolicy:
    """Resolve ``damping`` given by name (``"nielsen"``, ``"trainlm"``, ``"trust-region"``) or as
    a policy object."""
    if isinstance(damping, (Nielsen, TrainLM, TrustRegion)):
        return damping
    if isinstance(damping, str) and damping.lower() in _BY_NAME:
        return _BY_NAME[damping.lower()]()
    raise ValueError(
        f"`damping` must be one of {sorted(_BY_NAME)} or a policy object (Nielsen(...), "
        f"TrainLM(...), TrustRegion(...)). Received: damping={damping!r}"
    )
