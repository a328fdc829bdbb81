"""One Levenberg-Marquardt iteration as Keras' stateless JAX ``train_step``.

Glossary: w the trainable weights (flattened, P of them); r the residuals of the batch, scaled
so that the cost F(w) = ½‖r‖² is the Keras loss value; J = ∂r/∂w; A = JᵀJ; g = Jᵀr = ∇F;
D = diag(d) the damping matrix (``_scaling``); λ the damping (``_damping``); δ the step; ρ the
gain ratio, actual over predicted reduction (``_gain``).

Keras 3 on JAX trains statelessly: ``train_step(state, data) -> (logs, state)`` with
state = (trainable, non-trainable, optimizer, metrics variables' values), the whole step
compiled by ``jax.jit``. The iteration is the LM core's (``marquardt._core.iteration``: the
same ``prepare``, ``propose`` and ``judge`` that ``least_squares`` and the TensorFlow step
run, here on the JAX namespace ``_backend/jax/xp.py``); this module is its executor:

1. A and g at w, in row chunks (``keras_jacobian``: ``jax.vjp`` per sample, ``vmap``,
   ``lax.scan`` over chunks); F(w) by a forward pass (``stateless_call``).
2. ``jax.lax.while_loop`` over attempts: δ solves (A + λD)δ = −g (Cholesky, eigen fallback;
   or the kernel form when m < P; on a CPU the Cholesky runs on the host's LAPACK from
   ``linalg.HOST_LAPACK_MIN_N`` weights on, ``_backend/jax/linalg.py``); the candidate
   w + δ is evaluated with ``stateless_call``; the policy accepts or rejects and updates λ;
   at most ``max_attempts``.
3. The accepted weights (the old ones after a failed iteration) go out as the new trainable
   state; λ, ν, d and the start flag are the wrapper's non-trainable variables
   (``lm_lambda``, ``lm_nu``, ``lm_scale``, ``lm_started``), so they are in the trainer's
   state, persist across epochs and are saved with the weights.

Float64: JAX computes float32 unless ``jax_enable_x64`` is set (``docs/keras.md``); without
it A and g are formed in float32 whatever ``precision`` says.
"""

from __future__ import annotations

import warnings
from typing import Callable

import jax
import jax.numpy as jnp
import keras
import numpy as np

from marquardt._backend.jax import linalg
from marquardt._backend.jax import xp as jxp
from marquardt._backend.jax.keras_jacobian import (
    flat_size, full_rows, normal_equations, per_sample_rows)
from marquardt._core import iteration as core
from marquardt._core.records import RUNNING, LoopState
from marquardt._status import Status
from marquardt.keras import _bayes
from marquardt.keras._step import (
    LMState, StepConfig, StepInfo, build_config, loop_config, step_functions)

__all__ = ["lm_iteration", "step_config", "train_step"]


def _flatten(weights, dtype):
    return jnp.concatenate([jnp.reshape(w, (-1,)).astype(dtype) for w in weights])


def _unflatten(flat, weights):
    parts, start = [], 0
    for w in weights:
        size = int(np.prod(w.shape))
        parts.append(jnp.reshape(flat[start:start + size], w.shape).astype(w.dtype))
        start += size
    return parts


def available(dtype) -> np.dtype:
    """``dtype`` as JAX will really compute it (float64 → float32 without x64)."""
    return np.dtype(jax.dtypes.canonicalize_dtype(np.dtype(dtype)))


def step_config(wrapper, batch, weights, frozen) -> StepConfig:
    """``StepConfig`` for this batch (called while the step is traced); warns when
    ``precision="float64"`` cannot be had (JAX without ``jax_enable_x64``)."""
    if wrapper.lm_options.precision == "float64" and available("float64") != np.float64:
        warnings.warn(
            "`precision` 'float64' needs JAX's float64: call "
            "jax.config.update(\"jax_enable_x64\", True) before building the model; JᵀJ and "
            "Jᵀr are formed in float32 instead. Received: precision='float64' with "
            "jax_enable_x64=False", UserWarning, stacklevel=2)
    k = wrapper.residuals_per_sample(batch, weights, frozen)
    rows = int(jax.tree_util.tree_leaves(batch["x"])[0].shape[0])
    p = flat_size(weights)
    # on a CPU, A + λD of a few hundred weights and more is factored by the host's LAPACK
    kernel = linalg.host_cholesky_solve if linalg.use_host_lapack(p) else None
    return build_config(wrapper, p=p, k=k, rows=rows,
                        model_dtype=np.dtype(weights[0].dtype), as_dtype=available,
                        cholesky_solve=kernel)


def lm_iteration(residual_fn: Callable, cost_fn: Callable, weights, data, state: LMState,
                 cfg: StepConfig, ridge=None):
    """One LM iteration from ``weights``; returns ``(new_weights, new_state, info)``.

    The JAX executor of the core's iteration (``_backend/tensorflow/keras_step.lm_iteration``
    is TensorFlow's, with the same arguments less the weights' names).

    Args:
        residual_fn: ``residual_fn(weights, batch) -> r`` (b, k), scaled so F = ½‖r‖².
        cost_fn: ``cost_fn(weights) -> (r, y_pred)``: the flat residuals of the whole batch
            in the dtype of the normal equations, and the predictions.
        weights: list of weight arrays.
        data: the batch, a nested structure of arrays with a leading sample axis.
        state: the ``LMState`` from the previous iteration.
        cfg: the ``StepConfig``.
        ridge: optional scalar ρ: minimise ½‖r‖² + ½ρ‖w‖² instead, i.e. A + ρI and g + ρw
            (normal-equations form only); ``cost_fn`` must then return the augmented
            residuals [r; √ρ w]. Used by Bayesian regularisation (``keras_bayes``).
    """
    dtype = cfg.plan.dtype
    core_cfg = loop_config(cfg)
    r0, y_pred0 = cost_fn(weights)
    cost0 = 0.5 * jnp.sum(r0 * r0)
    if cfg.kernel:
        if cfg.plan.per_sample:
            jac, res = per_sample_rows(residual_fn, weights, data, cfg.plan.k)
        else:
            jac, res = full_rows(residual_fn, weights, data)
        jac, res = jac.astype(dtype), res.astype(dtype)
        lin = core.jacobian_linearization(jxp, res[None], jac[None])
        g = lin.g[0]
        a = None
    else:
        a, g = normal_equations(residual_fn, weights, data, cfg.plan)
        if ridge is not None:
            a = a + ridge * jnp.eye(a.shape[0], dtype=a.dtype)
            g = g + ridge * _flatten(weights, dtype)
        lin = core.normal_linearization(jxp, a[None], g[None], cost0[None])
    start_ok = jnp.logical_and(jnp.isfinite(cost0), jnp.all(jnp.isfinite(g)))
    if not cfg.kernel:
        start_ok = jnp.logical_and(start_ok, jnp.all(jnp.isfinite(lin.colsq)))

    # λ, ν and d carry over from the previous step; the first step starts them afresh.
    d_fresh = core.damping_diagonal(core_cfg, jxp, None, lin.colsq)
    d_prev = jnp.where(state.started, state.d[None], d_fresh)
    fresh = core.initial_damping(core_cfg, jxp, lin.colsq,
                                 core.damping_diagonal(core_cfg, jxp, d_prev, lin.colsq))
    fresh_lam = jnp.asarray(fresh.lam, dtype)
    fresh_nu = jnp.asarray(fresh.nu, dtype)
    x = _flatten(weights, dtype)[None]
    zero = jnp.zeros((1,), dtype)
    none = jnp.zeros((1,), jnp.int32)
    s = LoopState(x=x, f=r0[None], j=None, cost=cost0[None],
                  lam=jnp.where(state.started, state.lam[None], fresh_lam),
                  nu=jnp.where(state.started, state.nu[None], fresh_nu), d=d_prev,
                  nfev=none, njev=none, nit=none,
                  status=jnp.where(start_ok, RUNNING, int(Status.NON_FINITE))[None].astype(
                      jnp.int32),
                  last_step=zero, last_rho=zero, last_reduction=zero, x_norm=zero)
    prep, c0 = core.prepare(core_cfg, jxp, s, None, None, None, lin=lin, masked=False)
    # the loop's carry must keep its types: the core mixes Python scalars into λ and ν
    c0 = c0._replace(lam=c0.lam.astype(dtype), nu=c0.nu.astype(dtype))

    def cond(carry):
        c, _, _ = carry
        return jnp.logical_and(jnp.any(core.live(jxp, c)), c.attempts[0] < cfg.max_attempts)

    def body(carry):
        c, y_pred, fails = carry
        x_try, failed = core.propose_checked(core_cfg, jxp, prep, s, c, None, None)
        r_c, y_pred_c = cost_fn(_unflatten(x_try[0], weights))
        new = core.judge(core_cfg, jxp, prep, s, c, x_try, r_c[None])
        new = jax.tree_util.tree_map(lambda n_, o: n_.astype(o.dtype), new, c)
        y_pred = jax.tree_util.tree_map(lambda n_, o: jnp.where(new.accepted[0], n_, o),
                                        y_pred_c, y_pred)
        return new, y_pred, fails + failed[0].astype(jnp.int32)

    # ``fails``: the attempts whose Cholesky factorisation failed (the eigen route solved)
    c, y_pred, fails = jax.lax.while_loop(cond, body, (c0, y_pred0, jnp.int32(0)))
    accepted = c.accepted[0]
    x_new = jnp.where(accepted, c.x_new, x)[0]
    new_weights = _unflatten(x_new, weights)
    status = c.status[0]
    info = StepInfo(cost=jnp.where(accepted, c.cost_new[0], cost0), accepted=accepted,
                    attempts=c.attempts[0], grad_norm=jnp.linalg.norm(g),
                    step_norm=jnp.linalg.norm(x_new - x[0]), status=status, y_pred=y_pred,
                    normal=a, cholesky_failures=fails)
    # λ past its ceiling ends a full-batch run; in mini-batch training only this batch failed,
    # so the next batch starts again from the initial λ (``marquardt.keras._stopping``).
    limited = jnp.logical_or(status == int(Status.DAMPING_LIMIT),
                             status == int(Status.STALLED))
    lam = jnp.where(limited, fresh_lam[0], c.lam[0])
    nu = jnp.where(limited, fresh_nu[0], c.nu[0])
    new_state = LMState(lam=lam, nu=nu, d=prep.d[0],
                        started=jnp.logical_or(state.started, start_ok))
    return new_weights, new_state, info


def _positions(refs, wanted):
    """Index in ``refs`` of each variable of ``wanted`` (by identity)."""
    index = {id(v): i for i, v in enumerate(refs)}
    return [index[id(v)] for v in wanted]


def _metrics(wrapper, metrics_values, loss, n, y, y_pred, sample_weight, custom):
    """The Keras metrics updated statelessly: ``(logs, new metrics values)``."""
    refs = wrapper.metrics_variables
    with keras.StatelessScope(state_mapping=list(zip(refs, metrics_values))) as scope:
        wrapper._loss_tracker.update_state(loss, sample_weight=n)
        if y is not None and wrapper._compile_metrics is not None and custom is None:
            wrapper._compile_metrics.update_state(y, y_pred, sample_weight)
        if y is not None and wrapper.lm_output_losses:
            wrapper._compile_loss(y, y_pred, sample_weight)  # per-output losses (`a_loss`)
        logs = wrapper.get_metrics_result()
    new = []
    for ref, old in zip(refs, metrics_values):
        value = scope.get_current_value(ref)
        new.append(old if value is None else value)
    return logs, new


def train_step(wrapper, state, data):
    """The JAX ``train_step`` of ``marquardt.keras.LMModel``: one LM iteration on ``data``.

    Args:
        wrapper: the ``LMModel`` (its ``network``, residual and LM variables).
        state: ``(trainable, non_trainable, optimizer, metrics)`` variable values.
        data: the batch ``(x, y, sample_weight)``.

    Returns:
        ``(logs, new_state)``.
    """
    trainable, non_trainable, optimizer_values, metrics_values = state
    trainable, non_trainable = list(trainable), list(non_trainable)
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    net = wrapper.network
    t_pos = _positions(wrapper.trainable_variables, net.trainable_variables)
    f_pos = _positions(wrapper.non_trainable_variables, net.non_trainable_variables)
    lm_vars = (wrapper.lm_lambda, wrapper.lm_nu, wrapper.lm_scale, wrapper.lm_started)
    lm_pos = _positions(wrapper.non_trainable_variables, lm_vars)
    weights = [trainable[i] for i in t_pos]
    frozen = [non_trainable[i] for i in f_pos]
    training = wrapper.lm_options.training
    first = jax.tree_util.tree_leaves(x)[0]
    n = int(first.shape[0])

    def predict(ws, inputs):
        out, _ = net.stateless_call(ws, frozen, inputs, training=training)
        return out

    per_batch_mean = wrapper.lm_custom_residual is None and wrapper.lm_loss_residual[1]
    fns = step_functions(wrapper, predict, x, y, sample_weight,
                         1.0 / np.sqrt(n) if per_batch_mean else None)
    batch, residual_fn = fns.batch, fns.residual_fn
    cfg = step_config(wrapper, batch, weights, frozen)
    dtype = cfg.plan.dtype

    def cost_fn(ws):
        return fns.cost_fn(ws, dtype)

    lam, nu, d, started = (non_trainable[i] for i in lm_pos)
    lm_state = LMState(lam=lam.astype(dtype), nu=nu.astype(dtype), d=d.astype(dtype),
                       started=started > 0)
    if _bayes.enabled(wrapper.lm_options):  # Bayesian regularisation: α, β, γ in the state
        from marquardt._backend.jax import keras_bayes

        new_weights, lm_state, info = keras_bayes.iterate(
            wrapper, non_trainable, residual_fn, cost_fn, weights, batch, lm_state, cfg)
    else:
        new_weights, lm_state, info = lm_iteration(residual_fn, cost_fn, weights, batch,
                                                   lm_state, cfg)
    for i, w in zip(t_pos, new_weights):
        trainable[i] = w
    if training and frozen:
        # Moving statistics (batch normalisation) follow Keras' one update per train step: one
        # training-mode forward pass at the accepted weights; nothing changes after a
        # rejected iteration.
        _, updated = net.stateless_call(new_weights, frozen, x, training=True)
        for i, new, old in zip(f_pos, updated, frozen):
            non_trainable[i] = jnp.where(info.accepted, new, old)
    for i, value in zip(lm_pos, (lm_state.lam, lm_state.nu, lm_state.d, lm_state.started)):
        non_trainable[i] = jnp.asarray(value).astype(non_trainable[i].dtype)

    loss = info.cost.astype(keras.backend.floatx())
    logs, metrics_values = _metrics(wrapper, metrics_values, loss, n, y, info.y_pred,
                                    sample_weight, wrapper.lm_custom_residual)
    logs = dict(logs)
    logs.update(lam=lm_state.lam, attempts=info.attempts, grad_norm=info.grad_norm,
                step_norm=info.step_norm, lm_status=info.status,
                cholesky_failures=info.cholesky_failures)
    if info.logs:
        logs.update(info.logs)
    return logs, (trainable, non_trainable, optimizer_values, metrics_values)
