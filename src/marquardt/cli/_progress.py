"""Keras callbacks of the command line: a progress bar over epochs and a recorder of the training record.

The progress bar is ``rich``'s (the ``cli`` extra), drawn on stderr so that stdout keeps only the
report; without ``rich`` it falls back to Keras' own ``Progbar``. Both are built lazily, because
this module is imported before Keras is.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any, Callable, Mapping

import numpy as np

__all__ = ["progress_callback", "recorder_callback"]


def progress_callback(epochs: int, description: str, fields: Mapping[str, str] | None = None) -> Any:
    """A Keras callback showing a bar over ``epochs`` with the latest values of ``fields``.

    Args:
        epochs: The most epochs (the bar's total).
        description: Text before the bar.
        fields: Log name to the short label shown after the bar (default: loss and val_loss).
    """
    fields = {"loss": "loss", "val_loss": "val"} if fields is None else fields
    import keras

    try:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    except ImportError:  # pragma: no cover - rich is in the `cli` extra
        Progress = None

    def summary(logs: Mapping[str, Any]) -> str:
        return " ".join(f"{label} {float(logs[name]):.2e}" for name, label in fields.items() if name in logs)

    class RichProgress(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.progress = Progress(
                TextColumn("{task.description}"), MofNCompleteColumn(), BarColumn(bar_width=20),
                TimeElapsedColumn(), TextColumn("{task.fields[values]}"),
                console=Console(stderr=True), transient=False,
            )
            self.task = self.progress.add_task(description, total=epochs, values="")
            self.progress.start()

        def on_epoch_end(self, epoch, logs=None):
            self.progress.update(self.task, completed=epoch + 1, values=summary(logs or {}))

        def on_train_end(self, logs=None):
            self.progress.stop()

    class KerasProgress(keras.callbacks.Callback):  # pragma: no cover - without rich
        def on_train_begin(self, logs=None):
            print(description, file=sys.stderr)
            self.bar = keras.utils.Progbar(epochs, unit_name="epoch")

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            values = [(label, float(logs[name])) for name, label in fields.items() if name in logs]
            self.bar.update(epoch + 1, values=values)

    return RichProgress() if Progress is not None else KerasProgress()


def recorder_callback(extra: Mapping[str, Callable[[], float]] | None = None,
                      keep_best: Any | None = None) -> Any:
    """A Keras callback recording every epoch's logs, the time since training began and ``extra`` values.

    Args:
        extra: Name to a function computing a value at the end of each epoch (e.g. the test MSE).
        keep_best: A Keras model whose weights are copied whenever ``val_loss`` improves, so that
            ``restore_best()`` can put back the weights of the best validation epoch (what MATLAB
            returns), however training stopped.

    The callback has ``record`` (name to list of values per epoch, with ``seconds``), ``best_epoch``
    (1-based, or None) and ``restore_best()``.
    """
    import keras

    class Recorder(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.record: dict[str, list[float]] = {}
            self.best_epoch: int | None = None
            self._best = math.inf
            self._best_weights = None
            self._start = 0.0

        def on_train_begin(self, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            values = {name: float(np.asarray(value)) for name, value in (logs or {}).items()}
            for name, function in (extra or {}).items():
                values[name] = float(function())
            values["seconds"] = time.perf_counter() - self._start
            for name, value in values.items():
                self.record.setdefault(name, []).append(value)
            loss = values.get("val_loss")
            if keep_best is not None and loss is not None and loss < self._best:
                self._best, self.best_epoch = loss, epoch + 1
                self._best_weights = [np.array(w) for w in keep_best.get_weights()]

        def restore_best(self) -> bool:
            """Puts back the best validation weights; True when they differ from the last epoch's."""
            epochs = len(self.record.get("seconds", ()))
            if self._best_weights is None or self.best_epoch == epochs:
                return False
            keep_best.set_weights(self._best_weights)
            return True

    return Recorder()
