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
the new weights. A rejected iteration leaves α, β and γ unchanged. γ depends on A + ρI only,
not on the step, so it is asked for before the attempts' outcome is known
(``_evidence.step_gamma``): in the graph nothing orders it after the attempts, and TensorFlow's
executor runs the host's P³ work on one inter-op thread while the attempts (forward passes,
Cholesky solves) run on the others; its value is used only once a step is accepted. At a fixed point the weights
minimise F and α, β solve the evidence equations at those weights.

The trace needs one more factorisation than LM: the accepted step factored A + (ρ + λ)I,
which is not A + ρI while λ > 0 (and λ > 0 always: no factor of the step can be reused
exactly). tr((A + ρI)⁻¹) = ‖L⁻¹‖²_F from the Cholesky factor L: TensorFlow's Cholesky and a
triangular solve against the identity (P³/3 + P³ flops), or from P = ``HOST_TRACE_MIN_N`` on a
CPU LAPACK's ``potrf`` + ``trtri`` on the host (P³/3 + P³/3,
``linalg.host_effective_parameters``); against mP² for A, so the share of the trace in an
epoch grows as P/m. Where that factor does not exist or its γ = P − ρ·tr lies outside [0, P]
(in float32 once ρ is below the rounding level of A), γ = Σ sᵢ/(sᵢ + ρ) from the eigenvalues
of A + ρI (``_evidence.gamma_by_eigenvalues``; logged as ``gamma_fallback`` = 1), never a
clipped value.

Guards (MATLAB's, and one of ours): E_W = 0 gives α = 1, E_D = 0 gives β = 1 (MATLAB); where
N − γ ≤ 0 (more parameters than errors, at the first update where γ = P) β is kept.

The formulas, the guards, s and N are backend-neutral (``marquardt.keras._evidence``, shared
with the JAX step ``_backend/jax/keras_bayes.py``); this module holds TensorFlow's trace kernel
and runs its LM iteration on the augmented residuals.

References:
    D. J. C. MacKay, "Bayesian interpolation", Neural Computation 4(3), 415-447 (1992).
    F. D. Foresee, M. T. Hagan, "Gauss-Newton approximation to Bayesian learning", Proc.
    IEEE ICNN 1997, 1930-1935. MathWorks, Deep Learning Toolbox, ``trainbr``.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from marquardt._backend.tensorflow import linalg
from marquardt._backend.tensorflow import xp as tfx
from marquardt._backend.tensorflow.keras_step import _flatten, lm_iteration
from marquardt.keras import _evidence
from marquardt.keras._evidence import BayesState, ErrorScale

__all__ = ["BayesState", "trace_inverse", "effective_parameters", "bayes_iteration",
           "iterate_for"]


def trace_inverse(m):
    """``(tr(m⁻¹), ok)`` of a symmetric positive definite m: ‖L⁻¹‖²_F from TensorFlow's
    Cholesky factor L and a triangular solve against the identity; ``ok`` False where the
    factor is not finite (the value is then meaningless)."""
    chol = tf.linalg.cholesky(m)
    ok = tf.reduce_all(tf.math.is_finite(tf.linalg.diag_part(chol)))

    def by_factor():
        eye = tf.eye(tf.shape(m)[0], dtype=m.dtype)
        inv_l = tf.linalg.triangular_solve(chol, eye, lower=True)
        return tf.reduce_sum(inv_l * inv_l)

    def failed():  # no P³ solve on a NaN factor: the eigenvalue fallback follows
        return tf.constant(float("nan"), m.dtype)

    return tf.cond(ok, by_factor, failed), ok


def effective_parameters(m, rho, p, eps: float | None = None, host: bool = False):
    """``(γ, fallback)`` for m = A + ρI: γ = P − ρ·tr(m⁻¹) by the Cholesky route, or from the
    eigenvalues of m where that route fails or gives γ outside [0, P]
    (``_evidence.effective_parameters``); with ``host`` all of it by LAPACK on the host
    (``linalg.host_effective_parameters``: ``potrf`` + ``trtri``, ``syevd`` on fallback).
    ``eps``: the rounding unit of the model's dtype (default m's)."""
    if eps is None:
        eps = float(np.finfo(m.dtype.as_numpy_dtype).eps)
    if host:
        return linalg.host_effective_parameters(m, rho, eps)
    return _evidence.effective_parameters(tfx, trace_inverse, tf.linalg.eigvalsh, m, rho,
                                          tf.cast(p, m.dtype), eps)


def bayes_iteration(residual_fn, cost_fn, weights, data, state, cfg, names, *,
                    prior: BayesState, scale: ErrorScale, host_trace: bool = False):
    """One LM iteration on F = βE_D + αE_W, then the evidence update.

    Returns ``(new_weights, lm_state, info, bayes_state)``; ``info.cost`` is the Keras loss
    (½‖r‖², the data part) at the returned weights and ``info.logs`` holds α, β, γ, E_D, E_W.
    ``host_trace``: tr((A + ρI)⁻¹) by the host's LAPACK (``linalg.use_host_trace``).
    """
    dtype = cfg.plan.dtype
    cfg = cfg._replace(kernel=False)  # the ridge makes the system P × P anyway
    prior = BayesState(*(tf.cast(v, dtype) for v in prior))
    scale = ErrorScale(*(tf.cast(v, dtype) for v in scale))
    rho = _evidence.ridge(prior, scale)
    sqrt_rho = tf.sqrt(rho)
    eps = float(np.finfo(tf.as_dtype(weights[0].dtype).as_numpy_dtype).eps)  # J's rounding

    def augmented_cost(ws):
        r, y_pred = cost_fn(ws)
        return tf.concat([r, sqrt_rho * _flatten(ws, dtype)], 0), y_pred

    new_weights, lm_state, info = lm_iteration(residual_fn, augmented_cost, weights, data,
                                               state, cfg, names, ridge=rho)
    info, new = _evidence.after_iteration(
        tfx, lambda m, rho, p: effective_parameters(m, rho, p, eps, host=host_trace), info, _flatten(new_weights, dtype),
        rho, scale, prior)
    return new_weights, lm_state, info, new


def _error_scale(wrapper, data, cfg) -> ErrorScale:
    """s and N for the batch (``_evidence.error_scale``)."""
    first = tf.nest.flatten(data["x"])[0]
    return _evidence.error_scale(
        tfx, tf.shape(first)[0], data.get("sw"), cfg.plan.k,
        custom=wrapper.lm_custom_residual is not None,
        mean=bool(wrapper.lm_custom_residual is None and wrapper.lm_loss_residual[1]),
        dtype=cfg.plan.dtype)


def iterate_for(wrapper):
    """The ``lm_iterate`` of a wrapper trained with Bayesian regularisation: the iteration
    of ``train_step`` with the hyperparameters read from and written to the wrapper's
    variables ``lm_alpha``, ``lm_beta``, ``lm_gamma``."""

    def iterate(residual_fn, cost_fn, weights, data, state, cfg, names):
        prior = BayesState(alpha=tf.convert_to_tensor(wrapper.lm_alpha),
                           beta=tf.convert_to_tensor(wrapper.lm_beta),
                           gamma=tf.convert_to_tensor(wrapper.lm_gamma))
        host = linalg.use_host_trace(
            int(sum(w.shape.num_elements() for w in weights)),
            jit_compile=bool(wrapper.jit_compile),
            float32=all(w.dtype.size <= 4 for w in weights))
        new_weights, lm_state, info, bayes = bayes_iteration(
            residual_fn, cost_fn, weights, data, state, cfg, names, prior=prior,
            scale=_error_scale(wrapper, data, cfg), host_trace=host)
        wrapper.lm_alpha.assign(tf.cast(bayes.alpha, wrapper.lm_alpha.dtype))
        wrapper.lm_beta.assign(tf.cast(bayes.beta, wrapper.lm_beta.dtype))
        wrapper.lm_gamma.assign(tf.cast(bayes.gamma, wrapper.lm_gamma.dtype))
        return new_weights, lm_state, info

    return iterate
