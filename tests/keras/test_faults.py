"""Bad input fails before training; faults during training end gracefully; Keras plumbing."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import marquardt.keras as mk
from marquardt._status import Status

from keras_helpers import mlp

X = np.linspace(-1, 1, 64, dtype="float32")[:, None]
Y = np.sin(3 * X)


def test_no_trainable_weights():
    net = mlp((4,))
    for layer in net.layers:
        layer.trainable = False
    with pytest.raises(ValueError, match="trainable weights.*Received: model="):
        mk.fit(net, X, Y, loss="mse", epochs=1, verbose=0)


def test_layer_without_gradient():
    inp = keras.Input((1,))
    used = keras.layers.Dense(1)(inp)
    keras.layers.Dense(3, name="unused")(inp)  # built, never reaches the output
    unused = keras.layers.Dense(3, name="dangling")
    unused.build((None, 1))
    net = keras.Model(inp, used)
    net.dangling = unused  # tracked, trainable, not connected
    with pytest.raises(ValueError, match="receive a gradient.*dangling"):
        mk.fit(net, X, Y, loss="mse", epochs=1, verbose=0)


def test_target_shape_mismatch():
    with pytest.raises(ValueError, match="`y` must match.*Received: y with shape"):
        mk.fit(mlp((4,)), X, np.hstack([Y, Y]), loss="mse", epochs=1, verbose=0)


@pytest.mark.parametrize("where", ["x", "y", "sample_weight"])
def test_non_finite_input(where):
    x, y, sw = X.copy(), Y.copy(), np.ones(len(X), "float32")
    {"x": x, "y": y, "sample_weight": sw}[where][3] = np.nan
    with pytest.raises(ValueError, match=f"`{where}` must contain only finite values"):
        mk.fit(mlp((4,)), x, y, sample_weight=sw, loss="mse", epochs=1, verbose=0)



@pytest.mark.parametrize("short", ["y", "sample_weight"])
def test_arrays_of_different_lengths_are_refused_as_keras_refuses_them(short):
    # a short sample_weight failed inside TensorFlow (InvalidArgumentError: Incompatible
    # shapes [64,1] vs. [40,1]); Keras' own fit raises this ValueError
    data = {"y": Y, "sample_weight": np.ones(len(X), "float32")}
    data[short] = data[short][:40]
    with pytest.raises(ValueError, match=rf"Data cardinality is ambiguous.*Received: x sizes 64, "
                                         rf".*{short} sizes 40"):
        mk.fit(mlp((4,)), X, loss="mse", epochs=1, verbose=0, **data)


def test_inputs_of_different_lengths_are_refused():
    a, b = keras.Input((1,)), keras.Input((1,))
    net = keras.Model([a, b], keras.layers.Dense(1)(keras.layers.Concatenate()([a, b])))
    with pytest.raises(ValueError, match=r"Data cardinality.*Received: x sizes 64, 40, y sizes 64"):
        mk.fit(net, [X, X[:40]], Y, loss="mse", epochs=1, verbose=0)

def test_non_finite_start_loss():
    net = mlp((4,))
    weights = net.get_weights()
    weights[1][0] = np.nan
    net.set_weights(weights)
    with pytest.raises(ValueError, match="loss at the starting weights must be finite"):
        mk.fit(net, X, Y, loss="mse", epochs=1, verbose=0)


def test_unknown_option_and_optimizer_and_missing_loss():
    with pytest.raises(TypeError, match="Unknown Levenberg-Marquardt option.*Received: dampng="):
        mk.LMModel(mlp((4,)), dampng="nielsen")
    with pytest.raises(ValueError, match="`max_attempts` must be"):
        mk.LMModel(mlp((4,)), max_attempts=0)
    lm = mk.LMModel(mlp((4,)))
    with pytest.raises(ValueError, match="`optimizer` must not be given"):
        lm.compile(optimizer="adam", loss="mse")
    with pytest.raises(ValueError, match="`loss` must be given"):
        mk.fit(mlp((4,)), X, Y, epochs=1, verbose=0)


def test_model_too_large_for_dense_lm_says_how_much():
    with pytest.raises(ValueError, match=r"too large.*need .*GiB.*Received: memory_limit="):
        mk.plan_memory(60_000, 1, 8 << 30)
    with pytest.raises(ValueError, match="too large"):
        mk.fit(mlp((4,)), X, Y, loss="mse", epochs=1, verbose=0, memory_limit=1000)


def test_divergence_never_applies_a_non_finite_step():
    """A residual that is NaN away from the start: every step is rejected, weights kept."""

    def residual(model_fn, x, y):
        u = model_fn(x)
        blow = tf.where(tf.abs(u) > 0.0, tf.math.log(-tf.abs(u) - 1.0), u)  # NaN when u != 0
        return tf.reshape(tf.where(tf.equal(tf.reduce_sum(tf.abs(u)), 0.0), u - y, blow), [-1])

    net = mlp((4,))
    net.set_weights([np.zeros_like(w) for w in net.get_weights()])
    before = [w.copy() for w in net.get_weights()]
    history = mk.fit(net, X, Y, residual=residual, epochs=3, verbose=0)
    for a, b in zip(before, net.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert history.lm_status in (Status.DAMPING_LIMIT, None) or "damping" in history.stop_reason


def test_singular_system_is_solved():
    """Two identical inputs: JᵀJ is singular; the eigen fallback keeps steps finite."""
    x = np.hstack([X, X])
    net = mlp((), inputs=2)
    history = mk.fit(net, x, 2 * X + 1, loss="mse", epochs=30, verbose=0, goal=1e-10)
    assert np.all(np.isfinite(np.concatenate([w.ravel() for w in net.get_weights()])))
    assert history.history["loss"][-1] < 1e-8


def test_keyboard_interrupt_keeps_the_last_accepted_weights_and_reaches_the_caller():
    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 2:
                self.saved = [w.copy() for w in net.get_weights()]
                raise KeyboardInterrupt

    net = mlp((4,))
    cb = Interrupt()
    lm = mk.LMModel(net)
    lm.compile(loss="mse")
    with pytest.raises(KeyboardInterrupt):
        lm.fit(X, Y, epochs=10, verbose=0, callbacks=[cb])
    assert "Interrupted" in lm.stop_reason and "last accepted weights" in lm.stop_reason
    for a, b in zip(cb.saved, net.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_goal_and_min_grad_and_max_time_stop_with_a_reason():
    history = mk.fit(mlp((4,)), X, Y, loss="mse", epochs=50, verbose=0, goal=0.05)
    assert "goal" in history.stop_reason and history.lm_status == Status.GOAL
    history = mk.fit(mlp((4,)), X, Y, loss="mse", epochs=50, verbose=0, min_grad=1e3)
    assert "min_grad" in history.stop_reason and len(history.epoch) == 1
    history = mk.fit(mlp((4,)), X, Y, loss="mse", epochs=10_000, verbose=0, max_time=1.0)
    assert "max_time" in history.stop_reason


def test_callbacks_validation_and_checkpoint_resume(tmp_path):
    net = mlp((6,))
    lm = mk.LMModel(net)
    lm.compile(loss="mse", metrics=["mae"])
    ckpt = str(tmp_path / "lm.weights.h5")
    history = lm.fit(
        X, Y, epochs=6, verbose=0, validation_split=0.25,
        callbacks=[keras.callbacks.EarlyStopping(patience=2, restore_best_weights=True),
                   keras.callbacks.ModelCheckpoint(ckpt, save_weights_only=True),
                   keras.callbacks.CSVLogger(str(tmp_path / "log.csv")),
                   keras.callbacks.TerminateOnNaN()])
    assert "val_loss" in history.history and "val_mae" in history.history
    assert (tmp_path / "log.csv").read_text().startswith("epoch")
    lam = float(lm.lm_lambda.numpy())
    # resume: a fresh wrapper around a fresh network, weights and λ from the checkpoint
    net2 = mlp((6,))
    lm2 = mk.LMModel(net2)
    lm2.compile(loss="mse")
    lm2.load_weights(ckpt)
    assert float(lm2.lm_lambda.numpy()) > 0
    lm2.fit(X, Y, epochs=2, verbose=0)
    assert lam > 0


def test_saved_model_is_plain_keras(tmp_path):
    net = mlp((6,))
    mk.fit(net, X, Y, loss="mse", epochs=3, verbose=0)
    path = str(tmp_path / "net.keras")
    net.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.predict(X, verbose=0), net.predict(X, verbose=0))


@pytest.mark.slow
def test_a_loaded_wrapper_is_compiled_as_saved(tmp_path):
    # a ModelCheckpoint file or `lm.save` holds the wrapper: once loaded it evaluates and
    # trains on as saved (it used to warn, load uncompiled yet marked compiled, and refuse
    # `fit` with "`loss` must be one of ... Received: loss=None")
    lm = mk.LMModel(mlp((4,)), options=mk.TRAINLM)
    lm.compile(loss="mse", metrics=["mae"])
    path = str(tmp_path / "lm.keras")
    lm.save(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        loaded = keras.models.load_model(path)
    assert loaded.loss == "mse" and loaded.lm_options == lm.lm_options
    start = loaded.evaluate(X, Y, verbose=0)
    np.testing.assert_allclose(start, lm.evaluate(X, Y, verbose=0))
    history = loaded.fit(X, Y, epochs=1, verbose=0)
    assert history.history["loss"][-1] < start[0] and "mae" in history.history


def test_a_loaded_wrapper_without_its_residual_says_so(tmp_path):
    lm = mk.LMModel(mlp((4,)), residual=lambda model_fn, x, y: model_fn(x) - y)
    lm.compile()
    path = str(tmp_path / "lm.keras")
    lm.save(path)
    loaded = keras.models.load_model(path)
    with pytest.raises(ValueError, match=r"does not keep a custom residual.*residual=.*"
                                         r"Received: a loaded LMModel"):
        loaded.fit(X, Y, epochs=1, verbose=0)


@pytest.mark.parametrize("callback", [keras.callbacks.ReduceLROnPlateau(patience=1),
                                      keras.callbacks.LearningRateScheduler(lambda e, lr: lr)])
def test_learning_rate_callbacks_are_refused_before_training(callback):
    # ReduceLROnPlateau used to fail mid-training, at its first plateau, with
    # AttributeError: 'NoneType' object has no attribute 'learning_rate'
    name = type(callback).__name__
    with pytest.raises(ValueError, match=rf"`callbacks` must not include {name}: .*no learning "
                                         r"rate.*Received: callbacks containing"):
        mk.fit(mlp((4,)), X, Y, loss="mse", epochs=1, verbose=0, callbacks=[callback])


@pytest.mark.slow
def test_a_model_without_an_input_is_built_from_the_data_as_keras_builds_it():
    # `Sequential([Dense(6), Dense(1)])` (no keras.Input) was refused with "`model` must have
    # trainable weights ... 0 trainable weights (are all layers frozen?)"
    net = keras.Sequential([keras.layers.Dense(6, "tanh"), keras.layers.Dense(1)])
    history = mk.fit(net, X, Y, loss="mse", epochs=2, verbose=0, options=mk.TRAINLM)
    assert net.built and net.count_params() == 19
    assert history.history["loss"][-1] < float(np.mean(Y**2))


def test_an_unbuilt_model_that_the_input_cannot_build_is_named_as_such():
    def batches():
        while True:
            yield X, Y

    net = keras.Sequential([keras.layers.Dense(6, "tanh"), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match=r"`model` must be built.*keras.Input.*Received: "
                                         r"model='.*', not built"):
        mk.fit(net, batches(), loss="mse", epochs=1, steps_per_epoch=1, verbose=0)


def test_validation_arrays_of_different_lengths_are_refused():
    # they failed in the compiled loss: "Dimensions must be equal, but are 10 and 32 for
    # '{{node compile_loss/mse/sub}} ..."
    with pytest.raises(ValueError, match=r"Data cardinality is ambiguous: `validation_data`.*"
                                         r"Received: validation_data x sizes 32, y sizes 10"):
        mk.fit(mlp((4,)), X[:32], Y[:32], loss="mse", epochs=1, verbose=0,
               validation_data=(X[32:], Y[:10]))
