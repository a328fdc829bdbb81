"""The inline forms of the one-problem namespace's scalar paths, for the trace
(``marquardt._backend.numpy.trace``): where ``single``'s function would take its scalar path,
the generated code writes the Python expression that path evaluates (``x if c else y`` for
``where``, ``x > y`` for ``greater``, ...), checked by the tracer against the call on the traced
values; ``ARRAY_PATH`` names the NumPy function that ``single`` calls for arrays, so that the
generated code calls it directly where the types fix that path."""

from __future__ import annotations

import numpy as np

from marquardt._backend.numpy import single
from marquardt._backend.numpy.trace_values import _scalar, _Sym

__all__ = ["ARRAY_PATH", "INLINE", "REDUCTIONS"]


def _constant_scalar(tr, v):
    """A scalar argument as ``single._value`` makes it: Python numbers converted once."""
    if isinstance(v, _Sym):
        return v
    return single._value(v)


# Inline forms of ``single``'s scalar paths: (template, arguments) or None for the call.
def _generic(tr, *args) -> bool:
    """Every argument a scalar, and every traced one a NumPy scalar (not a Python number,
    which ``single._value`` would convert)."""
    return all(_scalar(tr.value(a)) and (not isinstance(a, _Sym)
                                         or isinstance(a.value, np.generic)) for a in args)


def _where(tr, c, x, y):
    cv, xv, yv = tr.value(c), tr.value(x), tr.value(y)
    if (isinstance(cv, np.bool_) and isinstance(xv, np.ndarray) and isinstance(yv, np.ndarray)
            and xv.shape == yv.shape and xv.dtype == yv.dtype):
        # one problem's choice between two arrays: the chosen one itself where ``np.where``
        # would return a C-ordered copy of it (the core never writes into its arrays; the
        # memory order matters, a BLAS product's last bits depend on it)
        return "_pick({0}, {1}, {2})", (c, x, y)
    if not _generic(tr, x, y):
        return None
    if isinstance(cv, (np.bool_, bool)) and _scalar(xv) and _scalar(yv):
        xs = x if isinstance(x, _Sym) else single._value(xv, yv)
        ys = y if isinstance(y, _Sym) else single._value(yv, xv)
        return "({1} if {0} else {2})", (c, xs, ys)
    return None


def _extremum(symbol):
    def form(tr, x, y):
        if _generic(tr, x, y):
            x, y = _constant_scalar(tr, x), _constant_scalar(tr, y)
            return "({0} if ({0} " + symbol + " {1} or {0} != {0}) else {1})", (x, y)
        return None
    return form


def _scalar_operator(symbol):
    """A comparison or logical operator on two scalars, written inline."""
    def form(tr, x, y):
        if _scalar(tr.value(x)) and _scalar(tr.value(y)):
            return "({0} " + symbol + " {1})", (x, y)
        return None
    return form


def _unary(template):
    def form(tr, x, *rest):
        if not rest and _scalar(tr.value(x)):
            return template, (x,)
        return None
    return form


def _identity_on_scalar(tr, a, *rest):
    if _scalar(tr.value(a)):
        return "{0}", (a,)
    return None


def _cast(tr, a, dtype):
    if not _scalar(tr.value(a)) or isinstance(dtype, _Sym):
        return None
    target = np.dtype(single._xp._DTYPES.get(dtype, dtype) if isinstance(dtype, str)
                      else dtype).type
    if type(tr.value(a)) is target:
        return "{0}", (a,)
    return "{1}({0})", (a, target)


def _like(tr, a, *rest):
    """zeros_like / ones_like / full_like of a scalar: a constant of its type."""
    if _scalar(tr.value(a)) and not tr.traced(rest):
        return None, ()
    return None


def _reduction(template):
    """sum / max / norm of an array to one value per problem: the ufunc's reduction and the
    (1,) result's element, as ``single._one`` takes it (``norm``: the square root of that
    sum, correctly rounded by ``math.sqrt`` as by ``np.sqrt``)."""
    def form(tr, a, axis=None, keepdims=False):
        value = tr.value(a)
        if (not isinstance(value, np.ndarray) or isinstance(axis, _Sym) or keepdims
                or not isinstance(axis, int)):
            return None
        out_shape = value.shape[:axis % value.ndim] + value.shape[axis % value.ndim + 1:]
        if out_shape != (1,):
            return None
        return template, (a, axis)
    return form


REDUCTIONS = ("sum", "max", "norm")


def _two_scalars(x, y, *rest):
    return single._scalars(x, y)


def _one_scalar(a, *rest):
    return isinstance(a, single._SCALAR)


# ``single``'s functions whose array path is one NumPy call: (the test that takes its scalar
# path, the array path's function); the trace calls the latter directly where the former
# failed (the types, and so the path, are fixed by the compiled code's signature).
ARRAY_PATH = {
    "where": (lambda c, x, y: isinstance(c, (np.bool_, bool)) and single._scalars(x, y),
              np.where),
    "maximum": (_two_scalars, np.maximum),
    "minimum": (_two_scalars, np.minimum),
    "greater": (_two_scalars, np.greater),
    "greater_equal": (_two_scalars, np.greater_equal),
    "less": (_two_scalars, np.less),
    "less_equal": (_two_scalars, np.less_equal),
    "equal": (_two_scalars, np.equal),
    "logical_and": (_two_scalars, np.logical_and),
    "logical_or": (_two_scalars, np.logical_or),
    "logical_not": (_one_scalar, np.logical_not),
    "isfinite": (_one_scalar, np.isfinite),
    "abs": (_one_scalar, np.abs),
    "sqrt": (_one_scalar, np.sqrt),
    "expand_dims": (_one_scalar, single._xp.expand_dims),
    "cast": (_one_scalar, single._xp.cast),
}

INLINE = {
    "sum": _reduction("_add_reduce({0}, axis={1})[0]"),
    "max": _reduction("_max_reduce({0}, axis={1})[0]"),
    "norm": _reduction("_F64(_msqrt(_add_reduce({0} * {0}, axis={1})[0]))"),
    "cast": _cast,
    "zeros_like": _like,
    "ones_like": _like,
    "full_like": _like,
    "where": _where,
    "maximum": _extremum(">="),
    "minimum": _extremum("<="),
    "greater": _scalar_operator(">"),
    "greater_equal": _scalar_operator(">="),
    "less": _scalar_operator("<"),
    "less_equal": _scalar_operator("<="),
    "equal": _scalar_operator("=="),
    "logical_and": _scalar_operator("&"),
    "logical_or": _scalar_operator("|"),
    "logical_not": _unary("(~{0})"),
    "abs": _unary("abs({0})"),
    "sqrt": _unary("(_F64(_msqrt({0})) if {0} >= 0 else _NAN)"),
    "isfinite": _unary("_B(_misfinite({0}))"),
    "expand_dims": _identity_on_scalar,
    "squeeze": _identity_on_scalar,
}
