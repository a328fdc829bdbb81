"""One Levenberg-Marquardt iteration as a Keras ``train_step`` (TensorFlow backend).

Glossary: w the trainable weights (flattened, P of them); r the residuals of the batch, scaled
so that the cost F(w) = ½‖r‖² is the Keras loss value; J = ∂r/∂w; A = JᵀJ; g = Jᵀr = ∇F;
D = diag(d) the damping matrix (``_scaling``); λ the damping (``_damping``); δ the step; ρ the
gain ratio, actual over predicted reduction (``_gain``).

One iteration is the LM core's (``marquardt._core.iteration``, the same functions that
``least_squares`` and ``curve_fit_batch`` run); this module is its Keras executor:

1. A and g at w, in row chunks (``keras_jacobian``); F(w) by a forward pass.
2. ``tf.while_loop`` over attempts: δ solves (A + λD)δ = −g (Cholesky, by the host's LAPACK
   for large P on a CPU; eigen fallback; or the kernel form when m < P); the candidate
   w + δ is evaluated with ``stateless_call`` (no variable is touched);
   ρ = (F(w) − F(w + δ)) / (−gᵀδ − ½δᵀAδ), with the noise floor of ``_gain``; the policy
   accepts or rejects and updates λ. The loop ends at the first accepted step, after
   ``max_attempts``, or when λ passes its ceiling.
3. Only an accepted step — finite, with its loss check passed — is assigned to the weights.
   λ, ν and d are Keras variables of the wrapper, so they persist across epochs and are saved
   with its weights.

The step never branches in Python on tensor values, so it compiles under ``tf.function``.

Under ``tf.distribute`` (``keras_distribute``) each replica runs this step on its shard of the
batch: A, g and F are all-reduced after step 1, the candidate's sums in each attempt
(``core.judge(reduce=...)``), and the attempts loop is unrolled, so every replica takes the
same decisions.
"""

from __future__ import annotations

from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from marquardt._backend.tensorflow import keras_distribute, linalg
from marquardt._backend.tensorflow import xp as tfx
from marquardt._core import iteration as core
from marquardt._core.records import RUNNING, LoopState
from marquardt._status import Status
from marquardt._backend.tensorflow.keras_jacobian import (
    full_jacobian, normal_equations, per_sample_chunk)
from marquardt.keras._step import (  # noqa: F401  (re-exported: the step's records)
    JacobianPlan, LMState, StepConfig, StepInfo, build_config, loop_config, step_functions)

__all__ = ["StepConfig", "LMState", "StepInfo", "lm_iteration", "loop_config", "train_step",
           "step_config"]


def _flatten(weights, dtype):
    return tf.concat([tf.reshape(tf.cast(w, dtype), [-1]) for w in weights], 0)


def _unflatten(flat, weights):
    parts, start = [], 0
    for w in weights:
        size = w.shape.num_elements()
        parts.append(tf.cast(tf.reshape(flat[start:start + size], tf.shape(w)), w.dtype))
        start += size
    return parts


def lm_iteration(residual_fn: Callable, cost_fn: Callable, weights, data, state: LMState,
                 cfg: StepConfig, names, ridge=None):
    """One LM iteration from ``weights``; returns ``(new_weights, new_state, info)``.

    The iteration is the LM core's (``marquardt._core.iteration``: prepare, propose, judge)
    on one problem whose parameters are the flattened weights, linearised by the normal
    equations A = JᵀJ, g = Jᵀr summed in row chunks (or by J itself in the kernel form);
    this function is its Keras executor: the attempts' ``tf.while_loop`` (at most
    ``max_attempts``), the candidates' forward passes, and λ, ν, d kept across steps.

    Args:
        residual_fn: ``residual_fn(weights, batch) -> r`` (b, k), scaled so F = ½‖r‖².
        cost_fn: ``cost_fn(weights) -> (r, y_pred)``: the flat residuals of the whole batch
            in the dtype of the normal equations, and the predictions.
        weights: list of weight tensors (not variables).
        data: the batch, a nested structure of tensors with a leading sample axis.
        state: the ``LMState`` from the previous iteration.
        cfg: the ``StepConfig``.
        names: weight names for error messages.
        ridge: optional scalar ρ (a tensor in the normal equations' dtype): minimise
            ½‖r‖² + ½ρ‖w‖² instead, i.e. A + ρI and g + ρw (normal-equations form only);
            ``cost_fn`` must then return the augmented residuals [r; √ρ w]. Used by Bayesian
            regularisation (``keras_bayes``).
    """
    dtype = cfg.plan.dtype
    core_cfg = loop_config(cfg)
    # under tf.distribute each replica holds a shard of the rows: sums over rows are
    # all-reduced (``keras_distribute``); one replica: no reduction at all
    sharded = keras_distribute.replica_count() > 1
    r0, y_pred0 = cost_fn(weights)
    cost0 = 0.5 * tf.reduce_sum(r0 * r0)
    if sharded and (cfg.kernel or ridge is not None):
        # LMModel.fit refuses both first (``keras._validation.check_distributed``): the kernel
        # form needs all of J, and the ridge rows √ρw would be added once per replica
        raise ValueError("Under tf.distribute the step needs the normal-equations form without "
                         "a ridge. Received: kernel="
                         f"{cfg.kernel}, ridge={'given' if ridge is not None else None} with "
                         f"{keras_distribute.replica_count()} replicas")
    if cfg.kernel:
        if cfg.plan.per_sample:
            jac, res = per_sample_chunk(residual_fn, weights, data, cfg.plan.k, names)
        else:
            jac, res = full_jacobian(residual_fn, weights, data, names)
        jac, res = tf.cast(jac, dtype), tf.cast(res, dtype)
        lin = core.jacobian_linearization(tfx, res[None], jac[None])
        g = lin.g[0]
    else:
        a, g = normal_equations(residual_fn, weights, data, cfg.plan, names)
        if sharded:  # one all-reduce of A, g and F: P² + P + 1 numbers
            p = tf.shape(g)[0]
            summed = keras_distribute.replica_sum(
                tf.concat([tf.reshape(a, [-1]), g, tf.reshape(cost0, [1])], 0))
            a = tf.reshape(summed[:p * p], [p, p])
            g, cost0 = summed[p * p:p * p + p], summed[p * p + p]
        if ridge is not None:
            a = a + ridge * tf.eye(tf.shape(a)[0], dtype=a.dtype)
            g = g + ridge * _flatten(weights, dtype)
        lin = core.normal_linearization(tfx, a[None], g[None], cost0[None])
    start_ok = tf.logical_and(tf.math.is_finite(cost0), tf.reduce_all(tf.math.is_finite(g)))
    if not cfg.kernel:
        start_ok = tf.logical_and(start_ok, tf.reduce_all(tf.math.is_finite(lin.colsq)))

    # λ, ν and d carry over from the previous step; the first step starts them afresh.
    d_fresh = core.damping_diagonal(core_cfg, tfx, None, lin.colsq)
    d_prev = tf.where(state.started, state.d[None], d_fresh)
    fresh = core.initial_damping(core_cfg, tfx, lin.colsq,
                                 core.damping_diagonal(core_cfg, tfx, d_prev, lin.colsq))
    fresh_lam = tf.cast(fresh.lam, dtype)
    fresh_nu = tf.cast(fresh.nu, dtype)
    x = _flatten(weights, dtype)[None]
    zero = tf.zeros([1], dtype)
    none = tf.zeros([1], tf.int32)
    s = LoopState(x=x, f=r0[None], j=None, cost=cost0[None],
                  lam=tf.where(state.started, state.lam[None], fresh_lam),
                  nu=tf.where(state.started, state.nu[None], fresh_nu), d=d_prev,
                  nfev=none, njev=none, nit=none,
                  status=tf.where(start_ok, RUNNING, int(Status.NON_FINITE))[None],
                  last_step=zero, last_rho=zero, last_reduction=zero, x_norm=zero)
    prep, c0 = core.prepare(core_cfg, tfx, s, None, None, None, lin=lin, masked=False)

    def live(c):
        return tf.logical_and(tf.reduce_any(core.live(tfx, c)), c.attempts[0] < cfg.max_attempts)

    def candidate(c):
        x_try, failed = core.propose_checked(core_cfg, tfx, prep, s, c, None, None)
        r_c, y_pred_c = cost_fn(_unflatten(x_try[0], weights))
        return x_try, r_c, y_pred_c, tf.cast(failed[0], tf.int32)

    def decide(c, y_pred, x_try, r_c, y_pred_c, reduce=None):
        c = core.judge(core_cfg, tfx, prep, s, c, x_try, r_c[None], reduce=reduce)
        y_pred = tf.nest.map_structure(lambda new, old: tf.where(c.accepted[0], new, old),
                                       y_pred_c, y_pred)
        return c, y_pred

    def attempt(c, y_pred, fails):
        x_try, r_c, y_pred_c, failed = candidate(c)
        return (*decide(c, y_pred, x_try, r_c, y_pred_c), fails + failed)

    # ``fails``: the attempts whose Cholesky factorisation failed (the eigen route solved)
    if sharded:
        c, y_pred, fails = _unrolled_attempts(live, candidate, decide, c0, y_pred0, r0, x,
                                              cfg.max_attempts)
    else:
        c, y_pred, fails = tf.while_loop(lambda c, y_pred, fails: live(c), attempt,
                                         (c0, y_pred0, tf.constant(0, tf.int32)),
                                         parallel_iterations=1)
    accepted = c.accepted[0]
    x_new = tf.where(accepted, c.x_new, x)[0]
    new_weights = _unflatten(x_new, weights)
    status = c.status[0]
    info = StepInfo(cost=tf.where(accepted, c.cost_new[0], cost0), accepted=accepted,
                    attempts=c.attempts[0], grad_norm=tf.norm(g),
                    step_norm=tf.norm(x_new - x[0]), status=status, y_pred=y_pred,
                    normal=None if cfg.kernel else a, cholesky_failures=fails)
    # λ past its ceiling ends a full-batch run; in mini-batch training only this batch failed,
    # so the next batch starts again from the initial λ (``marquardt.keras._stopping``).
    limited = tf.logical_or(tf.equal(status, int(Status.DAMPING_LIMIT)),
                            tf.equal(status, int(Status.STALLED)))
    lam = tf.where(limited, fresh_lam[0], c.lam[0])
    nu = tf.where(limited, fresh_nu[0], c.nu[0])
    state = LMState(lam=lam, nu=nu, d=prep.d[0], started=tf.logical_or(state.started, start_ok))
    return new_weights, state, info


def step_config(wrapper, batch, weights) -> StepConfig:
    """``StepConfig`` for this batch (called while the step is traced): the options' own
    (``marquardt.keras._step.build_config``), the dtypes as TensorFlow's, and the host's
    LAPACK Cholesky for large P on a CPU without XLA (``linalg.use_host_lapack``)."""
    p = int(sum(w.shape.num_elements() for w in weights))
    k = wrapper.residuals_per_sample(batch, weights)
    model_dtype = tf.as_dtype(weights[0].dtype).as_numpy_dtype
    rows = tf.nest.flatten(batch["x"])[0].shape[0]
    kernel = (linalg.host_cholesky_solve if linalg.use_host_lapack(
        p, jit_compile=bool(wrapper.jit_compile)) else linalg.cholesky_solve_or_nan)
    return build_config(wrapper, p=p, k=k, rows=rows, model_dtype=np.dtype(model_dtype),
                        as_dtype=tf.as_dtype, cholesky_solve=kernel,
                        replicas=wrapper.replicas())


def _unrolled_attempts(live, candidate, decide, c0, y_pred0, r0, x, max_attempts):
    """The attempts loop under tf.distribute: ``max_attempts`` copies, each with its solve and
    forward pass in a ``tf.cond`` (skipped once the iteration is over) and the all-reduce of
    the candidate's sums outside it (TensorFlow's strategies refuse a synchronisation point
    inside control flow; ``keras_distribute``). Every replica sees the same ``live``."""
    c, y_pred, fails = c0, y_pred0, tf.constant(0, tf.int32)
    for _ in range(max_attempts):
        on = live(c)
        x_try, r_c, y_pred_c, failed = tf.cond(
            on, lambda c=c: candidate(c),
            lambda y_pred=y_pred: (x, r0, y_pred, tf.constant(0, tf.int32)))
        fails = fails + failed
        c_new, y_new = decide(c, y_pred, x_try, r_c, y_pred_c,
                              reduce=keras_distribute.replica_sum)
        # a skipped attempt changes nothing (``judge`` leaves a finished problem as it is)
        c = tf.nest.map_structure(lambda new, old, on=on: tf.where(on, new, old), c_new, c)
        y_pred = tf.nest.map_structure(lambda new, old, on=on: tf.where(on, new, old),
                                       y_new, y_pred)
    return c, y_pred, fails


def train_step(wrapper, data):
    """The ``train_step`` of ``marquardt.keras.LMModel``: one LM iteration on ``data``.

    ``wrapper`` provides ``network`` (the user's model), ``residuals_per_sample``, the residual
    (``lm_residual``: Keras-loss residuals or a custom function) and the LM variables.
    """
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    net = wrapper.network
    tvars = net.trainable_variables
    names = [v.path for v in tvars]
    weights = [tf.convert_to_tensor(v) for v in tvars]
    frozen = [tf.convert_to_tensor(v) for v in net.non_trainable_variables]
    training = wrapper.lm_options.training
    first = tf.nest.flatten(x)[0]
    n = tf.shape(first)[0]

    def predict(ws, inputs):
        out, _ = net.stateless_call(ws, frozen, inputs, training=training)
        return out

    scale = None
    if wrapper.lm_custom_residual is None and wrapper.lm_loss_residual[1]:
        # Keras' mean is over the global batch: under tf.distribute, all replicas' samples
        n_all = keras_distribute.replica_sum(n)
        scale = tf.math.rsqrt(tf.cast(n_all, first.dtype if first.dtype.is_floating else
                                      tf.float32))
    fns = step_functions(wrapper, predict, x, y, sample_weight, scale)
    batch, residual_fn = fns.batch, fns.residual_fn
    cfg = step_config(wrapper, batch, weights)

    def cost_fn(ws):
        return fns.cost_fn(ws, cfg.plan.dtype)

    dtype = cfg.plan.dtype
    state = LMState(lam=tf.cast(wrapper.lm_lambda, dtype), nu=tf.cast(wrapper.lm_nu, dtype),
                    d=tf.cast(wrapper.lm_scale, dtype),
                    started=tf.convert_to_tensor(wrapper.lm_started) > 0)
    # a variant of the iteration (Bayesian regularisation: ``marquardt.keras._bayes``) or LM
    iterate = getattr(wrapper, "lm_iterate", None) or lm_iteration
    new_weights, state, info = iterate(residual_fn, cost_fn, weights, batch, state, cfg, names)
    for v, w in zip(tvars, new_weights):
        v.assign(w)
    if training and net.non_trainable_variables:
        # Moving statistics (batch normalisation) follow Keras' one update per train step: one
        # training-mode forward pass at the accepted weights; nothing changes after a
        # rejected iteration.
        _, updated = net.stateless_call(new_weights, frozen, x, training=True)
        for v, new, old in zip(net.non_trainable_variables, updated, frozen):
            v.assign(tf.where(info.accepted, new, old))
    wrapper.lm_lambda.assign(tf.cast(state.lam, wrapper.lm_lambda.dtype))
    wrapper.lm_nu.assign(tf.cast(state.nu, wrapper.lm_nu.dtype))
    wrapper.lm_scale.assign(tf.cast(state.d, wrapper.lm_scale.dtype))
    wrapper.lm_started.assign(tf.cast(state.started, wrapper.lm_started.dtype))

    loss = tf.cast(info.cost, keras.backend.floatx())
    wrapper._loss_tracker.update_state(loss, sample_weight=n)
    if y is not None and wrapper._compile_metrics is not None and wrapper.lm_custom_residual is None:
        wrapper._compile_metrics.update_state(y, info.y_pred, sample_weight)
    if y is not None and wrapper.lm_output_losses:
        wrapper._compile_loss(y, info.y_pred, sample_weight)  # per-output losses (`a_loss`)
    logs = wrapper.get_metrics_result()
    logs.update(
        lam=state.lam,
        attempts=info.attempts,
        grad_norm=info.grad_norm,
        step_norm=info.step_norm,
        lm_status=info.status,
        cholesky_failures=info.cholesky_failures,
    )
    if info.logs:
        logs.update(info.logs)
    return keras_distribute.reducible_logs(logs)
