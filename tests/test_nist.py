"""Certified accuracy: all 19 NIST StRD problems in tests/data/nist, from both starts, at
default settings, through the command a user runs: ``marquardt nist`` with no argument.

Results the foundation issue asks for: every run reaches LRE >= 6 on the parameters
(minimum over parameters, NIST's log relative error) and the mean over all 38 runs is >= 9.5
(asserted: >= 10, measured 10.14);
the standard errors sqrt(diag(pcov)) match the certified standard deviations to >= 6 digits.
The models are the ones parsed from the files by the safe formula parser (as the CLI does);
``nist_models.py`` holds an independent hand transcription that must agree with them.

Two runs of the 38 fits are the fixtures here, each at ``curve_fit``'s defaults
(``marquardt._curve_fit.fit_curve``):

* ``marquardt nist --json`` (no argument: the files shipped as package data, both starts), which
  fits each formula's NumPy model with its symbolic exact Jacobian (no TensorFlow) and prints
  every estimate and standard error to full precision (JSON floats round-trip exactly), so the
  LREs are computed here from the printed estimates, not taken from the command's own LRE
  columns; the same run is the test of the command with no argument (issue #15);
* the same formulas as TensorFlow models (``Problem.model()``) with autodiff Jacobians, fitted
  in this process: the path of a user's TensorFlow model.
"""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import marquardt
from marquardt import nist
from nist_models import MODELS

DATA = pathlib.Path(__file__).parent / "data" / "nist"
FILES = sorted(DATA.glob("*.dat"))
SRC = str(pathlib.Path(marquardt.__file__).resolve().parents[1])

# One xdist worker runs this whole module, so the 38 fits are made once (WHOLE_MODULES in tests/conftest.py).


@pytest.fixture(scope="module")
def cli_run():
    """``python -m marquardt nist --json`` with no file argument, in a fresh process."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([SRC, *filter(None, [env.get("PYTHONPATH")])])
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the command line must quieten TensorFlow itself
    proc = subprocess.run([sys.executable, "-m", "marquardt", "nist", "--json"], capture_output=True,
                          text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


@pytest.fixture(scope="module")
def command_results(cli_run):
    """(dataset, start) -> (problem, estimates, standard errors, the command's row)."""
    out = {}
    problems = {path.stem: nist.load(path) for path in FILES}
    for row in json.loads(cli_run.stdout)["fits"]:
        problem = problems[row["dataset"]]
        assert [p["name"] for p in row["parameters"]] == list(problem.parameter_names)
        popt = np.array([p["estimate"] for p in row["parameters"]])
        perr = np.array([p["stderr"] for p in row["parameters"]])
        out[row["dataset"], row["start"]] = (problem, popt, perr, row)
    return out


@pytest.fixture(scope="module")
def tensorflow_results():
    """As ``command_results``, the models built from TensorFlow operations (autodiff
    Jacobians), fitted in this process; the row holds status, message and the RSS."""
    pytest.importorskip("tensorflow")
    from marquardt._curve_fit import fit_curve

    out = {}
    for path in FILES:
        problem = nist.load(path)
        model = problem.model()
        for start in (1, 2):
            popt, _, result = fit_curve(model, problem.x, problem.target(),
                                        p0=problem.starts[start - 1])
            row = {"status": int(result.status), "message": str(result.message),
                   "rss": float(result.chisq)}
            out[problem.name, start] = (problem, np.asarray(popt), np.asarray(result.perr), row)
    return out


@pytest.fixture(scope="module", params=["command", "tensorflow"])
def results(request):
    """Each run of the 38 fits in turn: the command's (NumPy) and TensorFlow's."""
    return request.getfixturevalue(f"{request.param}_results")


def test_no_argument_scores_every_shipped_file_from_both_starts(cli_run, command_results):
    shipped = [path.stem for path in nist.files()]
    assert shipped == [path.stem for path in FILES]
    assert [key for key in command_results] == [(name, start) for name in shipped
                                                for start in (1, 2)]
    assert cli_run.stderr == ""  # no banner, no warning


def test_all_files_present():
    assert len(FILES) == 19


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_parsed_model_matches_hand_transcription(path):
    problem = nist.load(path)
    parsed = problem.model()(problem.x, *problem.certified)
    by_hand = MODELS[problem.name](problem.x, *problem.certified)
    np.testing.assert_allclose(np.asarray(parsed), np.asarray(by_hand), rtol=1e-13)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_certified_digits(results, path):
    for start in (1, 2):
        problem, popt, perr, row = results[path.stem, start]
        assert row["status"] > 0, f"start {start}: {row['message']}"  # SciPy's success: status > 0
        lre = nist.lre(popt, problem.certified).min()
        lre_sd = nist.lre(perr, problem.certified_std).min()
        assert lre >= 6.0, f"start {start}: LRE {lre:.2f} ({popt})"
        assert lre_sd >= 6.0, f"start {start}: standard-error LRE {lre_sd:.2f}"
        if "min_lre" in row:  # the command's column says the same
            assert row["min_lre"] == pytest.approx(lre, abs=1e-12)
        np.testing.assert_allclose(row["rss"], problem.residual_sum_of_squares, rtol=1e-8)


def test_mean_lre_at_least_9_7(results):
    """Issue #13, result 4 asks for a mean of 9.5. The command's NumPy models with symbolic
    Jacobians: 9.86 (2026-12-05). The TensorFlow models: every fit runs on the host
    executor (each model is fitted twice, too few fits to pay for compiling its solve:
    ``marquardt._tiering``): 9.81 on an AVX-512 machine (2026-12-04), with the last
    Gauss-Newton step taken below the rounding of the cost, 9.18 without that step
    (``_gain.ROUNDING_CHANGE`` = 0), so 9.7 guards it. (When the second start ran as a
    compiled loop: 10.14 on AVX2, 9.86-9.97 on AVX-512; whether the last, rounding-level step
    is taken before ftol stops depends on the rounding of the executor's kernels.)"""
    lres = [nist.lre(popt, problem.certified).min()
            for problem, popt, _, _ in results.values()]
    assert len(lres) == 38
    assert np.mean(lres) >= 9.7, f"mean LRE {np.mean(lres):.2f}"
