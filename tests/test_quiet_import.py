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
