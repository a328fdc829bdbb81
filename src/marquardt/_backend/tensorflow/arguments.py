"""The positional ``args`` of a user's function, split into tensor inputs and static values.

``least_squares`` and the SciPy bridge both pass the arrays among ``args`` to their compiled functions as *inputs*, so that new data of the same shape does not
retrace, and every other argument to the user's function as it is. ``split_args`` records
which is which (a ``DataLayout``); ``DataLayout.call_args`` rebuilds the argument list from
the input tensors inside the compiled function.

Which arrays become inputs is the caller's rule, and the two differ for a reason:
``float_arrays`` (``least_squares``) takes floating arrays of any rank and has always handed
integer arrays to ``fun`` as NumPy, which a function may rely on (NumPy indexing, ``len``,
loop bounds); ``row_arrays`` (the bridge) takes numeric arrays of at least one dimension,
integer and boolean ones included, because its ``per_sample`` mode splits every input into
rows along the first axis: integer labels are per-row data too, and a 0-d array has no rows.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

import numpy as np
import tensorflow as tf

__all__ = ["DataLayout", "split_args", "float_arrays", "row_arrays"]


class DataLayout(NamedTuple):
    """Where the arguments of ``fun(x, *args)`` come from at call time.

    Attributes:
        slots: one entry per positional argument: ``("tensor", i)`` for ``data[i]`` (an input of
            the compiled functions) or ``("static", value)`` (passed to ``fun`` as it is).
        data: the input tensors.
    """

    slots: tuple
    data: tuple

    def call_args(self, data: Sequence) -> list:
        """The positional arguments of ``fun``, with ``data`` (tensors) in the input slots."""
        return [data[v] if kind == "tensor" else v for kind, v in self.slots]


def float_arrays(a: Any) -> np.ndarray | None:
    """``least_squares``' rule: a floating array or tensor of any rank, as float64."""
    if isinstance(a, (np.ndarray, tf.Tensor)) and np.asarray(a).dtype.kind == "f":
        return np.asarray(a, np.float64)
    return None


def row_arrays(a: Any) -> np.ndarray | None:
    """The bridge's rule: a real, integer or boolean array or tensor of at least one dimension,
    floating ones as float64, the others in their own dtype."""
    if isinstance(a, (np.ndarray, tf.Tensor)) and np.ndim(a) > 0:
        arr = a.numpy() if isinstance(a, tf.Tensor) else a
        if arr.dtype.kind == "f":
            arr = arr.astype(np.float64, copy=False)
        if arr.dtype.kind in "fiub":
            return arr
    return None


def split_args(args: Sequence, rule: Callable[[Any], np.ndarray | None]) -> DataLayout:
    """The arguments ``rule`` turns into arrays become input tensors; the rest stays static."""
    slots, data = [], []
    for a in args:
        arr = rule(a)
        if arr is None:
            slots.append(("static", a))
        else:
            slots.append(("tensor", len(data)))
            data.append(tf.constant(arr))
    return DataLayout(tuple(slots), tuple(data))
