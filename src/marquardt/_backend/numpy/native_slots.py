"""Where a native fit's state lives: every leaf of the records the traced steps pass between
them, at a fixed place in one float64 buffer (``F``) or one int64 buffer (``I``).

A step emitted as C (``native_emit``) reads its inputs and writes its outputs at these places,
so that chained steps hand each other nothing: the state stays in the two buffers for the
whole fit, and Python sees a leaf, when it must, through a NumPy view of its slot.

A slot is named by the loop's variable (``s``, ``prep``, ``c``, ``x_try``, ...) and the leaf's
path inside that variable's record (``(4, 1)``: field 4's field 1). An array keeps the memory
order the Python trace gave it (a column-major Jacobian stays column-major), because the last
bits of a BLAS product depend on it; a float leaf goes to ``F``, an integer or boolean leaf
(scalar or array) to ``I`` as int64.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["Unsupported", "Slot", "Layout", "array_info"]


class Unsupported(Exception):
    """A value or operation the native executor does not handle: the Python trace serves."""


class Slot(NamedTuple):
    """A leaf's place: ``buffer`` 'F' or 'I', ``offset`` in elements, ``kind`` 'f' (float),
    'i' (integer) or 'b' (bool), ``shape`` (() for a scalar), element ``strides`` (0 on
    dimensions of size 1), and ``pytype``, the leaf's Python type as the trace gave it."""

    buffer: str
    offset: int
    kind: str
    shape: tuple
    strides: tuple
    pytype: type


def scalar_kind(value) -> str:
    """'f', 'i' or 'b' for a Python or NumPy scalar."""
    if isinstance(value, (bool, np.bool_)):
        return "b"
    if isinstance(value, (int, np.integer)):
        return "i"
    if isinstance(value, (float, np.floating)):
        if isinstance(value, np.floating) and value.dtype != np.float64:
            raise Unsupported(f"a scalar of dtype {value.dtype}")
        return "f"
    raise Unsupported(f"a value of type {type(value).__name__}")


def array_info(value: np.ndarray) -> tuple[str, tuple, tuple]:
    """(kind, shape, element strides) of a dense array (size-1 dimensions' strides 0).

    Raises:
        Unsupported: another dtype, or an array that is not one dense block.
    """
    if value.dtype == np.float64:
        kind = "f"
    elif value.dtype == np.bool_:
        kind = "b"
    elif value.dtype.kind == "i":
        kind = "i"
    else:
        raise Unsupported(f"an array of dtype {value.dtype}")
    item = value.dtype.itemsize
    strides = tuple(0 if n == 1 else s // item for n, s in zip(value.shape, value.strides))
    dims = sorted((s, n) for s, n in zip(strides, value.shape) if n != 1)
    expected = 1
    for s, n in dims:
        if s != expected:
            raise Unsupported(f"an array that is not dense: shape {value.shape}, "
                              f"strides {value.strides}")
        expected *= n
    return kind, tuple(value.shape), strides


class Layout:
    """The slots of one fit's variables, allocated as the steps are emitted."""

    def __init__(self):
        self.slots: dict[tuple, Slot] = {}
        self.size = {"F": 0, "I": 0}
        self.templates: dict[str, object] = {}  # a variable's record tree, for reading back

    def slot(self, var: str, path: tuple, value) -> Slot:
        """The slot of ``var``'s leaf at ``path`` holding ``value`` (allocated at the first
        call; later calls must agree on kind, shape and memory order)."""
        if isinstance(value, np.ndarray):
            kind, shape, strides = array_info(value)
            pytype = np.ndarray
        else:
            kind, shape, strides, pytype = scalar_kind(value), (), (), type(value)
        key = (var, path)
        have = self.slots.get(key)
        if have is not None:
            if (have.kind, have.shape, have.strides) != (kind, shape, strides):
                raise Unsupported(f"{var}{list(path)} changes from {have.kind}{have.shape}"
                                  f"{have.strides} to {kind}{shape}{strides}")
            return have
        buffer = "F" if kind == "f" else "I"
        size = int(np.prod(shape)) if shape else 1
        slot = Slot(buffer, self.size[buffer], kind, shape, strides, pytype)
        self.size[buffer] += size
        self.slots[key] = slot
        return slot

    def buffers(self) -> tuple[np.ndarray, np.ndarray]:
        """Fresh zeroed buffers of this layout's sizes."""
        return np.zeros(max(self.size["F"], 1)), np.zeros(max(self.size["I"], 1), np.int64)


def view(slot: Slot, f_buf: np.ndarray, i_buf: np.ndarray) -> np.ndarray:
    """A writable NumPy view of an array slot (float64 in F, int64 in I)."""
    buf = f_buf if slot.buffer == "F" else i_buf
    return np.ndarray(slot.shape, buf.dtype, buffer=buf, offset=slot.offset * 8,
                      strides=tuple(8 * s for s in slot.strides))


def read(slot: Slot, f_buf: np.ndarray, i_buf: np.ndarray, pytype=None):
    """The leaf's value as the trace gave it (its Python type; an array copied)."""
    if slot.shape:
        v = view(slot, f_buf, i_buf)
        if slot.kind == "b":
            v = v.astype(np.bool_)
        # the same memory order as the trace's array
        out = np.empty_like(v) if slot.kind != "b" else v
        if slot.kind != "b":
            np.copyto(out, v)
        return out
    t = pytype or slot.pytype
    raw = f_buf[slot.offset] if slot.buffer == "F" else i_buf[slot.offset]
    if t is bool:
        return bool(raw)
    if t is int:
        return int(raw)
    if t is float:
        return float(raw)
    return t(raw)


def write(slot: Slot, f_buf: np.ndarray, i_buf: np.ndarray, value) -> None:
    """Store ``value`` in its slot."""
    if slot.shape:
        np.copyto(view(slot, f_buf, i_buf), value, casting="unsafe")
    elif slot.buffer == "F":
        f_buf[slot.offset] = value
    else:
        i_buf[slot.offset] = value
