"""TensorFlow's start-up notices that ``TF_CPP_MIN_LOG_LEVEL`` cannot hide (``_quiet_import``)."""

import os
import subprocess
import sys

import pytest

from marquardt import _quiet_import

ABSL = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
ONEDNN = ("I0000 00:00:1796394743.673738   28268 port.cc:153] oneDNN custom operations are on. You "
          "may see slightly different numerical results due to floating-point round-off errors\n")


def test_only_the_two_notices_are_dropped_and_the_rest_keeps_its_order(capfd):
    def noisy():
        os.write(2, (ABSL + ONEDNN + "W0000 a real warning\n" + ABSL + ONEDNN + "last\n").encode())
        return 42

    assert _quiet_import.without_notices(noisy) == 42
    assert capfd.readouterr().err == "W0000 a real warning\nlast\n"


def test_what_was_printed_comes_back_when_the_call_raises(capfd):
    def failing():
        os.write(2, (ONEDNN + "E0000 the reason\n").encode())
        raise ImportError("broken build")

    with pytest.raises(ImportError, match="broken build"):
        _quiet_import.without_notices(failing)
    assert capfd.readouterr().err == "E0000 the reason\n"


def _fresh(code: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL",)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**environ, **env}, timeout=300, check=True)


@pytest.mark.slow
def test_a_fresh_import_of_tensorflow_after_marquardt_prints_nothing():
    """On a CPU where TensorFlow turns oneDNN on (this test's CI and dev machines: AMD EPYC,
    AVX-512 VNNI/BF16) the import printed the two notices twice; on other CPUs it prints none
    either way. ``importlib.util.find_spec`` before the import must not use the finder up, and
    the finder is gone afterwards."""
    code = ("import importlib.util, sys, marquardt\n"
            "from marquardt import _quiet_import as q\n"
            "assert importlib.util.find_spec('tensorflow') is not None\n"
            "assert q._FINDER in sys.meta_path\n"
            "import tensorflow as tf\n"
            "assert q._FINDER not in sys.meta_path\n"
            "print(float(tf.constant(1.0) + 1))\n")
    run = _fresh(code)
    assert (run.stdout, run.stderr) == ("2.0\n", "")
    # the user asked for the log: the finder steps aside, nothing is hidden
    shown = _fresh("import marquardt, tensorflow as tf; print(float(tf.constant(1.0) + 1))",
                   TF_CPP_MIN_LOG_LEVEL="0")
    assert shown.stdout == "2.0\n"


#: TensorFlow first, then marquardt: a batch compiled with XLA, one without XLA and a single fit
#: of a ``tf.numpy_function`` model, then the user's own warnings.
TENSORFLOW_FIRST = """
import sys
import numpy as np
import tensorflow as tf
print("--- imported", file=sys.stderr, flush=True)
import marquardt

T = np.linspace(0.0, 4.0, 20)
Y = 2.0 * np.exp(-np.array([[0.5], [1.0]]) * T)

def decay(t, a, k):
    print("user: tracing decay", file=sys.stderr)
    return a * tf.exp(-k * t)

def via_numpy(t, a, k):
    return a * tf.numpy_function(lambda k: np.exp(-k * T), [k], tf.float64)

assert marquardt.curve_fit_batch(decay, T, Y, [1.0, 1.0], chunk_size=8).success.all()
assert marquardt.curve_fit_batch(via_numpy, T, Y, [1.0, 1.0], jac="2-point", chunk_size=8,
                                 jit_compile=False).success.all()
marquardt.curve_fit(via_numpy, T, Y[0], [1.0, 1.0], jac="2-point")
print("--- fitted", file=sys.stderr, flush=True)
tf.get_logger().warning("user: a warning")
tf.vectorized_map(lambda k: tf.numpy_function(lambda k: np.exp(-k * T), [k], tf.float64),
                  tf.constant([1.0, 2.0], tf.float64))
"""


@pytest.mark.slow
def test_tensorflow_imported_first_prints_nothing_for_marquardts_compiled_functions():
    """Imported before marquardt, TensorFlow prints its import banners (absl's, oneDNN's, "This
    TensorFlow binary is optimized ...") before marquardt exists: those stay. After them it
    printed XLA's start-up INFO lines and "Compiled cluster using XLA!" at the first compiled
    batch, oneDNN's DT_BOOL "error" and pfor's "Using a while_loop for converting PyFunc" (five
    times) for a ``tf.numpy_function`` model: now nothing but the user's own lines, in order,
    and the same pfor warning for the user's own ``tf.vectorized_map``."""
    run = _fresh(TENSORFLOW_FIRST)
    after = run.stderr.split("--- imported\n", 1)[1]
    fitting, user = after.split("--- fitted\n")
    assert set(fitting.splitlines()) == {"user: tracing decay"}, fitting
    assert "user: a warning" in user
    assert "Using a while_loop for converting PyFunc" in user
