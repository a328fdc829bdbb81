"""The user's residual function called from C (the native executor's model), two ways.

C sees the model as an ``mq_model`` record: a point buffer x (n) it copies each point into, a
residual buffer r (m) it reads after the call, and how to call. ``mq_call`` hides which way:

* ``ModelCallback``: one ``ctypes`` callback ``int fun(const double *x, double *r)`` (a
  ``CFUNCTYPE`` around the user's function and NumPy views of the buffers made once): the
  residuals are converted as the host executor's evaluator converts them
  (``functions._as_vector``: ``np.asarray(·, float64)`` and the (m,) shape check, with its
  message) and copied into r. ``ctypes`` swallows an exception raised in a callback (it
  prints it and returns 0), so the callback catches anything (``BaseException``:
  ``KeyboardInterrupt`` too), keeps it and returns 1; C stops at the first nonzero return and
  hands the flag back up, and the Python side re-raises the very exception object after C
  returns (``raise_error``).
* ``ModelCall``: no callback; C calls the user's function itself through the Python C API
  (``PyObject_CallOneArg`` on ``x.copy()``, both called from C: no Python frame between C and
  the model; a tuple packed where ``PyObject_CallOneArg`` is not exported) and reads the
  residuals through the
  buffer protocol where they are a float64 vector of m (the evaluator's conversion would
  return them as they are), else calls ``_as_vector`` on them. An exception stays set in the
  interpreter, C returns its flag, and ``ctypes`` raises it when the entry function returns,
  which needs the entry called through ``ctypes.PyDLL`` (the GIL held throughout). Per call
  ~4,100 fewer instructions than the callback (``benchmarks/native_numdiff.py``): the
  callback's arguments and result boxed by ``ctypes``, and the copy in NumPy.

``ModelCall`` also forms ``curve_fit``'s residuals itself where the function carries what
it is made of (``functions.CurveModel``): C calls the user's f(xdata, *p) with NumPy scalars
and subtracts ydata (times the weights), without the function's Python frame; or, where the
curve carries the model compiled (``compiled_curve``, checked at the fit's start), C calls that
(``mq_model.compiled``) and no Python at all.

Either way the model receives a fresh copy of the point at every call, as the Python path
hands it a fresh row: a model that keeps x (a list of the points tried, say) keeps what it
was given, not a buffer that C overwrites (one small copy a call).
"""

from __future__ import annotations

import ctypes
from typing import Callable

import numpy as np

from marquardt._core.functions import _as_vector

__all__ = ["CURVE_ARGS", "MODEL_C", "RESIDUAL_FN", "ModelRecord", "PythonRecord", "ModelCallback",
           "ModelCall"]

#: The C side: the record, the call (``mq_call``: the point already in ``f->x``; by the
#: callback, or by the C API), and one evaluation at a point (``mq_evaluate``). ``nfev``
#: counts the calls that returned normally. ``mq_buffer`` is CPython's ``Py_buffer`` (stable
#: ABI; ``intptr_t`` is ``Py_ssize_t``'s width), the flags ``PyBUF_RECORDS_RO``.
MODEL_C = r"""
#include <stdint.h>
#include <string.h>

typedef int (*mq_residual_fn)(const double *x, double *r);

typedef struct {
    void *buf, *obj;
    intptr_t len, itemsize;
    int readonly, ndim;
    char *format;
    intptr_t *shape, *strides, *suboffsets;
    void *internal;
} mq_buffer;

typedef struct {                                          /* the Python C API's */
    void *(*call)(void *callable, void *args);            /* PyObject_CallObject */
    void *(*call1)(void *callable, void *arg);            /* PyObject_CallOneArg, or NULL */
    int (*get_buffer)(void *obj, mq_buffer *view, int flags);  /* PyObject_GetBuffer */
    void (*release)(mq_buffer *view);                     /* PyBuffer_Release */
    void (*decref)(void *obj);                            /* Py_DecRef */
    void (*clear)(void);                                  /* PyErr_Clear */
    void *(*pack)(intptr_t n, ...);                       /* PyTuple_Pack */
    void *(*vectorcall)(void *callable, void *const *args, size_t nargsf, void *kwnames);
                                                          /* PyObject_Vectorcall, or NULL */
    void *(*item)(void *seq, intptr_t i);                 /* PySequence_GetItem */
    void *(*type)(void *obj);                             /* PyObject_Type */
    void *(*tuple)(intptr_t n);                           /* PyTuple_New */
    int (*set_item)(void *tuple, intptr_t i, void *item); /* PyTuple_SetItem */
    void (*incref)(void *obj);                            /* Py_IncRef */
    void *fun, *copy, *convert;  /* fun, x.copy, convert(out): _as_vector into r */
    /* a curve (curve_fit's model): fun is f, called f(xdata, x[0], ..., x[n-1]) with
       NumPy scalars, and r = f - y, or (f - y) * w, formed here; y NULL: not a curve */
    void *xdata, *point, *ndarray;  /* xdata, the (n,) array over x, numpy.ndarray */
    const double *y, *w;            /* (m,) the data and the weights (w NULL: none) */
    /* a curve's callable jac, called jac(xdata, x[0], ..., x[n-1]) (NULL: none), and
       jac_convert(out): its conversion and checks in Python, into jbuf (m, n) */
    void *jac, *jac_convert;
    const double *jbuf;
    int *order;                     /* the last J's order: 0 row-major, 1 by columns */
} mq_python;

typedef int (*mq_compiled_fn)(const double *p, const void *data, double *r, double *J);

typedef struct {
    mq_residual_fn fun;     /* a ctypes callback: 0, r written; nonzero: stop. NULL: py */
    double *x;              /* (n,) the point the model reads */
    double *r;              /* (m,) its residuals */
    int n, m;
    const mq_python *py;    /* C calls the model itself (the caller holds the GIL) */
    mq_compiled_fn compiled;  /* or the model compiled (compiled_curve): r = w (f - y) */
    const void *data;         /* its data record (native_formula's mq_data) */
} mq_model;

/* fun(x.copy()): the model gets a fresh array of the point each call (no Python frame) */
static void *mq_call_fresh(const mq_python *p) {
    void *point = p->call(p->copy, 0), *out = 0;
    if (!point) return 0;
    if (p->call1) {
        out = p->call1(p->fun, point);
    } else {
        void *args = p->pack(1, point);
        if (args) { out = p->call(p->fun, args); p->decref(args); }
    }
    p->decref(point);
    return out;
}

#define MQ_CURVE_ARGS 32  /* the most parameters a curve's call passes from the stack */

/* fn(xdata, x[0], ..., x[n-1]), each x[i] a NumPy float64 scalar (the array's item), as
   curve_fit's host function passes them (no Python frame between C and the model): fn is
   the model f, or its callable jac */
static void *mq_call_curve_fn(const mq_python *p, void *fn, int n) {
    void *stack[MQ_CURVE_ARGS + 1], *out = 0;
    int k = 0;
    stack[0] = p->xdata;
    for (; k < n; k++)
        if (!(stack[k + 1] = p->item(p->point, k))) break;
    if (k == n && p->vectorcall) {
        out = p->vectorcall(fn, stack, (size_t)(n + 1), 0);
    } else if (k == n) {  /* a tuple, where PyObject_Vectorcall is not exported */
        void *args = p->tuple(n + 1);
        if (args) {
            p->incref(p->xdata);
            for (int i = 0; i <= n; i++) p->set_item(args, i, stack[i]);  /* (stolen) */
            k = 0;
            out = p->call(fn, args);
            p->decref(args);
        }
    }
    for (int i = 1; i <= k; i++) p->decref(stack[i]);
    return out;
}

static void *mq_call_curve(const mq_python *p, int n) {
    return mq_call_curve_fn(p, p->fun, n);
}

static int mq_call_python(const mq_model *f) {
    const mq_python *p = f->py;
    const double *y = p->y, *w = p->w;
    void *out = y ? mq_call_curve(p, f->n) : mq_call_fresh(p);
    if (!out) return 1;  /* the exception stays set: ctypes raises it */
    mq_buffer v;
    int done = 0;
    if (y) {  /* only an ndarray itself: a subclass may define its own subtraction */
        void *t = p->type(out);
        p->decref(t);  /* (out holds its type) */
        if (t != p->ndarray) goto convert;
    }
    if (p->get_buffer(out, &v, 0x1c) == 0) {  /* PyBUF_RECORDS_RO */
        const char *fmt = v.format;
        if (fmt && (fmt[0] == '<' || fmt[0] == '=' || fmt[0] == '@')) fmt++;
        done = v.ndim == 1 && v.shape[0] == f->m && v.itemsize == 8 && fmt && fmt[0] == 'd'
               && fmt[1] == 0;
        if (done && y) {  /* the same IEEE operations as NumPy's out - y, (out - y) * w */
            const char *at = (const char *)v.buf;
            double *r = f->r;
            if (w)
                for (int k = 0; k < f->m; k++)
                    r[k] = (*(const double *)(at + k * v.strides[0]) - y[k]) * w[k];
            else
                for (int k = 0; k < f->m; k++)
                    r[k] = *(const double *)(at + k * v.strides[0]) - y[k];
        } else if (done && v.strides[0] == 8) {  /* a copy of the bytes (cheap at -O0 too) */
            memcpy(f->r, v.buf, (size_t)f->m * 8);
        } else if (done) {
            const char *at = (const char *)v.buf;
            double *r = f->r;
            for (int k = 0; k < f->m; k++) r[k] = *(const double *)(at + k * v.strides[0]);
        }
        p->release(&v);
    } else {
        p->clear();  /* no buffer: converted below */
    }
convert:
    if (!done) {  /* as the evaluator converts it, or its error */
        void *args = p->pack(1, out), *ok = args ? p->call(p->convert, args) : 0;
        if (args) p->decref(args);
        if (ok) p->decref(ok);
        done = ok != 0;
    }
    p->decref(out);
    return !done;
}

static int mq_call(const mq_model *f, int *nfev) {
    int failed = f->fun ? f->fun(f->x, f->r)
                 : f->compiled ? f->compiled(f->x, f->data, f->r, 0) : mq_call_python(f);
    if (!failed) ++*nfev;
    return failed;
}

/* J = jac(xdata, *x) of a curve (py->jac) through the C API, its rows times w as
   curve_fit's host_jac forms them, in the memory order the host executor would keep
   (*py->order: 0 row-major, jac[k n + i]; 1 by columns, jac[i m + k], where jac returned an
   F-ordered array): read here where it returns a C- or F-contiguous float64 ndarray of
   shape (m, n), else converted and checked in Python (jac_convert, into jbuf in its order,
   its errors). 0, or 1 with the exception set. */
static int mq_curve_jacobian(const mq_model *f, const double *x, double *jac) {
    const mq_python *p = f->py;
    const int n = f->n, m = f->m;
    memcpy(f->x, x, (size_t)n * 8);  /* the point the call's scalars are made from */
    void *out = mq_call_curve_fn(p, p->jac, n);
    if (!out) return 1;
    const double *w = p->w;
    int done = 0;
    void *t = p->type(out);
    p->decref(t);  /* (out holds its type) */
    mq_buffer v;
    if (t == p->ndarray && p->get_buffer(out, &v, 0x1c) == 0) {  /* PyBUF_RECORDS_RO */
        const char *fmt = v.format;
        if (fmt && (fmt[0] == '<' || fmt[0] == '=' || fmt[0] == '@')) fmt++;
        int ok = v.ndim == 2 && v.shape[0] == m && v.shape[1] == n && v.itemsize == 8 && fmt
                 && fmt[0] == 'd' && fmt[1] == 0;
        /* NumPy's flags: a dimension of length 1 has any stride */
        int c_order = ok && (n == 1 || v.strides[1] == 8) && (m == 1 || v.strides[0] == 8L * n);
        int f_order = ok && (m == 1 || v.strides[0] == 8) && (n == 1 || v.strides[1] == 8L * m);
        if (c_order || f_order) {
            const int by_columns = f_order && !c_order;
            const char *at = (const char *)v.buf;
            for (int k = 0; k < m; k++)
                for (int i = 0; i < n; i++) {
                    double e = *(const double *)(at + k * v.strides[0] + i * v.strides[1]);
                    if (w) e = e * w[k];  /* NumPy's jm * w[:, None] keeps jm's order */
                    jac[by_columns ? (long)i * m + k : (long)k * n + i] = e;
                }
            *p->order = by_columns;
            done = 1;
        }
        p->release(&v);
    } else if (t == p->ndarray) {
        p->clear();  /* no buffer: converted below */
    }
    if (!done) {
        void *args = p->pack(1, out), *ok = args ? p->call(p->jac_convert, args) : 0;
        if (args) p->decref(args);
        if (ok) p->decref(ok);
        done = ok != 0;
        if (done) memcpy(jac, p->jbuf, (size_t)m * n * 8);  /* in *p->order's layout */
    }
    p->decref(out);
    return !done;
}

/* r = fun(x); 0, or the nonzero flag of a failed call (r then unspecified). */
MQ_LINKAGE int mq_evaluate(const mq_model *f, const double *x, double *r, int *nfev) {
    memcpy(f->x, x, (size_t)f->n * 8);
    int failed = mq_call(f, nfev);
    if (failed) return failed;
    memcpy(r, f->r, (size_t)f->m * 8);
    return 0;
}
"""

#: ``int fun(const double *x, double *r)``: the pointers arrive as Python ints (unused: they
#: are always the record's buffers, which the Python side already holds as views).
RESIDUAL_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)


class ModelRecord(ctypes.Structure):
    """``mq_model``: the callback (or NULL), the buffers, their sizes, the C API's record."""

    _fields_ = [("fun", RESIDUAL_FN), ("x", ctypes.c_void_p), ("r", ctypes.c_void_p),
                ("n", ctypes.c_int), ("m", ctypes.c_int), ("py", ctypes.c_void_p),
                ("compiled", ctypes.c_void_p), ("data", ctypes.c_void_p)]


class PythonRecord(ctypes.Structure):
    """``mq_python``: the C API's functions, then the objects C calls (by address)."""

    _fields_ = [(name, ctypes.c_void_p) for name in (
        "call", "call1", "get_buffer", "release", "decref", "clear", "pack", "vectorcall",
        "item", "type", "tuple", "set_item", "incref", "fun", "copy", "convert", "xdata",
        "point", "ndarray", "y", "w", "jac", "jac_convert", "jbuf", "order")]


def _api() -> tuple[int | None, ...]:
    """The addresses of the C API functions ``mq_python`` holds (``PyObject_CallOneArg``,
    ``PyObject_Vectorcall``: None where the interpreter does not export them (3.10 has no
    ``PyObject_Vectorcall``); C then packs a tuple)."""
    api = ctypes.pythonapi
    return tuple(ctypes.cast(getattr(api, name), ctypes.c_void_p).value
                 if hasattr(api, name) else None
                 for name in ("PyObject_CallObject", "PyObject_CallOneArg",
                              "PyObject_GetBuffer", "PyBuffer_Release", "Py_DecRef",
                              "PyErr_Clear", "PyTuple_Pack", "PyObject_Vectorcall",
                              "PySequence_GetItem", "PyObject_Type", "PyTuple_New",
                              "PyTuple_SetItem", "Py_IncRef"))


_API = _api()

#: The most parameters a curve's model is called with from C (``MQ_CURVE_ARGS``: the call's
#: arguments on C's stack); more: the residual function itself is called.
CURVE_ARGS = 32


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
                out = fun(x.copy())
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
        self.record = ModelRecord(self._keep, at, at + 8 * n, n, m, None)

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


class ModelCall:
    """``fun(x) -> r`` (n,) → (m,) called by C through the Python C API, with its own
    buffers: the entry function must be called through ``ctypes.PyDLL`` (the GIL held), and
    then the model's exception is raised by ``ctypes`` itself as the entry returns.

    Where ``fun`` carries a ``curve`` (``functions.CurveModel``: ``curve_fit``'s residuals
    w·(f(xdata, *p) − y)), C calls the model f itself with (xdata, p₀, …, pₙ₋₁), the pᵢ NumPy
    float64 scalars as ``fun`` passes them, and forms f − y (times w) in C: the same IEEE
    operations as NumPy's, without ``fun``'s Python frame, its scalars' conversions and the
    subtraction's array (~4,000 instructions a call). Only a float64 ``ndarray`` of m values
    (the type itself: a subclass may subtract otherwise) is read so; anything else goes
    through ``curve.finish`` and the evaluator's conversion in Python, with their errors.

    Attributes and arguments as ``ModelCallback``'s (``error`` is always None: nothing is
    kept).

    Examples:
        >>> import ctypes, numpy as np
        >>> from marquardt._backend.numpy import native_numdiff
        >>> f = ModelCall(lambda x: x[0] * np.arange(3.0), 1, 3)
        >>> evaluate = native_numdiff.python_function("mq_evaluate", 4)
        >>> x, r, nfev = np.array([2.0]), np.zeros(3), ctypes.c_int(0)
        >>> evaluate(ctypes.addressof(f.record), x.ctypes.data, r.ctypes.data,
        ...          ctypes.addressof(nfev)), r.tolist(), nfev.value
        (0, [0.0, 2.0, 4.0], 1)
    """

    __slots__ = ("x", "r", "record", "error", "_keep", "_python", "_curve", "_finish",
                 "_jacobian")

    def __init__(self, fun: Callable, n: int, m: int, who: str = "fun"):
        block = np.zeros(n + 3 * m)  # x, r, then a curve's y and w
        x, r = self.x, self.r = block[:n], block[n:n + m]
        self._curve = (block[n + m:n + 2 * m], block[n + 2 * m:])
        self.error = None
        finish = self._finish = [None]  # a curve's ``finish``, else None

        def convert(out) -> None:
            tail = finish[0]
            r[...] = _as_vector(out if tail is None else tail(out), m, who)

        # the model may keep its x: C hands it x.copy(), never the buffer C overwrites (a
        # curve's model gets scalars, made from x's items)
        copy = x.copy
        self._keep = [fun, copy, convert]  # alive as long as C holds their addresses
        at = block.ctypes.data
        self._python = PythonRecord(*_API, id(fun), id(copy), id(convert), None, id(x),
                                    id(np.ndarray), None, None, None, None, None, None)
        self._curve += (at + 8 * (n + m), at + 8 * (n + 2 * m))
        self._jacobian = None  # a curve's jac: (its buffer, its finish's holder, convert)
        self.record = ModelRecord(RESIDUAL_FN(), at, at + 8 * n, n, m,
                                  ctypes.addressof(self._python))
        self.rebind(fun)

    def rebind(self, fun: Callable | None) -> None:
        """Call ``fun`` from now on (same n, m and name; None: none, C must not call)."""
        py, (y, w, y_at, w_at) = self._python, self._curve
        curve = getattr(fun, "curve", None)
        weights = None if curve is None else curve.weights
        if (curve is not None and self.x.size <= CURVE_ARGS
                and getattr(curve.ydata, "shape", None) == y.shape
                and (weights is None or getattr(weights, "shape", None) == w.shape)):
            y[...] = curve.ydata
            if weights is not None:
                w[...] = weights
            py.fun, py.xdata = id(curve.model), id(curve.xdata)
            py.y, py.w = y_at, None if weights is None else w_at
            self._finish[0], self._keep[0] = curve.finish, curve
            compiled = None if curve.compiled is None else curve.compiled.pointers()
            self._bind_jacobian(curve.jac, curve.jac_finish)
        else:  # (with y NULL, C reads neither xdata nor w)
            py.fun, py.y = id(fun), None
            self._finish[0], self._keep[0] = None, fun
            compiled = None
            self._bind_jacobian(None, None)
        # the model compiled (``compiled_curve``; checked at the fit's start), or the model
        self.record.compiled, self.record.data = (None, None) if compiled is None else compiled

    def _bind_jacobian(self, jac: Callable | None, finish: Callable | None) -> None:
        """A curve's callable ``jac`` for C to call (``mq_curve_jacobian``), what it returns
        converted by ``finish(out) -> (m, n)`` where C does not read it; None: none."""
        py = self._python
        if jac is None:
            py.jac = py.jac_convert = py.jbuf = None
            if self._jacobian is not None:
                self._jacobian[1][0] = None
            return
        if self._jacobian is None:  # made once: the buffer, finish's holder, convert, order
            m, n = self.r.size, self.x.size
            jbuf, holder, order = np.empty(m * n), [None], ctypes.c_int(0)
            views = (jbuf.reshape(m, n), jbuf.reshape(n, m).T)  # row-major, by columns

            def convert(out) -> None:  # J in the order the host executor keeps it
                j = holder[0](out)
                by_columns = int(j.flags.f_contiguous and not j.flags.c_contiguous)
                np.copyto(views[by_columns], j)
                order.value = by_columns

            self._jacobian = (jbuf, holder, convert, order)
        jbuf, holder, convert, order = self._jacobian
        holder[0] = finish
        py.jac, py.jac_convert, py.jbuf = id(jac), id(convert), jbuf.ctypes.data
        py.order = ctypes.addressof(order)

    def raise_error(self) -> None:
        """C returned a failure flag with no exception set (``ctypes`` raises the model's
        own): a fault of the native code.

        Raises:
            RuntimeError: always.
        """
        raise RuntimeError("the native code reported a failed call of the residual function, "
                           "but none raised. Received: flag without exception")
