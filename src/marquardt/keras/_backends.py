"""Which backend runs the Keras LM step: Keras' own, read from ``keras.backend.backend()``.

``marquardt.keras`` is backend-neutral; what runs one LM iteration per ``train_step`` (the
Jacobian, the normal equations, the attempts' loop, the full-data loss) is under
``marquardt._backend.<backend>``, imported here on first use, so that training on JAX imports
nothing of TensorFlow and training on TensorFlow nothing of JAX.
"""

from __future__ import annotations

import contextlib
import importlib

import keras

__all__ = ["SUPPORTED", "name", "check", "module", "state_dtype", "strategy_scope"]

#: Keras backends with an LM step.
SUPPORTED = ("tensorflow", "jax")


def name() -> str:
    """The Keras backend in use (fixed when keras is first imported: ``KERAS_BACKEND``)."""
    return keras.backend.backend()


def check() -> str:
    """The backend's name, or an error for a backend without an LM step.

    Raises:
        ValueError: the backend is not TensorFlow or JAX (PyTorch, OpenVINO, NumPy).
    """
    backend = name()
    if backend not in SUPPORTED:
        raise ValueError(
            "marquardt.keras trains on the Keras backends 'tensorflow' and 'jax' (set "
            "KERAS_BACKEND before keras is imported). Received: keras.backend.backend()="
            f"{backend!r}")
    return backend


def module(part: str):
    """``marquardt._backend.<backend>.keras_<part>`` for the backend in use."""
    return importlib.import_module(f"marquardt._backend.{check()}.keras_{part}")


def state_dtype() -> str:
    """The dtype of the LM variables (λ, ν, d): float64, or float32 on JAX without
    ``jax_enable_x64`` (where JAX would truncate float64 with a warning per variable)."""
    if name() == "jax":
        import jax

        if not jax.config.jax_enable_x64:
            return "float32"
    return "float64"


def strategy_scope(model):
    """The scope of the ``tf.distribute`` strategy ``model`` was made under (variables created
    in it are mirrored), or a null context (JAX, which has no strategy)."""
    if name() == "tensorflow":
        return model.distribute_strategy.scope()
    return contextlib.nullcontext()
