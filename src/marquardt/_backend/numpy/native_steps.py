"""A single fit's traced steps compiled together as C (``native_emit``) on one shared layout
(``native_slots``), one shared object per configuration.

The steps and the loop variables they read and write (``_core.host._run_one``'s names):

* ``start(x0, f0, j0, lb, ub, d_fixed) -> s``
* ``begin(s, lb, ub, d_fixed) -> (prep, c, lv)``
* ``attempt(prep, s, c, lb, ub) -> x_try``
* ``judged(prep, s, c, x_try, f_try) -> (c, lv)``
* ``refit(prep, s, c) -> (c, lv)``
* ``end(s, prep, c, f_new, j_new) -> s``

so chaining them needs no copies: a step's outputs are where the next one reads them.
``NativeSteps.call`` runs one step on Python records (their leaves written to the slots, the
result read back): the tests compare it with the Python trace call by call, and the loop uses
it for a step that was never traced (the trust radius's ``refit`` after a fit without a
rejected step).
"""

from __future__ import annotations

import ctypes

import numpy as np

from marquardt._backend.numpy import (native_cloop, native_load, native_numdiff, native_prelude,
                                      native_slots)
from marquardt._backend.numpy.native_emit import emit_step
from marquardt._backend.numpy.native_prelude import prelude
from marquardt._backend.numpy.native_slots import Layout, Unsupported

__all__ = ["STEPS", "NativeSteps", "build"]

#: step -> (its arguments' variables, its result's variables)
STEPS = {
    "start": (("x0", "f0", "j0", "lb", "ub", "d_fixed"), "s"),
    "begin": (("s", "lb", "ub", "d_fixed"), ("prep", "c", "lv")),
    "attempt": (("prep", "s", "c", "lb", "ub"), "x_try"),
    "judged": (("prep", "s", "c", "x_try", "f_try"), ("c", "lv")),
    "refit": (("prep", "s", "c"), ("c", "lv")),
    "end": (("s", "prep", "c", "f_new", "j_new"), "s"),
}


class NativeSteps:
    """The compiled steps of one configuration: ``fns[name]()`` runs a step on the buffers
    ``f_buf``/``i_buf``; ``python[name]`` is the traced step (for ``call``'s fallback)."""

    def __init__(self, layout: Layout, lib, emitted: dict, python: dict, source: str):
        self.layout = layout
        self.fit = None  # the loop in C (``native_cloop``), where built
        self.source = source
        self.templates: dict[str, object] = {}
        for e in emitted.values():
            for var, tree in e.templates.items():
                self.templates.setdefault(var, tree)
        self.emitted = emitted
        self.python = python
        self.f_buf, self.i_buf = layout.buffers()
        f_ptr = ctypes.c_void_p(self.f_buf.ctypes.data)
        i_ptr = ctypes.c_void_p(self.i_buf.ctypes.data)
        self.fns = {}
        for name in emitted:
            fn = getattr(lib, f"step_{name}")
            fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
            fn.restype = ctypes.c_int
            self.fns[name] = _bind(fn, f_ptr, i_ptr)

    # -- between Python records and the buffers ------------------------------------------------

    def write(self, var: str, tree, path=()) -> None:
        """Store the leaves of ``tree`` (a record, tuple, array or scalar) as ``var``'s."""
        if tree is None:
            return
        if isinstance(tree, tuple):
            for i, item in enumerate(tree):
                self.write(var, item, path + (i,))
            return
        slot = self.layout.slots.get((var, path))
        if slot is not None:
            native_slots.write(slot, self.f_buf, self.i_buf, tree)

    def read(self, var: str, like=None):
        """``var`` as a Python tree (types as the trace gave them, or as in ``like``)."""
        return self._read(self.templates[var], like)

    def _read(self, node, like):
        if node is None:
            return None
        tag = node[0]
        if tag == "leaf":
            slot = node[1]
            pytype = None if like is None or isinstance(like, np.ndarray) else type(like)
            return native_slots.read(slot, self.f_buf, self.i_buf, pytype)
        children = node[-1]
        likes = like if like is not None else [None] * len(children)
        items = [self._read(c, lk) for c, lk in zip(children, likes)]
        return node[1](*items) if tag == "rec" else tuple(items)

    def call(self, name: str, *args, like=None):
        """Step ``name`` on Python records: the result as the trace's (``like``: a result of
        the trace whose leaf types to give it)."""
        in_vars, out_vars = STEPS[name]
        for var, arg in zip(in_vars, args):
            self.write(var, arg)
        if name not in self.fns:  # never traced: the Python step, its result stored
            out = self.python[name](*args)
            if isinstance(out_vars, tuple):
                for var, item in zip(out_vars, out):
                    self.write(var, item)
            else:
                self.write(out_vars, out)
            return out
        if self.fns[name]():  # 1: LAPACK did not converge (NumPy raises)
            raise np.linalg.LinAlgError("SVD did not converge")
        if isinstance(out_vars, tuple):
            likes = like if like is not None else (None,) * len(out_vars)
            return tuple(self.read(v, lk) for v, lk in zip(out_vars, likes))
        return self.read(out_vars, like)


def _bind(fn, f_ptr, i_ptr):
    def run():
        return fn(f_ptr, i_ptr)
    return run


def _matrix_groups(args, in_vars) -> list[tuple[object, list]]:
    """The matrices among the arguments' leaves, each object once with the (variable, path)
    of every leaf that is it (the trace hands one J object as ``s.j`` and ``prep``'s)."""
    groups: dict[int, tuple[object, list]] = {}

    def walk(tree, var, path):
        if isinstance(tree, tuple):
            for i, item in enumerate(tree):
                walk(item, var, path + (i,))
        elif isinstance(tree, np.ndarray) and tree.dtype == np.float64 and \
                native_slots.is_matrix(tree.shape):
            groups.setdefault(id(tree), (tree, []))[1].append((var, path))
    for var, arg in zip(in_vars, args):
        walk(arg, var, ())
    return list(groups.values())


def _in_order(a: np.ndarray, order: int) -> np.ndarray:
    """``a`` row-major (0) or column-major over its last two dimensions (1)."""
    if order == 0:
        return np.ascontiguousarray(a)
    return np.swapaxes(np.ascontiguousarray(np.swapaxes(a, -1, -2)), -1, -2)


def _replaced(tree, new: dict):
    if isinstance(tree, tuple):
        items = [_replaced(t, new) for t in tree]
        return type(tree)(*items) if hasattr(tree, "_fields") else tuple(items)
    return new.get(id(tree), tree)


def _emit_variants(name, step, args, layout) -> tuple[list, str]:
    """Step ``name`` emitted once per memory order of the matrices it reads, and the
    exported dispatcher that picks the variant from their tags."""
    in_vars, out_vars = STEPS[name]
    first = emit_step(name, step.fn, step.source, args, in_vars, out_vars, layout)
    groups = [(obj, keys) for obj, keys in _matrix_groups(args, in_vars)
              if any(k in first.loaded for k in keys)]
    variants, tags = [], []
    for _, keys in groups:
        read = next(k for k in keys if k in first.loaded)
        tags.append(layout.slots[read].tag)
    for code in range(2 ** len(groups)):
        new = {id(obj): _in_order(obj, (code >> i) & 1) for i, (obj, _) in enumerate(groups)}
        variants.append(emit_step(name, step.fn, step.source, _replaced(args, new), in_vars,
                                  out_vars, layout, suffix=f"_{code}"))
    select = " | ".join(f"((int)I[{t}] << {i})" for i, t in enumerate(tags)) or "0"
    cases = " ".join(f"case {c}: return step_{name}_{c}(F, I);" for c in range(len(variants)))
    dispatcher = (f"int step_{name}(double *F, int64_t *I) {{\n"
                  f"    switch ({select}) {{ {cases} }}\n    return 2;\n}}\n")
    return variants, dispatcher


def build(compiled: dict, calls: dict, python: dict | None = None, compile: bool = True  # noqa: A002
          ) -> NativeSteps:
    """The steps ``compiled`` (name -> ``trace.Compiled``) as one C module, each typed by its
    recorded call ``calls[name]`` (its arguments) and emitted for each memory order of the
    matrices it reads; a step without a recorded call or a compiled trace is left to Python:
    ``python[name]`` (default: the compiled traces' functions), called by ``call``. Given
    ``python`` (the host's steps), the module also holds the loop (``native_cloop``:
    ``NativeSteps.fit``), where its slots are there.

    With ``compile`` false the module is only loaded where the disk cache holds it.

    Raises:
        Unsupported: a step has an operation without a C form.
        native_load.NotCompiled: ``compile`` is false and the module is not on disk.
        native_load.NativeUnavailable: no compiler or no BLAS.
    """
    blas = native_load.blas()
    layout = Layout()
    emitted, texts = {}, []
    for name in STEPS:  # producers before consumers: the slots take the producers' types
        step = compiled.get(name)
        if step is None or name not in calls:
            continue
        variants, dispatcher = _emit_variants(name, step, calls[name], layout)
        emitted[name] = variants[0]
        texts.extend(v.text for v in variants)
        texts.append(dispatcher)
    if not emitted:
        raise Unsupported("no traced step")
    with_loop = python is not None
    if with_loop:  # the loop too (``native_cloop``), where its slots are there
        try:
            texts.append(native_cloop.source(layout, set(emitted), "refit" in python))
        except Unsupported:
            with_loop = False
    differences = native_numdiff.c_source("static") if with_loop else ""
    source = prelude(blas.ilp64) + "\n" + differences + "\n".join(texts)
    lib = native_load.load(source, compile)
    native_prelude.init(lib, blas)
    if python is None:
        python = {name: step.fn for name, step in compiled.items() if step is not None}
    native = NativeSteps(layout, lib, emitted, python, source)
    if with_loop:
        # through PyDLL: the GIL held, as native_numdiff's model calls Python from C
        fit = ctypes.PyDLL(lib._name).marquardt_fit
        fit.argtypes = [ctypes.c_void_p, ctypes.c_void_p, native_cloop.CALLBACK, ctypes.c_int,
                        ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                        ctypes.c_int]
        fit.restype = ctypes.c_int
        native.fit = fit
    return native
