"""The chunked, blocked normal equations against JᵀJ and Jᵀr of the whole Jacobian."""

import numpy as np
import pytest
import tensorflow as tf

from marquardt._backend.tensorflow.keras_jacobian import (
    JacobianPlan, full_jacobian, gram_edges, normal_equations, summed_normal_equations)

from keras_helpers import mlp


def test_gram_edges_cover_the_columns_in_wide_blocks():
    assert gram_edges(5) == (0, 5)
    assert gram_edges(481) == (0, 160, 321, 481)
    edges = gram_edges(5181)
    assert len(edges) == 17 and edges[0] == 0 and edges[-1] == 5181
    assert min(np.diff(edges)) >= 128


@pytest.mark.parametrize("chunk", [7, 1000])
def test_blocked_chunked_normal_equations_equal_dense(float64, chunk):
    net = mlp((16, 16), inputs=2, outputs=2, dtype="float64")  # P = 354: two Gram blocks
    assert len(gram_edges(354)) == 3
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(40, 2)))
    y = tf.constant(rng.normal(size=(40, 2)))
    weights = [tf.convert_to_tensor(v) for v in net.trainable_variables]
    names = [v.path for v in net.trainable_variables]

    def residual_fn(ws, b):
        return net.stateless_call(ws, [], b["x"])[0] - b["y"]

    batch = {"x": x, "y": y}
    plan = JacobianPlan(per_sample=True, chunk=chunk, k=2, dtype=tf.float64)
    a, g = normal_equations(residual_fn, weights, batch, plan, names)
    jac, res = full_jacobian(residual_fn, weights, batch, names)
    jac, res = jac.numpy(), res.numpy()
    np.testing.assert_allclose(a.numpy(), jac.T @ jac, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(g.numpy(), jac.T @ res, rtol=1e-12, atol=1e-12)



@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("chunk", [None, 6])
def test_summed_normal_equations_of_given_rows(chunk, compiled):
    # rows handed over as they are (the benchmark's floor): A = JᵀJ whether chunked (a
    # tf.while_loop over 5 chunks, the last of 1 row, when compiled with an unknown batch size)
    # or not, and residuals of None form A alone with g left at zero
    rng = np.random.default_rng(1)
    jac = rng.normal(size=(25, 300))  # P = 300: two Gram blocks
    res = rng.normal(size=25)

    def run(rows, data):
        def sums(d):
            return summed_normal_equations(rows, d, 300, chunk, tf.float64)
        if compiled:
            spec = tf.nest.map_structure(
                lambda t: tf.TensorSpec([None, *t.shape[1:]], t.dtype), data)
            sums = tf.function(sums, input_signature=[spec])
        return [t.numpy() for t in sums(data)]

    a, g = run(lambda c: (c["j"], c["r"]), {"j": tf.constant(jac), "r": tf.constant(res)})
    np.testing.assert_allclose(a, jac.T @ jac, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(g, jac.T @ res, rtol=1e-12, atol=1e-12)
    a, g = run(lambda c: (c, None), tf.constant(jac))
    np.testing.assert_allclose(a, jac.T @ jac, rtol=1e-12, atol=1e-12)
    assert not np.any(g)
