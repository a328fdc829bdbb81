"""LM training on problems with answers known in advance."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import marquardt.keras as mk

from keras_helpers import linear_data, mlp


def _lstsq(x, y, w=None):
    a = np.hstack([x, np.ones((len(x), 1))])
    if w is not None:
        a, y = a * np.sqrt(w)[:, None], y * np.sqrt(w)[:, None]
    return np.linalg.lstsq(a, y, rcond=None)[0]


def _linear_weights(net):
    kernel, bias = net.get_weights()
    return np.vstack([kernel, bias[None, :]])


def test_linear_model_equals_lstsq_in_float64(float64):
    x, y = linear_data()
    net = mlp((), inputs=3, dtype="float64")
    history = mk.fit(net, x, y, loss="mse", epochs=40, verbose=0)
    np.testing.assert_allclose(_linear_weights(net), _lstsq(x, y), rtol=0, atol=1e-10)
    assert history.stop_reason


def test_weight_two_equals_duplicated_rows(float64):
    x, y = linear_data(n=40)
    w = np.ones(len(x))
    w[:10] = 2.0
    net = mlp((), inputs=3, dtype="float64")
    mk.fit(net, x, y, loss="mse", epochs=40, verbose=0, sample_weight=w)
    dup = _lstsq(np.vstack([x, x[:10]]), np.vstack([y, y[:10]]))
    np.testing.assert_allclose(_linear_weights(net), dup, atol=1e-10)


@pytest.mark.slow
def test_tiny_mlp_fits_a_smooth_function():
    x = np.linspace(-1, 1, 200)[:, None]
    y = np.sin(2.0 * x) * np.exp(-x)
    net = mlp((8,), dtype="float64")
    history = mk.fit(net, x, y, loss="mse", epochs=300, verbose=0, goal=1e-9)
    mse = float(np.mean((net.predict(x, verbose=0) - y) ** 2))
    assert mse < 1e-8
    assert "goal" in history.stop_reason


def test_logs_history_and_loss_is_the_keras_loss():
    x = np.linspace(-1, 1, 100, dtype="float32")[:, None]
    y = np.cos(3 * x)
    lm = mk.LMModel(mlp((5,)))
    lm.compile(loss="mse", metrics=["mae"])
    history = lm.fit(x, y, epochs=3, verbose=0)
    for key in ("loss", "mae", "lam", "attempts", "grad_norm", "step_norm", "lm_status",
                "cholesky_failures"):
        assert len(history.history[key]) == 3, key
    assert history.history["loss"][-1] == pytest.approx(lm.evaluate(x, y, verbose=0)[0], rel=1e-4)
    assert np.all(np.diff(history.history["loss"]) < 0)


@pytest.mark.slow
def test_classification_reaches_adam_accuracy_in_fewer_epochs():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 2)).astype("float32")
    labels = (x[:, 0] ** 2 + x[:, 1] ** 2 > 1.2).astype("int64")
    adam_net = mlp((8,), inputs=2, outputs=2)
    adam_net.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy",
                     metrics=["accuracy"])
    adam = adam_net.fit(x, labels, epochs=60, batch_size=300, verbose=0)
    target = max(adam.history["accuracy"])
    net = mlp((8,), inputs=2, outputs=2)
    lm = mk.fit(net, x, labels, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                metrics=["accuracy"], epochs=60, verbose=0)
    reached = [i for i, a in enumerate(lm.history["accuracy"]) if a >= target]
    assert reached and reached[0] + 1 < len(adam.history["accuracy"])


def test_physics_informed_ode_with_custom_residual(float64):
    """u' + u = 0, u(0) = 1 on [0, 1]: u = exp(−x). Residuals use du/dx by a nested tape."""
    xs = np.linspace(0.0, 1.0, 32)[:, None]

    def residual(model_fn, x, y):
        with tf.GradientTape() as tape:
            tape.watch(x)
            u = model_fn(x)
        du = tape.gradient(u, x)
        boundary = model_fn(tf.zeros([1, 1], x.dtype)) - 1.0
        return tf.concat([tf.reshape(du + u, [-1]), tf.reshape(boundary, [-1])], 0)

    net = mlp((8,), dtype="float64")
    history = mk.fit(net, xs, None, residual=residual, epochs=60, verbose=0)
    error = np.max(np.abs(net.predict(xs, verbose=0) - np.exp(-xs)))
    assert error < 1e-4, (error, history.history["loss"][-1])


def test_kernel_form_equals_normal_form():
    x = np.linspace(-1, 1, 5)[:, None]
    y = x**2
    steps = []
    for kernel in (True, False):
        keras.utils.set_random_seed(3)
        net = mlp((10,), dtype="float64")
        mk.fit(net, x, y, loss="mse", epochs=1, verbose=0, kernel=kernel)
        steps.append(np.concatenate([w.ravel() for w in net.get_weights()]))
    np.testing.assert_allclose(steps[0], steps[1], rtol=1e-8, atol=1e-10)


def test_full_jacobian_equals_per_sample():
    x, y = linear_data(n=30)
    out = []
    for jacobian in ("full", "per_sample"):
        keras.utils.set_random_seed(3)
        net = mlp((4,), inputs=3, dtype="float64")
        mk.fit(net, x, y, loss="mse", epochs=2, verbose=0, jacobian=jacobian, kernel=False)
        out.append(np.concatenate([w.ravel() for w in net.get_weights()]))
    np.testing.assert_allclose(out[0], out[1], rtol=1e-9, atol=1e-12)


def test_chunked_normal_equations_equal_one_chunk():
    x, y = linear_data(n=50)
    out = []
    for limit in (None, 5 * 29 * 29 * 8 + 3 * 29 * 8 * 7):  # ~7 samples per chunk
        keras.utils.set_random_seed(3)
        net = mlp((4,), inputs=3, dtype="float64")
        mk.fit(net, x, y, loss="mse", epochs=2, verbose=0, memory_limit=limit)
        out.append(np.concatenate([w.ravel() for w in net.get_weights()]))
    np.testing.assert_allclose(out[0], out[1], rtol=1e-9, atol=1e-12)


def test_minibatch_and_tf_data():
    x = np.linspace(-1, 1, 256, dtype="float32")[:, None]
    y = np.sin(3 * x)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(64)
    net = mlp((6,))
    history = mk.fit(net, ds, epochs=4, loss="mse", verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_trainlm_preset_and_multi_output():
    inp = keras.Input((2,))
    hidden = keras.layers.Dense(6, "tanh")(inp)
    net = keras.Model(inp, [keras.layers.Dense(1, name="a")(hidden),
                            keras.layers.Dense(1, name="b")(hidden)])
    net.compile(loss={"a": "mse", "b": "huber"}, loss_weights={"a": 1.0, "b": 0.5})
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 2)).astype("float32")
    ys = [x[:, :1] * x[:, 1:], np.tanh(x[:, :1])]
    lm = mk.LMModel(net, options=mk.TRAINLM)
    lm.compile(loss={"a": "mse", "b": "huber"}, loss_weights={"a": 1.0, "b": 0.5})
    history = lm.fit(x, ys, epochs=5, verbose=0)
    assert history.history["loss"][-1] == pytest.approx(net.evaluate(x, ys, verbose=0)[0],
                                                        rel=1e-4)
    exponents = np.log10(history.history["lam"])  # μ = 1e-3 × powers of 10 (trainlm)
    np.testing.assert_allclose(exponents, np.round(exponents), atol=1e-9)
