"""Per-epoch totals of per-iteration counts in the Keras logs (``cholesky_failures``).

Keras puts the *last* batch's value of a plain (non-metric) log into the epoch's logs: right
for λ or the status, wrong for a count, which must add up over the epoch's batches.
``EpochSums`` — a callback that ``LMModel.fit`` puts before the user's callbacks and History —
adds the batches' values and writes the sum into the epoch's logs, so ``history.history``,
``CSVLogger`` and the progress bar's epoch line show the epoch's total. In full-batch training
an epoch is one iteration and the sum is that iteration's count.

One count so far: ``cholesky_failures``, the LM attempts whose Cholesky factorisation of
A + λD was not finite (the matrix not numerically positive definite: λ tiny against a
singular A), so that the solver's eigen-decomposition gave the step instead
(``marquardt._solvers.solve_normal_checked``). Such an attempt is handled, not an error;
TensorFlow's own kernel would write one warning line per failure to stderr, which the count
replaces (docs/keras.md, "Quiet output").

Keras calls ``on_train_batch_end`` once per ``steps_per_execution`` steps with the last
step's logs, so with ``steps_per_execution`` > 1 the sum covers one step per call.
"""

from __future__ import annotations

import keras

__all__ = ["EpochSums", "SUMMED_LOGS"]

#: The step's logs that are counts per iteration, summed per epoch.
SUMMED_LOGS = ("cholesky_failures",)


class EpochSums(keras.callbacks.Callback):
    """Writes the epoch's sum of each per-batch log named in ``keys`` into the epoch logs.

    Args:
        keys: the log names to sum (``SUMMED_LOGS``).
    """

    def __init__(self, keys=SUMMED_LOGS):
        super().__init__()
        self.keys = tuple(keys)
        self.sums = {}

    def on_epoch_begin(self, epoch, logs=None):
        self.sums = {}

    def on_train_batch_end(self, batch, logs=None):
        for key in self.keys:
            if logs and key in logs:
                self.sums[key] = self.sums.get(key, 0) + int(logs[key])

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            for key, total in self.sums.items():
                logs[key] = total
