"""Keras losses as least-squares residuals.

Levenberg-Marquardt minimises a sum of squares. For each supported Keras loss we build
per-sample residuals ``r_i`` (shape ``(n, k)``) with

    ½‖r_i‖² = w_i ℓ_i,                                     (1)

where ℓ_i is the per-sample loss Keras computes (the mean over the last axis of the
elementwise loss) and w_i the sample weight (1 by default; class weights arrive as sample
weights). Keras' default reduction ``"sum_over_batch_size"`` gives the loss value

    L = (1/n) Σ_i w_i ℓ_i = ½ Σ_i ‖r_i / √n‖²,            (2)

so the trainer scales the residuals by 1/√n and the LM cost ½Σr² *is* the Keras loss value
(the tests check it against ``model.evaluate``). With ``reduction="sum"`` the 1/√n is dropped.

Elementwise losses of the error e = y_pred − y_true (k outputs per sample)::

    mean squared error   ℓ = (1/k) Σ e²          r = √(2w/k) · e
    mean absolute error  ℓ = (1/k) Σ |e|         r = √(2w/k) · e / √max(|e|, ε)
    Huber (δ)            ℓ = (1/k) Σ h_δ(e)      r = √(2w/k) · sign(e) √h_δ(e)

The square-root form t(e) = sign(e)√(elementwise loss) satisfies t² = loss exactly. For the
absolute error its derivative ½|e|^(-½) is infinite at e = 0; below ε it is replaced by
e/√ε (so t² = e²/ε ≤ |e|, the guard). The Huber form is smooth: t = e/√2 inside |e| ≤ δ
and t' = 1/√2 on both sides of δ.

Cross-entropies (binary, categorical, sparse categorical; logits or probabilities) are one
non-negative number per sample, computed by Keras' own functions so that clipping and label
smoothing match Keras exactly::

    r_i = √(2 w_i · max(ℓ_i, ε))

The floor ε only guards the derivative of √ℓ at ℓ = 0 (a perfectly fitted sample).

Multi-output models: each output's residuals are multiplied by √(loss weight) and the
blocks are concatenated, so ½Σr² = Σ_o λ_o L_o, Keras' total loss.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import keras
from keras import ops

__all__ = ["LossResiduals", "residuals_for_loss", "model_residuals", "loss_names",
           "SUPPORTED_LOSSES"]

#: Guard of the square-root forms (see the module docstring). Small against float32 losses
#: worth resolving, large enough that 1/√ε stays finite in float32.
EPSILON = 1e-12

_ALIASES = {
    "mse": "mean_squared_error",
    "mean_squared_error": "mean_squared_error",
    "meansquarederror": "mean_squared_error",
    "mae": "mean_absolute_error",
    "mean_absolute_error": "mean_absolute_error",
    "meanabsoluteerror": "mean_absolute_error",
    "huber": "huber",
    "huber_loss": "huber",
    "binary_crossentropy": "binary_crossentropy",
    "binarycrossentropy": "binary_crossentropy",
    "bce": "binary_crossentropy",
    "categorical_crossentropy": "categorical_crossentropy",
    "categoricalcrossentropy": "categorical_crossentropy",
    "cce": "categorical_crossentropy",
    "sparse_categorical_crossentropy": "sparse_categorical_crossentropy",
    "sparsecategoricalcrossentropy": "sparse_categorical_crossentropy",
}

#: Canonical names of the losses with a residual form.
SUPPORTED_LOSSES = tuple(sorted(set(_ALIASES.values())))


class LossResiduals(NamedTuple):
    """A Keras loss in residual form.

    Attributes:
        name: canonical loss name (one of ``SUPPORTED_LOSSES``).
        fn: ``fn(y_true, y_pred, sample_weight) -> r`` with r of shape ``(n, k)`` and
            ½‖r_i‖² = w_i ℓ_i (equation (1) of the module docstring).
        per_batch_mean: True for Keras' ``sum_over_batch_size`` reduction (the trainer
            divides the cost by n), False for ``sum``.
    """

    name: str
    fn: Callable[[Any, Any, Any], Any]
    per_batch_mean: bool


def _flat(x):
    """(n, k) view of a batch, keeping k static when the trailing shape is known."""
    x = ops.convert_to_tensor(x)
    if len(x.shape) == 1:
        return ops.expand_dims(x, -1)
    if len(x.shape) == 2:
        return x
    trailing = x.shape[1:]
    k = -1 if any(d is None for d in trailing) else int(math.prod(trailing))
    return ops.reshape(x, (ops.shape(x)[0], k))


def _weight_column(sample_weight, y_pred):
    """Sample weights as an (n, 1) column in the dtype of the predictions."""
    if sample_weight is None:
        return None
    w = ops.cast(sample_weight, y_pred.dtype)
    w = ops.reshape(w, (ops.shape(w)[0], -1))
    if w.shape[-1] not in (None, 1):
        # Per-element weights (temporal weighting): reduce to the per-sample mean, which is
        # what Keras' loss reduction does with them for per-sample losses.
        w = ops.mean(w, axis=-1, keepdims=True)
    return w


def _elementwise(transform):
    """Residuals √(2w/k) · t(e) for an elementwise loss with t(e)² = loss(e)."""

    def fn(y_true, y_pred, sample_weight):
        y_pred = _flat(y_pred)
        y_true = ops.cast(_flat(y_true), y_pred.dtype)
        k = y_pred.shape[-1]
        # √(2/k) made in the predictions' dtype: ops.cast of a Python float goes through
        # float32 and would round it (2e-8 relative, visible in float64 fits).
        factor = ops.convert_to_tensor((2.0 / k) ** 0.5, dtype=y_pred.dtype)
        r = transform(y_pred - y_true) * factor
        w = _weight_column(sample_weight, y_pred)
        return r if w is None else r * ops.sqrt(w)

    return fn


def _squared(e):
    return e


def _absolute(e):
    return e / ops.sqrt(ops.maximum(ops.abs(e), EPSILON))


def _huber(delta):
    def transform(e):
        a = ops.abs(e)
        inside = ops.less_equal(a, delta)
        # Evaluate each branch on safe arguments so that neither produces NaN gradients.
        outer = ops.sqrt(ops.maximum(delta * a - 0.5 * delta * delta, 0.5 * delta * delta))
        return ops.where(inside, e * (0.5**0.5), ops.sign(e) * outer)

    return transform


def _same_rank(t, p):
    """Targets and predictions brought to one rank as Keras' own loss wrapper does
    (``squeeze_or_expand_to_same_rank``): binary labels of shape (n,) for outputs (n, 1) get a
    trailing axis; a trailing axis of size 1 on one side only is dropped."""
    t_rank, p_rank = len(t.shape), len(p.shape)
    if t_rank == p_rank + 1 and t.shape[-1] == 1:
        t = ops.squeeze(t, -1)
    elif p_rank == t_rank + 1 and p.shape[-1] == 1:
        t = ops.expand_dims(t, -1)
    return t, p


def _cross_entropy(loss_fn):
    """``loss_fn(t, p)`` on targets cast to the predictions' dtype and brought to their rank."""

    def fn(t, p):
        t, p = _same_rank(ops.cast(t, p.dtype), p)
        return loss_fn(t, p)

    return fn


def _per_sample(loss_fn):
    """Residuals √(2 w ℓ) for a loss that gives one non-negative number per sample."""

    def fn(y_true, y_pred, sample_weight):
        ell = loss_fn(y_true, y_pred)
        ell = ops.reshape(ell, (ops.shape(ell)[0], -1))
        ell = ops.mean(ell, axis=-1, keepdims=True)
        w = _weight_column(sample_weight, ell)
        if w is not None:
            ell = ell * w
        return ops.sqrt(2.0 * ops.maximum(ell, EPSILON))

    return fn


def _describe(loss) -> tuple[str | None, dict]:
    """Canonical name and config of a loss given as a string, function or Loss object."""
    if isinstance(loss, str):
        key = loss.lower()
        return _ALIASES.get(key), {}
    if isinstance(loss, keras.losses.Loss):
        # Keras 3.15's Huber.get_config() omits `delta` and there is no public accessor; the
        # wrapped function's keyword arguments (LossFunctionWrapper's private `_fn_kwargs`) are
        # the authoritative values. If Keras renames that attribute, a Huber loss raises below
        # rather than silently training with delta = 1 (tests/keras/test_residuals.py checks it).
        config = {**loss.get_config(), **dict(getattr(loss, "_fn_kwargs", None) or {})}
        if isinstance(loss, keras.losses.Huber) and "delta" not in config:
            raise ValueError(
                "`loss` is a keras.losses.Huber whose `delta` cannot be read in this Keras "
                f"version ({keras.__version__}); pass `residual=` instead. Received: "
                f"loss={loss!r}")
        for key in (type(loss).__name__.lower(), getattr(loss, "fn", None).__name__
                    if hasattr(getattr(loss, "fn", None), "__name__") else ""):
            if key and key.lower() in _ALIASES:
                return _ALIASES[key.lower()], config
        return None, config
    name = getattr(loss, "__name__", None)
    if name is not None:
        return _ALIASES.get(name.lower()), {}
    return None, {}


def residuals_for_loss(loss) -> LossResiduals:
    """The residual form of a Keras loss.

    Args:
        loss: a loss name (``"mse"``, ``"huber"``...), a Keras loss function
            (``keras.losses.mean_squared_error``) or a ``keras.losses.Loss`` instance
            (its ``from_logits``, ``delta``, ``label_smoothing`` are honoured).

    Returns:
        A ``LossResiduals`` record.

    Raises:
        ValueError: the loss has no residual form, or its reduction is not
            ``"sum_over_batch_size"`` or ``"sum"``. The message lists the supported losses.

    Example:
        >>> res = residuals_for_loss("mse")
        >>> r = res.fn(np.zeros((4, 1)), np.ones((4, 1)), None)   # √2 each
    """
    name, config = _describe(loss)
    if name is None:
        raise ValueError(
            "`loss` must be one of the losses with a least-squares form: "
            f"{', '.join(SUPPORTED_LOSSES)} (as a name, function or keras.losses.Loss), or "
            "pass `residual=` for a custom residual function. Received: loss="
            f"{loss!r}"
        )
    reduction = config.get("reduction", "sum_over_batch_size")
    if reduction not in ("sum_over_batch_size", "sum"):
        raise ValueError(
            "`loss.reduction` must be 'sum_over_batch_size' or 'sum' for Levenberg-Marquardt "
            f"training. Received: reduction={reduction!r}"
        )
    from_logits = bool(config.get("from_logits", False))
    smoothing = float(config.get("label_smoothing", 0.0) or 0.0)
    if name == "mean_squared_error":
        fn = _elementwise(_squared)
    elif name == "mean_absolute_error":
        fn = _elementwise(_absolute)
    elif name == "huber":
        fn = _elementwise(_huber(float(config.get("delta", 1.0))))
    elif name == "binary_crossentropy":
        fn = _per_sample(_cross_entropy(lambda t, p: keras.losses.binary_crossentropy(
            t, p, from_logits=from_logits, label_smoothing=smoothing)))
    elif name == "categorical_crossentropy":
        fn = _per_sample(_cross_entropy(lambda t, p: keras.losses.categorical_crossentropy(
            t, p, from_logits=from_logits, label_smoothing=smoothing)))
    else:
        fn = _per_sample(lambda t, p: keras.losses.sparse_categorical_crossentropy(
            t, p, from_logits=from_logits))
    return LossResiduals(name=name, fn=fn, per_batch_mean=reduction == "sum_over_batch_size")


def _per_output(value, names, what):
    """``value`` (single, list or dict keyed by output name) as one entry per output."""
    if isinstance(value, dict):
        missing = [n for n in names if n not in value]
        if missing:
            raise ValueError(
                f"`{what}` must have an entry for every model output {names}. "
                f"Received: {what}={value!r} (missing {missing})"
            )
        return [value[n] for n in names]
    if isinstance(value, (list, tuple)):
        if len(value) != len(names):
            raise ValueError(
                f"`{what}` must have one entry per model output ({len(names)}: {names}). "
                f"Received: {what}={value!r}"
            )
        return list(value)
    return [value] * len(names)


def loss_names(loss, output_names) -> list[str]:
    """The canonical name of each output's loss (``"mean_squared_error"``, ...), in the
    order of ``output_names``: what ``_validation.check_targets`` checks the targets for."""
    names = list(output_names)
    return [residuals_for_loss(item).name for item in _per_output(loss, names, "loss")]


def model_residuals(loss, loss_weights, output_names):
    """Residual function of a (possibly multi-output) model compiled with ``loss``.

    Args:
        loss: one loss for every output, a list, or a dict keyed by output name.
        loss_weights: ``None``, a list, or a dict keyed by output name (Keras' meaning).
        output_names: the model's output names (one entry for a single-output model).

    Returns:
        ``(fn, per_batch_mean)`` where ``fn(y_true, y_pred, sample_weight)`` gives the
        concatenated ``(n, k)`` residuals, each output's block scaled by √(loss weight).
    """
    names = list(output_names)
    losses = [residuals_for_loss(item) for item in _per_output(loss, names, "loss")]
    weights = [1.0] * len(names) if loss_weights is None else [
        float(w) for w in _per_output(loss_weights, names, "loss_weights")]
    means = {item.per_batch_mean for item in losses}
    if len(means) > 1:
        raise ValueError(
            "`loss` reductions must be all 'sum_over_batch_size' or all 'sum' across outputs. "
            f"Received: loss={loss!r}"
        )
    if len(names) == 1:
        single, scale = losses[0].fn, weights[0] ** 0.5

        def fn(y_true, y_pred, sample_weight):
            y_true = y_true[0] if isinstance(y_true, (list, tuple)) else y_true
            y_pred = y_pred[0] if isinstance(y_pred, (list, tuple)) else y_pred
            r = single(y_true, y_pred, sample_weight)
            return r if scale == 1.0 else r * scale

        return fn, means.pop()

    def fn(y_true, y_pred, sample_weight):
        y_true = _per_output(y_true, names, "y")
        y_pred = _per_output(y_pred, names, "y_pred")
        sws = (_per_output(sample_weight, names, "sample_weight")
               if isinstance(sample_weight, (list, tuple, dict)) else [sample_weight] * len(names))
        blocks = []
        for item, w, t, p, sw in zip(losses, weights, y_true, y_pred, sws):
            if w != 0.0:
                blocks.append(item.fn(t, p, sw) * (w ** 0.5))
        return ops.concatenate(blocks, axis=-1)

    return fn, means.pop()
