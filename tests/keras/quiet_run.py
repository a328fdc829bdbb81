"""A fresh process for ``test_cholesky_failures.py``: what a user's script prints on stderr.

``python quiet_run.py marquardt-first|tensorflow-first``: imports marquardt before TensorFlow
(as the README does) or after it, runs the README's ``curve_fit`` and Keras fits (no failed
factorisation), writes a marker line to stderr, then trains ``duplicated_columns()`` for
three mini-batch epochs, whose every attempt fails its Cholesky factorisation (4 per epoch),
and prints the history as JSON on stdout. Markers: ``--- imported`` after the imports,
``--- failures`` before the run with failed factorisations.
"""

import json
import sys

if sys.argv[1] == "tensorflow-first":
    import tensorflow as tf

    import marquardt
else:
    import marquardt
    import tensorflow as tf
print("--- imported", file=sys.stderr, flush=True)

import keras  # noqa: E402
import numpy as np  # noqa: E402

import marquardt.keras as mk  # noqa: E402

x = np.linspace(0, 4, 50)
y = 2.5 * np.exp(-1.3 * x) + 0.5 + 0.01 * np.random.default_rng(0).normal(size=50)
marquardt.curve_fit(lambda x, a, b, c: a * tf.exp(-b * x) + c, x, y, p0=[1, 1, 0])
net = keras.Sequential([keras.Input((1,)), keras.layers.Dense(20, "tanh"), keras.layers.Dense(1)])
mk.fit(net, x, y, loss="mse", epochs=20, verbose=0)
print("--- failures", file=sys.stderr, flush=True)

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from test_cholesky_failures import duplicated_columns  # noqa: E402

lm, x, y = duplicated_columns()
history = lm.fit(x, y, epochs=3, batch_size=4, shuffle=False, verbose=0)
print(json.dumps({k: np.asarray(v).tolist() for k, v in history.history.items()}))
