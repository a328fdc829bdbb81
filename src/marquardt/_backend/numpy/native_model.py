"""The user's residual function called back from C (the native executor's model).

C sees the residual function as one pointer ``int fun(const double *x, double *r)`` of the
``mq_model`` record below: it copies a point into the record's x buffer (n), calls, and reads
the residuals from its r buffer (m). On the Python side ``ModelCallback`` owns both buffers
and wraps the user's ``fun`` around NumPy views of them made once, so a call from C costs the
model plus the ``ctypes`` callback's entry and exit, nothing wrapped per call. The residuals
pass through ``_core.functions``' own conversion (``np.asarray(·, float64)`` and the (m,)
shape check, with its message), the same as the host executor's evaluator applies.

``ctypes`` swallows an exception raised in a callback (it prints it and returns 0). Here the
callback catches anything (``BaseException``: ``KeyboardInterrupt`` too), keeps it and returns
1; C stops at the first nonzero return and hands the flag back up, and the Python side
re-raises the very exception object after C returns (``ModelCallback.raise_error``): the
caller sees the user's exception, its type, message and traceback, as from a Python loop.

The model receives the same (n,) array at every call, overwritten by C before each call (the
Python path hands it a fresh row each time): a model that keeps x beyond the call must copy it.
"""

from __future__ import annotations

import ctypes
from typing import Callable

import numpy as np

from marquardt._core.functions import _as_vector

__all__ = ["MODEL_C", "RESIDUAL_FN", "ModelRecord", "ModelCallback"]

#: The C side: the callback's type, the record that carries it with its buffers, one
#: evaluation at a point (``mq_evaluate``), and the call itself (``mq_call``: the point
#: already in ``f->x``). ``nfev`` counts the calls that returned normally.
MODEL_C = r"""
typedef int (*mq_residual_fn)(const double *x, double *r);

typedef struct {
    mq_residual_fn fun;  /* 0: r written; nonzero: the call failed, stop */
    double *x;           /* (n,) the point the callback reads */
    double *r;           /* (m,) the residuals it writes */
    int n, m;
} mq_model;

static int mq_call(const mq_model *f, int *nfev) {
    int failed = f->fun(f->x, f->r);
    if (!failed) ++*nfev;
    return failed;
}

/* r = fun(x); 0, or the callback's nonzero flag (r then unspecified). */
LINKAGE int mq_evaluate(const mq_model *f, const double *x, double *r, int *nfev) {
    for (int j = 0; j < f->n; j++) f->x[j] = x[j];
    int failed = mq_call(f, nfev);
    if (failed) return failed;
    for (int k = 0; k < f->m; k++) r[k] = f->r[k];
    return 0;
}
"""

#: ``int fun(const double *x, double *r)``: the pointers arrive as Python ints (unused: they
#: are always the record's buffers, which the Python side already holds as views).
RESIDUAL_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)


class ModelRecord(ctypes.Structure):
    """``mq_model``: the callback, its buffers and their sizes."""

    _fields_ = [("fun", RESIDUAL_FN), ("x", ctypes.c_void_p), ("r", ctypes.c_void_p),
                ("n", ctypes.c_int), ("m", ctypes.c_int)]


class ModelCallback:
    """``fun(x) -> r`` (n,) → (m,) as a C callback with its own buffers.

    Attributes:
        x: the (n,) float64 buffer C writes each point into (the array ``fun`` receives).
        r: the (m,) float64 buffer the callback writes the residuals into.
        record: the ``mq_model`` record to pass to C (``ctypes.byref(cb.record)``).
        error: the exception of the failed call, until ``raise_error`` re-raises it.

    Args:
        fun: the residual function on NumPy (n,) vectors, extra arguments bound.
        n, m: the numbers of parameters and residuals.
        who: ``fun``'s name in the shape error's message.

    Examples:
        >>> import numpy as np
        >>> cb = ModelCallback(lambda x: x[0] * np.arange(3.0), 1, 3)
        >>> cb.x[0] = 2.0
        >>> cb.record.fun(None, None), cb.r.tolist()
        (0, [0.0, 2.0, 4.0])
    """

    __slots__ = ("x", "r", "record", "error", "_keep")

    def __init__(self, fun: Callable, n: int, m: int, who: str = "fun"):
        block = np.zeros(n + m)  # x then r: one address asked for (~1 µs each)
        x, r = self.x, self.r = block[:n], block[n:]
        self.error = None
        as_vector, ndarray, f64, shape = _as_vector, np.ndarray, np.dtype(np.float64), (m,)

        def call(_x, _r) -> int:
            try:
                out = fun(x)
                if type(out) is ndarray and out.shape == shape and out.dtype == f64:
                    r[...] = out  # what ``as_vector`` would return: ``out`` itself
                else:
                    r[...] = as_vector(out, m, who)
            except BaseException as exc:  # kept for the caller, re-raised after C returns
                self.error = exc
                return 1
            return 0

        self._keep = RESIDUAL_FN(call)  # alive as long as C may call it
        at = block.ctypes.data
        self.record = ModelRecord(self._keep, at, at + 8 * n, n, m)

    def raise_error(self) -> None:
        """Re-raise the exception a call kept (after C returned its nonzero flag).

        Raises:
            RuntimeError: C reported a failure but no exception was kept (a C-side error).
        """
        exc, self.error = self.error, None
        if exc is None:
            raise RuntimeError("the native code reported a failed call of the residual "
                               "function, but the callback raised nothing. Received: flag "
                               "without exception")
        try:
            raise exc
        finally:
            exc = None  # no cycle through this frame
