"""The statements and array operations that the Cholesky solvers add to a traced step
(``native_emit``): a branch (``trace_branch``'s ``if``), an element or row taken by a constant
index (``m[..., i, k]``), ``stack``, the product ``matmul`` (JᵀJ) and the eigen-decomposition
``eigh`` (the Cholesky fallback), each in C with NumPy's semantics, and arrays that need not
be stored:

* ``if c:`` … ``else:`` … becomes ``if (!(c)) goto else; … goto end; else: ; … end: ;``: one
  block scope, so that the variables of either side are declared in the function's scope
  and the lines after the ``if`` (``v = a if c else b``, one per result leaf) read the taken
  side's (C lets a jump pass a declaration that is not a variable-length array). Only the
  taken side runs, as in the trace. Its values on the recorded call come from ``capture``,
  which runs both sides (``both_sides``) so that each variable's type and shape are known.
* ``a[idx]`` with a constant index: a pointer into ``a`` at the offset of the first element,
  with the element strides of the indexed view (the offsets computed on an index grid).
* ``matmul(a, b)``: ``np_matmul`` (``native_prelude``), NumPy's own choice for two dense
  matrices: BLAS ``syrk`` where the operands are one matrix and its transpose (the upper
  triangle, then copied down), else ``gemm``, row-major, the transposition flags and leading
  dimensions from the operands' strides, as ``DOUBLE_matmul_matrixmatrix`` makes them.
* ``eigh(a)``: ``np_eigh``, LAPACK ``dsyevd`` (jobz 'V', uplo 'L') on a column-major copy
  with the workspace its query asks for, as ``np.linalg.eigh`` (``_umath_linalg.eigh_lo``).
* an elementwise array read once is not stored: an elementwise reader computes its elements
  inline, an ``all``/``any`` inside its loop, which leaves at the first element that decides
  it (``isfinite`` of J in the core's ``all_finite_rows``: ~1,000 fewer instructions per step
  on a 25 × 5 J), another reader stores it then (``defer``, ``fused_reduction``,
  ``materialize``). The same operations on each element: the same bits.

In a batch kernel (``native_kernel``) the same text is compiled with another prelude, whose
products are plain C loops.
"""

from __future__ import annotations

import ast

import numpy as np

from marquardt._backend.numpy.native_slots import Unsupported, array_info

__all__ = ["Operations", "both_sides", "is_lazy"]


class _Lazy:
    """An elementwise array read once (``Operations.defer``): its elements computed where
    they are read (inside the reader's loop; an ``all``/``any``'s, which stops at the first
    that decides it), not stored first."""

    __slots__ = ("node", "value")

    def __init__(self, node, value):
        self.node, self.value = node, value


class _BothSides(ast.NodeTransformer):
    """``if c: A else: B`` -> ``try: A`` ``try: B`` (every variable's value, for typing)."""

    def visit_If(self, node):
        self.generic_visit(node)
        out = []
        for body in (node.body, node.orelse):
            handler = ast.ExceptHandler(ast.Name("Exception", ast.Load()), None, [ast.Pass()])
            out.append(ast.Try(body=body or [ast.Pass()], handlers=[handler], orelse=[],
                               finalbody=[]))
        return out


def is_lazy(value) -> bool:
    """Whether an emitter's variable is deferred (``Operations.defer``)."""
    return isinstance(value, _Lazy)


def both_sides(tree: ast.Module) -> ast.Module:
    """The generated function with each ``if``'s sides both run (``native_emit.capture``)."""
    return _BothSides().visit(tree)


class Operations:
    """Mixed into ``native_emit._Emitter`` (its ``lines``, ``env``, ``values``, ...)."""

    def count_uses(self, tree) -> None:
        """How often each variable is read (``uses``), and which are the one argument of an
        ``all``/``any`` (``reduced``)."""
        self.uses: dict[str, int] = {}
        self.reduced: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                self.uses[node.id] = self.uses.get(node.id, 0) + 1
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                    node.func.id in ("_ns_all", "_ns_any") and len(node.args) == 1 and \
                    isinstance(node.args[0], ast.Name):
                self.reduced.add(node.args[0].id)

    def defer(self, name: str, node, value) -> bool:
        """Whether ``name = node``, an elementwise array read once, is left to its reader
        (nothing emitted here): an elementwise reader computes its elements inline
        (``native_expr.element``), an ``all``/``any`` inside its loop (``fused_reduction``),
        any other reader makes it an array then (``materialize``), as does a reader that
        broadcasts it (its elements would be computed more than once). The same operations
        on each element, only not stored: the same bits. Nothing is deferred inside a
        branch's side: its variables (pointers among them) are valid only where it ran."""
        from marquardt._backend.numpy.native_expr import ARRAY_CALLS

        if not isinstance(value, np.ndarray) or self.uses.get(name, 0) != 1 or \
                getattr(self, "in_branch", 0):  # a side's pointers: only valid where it ran
            return False
        call = node.func.id if isinstance(node, ast.Call) and isinstance(node.func,
                                                                        ast.Name) else None
        if not isinstance(node, (ast.Call, ast.BinOp, ast.UnaryOp, ast.Compare, ast.IfExp)) \
                or call in ARRAY_CALLS or call in ("_pick", "_np_array"):
            return False
        self.env[name] = _Lazy(node, value)
        return True

    def materialize(self, name: str):
        """A deferred array stored after all, where its reader needs an array."""
        lazy = self.env[name]
        arr = self.elementwise(lazy.node, name, lazy.value)
        self.env[name] = arr
        return arr

    def fused_reduction(self, call: str, arg) -> str | None:
        """``all``/``any`` of a deferred array over all its elements: a loop that leaves at
        the first element that decides it; None where ``arg`` is not deferred."""
        lazy = self.env.get(arg.id) if isinstance(arg, ast.Name) else None
        if not isinstance(lazy, _Lazy):
            return None
        shape = lazy.value.shape
        idx = [f"i{k}" for k in range(len(shape))]
        loops = [f"for (long {idx[k]} = 0; {idx[k]} < {n}; {idx[k]}++)"
                 for k, n in enumerate(shape) if n != 1]
        saved, self.lines = self.lines, []
        code, kind = self.element(lazy.node, shape, idx)
        inner, self.lines = self.lines, saved
        t, label = self.fresh("r"), self.fresh("done")
        every = call == "_ns_all"
        test = f"!({code})" if every else f"({code})"
        self.lines.append(f"int {t} = {int(every)}; {' '.join(loops)} {{ {' '.join(inner)} "
                          f"if ({test}) {{ {t} = {int(not every)}; goto {label}; }} }} "
                          f"{label}: ;")
        return t

    def statement(self, st) -> None:
        if isinstance(st, ast.If):
            return self.branch(st)
        if not isinstance(st, ast.Assign) or len(st.targets) != 1:
            raise Unsupported(f"statement {ast.unparse(st)}")
        self.assign(st.targets[0], st.value)

    def branch(self, st: ast.If) -> None:
        cond, kind = self.scalar(st.test)
        label = self.fresh("br")
        self.lines.append(f"if (!({cond})) goto {label}_else;")
        self.in_branch = getattr(self, "in_branch", 0) + 1  # nothing deferred in a side
        for sub in st.body:
            self.statement(sub)
        self.lines.append(f"goto {label}_end;")
        self.lines.append(f"{label}_else: ;")
        for sub in st.orelse:
            self.statement(sub)
        self.in_branch -= 1
        self.lines.append(f"{label}_end: ;")

    def subscript(self, node: ast.Subscript, name: str, value):
        """``a[idx]``, ``idx`` a constant: a view into ``a``."""
        from marquardt._backend.numpy.native_emit import _Arr

        base = self.array_of(node.value)
        index = self.value(node.slice)
        grid = np.indices(base.shape) if base.shape else np.zeros((0,), np.int64)
        offsets = sum((g * s for g, s in zip(grid, base.strides)), np.zeros(base.shape, np.int64))
        try:
            picked = np.asarray(offsets[index])
        except (IndexError, TypeError) as e:
            raise Unsupported(f"an index {ast.unparse(node.slice)}") from e
        kind = array_info(value)[0]
        if picked.shape != value.shape or picked.size == 0:
            raise Unsupported("an index of another shape")
        first = int(picked.reshape(-1)[0])
        strides = []
        for k, n in enumerate(picked.shape):
            if n == 1:
                strides.append(0)
                continue
            at = [0] * picked.ndim
            at[k] = 1
            strides.append(int(picked[tuple(at)]) - first)
        expected = first + sum((g * s for g, s in zip(np.indices(picked.shape), strides)),
                               np.zeros(picked.shape, np.int64))
        if not np.array_equal(expected, picked):
            raise Unsupported("an index that is not a strided view")
        ctype = "double" if kind == "f" else "int64_t"
        self.lines.append(f"{ctype} *{name} = {base.cname} + {first};")
        return _Arr(name, kind, tuple(picked.shape), tuple(strides), base.origin)

    def matmul(self, node, name, value):
        """A product of two matrices (batch axis 1), NumPy's BLAS call."""
        a = self.array_of(node.args[0])
        b = self.array_of(node.args[1])
        if node.keywords or len(a.shape) != 3 or len(b.shape) != 3 or a.shape[0] != 1 \
                or b.shape[0] != 1 or a.kind != "f" or b.kind != "f":
            raise Unsupported(f"matmul of {a.shape} and {b.shape}")
        m, n = a.shape[1:]
        n2, p = b.shape[1:]
        if n != n2 or 1 in (m, n, p):
            raise Unsupported("matmul with a dimension of 1 (NumPy's special cases)")
        out = self.declare(name, value)
        if out.strides[1:] != (p, 1):
            raise Unsupported("matmul's output not in C order")
        for x, rows, cols in ((a, m, n), (b, n, p)):
            s0, s1 = x.strides[1:]
            if not ((s1 == 1 and s0 >= cols) or (s0 == 1 and s1 >= rows)):
                raise Unsupported("matmul of a matrix with unit strides in neither order")
        # NumPy's syrk case (one matrix and its transpose) is told by the pointers: at run time
        self.lines.append(f"np_matmul({a.cname}, {a.strides[1]}, {a.strides[2]}, {b.cname}, "
                          f"{b.strides[1]}, {b.strides[2]}, {m}, {n}, {p}, {name});")
        return out

    def stack_arrays(self, node, name, value):
        """``stack([a0, a1, ...], axis)`` of small arrays (or scalars): element copies."""
        from marquardt._backend.numpy.native_expr import _axis, _cast

        items = node.args[0]
        if not isinstance(items, (ast.List, ast.Tuple)) or value.size > 256:
            raise Unsupported("a stack of more than a few elements")
        out = self.declare(name, value)
        axis = _axis(self, node)
        axis = (0 if axis is None else axis) % len(out.shape)
        for k, item in enumerate(items.elts):
            v = self.value(item)
            for idx in np.ndindex(*np.shape(v)):
                where = list(idx)
                where.insert(axis, k)
                o = sum(i * st for i, st in zip(where, out.strides))
                if isinstance(v, np.ndarray):
                    a = self.array_of(item)
                    src = f"{a.cname}[{sum(i * st for i, st in zip(idx, a.strides))}]"
                    kind = a.kind
                else:
                    src, kind = self.scalar(item)
                self.lines.append(f"{name}[{o}] = {_cast(src, kind, out.kind)};")
        return out

    def eigh(self, names, node) -> None:
        a = self.array_of(node.args[0])
        if a.kind != "f" or len(a.shape) != 3 or a.shape[0] != 1 or a.shape[1] != a.shape[2]:
            raise Unsupported(f"eigh of {a.shape}")
        n = a.shape[1]
        w, v = self.local_arrays(names)  # (native_emit's, as svd's)
        if v.strides[1:] != (n, 1):
            raise Unsupported("eigh's vectors not in C order")
        memo = self.fresh("lwork")  # the workspaces dsyevd asked for at this n, kept
        self.lines.append(f"static int64_t {memo}[2] = {{0, 0}};")
        self.lines.append(f"if (np_eigh({a.cname}, {a.strides[1]}, {a.strides[2]}, {n}, "
                          f"{w.cname}, {v.cname}, {memo})) return 1;")
        for var, arr in zip(names, (w, v)):
            self.env[var] = arr

