"""The JAX array namespace of the LM core (see ``marquardt._xp``).

The same names as ``marquardt._backend.numpy.xp`` with NumPy's meanings, built from
``jax.numpy`` and ``jax.lax``, so the core runs under ``jax.jit``, ``jax.vmap`` and
``jax.lax.while_loop``. JAX arrays are immutable and their dtype follows
``jax_enable_x64``: without it every array is float32 (docs/jax.md).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.linalg import cho_solve as _cho_solve

name = "jax"

where = jnp.where
abs = jnp.abs  # noqa: A001
sqrt = jnp.sqrt
log1p = jnp.log1p
arctan = jnp.arctan
maximum = jnp.maximum
minimum = jnp.minimum
greater = jnp.greater
greater_equal = jnp.greater_equal
less = jnp.less
less_equal = jnp.less_equal
equal = jnp.equal
logical_and = jnp.logical_and
logical_or = jnp.logical_or
logical_not = jnp.logical_not
isfinite = jnp.isfinite
squeeze = jnp.squeeze
swapaxes = jnp.swapaxes
stack = jnp.stack
reshape = jnp.reshape
transpose = jnp.transpose
zeros_like = jnp.zeros_like
ones_like = jnp.ones_like
asarray = jnp.asarray
expand_dims = jnp.expand_dims  # an int or a tuple of positions in the result, as NumPy's


def full_like(a, value):
    return jnp.full_like(a, value)


def shape(a):
    return jnp.shape(a)


def eye(n, dtype=None):
    return jnp.eye(n, dtype=dtype)


def cast(a, dtype):
    return jnp.asarray(a).astype(dtype)


def sum(a, axis=None, keepdims=False):  # noqa: A001
    return jnp.sum(a, axis=axis, keepdims=keepdims)


def max(a, axis=None, keepdims=False):  # noqa: A001
    return jnp.max(a, axis=axis, keepdims=keepdims)


def all(a, axis=None):  # noqa: A001
    return jnp.all(a, axis=axis)


def any(a, axis=None):  # noqa: A001
    return jnp.any(a, axis=axis)


def norm(a, axis=-1):
    return jnp.sqrt(jnp.sum(a * a, axis=axis))


#: Largest product of a batched product's three matrix dimensions (p·q·r for (p, q) @ (q, r))
#: formed elementwise (``matmul``): XLA-CPU's batched dot calls a small-matrix kernel per
#: problem. JᵀJ of 1,024 Jacobians 25 × 5 in a jitted loop, quiet 2-core machine
#: (2026-12-05): 0.34 ms as a dot (``jnp.matmul``, ``einsum``), 0.15 ms elementwise.
ELEMENTWISE_MAX = 1024


def matmul(a, b):
    """``a @ b`` for (…, p, q) and (…, q, r); for a batch of small matrices (both operands
    batched, p·q·r ≤ ``ELEMENTWISE_MAX``) a broadcast product summed over q."""
    if (a.ndim >= 3 and b.ndim >= 3
            and a.shape[-2] * a.shape[-1] * b.shape[-1] <= ELEMENTWISE_MAX):
        return jnp.sum(a[..., :, None, :] * jnp.swapaxes(b, -1, -2)[..., None, :, :], axis=-1)
    return jnp.matmul(a, b)


def matvec(a, x, transpose_a: bool = False):
    """A x (or Aᵀ x) for batched A (…, m, n)."""
    if transpose_a:
        return jnp.einsum("...mn,...m->...n", a, x)
    return jnp.einsum("...mn,...n->...m", a, x)


def diagonal(a):
    """The diagonal of the last two axes."""
    return jnp.diagonal(a, axis1=-2, axis2=-1)


def svd(a):
    """Thin SVD ``(u, s, vh)``."""
    return jnp.linalg.svd(a, full_matrices=False)


def eigh(a):
    return jnp.linalg.eigh(a)


def cond(pred, true_fn, false_fn):
    """``lax.cond`` on a traced predicate; a concrete one picks the branch in Python."""
    try:
        return true_fn() if bool(pred) else false_fn()
    except jax.errors.ConcretizationTypeError:
        return jax.lax.cond(pred, true_fn, false_fn)


def cholesky_solve_or_nan(m, b):
    """(x, ok): m x = b per system; NaN and ok False where m is not numerically positive
    definite. JAX's Cholesky returns NaN for such a matrix instead of raising (as
    TensorFlow's kernel), so the test is on the factor's diagonal."""
    chol = jnp.linalg.cholesky(m)
    ok = jnp.all(jnp.isfinite(jnp.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)
    x = _cho_solve((chol, True), b[..., None])[..., 0]
    ok = jnp.logical_and(ok, jnp.all(jnp.isfinite(x), axis=-1))
    return jnp.where(ok[..., None], x, jnp.nan), ok
