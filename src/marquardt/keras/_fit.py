"""``marquardt.keras.fit``: train a Keras model with Levenberg-Marquardt in one call."""

from __future__ import annotations

import keras

from marquardt.keras._model import LMModel

__all__ = ["fit"]


def _compiled(model):
    """loss, metrics and loss_weights the model was compiled with (or Nones)."""
    if not getattr(model, "compiled", False):
        return None, None, None, None
    config = model.get_compile_config() or {}

    def get(key):
        value = config.get(key)
        return None if value is None else keras.saving.deserialize_keras_object(value)

    return get("loss"), get("metrics"), get("loss_weights"), get("weighted_metrics")


def fit(model, x=None, y=None, *, loss=None, epochs=100, batch_size="auto", validation_data=None,
        validation_split=0.0, callbacks=None, verbose="auto", sample_weight=None,
        class_weight=None, shuffle=True, residual=None, metrics=None, steps_per_epoch=None,
        validation_steps=None, validation_batch_size=None, validation_freq=1,
        initial_epoch=0, loss_weights=None, **lm_options) -> keras.callbacks.History:
    """Train ``model`` in place with Levenberg-Marquardt; returns Keras' ``History``.

    Args:
        model: a built Keras model. It holds the trained weights afterwards and saves and loads
            as a plain Keras model.
        x, y: training data (arrays, nested arrays, or a ``tf.data.Dataset`` in ``x``).
        loss: a loss with a least-squares form; ``None`` takes the loss ``model`` was compiled
            with (and its metrics and loss weights).
        epochs: LM iterations over the data (100; trainlm uses 1000).
        batch_size: ``"auto"`` (default): large array data (at least 8 batches of
            max(2·⌈P/k⌉, ⌈1000/k⌉) samples, P weights, k residuals per sample) start in such mini-batches
            and go full batch once an epoch does not lower the full-data loss; everything
            else, and MATLAB's ``trainlm``/``trainbr``, trains full batch
            (``docs/keras.md``, "Full batch and mini-batch"). ``"full"`` or ``None``: full
            batch, the classic LM setting. A number: mini-batch LM throughout.
        validation_data, validation_split, callbacks, verbose, sample_weight, class_weight,
        shuffle, steps_per_epoch, validation_steps, validation_batch_size, validation_freq,
        initial_epoch: as in ``keras.Model.fit`` (``steps_per_epoch`` bounds an epoch of a
        repeated dataset, ``ds.repeat()``).
        residual: a custom residual ``residual(model_fn, x, y) -> r`` instead of the loss.
        metrics: metrics to report (default: those ``model`` was compiled with).
        loss_weights: per-output loss weights of a multi-output model, as in
            ``keras.Model.compile`` (default: those ``model`` was compiled with, when its
            loss is used).
        **lm_options: ``options=`` (an ``LMOptions`` such as ``TRAINLM``) and/or its fields.

    After training, a ``model`` that was not compiled is compiled with ``loss`` and
    ``metrics`` (and Keras' default optimizer, as ``model.compile(loss=...)`` gives), so
    that ``model.evaluate`` works as after Keras' own ``fit``;
    a compiled model keeps its compilation.

    Raises:
        ValueError: as ``LMModel.fit``, and when there is no loss (not given, model not
            compiled) and no ``residual``.
        KeyboardInterrupt: raised again after Ctrl-C (or from a callback), as in Keras, once
            the model holds the best weights an ``EarlyStopping(restore_best_weights=True)``
            kept (in the mini-batch phase of ``batch_size="auto"``, the best epoch's where
            they were better than those at the interrupt; otherwise the last accepted ones).

    Example:
        >>> history = marquardt.keras.fit(net, x, y, loss="mse", epochs=200)
        >>> history.stop_reason
    """
    compiled_loss, compiled_metrics, compiled_weights, weighted = _compiled(model)
    if loss is None and residual is None:
        loss = compiled_loss
        if loss is None:
            raise ValueError(
                "`loss` must be given when `model` was not compiled with one (or pass "
                "`residual=`). Received: loss=None")
    if loss_weights is None and loss is compiled_loss:
        loss_weights = compiled_weights
    options = lm_options.pop("options", None)
    lm = LMModel(model, residual=residual, options=options, **lm_options)
    lm.compile(loss=loss, metrics=compiled_metrics if metrics is None else metrics,
               loss_weights=loss_weights,
               weighted_metrics=weighted if metrics is None else None)
    try:
        keras_options = {key: value for key, value in (
            ("steps_per_epoch", steps_per_epoch), ("validation_steps", validation_steps),
            ("validation_batch_size", validation_batch_size)) if value is not None}
        return lm.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=verbose,
                      callbacks=callbacks, validation_split=validation_split,
                      validation_data=validation_data, shuffle=shuffle,
                      class_weight=class_weight, sample_weight=sample_weight,
                      validation_freq=validation_freq, initial_epoch=initial_epoch,
                      **keras_options)
    finally:
        if not getattr(model, "compiled", False) and loss is not None:
            # evaluable as after Keras' fit. Keras' default optimizer: a model compiled with
            # none does not load back (Keras 3.15's compile_from_config builds it)
            model.compile(loss=loss, metrics=metrics, loss_weights=loss_weights)
            model.optimizer.build(model.trainable_variables)  # saved as it loads: no warning
