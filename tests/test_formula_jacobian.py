"""Tests of the symbolic Jacobian of parsed formulas (``marquardt._formula_jacobian``): every
whitelisted function's rule and compositions against fourth-order central differences, exact
values where the derivative is analytic, the domain edges, the (m, n) array's shape and
errors, and agreement with TensorFlow's autodiff where TensorFlow is installed."""

from __future__ import annotations

import numpy as np
import pytest

from marquardt._formula import FormulaError, parse_formula
from marquardt._formula_jacobian import NumpyJacobian, derivative
from marquardt._formula_syntax import FUNCTIONS, _Binary, _Call, _Number, _Unary

RNG_SEED = 20261205

# (formula, {name: (low, high)} for x and each parameter): random points there keep every
# function's argument inside its domain and away from kinks, so differences are smooth.
WHITELIST_CASES = {
    "exp": ("a*exp(b*x)", {"x": (-2, 2), "a": (-2, 2), "b": (-1, 1)}),
    "log": ("log(a*x + b)", {"x": (0.1, 2), "a": (0.5, 2), "b": (0.1, 1)}),
    "log10": ("log10(a*x + b)", {"x": (0.1, 2), "a": (0.5, 2), "b": (0.1, 1)}),
    "sqrt": ("sqrt(a*x + b)", {"x": (0.1, 2), "a": (0.5, 2), "b": (0.1, 1)}),
    "sin": ("sin(a*x + b)", {"x": (-3, 3), "a": (-2, 2), "b": (-1, 1)}),
    "cos": ("cos(a*x + b)", {"x": (-3, 3), "a": (-2, 2), "b": (-1, 1)}),
    "tan": ("tan(a*x + b)", {"x": (-1, 1), "a": (-0.6, 0.6), "b": (-0.5, 0.5)}),
    "arcsin": ("arcsin(a*x + b)", {"x": (-1, 1), "a": (-0.4, 0.4), "b": (-0.4, 0.4)}),
    "arccos": ("acos(a*x + b)", {"x": (-1, 1), "a": (-0.4, 0.4), "b": (-0.4, 0.4)}),
    "arctan": ("arctan(a*x + b)", {"x": (-3, 3), "a": (-2, 2), "b": (-1, 1)}),
    "sinh": ("sinh(a*x + b)", {"x": (-2, 2), "a": (-1, 1), "b": (-1, 1)}),
    "cosh": ("cosh(a*x + b)", {"x": (-2, 2), "a": (-1, 1), "b": (-1, 1)}),
    "tanh": ("tanh(a*x + b)", {"x": (-2, 2), "a": (-1, 1), "b": (-1, 1)}),
    "abs": ("abs(a*x + b)", {"x": (1, 2), "a": (-2, 2), "b": (-0.2, 0.2)}),  # |a·x| ≥ |b| + ...
    "arctan2": ("arctan2(a*x + b, c*x - b)", {"x": (-2, 2), "a": (-1, 1), "b": (-1, 1), "c": (-1, 1)}),
}

COMPOSITIONS = [
    ("a*exp(-b*x) + c", {"x": (0, 5), "a": (0.5, 3), "b": (0.1, 1), "c": (-1, 1)}),
    ("x**a + b", {"x": (0.1, 3), "a": (-2, 2), "b": (-1, 1)}),
    ("a**x * b", {"x": (-2, 2), "a": (0.2, 3), "b": (-1, 1)}),
    ("(a*x)**b - a**2", {"x": (0.1, 3), "a": (0.2, 2), "b": (-2, 2)}),
    ("a*sin(b*x + c)/(1 + x**2)", {"x": (-3, 3), "a": (-2, 2), "b": (-2, 2), "c": (-1, 1)}),
    ("sqrt(a**2 + (b*x)**2)", {"x": (-2, 2), "a": (0.5, 2), "b": (-2, 2)}),
    ("log(cosh(a*x)) + tanh(b)*arctan(c*x)", {"x": (-2, 2), "a": (-1, 1), "b": (-1, 1), "c": (-2, 2)}),
    ("arctan2(a*sin(x), b + cos(c*x))", {"x": (-2, 2), "a": (0.5, 2), "b": (2.5, 3), "c": (-1, 1)}),
    ("a/(b/(c + x)) - -a/+b", {"x": (0, 2), "a": (-2, 2), "b": (0.5, 2), "c": (0.5, 1)}),
    ("-a*pi + +b*e*x - abs(a - 3)*log10(b)", {"x": (-2, 2), "a": (-1, 1), "b": (0.5, 2)}),
    ("exp(sin(a*x)**2) / sqrt(b + x**c)", {"x": (0.5, 2), "a": (-1, 1), "b": (0.5, 2), "c": (-2, 2)}),
    ("arcsin(a*x/3)*arccos(b*x/3) + tan(a*b/4)", {"x": (-1, 1), "a": (-1, 1), "b": (-1, 1)}),
    ("sinh(a*x)*cosh(b)/(1 + a*a) + a*b*c*x", {"x": (-1, 1), "a": (-1, 1), "b": (-1, 1), "c": (-1, 1)}),
]


def _points(ranges: dict, rng: np.random.Generator, m: int = 9):
    x = rng.uniform(*ranges["x"], size=m)
    params = {name: float(rng.uniform(*bounds)) for name, bounds in ranges.items() if name != "x"}
    return x, params


def _central_differences(formula, x: np.ndarray, params: dict) -> np.ndarray:
    """Fourth-order central differences, (−f(p+2h) + 8f(p+h) − 8f(p−h) + f(p−2h))/(12h) with
    h = 1e-3·max(1, |p|): truncation O(h⁴) ≈ 1e-12, rounding ≈ ε/h ≈ 1e-13, relative."""
    names = formula.parameters
    columns = []
    for name in names:
        h = 1e-3 * max(1.0, abs(params[name]))

        def at(step: float) -> np.ndarray:
            values = {**params, name: params[name] + step * h}
            return np.broadcast_to(formula.evaluate_numpy({"x": x}, values), x.shape)

        columns.append((-at(2) + 8 * at(1) - 8 * at(-1) + at(-2)) / (12 * h))
    return np.stack(columns, axis=1)


def _jacobian(formula, x: np.ndarray, params: dict) -> np.ndarray:
    names = formula.parameters
    return formula.as_numpy_jacobian(["x"], names)(x, *(params[name] for name in names))


def test_every_whitelisted_function_has_a_case():
    assert set(WHITELIST_CASES) == set(FUNCTIONS)


@pytest.mark.parametrize("function", sorted(WHITELIST_CASES))
def test_each_function_rule_matches_central_differences(function):
    text, ranges = WHITELIST_CASES[function]
    formula = parse_formula(text)
    rng = np.random.default_rng([RNG_SEED, sorted(FUNCTIONS).index(function)])
    for _ in range(5):
        x, params = _points(ranges, rng)
        np.testing.assert_allclose(_jacobian(formula, x, params),
                                   _central_differences(formula, x, params), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("text, ranges", COMPOSITIONS, ids=[text for text, _ in COMPOSITIONS])
def test_compositions_match_central_differences(text, ranges):
    formula = parse_formula(text)
    rng = np.random.default_rng([RNG_SEED, len(text)])
    for _ in range(5):
        x, params = _points(ranges, rng)
        np.testing.assert_allclose(_jacobian(formula, x, params),
                                   _central_differences(formula, x, params), rtol=1e-8, atol=1e-10)


# ---- exact values and simplification ------------------------------------------------------


def test_the_derivative_of_a_linear_parameter_is_numpys_value_bit_for_bit():
    t = np.linspace(0.0, 7.0, 31)
    a, b, c = 2.5, 0.385, 0.27
    jac = parse_formula("a*exp(-b*t) + c", variables=["t"]).as_numpy_jacobian(["t"], ["a", "b", "c"])
    j = jac(t, a, b, c)
    assert j.shape == (31, 3) and j.dtype == np.float64
    assert np.array_equal(j[:, 0], np.exp(-b * t))  # exp(-b*t), the formula's own node
    assert np.array_equal(j[:, 1], a * (np.exp(-b * t) * -t))
    assert np.array_equal(j[:, 2], np.ones_like(t))


def test_a_linear_model_has_its_regressors_as_jacobian():
    x = np.array([-1.5, 0.0, 2.0, 3.25])
    j = parse_formula("a*x + b - c*x**2").as_numpy_jacobian(["x"], ["a", "b", "c"])(x, 1.0, 2.0, 3.0)
    assert np.array_equal(j, np.stack([x, np.ones_like(x), -(x**2)], axis=1))


def test_trivial_nodes_are_folded():
    tree = parse_formula("a*exp(-b*x) + c")._tree
    assert derivative(tree, "a") is tree.left.right  # exp(-b*x): 1·exp(…) + a·0 + 0
    assert derivative(tree, "c") == _Number(1.0)
    assert derivative(tree, "z") == _Number(0.0)  # not in the formula
    # ∂b: a·(exp(−b·x)·(−x)), no 0 and no 1 left in it
    d = derivative(tree, "b")
    assert d == _Binary("*", tree.left.left, _Binary("*", tree.left.right, _Unary("-", tree.left.right.args[0].right)))
    # the power rule folds the exponent: ∂(x**3)/∂... only through a
    d = derivative(parse_formula("a*x**3")._tree, "a")
    assert d == parse_formula("x**3")._tree
    assert derivative(parse_formula("a**2")._tree, "a") == _Binary("*", _Number(2.0), parse_formula("a")._tree)
    assert derivative(parse_formula("-(-a)")._tree, "a") == _Number(1.0)


def test_derivative_trees_share_the_formulas_nodes():
    """exp(u)·Du reuses the node exp(u): the derivative of a long chain stays linear in size."""
    text = "a"
    for _ in range(40):
        text = f"exp(0.01*{text})"
    tree = parse_formula(text)._tree
    d = derivative(tree, "a")

    def count(node, seen):
        if id(node) in seen or not isinstance(node, tuple) or isinstance(node, (_Number, str)):
            return 0
        seen.add(id(node))
        children = node.args if isinstance(node, _Call) else node[1:]
        return 1 + sum(count(child, seen) for child in children if isinstance(child, tuple))

    assert count(d, set()) < 4 * count(tree, set())


def test_the_model_is_evaluate_numpy_bit_for_bit():
    formula = parse_formula("a*sin(b*u) + c*v**2/(1 + u)", variables=["u", "v"])
    rng = np.random.default_rng(RNG_SEED)
    u, v = rng.normal(size=(2, 12))
    model = formula.as_numpy_model(["u", "v"], ["c", "a", "b"])
    out = model(np.stack([u, v]), 0.5, 1.5, -2.0)
    assert out.dtype == np.float64 and out.shape == (12,)
    assert np.array_equal(out, formula.evaluate_numpy({"u": u, "v": v}, {"a": 1.5, "b": -2.0, "c": 0.5}))


# ---- domain edges: what TensorFlow's autodiff gives ---------------------------------------


def _at(text: str, x, **params) -> np.ndarray:
    formula = parse_formula(text)
    return formula.as_numpy_jacobian(["x"], list(params))(np.asarray(x, dtype=np.float64), *params.values())


def test_sqrt_at_zero_is_infinite_or_nan_as_autodiff():
    j = _at("a*sqrt(b*x)", [0.0, 1.0], a=2.0, b=1.0)
    assert j[0, 0] == 0.0  # √0
    assert np.isnan(j[0, 1])  # a·x/(2√(b·x)) = 0/0: the command line falls back on differences
    assert _at("sqrt(b)", [1.0], b=0.0)[0, 0] == np.inf


def test_abs_at_zero_has_derivative_zero():
    assert _at("abs(a*x)", [0.0, 2.0, -2.0], a=0.0).ravel().tolist() == [0.0, 0.0, -0.0]
    assert _at("abs(a*x)", [2.0, -2.0], a=1.5).ravel().tolist() == [2.0, 2.0]


def test_power_of_a_non_positive_base_has_zero_exponent_derivative():
    """∂(x**p)/∂p = x**p·log x, taken as 0 where x ≤ 0 (TensorFlow's _PowGrad)."""
    j = _at("x**p", [-2.0, 0.0, 2.0], p=2.0)
    assert j[:2, 0].tolist() == [0.0, 0.0]
    assert j[2, 0] == pytest.approx(4.0 * np.log(2.0), rel=1e-15)
    j = _at("a**p", [1.0], a=0.0, p=0.5)  # 0**p: ∂a is inf, ∂p is 0
    assert j.tolist() == [[np.inf, 0.0]]


def test_log_arcsin_and_arccos_at_their_ends():
    assert _at("log(a*x)", [1.0], a=0.0)[0, 0] == np.inf
    assert _at("arcsin(a)", [1.0], a=1.0)[0, 0] == np.inf
    assert _at("arccos(a)", [1.0], a=-1.0)[0, 0] == -np.inf
    assert np.isnan(_at("arctan2(a, b)", [1.0], a=0.0, b=0.0)).all()


# ---- shapes and errors ----------------------------------------------------------------------


def test_shapes_several_variables_and_constant_columns():
    formula = parse_formula("p*u + q*v**2 + r", variables=["u", "v"])
    jac = formula.as_numpy_jacobian(["u", "v", "w"], ["r", "q", "p"])  # an unused variable w
    x = np.arange(12.0).reshape(3, 4)
    j = jac(x, 1.0, 2.0, 3.0)
    assert np.array_equal(j, np.stack([np.ones(4), x[1] ** 2, x[0]], axis=1))
    one = parse_formula("a*x + b").as_numpy_jacobian(["x"], ["a", "b"])
    assert one(np.array([[1.0, 2.0]]), 0.0, 0.0).shape == (2, 2)  # (1, m) is accepted
    assert one(np.array([5.0]), 0.0, 0.0).tolist() == [[5.0, 1.0]]


def test_errors_name_what_is_wrong():
    formula = parse_formula("a*u + b*v", variables=["u", "v"])
    jac = formula.as_numpy_jacobian(["u", "v"], ["a", "b"])
    with pytest.raises(TypeError, match=r"jac takes x and 2 parameters \('a', 'b'\), got 1"):
        jac(np.zeros((2, 3)), 1.0)
    with pytest.raises(ValueError, match=r"`x` must have shape \(2, m\).*Received: x.shape=\(3,\)"):
        jac(np.zeros(3), 1.0, 2.0)
    with pytest.raises(FormulaError, match="`parameter_names` must be the parameters"):
        formula.as_numpy_jacobian(["u", "v"], ["a"])
    with pytest.raises(FormulaError, match="missing"):
        formula.as_numpy_model(["u"], ["a", "b"])
    assert isinstance(jac, NumpyJacobian) and len(jac.trees) == 2


# ---- agreement with TensorFlow's autodiff ---------------------------------------------------

AGREEMENT = [
    ("a*exp(-b*x) + c", (0.0, 4.0)),
    ("vmax*x/(km + x)", (0.0, 8.0)),
    ("a*sqrt(b*x) + c*x", (0.0, 4.0)),  # x = 0: NaN in both
    ("abs(a*x - b) + x**c", (-1.0, 2.0)),  # x < 0: the value is NaN
    ("log10(a*x) + arctan2(a, b*x) + (a*x)**b", (-1.0, 2.0)),
    ("tan(a*x) + arcsin(b*x/10) + arccos(b*x/10) + sinh(a)*cosh(b*x) + tanh(a*x)", (-1.0, 2.0)),
]


@pytest.mark.parametrize("text, span", AGREEMENT, ids=[text for text, _ in AGREEMENT])
def test_agrees_with_tensorflow_autodiff(text, span):
    """Where TensorFlow's forward-mode Jacobian (what ``curve_fit`` takes for n ≪ m) is finite,
    ours is finite and equal to 1e-13 relative; where ours is not finite, neither is
    TensorFlow's. (Forward mode also gives NaN where a zero tangent meets an infinite partial,
    ∂/∂b of (a·x)**b at x = 0, where ours, as reverse mode, gives 0.)"""
    tf = pytest.importorskip("tensorflow")
    formula = parse_formula(text)
    names = formula.parameters
    x = np.linspace(*span, 13)
    params = np.random.default_rng([RNG_SEED, len(text)]).uniform(0.5, 1.5, len(names))
    model = formula.as_model(["x"], names)
    columns = []
    for j in range(len(names)):
        p = [tf.constant(v, tf.float64) for v in params]
        with tf.autodiff.ForwardAccumulator(p[j], tf.constant(1.0, tf.float64)) as acc:
            y = model(tf.constant(x), *p)
        columns.append(np.broadcast_to(acc.jvp(y).numpy(), x.shape))
    theirs = np.stack(columns, axis=1)
    ours = formula.as_numpy_jacobian(["x"], names)(x, *params)
    finite = np.isfinite(theirs)
    assert np.isfinite(ours[finite]).all()
    np.testing.assert_allclose(ours[finite], theirs[finite], rtol=1e-13, atol=1e-300)
    assert not np.isfinite(theirs[~np.isfinite(ours)]).any()
