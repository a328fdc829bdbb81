"""``LMModel.fit``'s checks of its data on a first batch: NaN and cardinality, building a model
that has no ``keras.Input`` from the batch, the targets against the outputs, a finite start; and
what the batch tells the batch policy (residuals per sample)."""

from __future__ import annotations

import keras
import numpy as np

from marquardt.keras import _backends, _validation

__all__ = ["check_inputs"]


def check_inputs(lm, x, y, sample_weight) -> tuple[int | None, int | None]:
    """``LMModel.fit``'s front-door checks of its data on the first batch (the probe):
    (k, rows): the residuals per sample and the probe's rows (None, None where the loss is a
    custom residual or there is no data to probe)."""
    k = rows = None
    if x is not None and not hasattr(x, "element_spec"):
        _validation.check_arrays(x, y, sample_weight)
    probe = None if x is None else _validation.first_batch(x, y, sample_weight)
    if probe is not None and not lm.network.built:
        # a model without an `Input` (``Sequential([Dense(10), Dense(1)])``) is built by
        # its first call, as Keras' own fit builds it from the data (under the
        # tf.distribute strategy it was made in: mirrored variables)
        with _backends.strategy_scope(lm):
            lm.network(probe[0], training=False)
            lm.build(None)
    _validation.check_trainable(lm.network)
    if probe is None:
        return k, rows
    px, py, psw = probe
    if hasattr(x, "element_spec"):
        _validation.check_arrays(px, py, psw)
    y_pred = lm.network(px, training=False)
    _validation.check_no_penalties(lm.network)
    if lm.lm_custom_residual is not None:
        px = keras.tree.map_structure(keras.ops.convert_to_tensor, px)
        py = None if py is None else keras.tree.map_structure(keras.ops.convert_to_tensor, py)
        r = lm.lm_custom_residual(lambda inputs: lm.network(inputs, training=False), px, py)
        cost = 0.5 * float(np.sum(np.square(np.asarray(r, dtype=np.float64))))
    else:
        if py is None:
            raise ValueError("`y` must be given to train with a Keras loss. Received: y=None")
        names = lm._loss_names()
        _validation.check_targets(py, y_pred, names)
        fn, _ = lm.lm_loss_residual
        r = np.asarray(fn(py, y_pred, psw), dtype=np.float64)
        k = int(np.prod(r.shape[1:])) if r.ndim > 1 else 1
        rows = int(r.shape[0])
        cost = 0.5 * float(np.sum(np.square(r))) / max(r.shape[0], 1)
    _validation.check_start(cost)
    return k, rows
