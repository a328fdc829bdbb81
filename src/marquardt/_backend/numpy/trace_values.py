"""The values of a trace (``marquardt._backend.numpy.trace``): a traced value (``_Sym``),
which records every Python operator applied to it and refuses what straight-line code cannot
do (a branch on it, ``float()``, iteration), and the tests on traced values that the
generated code relies on (same bits, scalar or array)."""

from __future__ import annotations

import operator

import numpy as np

from marquardt._backend.numpy import single

__all__ = ["Untraceable"]


class Untraceable(Exception):
    """The function depends on a traced value in Python (a branch, ``float``, iteration)."""


_LEAF_TYPES = (np.ndarray, np.generic, float, int, bool)


def _is_record(v) -> bool:
    return isinstance(v, tuple) and hasattr(v, "_fields")


class _Sym:
    """A traced value: its variable name in the generated code and its value in the trace."""

    __slots__ = ("name", "value", "tr", "parts")
    __array_ufunc__ = None  # NumPy scalars defer to our reflected operators
    __array_priority__ = 1000

    def __init__(self, name, value, tr):
        self.name = name  # None: a vector held only as its lanes (``trace_lanes``)
        self.value = value
        self.tr = tr
        self.parts = None  # its element symbols, once split into lanes

    @property
    def shape(self):
        return np.shape(self.value)

    @property
    def dtype(self):
        return self.value.dtype

    @property
    def ndim(self):
        return np.ndim(self.value)

    def __len__(self):
        return len(self.value)

    def __bool__(self):
        raise Untraceable("a Python branch on a traced value")

    def __float__(self):
        raise Untraceable("float() of a traced value")

    __int__ = __index__ = __float__

    def __iter__(self):
        raise Untraceable("iteration over a traced value")

    def __getitem__(self, index):
        return self.tr.operation(operator.getitem, "{0}[{1}]", (self, index))

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        raise Untraceable(f"attribute {name!r} of a traced value")


def _binary(op, symbol):
    def forward(self, other):
        return self.tr.operation(op, "({0} " + symbol + " {1})", (self, other))

    def reflected(self, other):
        return self.tr.operation(op, "({0} " + symbol + " {1})", (other, self))
    return forward, reflected


for _name, _op, _sym in (("add", operator.add, "+"), ("sub", operator.sub, "-"),
                         ("mul", operator.mul, "*"), ("truediv", operator.truediv, "/"),
                         ("pow", operator.pow, "**"), ("matmul", operator.matmul, "@"),
                         ("and", operator.and_, "&"), ("or", operator.or_, "|")):
    _f, _r = _binary(_op, _sym)
    setattr(_Sym, f"__{_name}__", _f)
    setattr(_Sym, f"__r{_name}__", _r)
for _name, _op, _sym in (("lt", operator.lt, "<"), ("le", operator.le, "<="),
                         ("gt", operator.gt, ">"), ("ge", operator.ge, ">="),
                         ("eq", operator.eq, "=="), ("ne", operator.ne, "!=")):
    setattr(_Sym, f"__{_name}__", _binary(_op, _sym)[0])
_Sym.__hash__ = None
_Sym.__neg__ = lambda self: self.tr.operation(operator.neg, "(-{0})", (self,))
_Sym.__invert__ = lambda self: self.tr.operation(operator.invert, "(~{0})", (self,))
_Sym.__abs__ = lambda self: self.tr.operation(abs, "abs({0})", (self,))


def _same(a, b) -> bool:
    """Same type and the same bits (NaN equal to NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()
    if isinstance(a, np.generic):
        return np.asarray(a).tobytes() == np.asarray(b).tobytes()
    return a == b or (a != a and b != b)


def _pick(c, x, y):
    """``np.where(c, x, y)`` for a scalar ``c`` and two arrays of one shape and dtype: the
    chosen array itself when both are C-contiguous (``np.where``'s copy would be too)."""
    if x.flags.c_contiguous and y.flags.c_contiguous:
        return x if c else y
    return np.where(c, x, y)


def _scalar(v) -> bool:
    return isinstance(v, single._SCALAR)
