"""½Σr²/n of each residual form equals the Keras loss value."""

import keras
import numpy as np
import pytest

from marquardt.keras import SUPPORTED_LOSSES, residuals_for_loss
from marquardt.keras._residuals import model_residuals

rng = np.random.default_rng(1)
N = 16
Y_REG = rng.normal(size=(N, 3)).astype("float32")
P_REG = (Y_REG + rng.normal(scale=2.0, size=(N, 3))).astype("float32")
P_REG[0, 0] = Y_REG[0, 0]  # an exact zero error: the guards at e = 0
LOGITS = rng.normal(size=(N, 4)).astype("float32")
PROBS = keras.ops.convert_to_numpy(keras.ops.softmax(LOGITS))
LABELS = rng.integers(0, 4, size=(N,))
ONEHOT = np.eye(4, dtype="float32")[LABELS]
BIN_Y = rng.integers(0, 2, size=(N, 1)).astype("float32")
BIN_LOGIT = rng.normal(size=(N, 1)).astype("float32")
W = rng.uniform(0.0, 3.0, size=(N,)).astype("float32")

CASES = [
    (keras.losses.MeanSquaredError(), Y_REG, P_REG),
    ("mse", Y_REG, P_REG),
    (keras.losses.mean_squared_error, Y_REG, P_REG),
    (keras.losses.MeanAbsoluteError(), Y_REG, P_REG),
    (keras.losses.Huber(delta=0.7), Y_REG, P_REG),
    (keras.losses.BinaryCrossentropy(from_logits=True), BIN_Y, BIN_LOGIT),
    (keras.losses.BinaryCrossentropy(), BIN_Y, 1 / (1 + np.exp(-BIN_LOGIT))),
    (keras.losses.CategoricalCrossentropy(from_logits=True), ONEHOT, LOGITS),
    (keras.losses.CategoricalCrossentropy(label_smoothing=0.1), ONEHOT, PROBS),
    (keras.losses.SparseCategoricalCrossentropy(from_logits=True), LABELS, LOGITS),
    ("sparse_categorical_crossentropy", LABELS, PROBS),
]


@pytest.mark.parametrize("loss,y,p", CASES, ids=lambda v: getattr(v, "name", str(v))[:30])
@pytest.mark.parametrize("weighted", [False, True])
def test_half_sum_of_squares_is_the_keras_loss(loss, y, p, weighted):
    sw = W if weighted else None
    res = residuals_for_loss(loss)
    r = np.asarray(res.fn(y, p, sw), dtype=np.float64)
    keras_loss = keras.losses.get(loss) if isinstance(loss, str) else loss
    if isinstance(keras_loss, keras.losses.Loss):
        expected = float(keras_loss(y, p, sample_weight=sw))
    else:  # a loss function: Keras' reduction is the batch mean of the weighted values
        values = np.asarray(keras_loss(y, p), dtype=np.float64)
        expected = float(np.mean(values * (1.0 if sw is None else sw)))
    assert 0.5 * np.sum(r**2) / N == pytest.approx(expected, rel=2e-5)


def test_guards_give_finite_jacobians_at_zero():
    import tensorflow as tf

    for loss in ("mae", keras.losses.Huber()):
        e = tf.constant([[0.0, 1e-30, -2.0, 3.0]])
        with tf.GradientTape() as tape:
            tape.watch(e)
            r = residuals_for_loss(loss).fn(tf.zeros_like(e), e, None)
        assert np.all(np.isfinite(tape.jacobian(r, e).numpy()))


def test_multi_output_loss_weights():
    fn, mean = model_residuals({"a": "mse", "b": "mae"}, {"a": 2.0, "b": 0.5}, ["a", "b"])
    r = np.asarray(fn([Y_REG, Y_REG], [P_REG, P_REG], None), dtype=np.float64)
    mse = float(keras.losses.MeanSquaredError()(Y_REG, P_REG))
    mae = float(keras.losses.MeanAbsoluteError()(Y_REG, P_REG))
    assert mean
    assert 0.5 * np.sum(r**2) / N == pytest.approx(2.0 * mse + 0.5 * mae, rel=1e-5)


def test_unsupported_loss_lists_the_supported_ones():
    with pytest.raises(ValueError, match="mean_squared_error.*Received: loss="):
        residuals_for_loss(keras.losses.KLDivergence())
    assert "huber" in SUPPORTED_LOSSES


def test_reduction_must_be_a_mean_or_sum():
    with pytest.raises(ValueError, match="reduction.*Received: reduction='none'"):
        residuals_for_loss(keras.losses.MeanSquaredError(reduction="none"))
