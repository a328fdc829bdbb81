"""Each backend path imports only its own framework: a JAX fit never imports TensorFlow, a
NumPy fit never imports JAX, a TensorFlow fit never loads marquardt's JAX backend (checked in
a fresh interpreter; ``import tensorflow`` 2.21 itself imports ``jax`` where it is installed,
so that is the strongest check there)."""

import os
import pathlib
import subprocess
import sys

import pytest

pytest.importorskip("jax")

SRC = pathlib.Path(__file__).resolve().parents[2] / "src"

JAX_FITS = """
import sys, numpy as np, jax.numpy as jnp, marquardt
t = np.linspace(0, 3, 20); y = 2.0 * np.exp(-1.3 * t)
marquardt.curve_fit(lambda t, a, k: a * jnp.exp(-k * t), t, y, p0=[1.0, 1.0])
marquardt.least_squares(lambda p: p[0] * jnp.exp(-p[1] * t) - y, [1.0, 1.0])
marquardt.curve_fit_batch(lambda t, a, k: a * jnp.exp(-k * t), t, np.stack([y, y]),
                          p0=[1.0, 1.0])
from marquardt.scipy import residual_functions
residual_functions(lambda p: p[0] * jnp.exp(-p[1] * t) - y, [1.0, 1.0])
print(sorted(m for m in ("tensorflow", "keras") if m in sys.modules))
"""

JAX_HOST_FIT = """
import sys, numpy as np, jax.numpy as jnp, marquardt
t = np.linspace(0, 3, 20); y = 2.0 * np.exp(-1.3 * t)
marquardt.least_squares(lambda p: p[0] * jnp.exp(-p[1] * t) - y, [1.0, 1.0],
                        callback=lambda info: None)
print(sorted(m for m in ("tensorflow", "keras") if m in sys.modules))
"""

NUMPY_FITS = """
import sys, numpy as np, marquardt
t = np.linspace(0, 3, 20); y = 2.0 * np.exp(-1.3 * t)
marquardt.curve_fit(lambda t, a, k: a * np.exp(-k * t), t, y, p0=[1.0, 1.0])
marquardt.curve_fit_batch(lambda t, a, k: a * np.exp(-k * t), t, np.stack([y, y]),
                          p0=[1.0, 1.0])
print(sorted(m for m in ("jax", "tensorflow") if m in sys.modules))
"""

TF_FITS = """
import sys, numpy as np, tensorflow as tf, marquardt
t = np.linspace(0, 3, 20); y = 2.0 * np.exp(-1.3 * t)
marquardt.curve_fit(lambda t, a, k: a * tf.exp(-k * t), t, y, p0=[1.0, 1.0])
print(sorted(m for m in sys.modules if m.startswith("marquardt._backend.jax")))
"""


def _run(code: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(SRC), KERAS_BACKEND="tensorflow")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]


def test_a_jax_fit_imports_no_tensorflow():
    assert _run(JAX_HOST_FIT) == "[]"  # the host executor with jitted r and J: quick


@pytest.mark.slow
def test_every_jax_surface_imports_no_tensorflow():
    assert _run(JAX_FITS) == "[]"  # compiled solves, the batch, the SciPy bridge


def test_numpy_fits_import_neither_backend():
    assert _run(NUMPY_FITS) == "[]"


@pytest.mark.slow
def test_tensorflow_fits_import_no_jax():
    pytest.importorskip("tensorflow")
    assert _run(TF_FITS) == "[]"
