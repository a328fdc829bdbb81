"""Stopping like MATLAB's ``trainlm``, reported in words.

The compiled train step decides *whether* an LM iteration says stop (goal reached, gradient
below ``min_grad``, λ beyond its ceiling, non-finite start) and reports it as the
``lm_status`` log (a ``marquardt._status.Status`` code; ``RUNNING`` = -100 while training goes
on). Keras can only be stopped from Python, between steps, so ``LMStopping`` — a callback that
``LMModel.fit`` adds — reads that log, checks ``max_time``, sets ``model.stop_training`` and
records the reason. Validation failures (trainlm's ``max_fail``) are Keras'
``EarlyStopping``; the reason then names it.

The reason is stored as ``history.stop_reason`` (and ``model.stop_reason``), and logged with
the ``logging`` logger ``"marquardt"``.
"""

from __future__ import annotations

import logging
import math
import time

import keras

from marquardt._status import Status, status_message

__all__ = ["LMStopping", "final_reason"]

_LOG = logging.getLogger("marquardt")


def _detail(status: Status, logs: dict, options) -> str:
    loss = logs.get("loss", math.nan)
    if status == Status.GOAL:
        return f"loss {loss:.3g} <= goal {options.goal:.3g}"
    if status == Status.GTOL:
        return f"gradient norm {logs.get('grad_norm', math.nan):.3g} < min_grad {options.min_grad:.3g}"
    if status == Status.DAMPING_LIMIT:
        return (f"λ = {logs.get('lam', math.nan):.3g} after {int(logs.get('attempts', 0))} "
                "attempts, loss {:.3g}".format(loss))
    if status == Status.NON_FINITE:
        return f"loss {loss} at the current weights; they are kept as they are"
    return ""


class LMStopping(keras.callbacks.Callback):
    """Stops ``fit`` when the LM step reports a final status or ``max_time`` has passed.

    Args:
        options: the resolved ``LMOptions`` (for ``max_time`` and the thresholds in messages).
    """

    def __init__(self, options):
        super().__init__()
        self.options = options
        self.reason = None
        self.status = None
        self._start = None

    def on_train_begin(self, logs=None):
        self._start = time.monotonic()
        self.reason = None
        self.status = None

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        code = logs.get("lm_status")
        if code is not None and int(code) != int(Status.RUNNING):
            self.status = Status(int(code))
            self.reason = status_message(self.status, _detail(self.status, logs, self.options))
            self.model.stop_training = True
        elif time.monotonic() - self._start > self.options.max_time:
            self.reason = (f"The training time reached `max_time` "
                           f"({time.monotonic() - self._start:.3g} s > {self.options.max_time:.3g} s).")
            self.model.stop_training = True


def final_reason(stopper: LMStopping, callbacks, epochs_done: int, epochs: int,
                 interrupted: bool) -> str:
    """The sentence saying why ``fit`` returned."""
    if interrupted:
        return ("Interrupted (KeyboardInterrupt); the model holds the last accepted weights, "
                "the best on the batches seen.")
    if stopper.reason is not None:
        return stopper.reason
    for cb in callbacks or ():
        if isinstance(cb, keras.callbacks.EarlyStopping) and cb.stopped_epoch > 0:
            return (f"EarlyStopping: `{cb.monitor}` did not improve for {cb.patience} epochs "
                    f"(stopped at epoch {cb.stopped_epoch + 1}; trainlm's max_fail).")
        if isinstance(cb, keras.callbacks.TerminateOnNaN) and cb.model is not None and (
                cb.model.stop_training):
            return "TerminateOnNaN: a NaN loss was seen."
    if epochs_done >= epochs:
        return f"The maximum number of epochs ({epochs}) was reached."
    return "Stopped by a callback."


def log_reason(reason: str) -> None:
    _LOG.info("Levenberg-Marquardt training stopped: %s", reason)
