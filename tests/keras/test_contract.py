"""The Keras contract: what a Keras user expects of ``fit`` holds for LM training too.

Metrics dicts and per-output losses as Keras logs them, Ctrl-C that keeps the best weights and
reaches the caller, ``steps_per_epoch`` in the one-call form, the user's model evaluable after
``mk.fit``, and warnings about Dropout and batch normalisation.
"""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import marquardt.keras as mk
from marquardt.keras._layers import warn_about_layers

from keras_helpers import mlp

RNG = np.random.default_rng(0)
X3 = RNG.normal(size=(120, 3)).astype("float32")
YA = X3.sum(1, keepdims=True)
YB = X3[:, :1] * X3[:, 1:2]
X = np.linspace(-1, 1, 64, dtype="float32")[:, None]
Y = np.sin(3 * X)
LM_LOGS = {"lam", "attempts", "grad_norm", "step_norm", "lm_status", "cholesky_failures",
           "batch_size"}


def two_outputs(as_dict):
    inp = keras.Input((3,))
    h = keras.layers.Dense(6, "tanh")(inp)
    a, b = keras.layers.Dense(1, name="a")(h), keras.layers.Dense(1, name="b")(h)
    return keras.Model(inp, {"a": a, "b": b} if as_dict else [a, b])


def _outcome(train):
    try:
        history = train()
    except ValueError as exc:
        return None, str(exc).splitlines()[0]
    return history, sorted(set(history.history) - LM_LOGS)


@pytest.mark.parametrize("metrics, as_dict", [
    ({"a": ["mae"], "b": "mse"}, False), ({"a": ["mae"], "b": "mse"}, True),
    (["mae"], False), (None, True)],
    ids=["dict-list_outputs", "dict-dict_outputs", "list-list_outputs", "none-dict_outputs"])
def test_multi_output_metrics_and_losses_are_logged_as_keras_logs_them(as_dict, metrics):
    """Same History keys as Keras' own fit (a_loss, b_loss, a_mae, val_...), or the same error
    where Keras refuses the metrics (``["mae"]`` for two outputs)."""
    y = {"a": YA, "b": YB} if as_dict else [YA, YB]

    def plain():
        net = two_outputs(as_dict)
        net.compile("adam", "mse", metrics=metrics)
        return net.fit(X3, y, epochs=1, verbose=0, validation_split=0.25)

    net = two_outputs(as_dict)
    history, lm_keys = _outcome(lambda: mk.fit(net, X3, y, loss="mse", metrics=metrics,
                                               epochs=3, verbose=0, validation_split=0.25))
    assert lm_keys == _outcome(plain)[1]
    if history is None:
        return
    assert {"a_loss", "b_loss", "val_a_loss", "val_b_loss"} <= set(history.history)
    logs = {k: v[-1] for k, v in history.history.items()}
    assert logs["a_loss"] + logs["b_loss"] == pytest.approx(logs["loss"], rel=1e-5)
    # full batch: the logged per-output losses are the MSEs of the returned weights
    pred = net.predict(X3[:90], verbose=0)
    pred = [pred["a"], pred["b"]] if as_dict else pred
    assert logs["a_loss"] == pytest.approx(float(np.mean((pred[0] - YA[:90]) ** 2)), rel=1e-4)
    assert logs["b_loss"] == pytest.approx(float(np.mean((pred[1] - YB[:90]) ** 2)), rel=1e-4)


@pytest.mark.slow
def test_fit_takes_loss_weights_as_compile_does():
    # mk.fit had no `loss_weights` (TypeError: Unknown Levenberg-Marquardt option(s)): a
    # multi-output model could be weighted only by compiling it first
    net = two_outputs(as_dict=True)
    history = mk.fit(net, X3, {"a": YA, "b": YB}, loss={"a": "mse", "b": "mse"},
                     loss_weights={"a": 1.0, "b": 0.01}, epochs=1, verbose=0)
    logs = {k: v[-1] for k, v in history.history.items()}
    assert logs["loss"] == pytest.approx(logs["a_loss"] + 0.01 * logs["b_loss"], rel=1e-5)
    assert net.evaluate(X3, {"a": YA, "b": YB}, verbose=0)[0] == pytest.approx(logs["loss"],
                                                                              rel=1e-5)


def test_single_output_metrics_list_works():
    net = mlp((4,))
    history = mk.fit(net, X, Y, loss="mse", metrics=["mae"], epochs=3, verbose=0)
    err = np.asarray(net(X)) - Y
    assert history.history["mae"][-1] == pytest.approx(float(np.mean(np.abs(err))), rel=1e-4)


class _Recorder(keras.callbacks.Callback):
    """Weights and val_loss each epoch; Ctrl-C (``KeyboardInterrupt``) at ``stop_at``."""

    def __init__(self, net, stop_at):
        super().__init__()
        self.net, self.stop_at, self.weights, self.val = net, stop_at, [], []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append([w.copy() for w in self.net.get_weights()])
        self.val.append(logs["val_loss"])
        if epoch == self.stop_at:
            raise KeyboardInterrupt


def test_interrupt_leaves_the_validation_best_weights_and_reaches_the_caller():
    """Validation targets the fit moves away from: val_loss is best early and then rises; an
    interrupt at epoch 6 leaves the weights of the best epoch, as EarlyStopping promised."""
    net = mlp((6,))
    recorder = _Recorder(net, stop_at=5)
    stopping = keras.callbacks.EarlyStopping(patience=100, restore_best_weights=True)
    lm = mk.LMModel(net)
    lm.compile(loss="mse")
    with pytest.raises(KeyboardInterrupt):
        lm.fit(X, Y, epochs=50, verbose=0, validation_data=(X, np.zeros_like(Y)),
               callbacks=[stopping, recorder])
    best = int(np.argmin(recorder.val))
    assert best < 5 and recorder.val[best] < recorder.val[-1]
    for a, b in zip(recorder.weights[best], net.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert f"epoch {best + 1}, the best `val_loss`" in lm.stop_reason
    # the one-call form lets it through too
    with pytest.raises(KeyboardInterrupt):
        mk.fit(mlp((6,)), X, Y, loss="mse", epochs=50, verbose=0,
               validation_data=(X, np.zeros_like(Y)), callbacks=[_Recorder(net, 1)])


def test_fit_accepts_steps_per_epoch_for_a_repeated_dataset():
    batches = []
    counter = keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: batches.append(b))
    ds = tf.data.Dataset.from_tensor_slices((X, Y)).batch(32).repeat()
    history = mk.fit(mlp((4,)), ds, loss="mse", steps_per_epoch=3, epochs=4, verbose=0,
                     callbacks=[counter])
    assert len(history.epoch) == 4 and batches == [0, 1, 2] * 4


def test_model_is_evaluable_after_fit():
    net = mlp((4,))
    history = mk.fit(net, X, Y, loss="mse", metrics=["mae"], epochs=5, verbose=0)
    result = net.evaluate(X, Y, verbose=0, return_dict=True)
    assert result["loss"] == pytest.approx(history.history["loss"][-1], rel=1e-5)
    assert result["mae"] == pytest.approx(history.history["mae"][-1], rel=1e-5)
    # a model compiled by its user keeps that compilation
    net = mlp((4,))
    net.compile(optimizer="adam", loss="mae")
    mk.fit(net, X, Y, loss="mse", epochs=2, verbose=0)
    assert net.loss == "mae" and isinstance(net.optimizer, keras.optimizers.Adam)


def _said(net, training=False):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warn_about_layers(net, training)
    return " ".join(str(w.message) for w in caught if issubclass(w.category, UserWarning))


def _with(layer):
    return keras.Sequential([keras.Input((1,)), keras.layers.Dense(4, "tanh"), layer,
                             keras.layers.Dense(1)])


def test_dropout_and_batch_norm_behaviour_is_said_where_the_user_decides():
    text = _said(_with(keras.layers.Dropout(0.2)))
    assert "Dropout-like layers ['dropout']" in text and "inert" in text
    text = _said(_with(keras.layers.GaussianNoise(0.1)), training=True)
    assert "training=True" in text and "will not converge" in text
    text = _said(_with(keras.layers.BatchNormalization()))
    assert "BatchNormalization" in text and "not updated" in text
    assert _said(_with(keras.layers.BatchNormalization()), training=True) == ""
    assert _said(mlp((4,))) == ""
    # fit says it, once, before training
    with pytest.warns(UserWarning, match="Dropout-like layers .* inert"):
        mk.fit(_with(keras.layers.Dropout(0.2)), X, Y, loss="mse", epochs=1, verbose=0)
