"""Bayesian regularisation (MATLAB's ``trainbr``) as a variant of the Keras LM step.

Glossary (as in ``keras_step``, plus): e the errors, E_D = Σ wᵢeᵢ² their weighted sum of
squares, E_W = Σ w² the sum of squared weights (all trainable weights and biases), P their
number, N the number of errors (samples with a non-zero weight × outputs), α and β the
hyperparameters of F = β·E_D + α·E_W, γ the effective number of parameters.

The step's residuals r are scaled so that ½‖r‖² is the Keras loss; E_D = s·‖r‖² with
s = k·n/2 for Keras' mean squared error (k outputs, n samples, ``sum_over_batch_size``), k/2
for its ``sum`` reduction, 1 for a custom residual. Dividing F by 2βs gives the cost the LM
core minimises::

    F / (2βs) = ½‖r‖² + ½ρ‖w‖²,     ρ = α / (βs),

a least-squares problem in the augmented residuals [r; √ρ w], whose normal equations are
A + ρI and g + ρw (``lm_iteration(..., ridge=ρ)``). Its Gauss-Newton Hessian is
H = 2βJₑᵀJₑ + 2αI = 2βs(A + ρI), so (MacKay 1992, eq. 4.9 ff.; Foresee & Hagan 1997)::

    γ = P − 2α·tr(H⁻¹) = P − ρ·tr((A + ρI)⁻¹),
    α ← γ / (2E_W),        β ← (N − γ) / (2E_D).

Order (Foresee & Hagan's algorithm, as MATLAB's trainbr): α = 0, β = 1 at the start (the
first step minimises E_D alone); each iteration takes one LM step on F with the current α, β;
after an accepted step γ is computed from A + ρI of the iteration (the Jacobian at the start
of the step, which LM already holds, with the α, β the step used) and α, β from E_D and E_W at
the new weights. A rejected iteration leaves α, β and γ unchanged. At a fixed point the weights
minimise F and α, β solve the evidence equations at those weights.

The trace needs one more factorisation than LM: the accepted step factored A + (ρ + λ)I,
which is not A + ρI while λ > 0 (and λ > 0 always: no factor of the step can be reused
exactly). tr((A + ρI)⁻¹) = ‖L⁻¹‖²_F from the Cholesky factor L: TensorFlow's Cholesky and a
triangular solve against the identity (P³/3 + P³ flops), or from P = ``HOST_TRACE_MIN_N`` on a
CPU LAPACK's ``potrf`` + ``trtri`` on the host (P³/3 + P³/3, ``linalg.host_trace_inverse``);
against mP² for A, so the share of the trace in an epoch grows as P/m. An eigen-decomposition
if A + ρI is not numerically positive definite (a failure counted in the ``cholesky_failures``
log with the step's).

Guards (MATLAB's, and one of ours): E_W = 0 gives α = 1, E_D = 0 gives β = 1 (MATLAB); where
N − γ ≤ 0 (more parameters than errors, at the first update where γ = P) β is kept.

References:
    D. J. C. MacKay, "Bayesian interpolation", Neural Computation 4(3), 415-447 (1992).
    F. D. Foresee, M. T. Hagan, "Gauss-Newton approximation to Bayesian learning", Proc.
    IEEE ICNN 1997, 1930-1935. MathWorks, Deep Learning Toolbox, ``trainbr``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import tensorflow as tf

from marquardt._backend.tensorflow import linalg
from marquardt._backend.tensorflow.keras_step import _flatten, lm_iteration

__all__ = ["BayesState", "trace_inverse", "evidence_update", "bayes_iteration", "iterate_for"]


class BayesState(NamedTuple):
    """The hyperparameters carried between iterations (the wrapper's Keras variables)."""

    alpha: Any  # α, float64 scalar (0 before the first update)
    beta: Any  # β (1 before the first update)
    gamma: Any  # γ (P before the first update)


class ErrorScale(NamedTuple):
    """How the step's residuals relate to the errors of the method."""

    s: Any  # E_D = s·‖r‖²
    n: Any  # N, the number of errors


def trace_inverse(m, host: bool = False):
    """``(tr(m⁻¹), failed)`` of a symmetric positive (semi)definite m: ‖L⁻¹‖²_F by Cholesky
    (TensorFlow's, or with ``host`` LAPACK's ``potrf`` + ``trtri`` on the host,
    ``linalg.host_trace_inverse``); by its eigenvalues (floored at P·ε·max) where the factor
    is not finite, ``failed`` then True (counted with the step's in the ``cholesky_failures``
    log)."""
    if host:
        by_factor, ok = linalg.host_trace_inverse(m)
    else:
        chol = tf.linalg.cholesky(m)
        ok = tf.reduce_all(tf.math.is_finite(chol))

    def by_cholesky():
        if host:
            return by_factor
        eye = tf.eye(tf.shape(m)[0], dtype=m.dtype)
        inv_l = tf.linalg.triangular_solve(chol, eye, lower=True)
        return tf.reduce_sum(inv_l * inv_l)

    def by_eigenvalues():
        ev = tf.linalg.eigvalsh(m)
        eps = tf.constant(2.220446049250313e-16 if m.dtype == tf.float64 else 1.1920929e-07,
                          m.dtype)
        floor = tf.cast(tf.shape(m)[0], m.dtype) * eps * tf.reduce_max(tf.abs(ev))
        return tf.reduce_sum(1.0 / tf.maximum(ev, floor))

    return tf.cond(ok, by_cholesky, by_eigenvalues), tf.logical_not(ok)


def evidence_update(a_ridge, rho, p, e_d, e_w, n, state: BayesState, host_trace=False):
    """``(BayesState, failed)``: γ, α, β after an accepted step (module docstring), and 1
    where the Cholesky factorisation of the trace failed (else 0, int32): ``a_ridge`` = A + ρI
    of the step, ``rho`` the ρ it used, E_D and E_W at the new weights."""
    dtype = e_d.dtype
    p = tf.cast(p, dtype)

    def with_trace():
        trace, failed = trace_inverse(a_ridge, host=host_trace)
        return p - rho * trace, tf.cast(failed, tf.int32)

    gamma, failed = tf.cond(rho > 0, with_trace, lambda: (p, tf.constant(0, tf.int32)))
    gamma = tf.clip_by_value(gamma, tf.zeros([], dtype), p)
    alpha = tf.where(e_w > 0, gamma / (2.0 * tf.where(e_w > 0, e_w, 1.0)),
                     tf.ones([], dtype))
    beta = tf.where(e_d > 0, (n - gamma) / (2.0 * tf.where(e_d > 0, e_d, 1.0)),
                    tf.ones([], dtype))
    beta = tf.where(n - gamma > 0, beta, tf.cast(state.beta, dtype))
    return BayesState(alpha=alpha, beta=beta, gamma=gamma), failed


def bayes_iteration(residual_fn, cost_fn, weights, data, state, cfg, names, *,
                    prior: BayesState, scale: ErrorScale, host_trace: bool = False):
    """One LM iteration on F = βE_D + αE_W, then the evidence update.

    Returns ``(new_weights, lm_state, info, bayes_state)``; ``info.cost`` is the Keras loss
    (½‖r‖², the data part) at the returned weights and ``info.logs`` holds α, β, γ, E_D, E_W.
    ``host_trace``: tr((A + ρI)⁻¹) by the host's LAPACK (``linalg.use_host_trace``).
    """
    dtype = cfg.plan.dtype
    cfg = cfg._replace(kernel=False)  # the ridge makes the system P × P anyway
    alpha = tf.cast(prior.alpha, dtype)
    beta = tf.cast(prior.beta, dtype)
    s = tf.cast(scale.s, dtype)
    n = tf.cast(scale.n, dtype)
    rho = alpha / (beta * s)
    sqrt_rho = tf.sqrt(rho)

    def augmented_cost(ws):
        r, y_pred = cost_fn(ws)
        return tf.concat([r, sqrt_rho * _flatten(ws, dtype)], 0), y_pred

    new_weights, lm_state, info = lm_iteration(residual_fn, augmented_cost, weights, data,
                                               state, cfg, names, ridge=rho)
    w = _flatten(new_weights, dtype)
    e_w = tf.reduce_sum(w * w)
    data_cost = tf.maximum(tf.cast(info.cost, dtype) - 0.5 * rho * e_w, 0.0)
    e_d = 2.0 * s * data_cost
    p = tf.shape(w)[0]
    old = BayesState(alpha=alpha, beta=beta, gamma=tf.cast(prior.gamma, dtype))
    new, trace_failed = tf.cond(info.accepted,
                                lambda: evidence_update(info.normal, rho, p, e_d, e_w, n, old,
                                                                host_trace),
                                lambda: (old, tf.constant(0, tf.int32)))
    logs = {"alpha": new.alpha, "beta": new.beta, "gamma": new.gamma, "e_d": e_d, "e_w": e_w}
    info = info._replace(cost=data_cost, logs=logs,
                         cholesky_failures=info.cholesky_failures + trace_failed)
    return new_weights, lm_state, info, new


def _error_scale(wrapper, data, cfg) -> ErrorScale:
    """s and N for the batch (module docstring)."""
    dtype = cfg.plan.dtype
    first = tf.nest.flatten(data["x"])[0]
    n = tf.cast(tf.shape(first)[0], dtype)
    k = tf.constant(float(cfg.plan.k), dtype)
    sw = data.get("sw")
    if sw is not None:
        rows = tf.reshape(tf.cast(sw, dtype), [tf.shape(first)[0], -1])
        n_err = k * tf.reduce_sum(tf.cast(tf.reduce_any(rows != 0, axis=1), dtype))
    else:
        n_err = k * n
    if wrapper.lm_custom_residual is not None:
        s = tf.ones([], dtype)
    else:
        s = 0.5 * k * (n if wrapper.lm_loss_residual[1] else tf.ones([], dtype))
    return ErrorScale(s=s, n=n_err)


def iterate_for(wrapper):
    """The ``lm_iterate`` of a wrapper trained with Bayesian regularisation: the iteration
    of ``train_step`` with the hyperparameters read from and written to the wrapper's
    variables ``lm_alpha``, ``lm_beta``, ``lm_gamma``."""

    def iterate(residual_fn, cost_fn, weights, data, state, cfg, names):
        prior = BayesState(alpha=tf.convert_to_tensor(wrapper.lm_alpha),
                           beta=tf.convert_to_tensor(wrapper.lm_beta),
                           gamma=tf.convert_to_tensor(wrapper.lm_gamma))
        host = linalg.use_host_trace(int(sum(w.shape.num_elements() for w in weights)),
                                     jit_compile=bool(wrapper.jit_compile))
        new_weights, lm_state, info, bayes = bayes_iteration(
            residual_fn, cost_fn, weights, data, state, cfg, names, prior=prior,
            scale=_error_scale(wrapper, data, cfg), host_trace=host)
        wrapper.lm_alpha.assign(tf.cast(bayes.alpha, wrapper.lm_alpha.dtype))
        wrapper.lm_beta.assign(tf.cast(bayes.beta, wrapper.lm_beta.dtype))
        wrapper.lm_gamma.assign(tf.cast(bayes.gamma, wrapper.lm_gamma.dtype))
        return new_weights, lm_state, info

    return iterate
