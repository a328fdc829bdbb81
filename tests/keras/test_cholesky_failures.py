"""Failed Cholesky factorisations are counted in the logs (``cholesky_failures``), not printed.

An LM attempt whose A + λD is not numerically positive definite (λ below A's rounding level
against a singular A) fails its Cholesky factorisation; the solver's eigen-decomposition gives
the step instead (``marquardt._solvers.solve_normal_checked``). TensorFlow's kernel writes one
warning line per failure to stderr unless its C++ log level was raised before TensorFlow was
imported, which ``import marquardt`` does when it comes first (issue #15; docs/keras.md).

The network ``duplicated_columns`` makes failures exact: its two weights enter the output as
w₁x + w₂x, so their Jacobian columns are equal, and with x = 1 and batches of 4 samples the
mean-squared-error residuals (ŷ − y)/√4 give J entries 0.5 and A = JᵀJ = [[1, 1], [1, 1]]
exactly, whatever the weights (the model is linear). With λ = 1e-20 (trainlm's floor),
1 + λ rounds to 1 and the second Cholesky pivot is 1 − 1·1 = 0: every attempt fails.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import marquardt.keras as mk
from marquardt._damping import TrainLM

ROOT = Path(__file__).resolve().parents[2]
CHOLESKY_LINE = "Cholesky decomposition was not successful"


def duplicated_columns():
    """``(lm, x, y)``: the compiled ``LMModel`` of a network with two equal Jacobian columns,
    λ fixed at 1e-20 while steps are accepted (``TrainLM(mu=1e-20)``), 16 samples at x = 1."""
    inp = keras.Input((1,))
    out = keras.layers.Add()([
        keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")(inp),
        keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")(inp)])
    lm = mk.LMModel(keras.Model(inp, out), damping=TrainLM(mu=1e-20))
    lm.compile(loss="mse")
    return lm, np.ones((16, 1), "float32"), np.arange(16, dtype="float32")[:, None]


def test_failures_summed_over_the_epochs_batches():
    """Four batches per epoch, one attempt each (the eigen step solves each batch's linear
    least squares exactly, so it is accepted), every attempt failed: 4 per epoch, where the
    last batch's log alone would say 1."""
    lm, x, y = duplicated_columns()
    history = lm.fit(x, y, epochs=3, batch_size=4, shuffle=False, verbose=0).history
    assert history["cholesky_failures"] == [4, 4, 4]
    assert history["attempts"] == [1, 1, 1]


def test_failures_counted_per_attempt():
    """Full batch (16 samples: J entries 1/4, A = [[1, 1], [1, 1]] again). Epoch 1: one
    attempt at λ = 1e-20, failed, accepted; it fits the data exactly in the least-squares
    sense, so g = 0 from then on and no step can lower the loss. Epoch 2: ten rejected
    attempts at λ = 1e-20, 1e-19, ..., 1e-11; the first five fail (1 + λ rounds to 1 for
    λ ≤ 1e-16 < 2⁻⁵³), from λ = 1e-15 the factor exists. Epoch 3 starts at λ = 1e-10: none."""
    lm, x, y = duplicated_columns()
    history = lm.fit(x, y, epochs=3, shuffle=False, verbose=0).history
    assert history["attempts"] == [1, 10, 10]
    assert history["cholesky_failures"] == [1, 5, 0]
    assert history["grad_norm"][1:] == [0.0, 0.0]


def _run(order):
    env = dict(os.environ)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # what a user has
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, str(Path(__file__).with_name("quiet_run.py")), order],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


@pytest.mark.slow
def test_nothing_on_stderr_when_marquardt_is_imported_first():
    """The README's order: not one line on stderr, neither TensorFlow's start-up banners nor
    a line per failed factorisation; the 12 failures are in the history."""
    history, stderr = _run("marquardt-first")
    assert history["cholesky_failures"] == [4, 4, 4]
    assert stderr == "--- imported\n--- failures\n"


@pytest.mark.slow
def test_tensorflow_imported_first_prints_only_its_own_lines():
    """TensorFlow imported before marquardt has fixed its C++ log level (TF_CPP_MIN_LOG_LEVEL is
    read when TensorFlow is imported): its start-up banners are printed before marquardt runs,
    and its Cholesky kernel writes one line per failure, which nothing in TensorFlow's public
    API can stop afterwards (docs/keras.md, "Quiet output"). Everything else stays quiet: no
    line between the imports and the failures, and exactly one line per counted failure."""
    history, stderr = _run("tensorflow-first")
    _, rest = stderr.split("--- imported\n")  # before it: TensorFlow's banners, if any
    quiet, failures = rest.split("--- failures\n")
    assert quiet == ""
    lines = failures.splitlines()
    assert all(CHOLESKY_LINE in line for line in lines), lines
    assert len(lines) == sum(history["cholesky_failures"]) == 12
