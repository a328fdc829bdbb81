"""A captured model and its exact Jacobian as one C function, for per-problem compiled fits.

A batch of small fits runs fastest as one compiled kernel per problem, the model, its
Jacobian and the LM step all in C (``benchmarks/batch_kernel_floor.py`` measures the design).
This module writes the model's half: from a :class:`~marquardt._model_capture.CapturedModel`
(the value tree f(x; p) and the partial trees ∂f/∂pⱼ of ``marquardt._formula_jacobian``) the
C source of one function, under this contract (the LM driver calls it)::

    typedef struct { const double *x; long x_row; const double *y; const double *w;
                     long m; } mq_data;
    /* x: the k independent-variable rows of this problem (row v, point i at x[v*x_row + i]);
       y: m observations; w: m weights (1/sigma) or NULL (all 1).
       r[i] = (f(x_i; p) - y[i]) * w_i;  where J != NULL also J[i*n + j] = w_i * df(x_i; p)/dp_j
       (row-major m x n). Returns 0. */
    static int mq_cmodel(const double *p, const mq_data *d, double *r, double *J);

How the code is written:

* **One statement per distinct node.** The partial trees share subtrees with the value tree
  (``exp(u)`` is both a term of f and ∂f/∂a), and a captured model may repeat a subexpression
  the user wrote twice. Nodes are interned bottom-up by their operation and their operands'
  numbers (a number by its exact bits, so -0.0 stays apart from 0.0), and each distinct node
  becomes one ``const double`` statement, its operands earlier statements or literals.
* **Hoisting.** A node that does not depend on a variable (``2*s**2``) is computed once per
  call, before the loop over the points; the others once per point.
* **Four loops.** With ``J`` NULL only the nodes the value needs are computed; with ``J``
  all; each with and without weights (no multiplications by 1 where ``w`` is NULL). A
  partial that is structurally 0 is stored as 0.0 (not w·0), one that is 1 as w.
* **Operations.** ``+ - * /`` and unary minus are C's (IEEE double, as NumPy's on float64;
  ``native_load`` compiles without ``-ffast-math`` and with ``-ffp-contract=off``, so no fused
  multiply-add and no reassociation); ``u**2`` is ``u*u`` (NumPy's power of 2 is its square,
  the same bits); other powers ``pow`` (NumPy's float64 power calls the C library's ``pow``);
  ``abs`` is ``fabs``, ``arctan2(u, v)`` ``atan2(u, v)``, the arcs ``asin acos atan``; the
  derivative-only ``sign(u)`` is NumPy's (1, -1, 0 for ±0, NaN for NaN) and ``log₊(u)`` is
  ``u > 0 ? log(u) : 0``. Constants are hexadecimal float literals (exact), ``INFINITY`` and
  ``NAN`` where not finite.
* **Cost.** The 2-D Gaussian of ``benchmarks/batch.py`` (m = 25): r and J 105.9
  instructions per point, against 104.6 for the probe's hand-written C (valgrind; r only:
  71.8 against 85.6); in the probe's LM loop 253,641 against 248,620 fits/s on one thread
  (``benchmarks/cmodel_point.py``). No algebra is rewritten: ``u / c`` stays a division
  (four per point here), as NumPy computes it.
* **Known difference.** ``exp``, ``log``, ``sin``... are the C library's here, while NumPy
  may use its own SIMD versions: they can differ in the last bit. That is accepted: the
  kernel's results are compared with the host executor's to rounding, not bit for bit.

:func:`load_cmodel` compiles the function with the project's compiler plumbing
(``native_load.load``: the system ``cc``, a disk cache keyed by the source's hash) together
with two exported entries for Python (``ctypes``): one call, and a timing loop.

Example:
    >>> import numpy as np
    >>> from marquardt._model_capture import capture_model
    >>> model = capture_model(lambda t, a, b: a * np.exp(-b * t), np.zeros(3), [1.0, 2.0])
    >>> "static int mq_cmodel(" in cmodel_source(model)
    True
"""

from __future__ import annotations

import ctypes
import math
from typing import Any, Sequence

import numpy as np

from marquardt._backend.numpy import native_load
from marquardt._formula_syntax import CONSTANTS, _Binary, _Call, _Node, _Number, _Symbol, _Unary
from marquardt._model_capture import CapturedModel

__all__ = ["MQ_DATA", "DataRecord", "cmodel_source", "load_cmodel", "CompiledModel"]

MQ_DATA = """#ifndef MQ_DATA_DEFINED
#define MQ_DATA_DEFINED
typedef struct { const double *x; long x_row; const double *y; const double *w; long m; } mq_data;
#endif
"""
"""The data record's definition, guarded so that the driver and this source may both hold it."""


class DataRecord(ctypes.Structure):
    """``mq_data`` for ``ctypes``: addresses of x (rows of ``x_row``), y, w (or None), and m."""

    _fields_ = [("x", ctypes.c_void_p), ("x_row", ctypes.c_long), ("y", ctypes.c_void_p),
                ("w", ctypes.c_void_p), ("m", ctypes.c_long)]

_C_FUNCTIONS = {"exp": "exp", "log": "log", "log10": "log10", "sqrt": "sqrt", "sin": "sin",
                "cos": "cos", "tan": "tan", "arcsin": "asin", "arccos": "acos",
                "arctan": "atan", "sinh": "sinh", "cosh": "cosh", "tanh": "tanh",
                "abs": "fabs", "arctan2": "atan2"}


def _literal(value: float) -> str:
    """An exact C literal of a double."""
    if math.isnan(value):
        return "NAN"
    if math.isinf(value):
        return "INFINITY" if value > 0 else "(-INFINITY)"
    return f"({value.hex()})"


class _Program:
    """The distinct nodes of a model, in an order where operands come first.

    ``code[i]`` is node i's C expression over earlier names, ``pointwise[i]`` whether it
    depends on a variable; ``name(i)`` is what later statements write for it (a literal for
    a number, ``pj`` for a parameter, ``xv`` for a variable's value at the point).
    """

    def __init__(self, model: CapturedModel):
        self.model = model
        self.keys: dict[tuple, int] = {}
        self.code: list[str] = []
        self.kind: list[str] = []  # "literal", "parameter", "variable", "temp"
        self.pointwise: list[bool] = []
        self.operands: list[tuple[int, ...]] = []
        self.by_id: dict[int, int] = {}
        self.literals: dict[int, float] = {}  # node number -> value, for the numbers
        self.roots = [self.intern(model.value)] + [self.intern(t) for t in model.partials]

    def name(self, i: int) -> str:
        return self.code[i] if self.kind[i] in ("literal", "parameter", "variable") else f"t{i}"

    def _add(self, key: tuple, kind: str, code: str, operands: tuple[int, ...]) -> int:
        found = self.keys.get(key)
        if found is None:
            found = self.keys[key] = len(self.code)
            self.code.append(code)
            self.kind.append(kind)
            self.pointwise.append(kind == "variable" or any(self.pointwise[o] for o in operands))
            self.operands.append(operands)
        return found

    def intern(self, node: _Node) -> int:
        """Node number of ``node``, its operands interned first (iteratively: no recursion)."""
        stack: list[tuple[_Node, bool]] = [(node, False)]
        while stack:
            current, ready = stack.pop()
            if id(current) in self.by_id:
                continue
            children = _children(current)
            if not ready:
                stack.append((current, True))
                stack.extend((c, False) for c in children if id(c) not in self.by_id)
                continue
            self.by_id[id(current)] = self._node(current, [self.by_id[id(c)] for c in children])
        return self.by_id[id(node)]

    def _node(self, node: _Node, ops: list[int]) -> int:
        if isinstance(node, _Number) or (isinstance(node, _Symbol) and node.kind == "constant"):
            value = float(node.value if isinstance(node, _Number) else CONSTANTS[node.name])
            i = self._add(("n", value.hex()), "literal", _literal(value), ())
            self.literals[i] = value
            return i
        if isinstance(node, _Symbol):
            if node.kind == "parameter":
                j = self.model.parameters.index(node.name)
                return self._add(("p", j), "parameter", f"p{j}", ())
            v = self.model.variables.index(node.name)
            return self._add(("x", v), "variable", f"x{v}", ())
        names = [self.name(o) for o in ops]
        if isinstance(node, _Unary):
            if node.op == "+":
                return ops[0]
            return self._add(("-", *ops), "temp", f"-{names[0]}", tuple(ops))
        if isinstance(node, _Binary):
            u, v = names
            if node.op == "**" and isinstance(node.right, _Number) and node.right.value == 2.0:
                code = f"{u} * {u}"
            elif node.op == "**":
                code = f"pow({u}, {v})"
            else:
                code = f"{u} {node.op} {v}"
            return self._add((node.op, *ops), "temp", code, tuple(ops))
        function = node.function
        if function == "sign":
            (u,) = names
            code = f"{u} > 0.0 ? 1.0 : {u} < 0.0 ? -1.0 : {u} == 0.0 ? 0.0 : {u}"
        elif function == "log_positive":
            (u,) = names
            code = f"{u} > 0.0 ? log({u}) : 0.0"
        else:
            code = f"{_C_FUNCTIONS[function]}({', '.join(names)})"
        return self._add((function, *ops), "temp", code, tuple(ops))

    def needed(self, roots: Sequence[int]) -> list[int]:
        """The temporaries the ``roots`` need, in statement order."""
        seen: set[int] = set()
        stack = list(roots)
        while stack:
            i = stack.pop()
            if i not in seen:
                seen.add(i)
                stack.extend(self.operands[i])
        return [i for i in sorted(seen) if self.kind[i] == "temp"]


def _children(node: _Node) -> tuple[_Node, ...]:
    if isinstance(node, _Unary):
        return (node.operand,)
    if isinstance(node, _Binary):
        return (node.left, node.right)
    if isinstance(node, _Call):
        return node.args
    return ()


def cmodel_source(model: CapturedModel, name: str = "mq_cmodel", *,
                  typedef: bool = True) -> str:
    """C source of ``static int name(const double *p, const mq_data *d, double *r, double *J)``
    for ``model``, under the contract in this module's docstring.

    Args:
        model: The captured model (value and partial trees, variable and parameter names).
        name: The C function's name (a C identifier).
        typedef: Whether to open with ``#include <math.h>`` and ``MQ_DATA`` (guarded).

    Returns:
        The source text: the includes and the record (with ``typedef``) and one static
        function, which every translation unit that includes it may call.
    """
    prog = _Program(model)
    value, partials = prog.roots[0], prog.roots[1:]
    n = len(partials)
    lines = [f"static int {name}(const double *p, const mq_data *d, double *r, double *J) {{"]
    if n:
        lines.append("    const double " + ", ".join(f"p{j} = p[{j}]" for j in range(n)) + ";")
    rows = sorted({int(prog.code[i][1:]) for i, k in enumerate(prog.kind) if k == "variable"})
    for v in rows:
        lines.append(f"    const double *row{v} = d->x + {v}L * d->x_row;")
    lines.append("    const double *y = d->y, *w = d->w;")
    lines.append("    const long m = d->m;")

    def statements(indices: list[int], pointwise: bool, indent: str) -> list[str]:
        return [f"{indent}const double t{i} = {prog.code[i]};" for i in indices
                if prog.pointwise[i] == pointwise]

    def loop(roots: list[int], with_jacobian: bool, weighted: bool) -> list[str]:
        body = [f"        const double x{v} = row{v}[i];" for v in rows]
        body += statements(prog.needed(roots), True, "        ")
        residual = f"{prog.name(value)} - y[i]"
        body.append(f"        r[i] = ({residual}) * w[i];" if weighted else
                    f"        r[i] = {residual};")
        if with_jacobian:
            body.append(f"        double *row = J + i * {n}L;")
            for j, d in enumerate(partials):
                if prog.literals.get(d) == 0.0:  # a structural zero (or 0*...) folded
                    entry = "0.0"
                elif prog.literals.get(d) == 1.0:
                    entry = "w[i]" if weighted else "1.0"
                else:
                    entry = f"w[i] * {prog.name(d)}" if weighted else prog.name(d)
                body.append(f"        row[{j}] = {entry};")
        return ["    for (long i = 0; i < m; i++) {", *body, "    }"]

    def loops(roots: list[int], with_jacobian: bool) -> list[str]:
        return ["    if (w) {", *("    " + s for s in loop(roots, with_jacobian, True)),
                "    } else {", *("    " + s for s in loop(roots, with_jacobian, False)),
                "    }", "    return 0;"]

    value_only = prog.needed([value])
    everything = prog.needed(prog.roots)
    lines += statements(value_only, False, "    ")
    lines.append("    if (!J) {")
    lines += ["    " + s for s in loops([value], False)]
    lines.append("    }")
    lines += statements([i for i in everything if i not in set(value_only)], False, "    ")
    lines += loops(prog.roots, True)
    lines += ["}", ""]
    head = "#include <math.h>\n" + MQ_DATA if typedef else ""
    return head + "\n".join(lines)


_ENTRIES = r"""
int mq_cmodel_call(const double *p, const double *x, long x_row, const double *y,
                   const double *w, long m, double *r, double *J) {
    const mq_data d = {x, x_row, y, w, m};
    return mq_cmodel(p, &d, r, J);
}

/* `times` calls, for timing; returns the sum of r[0] over the calls (kept live) */
double mq_cmodel_repeat(const double *p, const double *x, long x_row, const double *y,
                        const double *w, long m, double *r, double *J, long times) {
    const mq_data d = {x, x_row, y, w, m};
    double acc = 0.0;
    for (long t = 0; t < times; t++) {
        mq_cmodel(p, &d, r, J);
        acc += r[0];
    }
    return acc;
}
"""


class CompiledModel:
    """A captured model's ``mq_cmodel`` compiled and callable from Python (tests, timing).

    Attributes:
        model: The captured model.
        source: The compiled C source (``cmodel_source`` and the exported entries).
    """

    def __init__(self, model: CapturedModel):
        self.model = model
        self.source = cmodel_source(model) + _ENTRIES
        lib = native_load.load(self.source)
        args = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_long, ctypes.c_void_p,
                ctypes.c_void_p, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
        self._call = lib.mq_cmodel_call
        self._call.argtypes, self._call.restype = args, ctypes.c_int
        self._repeat = lib.mq_cmodel_repeat
        self._repeat.argtypes, self._repeat.restype = args + [ctypes.c_long], ctypes.c_double

    def _arguments(self, p: Any, xdata: Any, y: Any, w: Any, jacobian: bool) -> tuple:
        p = np.ascontiguousarray(p, dtype=np.float64)
        x = np.ascontiguousarray(xdata, dtype=np.float64)
        x = x[None] if x.ndim == 1 else x
        y = np.ascontiguousarray(y, dtype=np.float64)
        m, n = x.shape[1], len(self.model.parameters)
        if p.shape != (n,) or x.shape[0] != len(self.model.variables) or y.shape != (m,):
            raise ValueError(f"`p`, `xdata`, `y` must have shapes ({n},), "
                             f"({len(self.model.variables)}, m), (m,). Received: "
                             f"{p.shape}, {x.shape}, {y.shape}")
        w = None if w is None else np.ascontiguousarray(w, dtype=np.float64).reshape(m)
        r = np.empty(m)
        J = np.empty((m, n)) if jacobian else None
        keep = (p, x, y, w, r, J)
        return keep, (p.ctypes.data, x.ctypes.data, m, y.ctypes.data,
                      None if w is None else w.ctypes.data, m, r.ctypes.data,
                      None if J is None else J.ctypes.data)

    def __call__(self, p: Any, xdata: Any, y: Any, w: Any = None,
                 jacobian: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """(r, J) of ``mq_cmodel`` at ``p``: xdata (m,) or (k, m), y (m,), w (m,) or None."""
        keep, args = self._arguments(p, xdata, y, w, jacobian)
        self._call(*args)
        return keep[4], keep[5]

    def repeat(self, p: Any, xdata: Any, y: Any, times: int, w: Any = None,
               jacobian: bool = True) -> float:
        """Calls ``mq_cmodel`` ``times`` times in C (for timing); returns Σ r[0]."""
        keep, args = self._arguments(p, xdata, y, w, jacobian)
        return self._repeat(*args, times)


def load_cmodel(model: CapturedModel) -> CompiledModel:
    """``model``'s C function compiled (or found in the disk cache) and loaded.

    Raises:
        native_load.NativeUnavailable: no C compiler, or the compilation failed.
    """
    return CompiledModel(model)
