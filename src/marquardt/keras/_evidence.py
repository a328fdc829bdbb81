"""The evidence updates of Bayesian regularisation, written once against an array namespace.

MacKay (1992), Foresee & Hagan (1997); MATLAB's ``trainbr``. Glossary: e the errors,
E_D = Σ wᵢeᵢ² their weighted sum of squares, E_W = Σ w² the sum of squared weights, P their
number, N the number of errors, α and β the hyperparameters of F = β·E_D + α·E_W, γ the
effective number of parameters; r the step's residuals, with E_D = s·‖r‖²; ρ = α/(βs), the
ridge of the LM system A + ρI (the derivation is in
``marquardt._backend.tensorflow.keras_bayes``)::

    γ = P − ρ·tr((A + ρI)⁻¹),     α ← γ / (2E_W),     β ← (N − γ) / (2E_D).

Each backend's Bayesian step (``_backend/<backend>/keras_bayes.py``) runs its own LM iteration
on the augmented residuals [r; √ρ w] and its own kernels for tr(m⁻¹) and the eigenvalues of m;
everything else, the formulas above with their guards, the choice between the Cholesky route
and the eigenvalue fallback (``effective_parameters``), the error scale s and N, and the logs,
is here, on ``xp`` (the TensorFlow or JAX namespace of the LM core), so that both backends
compute the same numbers in the same order.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

from marquardt._termination import machine_epsilon

__all__ = ["BayesState", "ErrorScale", "ridge", "error_scale", "gamma_by_eigenvalues",
           "effective_parameters",
           "evidence_update", "step_gamma", "after_iteration"]


#: How far above the rounding level of A (P·ε·tr A, ε the model dtype's) ρ must lie for
#: γ = P − ρ·tr((A + ρI)⁻¹) by a Cholesky factor (``effective_parameters``); 100: γ to about 0.01.
ROUNDING_MARGIN = 100.0


class BayesState(NamedTuple):
    """The hyperparameters carried between iterations (the wrapper's variables)."""

    alpha: Any  # α (0 before the first update)
    beta: Any  # β (1 before the first update)
    gamma: Any  # γ (P before the first update)


class ErrorScale(NamedTuple):
    """How the step's residuals relate to the errors of the method."""

    s: Any  # E_D = s·‖r‖²
    n: Any  # N, the number of errors


def ridge(prior: BayesState, scale: ErrorScale):
    """ρ = α / (βs): F / (2βs) = ½‖r‖² + ½ρ‖w‖²."""
    return prior.alpha / (prior.beta * scale.s)


def error_scale(xp, rows, sw, k: int, *, custom: bool, mean: bool, dtype) -> ErrorScale:
    """s and N of a batch of ``rows`` samples (k outputs each).

    s = k·n/2 for Keras' mean squared error (``mean``: the ``sum_over_batch_size``
    reduction), k/2 for its ``sum`` reduction, 1 for a custom residual (``custom``); N = k × the
    samples with a non-zero weight (all of them without ``sw``).
    """
    n = xp.cast(rows, dtype)
    if sw is not None:
        per_row = xp.reshape(xp.cast(sw, dtype), (rows, -1))
        n_err = float(k) * xp.sum(xp.cast(xp.any(per_row != 0, axis=1), dtype))
    else:
        n_err = float(k) * n
    if custom:
        s = xp.ones_like(n)
    else:
        s = 0.5 * float(k) * (n if mean else xp.ones_like(n))
    return ErrorScale(s=s, n=n_err)


def gamma_by_eigenvalues(xp, ev, rho, eps: float):
    """γ = Σ sᵢ/(sᵢ + ρ) from the eigenvalues ``ev`` of the ridged matrix A + ρI: sᵢ = evᵢ − ρ,
    the eigenvalues of A = JᵀJ (of the step's residuals), set to 0 where they do not exceed the
    rounding level √P·ε·max|s| (ε of the model's dtype; by Weyl's inequality an eigenvalue
    moves by at most ‖δA‖ ≈ ε‖A‖ times a few, the spread of J's rounding through the layers,
    and the float32 A of a 1-20-20-1 network had its least eigenvalue at −0.4ε‖A‖: a direction
    the data do not determine, MacKay's "poorly
    determined" parameter, contributes nothing). The same number as
    P − ρ·tr((A + ρI)⁻¹) = P − ρ·Σ 1/(sᵢ + ρ) = 2α·tr(H⁻¹)'s complement with
    H = 2βJₑᵀJₑ + 2αI (tr(H⁻¹) = Σ 1/(2βsₑ,ᵢ + 2α)), written as a sum of terms in [0, 1) so
    that no cancellation against P occurs: the fallback where the Cholesky route fails or
    gives γ outside [0, P] (in float32, when ρ is at the rounding level of A)."""
    s = ev - rho
    p = xp.cast(xp.shape(ev)[0], ev.dtype)
    floor = xp.sqrt(p) * eps * xp.max(xp.abs(s))
    s = xp.where(s > floor, s, 0.0 * s)
    return xp.sum(s / (s + rho))


def effective_parameters(xp, trace_inverse: Callable, eigvalsh: Callable, m, rho, p,
                         eps: float):
    """``(γ, fallback)``: γ = P − ρ·tr(m⁻¹) for m = A + ρI, ρ > 0.

    ``eps`` is the rounding unit of the *model's* dtype: A = JᵀJ is formed in float64 by
    default, but from a J that carries the model's rounding, so A is known only to about
    ε·‖A‖ (in float32 its smallest eigenvalues came out at −4e-6 with ‖A‖ = 80 at P = 481).

    Two routes. The Cholesky route, ``trace_inverse(m) -> (tr(m⁻¹), ok)`` (the backend's),
    subtracts ρ·tr(m⁻¹) ≈ P − γ from P: its error is about (P − γ)·ε·‖A‖/ρ, so it is taken only
    where ρ > ``ROUNDING_MARGIN``·P·ε·tr(m) (tr(m) ≥ ‖A‖). Below that level (float32 models
    late in training: ρ of 1e-6 against A known to 4e-6; the factor then existed or not by
    the chance of A's rounding, and γ jumped from about 5 to 22 and back every epoch at
    P = 481, where float64 settles at 9), where the factor fails (``ok`` False), or where its
    γ is not finite or lies outside [0, P] (tr(m⁻¹) outside [0, P/ρ], i.e. tr(H⁻¹) outside
    [0, P/(2α)]), γ comes from the eigenvalues of m (``eigvalsh``, the backend's,
    ``gamma_by_eigenvalues``: a sum of terms in [0, 1], no cancellation, the eigenvalues A
    cannot resolve counted 0) and ``fallback`` is 1 (int32), else 0. For a model whose ``eps``
    is float32's or coarser while m is float64, the eigenvalues are taken of m in float32: A is
    known to about ε₃₂‖A‖ only, so float32 loses nothing that the threshold √P·ε₃₂·max of
    ``gamma_by_eigenvalues`` keeps, at about 0.7× the time (LAPACK ``syevd``, P = 481, one
    thread: 6.3 ms against 9.1 ms).
    """
    level = ROUNDING_MARGIN * p * eps * xp.sum(xp.diagonal(m))
    coarse = machine_epsilon(m.dtype) < machine_epsilon("float32") <= eps

    def by_eigenvalues():
        ev = xp.cast(eigvalsh(xp.cast(m, "float32")), m.dtype) if coarse else eigvalsh(m)
        return gamma_by_eigenvalues(xp, ev, rho, eps), xp.cast(True, "int32")

    def by_factor():
        trace, ok = trace_inverse(m)
        gamma = p - rho * xp.cast(trace, m.dtype)
        ok = xp.logical_and(xp.logical_and(ok, xp.isfinite(gamma)),
                            xp.logical_and(gamma >= 0.0 * p, gamma <= p))
        return xp.cond(ok, lambda: (gamma, xp.cast(False, "int32")), by_eigenvalues)

    return xp.cond(rho > level, by_factor, by_eigenvalues)


def evidence_update(xp, gamma, fallback, e_d, e_w, n, prior: BayesState):
    """``(BayesState, fallback)``: γ, α, β after an accepted step, and 1 where γ came from the
    eigenvalue fallback (the Cholesky route of the trace failed or gave γ outside [0, P];
    else 0, int32).

    Args:
        gamma, fallback: γ of the step's A + ρI and its route (``effective_parameters``, or
            P and 0 where ρ = 0).
        e_d, e_w: E_D and E_W at the new weights; ``n``: N.
        prior: α, β, γ before the update (β is kept where N − γ ≤ 0).

    Guards (MATLAB's, and one of ours): E_W = 0 gives α = 1, E_D = 0 gives β = 1; where
    N − γ ≤ 0 (more parameters than errors, at the first update where γ = P) β is kept. γ needs
    no clipping: both routes give it in [0, P].
    """
    one = xp.ones_like(e_d)
    gamma = xp.cast(gamma, e_d.dtype)
    alpha = xp.where(e_w > 0, gamma / (2.0 * xp.where(e_w > 0, e_w, one)), one)
    beta = xp.where(e_d > 0, (n - gamma) / (2.0 * xp.where(e_d > 0, e_d, one)), one)
    beta = xp.where(n - gamma > 0, beta, xp.cast(prior.beta, e_d.dtype))
    return BayesState(alpha=alpha, beta=beta, gamma=gamma), xp.cast(fallback, "int32")


def step_gamma(xp, gamma_of: Callable, a_ridge, rho, p):
    """``(γ, fallback)`` of the step's system A + ρI (``gamma_of``: the backend's
    ``(m, ρ, P) -> (γ, fallback)``, ``effective_parameters`` on its kernels or a host kernel
    that does the same); P and 0 where ρ = 0 (α = 0: no prior, every parameter effective).

    It depends on the system only, not on the step taken: ``after_iteration`` asks for it
    before it looks at whether a step was accepted, so that a graph executor (TensorFlow's)
    can run it beside the iteration's attempts (P³ host work beside forward passes and
    Cholesky solves) instead of after them. Its value is used only after an accepted step.
    """
    p = xp.cast(p, rho.dtype)

    def with_trace():
        gamma, fallback = gamma_of(a_ridge, rho, p)
        return xp.cast(gamma, rho.dtype), xp.cast(fallback, "int32")

    def without():
        return p, xp.cast(False, "int32")

    return xp.cond(rho > 0, with_trace, without)


def after_iteration(xp, gamma_of: Callable, info, w_new, rho, scale: ErrorScale,
                    prior: BayesState):
    """``(info, BayesState)`` after one LM iteration on the augmented residuals.

    ``info`` is the iteration's ``StepInfo`` (its ``cost`` ½‖r‖² + ½ρ‖w‖² at the returned
    weights, ``normal`` = A + ρI); ``w_new`` the returned weights, flat. Returned: ``info``
    with ``cost`` the data part ½‖r‖² (the Keras loss), ``logs`` α, β, γ, E_D, E_W and
    ``gamma_fallback`` (1 where γ came from the eigenvalues, ``effective_parameters``: a
    matter of the trace's route, not of the LM attempts that ``cholesky_failures`` counts);
    the new α, β, γ after an accepted step, the prior's after a rejected one.
    """
    dtype = w_new.dtype
    e_w = xp.sum(w_new * w_new)
    data_cost = xp.maximum(xp.cast(info.cost, dtype) - 0.5 * rho * e_w, 0.0 * e_w)
    e_d = 2.0 * scale.s * data_cost
    gamma, fallback = step_gamma(xp, gamma_of, info.normal, rho, xp.shape(w_new)[0])

    def update():
        return evidence_update(xp, gamma, fallback, e_d, e_w, scale.n, prior)

    def keep():
        return prior, xp.cast(False, "int32")

    new, trace_failed = xp.cond(info.accepted, update, keep)
    logs = {"alpha": new.alpha, "beta": new.beta, "gamma": new.gamma, "e_d": e_d, "e_w": e_w,
            "gamma_fallback": trace_failed}
    return info._replace(cost=data_cost, logs=logs), new
