"""Bayesian regularisation (MATLAB's ``trainbr``) as a variant of the JAX Keras LM step.

The method, its order of updates and its guards are TensorFlow's
(``_backend/tensorflow/keras_bayes.py`` derives them; the formulas themselves are shared,
``marquardt.keras._evidence``): one LM iteration on the augmented residuals [r; √ρ w],
ρ = α/(βs), i.e. on A + ρI and g + ρw (``keras_step.lm_iteration(..., ridge=ρ)``); after an
accepted step γ = P − ρ·tr((A + ρI)⁻¹), α = γ/(2E_W), β = (N − γ)/(2E_D).

What is JAX's here: α, β and γ are non-trainable variables of the wrapper (``lm_alpha``,
``lm_beta``, ``lm_gamma``), so under Keras' stateless JAX ``train_step`` they are read from and
written to the non-trainable state, not assigned; and tr(m⁻¹) = ‖L⁻¹‖²_F, on a CPU from
``linalg.HOST_LAPACK_MIN_N`` weights on by the host's LAPACK (``potrf`` + ``trtri`` on one
OpenBLAS thread, ``_backend/jax/linalg.py``), otherwise by JAX's Cholesky and a triangular
solve against the identity inside the compiled step. Where the factor is not finite or
γ = P − ρ·tr(m⁻¹) falls outside [0, P], γ from the eigenvalues of m
(``_evidence.gamma_by_eigenvalues``), logged as ``gamma_fallback`` = 1.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular

from marquardt._backend.jax import linalg
from marquardt._backend.jax import xp as jxp
from marquardt._backend.jax.keras_step import _flatten, _positions, lm_iteration
from marquardt.keras import _evidence
from marquardt.keras._evidence import BayesState, ErrorScale

__all__ = ["trace_inverse", "effective_parameters", "bayes_iteration", "iterate"]


def trace_inverse(m):
    """``(tr(m⁻¹), ok)`` of a symmetric positive definite m: ‖L⁻¹‖²_F, on a CPU from
    ``linalg.HOST_LAPACK_MIN_N`` on by LAPACK's ``potrf`` + ``trtri`` on the host
    (``linalg.host_trace_inverse``), otherwise by JAX's Cholesky and a triangular solve against
    the identity; ``ok`` False (and the trace NaN) where the factor is not finite."""
    if linalg.use_host_lapack(int(m.shape[0])):
        return linalg.host_trace_inverse(m)
    chol = jnp.linalg.cholesky(m)
    ok = jnp.all(jnp.isfinite(jnp.diagonal(chol)))

    def by_factor():
        inv_l = solve_triangular(chol, jnp.eye(m.shape[0], dtype=m.dtype), lower=True)
        return jnp.sum(inv_l * inv_l)

    def failed():  # no P³ solve on a NaN factor: the eigenvalue fallback follows
        return jnp.asarray(jnp.nan, m.dtype)

    return jxp.cond(ok, by_factor, failed), ok


def effective_parameters(m, rho, p, eps: float | None = None):
    """``(γ, fallback)`` for m = A + ρI: γ = P − ρ·tr(m⁻¹) by the Cholesky route, or from the
    eigenvalues of m where it fails or gives γ outside [0, P]
    (``_evidence.effective_parameters``, as on TensorFlow). ``eps``: the rounding unit of the
    model's dtype (default m's)."""
    if eps is None:
        eps = float(np.finfo(np.dtype(m.dtype)).eps)
    return _evidence.effective_parameters(jxp, trace_inverse, jnp.linalg.eigvalsh, m, rho,
                                          jnp.asarray(p, m.dtype), eps)


def bayes_iteration(residual_fn, cost_fn, weights, data, state, cfg, *, prior: BayesState,
                    scale: ErrorScale):
    """One LM iteration on F = βE_D + αE_W, then the evidence update.

    Returns ``(new_weights, lm_state, info, bayes_state)``; ``info.cost`` is the Keras loss
    (½‖r‖², the data part) at the returned weights and ``info.logs`` holds α, β, γ, E_D, E_W.
    """
    dtype = cfg.plan.dtype
    cfg = cfg._replace(kernel=False)  # the ridge makes the system P × P anyway
    prior = BayesState(*(jnp.asarray(v).astype(dtype) for v in prior))
    scale = ErrorScale(*(jnp.asarray(v).astype(dtype) for v in scale))
    rho = _evidence.ridge(prior, scale)
    sqrt_rho = jnp.sqrt(rho)

    def augmented_cost(ws):
        r, y_pred = cost_fn(ws)
        return jnp.concatenate([r, sqrt_rho * _flatten(ws, dtype)]), y_pred

    new_weights, lm_state, info = lm_iteration(residual_fn, augmented_cost, weights, data,
                                               state, cfg, ridge=rho)
    eps = float(np.finfo(np.dtype(weights[0].dtype)).eps)  # J's rounding

    def gamma_of(m, rho_, p):
        return effective_parameters(m, rho_, p, eps)

    info, new = _evidence.after_iteration(jxp, gamma_of, info,
                                          _flatten(new_weights, dtype), rho, scale, prior)
    return new_weights, lm_state, info, new


def iterate(wrapper, non_trainable, residual_fn, cost_fn, weights, data, lm_state, cfg):
    """The Bayesian iteration inside ``keras_step.train_step``: α, β, γ read from
    ``non_trainable`` (the trainer's state, a list) and their new values written back into it.
    Returns ``(new_weights, lm_state, info)`` as ``lm_iteration``."""
    pos = _positions(wrapper.non_trainable_variables,
                     (wrapper.lm_alpha, wrapper.lm_beta, wrapper.lm_gamma))
    prior = BayesState(*(non_trainable[i] for i in pos))
    first = jax.tree_util.tree_leaves(data["x"])[0]
    scale = _evidence.error_scale(
        jxp, int(first.shape[0]), data.get("sw"), cfg.plan.k,
        custom=wrapper.lm_custom_residual is not None,
        mean=bool(wrapper.lm_custom_residual is None and wrapper.lm_loss_residual[1]),
        dtype=cfg.plan.dtype)
    new_weights, lm_state, info, new = bayes_iteration(
        residual_fn, cost_fn, weights, data, lm_state, cfg, prior=prior, scale=scale)
    for i, value in zip(pos, new):
        non_trainable[i] = jnp.asarray(value).astype(non_trainable[i].dtype)
    return new_weights, lm_state, info
