"""Mini-batch damping limit, batch-normalisation statistics, penalties, TensorBoard, logs."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import marquardt.keras as mk
from marquardt._status import Status, status_message
from marquardt.keras._options import resolve_options
from marquardt.keras._stopping import LMStopping

from keras_helpers import mlp

X = np.linspace(-1, 1, 64, dtype="float32")[:, None]
Y = np.sin(3 * X)


class _Model:
    stop_training = False


def _stopper():
    stopper = LMStopping(resolve_options())
    stopper.set_model(_Model())
    stopper.on_train_begin()
    return stopper


def _epoch(stopper, epoch, codes):
    stopper.on_epoch_begin(epoch)
    for i, code in enumerate(codes):
        logs = {"loss": 1.0, "lam": 1e17, "attempts": 10, "lm_status": int(code)}
        stopper.on_train_batch_end(i, logs)
        assert "lm_status" not in logs  # kept out of the progress bar
        if stopper.model.stop_training:
            break
    stopper.on_epoch_end(epoch, {"loss": 1.0, "lm_status": int(codes[-1])})


def test_minibatch_damping_limit_on_one_batch_goes_on():
    stopper = _stopper()
    _epoch(stopper, 0, [Status.RUNNING, Status.DAMPING_LIMIT, Status.RUNNING])
    assert not stopper.model.stop_training and stopper.reason is None
    _epoch(stopper, 1, [Status.DAMPING_LIMIT] * 3)
    assert stopper.model.stop_training and stopper.status == Status.DAMPING_LIMIT
    assert "Every batch of epoch 2" in stopper.reason
    assert stopper.codes == [int(Status.RUNNING), int(Status.DAMPING_LIMIT)]


def test_full_batch_damping_limit_stops_at_the_end_of_its_epoch():
    stopper = _stopper()
    _epoch(stopper, 0, [Status.RUNNING])
    assert not stopper.model.stop_training
    stopper.on_epoch_begin(1)
    logs = {"loss": 1.0, "lam": 1e17, "attempts": 10, "lm_status": int(Status.DAMPING_LIMIT)}
    stopper.on_train_batch_end(0, logs)
    assert not stopper.model.stop_training  # decided at the end of the epoch
    stopper.on_epoch_end(1, {"loss": 1.0, "lm_status": int(Status.DAMPING_LIMIT)})
    assert stopper.model.stop_training and stopper.status == Status.DAMPING_LIMIT
    # one batch per epoch: trainlm's rule, said without the mini-batch sentence
    assert stopper.reason == status_message(Status.DAMPING_LIMIT,
                                            "λ = 1e+17 after 10 attempts, loss 1")
    assert stopper.codes == [int(Status.RUNNING), int(Status.DAMPING_LIMIT)]


def test_history_keeps_status_codes_and_progress_bar_hides_them(capsys):
    history = mk.fit(mlp((4,)), X, Y, loss="mse", epochs=2, verbose=2)
    assert history.history["lm_status"] == [int(Status.RUNNING)] * 2
    assert "lm_status" not in capsys.readouterr().out


def test_batch_norm_statistics_written_back_with_training_true():
    net = keras.Sequential([keras.Input((1,)), keras.layers.Dense(4, "tanh"),
                            keras.layers.BatchNormalization(momentum=0.5),
                            keras.layers.Dense(1)])
    bn = net.layers[1]
    before = keras.ops.convert_to_numpy(bn.moving_mean)
    mk.fit(net, X, Y, loss="mse", epochs=2, verbose=0, training=True)
    assert not np.allclose(keras.ops.convert_to_numpy(bn.moving_mean), before)


def test_batch_norm_statistics_untouched_with_training_false():
    net = keras.Sequential([keras.Input((1,)), keras.layers.Dense(4, "tanh"),
                            keras.layers.BatchNormalization(), keras.layers.Dense(1)])
    before = keras.ops.convert_to_numpy(net.layers[1].moving_mean)
    mk.fit(net, X, Y, loss="mse", epochs=2, verbose=0)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(net.layers[1].moving_mean), before)


def test_regularisation_losses_are_refused():
    net = keras.Sequential([keras.Input((1,)),
                            keras.layers.Dense(4, "tanh", kernel_regularizer="l2"),
                            keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="regularisation losses.*Received: model with 1"):
        mk.fit(net, X, Y, loss="mse", epochs=1, verbose=0)


def test_tensorboard_callback_writes_logs(tmp_path):
    pytest.importorskip("tensorboard", reason="keras.callbacks.TensorBoard needs tensorboard")
    board = keras.callbacks.TensorBoard(log_dir=str(tmp_path))
    mk.fit(mlp((4,)), X, Y, loss="mse", epochs=2, verbose=0, callbacks=[board])
    events = list(tmp_path.rglob("events.out.tfevents.*"))
    assert events
    tags = set()
    for path in events:
        for record in tf.compat.v1.train.summary_iterator(str(path)):
            tags.update(v.tag for v in record.summary.value)
    assert any("loss" in t for t in tags), tags


def test_huber_delta_is_read_from_the_loss():
    """Reads Keras' private LossFunctionWrapper._fn_kwargs; fails here if Keras changes it."""
    e = np.array([[3.0]], "float32")
    for delta in (0.3, 2.0):
        r = np.asarray(mk.residuals_for_loss(keras.losses.Huber(delta=delta)).fn(
            np.zeros_like(e), e, None))
        expected = float(keras.losses.Huber(delta=delta)(np.zeros_like(e), e))
        assert 0.5 * float(r[0, 0]) ** 2 == pytest.approx(expected, rel=1e-5), delta
