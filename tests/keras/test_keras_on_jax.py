"""``marquardt.keras`` on Keras' JAX backend, from the TensorFlow test process.

Keras fixes its backend at import, so the JAX side runs in subprocesses with
``KERAS_BACKEND=jax``: the API cases of ``tests/keras_jax`` (its slow ones only when slow
tests run), and ``tests/keras_jax/agreement_run.py``, one float64 network trained on each
backend (on TensorFlow in this process), whose weights and accept/reject sequences must agree.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _env(backend):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    return env


def _run(args, backend, timeout=900):
    done = subprocess.run([sys.executable, *args], cwd=ROOT, env=_env(backend),
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"rc {done.returncode}\n{done.stdout[-6000:]}\n{done.stderr[-6000:]}"
    return done.stdout


def test_jax_backend_api_cases(request):
    """The JAX API cases in one process (one import of JAX and Keras): its slow cases too,
    unless this session leaves slow tests out (``-m "not slow"``)."""
    marker = "not slow" if "not slow" in (request.config.getoption("markexpr") or "") else ""
    args = ["-m", "pytest", "tests/keras_jax", "-p", "no:xdist", "-q", "-p", "no:cacheprovider"]
    out = _run(args + (["-m", marker] if marker else []), "jax")
    assert " passed" in out and "failed" not in out


def _agreement_on_jax(epochs, preset="default"):
    out = _run(["tests/keras_jax/agreement_run.py", str(epochs), preset], "jax")
    return json.loads(out.split("RESULT ", 1)[1])


def _agreement_on_tensorflow(epochs, preset="default"):
    """The same script's ``train`` in this process (Keras on TensorFlow already: a fresh process
    would start TensorFlow again, 7 CPU-s); floatx is restored after it."""
    import keras

    spec = importlib.util.spec_from_file_location("agreement_run",
                                                  ROOT / "tests" / "keras_jax" / "agreement_run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    floatx = keras.backend.floatx()
    try:
        return module.train(epochs, preset)
    finally:
        keras.backend.set_floatx(floatx)


def test_tensorflow_and_jax_steps_agree_in_float64_and_jax_imports_no_tensorflow():
    epochs = 12
    tf_run, jax_run = _agreement_on_tensorflow(epochs), _agreement_on_jax(epochs)
    assert (tf_run["backend"], jax_run["backend"]) == ("tensorflow", "jax")
    assert jax_run["tensorflow_imported"] is False
    attempts = jax_run["history"]["attempts"]
    assert attempts == tf_run["history"]["attempts"] and len(attempts) == epochs
    assert max(attempts) > 1  # the sequence has rejected attempts, not only accepted ones
    for a, b in zip(jax_run["weights"], tf_run["weights"]):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-10)
    for key in ("loss", "lam", "grad_norm"):
        np.testing.assert_allclose(jax_run["history"][key], tf_run["history"][key], rtol=1e-9)


def test_tensorflow_and_jax_bayesian_regularisation_agree_in_float64():
    """TRAINBR on both backends (the shared ``keras/_evidence.py``, each backend's LM iteration
    and trace kernel): the same attempts, weights, and α, β, γ every epoch."""
    epochs = 10
    tf_run = _agreement_on_tensorflow(epochs, "trainbr")
    jax_run = _agreement_on_jax(epochs, "trainbr")
    assert jax_run["history"]["attempts"] == tf_run["history"]["attempts"]
    assert jax_run["history"]["cholesky_failures"] == tf_run["history"]["cholesky_failures"]
    for a, b in zip(jax_run["weights"], tf_run["weights"]):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-9)
    for key in ("loss", "gamma", "alpha", "beta", "e_w"):
        np.testing.assert_allclose(jax_run["history"][key], tf_run["history"][key], rtol=1e-8)
    assert 0 < tf_run["history"]["gamma"][-1] < 19  # P = 19


def test_torch_backend_is_refused_with_the_backends_named(monkeypatch):
    """Keras on PyTorch is refused when the wrapper is built (the backend read as Keras reads
    it; importing torch for real would cost seconds and prove no more)."""
    import keras

    import marquardt.keras as mk

    net = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    monkeypatch.setattr(keras.backend, "backend", lambda: "torch")
    with pytest.raises(ValueError) as err:
        mk.LMModel(net)
    assert ("marquardt.keras trains on the Keras backends 'tensorflow' and 'jax'" in str(err.value)
            and "Received: keras.backend.backend()='torch'" in str(err.value))
