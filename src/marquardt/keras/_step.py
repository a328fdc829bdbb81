"""The Keras LM step's records and configuration, shared by its backends.

``marquardt.keras`` runs one LM iteration per Keras ``train_step``; the executor of that
iteration is backend-specific (``_backend/tensorflow/keras_step.py`` on TensorFlow,
``_backend/jax/keras_step.py`` on JAX), the records it works with and the configuration read
from ``LMOptions`` are not: they are here, with no array library imported.

Glossary (as in the steps): P the number of trainable weights; k residuals per sample;
A = JᵀJ and g = Jᵀr the normal equations; λ the damping, ν Nielsen's factor, d the diagonal
of the damping matrix D.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy as np

from marquardt._core.records import LoopConfig
from marquardt._solvers import CholeskySolver, KernelSolver
from marquardt.keras._layers import coupled_layers
from marquardt.keras._memory import plan_memory

__all__ = ["JacobianPlan", "StepConfig", "LMState", "StepInfo", "loop_config", "build_config",
           "StepFunctions", "step_functions"]


class JacobianPlan(NamedTuple):
    """How to compute J for one batch; fixed when the train step is traced.

    Attributes:
        per_sample: True for vectorised per-sample gradients, False for the full Jacobian.
        chunk: samples per chunk (per-sample mode).
        k: residuals per sample (static).
        dtype: dtype of A and g (the backend's dtype object).
    """

    per_sample: bool
    chunk: int
    k: int
    dtype: Any


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
    #: (x, ok) = cholesky_solve(m, b), the Cholesky kernel of A + λD; None: the array
    #: namespace's (TensorFlow passes the host's LAPACK for P ≥ 1,500 on a CPU)
    cholesky_solve: Callable | None = None


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
    #: the system A (+ ρI with a ridge) of this iteration's start point, (P, P); None in the
    #: kernel form (read by Bayesian regularisation, ``keras_bayes``)
    normal: Any = None
    #: extra per-epoch logs of a variant of the step (``keras_bayes``); None for plain LM
    logs: Any = None
    #: attempts of this iteration whose Cholesky factorisation of A + λD (or K + λI) failed,
    #: the matrix not numerically positive definite, so that the eigen-decomposition gave the
    #: step (int32 scalar; the ``cholesky_failures`` log)
    cholesky_failures: Any = 0


def loop_config(cfg: StepConfig) -> LoopConfig:
    """The LM core's configuration for the Keras step: trainlm's tests (``min_grad``,
    ``goal``) and the noise floor of the gain ratio; SciPy's ftol and xtol are off (0) and so
    is the gradient-cosine test (gtol −1 never fires); every evaluation is allowed (an
    iteration ends after ``max_attempts``)."""
    solver = KernelSolver() if cfg.kernel else CholeskySolver(kernel=cfg.cholesky_solve)
    return LoopConfig(damping=cfg.policy, solver=solver,
                      scaling="marquardt" if cfg.marquardt else "identity", loss="linear",
                      f_scale=1.0, ftol=0.0, xtol=0.0, gtol=-1.0, max_nfev=2**31 - 1,
                      bounded=False, noise=cfg.noise, min_grad=cfg.min_grad, goal=cfg.goal)


def build_config(wrapper, *, p: int, k: int, rows: int | None, model_dtype: np.dtype,
                 as_dtype: Callable, cholesky_solve: Callable | None = None,
                 replicas: int = 1) -> StepConfig:
    """The ``StepConfig`` of ``wrapper``'s options for a batch of ``rows`` samples (None when
    unknown at trace time), P weights, k residuals per sample.

    Args:
        model_dtype: the NumPy dtype of the weights.
        as_dtype: the backend's dtype from a NumPy dtype (the plan's ``dtype``).
        cholesky_solve: the backend's choice of Cholesky kernel; None for the namespace's.
        replicas: replicas of a ``tf.distribute`` strategy: ``rows`` is then one replica's
            shard and the step sums the shards' A and g, so the kernel form (m < P on one
            shard) is never chosen automatically.
    """
    opts = wrapper.lm_options
    coupled = coupled_layers(wrapper.network, opts.training)
    if opts.jacobian == "auto":
        per_sample = wrapper.lm_custom_residual is None and not coupled
    else:
        per_sample = opts.jacobian == "per_sample"
    model_dtype = np.dtype(model_dtype)
    dtype = np.dtype("float64") if opts.precision == "float64" else model_dtype
    mem = plan_memory(p, k, opts.memory_limit, precision_bytes=dtype.itemsize,
                      model_bytes=model_dtype.itemsize)
    kernel = opts.kernel is True or (opts.kernel == "auto" and rows is not None
                                     and rows * k < p and replicas == 1)
    plan = JacobianPlan(per_sample=per_sample, chunk=mem.chunk_rows, k=k, dtype=as_dtype(dtype))
    return StepConfig(policy=opts.damping, marquardt=opts.scaling == "marquardt",
                      max_attempts=opts.max_attempts, goal=opts.goal,
                      min_grad=opts.min_grad, plan=plan, kernel=bool(kernel),
                      noise=16.0 * float(np.finfo(model_dtype).eps),
                      cholesky_solve=cholesky_solve)


class StepFunctions(NamedTuple):
    """The batch and the two functions of weights one LM iteration evaluates (both backends)."""

    batch: dict  # {"x": ..., "y": ..., "sw": ...}, the keys present that the data has
    #: ``residual_fn(weights, batch) -> r`` (b, k), scaled so F = ½‖r‖² (the Jacobian's)
    residual_fn: Callable
    #: ``cost_fn(weights, dtype) -> (r, y_pred)``: the flat residuals of the whole batch in
    #: ``dtype`` and the predictions (empty for a custom residual, which has no targets)
    cost_fn: Callable


def step_functions(wrapper, predict: Callable, x, y, sample_weight, scale) -> StepFunctions:
    """The residuals of ``wrapper``'s loss (or its custom residual) for one batch, written
    once with ``keras.ops`` for the TensorFlow and JAX steps.

    Args:
        predict: ``predict(weights, inputs)``, the network's stateless forward pass.
        x, y, sample_weight: the batch.
        scale: the factor that makes ½‖r‖² a per-sample mean loss (1/√n, n the samples of the
            whole batch, all replicas' under ``tf.distribute``), or None for a summed loss.
    """
    import keras

    batch = {"x": x}
    if y is not None:
        batch["y"] = y
    if sample_weight is not None:
        batch["sw"] = sample_weight
    custom = wrapper.lm_custom_residual
    if custom is not None:
        def residual_fn(ws, b):
            return custom(lambda inputs: predict(ws, inputs), b["x"], b.get("y"))

        def cost_fn(ws, dtype):
            r = residual_fn(ws, batch)
            return keras.ops.reshape(keras.ops.cast(r, dtype), (-1,)), keras.ops.zeros((0,))

        return StepFunctions(batch, residual_fn, cost_fn)

    loss_fn = wrapper.lm_loss_residual[0]

    def scaled(r):
        return r if scale is None else r * keras.ops.cast(scale, r.dtype)

    def residual_fn(ws, b):
        return scaled(loss_fn(b.get("y"), predict(ws, b["x"]), b.get("sw")))

    def cost_fn(ws, dtype):
        y_pred = predict(ws, x)
        r = scaled(loss_fn(y, y_pred, sample_weight))
        return keras.ops.reshape(keras.ops.cast(r, dtype), (-1,)), y_pred

    return StepFunctions(batch, residual_fn, cost_fn)
