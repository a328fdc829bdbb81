"""The core's functions compiled for one problem on the host: traced once, run as straight-line
Python.

A single small fit spends its time in Python dispatch, not arithmetic: the core
(``marquardt._core.iteration``) is written once for K problems against an array namespace, so
one attempt of a 3-parameter fit is a few hundred namespace calls, each a Python function that
checks its arguments' types before doing one multiplication on two NumPy scalars, inside layers
of small functions (``select``, the damping policy, the termination tests) and ``NamedTuple``
records. This module removes the layers, not the operations: a core function is run once on
*tracers* that carry the real values of a first call (so every shape, dtype and scalar type is
known) and record each operation of the one-problem namespace (``single``) and each Python
operator applied to them. The record becomes one Python function of the inputs' leaves, a line
per operation:

* an operation on arrays is the same call of ``single`` that the eager run makes;
* an operation on per-problem scalars is written inline as the Python expression that
  ``single``'s scalar path evaluates (``x if c else y`` for ``where``, ``x > y`` for ``greater``,
  ...), with constants converted once at trace time; each inline form is checked against the
  ``single`` call on the traced values (same type, same bits) or the call is kept;
* records (``NamedTuple``) are unpacked and rebuilt directly.

So the compiled function performs the same IEEE operations in the same order as the eager
core on ``single`` (bit for bit the same results, ``tests/test_host_executor.py``), with a
fraction of the Python calls. Static configuration (``LoopConfig``, shapes, dtypes) is baked
in; the cache key holds it. A function that branches in Python on a traced value (a ``bool``
of an array: the trust-region policy's host shortcut) cannot be traced: ``Untraceable`` is
raised and the caller runs the eager core instead; ``xp.cond`` (the Cholesky solvers' fallback)
is traced on both sides and written as an ``if`` (``trace_branch``).

The generated source is made only from our own operation names and from names of constants
held in the function's globals (no user text is ever part of it); ``source`` keeps it for
inspection.
"""

from __future__ import annotations

import math
import operator
import re
import textwrap

import numpy as np

from marquardt._backend.numpy import single, trace_branch, trace_lanes
from marquardt._backend.numpy.trace_inline import ARRAY_PATH, INLINE, REDUCTIONS
from marquardt._backend.numpy.trace_values import (_LEAF_TYPES, Untraceable, _is_record, _pick,
                                                   _same, _Sym)

__all__ = ["Untraceable", "Compiled", "compile_function"]



class _Tracer:
    def __init__(self):
        self.lines: list[str] = []
        self.globals: dict = {"_F64": np.float64, "_NAN": np.float64(math.nan),
                              "_B": np.bool_, "_msqrt": math.sqrt,
                              "_misfinite": math.isfinite, "_pick": _pick,
                              "_add_reduce": np.add.reduce,
                              "_max_reduce": np.maximum.reduce, "_np_array": np.array,
                              "_np_sqrt": np.sqrt}
        self.globals.update(trace_lanes.HELPERS)
        self.count = 0
        self.expressions: dict[str, _Sym] = {}
        self.lane_scalars: dict[str, _Sym] = {}  # a NumPy scalar's Python number (trace_lanes)
        self.noted: list | None = None  # inside a branch's side: symbols it changed

    def note(self, sym: _Sym) -> None:
        """``sym``'s name and lanes are about to change (``trace_lanes``): inside a branch's
        side, kept to be restored after it (``trace_branch``)."""
        if self.noted is not None:
            self.noted.append((sym, sym.name, sym.parts))

    def fresh(self, value) -> _Sym:
        self.count += 1
        return _Sym(f"v{self.count}", value, self)

    def constant(self, value) -> str:
        if value is None or isinstance(value, (bool, str)) or (
                type(value) is int) or (type(value) is float and math.isfinite(value)):
            return repr(value)
        self.count += 1
        name = f"c{self.count}"
        self.globals[name] = value
        return name

    def render(self, arg) -> str:
        if isinstance(arg, _Sym):
            if arg.name is None:  # held as lanes only: its array, now that one is needed
                trace_lanes.materialize(self, arg)
            return arg.name
        if isinstance(arg, list):
            return "[" + ", ".join(self.render(a) for a in arg) + "]"
        if isinstance(arg, tuple) and not _is_record(arg):
            return "(" + "".join(self.render(a) + ", " for a in arg) + ")"
        return self.constant(arg)

    @staticmethod
    def value(arg):
        if isinstance(arg, _Sym):
            return arg.value
        if isinstance(arg, list):
            return [_Tracer.value(a) for a in arg]
        if isinstance(arg, tuple) and not _is_record(arg):
            return tuple(_Tracer.value(a) for a in arg)
        return arg

    @staticmethod
    def traced(arg) -> bool:
        if isinstance(arg, _Sym):
            return True
        if isinstance(arg, (list, tuple)) and not _is_record(arg):
            return any(_Tracer.traced(a) for a in arg)
        return False

    def emit(self, template: str, args, result):
        """One line ``v = template(args)``; a tuple result is unpacked into several."""
        expression = template.format(*(self.render(a) for a in args))
        if isinstance(result, tuple):
            syms = tuple(self.fresh(v) for v in result)
            self.lines.append(", ".join(s.name for s in syms) + ", = " + expression)
            return syms
        # the same pure operation on the same variables again (the core recomputes a few,
        # ``damping.accept(rho)`` in ``judge`` and in the policy's ``update``): its variable
        seen = self.expressions.get(expression)
        if seen is not None and _same(seen.value, result):
            return seen
        sym = self.fresh(result)
        self.lines.append(f"{sym.name} = {expression}")
        self.expressions[expression] = sym
        return sym

    def operation(self, fn, template, args):
        result = fn(*(self.value(a) for a in args))
        if not self.traced(args):
            return result
        lane_form = _LANE_OPERATORS.get(fn)
        if lane_form is not None and isinstance(result, np.ndarray):
            split = trace_lanes.elementwise(self, lane_form, args, result)
            if split is not None:
                return split
        return self.emit(template, args, result)

    def evaluate(self, template, args) -> tuple[bool, object]:
        """(True, the value) of an inline form on the traced values; (False, None) where it
        raises (it does not apply: the caller keeps the call)."""
        names = {f"a{i}": self.value(a) for i, a in enumerate(args)}
        try:
            return True, eval(template.format(*names), dict(self.globals), names)  # our own code
        except Exception:  # noqa: BLE001 — the inline form does not apply: keep the call
            return False, None

    def check(self, template, args, expected) -> bool:
        """The inline form gives ``expected`` on the traced values."""
        ok, got = self.evaluate(template, args)
        return ok and _same(got, expected)

    def namespace_call(self, name, args, kwargs):
        if name == "cond":  # a branch on a value: both sides traced, an ``if`` written
            if not self.traced(args[:1]):
                return args[1]() if bool(self.value(args[0])) else args[2]()
            return trace_branch.branch(self, *args)
        fn = getattr(single, name)
        values = [self.value(a) for a in args]
        result = fn(*values, **{k: self.value(v) for k, v in kwargs.items()})
        if not self.traced(args) and not self.traced(tuple(kwargs.values())):
            return result
        split = self.lanes(name, args, kwargs, result)
        if split is not None:
            return split
        inline = INLINE.get(name)
        if inline is not None and (not kwargs or name in REDUCTIONS):
            form = inline(self, *args, **kwargs)
            if form is not None and form[0] is None:  # a constant of the input's type
                return result
            if form is not None:
                template, inline_args = form
                if template == "{0}" and _same(self.value(inline_args[0]), result):
                    return inline_args[0]
                if self.check(template, inline_args, result):
                    return self.emit(template, inline_args, result)
        delegate = ARRAY_PATH.get(name)
        if delegate is not None and not kwargs and not delegate[0](*values):
            fn = delegate[1]  # what ``single`` calls for arrays, without its type tests
        self.globals.setdefault(f"_ns_{name}", fn)
        template = f"_ns_{name}(" + ", ".join(
            [f"{{{i}}}" for i in range(len(args))]
            + [f"{k}={{{len(args) + i}}}" for i, k in enumerate(kwargs)]) + ")"
        return self.emit(template, list(args) + list(kwargs.values()), result)


    def lanes(self, name, args, kwargs, result):
        """The call written lane by lane (``trace_lanes``), or None."""
        if name in trace_lanes.REDUCTIONS:
            return trace_lanes.reduction(self, name, args, kwargs, result)
        if kwargs or not isinstance(result, np.ndarray):
            return None
        return trace_lanes.elementwise(self, trace_lanes.namespace_form(name), args, result)


# Python's operators that act elementwise on a lane vector as on its elements: their lane form
_LANE_OPERATORS = {
    operator.add: trace_lanes.OPERATORS["+"], operator.sub: trace_lanes.OPERATORS["-"],
    operator.mul: trace_lanes.OPERATORS["*"], operator.truediv: trace_lanes.OPERATORS["/"],
    operator.and_: trace_lanes.OPERATORS["&"], operator.or_: trace_lanes.OPERATORS["|"],
    operator.lt: trace_lanes.OPERATORS["<"], operator.le: trace_lanes.OPERATORS["<="],
    operator.gt: trace_lanes.OPERATORS[">"], operator.ge: trace_lanes.OPERATORS[">="],
    operator.eq: trace_lanes.OPERATORS["=="], operator.ne: trace_lanes.OPERATORS["!="],
    operator.neg: trace_lanes.OPERATORS["neg"], operator.invert: trace_lanes.OPERATORS["not"],
    abs: trace_lanes.OPERATORS["abs"]}


class _TraceNamespace:
    """``single`` seen through a tracer: every function records its call."""

    def __init__(self, tr: _Tracer):
        self._tr = tr

    def __getattr__(self, name):
        target = getattr(single, name)
        if not callable(target):
            return target
        tr = self._tr

        def call(*args, **kwargs):
            return tr.namespace_call(name, args, kwargs)
        call.__name__ = name
        return call


def _leaves(tree, path, out):
    """(path, leaf) pairs of the traced inputs; None and records' static parts kept as is."""
    if tree is None:
        return
    if isinstance(tree, tuple):
        for i, item in enumerate(tree):
            _leaves(item, path + (i,), out)
        return
    if isinstance(tree, _LEAF_TYPES):
        out.append((path, tree))
        return
    raise Untraceable(f"an input of type {type(tree).__name__}")


def _substitute(tree, path, syms):
    if tree is None:
        return None
    if isinstance(tree, tuple):
        items = [_substitute(item, path + (i,), syms) for i, item in enumerate(tree)]
        return type(tree)(*items) if _is_record(tree) else tuple(items)
    return syms[path]


def _signature(tree):
    """The structure and leaf types of an input tree (the compiled code's assumptions)."""
    if tree is None:
        return None
    if isinstance(tree, tuple):
        return (type(tree),) + tuple(_signature(t) for t in tree)
    if isinstance(tree, np.ndarray):
        return (tree.shape, tree.dtype.str)
    return type(tree)


class Compiled:
    """A traced function: ``fn(*args)`` runs the generated code; ``source`` is its text."""

    __slots__ = ("fn", "source", "signature", "operations")

    def __init__(self, fn, source, signature, operations):
        self.fn = fn
        self.source = source
        self.signature = signature
        self.operations = operations


def compile_function(fn, args) -> tuple[Compiled, object]:
    """Trace ``fn(ns, *args)`` on the values ``args`` (trees of records, arrays, NumPy scalars
    and None) and compile it; returns the compiled function and this call's result.

    Raises:
        Untraceable: ``fn`` depends on a traced value in Python; run it eagerly instead.
    """
    tr = _Tracer()
    syms = {}
    header = []
    for a, tree in enumerate(args):
        pairs = []
        _leaves(tree, (a,), pairs)
        for path, leaf in pairs:
            sym = tr.fresh(leaf)
            syms[path] = sym
            header.append(f"{sym.name} = a{path[0]}" + "".join(f"[{i}]" for i in path[1:]))
    traced_args = [_substitute(tree, (a,), syms) for a, tree in enumerate(args)]
    try:
        with np.errstate(all="ignore"):
            out = fn(_TraceNamespace(tr), *traced_args)
    except Untraceable:
        raise
    except Exception as e:  # noqa: BLE001 — an operation the tracer lacks: the caller runs
        # the function eagerly, where a genuine error is raised as it would be anyway
        raise Untraceable(f"{type(e).__name__}: {e}") from e
    result_expr = _build(tr, out)
    params = ", ".join(f"a{i}" for i in range(len(args)))
    body = _live_lines(header + tr.lines, result_expr) + [f"return {result_expr}"]
    source = f"def compiled({params}):\n" + "".join(
        textwrap.indent(line, "    ") + "\n" for line in body)
    namespace = dict(tr.globals)
    exec(compile(source, "<marquardt trace>", "exec"), namespace)  # noqa: S102 — our own code
    compiled = Compiled(namespace["compiled"], source, tuple(_signature(a) for a in args),
                        len(tr.lines))
    return compiled, _values(out)


_NAME = re.compile(r"\bv\d+\b")


def _live_lines(lines: list[str], result_expr: str) -> list[str]:
    """The lines whose variables the result needs (every operation is pure: a value the
    result does not use, such as an unused field of an input record, is not computed)."""
    needed = set(_NAME.findall(result_expr))
    kept = []
    for line in reversed(lines):
        if trace_branch.is_block(line):  # a branch: kept whole where a variable is needed
            if trace_branch.assigned(line) & needed:
                kept.append(line)
                needed.update(_NAME.findall(line))
            continue
        targets, expression = line.split(" = ", 1)
        if any(t in needed for t in _NAME.findall(targets)):
            kept.append(line)
            needed.update(_NAME.findall(expression))
    return kept[::-1]


def _build(tr: _Tracer, out) -> str:
    """The expression that rebuilds the result tree from the generated variables."""
    if isinstance(out, _Sym):
        return tr.render(out)
    if _is_record(out):
        cls = tr.constant(type(out))
        return f"{cls}(" + ", ".join(_build(tr, v) for v in out) + ")"
    if isinstance(out, tuple):
        return "(" + "".join(_build(tr, v) + ", " for v in out) + ")"
    return tr.constant(out)


def _values(out):
    if isinstance(out, _Sym):
        return out.value
    if _is_record(out):
        return type(out)(*(_values(v) for v in out))
    if isinstance(out, tuple):
        return tuple(_values(v) for v in out)
    return out
