"""Mini-batch LM when a batch would have fewer residuals than weights, and the full-data loss.

With m residuals in a batch and P weights, m < P makes the batch's Gauss-Newton problem
underdetermined: the LM step (kernel form, δ = −Jᵀ(JJᵀ + λI)⁻¹r) fits that batch exactly as
λ falls, whatever it does to the other samples, and the next batch undoes it. Measured on a
2-10-1 network (41 weights, 200 samples, MSE loss, noise 0.1, 50 epochs): batch 1 left a
full-data MSE of 0.85 and max|w| = 1.1e4 while the batches' own logged loss was 3.8e-7;
batch 41 (m = P) ended at 0.0117, batch 82 at 0.0102, full batch at 0.0076.

So ``LMModel.fit`` on arrays raises a smaller ``batch_size`` to ``ceil(P / k)`` samples
(k residuals per sample), the smallest batch with m ≥ P, or to full batch when that covers the
data, with a ``UserWarning`` saying so. Input that batches itself (a dataset, a generator) is
not rebatched: its first batch is checked and a warning given. A custom ``residual=`` decides
its own residual count per batch (collocation points, penalties) and is left alone.

Mini-batch logs show each batch's loss, which an LM step on that batch has just lowered: a
model can diverge on the data as a whole while its logged loss falls. ``FullDataLoss`` adds
``full_loss`` to each epoch's logs, the Keras loss over all training rows at the epoch's final
weights (one forward pass, in chunks), so the divergence shows beside the batch loss.
"""

from __future__ import annotations

import math
import warnings

import keras

__all__ = ["safe_batch_size", "warn_small_batches", "FullDataLoss"]


def safe_batch_size(batch_size: int, n: int, k: int, p: int) -> int:
    """``batch_size`` raised so that a batch has at least ``p`` residuals (warns when raised)."""
    smallest = math.ceil(p / max(k, 1))
    if batch_size >= min(smallest, n):
        return batch_size
    new = min(smallest, n)
    warnings.warn(
        f"`batch_size` {batch_size} gives {batch_size * k} residuals per batch for {p} weights: "
        "an LM step would fit each batch exactly and diverge on the data as a whole. Raised to "
        f"{new} ({'full batch' if new == n else f'{new * k} residuals, at least one per weight'}"
        "). Received: batch_size=" + str(batch_size), UserWarning, stacklevel=3)
    return new


def warn_small_batches(rows: int, k: int, p: int) -> None:
    """A dataset's first batch of ``rows`` samples has fewer residuals than weights."""
    if rows * k < p:
        warnings.warn(
            f"The first batch of `x` has {rows} samples, {rows * k} residuals for {p} weights: "
            "an LM step fits such a batch exactly and can diverge on the data as a whole. "
            f"Batch at least {math.ceil(p / max(k, 1))} samples (watch `full_loss` or "
            "validation).", UserWarning, stacklevel=3)


class FullDataLoss(keras.callbacks.Callback):
    """Logs ``full_loss``: the training loss over all rows at the end of each epoch.

    Args:
        x, y, sample_weight: the training arrays (without the validation rows).
        loss_residual: the wrapper's ``(fn, per_batch_mean)`` residual form of the loss.
    """

    def __init__(self, x, y, sample_weight, loss_residual):
        super().__init__()
        from marquardt.keras import _backends

        self._full_loss = _backends.module("full_loss").FullLoss(x, y, sample_weight, *loss_residual)

    def full_loss(self) -> float:
        return self._full_loss(self.model.network)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["full_loss"] = self.full_loss()
