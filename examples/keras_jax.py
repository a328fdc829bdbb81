"""marquardt.keras on Keras' JAX backend: a float64 network fitted to sin(3x).

Run with the backend chosen before keras is imported:

    KERAS_BACKEND=jax python examples/keras_jax.py
"""

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)  # before any float64 array or model is made

import keras  # noqa: E402
import numpy as np  # noqa: E402

import marquardt.keras as mk  # noqa: E402

keras.config.set_floatx("float64")  # float64 inputs stay float64
x = np.linspace(-1.0, 1.0, 200)[:, None]
y = np.sin(3.0 * x)
init = keras.initializers.GlorotUniform(seed=0)
net = keras.Sequential([keras.Input((1,), dtype="float64"),
                        keras.layers.Dense(10, "sigmoid", dtype="float64", kernel_initializer=init),
                        keras.layers.Dense(1, dtype="float64", kernel_initializer=init)])
history = mk.fit(net, x, y, loss="mse", epochs=40, goal=1e-10, verbose=0)
print(f"backend {keras.backend.backend()}: {len(history.epoch)} epochs, "
      f"MSE {history.history['loss'][-1]:.2e}; {history.stop_reason}")
assert keras.backend.backend() == "jax" and "tensorflow" not in sys.modules
assert history.history["loss"][-1] < 1e-4
