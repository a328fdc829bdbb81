"""Jacobians of Keras residuals, and JᵀJ, Jᵀr accumulated in row chunks.

Glossary: w the flattened trainable weights (P of them); r the residuals of a batch, k per
sample, m = n·k in all; J = ∂r/∂w (m × P); A = JᵀJ; g = Jᵀr, the gradient of ½‖r‖².

Two ways to get J:

* **per sample** (``per_sample_chunk``): when the residuals of sample i depend on sample i
  alone (every Keras loss on a network without cross-sample layers), row block i of J is the
  gradient of r_i for a batch of one. ``tf.vectorized_map`` runs that backward pass for a
  whole chunk of samples at once; this is ~17× faster than ``GradientTape.jacobian`` on the
  batch (which back-propagates through the whole batch once per residual).
* **full** (``full_jacobian``): ``GradientTape.jacobian`` of the whole batch, for residuals
  that mix samples (batch normalisation in training mode, a custom residual with boundary
  terms or batch statistics).

``normal_equations`` never holds J whole: it walks the batch in chunks of ``chunk`` samples
(a ``tf.while_loop``) and adds each chunk's J_cᵀJ_c and J_cᵀr_c into A and g.

JᵀJ is symmetric, so only its upper triangle of column blocks is formed (``gram_edges``: at
most 16 blocks, each at least 128 columns wide): B(B+1)/2 products of J_cᵢᵀJ_cⱼ instead of B²,
accumulated block by block and assembled into A once per batch. The blocks' smaller matmuls
also stay in cache better than one c × P product: on a 2-core machine, 20,000 × 481, the
blocked product in chunks of ~2,000 rows took 0.06-0.13 s against 0.31-0.36 s for one
``tf.matmul(J, J, transpose_a=True)`` (same run, min of 5; the machine was shared, so only the
ratio means anything).

Each block product is formed in the model's dtype (float32 matmul runs at BLAS speed;
TensorFlow's float64 matmul was 3× slower on the same machine) and accumulated in ``dtype``
(float64 by default), so the rounding of a chunk does not compound across chunks; g is formed
in ``dtype`` outright (a matrix-vector product: its cost is the cast, ~5 of the ~33 ms of A
and g at 10,000 × 481 on 2 cores). Forming g in the model's dtype instead, as one more column
of the blocked Gram ([J r]ᵀ[J r]), was tried and measured worse (``benchmarks/precision.py``,
float64 path, same machine): on the degree-6 fit the parameter error grew from 2.0e-5 to 8.4e-5,
and the degree-8 fit took 22 epochs to MSE 1e-10 instead of 17. Near the optimum g is a sum of
terms that cancel, so its float32 accumulation costs the digits the float64 path exists for.
"""

from __future__ import annotations

from typing import Callable

import tensorflow as tf

from marquardt.keras._step import JacobianPlan

__all__ = ["JacobianPlan", "flat_size", "per_sample_chunk", "full_jacobian",
           "gram_edges", "normal_equations", "summed_normal_equations"]

#: Column blocks of JᵀJ: at least this wide (narrower products lose BLAS efficiency)...
GRAM_BLOCK_MIN = 128
#: ...and at most this many (B(B+1)/2 products per chunk; more only adds op overhead).
GRAM_BLOCKS_MAX = 16


def flat_size(weights) -> int:
    """P, the number of scalar weights."""
    return int(sum(int(tf.size(w)) if w.shape.num_elements() is None else
                   w.shape.num_elements() for w in weights))


def _no_gradient_error(weights, grads, names):
    missing = [names[i] for i, gr in enumerate(grads) if gr is None]
    if missing:
        raise ValueError(
            "Every trainable weight must receive a gradient from the residuals; "
            f"{len(missing)} do not: {missing}. Freeze them (`layer.trainable = False`) or "
            "remove the layers that do not contribute to the output. Received: weights "
            f"without gradient={missing}"
        )


def _flatten_rows(parts, rows):
    return tf.concat([tf.reshape(p, [rows, -1]) for p in parts], axis=1)


def per_sample_chunk(residual_fn: Callable, weights, chunk, k: int, names):
    """J and r for a chunk of samples, by vectorised per-sample gradients.

    Args:
        residual_fn: ``residual_fn(weights, batch) -> r`` of shape (b, k).
        weights: list of weight tensors.
        chunk: nested structure of tensors with a leading sample axis.
        k: residuals per sample.
        names: weight names for error messages.

    Returns:
        ``(J, r)`` of shapes (c·k, P) and (c·k,).
    """

    def one(sample):
        batch = tf.nest.map_structure(lambda t: tf.expand_dims(t, 0), sample)
        with tf.GradientTape() as tape:
            tape.watch(weights)
            r = tf.reshape(residual_fn(weights, batch), [k])
        if k == 1:
            parts = tape.gradient(r, weights)
        else:
            parts = tape.jacobian(r, weights)
        _no_gradient_error(weights, parts, names)
        return _flatten_rows(parts, k), r

    jac, res = tf.vectorized_map(one, chunk)
    return tf.reshape(jac, [-1, tf.shape(jac)[-1]]), tf.reshape(res, [-1])


def full_jacobian(residual_fn: Callable, weights, data, names):
    """J (m, P) and r (m,) of the whole batch by ``GradientTape.jacobian`` (samples coupled)."""
    with tf.GradientTape() as tape:
        tape.watch(weights)
        r = tf.reshape(residual_fn(weights, data), [-1])
    parts = tape.jacobian(r, weights)
    _no_gradient_error(weights, parts, names)
    return _flatten_rows(parts, tf.shape(r)[0]), r


def gram_edges(p: int) -> tuple[int, ...]:
    """Column boundaries of the blocks of JᵀJ: B+1 increasing integers from 0 to P."""
    blocks = max(1, min(GRAM_BLOCKS_MAX, p // GRAM_BLOCK_MIN))
    return tuple(round(i * p / blocks) for i in range(blocks + 1))


def _pairs(edges):
    count = len(edges) - 1
    return [(i, j) for i in range(count) for j in range(i, count)]


def _zero_blocks(edges, dtype):
    return tuple(tf.zeros([edges[i + 1] - edges[i], edges[j + 1] - edges[j]], dtype)
                 for i, j in _pairs(edges))


def _accumulate(blocks, g, jac, res, edges, dtype):
    """Adds the upper blocks of J_cᵀJ_c (formed in J's dtype) and J_cᵀr_c to the sums."""
    cols = [jac[:, edges[i]:edges[i + 1]] for i in range(len(edges) - 1)]
    out = tuple(acc + tf.cast(tf.matmul(cols[i], cols[j], transpose_a=True), dtype)
                for acc, (i, j) in zip(blocks, _pairs(edges)))
    if res is not None:
        g = g + tf.linalg.matvec(tf.cast(jac, dtype), tf.cast(res, dtype), transpose_a=True)
    return out, g


def _assemble(blocks, edges):
    """The symmetric P × P matrix from its upper blocks."""
    count = len(edges) - 1
    upper = dict(zip(_pairs(edges), blocks))
    rows = [tf.concat([upper[(i, j)] if j >= i else tf.transpose(upper[(j, i)])
                       for j in range(count)], axis=1) for i in range(count)]
    return rows[0] if count == 1 else tf.concat(rows, axis=0)


def normal_equations(residual_fn: Callable, weights, data, plan: JacobianPlan, names):
    """A = JᵀJ and g = Jᵀr of the batch ``data``, without ever holding J whole.

    Returns:
        ``(a, g)`` in ``plan.dtype``, shapes (P, P) and (P,).
    """
    if plan.per_sample:
        def rows(chunk):
            return per_sample_chunk(residual_fn, weights, chunk, plan.k, names)
    else:
        def rows(chunk):
            return full_jacobian(residual_fn, weights, chunk, names)
    return summed_normal_equations(rows, data, flat_size(weights),
                                   plan.chunk if plan.per_sample else None, plan.dtype)


def summed_normal_equations(rows: Callable, data, p: int, chunk: int | None, dtype):
    """A = Σ J_cᵀJ_c and g = Σ J_cᵀr_c over chunks of ``chunk`` samples of ``data``.

    Args:
        rows: ``rows(chunk_data) -> (J_c, r_c)``, the Jacobian rows (c·k, P) and residuals
            (c·k,) of a chunk of samples; r_c ``None`` forms JᵀJ alone (g stays zero).
        data: nested structure of tensors with a leading sample axis.
        p: number of columns of J.
        chunk: samples per chunk; ``None`` for one chunk (samples coupled).
        dtype: dtype of A and g.

    Returns:
        ``(a, g)`` in ``dtype``, shapes (P, P) and (P,).
    """
    edges = gram_edges(p)
    blocks = _zero_blocks(edges, dtype)
    g = tf.zeros([p], dtype)
    leaves = tf.nest.flatten(data)
    static_n = leaves[0].shape[0]
    if chunk is None or (static_n is not None and static_n <= chunk):
        # one chunk for the whole batch: samples coupled, or the batch fits in one chunk
        jac, res = rows(data)
        blocks, g = _accumulate(blocks, g, jac, res, edges, dtype)
        return _assemble(blocks, edges), g

    n = tf.shape(leaves[0])[0]
    size = tf.constant(chunk, tf.int32)
    count = (n + size - 1) // size

    def body(i, blocks, g):
        start = i * size
        stop = tf.minimum(start + size, n)
        jac, res = rows(tf.nest.map_structure(lambda t: t[start:stop], data))
        blocks, g = _accumulate(blocks, g, jac, res, edges, dtype)
        return i + 1, blocks, g

    _, blocks, g = tf.while_loop(lambda i, blocks, g: i < count, body,
                                 (tf.constant(0), blocks, g), parallel_iterations=1)
    return _assemble(blocks, edges), g
