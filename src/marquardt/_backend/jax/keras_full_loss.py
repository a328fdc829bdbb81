"""The training loss over all rows on JAX, in chunks of one jitted forward pass
(``full_loss``, ``marquardt.keras._minibatch``; TensorFlow's is ``keras_full_loss`` beside
``_backend/tensorflow/keras_step.py``)."""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import keras
import numpy as np

__all__ = ["FullLoss"]

#: Rows per forward pass.
CHUNK = 65536


class FullLoss:
    """``full_loss(net) -> float``: ½Σr² over all rows (divided by the rows when the loss is a
    mean), r the loss's residuals ``fn(y, net(x), sample_weight)``.

    Args:
        x, y, sample_weight: the training arrays (without the validation rows), nests allowed.
        fn: the residual form of the Keras loss; mean: whether it averages over samples.
    """

    def __init__(self, x: Any, y: Any, sample_weight: Any, fn: Callable, mean: bool):
        def arrays(tree):
            if tree is None:
                return None
            return keras.tree.map_structure(np.asarray, keras.tree.lists_to_tuples(tree))

        self._data = (arrays(x), arrays(y), arrays(sample_weight))
        self._rows = int(keras.tree.flatten(x)[0].shape[0])
        self._fn, self._mean = fn, mean
        self._sum = None
        self._net = None

    def _chunk_sum(self, net):
        if self._sum is None or self._net is not net:
            fn = self._fn

            @jax.jit
            def chunk_sum(weights, frozen, x, y, sw):
                y_pred, _ = net.stateless_call(weights, frozen, x, training=False)
                r = fn(y, y_pred, sw).astype(jnp.result_type(float))
                return 0.5 * jnp.sum(r * r)

            self._sum, self._net = chunk_sum, net
        return self._sum

    def __call__(self, net) -> float:
        chunk_sum = self._chunk_sum(net)
        weights = [v.value for v in net.trainable_variables]
        frozen = [v.value for v in net.non_trainable_variables]
        total = 0.0
        for start in range(0, self._rows, CHUNK):
            x, y, sw = (None if part is None else keras.tree.map_structure(
                lambda t: t[start:start + CHUNK], part) for part in self._data)
            total += float(chunk_sum(weights, frozen, x, y, sw))
        return total / self._rows if self._mean else total
