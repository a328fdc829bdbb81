"""The training loss over all rows, in chunks of one compiled forward pass (``full_loss``,
``marquardt.keras._minibatch``)."""

from __future__ import annotations

from typing import Any, Callable

import keras
import numpy as np
import tensorflow as tf

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
        def tensors(tree):
            if tree is None:
                return None
            return tf.nest.map_structure(lambda a: tf.convert_to_tensor(np.asarray(a)),
                                         keras.tree.lists_to_tuples(tree))

        self._data = (tensors(x), tensors(y), tensors(sample_weight))
        self._rows = int(keras.tree.flatten(x)[0].shape[0])
        self._fn, self._mean = fn, mean
        self._sum = None
        self._net = None

    def _chunk_sum(self, net):
        if self._sum is None or self._net is not net:
            fn = self._fn

            @tf.function(reduce_retracing=True)
            def chunk_sum(x, y, sw):
                r = tf.cast(fn(y, net(x, training=False), sw), tf.float64)
                return 0.5 * tf.reduce_sum(r * r)

            self._sum, self._net = chunk_sum, net
        return self._sum

    def __call__(self, net) -> float:
        chunk_sum = self._chunk_sum(net)
        total = 0.0
        for start in range(0, self._rows, CHUNK):
            x, y, sw = (None if part is None else tf.nest.map_structure(
                lambda t: t[start:start + CHUNK], part) for part in self._data)
            total += float(chunk_sum(x, y, sw))
        return total / self._rows if self._mean else total
