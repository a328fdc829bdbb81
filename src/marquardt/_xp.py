"""Array namespaces: the small set of array operations the LM core is written against.

The core (``marquardt._core``) and the numerics modules (``_gain``, ``_termination``,
``_scaling``, ``_robust``, ``_damping``, ``_solvers``) never import a backend. Each function
takes an ``xp`` argument, the namespace of the arrays it works on, or finds it from them with
``array_namespace`` (SciPy's array-API pattern, ``scipy/_lib/_array_api.py``): NumPy arrays
run on the host with NumPy and LAPACK; TensorFlow tensors run inside TensorFlow graphs. JAX
arrays run under ``jax.jit`` (``marquardt._backend.jax.xp``).

Every namespace offers the same names, with NumPy's meanings:

* elementwise: ``where abs sqrt log1p arctan maximum minimum greater greater_equal less
  less_equal equal logical_and logical_or logical_not isfinite``
* shape and creation: ``expand_dims squeeze swapaxes transpose stack reshape shape
  zeros_like ones_like full_like eye cast asarray``
* reductions: ``sum max all any norm``
* linear algebra: ``matmul matvec diagonal svd eigh cholesky_solve_or_nan``
* control flow: ``cond(pred, true_fn, false_fn)``

``cholesky_solve_or_nan(m, b) -> (x, ok)`` reports a matrix that is not numerically positive
definite per system (``ok`` False) instead of raising; ``svd`` returns the thin
``(u, s, vh)``.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["array_namespace", "numpy_namespace"]


def numpy_namespace():
    """The NumPy namespace (imports nothing beyond NumPy and SciPy's LAPACK wrappers)."""
    from marquardt._backend.numpy import xp
    return xp


def _is_tensorflow(a: Any) -> bool:
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return False
    return isinstance(a, (tf.Tensor, tf.Variable))


def _is_jax(a: Any) -> bool:
    jax = sys.modules.get("jax")
    if jax is None:
        return False
    return isinstance(a, jax.Array) or type(a).__module__.startswith("jax")


def array_namespace(*arrays: Any):
    """The namespace for ``arrays``: TensorFlow's if any is a TensorFlow tensor or variable,
    JAX's if any is a JAX array (or tracer), else NumPy's (Python numbers and NumPy arrays).

    Neither TensorFlow nor JAX is imported here: their arrays can only exist once they are.
    """
    for a in arrays:
        if _is_tensorflow(a):
            from marquardt._backend.tensorflow import xp
            return xp
        if _is_jax(a):
            from marquardt._backend.jax import xp
            return xp
    return numpy_namespace()
