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
    dimensions of size 1; a matrix's: row-major, its tag gives the order it has), ``pytype``,
    the leaf's Python type as the trace gave it, and ``tag``, a matrix's order tag's offset
    in ``I``."""

    buffer: str
    offset: int
    kind: str
    shape: tuple
    strides: tuple
    pytype: type
    tag: int = -1  # a matrix's order tag in I (-1: not a matrix)


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

    def find(self, var: str, field: str | None = None, record=None) -> Slot:
        """The slot of the leaf ``var``, or of field ``field`` of ``var``, a ``record``.

        Raises:
            Unsupported: no such slot was allocated.
        """
        key = (var, () if field is None else (record._fields.index(field),))
        if key not in self.slots:
            raise Unsupported(f"no slot {key}")
        return self.slots[key]

    def slot(self, var: str, path: tuple, value) -> Slot:
        """The slot of ``var``'s leaf at ``path`` holding ``value`` (allocated at the first
        call; later calls must agree on kind and shape, and but for a matrix on the memory
        order)."""
        if isinstance(value, np.ndarray):
            kind, shape, strides = array_info(value)
            pytype = np.ndarray
            if is_matrix(shape):
                strides = order_strides(shape, 0)
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
        tag = -1
        if is_matrix(shape):
            tag = self.size["I"]
            self.size["I"] += 1
        slot = Slot(buffer, self.size[buffer], kind, shape, strides, pytype, tag)
        self.size[buffer] += size
        self.slots[key] = slot
        return slot

    def buffers(self) -> tuple[np.ndarray, np.ndarray]:
        """Fresh zeroed buffers of this layout's sizes."""
        return np.zeros(max(self.size["F"], 1)), np.zeros(max(self.size["I"], 1), np.int64)


def is_matrix(shape) -> bool:
    """Two dimensions above 1: its memory order can vary (a tag)."""
    big = sum(1 for n in shape if n != 1)
    if big > 2:
        raise Unsupported(f"an array of shape {shape}")
    return big == 2


def order_strides(shape, order: int) -> tuple:
    """Element strides of a dense array of ``shape``: row-major (0) or column-major (1) over
    its last two dimensions (0 on dimensions of size 1)."""
    dims = list(range(len(shape)))
    if order == 1:  # the last two dimensions swapped: the second last varies fastest
        dims[-2:] = dims[-2:][::-1]
    strides = [0] * len(shape)
    acc = 1
    for k in reversed(dims):
        strides[k] = 0 if shape[k] == 1 else acc
        acc *= shape[k]
    return tuple(strides)


def order_of(shape, strides) -> int:
    """0 (row-major) or 1 (column-major) of a matrix's element strides.

    Raises:
        Unsupported: another order.
    """
    for order in (0, 1):
        if tuple(strides) == order_strides(shape, order):
            return order
    raise Unsupported(f"a matrix of shape {shape} with strides {strides}")


def _strides(slot: Slot, i_buf) -> tuple:
    return order_strides(slot.shape, int(i_buf[slot.tag])) if slot.tag >= 0 else slot.strides


def view(slot: Slot, f_buf: np.ndarray, i_buf: np.ndarray) -> np.ndarray:
    """A writable NumPy view of an array slot (float64 in F, int64 in I), in the order its
    tag gives."""
    buf = f_buf if slot.buffer == "F" else i_buf
    return np.ndarray(slot.shape, buf.dtype, buffer=buf, offset=slot.offset * 8,
                      strides=tuple(8 * s for s in _strides(slot, i_buf)))


def read(slot: Slot, f_buf: np.ndarray, i_buf: np.ndarray, pytype=None):
    """The leaf's value as the trace gave it (its Python type; an array copied, in its
    memory order)."""
    if slot.shape:
        v = view(slot, f_buf, i_buf)
        if slot.kind == "b":
            return v.astype(np.bool_)
        return v.copy(order="K")
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
    """Store ``value`` in its slot (a matrix in its own order, its tag set; one in neither
    order is stored row-major)."""
    if slot.shape:
        if slot.tag >= 0:
            value = np.asarray(value)
            try:
                order = order_of(value.shape, array_info(value)[2])
            except Unsupported:
                order = 0
            i_buf[slot.tag] = order
        np.copyto(view(slot, f_buf, i_buf), value, casting="unsafe")
    elif slot.buffer == "F":
        f_buf[slot.offset] = value
    else:
        i_buf[slot.offset] = value
