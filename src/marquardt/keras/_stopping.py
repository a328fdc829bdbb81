"""Stopping like MATLAB's ``trainlm``, reported in words.

The compiled train step decides *whether* an LM iteration says stop (goal reached, gradient
below ``min_grad``, λ beyond its ceiling, non-finite start) and reports it as the
``lm_status`` log (a ``marquardt._status.Status`` code; ``RUNNING`` = -100 while training goes
on). Keras can only be stopped from Python, between steps, so ``LMStopping`` — a callback that
``LMModel.fit`` adds — reads that log, checks ``max_time``, sets ``model.stop_training`` and
records the reason. Validation failures (trainlm's ``max_fail``) are Keras'
``EarlyStopping``; the reason then names it.

A batch whose iteration drives λ past its ceiling keeps the weights it started from, and the
step resets λ to its initial value for the next batch. The run stops for the damping limit at
the end of an epoch in which *every* batch hit it (no step was accepted in a whole pass over
the data). In full-batch training (the classic LM setting) an epoch is one batch, so that is
trainlm's rule, stop when μ passes ``mu_max``; in mini-batch training one unlucky batch does not
stop the run. The rule counts the batches each epoch actually had, so it needs no guess about
the input (a generator or a dataset of unknown length is handled like arrays).

``lm_status`` is taken out of the logs that the progress bar prints (a bare number means
nothing there); ``LMModel.fit`` puts the per-epoch codes back into ``history.history``.

The reason is stored as ``history.stop_reason`` (and ``model.stop_reason``), and logged with
the ``logging`` logger ``"marquardt"``.
"""

from __future__ import annotations

import logging
import math
import time

import keras

from marquardt._status import Status, status_message

__all__ = ["LMStopping", "final_reason", "restore_best_weights", "log_reason"]

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

    Attributes:
        codes: the ``lm_status`` code of the last batch of each epoch.
    """

    def __init__(self, options):
        super().__init__()
        self.options = options
        self.reason = None
        self.status = None
        self.codes = []
        self._start = None
        self._last = int(Status.RUNNING)
        self._limited = 0
        self._batches = 0
        self._limit_logs = None
        #: the ``_batching.BatchPolicy`` of ``batch_size="auto"`` (None otherwise): in its
        #: mini-batch phase an epoch of damping-limited batches switches to full batch
        self.policy = None

    def on_train_begin(self, logs=None):
        self._start = time.monotonic()
        self.reason = None
        self.status = None
        self.codes = []

    def on_epoch_begin(self, epoch, logs=None):
        self._limited = 0
        self._batches = 0

    def _stop(self, status, logs):
        self.status = status
        self.reason = status_message(status, _detail(status, logs, self.options))
        self.model.stop_training = True

    def on_train_batch_end(self, batch, logs=None):
        logs = logs if logs is not None else {}
        code = logs.pop("lm_status", None)
        self._batches += 1
        if code is not None:
            self._last = int(code)
        if code is not None and int(code) in (int(Status.DAMPING_LIMIT), int(Status.STALLED)):
            self._limited += 1  # decided at the end of the epoch: λ is reset for the next batch
            self._limit_logs = dict(logs)
        elif code is not None and int(code) != int(Status.RUNNING):
            self._stop(Status(int(code)), logs)
        if self.reason is None and time.monotonic() - self._start > self.options.max_time:
            self.reason = (f"The training time reached `max_time` "
                           f"({time.monotonic() - self._start:.3g} s > {self.options.max_time:.3g} s).")
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.pop("lm_status", None)
        self.codes.append(self._last)
        if self.reason is None and self._batches > 0 and self._limited == self._batches:
            if self.policy is not None and self.policy.mini:
                # batch_size="auto": go on in full batch instead (``_batching``)
                self.policy.request(f"every batch of epoch {epoch + 1} hit the damping limit")
                return
            self._stop(Status.DAMPING_LIMIT, self._limit_logs or logs or {})
            if self._batches > 1:
                self.reason += f" Every batch of epoch {epoch + 1} hit the damping limit."


def restore_best_weights(model, callbacks) -> str | None:
    """After an interrupt: the weights an ``EarlyStopping(restore_best_weights=True)`` kept.

    Keras restores them in ``on_train_end``, which an interrupt skips. Returns a phrase naming
    what was restored, or ``None`` when no callback holds best weights.
    """
    for cb in callbacks or ():
        if (isinstance(cb, keras.callbacks.EarlyStopping) and cb.restore_best_weights
                and cb.best_weights is not None):
            model.set_weights(cb.best_weights)
            return (f"the weights of epoch {cb.best_epoch + 1}, the best `{cb.monitor}` "
                    f"({cb.best:.6g}), restored from EarlyStopping")
    return None


def final_reason(stopper: LMStopping, callbacks, epochs_done: int, epochs: int,
                 interrupted: str | None = None) -> str:
    """The sentence saying why ``fit`` returned (or, with ``interrupted``, why it raised:
    ``"last"`` or the phrase of ``restore_best_weights``)."""
    if interrupted:
        held = ("the last accepted weights" if interrupted == "last" else interrupted)
        return (f"Interrupted (KeyboardInterrupt) after {epochs_done} epoch(s); the model "
                f"holds {held}. The interrupt is raised again, as in Keras.")
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
