"""A branch on a traced value (``xp.cond``) in a trace (``marquardt._backend.numpy.trace``):
both sides traced, written as one Python ``if``/``else``.

The core branches on a value in one place: the Cholesky solvers' fallback
(``_solvers.solve_normal_checked``: ``cond(all(ok), by_cholesky, per_system)``), where the
eigen-decomposition runs only when a factorisation failed. A straight line cannot hold it
(computing the eigen route at every attempt would cost an ``eigh`` per attempt), so the tracer
runs *both* functions on the tracers, each recording its operations into its own block, and
writes::

    if v12:
        <the true side's lines>
    else:
        <the false side's lines>
    v40 = (v22 if v12 else v31)        # one line per leaf of the result that differs

Only the taken side runs, as in the eager ``cond``: the same operations in the same order,
so the compiled function keeps the eager core's bits. What a side records must not leak
into the code after the ``if`` (its variables exist only where it ran), so each side starts
from the tracer's state before the branch and that state is restored after it: the
expression memo (``_Tracer.emit``'s reuse of a computed expression), the Python numbers of
NumPy scalars (``trace_lanes._python_number``), and the lanes or array variables that a side
gave a symbol made before the branch (``trace_lanes.lanes``, ``materialize``: ``note``).
The result's leaves are rendered inside their side (a lane-only vector gets its array there).

The block is one entry of the tracer's lines (several text lines); ``assigned`` gives the
variables it defines, for the dead-line pass (``trace._live_lines``). The C emitter
(``native_emit``) writes it as a C ``if``; a side that raises while it is traced (an
operation without a form on these values) makes the whole function ``Untraceable``.
"""

from __future__ import annotations

import re
import textwrap

from marquardt._backend.numpy.trace_values import Untraceable, _is_record, _Sym

__all__ = ["branch", "assigned", "is_block"]

_TARGETS = re.compile(r"^\s*((?:v\d+, )*v\d+)(?:, )? = ", re.MULTILINE)
_NAME = re.compile(r"\bv\d+\b")


def is_block(line: str) -> bool:
    """Whether a tracer line is a branch's block."""
    return line.startswith("if ")


def assigned(block: str) -> set[str]:
    """The variables a block assigns (on either side)."""
    out: set[str] = set()
    for m in _TARGETS.finditer(block):
        out.update(_NAME.findall(m.group(1)))
    return out


def _leaves(tree, out: list) -> None:
    if isinstance(tree, tuple):
        for item in tree:
            _leaves(item, out)
    else:
        out.append(tree)


def _rebuild(tree, leaves):
    if isinstance(tree, tuple):
        items = [_rebuild(item, leaves) for item in tree]
        return type(tree)(*items) if _is_record(tree) else tuple(items)
    return next(leaves)


def _side(tr, fn):
    """Run one side on a copy of the tracer's state; its lines, result, and leaf names."""
    saved = (tr.lines, tr.expressions, tr.lane_scalars, tr.noted)
    tr.lines, tr.expressions = [], dict(saved[1])
    tr.lane_scalars, tr.noted = dict(saved[2]), []
    try:
        out = fn()
        leaves: list = []
        _leaves(out, leaves)
        rendered = [tr.render(leaf) if isinstance(leaf, _Sym) else None for leaf in leaves]
        return tr.lines, out, leaves, rendered
    finally:
        for sym, name, parts in reversed(tr.noted):  # made before the branch: as it was
            sym.name, sym.parts = name, parts
        tr.lines, tr.expressions, tr.lane_scalars, tr.noted = saved


def branch(tr, pred, true_fn, false_fn):
    """``cond(pred, true_fn, false_fn)`` with ``pred`` traced: both sides recorded, the
    taken side's result returned as tracers of the values after the ``if``.

    Raises:
        Untraceable: the sides' results differ in structure or in a leaf's type.
    """
    taken = bool(tr.value(pred))
    condition = tr.render(pred)
    lines_t, out_t, leaves_t, names_t = _side(tr, true_fn)
    lines_f, out_f, leaves_f, names_f = _side(tr, false_fn)
    if len(leaves_t) != len(leaves_f) or _shape(out_t) != _shape(out_f):
        raise Untraceable("xp.cond: the sides' results differ in structure")
    block = [f"if {condition}:", _body(lines_t), "else:", _body(lines_f)]
    tr.lines.append("\n".join(block))
    merged = []
    for a, b, na, nb in zip(leaves_t, leaves_f, names_t, names_f):
        if a is b:
            merged.append(a)
            continue
        va, vb = tr.value(a), tr.value(b)
        if type(va) is not type(vb) or getattr(va, "shape", None) != getattr(vb, "shape", None) \
                or getattr(va, "dtype", None) != getattr(vb, "dtype", None):
            raise Untraceable("xp.cond: the sides' results differ in type")
        left = na if na is not None else tr.render(a)
        right = nb if nb is not None else tr.render(b)
        sym = tr.fresh(va if taken else vb)
        tr.lines.append(f"{sym.name} = ({left} if {condition} else {right})")
        merged.append(sym)
    return _rebuild(out_t, iter(merged))


def _shape(tree):
    if isinstance(tree, tuple):
        return (type(tree), tuple(_shape(t) for t in tree))
    return None


def _body(lines: list[str]) -> str:
    return textwrap.indent("\n".join(lines) if lines else "pass", "    ")
