"""The batch policy of ``fit``: ``batch_size="auto"`` (default), ``"full"``/``None``, a number.

``"auto"`` trains in mini-batches while they make fast progress on the whole data and then in
full batch, where LM's gain ratio is exact:

1. *Which data start in mini-batches.* Array input to a plain LM fit (Nielsen damping, no
   Bayesian regularisation, no custom residual, one replica) with at least ``MIN_BATCHES``
   mini-batches of b = max(``BATCH_FACTOR`` · ⌈P/k⌉, ⌈``MIN_BATCH_RESIDUALS``/k⌉) samples (P
   weights, k residuals per sample), i.e. n·k ≥ max(16·P, 8,000) residuals. The n rows are
   cut into c = ⌊n/b⌋ equal batches of ⌊n/c⌋ ≥ b
   samples (1,000 on the README's sinc problem), so the step is traced for one batch shape;
   on TensorFlow the fewer than c rows left over are left out of each pass, a different few
   each pass since the rows are reshuffled (where Keras' own array adapter batches them, on
   JAX, the same few rows are left out of every mini-batch pass; full batch sees them).
   Everything else trains full batch from the start, as before: small data, MATLAB's
   ``trainlm``/``trainbr`` (damping ``"trainlm"``, which is full-batch by definition), Bayesian
   regularisation, a dataset or generator (it batches itself).
2. *When it switches.* After an epoch (a pass over the data) whose full-data loss
   (``full_loss``, all training rows at the epoch's final weights) is not below the best
   full-data loss of the earlier epochs, or in which every batch hit the damping limit. The
   model then gets the weights of the best epoch back (the non-improving epoch is dropped),
   and every later epoch is one full-batch LM iteration. The switch is one way.
3. *What the logs show.* ``history.history["batch_size"]`` has the batch size of each epoch,
   and the ``"marquardt"`` logger says when and why the switch happened.

Why b = 2 · ⌈P/k⌉ and 8 batches per pass: below P residuals a batch's Gauss-Newton problem is
underdetermined (``_minibatch``); above it, a batch's JᵀJ is a better estimate of the full one
the more rows it has, while each step still costs a P × P factorisation. Measured on the
README's sinc(10x) problem (1-20-20-1 tanh, P = 481, 20,000 points, one seed, time to
full-data MSE 1e-4 / 1e-7 on the shared 2-core machine): b = P: 6.6 s / 18.7 s, 2P: 7.5 s /
12.1 s, 4P: 5.2 s / 8.0 s, 8P: 7.6 s / 16.9 s, full batch: 18.5 s / not within 30 s. That
busy machine could not separate 2P from 4P; on the quiet machine (three seeds each, medians,
torch-levenberg-marquardt in the same runs, 2026-12-03) 2P (batches of 1,000) reached 1e-4 /
1e-7 in 3.4 s / 12.9 s and 4P (2,000) in 4.6 s / 15.2 s: 2P is the default.
With fewer than 8 batches per pass a mini-batch epoch makes few updates for the cost of about
one full-batch iteration, and the switch criterion (one value per epoch) would react late.
"""

from __future__ import annotations

import logging
import math
from typing import NamedTuple

import keras
import numpy as np

__all__ = ["AUTO", "FULL", "BATCH_FACTOR", "MIN_BATCHES", "MIN_BATCH_RESIDUALS", "BatchPlan",
           "check_batch_size",
           "plan_batches", "BatchPolicy", "PhasedCallbacks"]

AUTO = "auto"
FULL = "full"
#: mini-batch size of ``"auto"`` in units of ⌈P/k⌉ samples (P/k: one residual per weight)
BATCH_FACTOR = 2
#: ``"auto"`` starts in mini-batches only when a pass over the data holds this many
MIN_BATCHES = 8
#: the fewest residuals in an ``"auto"`` mini-batch: below this a step's fixed cost (Keras'
#: per-step dispatch, the P × P factorisation) outweighs its Jacobian work, so a small model
#: (P = 3 on 400 rows would get 66 batches of 6 rows) trains full batch; 1,000 is also the batch
#: of the peers' own examples (tf- and torch-levenberg-marquardt)
MIN_BATCH_RESIDUALS = 1000

_LOG = logging.getLogger("marquardt")


class BatchPlan(NamedTuple):
    """How ``fit`` batches array input.

    Attributes:
        batch_size: samples per batch of the first phase; None for full batch.
        auto: True when the first phase is mini-batch and switches to full batch.
        why_full: for ``"auto"`` resolved to full batch, the reason in words (else "").
    """

    batch_size: int | None
    auto: bool
    why_full: str = ""


def check_batch_size(batch_size):
    """``batch_size`` as given to ``fit``: ``"auto"``, ``"full"`` (or None), or an int ≥ 1.

    Raises:
        TypeError, ValueError: anything else, naming ``batch_size``.
    """
    if batch_size is None or batch_size == FULL:
        return FULL
    if isinstance(batch_size, str):
        if batch_size == AUTO:
            return AUTO
        raise ValueError("`batch_size` must be 'auto', 'full', None or a positive integer. "
                         f"Received: batch_size={batch_size!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise TypeError("`batch_size` must be 'auto', 'full', None or a positive integer. "
                        f"Received: batch_size={batch_size!r}")
    if batch_size < 1:
        raise ValueError("`batch_size` must be 'auto', 'full', None or a positive integer. "
                         f"Received: batch_size={batch_size!r}")
    return int(batch_size)


def auto_batch_size(p: int, k: int) -> int:
    """The mini-batch size of ``"auto"``: ``BATCH_FACTOR`` · ⌈P/k⌉ samples, and at least
    ``MIN_BATCH_RESIDUALS`` residuals (⌈1000/k⌉ samples)."""
    k = max(k, 1)
    return max(BATCH_FACTOR * math.ceil(p / k), math.ceil(MIN_BATCH_RESIDUALS / k))


def plan_batches(batch_size, *, rows: int | None, k: int | None, p: int,
                 full_only: str = "") -> BatchPlan:
    """The ``BatchPlan`` of a checked ``batch_size`` (``check_batch_size``).

    Args:
        rows: training rows of array input (None for a dataset or generator).
        k: residuals per sample (None when unknown: a custom residual).
        p: trainable weights.
        full_only: why the options need full batch (trainlm, trainbr, several replicas); "" if
            they do not.
    """
    if batch_size == FULL:
        return BatchPlan(None, False)
    if batch_size != AUTO:
        return BatchPlan(batch_size, False)
    if full_only:
        return BatchPlan(None, False, full_only)
    if rows is None or k is None:
        return BatchPlan(None, False, "the input is not arrays with a Keras loss")
    b = auto_batch_size(p, k)
    count = rows // b
    if count < MIN_BATCHES:
        return BatchPlan(None, False, f"{rows} rows are fewer than {MIN_BATCHES} batches of "
                         f"{b} (max({BATCH_FACTOR}·⌈P/k⌉, ⌈{MIN_BATCH_RESIDUALS}/k⌉), "
                         f"P = {p}, k = {k})")
    # `count` equal batches: one traced shape; the fewer than `count` rows left over are
    # dropped from each pass (a different few every pass, the rows being reshuffled)
    return BatchPlan(rows // count, True)


class BatchPolicy(keras.callbacks.Callback):
    """Records each epoch's batch size and, for ``"auto"``, decides the switch to full batch.

    Placed last among ``fit``'s callbacks, so that a stop asked for by any other callback (or
    by ``LMStopping``) in the same epoch wins over the switch.

    Args:
        batch_size: the samples per batch of the first phase.
        rows: the training rows (the full batch).
        auto: whether to switch to full batch (``"auto"``).
        restore: whether to give the model its best-epoch weights back when the run ends in
            the mini-batch phase (False when an ``EarlyStopping`` restores weights itself).

    Attributes:
        sizes: the batch size of each epoch.
        switch_epoch: the epoch after which training went full batch (None before).
        reason: why it switched, in words.
    """

    def __init__(self, batch_size: int, rows: int, *, auto: bool, restore: bool = True):
        super().__init__()
        self.rows = rows
        self.current = min(batch_size, rows)
        self.auto = auto
        self.restore = restore
        self.sizes: list[int] = []
        self.switch_epoch = None
        self.reason = ""
        self.pending = ""  # a switch asked for during this epoch (the damping limit)
        self.continues = False  # the switch ends this phase and training goes on
        self._best = math.inf
        self._best_epoch = None
        self._best_weights = None
        self._last = math.inf

    @property
    def mini(self) -> bool:
        """True while in the mini-batch phase of ``"auto"``."""
        return self.auto and self.switch_epoch is None

    def request(self, why: str) -> None:
        """Ask for the switch at the end of this epoch (``LMStopping``: every batch of the
        epoch hit the damping limit)."""
        self.pending = why

    def on_epoch_begin(self, epoch, logs=None):
        self.pending = ""
        self.continues = False

    def on_epoch_end(self, epoch, logs=None):
        self.sizes.append(self.current)
        if not self.mini:
            return
        full = math.inf if logs is None else float(logs.get("full_loss", math.nan))
        self._last = full
        why = self.pending
        if not why and not full < self._best:
            why = (f"the full-data loss {full:.4g} of epoch {epoch + 1} is not below the best, "
                   f"{self._best:.4g}")
        if full < self._best:
            self._best = full
            self._best_epoch = epoch
            self._best_weights = [keras.ops.convert_to_numpy(v)
                                  for v in self.model.network.trainable_variables]
        if not why or self.model.stop_training:  # no switch, or another callback stopped
            return
        self.switch_epoch = epoch
        self.reason = why
        self.current = self.rows
        self._restore_best()
        self.continues = epoch + 1 < self.params.get("epochs", epoch + 1)
        if self.continues:
            self.model.stop_training = True  # ends the mini-batch phase; fit goes on
        _LOG.info("batch_size='auto': %s; the weights of the best epoch are restored and "
                  "training continues in full batch (%d rows).", why, self.rows)

    def on_train_end(self, logs=None):
        if self.mini and self.restore and self._last > self._best:
            self._restore_best()
            _LOG.info("batch_size='auto': training ended in the mini-batch phase; the weights "
                      "of the best epoch (full-data loss %.4g) are restored.", self._best)

    def restore_after_interrupt(self, full_loss) -> str | None:
        """After an interrupt in the mini-batch phase (which skips ``on_train_end``): the
        weights of the best epoch when those at the interrupt have a higher full-data loss
        (``full_loss()``, one forward pass over the training rows), as at a normal end.

        Returns:
            a phrase naming the weights restored, or None when nothing was restored.
        """
        if not (self.mini and self.restore) or self._best_weights is None:
            return None
        now = float(full_loss())
        if now <= self._best:  # False for a NaN at the interrupt: restored
            return None
        self._restore_best()
        return (f"the weights of epoch {self._best_epoch + 1}, the best full-data loss "
                f"({self._best:.6g}; {now:.6g} at the interrupt), restored by batch_size='auto'")

    def _restore_best(self):
        if self._best_weights is None:
            return
        for v, w in zip(self.model.network.trainable_variables, self._best_weights):
            v.assign(w)


class PhasedCallbacks(keras.callbacks.CallbackList):
    """Keras' ``CallbackList`` for a run in two ``fit`` phases (mini-batch, then full batch):
    the callbacks see one training run, ``on_train_begin`` once and ``on_train_end`` once,
    with the epochs numbered on."""

    def __init__(self, callbacks, policy: BatchPolicy, **kwargs):
        super().__init__(callbacks, **kwargs)
        self._policy = policy
        self._begun = False

    def on_train_begin(self, logs=None):
        if self._begun:
            return
        self._begun = True
        super().on_train_begin(logs)

    def on_train_end(self, logs=None):
        if self._policy.continues:
            return
        super().on_train_end(logs)
