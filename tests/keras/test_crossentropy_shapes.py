"""Cross-entropy losses take the target shapes Keras' own ``fit`` takes (issue #15).

For each loss and target shape: the residuals give, as ½·mean(r²), exactly the Keras loss object's value
(r = √(2ℓ) per sample, so mean(r²)/2 = mean(ℓ)), and ``marquardt.keras.fit`` trains where
``keras.Model.fit`` does.
"""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("tensorflow")

import marquardt.keras as mk  # noqa: E402
from marquardt.keras._residuals import residuals_for_loss  # noqa: E402

N = 32
RNG = np.random.default_rng(0)
X = RNG.normal(size=(N, 2)).astype("float32")
LABELS = (X[:, 0] > 0).astype("int64")
CLASSES = RNG.integers(0, 3, N)

# (loss, output units, output activation, targets)
CASES = {
    "binary, targets (N,)": ("binary_crossentropy", 1, "sigmoid", LABELS.astype("float32")),
    "binary, targets (N, 1)": ("binary_crossentropy", 1, "sigmoid", LABELS.astype("float32")[:, None]),
    "binary, int targets (N,)": ("binary_crossentropy", 1, "sigmoid", LABELS),
    "binary multi-label, targets (N, 3)": ("binary_crossentropy", 3, "sigmoid",
                                           (RNG.uniform(size=(N, 3)) > 0.5).astype("float32")),
    "categorical, targets (N, 3)": ("categorical_crossentropy", 3, "softmax",
                                    np.eye(3, dtype="float32")[CLASSES]),
    "sparse categorical, targets (N,)": ("sparse_categorical_crossentropy", 3, "softmax", CLASSES),
    "sparse categorical, targets (N, 1)": ("sparse_categorical_crossentropy", 3, "softmax", CLASSES[:, None]),
}


def network(units: int, activation: str):
    keras.utils.set_random_seed(1)
    return keras.Sequential([keras.Input((2,)), keras.layers.Dense(4, "tanh"),
                             keras.layers.Dense(units, activation)])


@pytest.mark.parametrize("case", list(CASES))
def test_residuals_equal_the_keras_loss(case):
    loss, units, activation, y = CASES[case]
    net = network(units, activation)
    p = net(X)
    r = np.asarray(residuals_for_loss(loss).fn(keras.ops.convert_to_tensor(y), p, None), dtype=np.float64)
    assert r.shape == (N, 1)
    expected = float(
        {"binary_crossentropy": keras.losses.BinaryCrossentropy,
         "categorical_crossentropy": keras.losses.CategoricalCrossentropy,
         "sparse_categorical_crossentropy": keras.losses.SparseCategoricalCrossentropy}[loss]()(y, p))
    assert 0.5 * np.mean(r**2) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("case", [pytest.param(case, marks=[] if case == "binary, targets (N,)" else [pytest.mark.slow])
                                  for case in CASES])
def test_fit_accepts_the_targets_keras_accepts(case):
    loss, units, activation, y = CASES[case]
    reference = network(units, activation)
    reference.compile(optimizer="adam", loss=loss)
    reference.fit(X, y, epochs=1, verbose=0)  # Keras itself takes these targets
    history = mk.fit(network(units, activation), X, y, loss=loss, epochs=3, verbose=0)
    assert len(history.history["loss"]) >= 1
    assert np.all(np.isfinite(history.history["loss"]))
    assert history.history["loss"][-1] <= history.history["loss"][0]
