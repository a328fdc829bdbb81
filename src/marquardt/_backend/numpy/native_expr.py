"""Expressions of a traced step in C (``native_emit``): a scalar line, or one element of an
elementwise array operation, translated with Python's and NumPy's semantics kept.

Each operand's type is its value's on the captured call (``_evaluate``: the node computed as
Python computes it). The forms, and why each gives the trace's bits:

* ``+ - * /`` on doubles: IEEE in C as in Python and NumPy (``-ffp-contract=off``); ``+`` and
  ``*`` as ``mq_add``/``mq_mul`` (``native_prelude``), which keep the left operand's NaN where
  both are NaN whatever the optimiser does (``native_load``'s docstring); a division by zero
  gives ±inf or NaN as NumPy's does (the trace's ``_lane_div``);
* comparisons: C's, which are IEEE's (NaN compares false, ``!=`` true);
* ``x if c else y`` and ``where``: a conditional expression; ``maximum``/``minimum``: NumPy's
  rule, NaN wins (``(a >= b || a != a) ? a : b``);
* ``sqrt`` correctly rounded in both; a negative's NaN is the hardware's default NaN in both;
* ``~`` of a bool is ``!``, of an integer ``~``; ``int32`` casts wrap to 32 bits;
* constants exact: finite doubles as hexadecimal literals, inf and NaN by their bits;
* an array power of 2 is NumPy's square (``x * x``), a scalar power C's ``pow``, which is
  the ``pow`` Python and NumPy call.

Anything else raises ``native_slots.Unsupported`` (the step stays Python).
"""

from __future__ import annotations

import ast
import builtins
import math
import operator
from typing import NamedTuple

import numpy as np

from marquardt._backend.numpy.native_ops import is_lazy
from marquardt._backend.numpy.native_slots import Unsupported, array_info, scalar_kind

__all__ = ["ARRAY_CALLS", "Expressions", "literal"]

_CTYPE = {"f": "double", "i": "int64_t", "b": "int"}

#: array-valued calls materialized as arrays (``native_emit``) before an element is taken
ARRAY_CALLS = ("_ns_reshape", "_ns_swapaxes", "_ns_expand_dims", "_ns_squeeze", "_ns_matvec",
               "_ns_matmul", "_ns_stack",
               "_ns_sum", "_ns_all", "_ns_any", "_ns_max", "_np_array")


class _Sc(NamedTuple):
    cname: str
    kind: str


def _float_literal(x: float) -> str:
    if math.isfinite(x):
        return f"({float(x).hex()})"
    return f"D(0x{np.float64(x).view(np.uint64):016x}ULL)"


def literal(value, kind: str) -> str:
    """A C literal of the scalar ``value`` as ``kind``."""
    if kind == "f":
        return _float_literal(float(value))
    if kind == "b":
        return "1" if bool(value) else "0"
    return f"((int64_t){int(value)}LL)"


def _cast(code: str, have: str, want: str) -> str:
    if have == want:
        return code
    if want == "f":
        return f"((double){code})"
    if want == "b":
        return f"(({code}) != 0)"
    return f"((int64_t){code})"


class Expressions:
    """The expression half of the emitter (``native_emit._Emitter``), which provides
    ``values``, ``glob``, ``env``, ``memo``, ``lines``, ``count``, ``array_of`` and
    ``reduction_code``."""

    def value(self, node):
        """The node's value on the captured call: evaluated as Python evaluates it, node by
        node (``_evaluate``), each node once."""
        key = id(node)
        if key in self.memo:
            return self.memo[key][1]
        v = _evaluate(self, node)  # under the emitter's errstate (``native_emit.emit_step``)
        self.memo[key] = (node, v)  # the node kept: its id stays its own
        return v

    def fresh(self, prefix="t") -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def atom(self, code: str, kind: str) -> str:
        """``code`` as a name (a temporary where it is an expression), to be used twice."""
        if code.isidentifier() or code.startswith("(0x") or code.startswith("((int64_t)"):
            return code
        t = self.fresh()
        self.lines.append(f"{_CTYPE[kind]} {t} = {code};")
        return t

    def constant(self, name: str):
        if name in self.glob:
            return self.glob[name]
        if hasattr(builtins, name):
            return getattr(builtins, name)
        raise Unsupported(f"unknown name {name}")

    # -- statements -------------------------------------------------------------------------

    def element(self, node, shape, idx) -> tuple[str, str]:
        """(C expression, kind) of an elementwise node's element at ``idx`` of ``shape``."""
        value = self.value(node)
        if not isinstance(value, np.ndarray):
            return self.scalar(node)
        lazy = self.env.get(node.id) if isinstance(node, ast.Name) else None
        if is_lazy(lazy) and lazy.value.size == int(np.prod(shape)):  # inline, once each
            if lazy.value.ndim > len(shape):
                raise Unsupported("broadcast to fewer dimensions")
            return self.element(lazy.node, shape, idx)
        if isinstance(node, ast.Name) or _call_name(node) in ARRAY_CALLS:
            a = self.array_of(node)
            if len(a.shape) > len(shape):
                raise Unsupported("broadcast to fewer dimensions")
            return f"{a.cname}[{_offset(a.shape, a.strides, idx, shape)}]", (
                a.kind if a.kind != "b" else "b")
        kind = array_info(value)[0]
        return self.operation(node, kind, lambda n: self.element(n, shape, idx))

    def scalar(self, node) -> tuple[str, str]:
        """(C expression, kind) of a scalar node."""
        if isinstance(node, ast.Name):
            got = self.env.get(node.id)
            if isinstance(got, _Sc):
                return got.cname, got.kind
            if got is not None:
                raise Unsupported(f"{node.id} is an array where a scalar is needed")
            v = self.constant(node.id)
            if isinstance(v, np.ndarray) or v is None:
                raise Unsupported(f"constant {node.id}")
            kind = scalar_kind(v)
            return literal(v, kind), kind
        if isinstance(node, ast.Constant):
            kind = scalar_kind(node.value)
            return literal(node.value, kind), kind
        if isinstance(node, ast.Subscript):  # a reduction's (1,) result, element 0
            return self.reduction_scalar(node)
        value = self.value(node)
        if isinstance(value, np.ndarray):
            raise Unsupported(f"an array where a scalar is needed: {ast.unparse(node)}")
        kind = scalar_kind(value)
        call = _call_name(node)
        if call in ("_ns_sum", "_ns_all", "_ns_any", "_ns_max"):
            return self.reduction_scalar(node), kind
        return self.operation(node, kind, self.scalar)

    def reduction_scalar(self, node):
        call_node = node.value if isinstance(node, ast.Subscript) else node
        if isinstance(node, ast.Subscript):
            if ast.unparse(node.slice) != "0":
                raise Unsupported(f"subscript {ast.unparse(node)}")
        call = _call_name(call_node)
        if call not in ("_ns_sum", "_ns_all", "_ns_any", "_ns_max", "_add_reduce",
                        "_max_reduce"):
            raise Unsupported(f"subscript {ast.unparse(node)}")
        if call in ("_ns_all", "_ns_any") and not isinstance(node, ast.Subscript) and \
                len(call_node.args) == 1 and not isinstance(self.value(call_node.args[0]),
                                                                np.ndarray):
            code, kind = self.scalar(call_node.args[0])  # of one value: the value's truth
            return _cast(code, kind, "b")
        if call in ("_ns_all", "_ns_any") and not isinstance(node, ast.Subscript):
            fused = self.fused_reduction(call, call_node.args[0])  # ``native_ops``
            if fused is not None:
                return fused
        src = self.array_of(call_node.args[0])
        axis = _axis(self, call_node)
        if axis is None or len([n for n in src.shape if n != 1]) > 1:
            raise Unsupported(f"reduction {ast.unparse(node)}")
        axis %= len(src.shape)
        if any(n != 1 for k, n in enumerate(src.shape) if k != axis):
            raise Unsupported(f"reduction {ast.unparse(node)}")
        code = self.reduction_code(call, src, src.cname, src.shape[axis], src.strides[axis])
        kind = "f" if call in ("_ns_sum", "_add_reduce", "_ns_max", "_max_reduce") else "b"
        if isinstance(node, ast.Subscript):
            return code, kind
        return code

    def operation(self, node, kind, sub) -> tuple[str, str]:
        """An operator or function node whose operands ``sub`` translates (scalar or
        element); ``kind`` is the result's."""
        if isinstance(node, ast.BinOp):
            (a, ka), (b, kb) = sub(node.left), sub(node.right)
            op = type(node.op)
            if op is ast.Div:
                return f"({_cast(a, ka, 'f')} / {_cast(b, kb, 'f')})", "f"
            if op in (ast.Add, ast.Sub, ast.Mult):
                if kind == "b":
                    raise Unsupported("arithmetic on booleans")
                if kind == "f" and op is not ast.Sub:  # the NaN kept: the left's (prelude)
                    fn = "mq_add" if op is ast.Add else "mq_mul"
                    return f"{fn}({_cast(a, ka, kind)}, {_cast(b, kb, kind)})", kind
                sym = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*"}[op]
                return f"({_cast(a, ka, kind)} {sym} {_cast(b, kb, kind)})", kind
            if op in (ast.BitAnd, ast.BitOr):
                sym = "&" if op is ast.BitAnd else "|"
                if kind == "b":
                    return f"({_cast(a, ka, 'b')} {sym} {_cast(b, kb, 'b')})", "b"
                return f"({a} {sym} {b})", kind
            if op is ast.Pow:
                exponent = self.value(node.right)
                if isinstance(self.value(node.left), np.ndarray) or isinstance(
                        self.value(node), np.ndarray):
                    if exponent == 2 and kind == "f":  # NumPy's fast path: square
                        a = self.atom(_cast(a, ka, "f"), "f")
                        return f"({a} * {a})", "f"
                    raise Unsupported("an array power other than 2")
                if kind != "f":
                    raise Unsupported("an integer power")
                return f"pow({_cast(a, ka, 'f')}, {_cast(b, kb, 'f')})", "f"
            raise Unsupported(f"operator {op.__name__}")
        if isinstance(node, ast.UnaryOp):
            a, ka = sub(node.operand)
            if isinstance(node.op, ast.USub):
                return f"(-{a})", ka
            if isinstance(node.op, ast.Not):
                return f"(!{a})", "b"
            if isinstance(node.op, ast.Invert):
                return (f"(!{a})", "b") if ka == "b" else (f"(~{a})", ka)
            raise Unsupported("unary operator")
        if isinstance(node, ast.Compare):
            if len(node.ops) != 1:
                raise Unsupported("a chained comparison")
            (a, ka), (b, kb) = sub(node.left), sub(node.comparators[0])
            sym = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==",
                   ast.NotEq: "!="}.get(type(node.ops[0]))
            if sym is None:
                raise Unsupported("comparison")
            if "f" in (ka, kb):
                a, b = _cast(a, ka, "f"), _cast(b, kb, "f")
            return f"({a} {sym} {b})", "b"
        if isinstance(node, ast.BoolOp):
            parts = [sub(v) for v in node.values]
            if any(k != "b" for _, k in parts):
                raise Unsupported("and/or of non-booleans")
            sym = " || " if isinstance(node.op, ast.Or) else " && "
            return "(" + sym.join(p for p, _ in parts) + ")", "b"
        if isinstance(node, ast.IfExp):
            (c, kc), (x, kx), (y, ky) = sub(node.test), sub(node.body), sub(node.orelse)
            return f"(({c}) ? {_cast(x, kx, kind)} : {_cast(y, ky, kind)})", kind
        if isinstance(node, ast.Call):
            return self.call(node, kind, sub)
        raise Unsupported(f"expression {ast.unparse(node)}")

    def call(self, node, kind, sub) -> tuple[str, str]:
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "item" and not node.args:
            return sub(func.value)
        if not isinstance(func, ast.Name):
            raise Unsupported(f"call {ast.unparse(node)}")
        name = func.id
        args = node.args
        if name in ("_msqrt", "_lane_sqrt", "_ns_sqrt"):
            a, ka = sub(args[0])
            return f"sqrt({_cast(a, ka, 'f')})", "f"
        if name == "_lane_div":
            (a, ka), (b, kb) = sub(args[0]), sub(args[1])
            return f"({_cast(a, ka, 'f')} / {_cast(b, kb, 'f')})", "f"
        if name == "_F64":
            a, ka = sub(args[0])
            return _cast(a, ka, "f"), "f"
        if name == "_B":
            a, ka = sub(args[0])
            return _cast(a, ka, "b"), "b"
        if name in ("_misfinite", "_ns_isfinite"):
            a, ka = sub(args[0])
            return (f"(isfinite({a}) != 0)", "b") if ka == "f" else ("1", "b")
        if name in ("abs", "_ns_abs"):
            a, ka = sub(args[0])
            if ka == "f":
                return f"fabs({a})", "f"
            return (f"llabs({a})", "i") if ka == "i" else (a, ka)
        if name == "_ns_logical_not":
            a, ka = sub(args[0])
            return f"(!{a})", "b"
        if name in ("_ns_logical_and", "_ns_logical_or"):
            (a, ka), (b, kb) = sub(args[0]), sub(args[1])
            sym = "&&" if name == "_ns_logical_and" else "||"
            return f"({a} {sym} {b})", "b"
        if name in ("_ns_maximum", "_ns_minimum"):
            (a, ka), (b, kb) = sub(args[0]), sub(args[1])
            if kind != "f":
                raise Unsupported("an integer maximum")
            a = self.atom(_cast(a, ka, "f"), "f")
            b = self.atom(_cast(b, kb, "f"), "f")
            sym = ">=" if name == "_ns_maximum" else "<="
            return f"(({a} {sym} {b} || {a} != {a}) ? {a} : {b})", "f"
        comparisons = {"_ns_greater": ">", "_ns_greater_equal": ">=", "_ns_less": "<",
                       "_ns_less_equal": "<=", "_ns_equal": "==", "_ns_not_equal": "!="}
        if name in comparisons:
            (a, ka), (b, kb) = sub(args[0]), sub(args[1])
            if "f" in (ka, kb):
                a, b = _cast(a, ka, "f"), _cast(b, kb, "f")
            return f"({a} {comparisons[name]} {b})", "b"
        if name == "_ns_where":
            (c, kc), (x, kx), (y, ky) = sub(args[0]), sub(args[1]), sub(args[2])
            return f"(({c}) ? {_cast(x, kx, kind)} : {_cast(y, ky, kind)})", kind
        if name == "_pick":  # the choice of an array, made element by element
            (c, kc), (x, kx), (y, ky) = sub(args[0]), sub(args[1]), sub(args[2])
            return f"(({c}) ? {_cast(x, kx, kind)} : {_cast(y, ky, kind)})", kind
        if name == "_ns_cast":
            a, ka = sub(args[0])
            return _cast(a, ka, kind), kind
        if name in ("_ns_ones_like", "_ns_zeros_like"):
            return literal(1 if name == "_ns_ones_like" else 0, kind), kind
        if name == "_ns_full_like":
            b, kb = sub(args[1])
            return _cast(b, kb, kind), kind
        target = self.glob.get(name)
        if isinstance(target, type) and issubclass(target, np.generic) and len(args) == 1:
            a, ka = sub(args[0])
            if target is np.int32:  # NumPy's conversion wraps to 32 bits
                return f"((int64_t)(int32_t)({_cast(a, ka, 'i')}))", "i"
            return _cast(a, ka, kind), kind
        raise Unsupported(f"call {ast.unparse(node)}")

    # -- the result ---------------------------------------------------------------------------


_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.Pow: operator.pow, ast.BitAnd: operator.and_,
           ast.BitOr: operator.or_, ast.MatMult: operator.matmul}
_COMPARE = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt,
            ast.GtE: operator.ge, ast.Eq: operator.eq, ast.NotEq: operator.ne}
_UNARY = {ast.USub: operator.neg, ast.Invert: operator.invert, ast.Not: operator.not_,
          ast.UAdd: operator.pos}


def _evaluate(em, node):
    """``node``'s value as Python computes it, from the captured variables and the
    function's globals (the generated code's few forms; anything else: ``eval``)."""
    v = em.value
    if isinstance(node, ast.Name):
        if node.id in em.values:
            return em.values[node.id]
        return em.constant(node.id)
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _BINARY[type(node.op)](v(node.left), v(node.right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](v(node.operand))
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _COMPARE:
        return _COMPARE[type(node.ops[0])](v(node.left), v(node.comparators[0]))
    if isinstance(node, ast.IfExp):
        return v(node.body) if v(node.test) else v(node.orelse)
    if isinstance(node, ast.BoolOp):
        out = None
        for item in node.values:
            out = v(item)
            if isinstance(node.op, ast.Or) == bool(out):
                return out
        return out
    if isinstance(node, ast.Call) and not any(isinstance(a, ast.Starred) for a in node.args):
        fn = v(node.func)
        return fn(*[v(a) for a in node.args], **{k.arg: v(k.value) for k in node.keywords})
    if isinstance(node, ast.Attribute):
        return getattr(v(node.value), node.attr)
    if isinstance(node, ast.Subscript):
        return v(node.value)[v(node.slice)]
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [v(e) for e in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    expression = ast.Expression(node)
    ast.fix_missing_locations(expression)
    return eval(compile(expression, "<v>", "eval"), dict(em.glob), em.values)  # noqa: S307


def _call_name(node) -> str | None:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return node.func.id
    return None


def _offset(shape, strides, idx, out_shape) -> str:
    """The element offset of an operand of ``shape`` broadcast to ``out_shape`` at loop
    indices ``idx`` (aligned on the right)."""
    lead = len(out_shape) - len(shape)
    terms = [f"{idx[lead + k]} * {s}" for k, (n, s) in enumerate(zip(shape, strides))
             if n != 1 and out_shape[lead + k] != 1]
    return " + ".join(terms) or "0"


def _axis(emitter, node):
    for kw in node.keywords:
        if kw.arg == "axis":
            return emitter.value(kw.value)
    if len(node.args) > 1:
        return emitter.value(node.args[1])
    return None
