"""Python's side of a native fit's buffers (``native_slots``): the views a configuration's loop
(``native_loop``) makes once and uses at every fit.

* ``MatrixView``: a matrix slot seen in either memory order, as its order tag says (the
  Jacobian is column-major after differences, row-major after a rejected iteration, and a
  BLAS product's last bits depend on the order, so the slot keeps the order it was given);
* ``input_writer``: the writer of one start argument (x0, f0, j0, the bounds) into its slot;
* ``state_readers``: one reader per field of the loop's final ``LoopState``, each returning the
  type the Python trace returns (a Python or NumPy scalar, an array copied in its order).
"""

from __future__ import annotations

import sys
from typing import Callable

import numpy as np

from marquardt._backend.numpy import native_slots
from marquardt._backend.numpy.native_slots import Slot
from marquardt._core.records import LoopState

__all__ = ["MatrixView", "input_writer", "state_readers"]


def _ordered(slot: Slot, f_buf: np.ndarray, order: int) -> np.ndarray:
    """``slot``'s matrix as a view of ``f_buf`` in ``order`` (0 row-major, 1 column-major)."""
    return np.ndarray(slot.shape, np.float64, buffer=f_buf, offset=slot.offset * 8,
                      strides=tuple(8 * s for s in native_slots.order_strides(slot.shape, order)))


class MatrixView:
    """A matrix slot's two views (row-major, column-major) and its order tag's place."""

    def __init__(self, slot: Slot, f_buf: np.ndarray, i_buf: np.ndarray):
        self.tag = slot.tag
        self.i_buf = i_buf
        self.views = tuple(_ordered(slot, f_buf, order) for order in (0, 1))

    def get(self) -> np.ndarray:
        """The matrix in the order its tag holds (a view, not a copy)."""
        return self.views[self.i_buf[self.tag]]

    def put(self, value: np.ndarray) -> None:
        """Store ``value`` in its own order (one in neither: row-major)."""
        order = 1 if (value.flags.f_contiguous and not value.flags.c_contiguous) else 0
        self.i_buf[self.tag] = order
        np.copyto(self.views[order], value)


def input_writer(slot: Slot | None, f_buf: np.ndarray,
                 i_buf: np.ndarray) -> Callable[[np.ndarray], None] | None:
    """``native_slots.write`` of an array into ``slot`` with its view made once (None: a
    scalar or missing slot, written the general way): a C-ordered float64 matrix stored as
    row-major (its tag 0), a matrix in another order or type the general way."""
    if slot is None or not slot.shape:
        return None
    if slot.tag < 0:
        flat = native_slots.view(slot, f_buf, i_buf)
        return lambda value: np.copyto(flat, value, casting="unsafe")
    rows = _ordered(slot, f_buf, 0)
    tag = slot.tag

    def matrix(value: np.ndarray) -> None:
        if value.flags.c_contiguous and value.dtype == np.float64:
            i_buf[tag] = 0
            np.copyto(rows, value, casting="unsafe")
        else:
            native_slots.write(slot, f_buf, i_buf, value)
    return matrix


def state_readers(tree: tuple, f_buf: np.ndarray, i_buf: np.ndarray) -> list | bool:
    """One function per field of the ``LoopState`` whose template is ``tree`` (an emitted
    step's ``templates["s"]``), or False where the state is not a flat record of leaves (the
    caller then reads it the general way): a scalar converted to its type, an array copied in
    its order."""
    if tree[0] != "rec" or tree[1] is not LoopState:
        return False
    readers: list = []
    # the int buffer's int64 elements as int32 pairs: an int32 scalar read where its value is
    # (the low half; the counts and the status fit in int32, as the trace's int32 values):
    # 1,500 instructions, not np.int32(np.int64)'s 6,600 (the counts of a warm fit: 20,000)
    halves = i_buf.view(np.int32) if i_buf.dtype == np.int64 else None
    low = int(sys.byteorder == "big")
    for node in tree[2]:
        if node is None or node[0] != "leaf":
            return False
        slot = node[1]
        if slot.tag >= 0:
            readers.append(lambda m=MatrixView(slot, f_buf, i_buf): m.get().copy(order="K"))
        elif slot.shape:
            v = native_slots.view(slot, f_buf, i_buf)
            if slot.kind == "b":
                readers.append(lambda v=v: v.astype(np.bool_))
            else:
                readers.append(v.copy)
        else:
            buf = f_buf if slot.buffer == "F" else i_buf
            t, k = slot.pytype, slot.offset
            if t in (bool, int, float):
                readers.append(lambda buf=buf, k=k, t=t: t(buf.item(k)))
            elif t is np.float64 and buf is f_buf:  # its element is one already
                readers.append(lambda k=k: f_buf[k])
            elif t is np.int32 and buf is i_buf and halves is not None:
                readers.append(lambda k=2 * k + low: halves[k])
            else:
                readers.append(lambda buf=buf, k=k, t=t: t(buf[k]))
    return readers
