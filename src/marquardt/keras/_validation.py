"""Front-door checks of ``LMModel.fit``: everything wrong with the input fails before training.

Checked: trainable weights exist; ``x``, ``y``, ``sample_weight`` hold only finite numbers
(NumPy-like input; for a ``tf.data.Dataset`` the first batch); ``y`` matches the model's
outputs; the loss at the starting weights is finite; the model adds no regularisation
losses (``model.losses``), which the residual form does not include. Layers whose weights
get no gradient are found when the step is traced (``keras_jacobian``).

For a ``tf.data.Dataset`` only the first batch is checked here; a later batch with NaN or Inf
gives a non-finite cost, which the compiled step detects on every batch (``lm_status``
``NON_FINITE``): training stops at that batch, keeping the last accepted weights, and
``history.stop_reason`` says so.
"""

from __future__ import annotations

import numpy as np
import keras
from keras import ops

from marquardt._checks import check_finite

__all__ = ["check_trainable", "check_arrays", "check_cardinality", "check_validation_data",
           "check_callbacks", "first_batch", "check_start", "check_no_penalties"]

#: Samples used for the start-point checks (enough to see a NaN weight or a log(0)).
_PROBE = 4096


def check_trainable(net) -> None:
    if not net.built:
        raise ValueError(
            "`model` must be built for Levenberg-Marquardt training: give it a `keras.Input` "
            "or call it on a batch, or train it on arrays or a tf.data.Dataset, which build it. "
            f"Received: model={net.name!r}, not built")
    if not net.trainable_weights:
        raise ValueError(
            "`model` must have trainable weights for Levenberg-Marquardt training. Received: "
            f"model={net.name!r} with 0 trainable weights (are all layers frozen?)"
        )


def _numeric(value):
    return isinstance(value, np.ndarray) or hasattr(value, "numpy") and hasattr(value, "shape")


def check_arrays(x, y, sample_weight) -> None:
    """NaN or Inf in ``x``, ``y`` or ``sample_weight`` (any nesting of arrays), and arrays of
    different lengths (Keras' "Data cardinality is ambiguous")."""
    check_cardinality(x, y, sample_weight)
    for name, value in (("x", x), ("y", y), ("sample_weight", sample_weight)):
        if value is None:
            continue
        leaves = keras.tree.flatten(value)
        for i, leaf in enumerate(leaves):
            if not _numeric(leaf):
                continue
            arr = np.asarray(leaf)
            if arr.dtype.kind in "fc":
                check_finite(arr, name if len(leaves) == 1 else f"{name}[{i}]")
        if name == "sample_weight":
            for leaf in leaves:
                if _numeric(leaf) and np.any(np.asarray(leaf) < 0):
                    raise ValueError(
                        "`sample_weight` must be non-negative. Received: sample_weight with "
                        f"minimum {np.min(np.asarray(leaf))!r}"
                    )


def check_cardinality(x, y, sample_weight, where: str = "") -> None:
    """The arrays of ``x``, ``y`` and ``sample_weight`` hold the same number of samples.

    Args:
        where: ``""`` for the training data, ``"validation_data"`` for its tuple.

    Raises:
        ValueError: as Keras' array adapter does, with the sizes of each argument's arrays
            (without this check a short ``sample_weight`` failed inside TensorFlow with an
            ``InvalidArgumentError`` of incompatible shapes, and validation arrays of
            different lengths in the compiled loss).
    """
    sizes = {}
    for name, value in (("x", x), ("y", y), ("sample_weight", sample_weight)):
        if value is None:
            continue
        rows = [int(leaf.shape[0]) for leaf in keras.tree.flatten(value)
                if _numeric(leaf) and len(leaf.shape) > 0]
        if rows:
            sizes[name] = rows
    if len({n for rows in sizes.values() for n in rows}) > 1:
        what = (f"`{where}` (x, y and sample_weight)" if where
                else "`x`, `y` and `sample_weight`")
        raise ValueError(
            f"Data cardinality is ambiguous: {what} must have the same number of samples. "
            f"Received: {where + ' ' if where else ''}" + ", ".join(
                f"{name} sizes {', '.join(map(str, rows))}" for name, rows in sizes.items()))


def check_validation_data(validation_data) -> None:
    """A ``validation_data`` tuple ``(x, y[, sample_weight])`` of arrays of one length."""
    if isinstance(validation_data, (tuple, list)) and 2 <= len(validation_data) <= 3:
        check_cardinality(*validation_data, *([None] * (3 - len(validation_data))),
                          where="validation_data")


#: Keras callbacks that set the optimizer's learning rate, which LM does not have.
_LEARNING_RATE_CALLBACKS = ("ReduceLROnPlateau", "LearningRateScheduler")


def check_callbacks(callbacks) -> None:
    """Refuses callbacks that drive an optimizer's learning rate: LM has no optimizer (λ is
    adapted by the step itself, every iteration). Keras' ``ReduceLROnPlateau`` failed with an
    ``AttributeError`` on ``model.optimizer`` after its first plateau, mid-training."""
    for cb in callbacks or ():
        names = [cls.__name__ for cls in type(cb).__mro__
                 if cls.__module__.startswith("keras")]
        found = [name for name in _LEARNING_RATE_CALLBACKS if name in names]
        if found:
            raise ValueError(
                f"`callbacks` must not include {found[0]}: Levenberg-Marquardt has no "
                "optimizer and no learning rate to change (its damping λ is adapted every "
                "iteration; the options `damping`, `goal`, `min_grad` and `max_time` and an "
                f"EarlyStopping control training). Received: callbacks containing {cb!r}")


def first_batch(x, y, sample_weight):
    """A probe batch (≤ 4096 samples) from arrays or the first element of a dataset."""
    if hasattr(x, "element_spec"):  # a tf.data.Dataset (TensorFlow is imported already)
        for element in x.take(1):
            return keras.utils.unpack_x_y_sample_weight(element)
        raise ValueError("`x` must not be an empty dataset. Received: x=<empty Dataset>")
    if not all(_numeric(leaf) for leaf in keras.tree.flatten(x)):
        return None  # a generator or PyDataset: checked by the step itself

    def head(v):
        return None if v is None else keras.tree.map_structure(lambda t: t[:_PROBE], v)

    return head(x), head(y), head(sample_weight)


def _shape_error(y, y_pred, loss_name):
    raise ValueError(
        f"`y` must match the model's outputs for the {loss_name} loss. Received: y with "
        f"shape {tuple(y.shape)} for outputs of shape {tuple(y_pred.shape)}"
    )


def check_targets(y, y_pred, loss_names) -> None:
    """Shapes of targets against predictions, per output."""
    ys = keras.tree.flatten(y)
    ps = keras.tree.flatten(y_pred)
    if len(ys) != len(ps):
        raise ValueError(
            f"`y` must have one target per model output ({len(ps)}). Received: y with "
            f"{len(ys)} array(s)"
        )
    for t, p, name in zip(ys, ps, loss_names):
        t_shape, p_shape = tuple(ops.shape(t)), tuple(ops.shape(p))
        if t_shape[0] != p_shape[0]:
            _shape_error(t, p, name)
        if name == "sparse_categorical_crossentropy":
            if int(np.prod(t_shape[1:])) != 1:
                _shape_error(t, p, name)
        elif int(np.prod(t_shape[1:])) != int(np.prod(p_shape[1:])):
            _shape_error(t, p, name)


def check_start(cost) -> None:
    value = float(cost)
    if not np.isfinite(value):
        raise ValueError(
            "The loss at the starting weights must be finite. Received: loss="
            f"{value!r} (check the initial weights, and for cross-entropy on probabilities "
            "the range of the predictions)"
        )


def check_no_penalties(net) -> None:
    """Regularisation losses (``kernel_regularizer``, ``activity_regularizer``, ``add_loss``):
    LM minimises ½‖r‖² of the Keras loss only, so rather than ignore them silently, refuse."""
    if net.losses:
        raise ValueError(
            "`model` must not add regularisation losses for Levenberg-Marquardt training: the "
            "LM cost is the compiled loss only, and penalties would be silently ignored. Remove "
            "`kernel_regularizer`/`bias_regularizer`/`activity_regularizer` and `add_loss`, or "
            "write the penalty as extra residuals with `residual=` (e.g. √c·w for an L2 "
            f"penalty c‖w‖²). Received: model with {len(net.losses)} regularisation loss(es)"
        )


def check_distributed(strategy_name: str, replicas: int, *, per_sample: bool, bayes: bool,
                      kernel) -> None:
    """Refuses what data-parallel LM (``docs/distributed.md``) cannot split over ``replicas``
    replicas: it adds the shards' normal equations, which is exact only when each residual
    depends on its own sample (per-sample Jacobian), and keeps no m × P Jacobian (no kernel
    form). Bayesian regularisation counts the errors of one replica's shard, so it is refused
    too."""
    where = f"under {strategy_name} with {replicas} replicas"
    if bayes:
        raise ValueError(
            "Bayesian regularisation (`regularization='bayesian'`, TRAINBR) is not supported "
            "under tf.distribute: its α, β updates would count one replica's errors. "
            f"Received: regularization='bayesian' {where}")
    if kernel is True:
        raise ValueError(
            "`kernel` must be False or 'auto' under tf.distribute: the kernel form needs the "
            f"whole Jacobian on one device. Received: kernel=True {where}")
    if not per_sample:
        raise ValueError(
            "Data-parallel LM needs residuals that depend on their own sample only (the "
            "replicas add their shards' JᵀJ and Jᵀr): layers that couple samples in training "
            "mode (batch normalisation with `training=True`), `jacobian='full'`, or a custom "
            "`residual=` without `jacobian='per_sample'` are refused. Received: "
            f"a full-Jacobian step {where}")



def check_even_split(first_batch: int, replicas: int) -> None:
    """Under tf.distribute a batch that does not split evenly over the replicas reaches the
    step with its static shapes lost (TensorFlow's rebatching), which the LM step needs (the
    residuals per sample, k): the first batch (the whole training set in full-batch LM) must
    be a multiple of the replicas."""
    if replicas > 1 and first_batch % replicas:
        raise ValueError(
            f"The batch of {first_batch} samples must split evenly over the {replicas} "
            "replicas of the tf.distribute strategy (an uneven split loses the batch's static "
            "shapes): drop or add samples, or pass `batch_size` a multiple of "
            f"{replicas}. Received: a batch of {first_batch} samples on {replicas} replicas")
