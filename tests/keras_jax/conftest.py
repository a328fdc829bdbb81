"""Tests of ``marquardt.keras`` on Keras' JAX backend.

Keras fixes its backend when it is first imported, so these tests run in a process of their
own with ``KERAS_BACKEND=jax`` (``tests/keras/test_keras_on_jax.py`` starts it); a run on the
TensorFlow backend skips this folder.
"""

import os

if os.environ.get("KERAS_BACKEND") != "jax":
    collect_ignore_glob = ["test_*.py"]
else:
    import jax

    jax.config.update("jax_enable_x64", True)  # before any float64 model is built
