"""The evidence updates of Bayesian regularisation, written once against an array namespace.

MacKay (1992), Foresee & Hagan (1997); MATLAB's ``trainbr``. Glossary: e the errors,
E_D = Σ wᵢeᵢ² their weighted sum of squares, E_W = Σ w² the sum of squared weights, P their
number, N the number of errors, α and β the hyperparameters of F = β·E_D + α·E_W, γ the
effective number of parameters; r the step's residuals, with E_D = s·‖r‖²; ρ = α/(βs), the
ridge of the LM system A + ρI (the derivation is in
``marquardt._backend.tensorflow.keras_bayes``)::

    γ = P − ρ·tr((A + ρI)⁻¹),     α ← γ / (2E_W),     β ← (N − γ) / (2E_D).

Each backend's Bayesian step (``_backend/<backend>/keras_bayes.py``) runs its own LM iteration
on the augmented residuals [r; √ρ w] and its own kernel for tr(m⁻¹); everything else, the
formulas above with their guards, the error scale s and N, and the logs, is here, on ``xp``
(the TensorFlow or JAX namespace of the LM core), so that both backends compute the same
numbers in the same order.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

__all__ = ["BayesState", "ErrorScale", "ridge", "error_scale", "trace_by_eigenvalues",
           "evidence_update", "after_iteration"]


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


def trace_by_eigenvalues(xp, ev, eps: float):
    """Σ 1/μᵢ over the eigenvalues ``ev`` of m, each floored at P·ε·max|μ| (the fallback of
    tr(m⁻¹) where m is not numerically positive definite)."""
    p = xp.cast(xp.shape(ev)[0], ev.dtype)
    floor = p * eps * xp.max(xp.abs(ev))
    return xp.sum(1.0 / xp.maximum(ev, floor))


def evidence_update(xp, trace_inverse: Callable, a_ridge, rho, p, e_d, e_w, n,
                    prior: BayesState):
    """``(BayesState, failed)``: γ, α, β after an accepted step, and 1 where the Cholesky
    factorisation of the trace failed (else 0, int32).

    Args:
        trace_inverse: the backend's ``m -> (tr(m⁻¹), failed)``.
        a_ridge: A + ρI of the step; ``rho`` the ρ it used.
        p: P; ``e_d``, ``e_w``: E_D and E_W at the new weights; ``n``: N.
        prior: α, β, γ before the update (β is kept where N − γ ≤ 0).

    Guards (MATLAB's, and one of ours): E_W = 0 gives α = 1, E_D = 0 gives β = 1; where
    N − γ ≤ 0 (more parameters than errors, at the first update where γ = P) β is kept; γ is
    clipped to [0, P].
    """
    p = xp.cast(p, e_d.dtype)
    one = xp.ones_like(e_d)

    def with_trace():
        trace, failed = trace_inverse(a_ridge)
        return p - rho * trace, xp.cast(failed, "int32")

    def without():  # α = 0: no prior, every parameter effective
        return p, xp.cast(False, "int32")

    gamma, failed = xp.cond(rho > 0, with_trace, without)
    gamma = xp.minimum(xp.maximum(gamma, 0.0 * one), p)
    alpha = xp.where(e_w > 0, gamma / (2.0 * xp.where(e_w > 0, e_w, one)), one)
    beta = xp.where(e_d > 0, (n - gamma) / (2.0 * xp.where(e_d > 0, e_d, one)), one)
    beta = xp.where(n - gamma > 0, beta, xp.cast(prior.beta, e_d.dtype))
    return BayesState(alpha=alpha, beta=beta, gamma=gamma), failed


def after_iteration(xp, trace_inverse: Callable, info, w_new, rho, scale: ErrorScale,
                    prior: BayesState):
    """``(info, BayesState)`` after one LM iteration on the augmented residuals.

    ``info`` is the iteration's ``StepInfo`` (its ``cost`` ½‖r‖² + ½ρ‖w‖² at the returned
    weights, ``normal`` = A + ρI); ``w_new`` the returned weights, flat. Returned: ``info``
    with ``cost`` the data part ½‖r‖² (the Keras loss), ``logs`` α, β, γ, E_D, E_W, and the
    trace's failed factorisation added to ``cholesky_failures``; the new α, β, γ after an
    accepted step, the prior's after a rejected one.
    """
    dtype = w_new.dtype
    e_w = xp.sum(w_new * w_new)
    data_cost = xp.maximum(xp.cast(info.cost, dtype) - 0.5 * rho * e_w, 0.0 * e_w)
    e_d = 2.0 * scale.s * data_cost
    p = xp.shape(w_new)[0]

    def update():
        return evidence_update(xp, trace_inverse, info.normal, rho, p, e_d, e_w, scale.n,
                               prior)

    def keep():
        return prior, xp.cast(False, "int32")

    new, trace_failed = xp.cond(info.accepted, update, keep)
    logs = {"alpha": new.alpha, "beta": new.beta, "gamma": new.gamma, "e_d": e_d, "e_w": e_w}
    info = info._replace(cost=data_cost, logs=logs,
                         cholesky_failures=info.cholesky_failures + trace_failed)
    return info, new
