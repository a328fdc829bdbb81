"""Tests of the NIST StRD reader: every bundled file, the certified RSS as a check, malformed files."""

import math
import re
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from marquardt.nist import NistProblem, load, lre

DATA = Path(__file__).parent / "data" / "nist"

# name: (parameters, observations, difficulty, variables, response transform), read off the file headers.
EXPECTED = {
    "Chwirut1": (3, 214, "Lower", ("x",), None),
    "Chwirut2": (3, 54, "Lower", ("x",), None),
    "DanWood": (2, 6, "Lower", ("x",), None),
    "ENSO": (9, 168, "Average", ("x",), None),
    "Gauss1": (8, 250, "Lower", ("x",), None),
    "Gauss2": (8, 250, "Lower", ("x",), None),
    "Gauss3": (8, 250, "Average", ("x",), None),
    "Hahn1": (7, 236, "Average", ("x",), None),
    "Lanczos2": (6, 24, "Average", ("x",), None),
    "Lanczos3": (6, 24, "Lower", ("x",), None),
    "MGH17": (5, 33, "Average", ("x",), None),
    "Misra1a": (2, 14, "Lower", ("x",), None),
    "Misra1b": (2, 14, "Lower", ("x",), None),
    "Misra1c": (2, 14, "Average", ("x",), None),
    "Misra1d": (2, 14, "Average", ("x",), None),
    "Nelson": (3, 128, "Average", ("x1", "x2"), "log"),
    "Rat42": (3, 9, "Higher", ("x",), None),
    "Rat43": (4, 15, "Higher", ("x",), None),
    "Roszman1": (4, 25, "Average", ("x",), None),
}


def test_every_bundled_file_is_covered():
    assert sorted(path.stem for path in DATA.glob("*.dat")) == sorted(EXPECTED)


@pytest.fixture(scope="module", params=sorted(EXPECTED))
def problem(request) -> NistProblem:
    return load(DATA / f"{request.param}.dat")


def _numpy_model(problem, params):
    variables = dict(zip(problem.variable_names, np.atleast_2d(problem.x)))
    return problem.formula.evaluate_numpy(variables, dict(zip(problem.parameter_names, params)))


def test_shapes_and_header_values(problem):
    n, m, difficulty, variables, transform = EXPECTED[problem.name]
    assert problem.difficulty == difficulty
    assert problem.variable_names == variables
    assert problem.response_transform == transform
    assert problem.parameter_names == tuple(f"b{i}" for i in range(1, n + 1))
    assert problem.starts.shape == (2, n)
    assert problem.certified.shape == problem.certified_std.shape == (n,)
    assert problem.x.shape == ((m,) if len(variables) == 1 else (len(variables), m))
    assert problem.y.shape == (m,)
    assert problem.x.dtype == problem.y.dtype == np.float64
    if problem.name == "Rat43":
        assert problem.degrees_of_freedom == 9  # NIST's file says 9 although 15 - 4 = 11: see below
    else:
        assert problem.degrees_of_freedom == m - n
    assert set(problem.formula.parameters) == set(problem.parameter_names)
    assert np.all(problem.certified_std > 0)
    assert not problem.x.flags.writeable and not problem.certified.flags.writeable


def test_model_at_certified_values_reproduces_certified_rss(problem):
    residuals = problem.target() - _numpy_model(problem, problem.certified)
    rss = float(residuals @ residuals)
    assert rss == pytest.approx(problem.residual_sum_of_squares, rel=1e-8)
    std = math.sqrt(rss / (problem.y.size - problem.certified.size))  # Rat43's certified std uses 11
    assert std == pytest.approx(problem.residual_std, rel=1e-8)


def test_tensorflow_model_equals_numpy_model(problem):
    params = [tf.constant(value, tf.float64) for value in problem.certified]
    computed = problem.model()(tf.constant(problem.x), *params)
    assert computed.dtype == tf.float64 and computed.shape == problem.y.shape
    np.testing.assert_allclose(computed.numpy(), _numpy_model(problem, problem.certified), rtol=1e-12)


def test_values_are_read_from_the_right_columns_and_lines():
    misra = load(DATA / "Misra1a.dat")
    assert (misra.y[0], misra.x[0]) == (10.07, 77.6)  # the file lists "y x": response first
    assert misra.model_text == "y = b1*(1-exp[-b2*x])  +  e"
    np.testing.assert_array_equal(misra.starts, [[500, 1e-4], [250, 5e-4]])
    np.testing.assert_array_equal(misra.certified, [2.3894212918e02, 5.5015643181e-04])
    np.testing.assert_array_equal(misra.certified_std, [2.7070075241e00, 7.2668688436e-06])
    assert misra.residual_sum_of_squares == 1.2455138894e-01


def test_nelson_fits_log_y_with_two_predictors():
    nelson = load(DATA / "Nelson.dat")
    assert nelson.model_text.startswith("log[y] = b1 - b2*x1 * exp[-b3*x2]")
    assert nelson.formula.variables == ("x1", "x2")
    np.testing.assert_array_equal(nelson.x[:, 0], [1.0, 180.0])
    assert nelson.y[0] == 15.0
    np.testing.assert_allclose(nelson.target(), np.log(nelson.y))


def test_multi_line_models_and_definitions():
    assert load(DATA / "ENSO.dat").model_text.endswith("b9*sin( 2*pi*x/b7 )  + e")
    assert load(DATA / "Hahn1.dat").model_text == "y = (b1+b2*x+b3*x**2+b4*x**3) / (1+b5*x+b6*x**2+b7*x**3)  +  e"
    roszman = load(DATA / "Roszman1.dat")  # its model block first defines pi = 3.14159...
    assert roszman.model_text == "y =  b1 - b2*x - arctan[b3/(x-b4)]/pi  +  e"


def test_target_is_a_copy():
    problem = load(DATA / "DanWood.dat")
    target = problem.target()
    target[0] = -1.0
    assert problem.y[0] != -1.0


# ---- malformed files -------------------------------------------------------------------------------


def _edited(tmp_path, old, new, name="Misra1a.dat"):
    text = (DATA / name).read_bytes().decode("ascii")
    assert old in text
    path = tmp_path / name
    path.write_bytes(text.replace(old, new, 1).encode("latin-1"))
    return path


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("Data              (lines 61 to 74)", "Data", r"no 'Data \(lines A to B\)' header found"),
        ("Data              (lines 61 to 74)", "Data (lines 61 to 90)", r"refers to line 90, but the file has 74"),
        ("10.07E0      77.6E0", "10.07E0      77.6E0  3", r"expected 2 numbers for a data row, found 3.*\(line 61\)"),
        ("10.07E0      77.6E0", "ten          77.6E0", r"expected numbers for a data row.*\(line 61\)"),
        ("0.0001      0.0005 ", "0.0001              ", r"expected 4 numbers for parameter b2, found 3.*\(line 42\)"),
        ("y = b1*(1-exp[-b2*x])", "y = b1*(1-x.__class__)", r"model .*attribute access is not allowed"),
        ("y = b1*(1-exp[-b2*x])", "y = b1*(1-exp[-b3*x])", r"unknown name 'b3'; allowed names"),
        ("y = b1*(1-exp[-b2*x])", "y = b1*(1-exp[-b1*x])", r"parameters \['b2'\] do not appear in the model"),
        ("y = b1*(1-exp[-b2*x])", "sqrt[y] = b1*(1-exp[-b2*x])", r"expected the equation to start with 'y ='"),
        ("2 Parameters (b1 and b2)", "3 Parameters (b1 to b3)", r"announces 3 parameters, the file has 2"),
        ("Data:   y               x", "Data:   y", r"expected the column header 'Data:  y  x'"),
        ("Residual Sum of Squares:", "Residual Sum:", r"no 'Residual Sum of Squares:' line within lines 41 to 47"),
        ("Degrees of Freedom:                                12", "Degrees of Freedom: 12.5", r"whole numbers"),
        ("Number of Observations:                            14", "Number of Observations: 15", r"15 observations"),
        ("Lower Level of Difficulty", "Lower L\u00e9vel", r"not an ASCII NIST StRD file"),
    ],
)
def test_malformed_file_is_reported_with_file_and_problem(tmp_path, old, new, message):
    path = _edited(tmp_path, old, new)
    with pytest.raises(ValueError, match=re.escape(str(path)) + ": .*" + message):
        load(path)


def test_wrong_constant_definition_is_refused(tmp_path):
    path = _edited(tmp_path, "pi = 3.141592653589793238462643383279E0", "pi = 3.14", name="Roszman1.dat")
    with pytest.raises(ValueError, match=r"defines pi = 3.14, which differs from 3.14159.*\(line 34\)"):
        load(path)


def test_lf_line_endings_read_the_same(tmp_path):
    path = tmp_path / "Rat43.dat"
    path.write_bytes((DATA / "Rat43.dat").read_bytes().replace(b"\r\n", b"\n"))
    np.testing.assert_array_equal(load(path).y, load(DATA / "Rat43.dat").y)


# ---- log relative error ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("estimate", "certified", "expected"),
    [
        (1.0001, 1.0, 4.0),  # -log10(1e-4)
        (-2.0000002, -2.0, 7.0),
        (2.0, 2.0, 11.0),  # exact: the cap
        (1.0 + 1e-14, 1.0, 11.0),  # more digits than certified: capped
        (1e-5, 0.0, 5.0),  # certified zero: absolute error
        (5.0, 1.0, 0.0),  # off by 400%: negative LRE reported as 0
        (math.nan, 1.0, 0.0),
        (math.inf, 1.0, 0.0),
    ],
)
def test_lre(estimate, certified, expected):
    assert lre(estimate, certified) == pytest.approx(expected, rel=1e-9)


def test_lre_is_elementwise_with_a_custom_cap():
    np.testing.assert_allclose(lre([1.01, 3.0], [1.0, 3.0], digits=6), [2.0, 6.0], rtol=1e-9)
    assert lre([1.0, 2.0], [1.0, 2.0]).shape == (2,)
