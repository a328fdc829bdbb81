"""A traced step as C: the straight-line Python of ``trace.compile_function`` read back with
``ast`` and written as one C function over the fit's buffers (``native_slots``).

Every variable of the generated Python is assigned once, and its value on a recorded call is
known: the source is run once more with ``locals()`` returned (``capture``), and any
sub-expression is evaluated on those values where its type or shape is needed. So each line
becomes C of known types: a float is a ``double``, an integer an ``int64_t``, a bool an ``int``,
an array a pointer with its shape and element strides fixed in the code (the memory order the
trace gave it: BLAS's last bits depend on it).

The translation keeps the trace's IEEE operations and their order, so that compiled with
``native_load.FLAGS`` the results are the trace's bit for bit:

* scalar lines as written (``x if c else y`` a conditional expression, ``_lane_div`` a plain
  division, which in C gives IEEE's ±inf/NaN as NumPy does, ``_msqrt`` ``sqrt``, a NaN
  constant by its bits);
* an elementwise array operation one loop over the output's elements (broadcasting by zero
  strides), each element the scalar operation NumPy's ufunc performs;
* ``add.reduce`` in NumPy's order (``native_prelude.np_sum``: pairwise over the innermost
  axis, else a running sum), products and the SVD by NumPy's own OpenBLAS
  (``np_gemv_cm``, ``np_svd``);
* views (``reshape``, ``swapaxes``, ``expand_dims``) the same pointer with new strides;
* the inputs read from their slots, the result tree's leaves written to theirs (constants
  included), arrays that alias an input slot about to be overwritten copied first.

An operation without a C form raises ``native_slots.Unsupported``: the step stays Python.
This module holds the statements, the array operations and the result; the expressions
(a scalar line, an element of an elementwise operation) are ``native_expr``'s.
"""

from __future__ import annotations

import ast
import threading
import functools
from typing import NamedTuple

import numpy as np

from marquardt._backend.numpy.native_expr import (_CTYPE, Expressions, _axis, _call_name, _cast,
                                                  _offset, _Sc, literal)
from marquardt._backend.numpy.native_ops import Operations, both_sides, is_lazy
from marquardt._backend.numpy.native_slots import (Layout, Slot, Unsupported, array_info,
                                                   order_of, scalar_kind)

__all__ = ["Emitted", "capture", "emit_step"]

#: ``ast.parse`` from two threads at once fails on CPython 3.11 ("AST constructor recursion
#: depth mismatch": the AST conversion's depth counter is the interpreter's, not the
#: thread's); two Dask tasks, or two threads fitting, may build steps at the same time.
PARSE_LOCK = threading.Lock()

_ACTYPE = {"f": "double", "i": "int64_t", "b": "int64_t"}  # array elements

#: The most a step's local arrays may take on the C stack (a thread's stack may be as small
#: as a few hundred KiB): larger problems keep the trace.
STACK_BYTES = 256 * 1024


class _Arr(NamedTuple):
    """An array in the C code: a pointer expression, kind, shape, element strides, and the
    input slots' variables it may point into (to copy before they are overwritten)."""

    cname: str
    kind: str
    shape: tuple
    strides: tuple
    origin: frozenset


class Emitted(NamedTuple):
    """A step's C function: its ``name``, ``text``, and the result's tree per output variable
    (``("rec", cls, children)``, ``("tup", children)``, ``("leaf", slot)``, ``("const", v)``,
    ``None``)."""

    name: str
    text: str
    templates: dict
    loaded: frozenset = frozenset()  # the input slots it reads: (variable, path)


@functools.lru_cache(maxsize=64)
def _instrumented(source: str):
    """The generated function's code, returning ``locals()`` instead of its result."""
    with PARSE_LOCK:  # the tree's conversions both ways
        tree = ast.parse(source)
        body = tree.body[0].body
        body[-1] = ast.Return(ast.Call(ast.Name("locals", ast.Load()), [], []))
        tree = both_sides(tree)  # a branch's variables on both sides (``native_ops``)
        ast.fix_missing_locations(tree)
        return compile(tree, "<marquardt capture>", "exec")


@functools.lru_cache(maxsize=64)
def _parsed(source: str) -> ast.FunctionDef:
    with PARSE_LOCK:
        return ast.parse(source).body[0]


def capture(fn, source: str, args) -> dict:
    """Every variable of the generated function ``source`` (its globals those of ``fn``) on
    the call ``args``: the function run again, returning ``locals()``."""
    scope = dict(fn.__globals__)
    with np.errstate(all="ignore"):
        exec(_instrumented(source), scope)  # noqa: S102 — our own code
        return scope["compiled"](*args)


class _Emitter(Expressions, Operations):
    """A step's statements, arrays and result (its expressions: ``Expressions``)."""

    def __init__(self, name, fn, source, args, in_vars, out_vars, layout: Layout, suffix=""):
        self.name = name
        self.glob = fn.__globals__
        self.values = capture(fn, source, args)
        self.tree = _parsed(source)
        self.in_vars = in_vars
        self.out_vars = out_vars
        self.layout = layout
        self.env: dict[str, object] = {}
        self.lines: list[str] = []
        self.count = 0
        self.loaded: set = set()  # the input slots read
        self.memo: dict = {}  # id(node) -> (node, its value)
        self.stack_bytes = 0
        self.suffix = suffix

    # -- values and names -------------------------------------------------------------------

    def run(self) -> Emitted:
        self.count_uses(self.tree)  # for ``defer`` (``native_ops``)
        for statement in self.tree.body[:-1]:
            self.statement(statement)  # an assignment, or a branch (``native_ops``)
        templates = self.outputs(self.tree.body[-1].value)
        params = "double *F, int64_t *I"
        text = (f"static int step_{self.name}{self.suffix}({params}) {{\n"
                + "".join(f"    {line}\n" for line in self.lines) + "    return 0;\n}\n")
        return Emitted(self.name, text, templates, frozenset(self.loaded))

    def assign(self, target, node):
        if isinstance(target, ast.Tuple):
            names = [t.id for t in target.elts]
            return self.assign_many(names, node)
        name = target.id
        path = _input_path(node)
        if path is not None:
            return self.load_input(name, path)
        if name not in self.values:  # a side of a branch raised on the recorded values
            raise Unsupported(f"no value of {name}")
        value = self.values[name]
        if self.defer(name, node, value):  # computed inside the one all/any that reads it
            return
        if isinstance(value, np.ndarray):
            self.env[name] = self.array(node, name)
        elif isinstance(value, tuple):
            raise Unsupported(f"a tuple value: {ast.unparse(node)}")
        else:
            kind = scalar_kind(value)
            code, have = self.scalar(node)
            self.lines.append(f"{_CTYPE[kind]} {name} = {_cast(code, have, kind)};")
            self.env[name] = _Sc(name, kind)

    def load_input(self, name, path):
        arg, inner = path
        var = self.in_vars[arg]
        value = self.values[name]
        slot = self.layout.slot(var, inner, value)
        self.loaded.add((var, inner))
        base = "F" if slot.buffer == "F" else "I"
        if slot.shape:
            ctype = _ACTYPE[slot.kind]
            strides = slot.strides
            if slot.tag >= 0:  # a matrix: this variant's order (``native_steps`` dispatches)
                strides = array_info(value)[2]
                order_of(slot.shape, strides)
            self.lines.append(f"{ctype} *{name} = {base} + {slot.offset};")
            self.env[name] = _Arr(name, slot.kind, slot.shape, strides, frozenset([var]))
        else:
            self.lines.append(f"{_CTYPE[slot.kind]} {name} = "
                              f"{_cast(f'{base}[{slot.offset}]', 'i' if base == 'I' else 'f', slot.kind)};")
            self.env[name] = _Sc(name, slot.kind)

    def assign_many(self, names, node):
        # x.tolist() / x.tolist()[0]: the elements of a lane vector
        inner = node.value if isinstance(node, ast.Subscript) else node
        if (isinstance(inner, ast.Call) and isinstance(inner.func, ast.Attribute)
                and inner.func.attr == "tolist"):
            a = self.array_of(inner.func.value)
            if len(a.shape) - (1 if isinstance(node, ast.Subscript) else 0) != 1:
                raise Unsupported(f"tolist of shape {a.shape}")
            if len(names) != a.shape[-1]:
                raise Unsupported("tolist arity")
            for k, name in enumerate(names):
                kind = scalar_kind(self.values[name])
                element = f"{a.cname}[{k * a.strides[-1]}]"
                self.lines.append(f"{_CTYPE[kind]} {name} = {_cast(element, a.kind if a.kind != 'b' else 'i', kind)};")
                self.env[name] = _Sc(name, kind)
            return
        if _call_name(node) == "_ns_svd":
            return self.svd(names, node)
        if _call_name(node) == "_ns_eigh":
            return self.eigh(names, node)
        raise Unsupported(f"tuple assignment from {ast.unparse(node)}")

    def stack(self, elements: int) -> None:
        """Count a local array's 8-byte elements against ``STACK_BYTES``.

        Raises:
            Unsupported: the step's arrays would not fit (a large problem: the trace)."""
        self.stack_bytes += 8 * max(elements, 1)
        if self.stack_bytes > STACK_BYTES:
            raise Unsupported(f"local arrays over {STACK_BYTES} bytes")

    def local_arrays(self, names) -> list:
        """A LAPACK routine's outputs ``names`` as local C arrays of their captured shapes
        (on the stack, counted against ``STACK_BYTES``)."""
        arrays = []
        for name in names:
            kind, shape, strides = array_info(self.values[name])
            size = int(np.prod(shape))
            self.stack(size)
            self.lines.append(f"double {name}[{size}];")
            arrays.append(_Arr(name, kind, shape, strides, frozenset()))
        return arrays

    def svd(self, names, node):
        a = self.array_of(node.args[0])
        if a.kind != "f" or len(a.shape) != 3 or a.shape[0] != 1:
            raise Unsupported(f"svd of {a.shape}")
        m, n = a.shape[1], a.shape[2]
        u, s, vh = self.local_arrays(names)
        if (u.strides[1:], vh.strides[1:]) != ((_c_strides(u.shape)[1:]), _c_strides(vh.shape)[1:]):
            raise Unsupported("svd outputs not in C order")
        memo = self.fresh("lwork")  # the workspace dgesdd asks for at this shape, kept
        self.lines.append(f"static int64_t {memo} = 0;")
        self.lines.append(f"if (np_svd({a.cname}, {a.strides[1]}, {a.strides[2]}, {m}, {n}, "
                          f"{u.cname}, {s.cname}, {vh.cname}, &{memo})) return 1;")
        for name, arr in zip(names, (u, s, vh)):
            self.env[name] = arr

    # -- arrays -----------------------------------------------------------------------------

    def array_of(self, node) -> _Arr:
        """An array-valued node as a C array (materialized where it is an expression)."""
        if isinstance(node, ast.Name):
            got = self.env.get(node.id)
            if isinstance(got, _Arr):
                return got
            if is_lazy(got):  # deferred (``native_ops``): stored now
                return self.materialize(node.id)
            if got is None and node.id in self.glob:
                return self.constant_array(self.glob[node.id])
            raise Unsupported(f"{node.id} is not an array")
        return self.array(node, self.fresh("a"))

    def constant_array(self, value) -> _Arr:
        if not isinstance(value, np.ndarray):
            raise Unsupported("a constant that is not an array")
        kind, shape, strides = array_info(value)
        name = self.fresh("k")
        flat = [value[idx] for idx in _indices_in_memory(shape, strides)]
        items = ", ".join(literal(v, kind) for v in flat)
        self.stack(len(flat))
        # static: initialised once, not at each pass of a loop that reads it
        self.lines.append(f"static const {_ACTYPE[kind]} {name}[{max(len(flat), 1)}] = "
                          f"{{{items}}};")
        return _Arr(name, kind, shape, strides, frozenset())

    def array(self, node, name) -> _Arr:
        """Emit the array value of ``node`` into C array ``name``."""
        value = self.value(node)
        call = _call_name(node)
        if call in ("_ns_reshape", "_ns_swapaxes", "_ns_expand_dims", "_ns_squeeze"):
            return self.view(node, name, value)
        if call == "_ns_matvec":
            return self.matvec(node, name, value)
        if call == "_ns_matmul":
            return self.matmul(node, name, value)
        if call == "_ns_stack":
            return self.stack_arrays(node, name, value)
        if isinstance(node, ast.Subscript):
            return self.subscript(node, name, value)
        if call in ("_ns_sum", "_ns_all", "_ns_any", "_ns_max", "_add_reduce", "_max_reduce"):
            return self.reduce_to_array(node, name, value)
        if call == "_np_array":
            return self.new_array(node, name, value)
        if call == "_pick":
            return self.pick(node, name, value)
        return self.elementwise(node, name, value)

    def declare(self, name, value) -> _Arr:
        kind, shape, strides = array_info(value)
        size = int(np.prod(shape)) if shape else 1
        self.stack(size)
        self.lines.append(f"{_ACTYPE[kind]} {name}[{max(size, 1)}];")
        return _Arr(name, kind, shape, strides, frozenset())

    def view(self, node, name, value) -> _Arr:
        base = self.array_of(node.args[0])
        src = self.value(node.args[0])
        if (value.__array_interface__["data"][0] != src.__array_interface__["data"][0]
                or not np.shares_memory(value, src)):
            if _call_name(node) != "_ns_reshape":
                raise Unsupported(f"{ast.unparse(node)} is not a view")
            return self.reshape_copy(base, name, value)
        kind, shape, strides = array_info(value)
        ctype = _ACTYPE[kind]
        self.lines.append(f"{ctype} *{name} = {base.cname};")
        return _Arr(name, kind, shape, strides, base.origin)

    def reshape_copy(self, base: _Arr, name, value) -> _Arr:
        """A reshape NumPy could not make a view (a column-major matrix to a row): the
        elements in C index order, copied."""
        out = self.declare(name, value)
        if out.strides != _c_strides(out.shape):
            raise Unsupported("a reshape's copy not in C order")
        idx = [f"i{k}" for k in range(len(base.shape))]
        loops = [f"for (long {idx[k]} = 0; {idx[k]} < {n}; {idx[k]}++)"
                 for k, n in enumerate(base.shape) if n != 1]
        src = _offset(base.shape, base.strides, idx, base.shape)
        self.lines.append(f"{{ long n_ = 0; {' '.join(loops)} {name}[n_++] = "
                          f"{base.cname}[{src}]; }}")
        return out

    def matvec(self, node, name, value) -> _Arr:
        a = self.array_of(node.args[0])
        x = self.array_of(node.args[1])
        transpose = False
        for kw in node.keywords:
            if kw.arg != "transpose_a":
                raise Unsupported(f"matvec keyword {kw.arg}")
            transpose = bool(self.value(kw.value))
        if len(a.shape) != 3 or a.shape[0] != 1 or len(x.shape) != 2 or a.kind != "f":
            raise Unsupported(f"matvec of {a.shape} and {x.shape}")
        rows, cols = a.shape[1], a.shape[2]
        s_r, s_c = a.strides[1], a.strides[2]
        if transpose:  # the product with Aᵀ: rows and columns swap
            rows, cols, s_r, s_c = cols, rows, s_c, s_r
        if rows == 1 or cols == 1:
            raise Unsupported("matvec with a dimension of 1 (NumPy takes a dot product)")
        out = self.declare(name, value)
        if out.shape[-1] != rows or int(np.prod(out.shape)) != rows:
            raise Unsupported("matvec output shape")
        incx = x.strides[-1] or 1
        if s_r == 1 and s_c == rows:  # column-major: as it is
            self.lines.append(f"np_gemv_cm(0, {rows}, {cols}, {a.cname}, {rows}, {x.cname}, "
                              f"{incx}, {name});")
        elif s_c == 1 and s_r == cols:  # row-major: the transpose of a column-major matrix
            self.lines.append(f"np_gemv_cm(1, {cols}, {rows}, {a.cname}, {cols}, {x.cname}, "
                              f"{incx}, {name});")
        else:
            raise Unsupported("matvec of a matrix with unit strides in neither order")
        return out

    def reduce_to_array(self, node, name, value) -> _Arr:
        out = self.declare(name, value)
        call = _call_name(node)
        src = self.array_of(node.args[0])
        axis = _axis(self, node)
        if axis is None:
            raise Unsupported(f"{call} without an axis")
        axis %= len(src.shape)
        # the output's elements: every index of src with the axis dropped
        idx_names = [f"i{k}" for k in range(len(src.shape))]
        loops, close = [], []
        for k, n in enumerate(src.shape):
            if k == axis or n == 1:
                continue
            loops.append(f"for (long {idx_names[k]} = 0; {idx_names[k]} < {n}; {idx_names[k]}++) {{")
            close.append("}")
        src_off = " + ".join([f"{idx_names[k]} * {src.strides[k]}" for k in range(len(src.shape))
                              if k != axis and src.shape[k] != 1] or ["0"])
        out_dims = [k for k in range(len(src.shape)) if k != axis]
        out_off = " + ".join([f"{idx_names[k]} * {out.strides[j]}" for j, k in enumerate(out_dims)
                              if src.shape[k] != 1] or ["0"])
        n = src.shape[axis]
        s = src.strides[axis]
        body = self.reduction_code(call, src, f"{src.cname} + {src_off}", n, s)
        self.lines.append(" ".join(loops) + f" {name}[{out_off}] = {body}; " + " ".join(close))
        return out

    def reduction_code(self, call, src: _Arr, start: str, n: int, s: int) -> str:
        """The C expression reducing ``n`` elements from ``start`` (stride ``s``)."""
        if call in ("_ns_sum", "_add_reduce"):
            if src.kind != "f":
                raise Unsupported("a sum of a non-float array")
            inner = min((st for st, k in zip(src.strides, src.shape) if k != 1), default=1)
            if s == inner:  # NumPy's inner loop runs along the axis: pairwise
                return f"np_sum({start}, {n}, {s})"
            # the axis is an outer one: a running sum, one row at a time
            return f"np_sum_running({start}, {n}, {s})"
        if call in ("_ns_max", "_max_reduce"):
            if src.kind != "f":
                raise Unsupported("a max of a non-float array")
            return f"np_max({start}, {n}, {s})"
        if call in ("_ns_all", "_ns_any"):
            fn = "np_all" if call == "_ns_all" else "np_any"
            return f"{fn}({start}, {n}, {s})"
        raise Unsupported(f"reduction {call}")

    def new_array(self, node, name, value) -> _Arr:
        out = self.declare(name, value)
        items = node.args[0]
        while isinstance(items, ast.List) and len(items.elts) == 1 and isinstance(
                items.elts[0], ast.List):
            items = items.elts[0]
        if not isinstance(items, ast.List) or len(items.elts) != int(np.prod(out.shape)):
            raise Unsupported("an array literal of another shape")
        for k, item in enumerate(items.elts):
            code, kind = self.scalar(item)
            self.lines.append(f"{name}[{k * out.strides[-1]}] = {_cast(code, kind, out.kind)};")
        return out

    def pick(self, node, name, value) -> _Arr:
        c, x, y = node.args
        cond, ck = self.scalar(c)
        ax, ay = self.array_of(x), self.array_of(y)
        if (ax.shape, ax.strides, ax.kind) == (ay.shape, ay.strides, ay.kind):
            kind, shape, strides = array_info(value)
            if (shape, strides) == (ax.shape, ax.strides):
                self.lines.append(f"{_ACTYPE[kind]} *{name} = ({cond}) ? {ax.cname} : {ay.cname};")
                return _Arr(name, kind, shape, strides, ax.origin | ay.origin)
        return self.elementwise(node, name, value)

    def elementwise(self, node, name, value) -> _Arr:
        out = self.declare(name, value)
        idx = [f"i{k}" for k in range(len(out.shape))]
        loops = [f"for (long {idx[k]} = 0; {idx[k]} < {n}; {idx[k]}++) {{"
                 for k, n in enumerate(out.shape) if n != 1]
        saved = self.lines
        self.lines = []
        code, kind = self.element(node, out.shape, idx)
        inner = self.lines
        self.lines = saved
        off = _offset(out.shape, out.strides, idx, out.shape)
        self.lines.append(" ".join(loops) + " " + " ".join(inner)
                          + f" {name}[{off}] = {_cast(code, kind, out.kind)}; "
                          + "}" * len(loops))
        return out

    # -- expressions --------------------------------------------------------------------------

    def outputs(self, node) -> dict:
        if isinstance(self.out_vars, tuple):
            if not isinstance(node, ast.Tuple) or len(node.elts) != len(self.out_vars):
                raise Unsupported("the result is not the expected tuple")
            parts = list(zip(self.out_vars, node.elts))
        else:
            parts = [(self.out_vars, node)]
        shadowed = set(self.in_vars) & {var for var, _ in parts}
        writes: list[tuple[Slot, str]] = []  # (slot, C source: a scalar or an array pointer)
        templates = {}
        for var, sub in parts:
            templates[var] = self.output_tree(var, (), sub, shadowed, writes)
        for slot, code in writes:
            if slot is None:  # a tag
                self.lines.append(code)
                continue
            base = "F" if slot.buffer == "F" else "I"
            if not slot.shape:
                self.lines.append(f"{base}[{slot.offset}] = {code};")
            else:
                size = int(np.prod(slot.shape))
                self.lines.append(f"memmove({base} + {slot.offset}, {code}, "
                                  f"{size} * sizeof({_ACTYPE[slot.kind]}));")
        return templates

    def output_tree(self, var, path, node, shadowed, writes):
        if isinstance(node, ast.Constant) and node.value is None:
            return None
        if isinstance(node, ast.Tuple):
            return ("tup", [self.output_tree(var, path + (i,), e, shadowed, writes)
                            for i, e in enumerate(node.elts)])
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            cls = self.glob.get(node.func.id)
            if isinstance(cls, type) and issubclass(cls, tuple) and hasattr(cls, "_fields"):
                return ("rec", cls, [self.output_tree(var, path + (i,), e, shadowed, writes)
                                     for i, e in enumerate(node.args)])
        if isinstance(node, ast.Name) and node.id not in self.env:
            value = self.constant(node.id)
            if value is None:
                return None
        value = self.value(node)
        if value is None:
            return None
        slot = self.layout.slot(var, path, value)
        if slot.shape:
            a = self.array_of(node)
            if slot.tag >= 0:  # a matrix: stored in its order, the tag with it
                writes.append((None, f"I[{slot.tag}] = {order_of(a.shape, a.strides)};"))
            elif a.strides != slot.strides:
                raise Unsupported(f"{var}{list(path)}: an array of another layout")
            if a.shape != slot.shape or _ACTYPE[a.kind] != _ACTYPE[slot.kind]:
                raise Unsupported(f"{var}{list(path)}: an array of another shape or type")
            code = a.cname
            if a.origin & shadowed:  # it points into a slot this step overwrites: copy now
                size = int(np.prod(a.shape))
                t = self.fresh("o")
                self.stack(size)
                self.lines.append(f"{_ACTYPE[a.kind]} {t}[{size}]; "
                                  f"memcpy({t}, {a.cname}, {size} * sizeof({_ACTYPE[a.kind]}));")
                code = t
            writes.append((slot, code))
        else:
            code, kind = self.scalar(node)
            want = "f" if slot.buffer == "F" else "i"
            writes.append((slot, _cast(code, kind, want)))
        return ("leaf", slot)


def _c_strides(shape):
    strides, acc = [], 1
    for n in reversed(shape):
        strides.append(0 if n == 1 else acc)
        acc *= n
    return tuple(reversed(strides))


def _indices_in_memory(shape, strides):
    """The array's indices in the order of its elements in memory."""
    size = int(np.prod(shape)) if shape else 1
    out = [None] * size
    for idx in np.ndindex(*shape):
        out[sum(i * s for i, s in zip(idx, strides))] = idx
    return out


def _input_path(node):
    """(argument, path inside it) of ``aK[i][j]...``; None for another expression."""
    path = []
    while isinstance(node, ast.Subscript):
        if not isinstance(node.slice, ast.Constant) or type(node.slice.value) is not int:
            return None
        path.append(node.slice.value)
        node = node.value
    if isinstance(node, ast.Name) and node.id.startswith("a") and node.id[1:].isdigit():
        return int(node.id[1:]), tuple(reversed(path))
    return None


def emit_step(name: str, fn, source: str, args, in_vars: tuple, out_vars,
              layout: Layout, suffix: str = "") -> Emitted:
    """The C function ``step_<name><suffix>(F, I)`` (static: ``native_steps`` exports a
    dispatcher) of the traced step ``source`` (its Python function
    ``fn``), typed by the call ``args``: argument k's leaves read from the slots of variable
    ``in_vars[k]``, the result written to those of ``out_vars`` (one variable, or a tuple of
    them for a tuple result).

    Raises:
        Unsupported: a line without a C form.
    """
    with np.errstate(all="ignore"):  # the values of sub-expressions, NaN and inf included
        return _Emitter(name, fn, source, args, in_vars, out_vars, layout, suffix).run()
