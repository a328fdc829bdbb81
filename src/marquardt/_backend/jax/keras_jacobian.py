"""Jacobians of Keras residuals on JAX, and JᵀJ, Jᵀr accumulated in row chunks.

Glossary: w the trainable weights (a list of arrays, P scalars in all); r the residuals of a
batch, k per sample, m = n·k in all; J = ∂r/∂w (m × P); A = JᵀJ; g = Jᵀr, the gradient of ½‖r‖².

The JAX counterpart of ``_backend/tensorflow/keras_jacobian.py``, with the same two ways to
get J:

* **per sample** (``per_sample_rows``): when the residuals of sample i depend on sample i
  alone, row block i of J is the Jacobian of r_i for a batch of one: one reverse pass per
  residual of the sample (``jax.vjp``, the k cotangents vectorised), and ``jax.vmap`` over
  the samples of a chunk.
* **full** (``full_rows``): the Jacobian of the whole batch (``jax.vjp`` with m cotangents),
  for residuals that mix samples (batch normalisation in training mode, a custom residual).

``normal_equations`` never holds J whole: it walks the batch in chunks of ``chunk`` samples
(``jax.lax.scan`` over chunks of one size, ``equal_chunks``: the last padded, its extra rows
zeroed, so that the per-sample Jacobian is compiled once) and adds each chunk's J_cᵀJ_c
(formed in the model's dtype, accumulated in ``dtype``; only its column blocks on and above
the diagonal, A mirrored from them at the end: ``gram_blocks``, ``assemble``) and J_cᵀr_c
(formed in ``dtype``)
into A and g, as the TensorFlow step does. A weight that the residuals do not depend on gets
a zero column here (TensorFlow's step refuses it, having no gradient to read).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from marquardt.keras._step import JacobianPlan

__all__ = ["flat_size", "per_sample_rows", "full_rows", "normal_equations", "column_blocks",
           "gram_blocks", "assemble", "equal_chunks"]

#: Samples per chunk at most, whatever the memory plan allows: A and g of 20,000 × 481
#: (1-20-20-1, k = 1) took 0.56 s in chunks of 1,000 against 0.92 s in one chunk (XLA on 2
#: shared CPU cores, jitted, mean of 3; 0.65-0.71 s at 500, 2,000 and 4,000 rows).
CHUNK_ROWS = 1024

#: Widest column block of J in the product JᵀJ. A is symmetric, so only the blocks on and above
#: the diagonal are multiplied (nb(nb+1)/2 of nb² products) and the rest mirrored once, after
#: the last chunk. P = 481 in 2 blocks (3/4 of the flops): JᵀJ of 20 chunks of 1,000 × 481
#: (float32, accumulated in float64, ``lax.scan``, jitted) took 156-230 ms against 242-262 ms
#: whole; 3 to 6 blocks 186-235 ms, 8 blocks 191-311 ms (2 shared CPU cores at load 2-4,
#: interleaved, 2026-12-04): narrower blocks make smaller, less efficient products.
GRAM_BLOCK_COLS = 256


def flat_size(weights) -> int:
    """P, the number of scalar weights."""
    return int(sum(int(np.prod(w.shape)) for w in weights))


def _flat_rows(parts, rows):
    return jnp.concatenate([jnp.reshape(p, (rows, -1)) for p in parts], axis=1)


def _rows_of(fn, weights, m):
    """(J, r): r = fn(weights) flattened to m entries, J its (m, P) Jacobian by m reverse
    passes (``jax.vjp`` once, its pullback vectorised over the unit cotangents)."""
    r, pullback = jax.vjp(lambda ws: jnp.reshape(fn(ws), (m,)), weights)
    parts = jax.vmap(lambda e: pullback(e)[0])(jnp.eye(m, dtype=r.dtype))
    return _flat_rows(parts, m), r


def per_sample_rows(residual_fn: Callable, weights, chunk, k: int):
    """J (c·k, P) and r (c·k,) of a chunk of samples, by per-sample Jacobians.

    Args:
        residual_fn: ``residual_fn(weights, batch) -> r`` of shape (b, k).
        weights: list of weight arrays.
        chunk: nested structure of arrays with a leading sample axis.
        k: residuals per sample.
    """

    def one(sample):
        batch = jax.tree_util.tree_map(lambda t: t[None], sample)
        return _rows_of(lambda ws: residual_fn(ws, batch), weights, k)

    jac, res = jax.vmap(one)(chunk)
    return jnp.reshape(jac, (-1, jac.shape[-1])), jnp.reshape(res, (-1,))


def full_rows(residual_fn: Callable, weights, data):
    """J (m, P) and r (m,) of the whole batch (samples coupled)."""
    m = int(np.prod(jax.eval_shape(lambda ws: residual_fn(ws, data), weights).shape))
    return _rows_of(lambda ws: residual_fn(ws, data), weights, m)


def column_blocks(p: int) -> list[tuple[int, int]]:
    """Column ranges [start, stop) of the blocks of J that ``gram_blocks`` pairs: ⌈p/B⌉ blocks
    of nearly equal width, B = ``GRAM_BLOCK_COLS``."""
    nb = max(1, -(-p // GRAM_BLOCK_COLS))
    edges = [(i * p) // nb for i in range(nb + 1)]
    return list(zip(edges[:-1], edges[1:]))


def gram_blocks(jac, blocks, dtype):
    """The blocks on and above the diagonal of JᵀJ, J_iᵀJ_j for i ≤ j in row-major order,
    each formed in J's dtype and cast to ``dtype``."""
    return tuple(jnp.matmul(jac[:, b0:b1].T, jac[:, c0:c1]).astype(dtype)
                 for i, (b0, b1) in enumerate(blocks) for (c0, c1) in blocks[i:])


def assemble(upper, blocks):
    """The symmetric matrix whose blocks on and above the diagonal are ``upper``
    (``gram_blocks``' order); the blocks below are their transposes, so A = Aᵀ exactly."""
    nb = len(blocks)
    index, k = {}, 0
    for i in range(nb):
        for j in range(i, nb):
            index[i, j] = k
            k += 1
    rows = [jnp.concatenate([upper[index[i, j]] if i <= j else upper[index[j, i]].T
                             for j in range(nb)], axis=1) for i in range(nb)]
    return jnp.concatenate(rows, axis=0) if nb > 1 else rows[0]


def _accumulate(upper, g, jac, res, blocks, dtype):
    """A's upper blocks + J_cᵀJ_c's (products in J's dtype) and g + J_cᵀr_c (in ``dtype``)."""
    upper = tuple(u + v for u, v in zip(upper, gram_blocks(jac, blocks, dtype)))
    g = g + jnp.matmul(jac.astype(dtype).T, res.astype(dtype))
    return upper, g


def normal_equations(residual_fn: Callable, weights, data, plan: JacobianPlan):
    """A = JᵀJ and g = Jᵀr of the batch ``data``, without ever holding J whole.

    Returns:
        ``(a, g)`` in ``plan.dtype``, shapes (P, P) and (P,).
    """
    dtype = plan.dtype
    p = flat_size(weights)
    blocks = column_blocks(p)
    upper = tuple(jnp.zeros((b1 - b0, c1 - c0), dtype)
                  for i, (b0, b1) in enumerate(blocks) for (c0, c1) in blocks[i:])
    g = jnp.zeros((p,), dtype)
    if not plan.per_sample:
        jac, res = full_rows(residual_fn, weights, data)
        upper, g = _accumulate(upper, g, jac, res, blocks, dtype)
        return assemble(upper, blocks), g

    def rows(chunk):
        return per_sample_rows(residual_fn, weights, chunk, plan.k)

    leaves = jax.tree_util.tree_leaves(data)
    n = int(leaves[0].shape[0])
    count, size, pad = equal_chunks(n, max(1, min(int(plan.chunk), CHUNK_ROWS, n)))
    if count == 1:
        upper, g = _accumulate(upper, g, *rows(data), blocks, dtype)
        return assemble(upper, blocks), g
    if pad:  # copies of the last sample (finite), their rows of J and r zeroed below
        data = jax.tree_util.tree_map(
            lambda t: jnp.concatenate([t, jnp.repeat(t[-1:], pad, axis=0)]), data)
    stacked = jax.tree_util.tree_map(
        lambda t: jnp.reshape(t, (count, size) + tuple(t.shape[1:])), data)
    real = jnp.reshape(jnp.arange(count * size) < n, (count, size))

    def body(carry, item):
        chunk, keep = item
        jac, res = rows(chunk)
        if pad:
            keep = jnp.repeat(keep, plan.k)
            jac = jnp.where(keep[:, None], jac, jnp.zeros((), jac.dtype))
            res = jnp.where(keep, res, jnp.zeros((), res.dtype))
        return _accumulate(*carry, jac, res, blocks, dtype), None

    (upper, g), _ = jax.lax.scan(body, (upper, g), (stacked, real))
    return assemble(upper, blocks), g


def equal_chunks(n: int, most: int) -> tuple[int, int, int]:
    """``(count, size, pad)``: n samples in ``count`` chunks of one ``size`` ≤ ``most``, the
    fewest that hold them, the last padded with ``pad`` < count samples.

    One chunk shape means one traced and compiled Jacobian: a remainder chunk of another size
    is a second copy of the whole per-sample Jacobian program, which XLA compiles again
    (A and g of 20,000 × 481: 1.9-2.1 s to compile in 20 chunks of 1,000 against 3.2-3.3 s in
    19 chunks of 1,024 and a remainder of 544, 2 shared CPU cores, 2026-12-04).
    """
    count = -(-n // most)
    size = -(-n // count)
    return count, size, count * size - n
