"""LM input from arrays: split off the validation rows as Keras does, then one dataset.

Used by ``LMModel.fit`` when the data are arrays, on the TensorFlow backend (on JAX, Keras'
own array adapter slices NumPy arrays without ``tf.data``). Full batch (the classic LM setting): one
batch, repeated. Mini-batch: the rows shuffled each pass, batched and repeated. Either way
Keras keeps one input pipeline and one iterator for the whole run instead of rebuilding them
every epoch (``_backend/tensorflow/keras_data.py`` has the measurements); ``fit`` bounds each
epoch with ``steps_per_epoch``.
"""

from __future__ import annotations

import math

import keras
import numpy as np

from marquardt.keras import _backends

__all__ = ["array_inputs", "trim_to_batches", "phase_inputs"]


def _as_array(a):
    arr = np.asarray(a)
    if arr.dtype.kind == "f":  # Keras casts floating inputs to floatx; do the same
        arr = arr.astype(keras.config.floatx(), copy=False)
    return arr


def _rows(tree, start, stop):
    return keras.tree.map_structure(lambda a: a[start:stop], tree)


def _parts(x, y, sample_weight):
    parts = [keras.tree.map_structure(_as_array, x)]
    if y is not None:
        parts.append(keras.tree.map_structure(_as_array, y))
        if sample_weight is not None:
            parts.append(keras.tree.map_structure(_as_array, sample_weight))
    # tf.data reads a list as one stacked tensor; multi-output targets must stay a structure
    return keras.tree.lists_to_tuples(tuple(parts))


def _split(x, y, sample_weight, validation_split):
    """The training rows and the validation rows (a tuple), by Keras' rule."""
    n = int(keras.tree.flatten(x)[0].shape[0])
    split_at = int(math.floor(n * (1.0 - validation_split)))
    if not 0 < split_at < n:  # Keras refuses an empty split too
        raise ValueError(
            f"`validation_split` must leave at least one training and one validation row "
            f"of the {n}: it leaves {split_at} for training and {n - split_at} for "
            f"validation. Received: validation_split={validation_split!r}")
    tail = lambda t: None if t is None else _rows(t, split_at, None)  # noqa: E731
    head = lambda t: None if t is None else _rows(t, 0, split_at)  # noqa: E731
    validation = (tail(x), tail(y)) if sample_weight is None else (
        tail(x), tail(y), tail(sample_weight))
    return (head(x), head(y), head(sample_weight)), validation


def _array_tuple(data) -> bool:
    """``validation_data`` given as a tuple ``(x, y)`` or ``(x, y, w)`` (or ``(x,)``) of arrays."""
    if not isinstance(data, tuple) or not 1 <= len(data) <= 3:
        return False
    leaves = keras.tree.flatten(data[0])
    return bool(leaves) and all(hasattr(a, "shape") and not hasattr(a, "element_spec")
                                for a in leaves)


def array_inputs(x, y, sample_weight, *, batch_size: int | None, shuffle: bool,
                 validation_split: float, validation_data, validation_batch_size=None,
                 drop_remainder: bool = False):
    """``(train_dataset, validation, steps_per_epoch)`` for LM on array inputs.

    ``batch_size=None`` (or the number of rows) is full batch: one batch, repeated, one step
    per epoch. A smaller ``batch_size`` gives ``ceil(rows / batch_size)`` steps per epoch of
    batches sliced in a new order each pass (``shuffle``) or in order. ``validation_split``
    takes the last fraction of the rows, as ``keras.Model.fit`` does (``floor(n · (1 −
    split))`` rows stay for training, before any shuffling). Array ``validation_data`` becomes
    one batch (full batch) or batches of ``validation_batch_size or batch_size``, not
    repeated; anything else (a dataset, a generator, a ``PyDataset``) goes to Keras as it is.
    ``drop_remainder``: mini-batch passes leave out the last partial batch
    (``floor(rows / batch_size)`` steps; ``batch_size="auto"`` sizes its batches so that fewer
    rows than batches are left out).
    """
    from marquardt._backend.tensorflow.keras_data import single_batch_dataset, sliced_batches

    if validation_split and validation_data is None:
        (x, y, sample_weight), validation_data = _split(x, y, sample_weight, validation_split)
    n = int(keras.tree.flatten(x)[0].shape[0])
    full = batch_size is None or batch_size >= n
    if _array_tuple(validation_data):
        vx, vy, vw = keras.utils.unpack_x_y_sample_weight(validation_data)
        parts = _parts(vx, vy, vw)
        validation_data = (single_batch_dataset(parts) if full else
                           sliced_batches(parts, validation_batch_size or batch_size))
    parts = _parts(x, y, sample_weight)
    if full:
        return single_batch_dataset(parts, repeat=True), validation_data, 1
    train = sliced_batches(parts, batch_size, shuffle=shuffle, repeat=True,
                           drop_remainder=drop_remainder)
    return train, validation_data, (n // batch_size if drop_remainder else
                                    math.ceil(n / batch_size))


def trim_to_batches(x, y, sample_weight, batch_size: int, validation_split: float,
                    validation_data) -> dict:
    """Keras ``fit`` arguments with the training rows cut to a multiple of ``batch_size``.

    The validation rows are split off first, by Keras' rule, and passed as
    ``validation_data``. Used where Keras' own array adapter batches the rows
    (``batch_size="auto"`` equal batches without ``tf.data``).
    """
    if validation_split and validation_data is None:
        (x, y, sample_weight), validation_data = _split(x, y, sample_weight, validation_split)
    n = int(keras.tree.flatten(x)[0].shape[0])
    keep = n // batch_size * batch_size
    head = lambda t: None if t is None else _rows(t, 0, keep)  # noqa: E731
    return dict(x=head(x), y=head(y), sample_weight=head(sample_weight),
                validation_split=0.0, validation_data=validation_data)


def phase_inputs(data, batch_size, n, kwargs, *, drop_remainder=False):
    """The arguments of Keras' ``fit`` for one phase of training at ``batch_size``
    (``drop_remainder``: the equal batches of ``batch_size="auto"``)."""
    data = dict(data, batch_size=batch_size, **kwargs)
    if (n is not None and data["class_weight"] is None and data["shuffle"] in (True, False)
            and _backends.name() == "tensorflow"):
        # arrays: one repeated dataset and one iterator for the run (``_data``); on JAX
        # Keras' own array adapter batches them (NumPy slices, no tf.data)
        x, validation_data, steps = array_inputs(
            data["x"], data["y"], data["sample_weight"], batch_size=batch_size,
            shuffle=data["shuffle"], validation_split=data["validation_split"],
            validation_data=data["validation_data"],
            validation_batch_size=kwargs.get("validation_batch_size"),
            drop_remainder=drop_remainder)
        data.update(x=x, y=None, sample_weight=None, validation_data=validation_data,
                    validation_split=0.0, batch_size=None, shuffle=False)  # x batches itself
        if kwargs.get("steps_per_epoch") is None:
            data["steps_per_epoch"] = steps
    elif n is not None and drop_remainder:
        # Keras' own array adapter (JAX, class_weight, shuffle="batch") would make a last
        # batch of the fewer than c rows left over: leave them out of the mini-batch
        # phase instead (the same few rows each pass; full batch sees them)
        data.update(trim_to_batches(data["x"], data["y"], data["sample_weight"],
                                    batch_size, data["validation_split"],
                                    data["validation_data"]))
    return data
