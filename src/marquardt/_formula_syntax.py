"""The grammar and the checks of the safe formula parser (``marquardt._formula`` compiles the tree).

Model formulas come from the command line (``--model "a*exp(-b*x) + c"``) and from NIST StRD files
(``y = b1*(1-exp[-b2*x])  +  e``). They are *parsed*, never evaluated: the text goes through
``ast.parse(..., mode="eval")``, which only builds a syntax tree, and the tree is then walked against a
whitelist and copied into a small tree of our own (``_Number``, ``_Symbol``, ``_Unary``, ``_Binary``,
``_Call``). Nothing from the user's text is ever handed to ``eval``, ``exec`` or ``compile``, and names
are looked up only in our own tables, never with ``getattr`` on a user-supplied string.

Grammar accepted (everything else is refused with a :class:`FormulaError`):

* numbers: ``2``, ``0.5``, ``.5``, ``1e-3`` (finite ``int`` or ``float`` literals, as Python reads them);
* names: declared variables, parameters and the constants ``pi`` and ``e``;
* binary operators ``+ - * / **`` and unary ``-`` and ``+``, with Python's precedence (so ``-x**2`` is
  ``-(x**2)`` and ``2**-1`` is ``0.5``);
* grouping with ``( )`` or NIST's ``[ ]``;
* calls, by plain name and with positional arguments only, of the functions in ``FUNCTIONS``: ``exp``,
  ``log`` (natural), ``log10``, ``sqrt``, ``sin``, ``cos``, ``tan``, ``arcsin``, ``arccos``, ``arctan``
  (and the aliases ``asin``, ``acos``, ``atan``), ``sinh``, ``cosh``, ``tanh``, ``abs`` and the
  two-argument ``arctan2(y, x)`` (alias ``atan2``).

Limits: at most ``MAX_LENGTH`` characters, ``MAX_DEPTH`` levels of nesting and ``MAX_NODES`` syntax
nodes; only printable ASCII. Error columns are 1-based character positions in the original text.
"""

from __future__ import annotations

import ast
import threading
import keyword
import math
import warnings
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Union

import numpy as np

__all__ = ["FormulaError", "FUNCTIONS", "CONSTANTS", "MAX_LENGTH", "MAX_DEPTH", "MAX_NODES"]

_PARSE_LOCK = threading.Lock()

MAX_LENGTH = 2000
"""Longest formula text accepted, in characters."""
MAX_DEPTH = 100
"""Deepest nesting accepted, counted in syntax-tree levels and, before parsing, in brackets.

Python's own parser refuses 200 nested brackets with a SyntaxError and may run out of C stack on
other deep inputs; refusing at 100 keeps every recursive walk in this module far from Python's
recursion limit while leaving room for long sums (``b1 + b2*x + ... + b40*x**39``)."""
MAX_NODES = 1000
"""Most syntax-tree nodes accepted."""

CONSTANTS: Mapping[str, float] = {"pi": math.pi, "e": math.e}
"""Named constants a formula may use."""


class FormulaError(ValueError):
    """A formula text that is not accepted, or names that cannot be declared.

    The message is one line: ``Formula error at column C: what was refused (found 'text')``.
    """


class _Function(NamedTuple):
    """One whitelisted function: its arity, its NumPy implementation and its TensorFlow one."""

    arity: int
    numpy: Callable[..., Any]
    tensorflow: str  # name of the builder in `_tf_function`, from this table only


FUNCTIONS: Mapping[str, _Function] = {
    "exp": _Function(1, np.exp, "exp"),
    "log": _Function(1, np.log, "log"),
    "log10": _Function(1, np.log10, "log10"),
    "sqrt": _Function(1, np.sqrt, "sqrt"),
    "sin": _Function(1, np.sin, "sin"),
    "cos": _Function(1, np.cos, "cos"),
    "tan": _Function(1, np.tan, "tan"),
    "arcsin": _Function(1, np.arcsin, "asin"),
    "arccos": _Function(1, np.arccos, "acos"),
    "arctan": _Function(1, np.arctan, "atan"),
    "sinh": _Function(1, np.sinh, "sinh"),
    "cosh": _Function(1, np.cosh, "cosh"),
    "tanh": _Function(1, np.tanh, "tanh"),
    "abs": _Function(1, np.abs, "abs"),
    "arctan2": _Function(2, np.arctan2, "atan2"),
}
"""Whitelisted functions by canonical name."""

_ALIASES: Mapping[str, str] = {"asin": "arcsin", "acos": "arccos", "atan": "arctan", "atan2": "arctan2"}

_BINARY_OPERATORS: Mapping[type, str] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.Pow: "**",
}
_UNARY_OPERATORS: Mapping[type, str] = {ast.USub: "-", ast.UAdd: "+"}
_REFUSED_OPERATORS: Mapping[type, str] = {
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.MatMult: "@",
    ast.BitXor: "^",
    ast.BitAnd: "&",
    ast.BitOr: "|",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.Not: "not",
    ast.Invert: "~",
}

# Refused constructs that have a readable name; anything else is refused by its AST class name.
_REFUSED_NODES: Mapping[type, str] = {
    ast.Attribute: "attribute access is not allowed",
    ast.Subscript: "subscripts are not allowed",
    ast.Lambda: "lambda expressions are not allowed",
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "comprehensions are not allowed",
    ast.Tuple: "tuples are not allowed",
    ast.List: "lists are not allowed",
    ast.Set: "sets are not allowed",
    ast.Dict: "dictionaries are not allowed",
    ast.Compare: "comparisons are not allowed",
    ast.BoolOp: "boolean operators ('and', 'or') are not allowed",
    ast.IfExp: "conditional expressions are not allowed",
    ast.NamedExpr: "assignment expressions (':=') are not allowed",
    ast.JoinedStr: "f-strings are not allowed",
    ast.FormattedValue: "f-strings are not allowed",
    ast.Starred: "starred arguments are not allowed",
    ast.Await: "'await' is not allowed",
    ast.Yield: "'yield' is not allowed",
    ast.YieldFrom: "'yield' is not allowed",
    ast.Slice: "slices are not allowed",
}


# The checked expression tree. NamedTuples: immutable, hashable, comparable.
class _Number(NamedTuple):
    value: float


class _Symbol(NamedTuple):
    kind: str  # "variable", "parameter" or "constant"
    name: str


class _Unary(NamedTuple):
    op: str
    operand: _Node


class _Binary(NamedTuple):
    op: str
    left: _Node
    right: _Node


class _Call(NamedTuple):
    function: str  # canonical name, a key of FUNCTIONS
    args: tuple[_Node, ...]


_Node = Union[_Number, _Symbol, _Unary, _Binary, _Call]


def _error(column: int, message: str, found: str | None = None) -> FormulaError:
    """Builds the one-line error; ``column`` is 0-based, reported 1-based."""
    suffix = ""
    if found is not None:
        found = found if len(found) <= 40 else found[:37] + "..."
        suffix = f" (found {found!r})"
    return FormulaError(f"Formula error at column {column + 1}: {message}{suffix}")

def _names_argument(argument: str, names: Iterable[str]) -> tuple[str, ...]:
    """Validates a list of declared names (variables or parameters)."""
    if isinstance(names, str):
        raise FormulaError(f"`{argument}` must be an iterable of names, not a string. Received: {argument}={names!r}")
    names = tuple(names)
    for name in names:
        if not (isinstance(name, str) and name.isascii() and name.isidentifier()) or keyword.iskeyword(name):
            raise FormulaError(f"`{argument}` must hold ASCII identifiers. Received: {argument}={names!r}")
        if name.startswith("_"):
            raise FormulaError(f"`{argument}` names must not start with '_'. Received: {argument}={names!r}")
        if name in FUNCTIONS or name in _ALIASES or name in CONSTANTS:
            raise FormulaError(
                f"`{argument}` must not use the reserved name {name!r} (a function or constant). "
                f"Received: {argument}={names!r}"
            )
    if len(set(names)) != len(names):
        raise FormulaError(f"`{argument}` must not repeat a name. Received: {argument}={names!r}")
    return names

def _parse_checked(text: str) -> ast.Expression:
    """Character, bracket and size checks, then ``ast.parse`` and an iterative depth/size walk."""
    if len(text) > MAX_LENGTH:
        raise FormulaError(f"Formula error: the text is too long ({len(text)} characters, at most {MAX_LENGTH})")
    for column, char in enumerate(text):
        if char in "#\\":
            raise _error(column, "comments and backslashes are not allowed", char)
        if not (char.isascii() and (char.isprintable() or char in "\t\r\n")):
            raise _error(column, f"character U+{ord(char):04X} is not allowed (printable ASCII only)")

    # NIST writes `exp[-b2*x]` and uses [ ] for grouping. Translating each bracket to a parenthesis
    # (one character for one, so columns are kept) cannot turn a refused construct into an accepted
    # one: in Python, square brackets only make subscripts, slices, lists and list comprehensions.
    # After translation a subscript `a[0]` becomes the call `a(0)`, refused because `a` is not a
    # whitelisted function (and `exp(x)[0]` becomes `exp(x)(0)`, a call of a non-name, refused);
    # a slice `a[1:2]` becomes a syntax error; a list `[x, y]` becomes a tuple and `[]` the empty
    # tuple, both refused; a comprehension becomes a generator expression, refused. The only new
    # meaning is grouping and `f[...]` calls of whitelisted functions, which is NIST's meaning.
    # Brackets must still pair by kind: `(x]` is refused rather than silently accepted.
    # Line breaks and tabs become spaces: a formula is one logical line, and columns stay valid.
    translated = text.translate(_TRANSLATION)
    _check_brackets(text)
    lead = len(translated) - len(translated.lstrip(" "))
    source = translated[lead:]
    if not source.strip():
        raise FormulaError("Formula error: the formula is empty")
    try:
        # The tokenizer warns about sloppy text such as `1if x else 2`; refuse it instead.
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with _PARSE_LOCK:  # not thread-safe on CPython 3.11 (native_emit.PARSE_LOCK)
                tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        if not exc.offset:  # Python's parser gives no column where the text ends too early
            raise _error(lead + len(source.rstrip()), "invalid syntax (the formula ends where "
                         "an operand or a closing bracket is expected)") from None
        column = lead + exc.offset - 1
        detail = "" if exc.msg == "invalid syntax" else f" ({exc.msg})"
        raise _error(column, f"invalid syntax{detail}") from None
    except Warning as exc:
        raise FormulaError(f"Formula error: invalid syntax ({exc})") from None
    except (RecursionError, MemoryError, ValueError, OverflowError):
        raise FormulaError("Formula error: the formula is too deeply nested or too large to parse") from None

    # Iterative walk (no recursion): depth and node count, before the recursive conversion.
    count = 0
    stack: list[tuple[ast.AST, int]] = [(tree.body, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if depth > MAX_DEPTH:
            column = lead + getattr(node, "col_offset", 0)
            raise _error(column, f"the formula is nested too deeply (more than {MAX_DEPTH} levels)")
        if count > MAX_NODES:
            raise FormulaError(f"Formula error: the formula is too large (more than {MAX_NODES} syntax nodes)")
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    if lead:
        for node in ast.walk(tree):
            if hasattr(node, "col_offset"):
                node.col_offset += lead
                node.end_col_offset = (node.end_col_offset or 0) + lead
    return tree


_TRANSLATION = str.maketrans({"[": "(", "]": ")", "\t": " ", "\r": " ", "\n": " "})
_CLOSING = {")": "(", "]": "["}


def _check_brackets(text: str) -> None:
    """Refuses unpaired or mismatched brackets, and nesting deeper than ``MAX_DEPTH``."""
    stack: list[tuple[str, int]] = []
    for column, char in enumerate(text):
        if char in "([":
            stack.append((char, column))
            if len(stack) > MAX_DEPTH:
                raise _error(column, f"the formula is nested too deeply (more than {MAX_DEPTH} brackets)")
        elif char in ")]":
            if not stack:
                raise _error(column, f"unmatched {char!r}")
            opening, _ = stack.pop()
            if opening != _CLOSING[char]:
                raise _error(column, f"{char!r} does not match {opening!r}")
    if stack:
        raise _error(stack[-1][1], f"{stack[-1][0]!r} is never closed")


class _TreeBuilder:
    """Converts a size-checked Python AST into our tree, refusing anything off the whitelist.

    Recursive, which is safe because the depth was bounded by ``_parse_checked``. Names are recorded
    in order of first appearance; the conversion visits operands left to right, as they are written.
    """

    def __init__(self, text: str, variables: tuple[str, ...], parameters: tuple[str, ...] | None):
        self.text = text
        self.variables = variables
        self.parameters = parameters
        self.used_variables: dict[str, None] = {}
        self.used_parameters: dict[str, None] = {}

    def refuse(self, node: ast.AST, message: str) -> FormulaError:
        found = self.text[node.col_offset : node.end_col_offset] if node.end_col_offset else None
        return _error(node.col_offset, message, found)

    def convert(self, node: ast.AST) -> _Node:
        if isinstance(node, ast.Constant):
            return self.number(node)
        if isinstance(node, ast.Name):
            return self.symbol(node)
        if isinstance(node, ast.UnaryOp):
            op = _UNARY_OPERATORS.get(type(node.op))
            if op is None:
                raise self.refuse(node, f"operator {_REFUSED_OPERATORS.get(type(node.op), '?')!r} is not allowed")
            return _Unary(op, self.convert(node.operand))
        if isinstance(node, ast.BinOp):
            op = _BINARY_OPERATORS.get(type(node.op))
            if op is None:
                symbol = _REFUSED_OPERATORS.get(type(node.op), "?")
                hint = " (use '**' for powers)" if symbol == "^" else ""
                raise self.refuse(node, f"operator {symbol!r} is not allowed{hint}; allowed: + - * / **")
            return _Binary(op, self.convert(node.left), self.convert(node.right))
        if isinstance(node, ast.Call):
            return self.call(node)
        message = _REFUSED_NODES.get(type(node), f"{type(node).__name__} expressions are not allowed")
        raise self.refuse(node, message)

    def number(self, node: ast.Constant) -> _Number:
        value = node.value
        # `type(...) in` rather than isinstance: bool is a subclass of int and must be refused.
        if type(value) not in (int, float):
            kinds = {str: "string literals", bytes: "bytes literals", complex: "complex numbers", bool: "booleans"}
            what = kinds.get(type(value), f"{value!r}")
            raise self.refuse(node, f"{what} are not allowed" if type(value) in kinds else f"{what} is not allowed")
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise self.refuse(node, "number is too large (not a finite float64)")
        return _Number(number)

    def symbol(self, node: ast.Name) -> _Symbol:
        name = node.id
        if name.startswith("_"):
            raise self.refuse(node, "names starting with '_' are not allowed")
        if name in self.variables:
            self.used_variables[name] = None
            return _Symbol("variable", name)
        if name in CONSTANTS:
            return _Symbol("constant", name)
        if name in FUNCTIONS or name in _ALIASES:
            raise self.refuse(node, f"{name!r} is a function and must be called, e.g. {name}(x)")
        if self.parameters is None or name in self.parameters:
            self.used_parameters[name] = None
            return _Symbol("parameter", name)
        raise self.refuse(
            node,
            f"unknown name {name!r}; allowed names: variables {list(self.variables)}, "
            f"parameters {list(self.parameters)}, constants {sorted(CONSTANTS)}",
        )

    def call(self, node: ast.Call) -> _Call:
        allowed = ", ".join(sorted([*FUNCTIONS, *_ALIASES]))
        if not isinstance(node.func, ast.Name):
            raise self.refuse(node, "only whitelisted functions can be called, by plain name")
        name = _ALIASES.get(node.func.id, node.func.id)
        if name not in FUNCTIONS:
            raise self.refuse(node, f"{node.func.id!r} is not an allowed function; allowed: {allowed}")
        if node.keywords:
            raise self.refuse(node, "keyword arguments are not allowed")
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                raise self.refuse(arg, "starred arguments are not allowed")
        arity = FUNCTIONS[name].arity
        if len(node.args) != arity:
            plural = "s" if arity > 1 else ""
            raise self.refuse(node, f"{node.func.id!r} takes {arity} argument{plural}, got {len(node.args)}")
        return _Call(name, tuple(self.convert(arg) for arg in node.args))
