"""Tests of the safe formula parser: accepted grammar, refusals, limits, TensorFlow compilation."""

import math
import re

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from marquardt._formula import Formula, FormulaError, parse_formula
from marquardt._formula_syntax import MAX_DEPTH, MAX_LENGTH

X, A, B = 0.7, 1.3, 0.4
VARIABLES = {"x": X}
PARAMS = {"a": A, "b": B, "c": -0.2}


def _evaluate_tf(formula, variables, params):
    """Evaluates with TensorFlow in float64, through `as_model` (float64 even for a constant formula)."""
    model = formula.as_model(["x"], formula.parameters)
    x = tf.constant([variables["x"]], tf.float64)
    return model(x, *(tf.constant(params[name], tf.float64) for name in formula.parameters)).numpy()[0]


# (text, value written by hand with `math`, at x = X, a = A, b = B)
ACCEPTED = [
    ("42", 42.0),
    ("2.5", 2.5),
    (".5", 0.5),
    ("1e-3", 0.001),
    ("1E2", 100.0),
    ("x", X),
    ("a", A),
    ("pi", math.pi),
    ("e", math.e),
    ("a + x", A + X),
    ("a - x", A - X),
    ("a * x", A * X),
    ("a / x", A / X),
    ("a ** x", A**X),
    ("-x", -X),
    ("+x", X),
    ("-x**2", -(X**2)),
    ("2**-1", 0.5),
    ("2**3**2", 512.0),
    ("a - b - x", (A - B) - X),
    ("a / b / x", (A / B) / X),
    ("a + b * x", A + B * X),
    ("(a + x) * b", (A + X) * B),
    ("[a + x] * b", (A + X) * B),
    ("((a))", A),
    ("exp(x)", math.exp(X)),
    ("log(x)", math.log(X)),
    ("log10(x)", math.log10(X)),
    ("sqrt(x)", math.sqrt(X)),
    ("sin(x)", math.sin(X)),
    ("cos(x)", math.cos(X)),
    ("tan(x)", math.tan(X)),
    ("arcsin(x)", math.asin(X)),
    ("arccos(x)", math.acos(X)),
    ("arctan(x)", math.atan(X)),
    ("asin(x)", math.asin(X)),
    ("acos(x)", math.acos(X)),
    ("atan(x)", math.atan(X)),
    ("sinh(x)", math.sinh(X)),
    ("cosh(x)", math.cosh(X)),
    ("tanh(x)", math.tanh(X)),
    ("abs(-x)", X),
    ("arctan2(a, x)", math.atan2(A, X)),
    ("atan2(a, x)", math.atan2(A, X)),
    ("exp[-b*x]", math.exp(-B * X)),
    ("a*exp(-b*x) + c", A * math.exp(-B * X) - 0.2),
    ("  a\n  + x\t", A + X),
]


@pytest.mark.parametrize(("text", "expected"), ACCEPTED, ids=[t for t, _ in ACCEPTED])
def test_accepted_construct_matches_hand_value(text, expected):
    formula = parse_formula(text)
    np.testing.assert_allclose(formula.evaluate_numpy(VARIABLES, PARAMS), expected, rtol=1e-13)
    np.testing.assert_allclose(_evaluate_tf(formula, VARIABLES, PARAMS), expected, rtol=1e-13)


# (text, the message expected, as a regular expression)
REFUSED = [
    ("x.__class__", r"^Formula error at column 1: attribute access is not allowed \(found 'x.__class__'\)$"),
    ("a + x.__class__", r"^Formula error at column 5: attribute access is not allowed \(found 'x.__class__'\)$"),
    ("exp(x).real", r"column 1: attribute access is not allowed"),
    ("lambda: 1", r"column 1: lambda expressions are not allowed"),
    ("[x for x in a]", r"column 1: comprehensions are not allowed"),
    ("(x for x in a)", r"column 1: comprehensions are not allowed"),
    ("{x for x in a}", r"column 1: comprehensions are not allowed"),
    ("{1: x}", r"column 1: dictionaries are not allowed"),
    ("exp(x=1)", r"column 1: keyword arguments are not allowed"),
    ("exp(*x)", r"column 5: starred arguments are not allowed \(found '\*x'\)"),
    ("'abc'", r"column 1: string literals are not allowed"),
    ("b'abc'", r"column 1: bytes literals are not allowed"),
    ("True", r"column 1: booleans are not allowed"),
    ("x + None", r"column 5: None is not allowed"),
    ("1j", r"column 1: complex numbers are not allowed"),
    ("a < b", r"column 1: comparisons are not allowed"),
    ("a and b", r"column 1: boolean operators \('and', 'or'\) are not allowed"),
    ("a if x else b", r"column 1: conditional expressions are not allowed"),
    ("(y := 1)", r"column 2: assignment expressions \(':='\) are not allowed"),
    ("f'{x}'", r"column 1: f-strings are not allowed"),
    ("x, a", r"column 1: tuples are not allowed"),
    ("__import__('os')", r"column 1: '__import__' is not an allowed function; allowed: abs, acos"),
    ("_a * x", r"column 1: names starting with '_' are not allowed"),
    ("__x__", r"column 1: names starting with '_' are not allowed"),
    ("foo(x)", r"column 1: 'foo' is not an allowed function"),
    ("eval(x)", r"column 1: 'eval' is not an allowed function"),
    ("exp(x)(1)", r"column 1: only whitelisted functions can be called, by plain name"),
    ("exp", r"column 1: 'exp' is a function and must be called, e.g. exp\(x\)"),
    ("exp(x, a)", r"column 1: 'exp' takes 1 argument, got 2"),
    ("arctan2(x)", r"column 1: 'arctan2' takes 2 arguments, got 1"),
    ("x ^ 2", r"column 1: operator '\^' is not allowed \(use '\*\*' for powers\)"),
    ("x % 2", r"column 1: operator '%' is not allowed; allowed: \+ - \* / \*\*"),
    ("x // 2", r"operator '//' is not allowed"),
    ("x @ a", r"operator '@' is not allowed"),
    ("~x", r"operator '~' is not allowed"),
    ("not x", r"operator 'not' is not allowed"),
    ("await x", r"'await' is not allowed"),
    ("(yield)", r"'yield' is not allowed"),
    ("...", r"Ellipsis is not allowed"),
    ("1e999", r"column 1: number is too large"),
    ("1" * 400, r"column 1: number is too large"),
    ("x +* 2", r"column \d+: invalid syntax"),
    ("2x", r"column \d+: invalid syntax"),
    ("a*x +", r"column 6: invalid syntax \(the formula ends where an operand or a closing "
              r"bracket is expected\)"),  # it said column 1 (Python gives no offset)
    ("  x**", r"column 6: invalid syntax \(the formula ends"),
    ("import os", r"invalid syntax"),
    ("1if x else 2", r"invalid syntax"),
    ("1(2)", r"column 1: only whitelisted functions can be called"),
    ("x # comment", r"column 3: comments and backslashes are not allowed"),
    ("x \\\n + 1", r"column 3: comments and backslashes are not allowed"),
    ("x\x00", r"column 2: character U\+0000 is not allowed"),
    ("\u03b1 * x", r"column 1: character U\+03B1 is not allowed"),
    ("(x]", r"column 3: '\]' does not match '\('"),
    ("x)", r"column 2: unmatched '\)'"),
    ("(x", r"column 1: '\(' is never closed"),
    ("", r"the formula is empty"),
    ("   ", r"the formula is empty"),
    ("q * x", r"unknown name 'q'; allowed names: variables \['x'\], parameters \['a', 'b'\], constants \['e', 'pi'\]"),
]


@pytest.mark.parametrize(("text", "message"), REFUSED, ids=[repr(t)[:30] for t, _ in REFUSED])
def test_refused_construct_names_what_and_where(text, message):
    with pytest.raises(FormulaError, match=message):
        parse_formula(text, parameters=["a", "b"])


def test_formula_error_is_a_value_error_on_one_line():
    with pytest.raises(ValueError) as info:
        parse_formula("a + x.__class__.__bases__[0].__subclasses__()")
    assert isinstance(info.value, FormulaError)
    assert "\n" not in str(info.value)
    assert re.match(r"Formula error at column \d+: ", str(info.value))


# NIST writes square brackets. They are translated to parentheses before parsing; the reasoning why
# this cannot let a refused construct through is in `_parse_checked`. These tests pin it down.
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("b1*(1-exp[-b2*x])", 2.0 * (1 - math.exp(-0.5 * X))),
        ("b1 + b2*exp[-x*b1]", 2.0 + 0.5 * math.exp(-X * 2.0)),
        ("b1 - b2*x - arctan[b2/(x-b1)]/pi", 2.0 - 0.5 * X - math.atan(0.5 / (X - 2.0)) / math.pi),
        ("b1 / ((1+exp[b2-b1*x])**(1/b2))", 2.0 / (1 + math.exp(0.5 - 2.0 * X)) ** (1 / 0.5)),
        ("[x + 1] * [b1]", (X + 1) * 2.0),
    ],
)
def test_nist_square_brackets_group_and_call(text, expected):
    formula = parse_formula(text)
    params = {"b1": 2.0, "b2": 0.5}
    np.testing.assert_allclose(formula.evaluate_numpy(VARIABLES, params), expected, rtol=1e-13)
    np.testing.assert_allclose(_evaluate_tf(formula, VARIABLES, params), expected, rtol=1e-13)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a[0]", r"'a' is not an allowed function"),  # a subscript becomes a call of a non-function
        ("x[0]", r"'x' is not an allowed function"),
        ("exp[x][0]", r"only whitelisted functions can be called"),  # subscript of a call
        ("a[1:2]", r"invalid syntax"),  # a slice cannot be written inside parentheses
        ("[x, a]", r"tuples are not allowed"),  # a list becomes a tuple
        ("[]", r"tuples are not allowed"),
        ("[x for x in a]", r"comprehensions are not allowed"),  # becomes a generator expression
        ("exp[x)", r"'\)' does not match '\['"),
    ],
)
def test_square_brackets_cannot_smuggle_refused_constructs(text, message):
    with pytest.raises(FormulaError, match=message):
        parse_formula(text)


def test_long_text_is_refused():
    with pytest.raises(FormulaError, match=rf"too long \({MAX_LENGTH + 1} characters, at most {MAX_LENGTH}\)"):
        parse_formula("x" + "+x" * (MAX_LENGTH // 2))


@pytest.mark.parametrize(
    "text",
    [
        "(" * (MAX_DEPTH + 1) + "x" + ")" * (MAX_DEPTH + 1),
        "[" * 900 + "x" + "]" * 900,
        "-" * 1999 + "x",
        "exp(" * 300 + "x" + ")" * 300,
        "x" + "**x" * 600,
        "x" + "+x" * 900,
    ],
    ids=["parentheses", "brackets", "unary", "calls", "powers", "sum"],
)
def test_deep_input_is_refused_with_our_error(text):
    with pytest.raises(FormulaError, match="nested too deeply|too large"):
        parse_formula(text)


def test_moderately_deep_input_is_accepted():
    formula = parse_formula("(" * 60 + "x" + ")" * 60)
    assert formula.evaluate_numpy(VARIABLES, {}) == X


def test_names_in_order_of_first_appearance():
    formula = parse_formula("c*exp(-b*t) + a*s + b", variables=["s", "t"])
    assert formula.variables == ("t", "s")
    assert formula.parameters == ("c", "b", "a")


def test_default_is_variable_x_and_every_other_name_a_parameter():
    formula = parse_formula("b1*x**b2 + pi")
    assert (formula.variables, formula.parameters) == (("x",), ("b1", "b2"))


def test_unused_declared_names_are_not_reported_as_used():
    formula = parse_formula("a", variables=["x", "y"], parameters=["a", "b"])
    assert (formula.variables, formula.parameters) == ((), ("a",))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"variables": "xy"}, r"`variables` must be an iterable of names, not a string"),
        ({"parameters": ["a b"]}, r"`parameters` must hold ASCII identifiers"),
        ({"parameters": ["lambda"]}, r"`parameters` must hold ASCII identifiers"),
        ({"parameters": ["_a"]}, r"`parameters` names must not start with '_'"),
        ({"parameters": ["e"]}, r"`parameters` must not use the reserved name 'e'"),
        ({"variables": ["exp"]}, r"`variables` must not use the reserved name 'exp'"),
        ({"parameters": ["a", "a"]}, r"`parameters` must not repeat a name"),
        ({"variables": ["x"], "parameters": ["x"]}, r"\['x'\] declared both as variables and as parameters"),
    ],
)
def test_declared_names_are_validated(kwargs, message):
    with pytest.raises(FormulaError, match=message):
        parse_formula("x", **kwargs)


def test_formula_is_immutable_and_comparable():
    formula = parse_formula("a*x")
    with pytest.raises(AttributeError):
        formula.text = "x"
    assert formula == parse_formula("a*x")
    assert hash(formula) == hash(parse_formula("a*x"))
    assert "Formula(text='a*x'" in repr(formula)


def test_missing_value_is_reported():
    with pytest.raises(ValueError, match=r"no value given for parameter 'b'"):
        parse_formula("a*x + b").evaluate_numpy({"x": 1.0}, {"a": 1.0})


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
def test_tensorflow_dtype_follows_inputs(dtype):
    fn = parse_formula("a*exp(-b*x) + pi").to_tensorflow()
    value = fn({"x": tf.constant([0.0, 1.0], dtype)}, {"a": 2.0, "b": 0.1})
    assert value.dtype == dtype
    np.testing.assert_allclose(value.numpy(), [2 + math.pi, 2 * math.exp(-0.1) + math.pi], rtol=1e-6)


def test_tensorflow_dtype_is_float32_without_tensor_inputs():
    assert parse_formula("2*pi").to_tensorflow()({}, {}).dtype == tf.float32


def test_python_numbers_do_not_lose_precision_in_float64():
    fn = parse_formula("a*x").to_tensorflow()
    assert fn({"x": tf.constant(1.0, tf.float64)}, {"a": 0.1}).numpy() == 0.1


def test_tensorflow_gradient_matches_analytic_and_runs_in_tf_function():
    model = parse_formula("a*exp(-b*x) + c").as_model(["x"], ["a", "b", "c"])
    x = tf.constant([0.0, 0.5, 2.0], tf.float64)
    params = [tf.constant(v, tf.float64) for v in (2.0, 0.3, -1.0)]
    with tf.GradientTape() as tape:
        tape.watch(params)
        value = tf.function(model)(x, *params)
    jacobian = tape.jacobian(value, params)
    xs = x.numpy()
    np.testing.assert_allclose(jacobian[0].numpy(), np.exp(-0.3 * xs), rtol=1e-14)
    np.testing.assert_allclose(jacobian[1].numpy(), -2.0 * xs * np.exp(-0.3 * xs), rtol=1e-14)
    np.testing.assert_allclose(jacobian[2].numpy(), np.ones(3))


def test_as_model_with_several_variables_takes_rows_in_given_order():
    model = parse_formula("b1 - b2*x1*exp(-b3*x2)", variables=["x1", "x2"]).as_model(["x2", "x1"], ["b3", "b2", "b1"])
    x = tf.constant([[1.0, 2.0], [3.0, 4.0]], tf.float64)  # rows: x2, x1
    value = model(x, tf.constant(0.1, tf.float64), tf.constant(0.5, tf.float64), tf.constant(1.0, tf.float64))
    np.testing.assert_allclose(value.numpy(), 1.0 - 0.5 * np.array([3.0, 4.0]) * np.exp(-0.1 * np.array([1.0, 2.0])))


def test_as_model_broadcasts_a_constant_formula_to_x():
    value = parse_formula("2*pi").as_model(["x"], [])(tf.zeros(3, tf.float64))
    assert value.shape == (3,) and value.dtype == tf.float64


def test_as_model_validates_names_and_arguments():
    formula = parse_formula("a*x + b")
    with pytest.raises(FormulaError, match=r"`variable_names` must include every variable of the formula"):
        formula.as_model(["t"], ["a", "b"])
    with pytest.raises(FormulaError, match=r"`parameter_names` must be the parameters of the formula"):
        formula.as_model(["x"], ["a", "b", "c"])
    with pytest.raises(TypeError, match=r"model takes x and 2 parameters"):
        formula.as_model(["x"], ["a", "b"])(tf.zeros(3), 1.0)
    two = parse_formula("a*x + y", variables=["x", "y"]).as_model(["x", "y"], ["a"])
    with pytest.raises(ValueError, match=r"`x` must have shape \(2, m\)"):
        two(tf.zeros((3, 4)), 1.0)


# ---- property tests -------------------------------------------------------------------------------

FORMULA_ALPHABET = "xab()[]+-*/.e0123456789 ,_=:'\"#@%^~<>!"
PROPERTY_SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _accepts_or_refuses(text):
    try:
        formula = parse_formula(text)
    except FormulaError:
        return
    assert isinstance(formula, Formula)
    values = {name: 0.5 for name in formula.parameters}
    formula.evaluate_numpy({"x": np.array([0.5, 2.0])}, values)  # an accepted formula evaluates


@PROPERTY_SETTINGS
@given(st.text(max_size=200))
def test_any_text_gives_a_formula_or_a_formula_error(text):
    _accepts_or_refuses(text)


@PROPERTY_SETTINGS
@given(st.text(alphabet=FORMULA_ALPHABET + "pisnqrtlogcxh", max_size=40))
def test_formula_like_text_gives_a_formula_or_a_formula_error(text):
    _accepts_or_refuses(text)


# Trees over the whitelist: ("num", v) | ("name", n) | ("neg", t, square) | ("pos", t, square)
# | ("bin", op, left, right, square) | ("call", function, args, square). `square` picks NIST brackets.
REFERENCE_FUNCTIONS = {
    "exp": np.exp, "log": np.log, "log10": np.log10, "sqrt": np.sqrt, "sin": np.sin, "cos": np.cos,
    "tan": np.tan, "arcsin": np.arcsin, "asin": np.arcsin, "arccos": np.arccos, "acos": np.arccos,
    "arctan": np.arctan, "atan": np.arctan, "sinh": np.sinh, "cosh": np.cosh, "tanh": np.tanh,
    "abs": np.abs, "arctan2": np.arctan2, "atan2": np.arctan2,
}  # fmt: skip
REFERENCE_OPERATORS = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide, "**": np.power}

leaves = st.one_of(
    st.floats(0.0, 5.0, allow_nan=False).map(lambda v: ("num", v)),
    st.integers(0, 5).map(lambda v: ("num", v)),
    st.sampled_from(["x", "a", "b", "pi", "e"]).map(lambda n: ("name", n)),
)


def _extend(children):
    return st.one_of(
        st.tuples(st.sampled_from(["neg", "pos"]), children, st.booleans()),
        st.tuples(st.just("bin"), st.sampled_from(list(REFERENCE_OPERATORS)), children, children, st.booleans()),
        st.tuples(
            st.just("call"),
            st.sampled_from([name for name in REFERENCE_FUNCTIONS if "2" not in name]),
            st.tuples(children),
            st.booleans(),
        ),
        st.tuples(st.just("call"), st.sampled_from(["arctan2", "atan2"]), st.tuples(children, children), st.booleans()),
    )


trees = st.recursive(leaves, _extend, max_leaves=8)


def _render(tree):
    """Fully bracketed text, so that precedence never depends on the renderer."""
    kind = tree[0]
    if kind == "num":
        return repr(tree[1])
    if kind == "name":
        return tree[1]
    open_, close = "[]" if tree[-1] else "()"
    if kind in ("neg", "pos"):
        return f"{open_}{'-' if kind == 'neg' else '+'}{_render(tree[1])}{close}"
    if kind == "bin":
        return f"{open_}{_render(tree[2])} {tree[1]} {_render(tree[3])}{close}"
    return f"{tree[1]}{open_}{', '.join(_render(arg) for arg in tree[2])}{close}"


def _reference(tree, env):
    """Evaluates the generated tree directly with NumPy, in float64."""
    kind = tree[0]
    if kind == "num":
        value = np.float64(tree[1])
    elif kind == "name":
        value = {"pi": np.float64(np.pi), "e": np.float64(np.e)}.get(tree[1], env.get(tree[1]))
    elif kind == "neg":
        value = -_reference(tree[1], env)
    elif kind == "pos":
        value = _reference(tree[1], env)
    elif kind == "bin":
        value = REFERENCE_OPERATORS[tree[1]](_reference(tree[2], env), _reference(tree[3], env))
    else:
        value = REFERENCE_FUNCTIONS[tree[1]](*(_reference(arg, env) for arg in tree[2]))
    # TensorFlow on CPU flushes subnormal numbers to zero; NumPy keeps them. Not comparable.
    assume(not np.any((value != 0) & (np.abs(value) < np.finfo(np.float64).tiny)))
    return value


@PROPERTY_SETTINGS
@given(trees)
def test_rendered_tree_parses_and_evaluates_like_the_tree(tree):
    env = {"x": np.array([0.25, 0.8, 1.7]), "a": np.float64(1.3), "b": np.float64(0.6)}
    with np.errstate(all="ignore"):
        expected = np.broadcast_to(_reference(tree, env), (3,))
        # Skip points where the value is ill-conditioned (a relative change of 1e-10 in the inputs
        # moves it by more than 1e-6): there, TensorFlow's and NumPy's last-bit differences in
        # exp, sin, ... may be amplified beyond any fixed tolerance.
        nudged = {k: v * (1 + 1e-10) for k, v in env.items()}
        moved = np.broadcast_to(_reference(tree, nudged), (3,))
    stable = np.isclose(moved, expected, rtol=1e-6, atol=1e-12, equal_nan=True)
    assume(bool(np.all(stable)))

    formula = parse_formula(_render(tree), variables=["x"], parameters=["a", "b"])
    params = {"a": env["a"], "b": env["b"]}
    np.testing.assert_allclose(
        np.broadcast_to(formula.evaluate_numpy({"x": env["x"]}, params), (3,)), expected, rtol=1e-12, equal_nan=True
    )
    model = formula.as_model(["x"], formula.parameters)
    computed = model(tf.constant(env["x"]), *(tf.constant(params[name], tf.float64) for name in formula.parameters))
    assert computed.dtype == tf.float64
    np.testing.assert_allclose(computed.numpy(), expected, rtol=1e-8, atol=1e-12, equal_nan=True)
