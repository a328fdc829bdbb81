"""Mini-batches with fewer residuals than weights, and the full-data loss beside the batch loss."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import marquardt.keras as mk
from marquardt.keras._minibatch import safe_batch_size

from keras_helpers import mlp

RNG = np.random.default_rng(0)
X = RNG.uniform(-1, 1, size=(200, 2)).astype("float32")
Y = (np.sin(2 * X[:, :1]) + X[:, 1:] ** 2 + 0.1 * RNG.normal(size=(200, 1))).astype("float32")


def net_2_10_1():
    keras.utils.set_random_seed(1)
    return keras.Sequential([keras.Input((2,)), keras.layers.Dense(10, "tanh"),
                             keras.layers.Dense(1)])  # 41 weights


def full_mse(net, rows=slice(None)):
    return float(np.mean((np.asarray(net(X[rows])) - Y[rows]) ** 2))


def test_safe_batch_size_gives_at_least_one_residual_per_weight():
    assert safe_batch_size(64, 200, 1, 41) == 64  # enough residuals: untouched
    assert safe_batch_size(41, 200, 1, 41) == 41
    with pytest.warns(UserWarning, match=r"Raised to 41 \(41 residuals"):
        assert safe_batch_size(1, 200, 1, 41) == 41
    with pytest.warns(UserWarning, match="Raised to 14"):
        assert safe_batch_size(2, 200, 3, 41) == 14  # k = 3 residuals per sample
    with pytest.warns(UserWarning, match=r"Raised to 200 \(full batch\)"):
        assert safe_batch_size(10, 200, 1, 481) == 200


def test_batch_size_1_on_41_weights_ends_near_the_full_batch_fit():
    """Unguarded, batch 1 left a full-data MSE of 0.85 and max|w| = 1.1e4 here (the batches'
    own loss 3.8e-7); the guard raises the batch to 41 samples."""
    full = net_2_10_1()
    mk.fit(full, X, Y, loss="mse", epochs=30, verbose=0)
    small = net_2_10_1()
    with pytest.warns(UserWarning, match="`batch_size` 1 gives 1 residuals per batch for 41"):
        history = mk.fit(small, X, Y, loss="mse", epochs=30, batch_size=1, verbose=0)
    assert full_mse(small) <= 10 * full_mse(full)
    assert history.history["full_loss"][-1] == pytest.approx(full_mse(small), rel=1e-4)


def test_full_data_loss_is_logged_beside_the_batch_loss():
    net = net_2_10_1()
    history = mk.fit(net, X, Y, loss="mse", epochs=3, batch_size=50, verbose=0,
                     validation_split=0.2)
    assert len(history.history["full_loss"]) == 3
    # all 160 training rows, none of the 40 validation rows
    assert history.history["full_loss"][-1] == pytest.approx(full_mse(net, slice(0, 160)),
                                                             rel=1e-4)
    full_batch = mk.fit(net_2_10_1(), X, Y, loss="mse", epochs=2, verbose=0)
    assert "full_loss" not in full_batch.history  # the loss is already the full-data loss


def test_a_dataset_of_small_batches_is_warned_about():
    ds = tf.data.Dataset.from_tensor_slices((X, Y)).batch(8)
    with pytest.warns(UserWarning, match="first batch of `x` has 8 samples, 8 residuals for 41"):
        mk.fit(net_2_10_1(), ds, loss="mse", epochs=1, verbose=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mk.fit(net_2_10_1(), ds.unbatch().batch(50), loss="mse", epochs=1, verbose=0)
    assert not [w for w in caught if "residuals for" in str(w.message)]


def test_a_second_fit_with_another_batch_size_and_sample_weights():
    """Keras retraces the step for the new batch size with its shapes relaxed to None; the
    residuals per sample then come from the front door's probe (it raised 'must have a
    static size' before)."""
    x = np.linspace(-1.0, 1.0, 400, dtype="float32")[:, None]
    y, w = np.sin(2.0 * x), np.linspace(0.5, 2.0, 400)
    lm = mk.LMModel(mlp((4,)))
    lm.compile(loss="mse")
    lm.fit(x, y, sample_weight=w, epochs=1, verbose=0)
    history = lm.fit(x, y, sample_weight=w, epochs=1, batch_size=100, verbose=0)
    assert history.history["attempts"][0] >= 1
