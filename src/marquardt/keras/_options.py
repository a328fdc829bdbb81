"""Options of Levenberg-Marquardt training, validated once, and the MATLAB ``trainlm`` preset.

One frozen record, ``LMOptions``, carries every knob; ``LMModel`` and ``marquardt.keras.fit``
accept it (``options=``) and/or keyword overrides of its fields. The train step reads the
resolved record when it is traced, never a dict deep inside the loop.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

from marquardt._damping import Nielsen, TrainLM, get_damping

__all__ = ["LMOptions", "TRAINLM", "TRAINBR", "resolve_options", "default_memory_limit"]

_JACOBIANS = ("auto", "per_sample", "full")
_SCALINGS = ("marquardt", "identity")
_PRECISIONS = ("float64", "float32")
_REGULARIZATIONS = (None, "bayesian")


def default_memory_limit() -> int:
    """A quarter of physical memory, between 512 MiB and 8 GiB (a guess when unknown: 2 GiB)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 2 << 30
    return int(min(max(total // 4, 512 << 20), 8 << 30))


@dataclasses.dataclass(frozen=True)
class LMOptions:
    """Levenberg-Marquardt training options.

    Attributes:
        damping: the λ policy: ``"nielsen"`` (default; Nielsen 1999, λ₀ = 1e-3 · max diag)
            or ``"trainlm"`` (MATLAB: μ₀ = 1e-3, ×0.1 on success, ×10 on failure), or a
            policy object from ``marquardt._damping``.
        scaling: the damping matrix D of (JᵀJ + λD)δ = −g: ``"identity"`` (default;
            Levenberg 1944, as MATLAB's trainlm) or ``"marquardt"`` (running max of
            diag(JᵀJ), Marquardt 1963 / MINPACK; invariant to the scale of each weight).
            On the sinc benchmark network (481 weights) identity reached a 7× lower MSE in
            100 iterations than the Marquardt diagonal, whose large entries for first-layer
            weights over-damp them.
        max_attempts: most λ values tried per iteration before the iteration gives up and
            leaves the weights unchanged (10, as tf-levenberg-marquardt's
            ``attempts_per_step``; trainlm tries until μ > μ_max, see ``TRAINLM``).
        goal: stop once the loss is ≤ ``goal`` (trainlm's performance goal, default 0).
        min_grad: stop once ‖g‖ = ‖Jᵀr‖ of the loss is < ``min_grad`` (trainlm: 1e-7; ours 0,
            leaving the stop to λ reaching its ceiling, which is scale-free).
        max_time: stop after this many seconds of training (trainlm's ``time``, default ∞).
        jacobian: ``"per_sample"`` (vectorised per-sample gradients, chunked; needs residuals
            of sample i to depend on sample i only), ``"full"`` (``GradientTape.jacobian`` of
            the whole batch; for coupled samples), or ``"auto"``: per-sample for Keras losses
            unless a layer couples samples in the forward pass used (batch normalisation
            with ``training=True``), full for a custom residual.
        memory_limit: bytes the normal equations and the Jacobian chunks may use
            (default: a quarter of physical memory, 512 MiB to 8 GiB). Sets the chunk size
            and refuses models whose JᵀJ does not fit.
        precision: dtype of JᵀJ, Jᵀr and the solve: ``"float64"`` (default; chunks of JᵀJ
            are formed in the model's dtype and accumulated in float64) or ``"float32"``.
            Measured (``docs/keras.md``, ``benchmarks/precision.py``): the same time per
            iteration; on sinc(10x) no accuracy difference, on an ill-conditioned fit
            (κ(J) = 2.2e4) float64 reached MSE 1e-14 in 15 epochs against 25, with a 6.5×
            smaller parameter error.
        training: the ``training`` flag of the forward passes (default False: dropout off,
            batch normalisation on its moving statistics, which keeps samples independent).
        kernel: solve the m×m kernel system D⁻¹Jᵀ(JD⁻¹Jᵀ + λI)⁻¹ when a batch has fewer
            residuals than weights (``"auto"``, True, False).
        regularization: ``None`` (plain LM) or ``"bayesian"``: Bayesian regularisation
            (MacKay 1992, Foresee & Hagan 1997; MATLAB's ``trainbr``), which minimises
            β·E_D + α·E_W and re-estimates α and β after every accepted step; full batch and
            a mean-squared-error loss only (``marquardt.keras._bayes``, ``TRAINBR``).
    """

    damping: Any = "nielsen"
    scaling: str = "identity"
    max_attempts: int = 10
    goal: float = 0.0
    min_grad: float = 0.0
    max_time: float = math.inf
    jacobian: str = "auto"
    memory_limit: int | None = None
    precision: str = "float64"
    training: bool = False
    kernel: Any = "auto"
    regularization: str | None = None

    def replace(self, **changes) -> "LMOptions":
        return dataclasses.replace(self, **changes)


#: MATLAB ``trainlm``'s constants: μ = 1e-3, μ_dec = 0.1, μ_inc = 10, μ_max = 1e10, D = I,
#: goal 0, min_grad 1e-7, retries until μ exceeds μ_max (at most 13 from μ = 1e-3, so 40
#: attempts is never binding). ``epochs=1000`` and ``max_fail=6`` are ``fit`` arguments:
#: pass ``epochs=1000`` and ``keras.callbacks.EarlyStopping(patience=6)`` with validation data.
TRAINLM = LMOptions(damping=TrainLM(), scaling="identity", max_attempts=40, min_grad=1e-7)

#: MATLAB ``trainbr``'s constants: trainlm's with μ = 0.005 (``net.trainParam.mu``), and
#: Bayesian regularisation (``regularization="bayesian"``); MATLAB trains 1000 epochs with no
#: validation stop (``max_fail`` 0): pass ``epochs=1000`` and no validation data.
TRAINBR = LMOptions(damping=TrainLM(mu=0.005), scaling="identity", max_attempts=40,
                    min_grad=1e-7, regularization="bayesian")


def _choice(value, name, allowed):
    if value not in allowed:
        raise ValueError(f"`{name}` must be one of {list(allowed)}. Received: {name}={value!r}")
    return value


def _number(value, name, *, low=0.0, allow_inf=False, strict=False):
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be a number. Received: {name}={value!r}") from None
    bad = math.isnan(out) or (math.isinf(out) and not allow_inf) or out < low or (
        strict and out == low)
    if bad:
        op = ">" if strict else ">="
        raise ValueError(f"`{name}` must be a number {op} {low}. Received: {name}={value!r}")
    return out


def resolve_options(options: LMOptions | None = None, **overrides) -> LMOptions:
    """Merge ``overrides`` into ``options`` and validate every field (front door).

    Raises:
        TypeError: an unknown option name, or a value of the wrong type.
        ValueError: a value out of range; the message names the option and the value.
    """
    if options is None:
        options = LMOptions()
    if not isinstance(options, LMOptions):
        raise TypeError(f"`options` must be an LMOptions. Received: options={options!r}")
    fields = {f.name for f in dataclasses.fields(LMOptions)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise TypeError(
            f"Unknown Levenberg-Marquardt option(s): {', '.join(unknown)}. Known options: "
            f"{', '.join(sorted(fields))}. Received: "
            + ", ".join(f"{k}={overrides[k]!r}" for k in unknown)
        )
    opts = options.replace(**overrides)
    damping = get_damping(opts.damping)
    _choice(opts.scaling, "scaling", _SCALINGS)
    _choice(opts.jacobian, "jacobian", _JACOBIANS)
    _choice(opts.precision, "precision", _PRECISIONS)
    _choice(opts.kernel, "kernel", ("auto", True, False))
    _choice(opts.regularization, "regularization", _REGULARIZATIONS)
    if not isinstance(opts.max_attempts, int) or isinstance(opts.max_attempts, bool) or (
            opts.max_attempts < 1):
        raise ValueError(
            f"`max_attempts` must be an integer >= 1. Received: max_attempts={opts.max_attempts!r}")
    goal = _number(opts.goal, "goal")
    min_grad = _number(opts.min_grad, "min_grad")
    max_time = _number(opts.max_time, "max_time", allow_inf=True, strict=True)
    memory = default_memory_limit() if opts.memory_limit is None else int(
        _number(opts.memory_limit, "memory_limit", strict=True))
    if not isinstance(opts.training, bool):
        raise TypeError(f"`training` must be a bool. Received: training={opts.training!r}")
    return opts.replace(damping=damping, goal=goal, min_grad=min_grad, max_time=max_time,
                        memory_limit=memory)


def options_to_config(options: LMOptions) -> dict:
    """A JSON-friendly dict of ``options`` (for ``get_config``)."""
    config = dataclasses.asdict(options)
    damping = options.damping
    if isinstance(damping, (Nielsen, TrainLM)):
        config["damping"] = {"class": type(damping).__name__, **dataclasses.asdict(damping)}
    if math.isinf(config["max_time"]):
        config["max_time"] = "inf"
    return config


def options_from_config(config: dict) -> LMOptions:
    config = dict(config)
    damping = config.get("damping")
    if isinstance(damping, dict):
        damping = dict(damping)
        cls = {"Nielsen": Nielsen, "TrainLM": TrainLM}[damping.pop("class")]
        config["damping"] = cls(**damping)
    if config.get("max_time") == "inf":
        config["max_time"] = math.inf
    return resolve_options(**config)
