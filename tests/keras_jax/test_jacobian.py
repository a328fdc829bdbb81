"""JᵀJ from the upper column blocks of J (``_backend/jax/keras_jacobian.py``): the assembled
matrix is J.T @ J to rounding and exactly symmetric, in every chunking of the batch, the
padded rows of an uneven last chunk contributing nothing."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from marquardt._backend.jax import keras_jacobian as kj
from marquardt.keras._step import JacobianPlan


@pytest.mark.parametrize("p", [1, 5, 255, 256, 257, 481, 700])
def test_column_blocks_cover_the_columns(p):
    blocks = kj.column_blocks(p)
    assert blocks[0][0] == 0 and blocks[-1][1] == p
    assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:]))
    assert all(0 < stop - start <= kj.GRAM_BLOCK_COLS for start, stop in blocks)


@pytest.mark.parametrize("p", [7, 300, 481, 600])
def test_assembled_upper_blocks_equal_the_full_product(p):
    jac = jnp.asarray(np.random.default_rng(p).standard_normal((50, p)))
    blocks = kj.column_blocks(p)
    a = np.asarray(kj.assemble(kj.gram_blocks(jac, blocks, jnp.float64), blocks))
    full = np.asarray(jac.T @ jac)
    assert a.shape == (p, p)
    np.testing.assert_array_equal(a, a.T)  # mirrored: symmetric exactly
    np.testing.assert_allclose(a, full, rtol=0, atol=1e-12 * np.abs(full).max())


def _mlp(widths, seed=0):
    rng = np.random.default_rng(seed)
    shapes = [(i, o) for i, o in zip(widths[:-1], widths[1:])]
    return [jnp.asarray(rng.uniform(-1, 1, s).astype(np.float32)) for s in shapes] + \
        [jnp.asarray(rng.uniform(-0.1, 0.1, (s[1],)).astype(np.float32)) for s in shapes]


def _residual(ws, batch):
    n = len(ws) // 2
    h = batch["x"]
    for i in range(n):
        h = h @ ws[i] + ws[n + i]
        if i < n - 1:
            h = jnp.tanh(h)
    return h - batch["y"]


@pytest.mark.parametrize("n,most", [(20000, 1024), (301, 64), (64, 64), (5, 64), (7, 1)])
def test_equal_chunks(n, most):
    count, size, pad = kj.equal_chunks(n, most)
    assert size <= most and count * size == n + pad and 0 <= pad < count
    assert count == -(-n // most)  # the fewest chunks of at most ``most``


@pytest.mark.parametrize("per_sample,chunk,n", [(True, 64, 300), (True, 64, 301),
                                                (True, 1000, 300), (False, 64, 300)])
def test_normal_equations_equal_jt_j_of_the_whole_jacobian(per_sample, chunk, n):
    ws = _mlp((1, 20, 20, 1))  # P = 481: two column blocks
    p = kj.flat_size(ws)
    assert len(kj.column_blocks(p)) == 2
    x = np.linspace(-1, 1, n, dtype=np.float32)[:, None]
    batch = {"x": jnp.asarray(x), "y": jnp.asarray(np.sinc(10 * x))}
    plan = JacobianPlan(per_sample=per_sample, chunk=chunk, k=1, dtype=jnp.float64)
    a, g = jax.jit(lambda w: kj.normal_equations(_residual, w, batch, plan))(ws)
    jac_parts = jax.jacrev(lambda w: _residual(w, batch).reshape(-1))(ws)
    jac = np.concatenate([np.reshape(np.asarray(j, np.float64), (n, -1))
                          for j in jac_parts], axis=1)
    r = np.asarray(_residual(ws, batch), np.float64).reshape(-1)
    full = jac.T @ jac
    a = np.asarray(a)
    np.testing.assert_array_equal(a, a.T)
    # J's entries are float32 and each chunk's product is formed in float32 (as the model's
    # dtype); accumulated in float64
    np.testing.assert_allclose(a, full, rtol=0, atol=1e-5 * np.abs(full).max())
    np.testing.assert_allclose(np.asarray(g), jac.T @ r, rtol=0,
                               atol=1e-5 * np.abs(jac.T @ r).max())
