"""One Levenberg-Marquardt iteration as a Keras ``train_step`` (TensorFlow backend).

Glossary: w the trainable weights (flattened, P of them); r the residuals of the batch, scaled
so that the cost F(w) = ½‖r‖² is the Keras loss value; J = ∂r/∂w; A = JᵀJ; g = Jᵀr = ∇F;
D = diag(d) the damping matrix (``_scaling``); λ the damping (``_damping``); δ the step; ρ the
gain ratio, actual over predicted reduction (``_gain``).

One iteration (Marquardt 1963; Madsen, Nielsen & Tingleff 2004, Algorithm 3.16):

1. A and g at w, in row chunks (``keras_jacobian``); F(w) by a forward pass.
2. ``tf.while_loop`` over attempts: δ solves (A + λD)δ = −g (Cholesky, by the host's LAPACK
   for large P on a CPU; eigen fallback; or the kernel form when m < P); the candidate
   w + δ is evaluated with ``stateless_call`` (no variable is touched);
   ρ = (F(w) − F(w + δ)) / (½δᵀ(λDδ − g)); the policy accepts or rejects and updates λ.
   The loop ends at the first accepted step, after ``max_attempts``, or when λ passes its
   ceiling.
3. Only an accepted step — finite, with its loss check passed — is assigned to the weights.
   λ, ν and d are Keras variables of the wrapper, so they persist across epochs and are saved
   with its weights.

The step never branches in Python on tensor values, so it compiles under ``tf.function``.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import keras
import tensorflow as tf

from marquardt._gain import gain_ratio_with_noise_floor, predicted_reduction
from marquardt._scaling import marquardt_diagonal
from marquardt._solvers import solve_kernel, solve_normal
from marquardt._status import Status
from marquardt._backend.tensorflow.keras_jacobian import (
    JacobianPlan, full_jacobian, normal_equations, per_sample_chunk)
from marquardt._backend.tensorflow.linalg import cholesky_solve_or_nan

__all__ = ["StepConfig", "LMState", "StepInfo", "lm_iteration", "train_step"]


class StepConfig(NamedTuple):
    """Static configuration of the step (fixed at trace time)."""

    policy: Any  # a damping policy (Nielsen, TrainLM)
    marquardt: bool  # D from the running max of diag(JᵀJ), else D = I
    max_attempts: int
    goal: float
    min_grad: float
    plan: JacobianPlan
    kernel: bool  # m×m kernel form (m < P)
    noise: float  # relative rounding level of F: 16 ulps of the model's dtype
    #: (x, ok) = cholesky_solve(m, b), the Cholesky kernel of A + λD: TensorFlow's, or the
    #: host's LAPACK for P ≥ 1,500 on a CPU without XLA (``linalg.use_host_lapack``)
    cholesky_solve: Callable = cholesky_solve_or_nan


class LMState(NamedTuple):
    """LM memory carried between iterations (stored in the wrapper's Keras variables)."""

    lam: Any  # λ, float64 scalar
    nu: Any  # Nielsen's ν, float64 scalar
    d: Any  # diagonal of D, float64 (P,)
    started: Any  # bool scalar: False until the first iteration initialised λ and d


class StepInfo(NamedTuple):
    """Summary of one iteration (the per-epoch logs)."""

    cost: Any  # F after the iteration (before it when no step was accepted)
    accepted: Any
    attempts: Any
    grad_norm: Any  # ‖g‖ at the start point
    step_norm: Any  # ‖δ‖ of the accepted step, 0 when none
    status: Any  # Status code (RUNNING while training should go on)
    y_pred: Any  # predictions at the returned weights


def _unflatten(delta, weights):
    parts, start = [], 0
    for w in weights:
        size = w.shape.num_elements()
        parts.append(tf.cast(tf.reshape(delta[start:start + size], tf.shape(w)), w.dtype))
        start += size
    return parts


def lm_iteration(residual_fn: Callable, cost_fn: Callable, weights, data, state: LMState,
                 cfg: StepConfig, names):
    """One LM iteration from ``weights``; returns ``(new_weights, new_state, info)``.

    Args:
        residual_fn: ``residual_fn(weights, batch) -> r`` (b, k), scaled so F = ½‖r‖².
        cost_fn: ``cost_fn(weights) -> (r, y_pred)``: the flat residuals of the whole batch
            in the dtype of the normal equations, and the predictions.
        weights: list of weight tensors (not variables).
        data: the batch, a nested structure of tensors with a leading sample axis.
        state: the ``LMState`` from the previous iteration.
        cfg: the ``StepConfig``.
        names: weight names for error messages.
    """
    dtype = cfg.plan.dtype
    if cfg.kernel:
        if cfg.plan.per_sample:
            jac, res = per_sample_chunk(residual_fn, weights, data, cfg.plan.k, names)
        else:
            jac, res = full_jacobian(residual_fn, weights, data, names)
        jac, res = tf.cast(jac, dtype), tf.cast(res, dtype)
        g = tf.linalg.matvec(jac, res, transpose_a=True)
        diag_a = tf.reduce_sum(jac * jac, axis=0)
        a = None
    else:
        a, g = normal_equations(residual_fn, weights, data, cfg.plan, names)
        diag_a = tf.linalg.diag_part(a)

    if cfg.marquardt:
        d = tf.where(state.started, marquardt_diagonal(state.d, diag_a),
                     marquardt_diagonal(None, diag_a))
    else:
        d = tf.ones_like(diag_a)
    fresh = cfg.policy.init(tf.reduce_max(diag_a / d))
    lam = tf.where(state.started, state.lam, tf.cast(fresh.lam, dtype))
    nu = tf.where(state.started, state.nu, tf.cast(fresh.nu, dtype))

    r0, y_pred0 = cost_fn(weights)
    cost0 = 0.5 * tf.reduce_sum(r0 * r0)
    grad_norm = tf.norm(g)
    start_ok = tf.logical_and(tf.math.is_finite(cost0),
                              tf.reduce_all(tf.math.is_finite(g)))
    if a is not None:
        start_ok = tf.logical_and(start_ok, tf.reduce_all(tf.math.is_finite(diag_a)))
    at_gtol = tf.less(grad_norm, tf.cast(cfg.min_grad, dtype))
    at_goal = tf.less_equal(cost0, tf.cast(cfg.goal, dtype))
    go = tf.logical_and(start_ok, tf.logical_not(tf.logical_or(at_gtol, at_goal)))

    def solve(lam_):
        if a is None:
            return solve_kernel(jac, res, lam_, d)
        return solve_normal(a, g, lam_, d, cholesky_solve=cfg.cholesky_solve)

    damping_state = type(fresh)

    def cond(i, lam_, nu_, accepted, delta, cost, y_pred):
        exhausted = cfg.policy.exhausted(damping_state(lam_, nu_))
        return tf.logical_and(
            tf.logical_and(go, tf.logical_not(accepted)),
            tf.logical_and(i < cfg.max_attempts, tf.logical_not(exhausted)))

    def body(i, lam_, nu_, accepted, delta, cost, y_pred):
        step = solve(lam_)
        candidate = [w + dw for w, dw in zip(weights, _unflatten(step, weights))]
        r_c, y_pred_c = cost_fn(candidate)
        cost_c = 0.5 * tf.reduce_sum(r_c * r_c)
        # F(w) − F(w + δ) = ½Σ(r₀ − r₁)(r₀ + r₁): elementwise differences keep the digits
        # that the difference of two sums loses near convergence.
        actual = 0.5 * tf.reduce_sum((r0 - r_c) * (r0 + r_c))
        predicted = predicted_reduction(g, step, lam_, d)
        rho = gain_ratio_with_noise_floor(actual, predicted, cost0, cfg.noise)
        ok = tf.logical_and(cfg.policy.accept(rho), tf.math.is_finite(cost_c))
        ok = tf.logical_and(ok, tf.reduce_all(tf.math.is_finite(step)))
        new = cfg.policy.update(damping_state(lam_, nu_), rho)
        return i + 1, new.lam, new.nu, ok, step, cost_c, y_pred_c

    init = (tf.constant(0), lam, nu, tf.constant(False), tf.zeros_like(g), cost0, y_pred0)
    attempts, lam, nu, accepted, delta, cost_new, y_pred_new = tf.while_loop(
        cond, body, init, parallel_iterations=1)

    delta = tf.where(accepted, delta, tf.zeros_like(delta))
    new_weights = [w + dw for w, dw in zip(weights, _unflatten(delta, weights))]
    cost = tf.where(accepted, cost_new, cost0)
    y_pred = tf.nest.map_structure(lambda new, old: tf.where(accepted, new, old),
                                   y_pred_new, y_pred0)
    exhausted = cfg.policy.exhausted(damping_state(lam, nu))
    status = tf.constant(int(Status.RUNNING), tf.int32)
    status = tf.where(tf.logical_and(go, tf.logical_and(tf.logical_not(accepted), exhausted)),
                      int(Status.DAMPING_LIMIT), status)
    status = tf.where(tf.logical_and(accepted, cost <= tf.cast(cfg.goal, dtype)),
                      int(Status.GOAL), status)
    status = tf.where(at_goal, int(Status.GOAL), status)
    status = tf.where(at_gtol, int(Status.GTOL), status)
    status = tf.where(start_ok, status, int(Status.NON_FINITE))
    info = StepInfo(cost=cost, accepted=accepted, attempts=attempts, grad_norm=grad_norm,
                    step_norm=tf.norm(delta), status=status, y_pred=y_pred)
    # λ past its ceiling ends a full-batch run; in mini-batch training only this batch failed,
    # so the next batch starts again from the initial λ (``marquardt.keras._stopping``).
    limited = tf.equal(status, int(Status.DAMPING_LIMIT))
    lam = tf.where(limited, tf.cast(fresh.lam, dtype), lam)
    nu = tf.where(limited, tf.cast(fresh.nu, dtype), nu)
    state = LMState(lam=lam, nu=nu, d=d, started=tf.logical_or(state.started, start_ok))
    return new_weights, state, info


def train_step(wrapper, data):
    """The ``train_step`` of ``marquardt.keras.LMModel``: one LM iteration on ``data``.

    ``wrapper`` provides ``network`` (the user's model), ``step_config(batch)``, the residual
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

    batch = {"x": x}
    if y is not None:
        batch["y"] = y
    if sample_weight is not None:
        batch["sw"] = sample_weight

    custom = wrapper.lm_custom_residual
    if custom is not None:
        def residual_fn(ws, b):
            return custom(lambda inputs: predict(ws, inputs), b["x"], b.get("y"))
    else:
        loss_fn, per_batch_mean = wrapper.lm_loss_residual
        scale = tf.math.rsqrt(tf.cast(n, first.dtype if first.dtype.is_floating else
                                      tf.float32)) if per_batch_mean else None

        def residual_fn(ws, b):
            r = loss_fn(b.get("y"), predict(ws, b["x"]), b.get("sw"))
            return r if scale is None else r * tf.cast(scale, r.dtype)

    cfg = wrapper.step_config(batch, weights)

    def cost_fn(ws):
        if custom is not None:
            r = residual_fn(ws, batch)
            y_pred = tf.zeros([0])  # metrics need targets; a custom residual has none
        else:
            y_pred = predict(ws, x)
            r = loss_fn(y, y_pred, sample_weight)
            r = r if scale is None else r * tf.cast(scale, r.dtype)
        return tf.reshape(tf.cast(r, cfg.plan.dtype), [-1]), y_pred

    dtype = cfg.plan.dtype
    state = LMState(lam=tf.cast(wrapper.lm_lambda, dtype), nu=tf.cast(wrapper.lm_nu, dtype),
                    d=tf.cast(wrapper.lm_scale, dtype),
                    started=tf.convert_to_tensor(wrapper.lm_started) > 0)
    new_weights, state, info = lm_iteration(residual_fn, cost_fn, weights, batch, state, cfg,
                                            names)
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
    if y is not None and wrapper._compile_metrics is not None and custom is None:
        wrapper._compile_metrics.update_state(y, info.y_pred, sample_weight)
    logs = wrapper.get_metrics_result()
    logs.update(
        lam=state.lam,
        attempts=info.attempts,
        grad_norm=info.grad_norm,
        step_norm=info.step_norm,
        lm_status=info.status,
    )
    return logs
