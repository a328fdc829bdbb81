"""Full-batch LM input: split off the validation rows as Keras does, then one batch.

Used by ``LMModel.fit`` when the data are arrays and the batch is the whole training set (the
classic LM setting), so that Keras does not rebuild an input pipeline, or even an iterator,
every epoch (``_backend/tensorflow/keras_data.py`` has the measurements).
"""

from __future__ import annotations

import math

import keras
import numpy as np

from marquardt._backend.tensorflow.keras_data import single_batch_dataset

__all__ = ["full_batch_inputs"]


def _as_array(a):
    arr = np.asarray(a)
    if arr.dtype.kind == "f":  # Keras casts floating inputs to floatx; do the same
        arr = arr.astype(keras.config.floatx(), copy=False)
    return arr


def _rows(tree, start, stop):
    return keras.tree.map_structure(lambda a: a[start:stop], tree)


def _batch(x, y, sample_weight, *, repeat=False):
    parts = [keras.tree.map_structure(_as_array, x)]
    if y is not None:
        parts.append(keras.tree.map_structure(_as_array, y))
        if sample_weight is not None:
            parts.append(keras.tree.map_structure(_as_array, sample_weight))
    # tf.data reads a list as one stacked tensor; multi-output targets must stay a structure
    return single_batch_dataset(keras.tree.lists_to_tuples(tuple(parts)), repeat=repeat)


def full_batch_inputs(x, y, sample_weight, validation_split, validation_data):
    """``(train_dataset, validation)`` for full-batch LM on array inputs.

    The training dataset repeats its one batch forever: ``fit`` must bound each epoch with
    ``steps_per_epoch`` (one LM iteration per epoch by default).

    ``validation_split`` takes the last fraction of the rows, as ``keras.Model.fit`` does
    (``floor(n · (1 − split))`` rows stay for training, before any shuffling). Array
    ``validation_data`` becomes one batch as well; a dataset is passed through.
    """
    if validation_split and validation_data is None:
        n = int(keras.tree.flatten(x)[0].shape[0])
        split_at = int(math.floor(n * (1.0 - validation_split)))
        if not 0 < split_at < n:  # Keras refuses an empty split too
            raise ValueError(
                f"`validation_split` must leave at least one training and one validation row "
                f"of the {n}: it leaves {split_at} for training and {n - split_at} for "
                f"validation. Received: validation_split={validation_split!r}")
        tail = lambda t: None if t is None else _rows(t, split_at, None)  # noqa: E731
        head = lambda t: None if t is None else _rows(t, 0, split_at)  # noqa: E731
        validation_data = (tail(x), tail(y)) if sample_weight is None else (
            tail(x), tail(y), tail(sample_weight))
        x, y, sample_weight = head(x), head(y), head(sample_weight)
    if validation_data is not None and not hasattr(validation_data, "element_spec"):
        vx, vy, *vw = validation_data
        validation_data = _batch(vx, vy, vw[0] if vw else None)
    return _batch(x, y, sample_weight, repeat=True), validation_data
