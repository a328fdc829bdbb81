"""Bayesian regularisation for ``LMModel`` (``regularization="bayesian"``, ``TRAINBR``).

The method (MacKay 1992; Foresee & Hagan 1997; MATLAB's ``trainbr``): LM minimises
F = β·E_D + α·E_W and, after every accepted step, re-estimates the effective number of
parameters γ and the hyperparameters α, β from the Gauss-Newton Hessian. The numerics are in
``marquardt.keras._evidence`` (the formulas, backend-neutral) and
``marquardt._backend.<backend>.keras_bayes`` (TensorFlow's and JAX's steps); this module holds
the front-door checks (full batch, a sum-of-squares loss, one output) and the wrapper's
variables α, β, γ. See ``docs/keras.md`` (Bayesian regularisation).
"""

from __future__ import annotations

import keras

from marquardt.keras._residuals import residuals_for_loss

__all__ = ["enabled", "setup", "create_variables", "check_loss", "check_full_batch"]

_WHY_FULL_BATCH = (
    "Bayesian regularisation estimates α and β from the errors and the Hessian of the whole "
    "training set (the evidence of all N samples), so it trains full batch only")


def enabled(options) -> bool:
    return options.regularization == "bayesian"


def setup(wrapper) -> None:
    """Route the wrapper's ``train_step`` through the Bayesian iteration: on TensorFlow by
    its ``lm_iterate`` hook (``_backend/tensorflow/keras_bayes.py``); on JAX the stateless
    step reads the options itself (``_backend/jax/keras_bayes.py``), α, β and γ being in the
    trainer's state."""
    if keras.backend.backend() == "tensorflow":
        from marquardt._backend.tensorflow.keras_bayes import iterate_for

        wrapper.lm_iterate = iterate_for(wrapper)


def create_variables(wrapper, p: int) -> None:
    """α = 0, β = 1 (Foresee & Hagan's start: the first step minimises E_D; MATLAB's trainbr.m
    starts from γ = P instead, docs/keras.md) and γ = P."""
    from marquardt.keras import _backends

    dtype = _backends.state_dtype()  # float64; float32 on JAX without jax_enable_x64
    wrapper.lm_alpha = wrapper.add_weight(shape=(), initializer="zeros", dtype=dtype,
                                          trainable=False, name="lm_alpha")
    wrapper.lm_beta = wrapper.add_weight(shape=(), initializer="ones", dtype=dtype,
                                         trainable=False, name="lm_beta")
    wrapper.lm_gamma = wrapper.add_weight(
        shape=(), initializer=keras.initializers.Constant(float(p)), dtype=dtype,
        trainable=False, name="lm_gamma")


def check_loss(loss, output_names, custom_residual) -> None:
    """A sum of squares on one output: mean squared error, or a custom residual.

    Raises:
        ValueError: a loss other than mean squared error, or more than one output.
    """
    if custom_residual is not None:
        return  # ½Σr²: E_D = Σr²
    if len(output_names) != 1:
        raise ValueError(
            "`model` must have one output for Bayesian regularisation (E_D is one sum of "
            f"squared errors). Received: a model with outputs {list(output_names)}")
    item = loss
    if isinstance(item, dict) and len(item) == 1:
        item = next(iter(item.values()))
    if isinstance(item, (list, tuple)) and len(item) == 1:
        item = item[0]
    name = None
    try:
        name = residuals_for_loss(item).name
    except ValueError:
        pass
    if name != "mean_squared_error":
        raise ValueError(
            "`loss` must be a sum of squared errors (\"mse\" / "
            "keras.losses.MeanSquaredError, or a custom `residual=`) for Bayesian "
            "regularisation: its evidence assumes Gaussian errors. Received: "
            f"loss={loss!r}")


def check_full_batch(x, n, batch_size) -> None:
    """Refuse mini-batches before training starts.

    Args:
        x: the training input (arrays, a ``tf.data.Dataset`` or a ``PyDataset``).
        n: the number of samples of array input (None otherwise).
        batch_size: as passed to ``fit``.

    Raises:
        ValueError: ``batch_size`` below the sample count, a dataset of more (or an unknown
            number of) batches per pass, a generator.
    """
    if n is not None:
        if batch_size is not None and int(batch_size) < n:
            raise ValueError(
                f"`batch_size` must be None (full batch), \"auto\", \"full\" or at least the "
                f"number of samples ({n}): {_WHY_FULL_BATCH}. "
                f"Received: batch_size={batch_size} with {n} samples")
        return
    if hasattr(x, "element_spec"):
        count = int(x.cardinality())
        if count != 1:
            shown = {-1: "infinite", -2: "unknown"}.get(count, count)
            raise ValueError(
                f"`x` must be a dataset of one batch, the whole training set: "
                f"{_WHY_FULL_BATCH}. Received: a dataset of {shown} batches "
                "(use dataset.batch(n) or pass arrays)")
        return
    if isinstance(x, keras.utils.PyDataset) and len(x) == 1:
        return
    raise ValueError(
        f"`x` must be arrays or a one-batch tf.data.Dataset: {_WHY_FULL_BATCH}. "
        f"Received: x of type {type(x).__name__}")
