"""Tests of the ``marquardt`` command line.

End-to-end tests run each subcommand in a subprocess (``python -m marquardt ...``) on data the test
writes, and check the exit status, the numbers and that every PNG opens as an image; variants of a
command that has such a test (``nist`` on other files, ``train --method trainbr``) run ``main()``
in this process, which has TensorFlow already (a fresh process costs 7 CPU-s to start it). Refusals of
bad input run ``main()`` in this process (they fail before TensorFlow is needed) and check the
exit status and the one-line message; a few run in a subprocess to check that no traceback is
printed and that TensorFlow is not even imported. ``train`` and ``demo`` need ``marquardt.keras``
(the Keras trainer) and are skipped without it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import marquardt
from marquardt.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[2]
SRC = str(Path(marquardt.__file__).resolve().parents[1])  # subprocesses import the package these tests import
NIST = ROOT / "tests" / "data" / "nist"
HAS_TRAINER = importlib.util.find_spec("marquardt.keras") is not None
needs_trainer = pytest.mark.skipif(
    not HAS_TRAINER, reason="marquardt.keras (the Keras LM trainer, branch 'keras') is not in this checkout"
)


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m marquardt ARGS`` in a subprocess, with this checkout's ``src`` first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([SRC, *filter(None, [env.get("PYTHONPATH")])])
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the command line must quieten TensorFlow itself
    return subprocess.run([sys.executable, "-m", "marquardt", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)


def assert_png(path: Path) -> None:
    from PIL import Image

    assert path.is_file(), f"{path} was not written"
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size[0] > 200 and image.size[1] > 200
        image.verify()


def assert_only_our_lines(stderr: str) -> None:
    """stderr holds only the command's own ``marquardt: ...`` lines: no TensorFlow, absl or XLA
    banner, no Python warning, no traceback (issue #15)."""
    foreign = [line for line in stderr.splitlines() if line.strip() and not line.startswith("marquardt: ")]
    assert not foreign, "stderr has lines that are not the command's own:\n" + "\n".join(foreign[:10])


def write_csv(path: Path, header: str, rows) -> Path:
    lines = [header] + [",".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


TRUE = {"a": 2.5, "b": 0.4, "c": 0.3}


@pytest.fixture(scope="module")
def decay_csv(tmp_path_factory) -> Path:
    """y = a·exp(−b·t) + c with Gaussian noise of known, varying standard deviation."""
    rng = np.random.default_rng(7)
    t = np.linspace(0.0, 10.0, 80)
    err = 0.02 + 0.03 * rng.uniform(size=t.size)
    y = TRUE["a"] * np.exp(-TRUE["b"] * t) + TRUE["c"] + err * rng.normal(size=t.size)
    path = tmp_path_factory.mktemp("data") / "decay.csv"
    return write_csv(path, "t,counts,err", zip(t, y, err))


# ---- fit, end to end ---------------------------------------------------------------------------------


def test_fit_recovers_known_parameters_and_writes_the_report(decay_csv, tmp_path):
    out = tmp_path / "report"
    proc = run_cli("fit", str(decay_csv), "--model", "a*exp(-b*x) + c", "--p0", "a=1,b=0.1,c=0", "--x", "t",
                   "--y", "counts", "--sigma", "err", "--absolute-sigma", "--report", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["success"] and result["ndata"] == 80 and result["nvars"] == 3 and result["dof"] == 77
    for name, true in TRUE.items():
        fitted = result["parameters"][name]
        assert abs(fitted["value"] - true) < 3 * fitted["stderr"], (name, fitted, true)
        assert 0 < fitted["relative_error"] < 0.1
    assert 0.5 < result["redchi"] < 1.5  # the noise has the stated standard deviations
    assert result["r_squared"] > 0.99
    assert result["correlation"]["b"]["c"] == pytest.approx(result["correlation"]["c"]["b"])
    text = (out / "fit_report.txt").read_text()
    for heading in ("[[Fit Statistics]]", "[[Variables]]", "[[Correlations]]", "reduced chi-square", "R-squared"):
        assert heading in text
    assert json.loads((out / "fit.json").read_text()) == result
    assert_png(out / "fit.png")
    assert_only_our_lines(proc.stderr)


def test_fit_runs_without_tensorflow_or_jax(decay_csv):
    """``fit`` evaluates the formula with NumPy and its symbolic Jacobian: in a process where
    TensorFlow, JAX and Keras cannot be imported (an install without the ``cpu`` extra) it
    fits, and it never even tries to import them (nor ``scipy.optimize``, slow to import, when
    no warning is due)."""
    code = (
        "import json, sys\n"
        "class Block:\n"
        "    tried = []\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.partition('.')[0] in ('tensorflow', 'jax', 'keras'):\n"
        "            Block.tried.append(name)\n"
        "            raise ImportError(f'{name} is blocked by the test')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from marquardt.cli import main\n"
        f"status = main(['fit', {str(decay_csv)!r}, '--model', 'a*exp(-b*t) + c', '--p0', "
        "'a=1,b=0.1,c=0', '--y', 'counts', '--sigma', 'err', '--json'])\n"
        "print(json.dumps([status, Block.tried, 'tensorflow' in sys.modules,\n"
        "                  'scipy.optimize' in sys.modules]))\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    *report, verdict = proc.stdout.strip().splitlines()
    assert json.loads(verdict) == [0, [], False, False]  # nor SciPy's optimize (0.4 s) without a warning
    result = json.loads("\n".join(report))
    assert result["success"] and result["nfev"] == 8
    assert_only_our_lines(proc.stderr)


def test_fit_agrees_with_the_tensorflow_autodiff_fit(decay_csv, capsys):
    """The NumPy model with its symbolic Jacobian fits as the TensorFlow model with autodiff
    (what ``fit`` ran before): the same evaluations and iterations, the numbers equal to far
    more digits than the report prints."""
    pytest.importorskip("tensorflow")
    from marquardt._curve_fit import fit_curve
    from marquardt._formula import parse_formula
    from marquardt.cli._data import read_table

    code = main(["fit", str(decay_csv), "--model", "a*exp(-b*t) + c", "--p0", "a=1,b=0.1,c=0",
                 "--y", "counts", "--sigma", "err", "--json"])
    ours = json.loads(capsys.readouterr().out)
    assert code == 0
    data = read_table(decay_csv).numeric(["t", "counts", "err"], dropna=False)
    model = parse_formula("a*exp(-b*t) + c", variables=["t"]).as_model(["t"], ["a", "b", "c"])
    popt, _, theirs = fit_curve(model, data["t"], data["counts"], p0=[1.0, 0.1, 0.0],
                                sigma=data["err"])
    assert (ours["nfev"], ours["nit"]) == (theirs.nfev, theirs.nit)
    for i, name in enumerate("abc"):
        assert ours["parameters"][name]["value"] == pytest.approx(popt[i], rel=1e-12)
        assert ours["parameters"][name]["stderr"] == pytest.approx(theirs.perr[i], rel=1e-10)
    assert ours["chisq"] == pytest.approx(theirs.chisq, rel=1e-12)


def test_fit_text_report_lists_values_errors_and_correlations(decay_csv, capsys):
    code = main(["fit", str(decay_csv), "--model", "a*exp(-b*t) + c", "--p0", "a=1,b=0.1,c=0", "--y", "counts"])
    out = capsys.readouterr().out
    assert code == 0
    lines = {line.split(":")[0].strip(): line for line in out.splitlines() if line.startswith("    ") and ":" in line}
    for name in TRUE:
        assert "+/-" in lines[name] and "%)" in lines[name] and "(init = " in lines[name]
    assert "C(b, c)" in out  # strongly correlated; correlations under 0.1 are left out
    assert "# data points      = 80" in out


def test_fit_with_bounds_stops_at_the_bound(decay_csv, capsys):
    code = main(["fit", str(decay_csv), "--model", "a*exp(-b*t) + c", "--p0", "a=1,b=0.1,c=0", "--y", "counts",
                 "--bounds", "b=0:0.3", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0
    assert result["parameters"]["b"]["value"] == pytest.approx(0.3)
    assert result["parameters"]["b"]["at_bound"] is True
    assert result["parameters"]["b"]["max"] == 0.3 and result["parameters"]["a"]["max"] is None  # inf -> null


def test_fit_starting_on_a_bound_where_the_model_is_undefined(tmp_path, capsys):
    """Michaelis-Menten with km=0 at its bound and S = 0 among the data: 0/0 at --p0, finite
    where the fit starts (1e-10 inside the bound, as SciPy's trf). It used to be refused."""
    s = np.array([0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0])
    path = write_csv(tmp_path / "mm.csv", "S,v", zip(s, 10.0 * s / (2.5 + s)))
    code = main(["fit", str(path), "--model", "vmax*S/(km+S)", "--y", "v", "--p0", "vmax=5,km=0",
                 "--bounds", "km=0:", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0
    assert result["parameters"]["km"]["value"] == pytest.approx(2.5, rel=1e-6)
    assert result["parameters"]["km"]["init"] == 0.0


def test_fit_of_a_formula_whose_derivative_is_undefined_at_a_data_point(tmp_path, capsys):
    """a*sqrt(b*x) + c*x with x = 0 in the data: finite there, its derivative is not (0*inf
    from autodiff). The fit falls back on 2-point differences and says so on stderr; it used
    to exit 1 with 'must return finite residuals and Jacobian at p0'."""
    x = np.arange(8.0)
    path = write_csv(tmp_path / "sqrt.csv", "x,y", zip(x, 2.0 * np.sqrt(1.5 * x) + 0.1 * x))
    code = main(["fit", str(path), "--model", "a*sqrt(b*x) + c*x", "--p0", "a=1,b=1,c=0",
                 "--bounds", "b=0.5:10", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "fitting with finite differences (2-point) instead" in captured.err
    result = json.loads(captured.out)
    a, b = result["parameters"]["a"]["value"], result["parameters"]["b"]["value"]
    assert a * np.sqrt(b) == pytest.approx(2.0 * np.sqrt(1.5), rel=1e-6)


def test_fit_two_variables_with_dropna(tmp_path, capsys):
    rng = np.random.default_rng(1)
    u, v = rng.uniform(-1, 1, 40), rng.uniform(0, 2, 40)
    z = 1.5 * u - 0.7 * v**2 + 0.2 + 0.01 * rng.normal(size=40)
    rows = [[f"{a:.6f}", f"{b:.6f}", f"{c:.6f}", "label"] for a, b, c in zip(u, v, z)]
    rows[5][1] = "NA"
    rows[9][2] = ""
    path = write_csv(tmp_path / "plane.csv", "u,v,z,note", rows)
    code = main(["fit", str(path), "--model", "p*u + q*v**2 + r", "--p0", "p=1,q=1,r=0", "--y", "z", "--dropna",
                 "--json"])
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert code == 0
    assert result["ndata"] == 38 and result["dropped_lines"] == [7, 11]
    assert "dropped 2 rows with missing values (lines 7, 11)" in captured.err
    assert result["parameters"]["p"]["value"] == pytest.approx(1.5, abs=0.02)
    assert result["parameters"]["q"]["value"] == pytest.approx(-0.7, abs=0.02)
    assert result["variables"] == {"u": "u", "v": "v"}


def test_fit_dropna_of_one_row_says_row_and_line(tmp_path, capsys):
    rows = [[f"{x:.1f}", f"{2.0 * x + 1.0:.6f}"] for x in range(8)]
    rows[3][1] = "NA"
    path = write_csv(tmp_path / "line.csv", "x,y", rows)
    assert main(["fit", str(path), "--model", "a*x + b", "--p0", "a=1,b=0", "--dropna",
                 "--json"]) == 0
    assert "marquardt: note: dropped 1 row with missing values (line 5)\n" in capsys.readouterr().err


def test_fit_that_does_not_converge_reports_and_exits_1(decay_csv, capsys):
    code = main(["fit", str(decay_csv), "--model", "a*exp(-b*t) + c", "--p0", "a=1,b=0.1,c=0", "--y", "counts",
                 "--max-nfev", "2"])
    captured = capsys.readouterr()
    assert code == 1
    assert "[[Variables]]" in captured.out  # the report is still printed
    assert captured.err.strip().startswith("marquardt: error: the fit did not converge")


def test_a_covariance_not_estimated_says_why_on_stderr(small_csv, capsys):
    """(a + b)·x + c: a and b change the model only together, so J has rank 2 < 3 and the
    covariance is not estimated; the report says so and stderr says why, on one line."""
    code = main(["fit", str(small_csv), "--model", "(a + b)*x + c", "--p0", "a=1,b=1,c=0"])
    captured = capsys.readouterr()
    assert code == 0 and "(not estimated)" in captured.out
    assert captured.err == ("marquardt: warning: Covariance of the parameters could not be "
                            "estimated: the Jacobian at the solution has rank 2 < n = 3 (a "
                            "parameter, or a combination of them, does not change the model)\n")


# ---- refusals ------------------------------------------------------------------------------------------


def test_a_missing_dependency_prints_its_install_lines(decay_csv, capsys, monkeypatch):
    """An ImportError (TensorFlow not installed, say) is an expected error whose message says
    how to install what is missing, one command per line: printed as it is, exit 1."""
    from marquardt.cli import _fit

    def missing(*args, **kwargs):
        raise ImportError("This part needs TensorFlow. Install one build:\n"
                          "    pip install 'marquardt[cpu]'\n    pip install 'marquardt[tensorflow]'")

    monkeypatch.setattr(_fit, "parse_formula", missing)
    code = main(["fit", str(decay_csv), "--model", "a*exp(-b*t) + c", "--p0", "a=1,b=0.1,c=0",
                 "--y", "counts"])
    assert code == 1
    assert capsys.readouterr().err == ("marquardt: error: This part needs TensorFlow. Install one "
                                       "build:\n    pip install 'marquardt[cpu]'\n"
                                       "    pip install 'marquardt[tensorflow]'\n")



@pytest.fixture(scope="module")
def small_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("small") / "small.csv"
    return write_csv(path, "x,y,err,name", [(i, 2 * i + 1, 0.1, f"r{i}") for i in range(6)])


def test_a_report_directory_that_cannot_be_created_is_one_line_before_the_fit(small_csv, tmp_path,
                                                                            capsys):
    """--report naming a path the file system refuses (here a name too long; a file in its
    place is 'fit report is a file' above): one line naming the option, before any fit. It
    used to fit, print the report, then fail with Python's '[Errno ...]' naming no option."""
    too_long = tmp_path / ("d" * 300)
    code = main(["fit", str(small_csv), "--model", "a*x + b", "--p0", "a=1,b=0",
                 "--report", str(too_long)])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert captured.err.startswith(f"marquardt: error: --report: {str(too_long)!r} cannot be "
                                   "used (")


def _bad_files(directory: Path) -> dict[str, Path]:
    files = {
        "text": "x,y\n1,2\n2,abc\n3,4\n",
        "nan": "x,y\n1,2\n2,\n3,4\n",
        "ragged": "x,y\n1,2\n2,3,4\n",
        "numeric_header": "1,2\n3,4\n",
        "empty": "# only a comment\n\n",
        "header_only": "x,y\n",
        "inf": "x,y\n1,inf\n",
        "sigma": "x,y,err\n1,2,0.1\n2,3,0\n3,4,0.1\n",
        "tiny": "x,y\n1,2\n2,3\n",
        "repeat": "x,x\n1,2\n",
    }
    paths = {}
    for name, text in files.items():
        paths[name] = directory / f"{name}.csv"
        paths[name].write_text(text)
    return paths


FIT = ("--model", "a*x + b", "--p0", "a=1,b=0")
REFUSALS = [
    # (id, arguments (SMALL / BAD:name / DIR placeholders), exit status, message pattern)
    ("missing file", ["fit", "DIR/nope.csv", *FIT], 1, r"nope\.csv: no such file"),
    ("directory", ["fit", "DIR", *FIT], 1, r"is a directory"),
    ("missing column", ["fit", "SMALL", *FIT, "--y", "yy"], 1, r"no column 'yy' \(given by --y\).*did you mean 'y'"),
    ("missing x column", ["fit", "SMALL", *FIT, "--x", "time"], 1, r"no column 'time' \(given by --x\)"),
    ("non-numeric cell", ["fit", "BAD:text", *FIT], 1, r"text\.csv, line 3, column 'y': 'abc' is not a number"),
    ("missing value", ["fit", "BAD:nan", *FIT], 1, r"nan\.csv, line 3, column 'y': missing value in data row 2.*--dropna"),
    ("infinite value", ["fit", "BAD:inf", *FIT], 1, r"line 2, column 'y': 'inf' is not a finite number"),
    ("ragged row", ["fit", "BAD:ragged", *FIT], 1, r"line 3: expected 2 fields like the header, found 3"),
    ("numeric header", ["fit", "BAD:numeric_header", *FIT], 1, r"line 1: the first line must name the columns"),
    ("empty file", ["fit", "BAD:empty", *FIT], 1, r"the file is empty"),
    ("no data rows", ["fit", "BAD:header_only", *FIT], 1, r"no data rows"),
    ("repeated column", ["fit", "BAD:repeat", *FIT], 1, r"repeats the column name"),
    ("sigma not positive", ["fit", "BAD:sigma", *FIT, "--sigma", "err"], 1, r"line 3, column 'err': sigma must be > 0"),
    ("too few rows", ["fit", "BAD:tiny", "--model", "a*x**2 + b*x + c", "--p0", "a=1,b=1,c=0"], 1,
     r"2 data rows cannot determine 3 parameters"),
    ("unknown parameter", ["fit", "SMALL", "--model", "a*x + b + k", "--p0", "a=1,b=0"], 2,
     r"--model: Formula error at column 11: unknown name 'k'"),
    ("unknown variable", ["fit", "SMALL", "--model", "a*time + b", "--p0", "a=1,b=0"], 2, r"unknown name 'time'"),
    ("unused parameter", ["fit", "SMALL", "--model", "a*x", "--p0", "a=1,b=0"], 2, r"does not use the parameter\(s\) \['b'\]"),
    ("parameter named like a column", ["fit", "SMALL", "--model", "x*err", "--p0", "x=1"], 2,
     r"'x' is both a parameter and a data column"),
    ("attribute access", ["fit", "SMALL", "--model", "a*x.__class__ + b", "--p0", "a=1,b=0"], 2,
     r"attribute access is not allowed"),
    ("import", ["fit", "SMALL", "--model", "__import__('os').system('echo hi')", "--p0", "a=1"], 2,
     r"Formula error"),
    ("dunder name", ["fit", "SMALL", "--model", "a*__builtins__ + b", "--p0", "a=1,b=0"], 2,
     r"names starting with '_' are not allowed"),
    ("lambda", ["fit", "SMALL", "--model", "(lambda: a)() + b*x", "--p0", "a=1,b=0"], 2, r"Formula error"),
    ("comprehension", ["fit", "SMALL", "--model", "sum([a for a in x]) + b", "--p0", "a=1,b=0"], 2, r"Formula error"),
    ("function outside the whitelist", ["fit", "SMALL", "--model", "a*gamma(x) + b", "--p0", "a=1,b=0"], 2,
     r"'gamma' is not an allowed function"),
    ("statement", ["fit", "SMALL", "--model", "a = x", "--p0", "a=1"], 2, r"invalid syntax"),
    ("too long", ["fit", "SMALL", "--model", "a*x" + " + a*x" * 700, "--p0", "a=1"], 2, r"too long"),
    ("too deep", ["fit", "SMALL", "--model", "(" * 150 + "a*x" + ")" * 150, "--p0", "a=1"], 2, r"nested too deeply"),
    ("p0 syntax", ["fit", "SMALL", "--model", "a*x", "--p0", "a"], 2, r"fit: argument --p0: expected NAME=VALUE"),
    ("p0 not a number", ["fit", "SMALL", "--model", "a*x", "--p0", "a=one"], 2, r"argument --p0: a: 'one' is not a number"),
    ("bounds on an unknown parameter", ["fit", "SMALL", *FIT, "--bounds", "c=0:1"], 2, r"--bounds: 'c' is not a parameter"),
    ("bounds reversed", ["fit", "SMALL", *FIT, "--bounds", "a=1:0"], 2, r"lower bound 1 must be below the upper bound 0"),
    ("bound NaN", ["fit", "SMALL", *FIT, "--bounds", "a=nan:1"], 2,
     r"argument --bounds: a: 'nan' is not a number \(for no bound, leave that end empty or write inf\)"),
    ("start outside bounds", ["fit", "SMALL", *FIT, "--bounds", "a=2:3"], 2, r"--p0: a=1 lies outside its bounds \[2, 3\]"),
    ("model not finite at start", ["fit", "SMALL", "--model", "a*log(x - 10)", "--p0", "a=1"], 1,
     r"not finite at the starting values --p0 \(line 2 of the data gives nan; 6 rows in all\)"),
    ("model not finite at one row", ["fit", "SMALL", "--model", "a*x + b/x", "--p0", "a=1,b=1"], 1,
     r"not finite at the starting values --p0 \(line 2 of the data gives inf; 1 row in all\)"),
    ("missing options", ["fit", "SMALL"], 2, r"fit: the following arguments are required: --model, --p0"),
    ("unknown command", ["frobnicate"], 2, r"invalid choice: 'frobnicate'"),
    ("no command", [], 2, r"the following arguments are required: COMMAND"),
    ("unknown option", ["fit", "SMALL", *FIT, "--colour"], 2,
     r"fit: unrecognized arguments: --colour \(see 'marquardt fit --help'\)"),
    ("nist missing file", ["nist", "DIR/nope.dat"], 1, r"nope\.dat: no such file"),
    ("nist directory without files", ["nist", "DIR"], 1, r"a directory with no \.dat files"),
    ("nist not a StRD file", ["nist", "SMALL"], 1, r"small\.csv: no 'Dataset Name:' line found"),
    ("nist bad start", ["nist", "SMALL", "--start", "3"], 2, r"argument --start: invalid choice"),
    ("train missing target", ["train", "SMALL", "--target", "z"], 1, r"no column 'z' \(given by --target\)"),
    ("train non-numeric input", ["train", "SMALL", "--target", "y"], 1, r"column 'name': 'r0' is not a number"),
    ("train too few rows", ["train", "BAD:tiny", "--target", "y"], 1, r"2 rows are too few for --split 0.7,0.15,0.15"),
    ("train split sum", ["train", "SMALL", "--target", "y", "--split", "0.5,0.2,0.2"], 2, r"must sum to 1"),
    ("train hidden", ["train", "SMALL", "--target", "y", "--hidden", "ten"], 2, r"expected layer sizes like 20,20"),
    ("train out suffix", ["train", "SMALL", "--target", "y", "--out", "model.h5"], 2, r"must end in \.keras"),
    ("train input is target", ["train", "SMALL", "--target", "y", "--inputs", "x,y"], 2, r"'y' is also a target"),
    ("train trainbr max-fail", ["train", "SMALL", "--target", "y", "--method", "trainbr", "--max-fail", "3"], 2,
     r"--max-fail: --method trainbr has no validation stop \(MATLAB's max_fail 0\); found --max-fail 3"),
    ("train report is a file", ["train", "SMALL", "--target", "y", "--report", "DIR/tiny.csv"], 2,
     r"--report: '.*tiny\.csv' is a file, not a directory"),
    ("train out is a directory", ["train", "SMALL", "--target", "y", "--out", "DIR/d.keras"], 2,
     r"--out: '.*d\.keras' is a directory, not a file"),
    ("train out under a file", ["train", "SMALL", "--target", "y", "--out", "DIR/tiny.csv/m.keras"], 2,
     r"--out: '.*tiny\.csv' is a file, not a directory; found --out .*m\.keras"),
    ("fit report is a file", ["fit", "SMALL", *FIT, "--report", "DIR/tiny.csv"], 2,
     r"--report: '.*tiny\.csv' is a file, not a directory"),
    ("train negative seed", ["train", "SMALL", "--target", "y", "--seed", "-1"], 2,
     r"train: argument --seed: must be a whole number from 0 to 2\*\*32 - 1; found -1"),
    ("train seed too large", ["train", "SMALL", "--target", "y", "--seed", "5000000000"], 2,
     r"argument --seed: must be a whole number from 0 to 2\*\*32 - 1; found 5000000000"),
    ("demo negative seed", ["demo", "--seed", "-1", "--no-plot"], 2, r"demo: argument --seed: must be a whole"),
    ("train trainbr too few rows", ["train", "BAD:tiny", "--target", "y", "--method", "trainbr"], 1,
     r"2 rows are too few for --split 0.85,0,0.15"),
]


@pytest.mark.parametrize(("argv", "code", "pattern"), [case[1:] for case in REFUSALS],
                         ids=[case[0] for case in REFUSALS])
def test_bad_input_gives_one_line_and_an_exit_status(argv, code, pattern, small_csv, tmp_path, capsys):
    import re

    bad = _bad_files(tmp_path)
    (tmp_path / "d.keras").mkdir()
    argv = [str(small_csv) if a == "SMALL" else str(bad[a[4:]]) if a.startswith("BAD:") else
            a.replace("DIR", str(tmp_path)) for a in argv]
    assert main(argv) == code
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("marquardt: error: ")
    assert re.search(pattern, lines[0]), lines[0]
    assert captured.out == ""


def test_refusals_in_a_subprocess_print_no_traceback_and_never_import_tensorflow(small_csv, tmp_path):
    marker = tmp_path / "hacked"
    formulas = ["a*x.__class__ + b", f"__import__('os').system('touch {marker}')", "open('/etc/passwd') + a + b*x"]
    code = (
        "import sys\n"
        "from marquardt.cli import main\n"
        f"codes = [main(['fit', {str(small_csv)!r}, '--model', m, '--p0', 'a=1,b=0']) for m in {formulas!r}]\n"
        "print(codes, 'tensorflow' in sys.modules)\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.stdout.strip() == "[2, 2, 2] False"
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("marquardt: error: --model: Formula error") for line in lines)
    assert not marker.exists()


def test_missing_file_from_the_console_entry_point_is_one_line(tmp_path):
    proc = run_cli("fit", str(tmp_path / "absent.csv"), "--model", "a*x", "--p0", "a=1")
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"marquardt: error: {tmp_path / 'absent.csv'}: no such file"
    assert proc.stdout == ""


def test_missing_matplotlib_is_reported_before_fitting(small_csv, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    assert main(["fit", str(small_csv), *FIT, "--report", str(tmp_path / "report")]) == 1
    captured = capsys.readouterr()
    from marquardt._install import install_command

    assert captured.err == ("marquardt: error: plots need matplotlib, which is not installed: "
                            f"{install_command('cli')}\n")
    assert install_command("cli").startswith("pip install -e '")  # these tests run from a clone
    assert captured.out == "" and not (tmp_path / "report").exists()


def test_help_of_every_command(capsys):
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    for command in ("demo", "train", "fit", "nist"):
        assert command in text
        assert main([command, "--help"]) == 0
        assert f"usage: marquardt {command}" in capsys.readouterr().out


def test_python_dash_m_help():
    proc = run_cli("--help", timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: marquardt") and "demo" in proc.stdout
    assert proc.stderr == ""


def test_debug_shows_the_traceback(small_csv):
    with pytest.raises(Exception, match="unknown name 'k'"):
        main(["--debug", "fit", str(small_csv), "--model", "a*x + k", "--p0", "a=1"])


# ---- nist ---------------------------------------------------------------------------------------------


def test_nist_reaches_six_digits_from_both_starts(capsys):
    """In this process: tests/test_nist.py runs ``python -m marquardt nist`` in a fresh one."""
    code = main(["nist", str(NIST / "Misra1a.dat"), str(NIST / "DanWood.dat"), "--json", "--min-lre", "6"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = json.loads(captured.out)
    assert [(fit["dataset"], fit["start"]) for fit in result["fits"]] == [
        ("Misra1a", 1), ("Misra1a", 2), ("DanWood", 1), ("DanWood", 2)]
    for fit in result["fits"]:
        assert fit["min_lre"] >= 6 and fit["lre_rss"] >= 6 and fit["min_lre_stderr"] >= 4
        assert [p["name"] for p in fit["parameters"]] == ["b1", "b2"]
        assert fit["seconds"] > 0 and fit["status"] > 0


def test_nist_table_and_min_lre_failure(capsys):
    code = main(["nist", str(NIST / "DanWood.dat"), "--start", "2", "--min-lre", "11.5"])
    captured = capsys.readouterr()
    assert code == 1  # 11 digits is the cap: 11.5 cannot be met
    lines = captured.out.splitlines()
    assert lines[0].split()[:3] == ["dataset", "level", "start"]
    assert lines[2].split()[:3] == ["DanWood", "Lower", "2"]
    assert "1 fits in" in captured.out
    assert captured.err.startswith("marquardt: error: 1 fits have a parameter LRE below 11.5")


def test_nist_files_are_shipped_with_the_package():
    shipped = marquardt.nist.files()
    assert [path.name for path in shipped] == sorted(path.name for path in NIST.glob("*.dat"))
    assert all(path.read_bytes() == (NIST / path.name).read_bytes() for path in shipped)


def test_nist_with_a_directory(tmp_path, capsys):
    """In this process (as the test above): a directory stands for its .dat files, sorted by name."""
    for name in ("Misra1a.dat", "DanWood.dat"):
        (tmp_path / name).write_bytes((NIST / name).read_bytes())
    code = main(["nist", str(tmp_path), "--start", "1", "--json", "--min-lre", "6"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert [fit["dataset"] for fit in json.loads(captured.out)["fits"]] == ["DanWood", "Misra1a"]


# `marquardt nist` with no argument (every shipped file, both starts) is tests/test_nist.py's fixture:
# one NIST run serves the certified-digits tests and the command's own.


# ---- train and demo (need marquardt.keras) ---------------------------------------------------------------


TRAIN_TEST_MSE_BOUND = 1e-3
"""Test-set MSE that `train` must reach on `regression_csv` (its targets have a variance of about 2.5; a
run on 2 cores reaches about 1e-5 in 60 epochs)."""


@pytest.fixture(scope="module")
def regression_csv(tmp_path_factory) -> Path:
    """Two inputs in raw units far from [-1, 1], one target, and a text column that is not used."""
    rng = np.random.default_rng(3)
    speed, load = rng.uniform(0, 100, 150), rng.uniform(-5, 5, 150)
    torque = 2.0 * np.sin(speed / 20.0) + 0.1 * load**2 + 50.0
    path = tmp_path_factory.mktemp("train") / "engine.csv"
    return write_csv(path, "speed,load,torque,label", [(f"{a:.6f}", f"{b:.6f}", f"{c:.6f}", "x")
                                                       for a, b, c in zip(speed, load, torque)])


@needs_trainer
def test_train_reaches_the_test_mse_bound_and_saves_a_raw_units_model(regression_csv, tmp_path):
    out, model_path = tmp_path / "report", tmp_path / "engine.keras"
    proc = run_cli("train", str(regression_csv), "--target", "torque", "--inputs", "speed,load", "--hidden", "8",
                   "--epochs", "25", "--out", str(model_path), "--report", str(out))
    assert proc.returncode == 0, proc.stderr
    assert_only_our_lines(proc.stderr)
    result = json.loads((out / "train.json").read_text())
    assert result["rows"] == {"train": 104, "validation": 23, "test": 23, "all": 150}
    assert result["mse"]["test"] < TRAIN_TEST_MSE_BOUND, result["mse"]
    assert result["r"]["test"] > 0.99
    assert 1 <= result["epochs"] <= 25 and result["stop_reason"]
    assert len(result["record"]["loss"]) == result["epochs"] == len(result["record"]["test_loss"])
    for line in ("train ", "validation ", "test ", "stopped "):
        assert line in proc.stdout
    for name in ("training_record.png", "regression.png", "error_histogram.png"):
        assert_png(out / name)

    import keras

    model = keras.saving.load_model(model_path)  # a plain Keras model: raw inputs, outputs in raw units
    x = np.array([[50.0, 0.0], [10.0, 4.0]], dtype=np.float32)
    expected = 2.0 * np.sin(x[:, 0] / 20.0) + 0.1 * x[:, 1] ** 2 + 50.0
    np.testing.assert_allclose(np.asarray(model(x))[:, 0], expected, atol=0.5)


@needs_trainer
def test_train_trainbr_reports_gamma_alpha_beta(regression_csv, tmp_path, capsys):
    """In this process: the test above runs ``python -m marquardt train`` in a fresh one."""
    out = tmp_path / "report"
    code = main(["train", str(regression_csv), "--target", "torque", "--inputs", "speed,load", "--hidden", "8",
                 "--epochs", "30", "--method", "trainbr", "--report", str(out)])
    proc = capsys.readouterr()
    assert code == 0, proc.err
    result = json.loads((out / "train.json").read_text())
    assert result["method"] == "trainbr" and result["best_epoch"] is None  # no validation stop
    # its default split: trainlm's validation rows train (MATLAB's max_fail 0 for trainbr)
    assert result["rows"]["validation"] == 0 and result["rows"]["test"] > 0
    record, bayes = result["record"], result["bayes"]
    assert len(record["gamma"]) == len(record["alpha"]) == len(record["beta"]) == result["epochs"]
    assert 0 < bayes["gamma"] < result["weights"] == 33
    assert bayes["gamma"] == record["gamma"][-1] and bayes["alpha"] > 0 and bayes["beta"] > 0
    assert result["mse"]["test"] < TRAIN_TEST_MSE_BOUND, result["mse"]
    assert "trainbr      effective parameters" in proc.out
    assert result["attempts"] == sum(record["attempts"]) >= result["epochs"]
    assert result["cholesky_failures"] == sum(record["cholesky_failures"])
    assert_png(out / "training_record.png")


def test_train_report_counts_failed_cholesky_factorisations():
    """The count of failed factorisations is one report line (none without failures)."""
    from marquardt.cli._report import TrainSummary, train_report_text

    summary = TrainSummary(
        data="d.csv", inputs=("u",), targets=("v",), layers=(10,), activation="tanh", weights=31,
        rows={"train": 7, "all": 7}, epochs=3, best_epoch=None, seconds=1.0, stop_reason="done",
        mse={"train": 1.0, "all": 1.0}, r={"train": 0.5, "all": 0.5}, model_path=None, seed=0,
        attempts=12, cholesky_failures=5)
    lines = train_report_text(summary).splitlines()
    assert lines[6] == ("solver       5 of 12 attempts failed their Cholesky factorisation (A + λI not "
                        "numerically positive definite); the eigen-decomposition solved them")
    assert summary.as_dict()["cholesky_failures"] == 5 and summary.as_dict()["attempts"] == 12
    quiet = train_report_text(dataclasses.replace(summary, cholesky_failures=0))
    assert "solver" not in quiet and "Cholesky" not in quiet


@needs_trainer
def test_train_interrupted_keeps_the_best_weights_and_exits_130(tmp_path):
    """Ctrl-C (SIGINT) during training: the report and the model are written with the weights of
    the best validation epoch, and the exit status is 130."""
    import signal
    import time

    rng = np.random.default_rng(5)
    x = rng.uniform(-1, 1, (400, 2))
    y = np.sin(3 * x[:, 0]) * np.cos(2 * x[:, 1]) + 0.05 * rng.normal(size=400)  # noisy: no early convergence
    data = write_csv(tmp_path / "noisy.csv", "u,v,y", zip(x[:, 0], x[:, 1], y))
    out, model_path = tmp_path / "report", tmp_path / "net.keras"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([SRC, *filter(None, [env.get("PYTHONPATH")])])
    proc = subprocess.Popen(
        [sys.executable, "-m", "marquardt", "train", str(data), "--target", "y", "--hidden", "30",
         "--epochs", "100000", "--max-fail", "100000", "--out", str(model_path), "--report", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        first = proc.stderr.readline()  # printed when training starts
        assert first.startswith("marquardt: training on"), first
        time.sleep(10.0)  # compilation (1-4 s) and some epochs (about 0.1 s each)
        assert proc.poll() is None, "training ended before the interruption"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            print(proc.communicate()[1])
    assert proc.returncode == 130, first + stderr
    assert "Traceback" not in stderr
    assert "marquardt: interrupted" in stderr
    assert "stopped      Interrupted" in stdout and "Kept the weights of epoch" in stdout
    result = json.loads((out / "train.json").read_text())
    best = min(result["record"]["val_loss"])
    assert result["best_epoch"] == result["record"]["val_loss"].index(best) + 1
    assert result["mse"]["validation"] == pytest.approx(best, rel=1e-3)  # the best epoch's weights

    import keras

    model = keras.saving.load_model(model_path)  # the saved model holds those weights too
    rows = np.loadtxt(data, delimiter=",", skiprows=1)
    predicted = np.asarray(model(rows[:, :2].astype(np.float32)))[:, 0]
    assert np.mean((predicted - rows[:, 2]) ** 2) == pytest.approx(result["mse"]["all"], rel=1e-3)


@needs_trainer
@pytest.mark.slow
def test_demo_runs_without_data_and_writes_the_plot(tmp_path, command_cache):
    """``marquardt demo`` as the README and docs/cli.md show it (its default ``--plot demo.png``):
    one run per session serves this test and theirs (tests/command_cache.py)."""
    proc = command_cache.run("marquardt demo", tmp_path, os.environ)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("Times leave out each method's first epoch")  # compilation off both clocks
    assert lines[1].split()[:2] == ["method", "epochs"]
    lm, adam = lines[2].split(), lines[3].split()
    assert lm[0] == "Levenberg-Marquardt" and adam[0] == "Adam"
    assert lm[-4] == adam[-4]  # equal epochs
    assert float(lm[-1]) < float(adam[-1]) / 50  # test MSE: 171 times lower in the runs of 2026-12-03
    assert f"after as many epochs ({lm[-4]})" in proc.stdout
    assert_png(tmp_path / "demo.png")
    assert build_parser().parse_args(["demo", "--plot", "x/y.png"]).plot == Path("x/y.png")


def test_train_and_demo_say_when_the_trainer_is_missing(monkeypatch, small_csv, capsys):
    if HAS_TRAINER:
        monkeypatch.setitem(sys.modules, "marquardt.keras", None)  # makes `import marquardt.keras` fail
    assert main(["demo", "--no-plot"]) == 1
    assert "needs marquardt.keras" in capsys.readouterr().err


def test_a_reader_that_closes_the_pipe_ends_the_command_quietly():
    """``marquardt nist | head -1``: the closed pipe is not an error (status 0, nothing on
    stderr), whatever the command was still to print."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([SRC, *filter(None, [env.get("PYTHONPATH")])])
    proc = subprocess.Popen([sys.executable, "-m", "marquardt", "nist"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    first = proc.stdout.readline()
    proc.stdout.close()  # the reader is gone: the command's next lines meet a closed pipe
    _, err = proc.communicate(timeout=300)
    assert first and proc.returncode == 0 and err.decode() == ""
