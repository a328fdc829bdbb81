"""LM input from arrays as one ``tf.data.Dataset`` for the whole run.

Keras 3 wraps NumPy inputs in a fresh ``tf.data`` pipeline every epoch (slicing, shuffling,
batching); for a full-batch LM epoch — a single step — that costs about 80 ms on a 2-core
machine, more than the LM step of a small network (measured: Adam on 200 samples, 84 ms per
epoch from arrays against 11 ms from a one-element dataset). A one-element dataset holding
the whole batch skips that work and feeds the same tensors every epoch.

For training it is also repeated, and ``fit`` runs it with ``steps_per_epoch=1``: Keras then
keeps one iterator for the whole run instead of opening a new one each epoch. On the same
machine (Adam, 200 samples, 200 epochs, runs alternated) that took the median epoch from
7.8-10.8 ms to 2.9-3.8 ms; full-batch LM on a 61-weight network and 1,000 samples, from
8.4-9.0 ms to 6.0-6.3 ms (old and new code alternated). Validation data is not repeated:
Keras evaluates it to its end.

Mini-batch training from arrays gets the same treatment (``sliced_batches``): the row indices
are shuffled each pass (``reshuffle_each_iteration``, a uniform shuffle over all rows, as
Keras' ``shuffle=True``), batched with the last partial batch kept, and repeated, and each
batch gathers its rows; ``fit`` runs
``ceil(n / batch_size)`` steps per epoch, so each epoch is one pass over the data. Keras'
array adapter costs about 30 ms per epoch on 2 cores: with a 13-weight network, 20,000 rows,
batch 1,000 (20 steps), the median epoch took 57-103 ms against 94-115 ms through the adapter
(runs alternated, old and new code). With 481 weights the steps dominate and the gain was
within the machine's noise (2 alternated runs each; epochs of 300-550 ms either way).
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["single_batch_dataset", "sliced_batches"]


def single_batch_dataset(batch, *, repeat: bool = False):
    """A dataset of one element, ``batch`` (a tuple such as ``(x, y)`` or ``(x, y, w)``);
    with ``repeat``, that element again and again (the caller bounds each epoch)."""
    dataset = tf.data.Dataset.from_tensors(batch)
    return dataset.repeat() if repeat else dataset


def sliced_batches(parts, batch_size: int, *, shuffle: bool = False, repeat: bool = False,
                   drop_remainder: bool = False):
    """The rows of ``parts`` (a tuple such as ``(x, y)`` or ``(x, y, w)``) in batches of
    ``batch_size``, the last one partial; with ``shuffle`` in a new order each pass; with
    ``repeat`` pass after pass (the caller bounds each epoch); with ``drop_remainder`` the
    last partial batch of each pass is left out (``batch_size="auto"``: its equal batches).

    The data become tensors once; what is shuffled and batched is the row indices, and each
    batch gathers its rows (as Keras' own array adapter does). Shuffling the rows themselves
    would fill a shuffle buffer with a second copy of the data every pass: 2.9-3.6 s per pass
    against 1.1-1.4 s at 500,000 × 8 rows, batch 10,000.
    """
    tensors = tf.nest.map_structure(tf.convert_to_tensor, parts)
    rows = int(tf.nest.flatten(tensors)[0].shape[0])
    order = tf.data.Dataset.range(rows)
    if shuffle:
        order = order.shuffle(rows, reshuffle_each_iteration=True)
    order = order.batch(batch_size, drop_remainder=drop_remainder)
    if repeat:
        order = order.repeat()
    return order.map(lambda idx: tf.nest.map_structure(lambda t: tf.gather(t, idx), tensors),
                     num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
