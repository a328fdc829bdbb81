"""Small models and data for the Keras tests."""

import keras
import numpy as np


def mlp(widths=(10,), inputs=1, outputs=1, activation="tanh", dtype="float32",
        out_activation=None):
    layers = [keras.Input((inputs,), dtype=dtype)]
    layers += [keras.layers.Dense(w, activation, dtype=dtype) for w in widths]
    layers.append(keras.layers.Dense(outputs, out_activation, dtype=dtype))
    return keras.Sequential(layers)


def linear_data(n=60, features=3, seed=0, dtype="float64"):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype(dtype)
    y = (x @ rng.normal(size=(features, 1)) + 0.5 + 0.1 * rng.normal(size=(n, 1))).astype(dtype)
    return x, y
