"""JAX side of the SciPy bridge (``marquardt.scipy.residual_functions`` for a JAX function):
residuals, exact Jacobians and J·v, Jᵀ·u, each one ``jax.jit`` function, in float64.

Glossary as in ``marquardt._backend.tensorflow.bridge``: x the parameters (n,), r(x) the
residuals (m,), J = ∂r/∂x, v (n,) and u (m,) directions. ``data`` (the array arguments) are
inputs of the jitted functions, so the ``curve_fit`` form passes its ``xdata`` at call time
without recompiling. J is formed by ``jax.jacfwd`` (``forward``, n tangents) or ``jax.jacrev``
(``reverse``, m cotangents); ``auto`` picks forward when n ≤ m. J·v is one ``jax.jvp``, Jᵀ·u
one ``jax.vjp``. Every call runs inside ``jax.enable_x64(True)`` (``compile.float64``).
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from marquardt._backend.jax import compile as jc

__all__ = ["MODES", "CompiledResidual", "eager_residual", "evaluate"]

#: Ways to form the dense Jacobian on JAX (``per_sample`` is the TensorFlow bridge's alone).
MODES = ("auto", "forward", "reverse")


def eager_residual(residual: Callable, x0: np.ndarray, data: Sequence):
    """``residual(x0, *data)`` called once, in float64, as given."""
    with jc.float64():
        return residual(jnp.asarray(x0, jnp.float64), *data)


def evaluate(fn: Callable, x: np.ndarray) -> np.ndarray:
    """``fn(x)`` at float64 x, as a flat float64 NumPy array."""
    with jc.float64():
        return np.asarray(fn(jnp.asarray(x, jnp.float64)), dtype=np.float64).ravel()


class CompiledResidual:
    """r, J, J·v and Jᵀ·u of ``residual(x, *data)``, jitted once each; NumPy in and out.

    The same methods as the TensorFlow bridge's ``CompiledResidual`` (``residual``,
    ``jacobian``, ``jvp``, ``vjp``), so ``marquardt.scipy``'s front door serves both.
    """

    def __init__(self, residual: Callable, n: int, m: int, data: Sequence, *, mode: str):
        self.n, self.m = n, m

        def r(x, *d):
            return jnp.ravel(jnp.asarray(residual(x, *d))).astype(jnp.float64)

        forward = mode == "forward" or (mode == "auto" and n <= m)
        jac = jax.jacfwd if forward else jax.jacrev
        self._residual = jax.jit(r)
        self._jacobian = jax.jit(lambda x, *d: jac(lambda y: r(y, *d))(x))
        self._jvp = jax.jit(lambda x, v, *d: jax.jvp(lambda y: r(y, *d), (x,), (v,))[1])
        self._vjp = jax.jit(lambda x, u, *d: jax.vjp(lambda y: r(y, *d), x)[1](u)[0])
        with jc.float64():  # compile now, so that errors surface here, not inside SciPy
            x0 = jnp.zeros(n, jnp.float64)
            self._residual.lower(x0, *data).compile()

    # ``np.array`` copies: SciPy scales J and f in place for robust losses.
    def residual(self, x: np.ndarray, data: Sequence) -> np.ndarray:
        with jc.float64():
            return np.array(self._residual(x, *data))

    def jacobian(self, x: np.ndarray, data: Sequence) -> np.ndarray:
        with jc.float64():
            return np.array(self._jacobian(x, *data))

    def jvp(self, x: np.ndarray, v: np.ndarray, data: Sequence) -> np.ndarray:
        with jc.float64():
            return np.array(self._jvp(x, v, *data))

    def vjp(self, x: np.ndarray, u: np.ndarray, data: Sequence) -> np.ndarray:
        with jc.float64():
            return np.array(self._vjp(x, u, *data))
