"""Trains one float64 network with ``LMModel`` on the Keras backend of this process and
prints the weights and the per-epoch logs as JSON (``tests/keras/test_keras_on_jax.py`` runs it
with ``KERAS_BACKEND=jax`` in a fresh process, calls its ``train`` in its own TensorFlow process,
and compares).

Usage: ``KERAS_BACKEND=jax python tests/keras_jax/agreement_run.py EPOCHS [trainlm|trainbr]``
"""

import json
import os
import sys

if os.environ.get("KERAS_BACKEND") == "jax":
    import jax

    jax.config.update("jax_enable_x64", True)

import keras  # noqa: E402
import numpy as np  # noqa: E402

import marquardt.keras as mk  # noqa: E402


def network():
    """1-6-1 sigmoid in float64, weights from a fixed NumPy generator (no backend RNG)."""
    net = keras.Sequential([keras.Input((1,), dtype="float64"),
                            keras.layers.Dense(6, "sigmoid", dtype="float64"),
                            keras.layers.Dense(1, dtype="float64")])
    rng = np.random.default_rng(7)
    net.set_weights([rng.normal(size=w.shape) for w in net.get_weights()])
    return net


def main(epochs: int, preset: str = "default"):
    print("RESULT " + json.dumps(train(epochs, preset)))


def train(epochs: int, preset: str = "default") -> dict:
    """The run's record (``tests/keras/test_keras_on_jax.py`` calls it in its own process for
    the TensorFlow side; it sets floatx to float64)."""
    keras.backend.set_floatx("float64")
    x = np.linspace(-2.0, 2.0, 120)[:, None]
    y = np.sin(2.0 * x) + 0.3 * x * x
    net = network()
    options = {"trainlm": mk.TRAINLM, "trainbr": mk.TRAINBR}.get(preset)
    lm = mk.LMModel(net, options=options)
    lm.compile(loss="mse")
    history = lm.fit(x, y, epochs=epochs, verbose=0)
    out = {
        "backend": keras.backend.backend(),
        "weights": [np.asarray(w).ravel().tolist() for w in net.get_weights()],
        "history": {k: np.asarray(v, dtype=float).tolist() for k, v in history.history.items()},
        "stop_reason": history.stop_reason,
        "tensorflow_imported": "tensorflow" in sys.modules,
    }
    return json.loads(json.dumps(out))  # what the JSON line carries, exactly


if __name__ == "__main__":
    main(int(sys.argv[1]), *sys.argv[2:])
