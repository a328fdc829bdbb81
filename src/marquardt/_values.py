"""What kind of array a user's function returned, and JAX's float64 for its first call.

The front doors call the user's function once with NumPy values (as SciPy does) and choose the
backend from what comes back. These checks look at ``sys.modules`` only: neither TensorFlow nor
JAX is imported to answer them.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

__all__ = ["x64_if_jax", "is_jax_value", "is_tensorflow_value"]


def x64_if_jax():
    """``jax.enable_x64(True)`` when JAX is imported (a JAX function then computes its
    first call in float64, as its fit will), else a context that does nothing; JAX is
    never imported here."""
    jax = sys.modules.get("jax")
    if jax is None:
        return _NOTHING
    if callable(getattr(jax, "enable_x64", None)):
        return jax.enable_x64(True)
    from jax.experimental import enable_x64  # JAX before the top-level context manager
    return enable_x64()


#: ``x64_if_jax``'s answer without JAX (a ``nullcontext`` may be entered again, and by
#: several threads at once: it does nothing).
_NOTHING = contextlib.nullcontext()


def is_jax_value(value: Any) -> bool:
    """``value`` is a JAX array (the function was written with ``jax.numpy``)."""
    jax = sys.modules.get("jax")
    return jax is not None and isinstance(value, jax.Array)


def is_tensorflow_value(value: Any) -> bool:
    """``value`` is a TensorFlow tensor (the function was written with TensorFlow ops)."""
    tf = sys.modules.get("tensorflow")
    return tf is not None and isinstance(value, (tf.Tensor, tf.Variable))
