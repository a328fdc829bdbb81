"""A ``curve_fit`` model compiled to C for the single fits that follow: the user's residual
compiled once (issue #13's host executor), where the model is one closed-form expression.

On the native executor (``native_loop``) a fit's loop, its difference Jacobians and the
residuals' f − y all run in C, and what is left of a warm fit of a small model is mostly the
model's own Python: each evaluation calls ``f(xdata, *p)`` through the C API, its frame, its
NumPy calls and their arrays (~1.9 µs for ``a*np.exp(-b*t) + c`` on 50 points, against 0.22 µs
compiled; 36 evaluations a fit at our tolerances). A model that ``marquardt._model_capture``
records as a formula tree (the symbolic call: NumPy operations and ufuncs of the whitelist, no
control flow on values) is written as C by ``native_formula`` (the same function the batch
kernel compiles) and called by the native loop in place of the model (``native_model``'s
``mq_model.compiled``): the residuals w·(f(x; p) − y) with the same IEEE operations, but the C
library's ``exp``, ``log``... where NumPy may use its own SIMD versions (the last bit may
differ).

What does not change: the Jacobian's method (``'2-point'`` or ``'3-point'`` differences of the
compiled model, ``nfev`` counting the same evaluations; a callable ``jac`` keeps the model
called), the fit's steps and every error path (a model that raises is never compiled: its
capture fails). The results agree with the model's fits to the Jacobian's accuracy: a last-bit
difference of ``exp`` moves a differenced column by ~1e-8 relative, so the minimum found
agrees to ~1e-9 (pcov to ~1e-7) and a stopping test at rounding level (ftol 1e-15) may fall an iteration
earlier or later (``tests/test_compiled_curve.py``). A model with side effects (printing,
counting its calls) sees one call a fit, and the capture's symbolic call.

**Every fit still calls the model.** The fit's first evaluation (``curve_fit``'s check of what
``f(xdata, *p0)`` returns) is the user's own call; the compiled residuals at the same start
must agree with it to ``RTOL`` relative to |r| + |w·y| (the rounding of f − y), or this fit
calls the model as before and the compiled form is dropped: a closure's constant changed since
the capture, a global the model reads, a different xdata of the same shape are all caught.
A model whose compiled form is dropped pays its rent again before it is captured again.

**A TensorFlow model** (``exact``) that the graph capture (``_backend/tensorflow/capture``)
records is compiled the same way after ``EXACT_COMPILE_EVALUATIONS`` of its host fits'
evaluations (residuals and Jacobians: each ~0.3-0.5 ms there), and its later fits run on the
compiled residuals and the formula's exact partials (``native_numdiff``'s ``"exact"``
method: J in C, no evaluation counted, as autodiff's), without calling TensorFlow. Its graph
already held what it read from Python when first traced (our host functions are traced once
per model, as a ``tf.function`` is), so the capture changes nothing there and no fit checks
it; the results agree with autodiff's to rounding.

**When (ski rental, ``marquardt._tiering``).** Capturing (~1 ms) and compiling (``cc``,
~0.1-0.3 s on a 2-core machine, once per machine: then on disk) pay off only over many fits,
so a model is compiled once the fits of one model function (the same object, kept weakly) have
made ``COMPILE_EVALUATIONS`` evaluations (``LOAD_EVALUATIONS`` where its C is on disk
already), counted in evaluations so that the choice does not depend on the machine's load.
``MARQUARDT_NATIVE=0`` turns it off with the native executor.
"""

from __future__ import annotations

import sys
import threading
import weakref
from typing import Any, Callable

import numpy as np

__all__ = ["COMPILE_EVALUATIONS", "EXACT_COMPILE_EVALUATIONS", "EXACT_LOAD_EVALUATIONS",
           "LOAD_EVALUATIONS", "RTOL", "CompiledCurve", "eligible", "exact_eligible", "for_fit",
           "native_jacobian", "pay", "reset", "STATS"]

#: Evaluations of one model function after which its compiled form is built where it must be
#: compiled: ``cc``'s 70-95 ms on a quiet 2-core machine (2026-12-05; two to three times that
#: on a busy one) over the ~1.7 µs a warm fit of the exponential saves an evaluation (0.267
#: -> 0.207 ms a fit of 36, the check at the start included).
COMPILE_EVALUATIONS = 120_000

#: The same where the compiled form is on disk already: the capture, the source and the
#: ``dlopen`` (~1-2 ms; ~15 ms with the capture's first imports).
LOAD_EVALUATIONS = 10_000

#: A TensorFlow model's evaluations (residuals and exact Jacobians on the host executor,
#: ~0.3-0.5 ms each for the exponential, its compiled function called from Python) after which
#: its captured form is compiled: the graph's capture (~20-100 ms) and ``cc`` over that.
EXACT_COMPILE_EVALUATIONS = 600

#: The same where the compiled form is on disk already.
EXACT_LOAD_EVALUATIONS = 100

#: The check at each fit's start: |r_C − r| ≤ RTOL·(|r| + |w·y|), elementwise.
RTOL = 1e-13

#: Fits whose residuals ran compiled in this process (for tests and benchmarks).
STATS = {"fits": 0, "builds": 0, "dropped": 0}

_LOCK = threading.Lock()
# model function -> {(rows, n): _Entry}, weakly (a model forgotten takes its entries along)
_MODELS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# (rows, n) entries of models that are not weakly referable are not kept at all


class _Entry:
    """One model function's state for one (rows of xdata, number of parameters)."""

    __slots__ = ("evaluations", "state", "function", "agrees", "call", "source")

    def __init__(self) -> None:
        self.evaluations = 0  # the rent paid since the last capture (or drop)
        self.state: str = "renting"  # "renting", "compiled", "refused"
        self.function: int | None = None  # the C function's address, once compiled
        self.agrees: Any = None  # the check's C function (ctypes)
        self.call: Any = None  # the residuals (and J) from Python (ctypes)
        self.source: str | None = None  # its C, once captured (not on disk: compiled later)


def _entry(f: Callable, key: tuple) -> _Entry | None:
    try:
        table = _MODELS.get(f)
        if table is None:
            table = _MODELS[f] = {}
    except TypeError:  # not weakly referable: nothing is kept for it
        return None
    entry = table.get(key)
    if entry is None:
        entry = table[key] = _Entry()
    return entry


def _key(x: np.ndarray, n: int, exact: bool = False) -> tuple:
    return (1 if x.ndim == 1 else x.shape[0], n, exact)


def eligible(x: Any, y: np.ndarray, jac: Any) -> bool:
    """Whether a fit can use compiled residuals: its Jacobian differenced (``jac`` 'auto',
    '2-point' or '3-point') or a callable (both formed by the native loop, which evaluates
    the residuals itself), xdata a float64 ndarray of shape (m,) or (k, m) whose last axis
    is y's (m,)."""
    return ((callable(jac) or isinstance(jac, str) and jac in _DIFFERENCES)
            and type(x) is np.ndarray
            and x.dtype == np.float64 and x.ndim in (1, 2) and y.ndim == 1
            and x.shape[-1] == y.shape[0] and y.shape[0] > 0)


_DIFFERENCES = ("auto", "2-point", "3-point")


def exact_eligible(x: Any, y: np.ndarray, jac: Any) -> bool:
    """Whether a TensorFlow model's fit could run on its compiled form with exact partials:
    ``jac`` one of autodiff's modes ('auto', 'forward', 'reverse'), TensorFlow imported (a
    model written with it was fitted before), and the data as ``eligible``'s."""
    return (isinstance(jac, str) and jac in ("auto", "forward", "reverse")
            and "tensorflow" in sys.modules and eligible(x, y, "auto"))


def for_fit(f: Callable, x: np.ndarray, y: np.ndarray, w: np.ndarray | None,
            p0: np.ndarray, reference: Callable[[], tuple | None] | None,
            exact: bool = False) -> CompiledCurve | None:
    """This fit's compiled residuals, or None: the model's rent is not paid yet, it is not
    capturable, or there is no compiler. ``reference()`` gives (p, r): the user's weighted
    residuals r at a point p (the fit's first evaluation), for the check; None where the fit
    made none (the check then calls ``f``). Call only where ``eligible(x, y, jac)``.

    ``exact``: a TensorFlow model (``exact_eligible``), whose fits then run on its compiled
    residuals and exact partials without calling it: its graph, like a ``tf.function``'s,
    holds what it read from Python when it was captured (``reference`` unused)."""
    entry = _entry(f, _key(x, p0.size, exact))
    if entry is None or entry.state == "refused":
        return None
    if entry.state == "renting":
        if entry.evaluations < (EXACT_LOAD_EVALUATIONS if exact else LOAD_EVALUATIONS):
            return None
        from marquardt._backend.numpy import native_tier
        if not native_tier.wanted():
            return None
        _build(entry, f, x, p0, exact)
        if entry.state != "compiled":
            return None
    return CompiledCurve(entry, f, x, y, w, p0, None if exact else reference)


def _build(entry: _Entry, f: Callable, x: np.ndarray, p0: np.ndarray, exact: bool) -> None:
    """Capture and write the model's C (once), and load it: from disk, or compiled where
    the rent covers the compilation (else the fits rent on, without capturing again)."""
    from marquardt._backend.numpy import native_load
    due = EXACT_COMPILE_EVALUATIONS if exact else COMPILE_EVALUATIONS
    if entry.source is not None and entry.evaluations < due:
        return  # captured already, not on disk: renting on to the compilation
    if entry.source is None:
        from marquardt._model_capture import capture_model
        model = capture_model(f, x, p0[None], backend="tensorflow" if exact else "numpy")
        if model is None:
            entry.state = "refused"
            return
        entry.source = _source(model)
    try:
        lib = native_load.load(entry.source, compile=entry.evaluations >= due)
    except native_load.NotCompiled:
        return  # not on disk: renting on to the compilation
    except native_load.NativeUnavailable:
        entry.state = "refused"
        return
    import ctypes

    from marquardt._backend.numpy.native_formula import DataRecord
    global _RECORD, _ADDRESSOF, _CHAR
    _RECORD, _ADDRESSOF, _CHAR = DataRecord, ctypes.addressof, ctypes.c_char
    agrees = lib.mq_curve_agrees
    agrees.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_double]
    agrees.restype = ctypes.c_int
    call = lib.mq_curve_residuals
    call.argtypes, call.restype = [ctypes.c_void_p] * 4, ctypes.c_int
    entry.function = ctypes.cast(call, ctypes.c_void_p).value
    entry.agrees, entry.call, entry.state = agrees, call, "compiled"
    with _LOCK:
        STATS["builds"] += 1


def _source(model) -> str:
    from marquardt._backend.numpy.native_formula import cmodel_source
    return cmodel_source(model) + _ENTRY


_ENTRY = r"""
#include <stdlib.h>

/* the native loop's model (native_model's mq_model.compiled): r = w (f(x; p) - y) */
int mq_curve_residuals(const double *p, const void *d, double *r, double *J) {
    return mq_cmodel(p, (const mq_data *)d, r, J);
}

/* the check at a fit's start: 1 where r = w (f(x; p) - y) agrees with the model's ref,
   |r - ref| <= rtol (|ref| + |w y|) (the rounding of f - y) or the same value or both NaN
   (0 where no memory) */
int mq_curve_agrees(const double *p, const void *d, const double *ref, double rtol) {
    const mq_data *data = (const mq_data *)d;
    double *r = malloc((size_t)data->m * sizeof(double));
    int same = r != 0;
    if (same) mq_cmodel(p, data, r, 0);
    for (long i = 0; same && i < data->m; i++) {
        const double a = r[i], b = ref[i];
        if (a == b || (a != a && b != b)) continue;
        const double wy = data->w ? data->y[i] * data->w[i] : data->y[i];
        same = fabs(a - b) <= rtol * (fabs(b) + fabs(wy));
    }
    free(r);
    return same;
}
"""


def native_jacobian(jac: Callable, fun: Callable, method: str, n: int, m: int) -> Callable:
    """``jac`` (the host executor's ``jac(p) -> J``) carrying what the native loop reads to
    form J in C instead (``native_loop``'s ``native_spec`` and ``native_differences``):
    ``native_numdiff``'s ``method`` ("exact": ``fun``'s compiled form; "callable": the
    user's ``jac`` that ``fun.curve`` holds, called through the C API) on a
    ``native_model.ModelCall`` of ``fun``. The native modules are imported when the loop
    asks."""
    def native_differences():
        from marquardt._backend.numpy.native_model import CURVE_ARGS, ModelCall
        from marquardt._backend.numpy.native_numdiff import NativeDifferences
        if method == "callable" and n > CURVE_ARGS:  # C calls jac with n scalars: the
            return None  # loop calls it back in Python
        # row-major, as the host executor holds a callable's (or the compiled form's) J
        return NativeDifferences(ModelCall(fun, n, m, "f"), method, -np.inf, np.inf,
                                 row_major=True)

    jac.native_differences = native_differences
    jac.native_spec = (fun, method, n, m, -np.inf, np.inf, None, None, "f")
    return jac


def pay(f: Callable, x: np.ndarray, n: int, nfev: int, exact: bool = False) -> None:
    """Counts a fit's evaluations of ``f`` made without compiled residuals (``exact``: of a
    TensorFlow model, its Jacobians too)."""
    entry = _entry(f, _key(x, n, exact))
    if entry is not None and entry.state == "renting":
        entry.evaluations += int(nfev)


def reset() -> None:
    """Forgets every model's rent and compiled form (the tests' fresh start)."""
    with _LOCK:
        _MODELS.clear()
        STATS.update(fits=0, builds=0, dropped=0)


class CompiledCurve:
    """One fit's compiled residuals: the loaded function and its data record (``mq_data``:
    contiguous copies of xdata's rows, y and w held here), checked lazily against the user's
    own evaluation at the fit's start (``pointers``), or, for a TensorFlow model's (no
    ``reference``), with its exact partials and no check.

    ``native_model.ModelCall.rebind`` asks for ``pointers()`` when the native loop takes the
    fit: (function address, data address), or None where this fit calls the model itself.
    ``residuals`` and ``jacobian`` call the compiled form from Python (a TensorFlow model's
    fits before the native loop runs them)."""

    __slots__ = ("_entry", "_f", "_x", "_y", "_w", "_p0", "_reference", "_data", "_answer",
                 "_n")

    def __init__(self, entry: _Entry, f: Callable, x: np.ndarray, y: np.ndarray,
                 w: np.ndarray | None, p0: np.ndarray, reference: Callable | None):
        self._entry, self._f, self._p0, self._reference = entry, f, p0, reference
        self._x = np.ascontiguousarray(x, dtype=np.float64)
        self._y = np.ascontiguousarray(y, dtype=np.float64)
        self._w = None if w is None else np.ascontiguousarray(w, dtype=np.float64)
        self._data: tuple | None = None  # (the record, its address)
        self._answer: tuple | None | bool = False  # False: not checked yet
        self._n = p0.size

    @property
    def exact(self) -> bool:
        """A TensorFlow model's compiled form: exact partials, no check at the start."""
        return self._reference is None

    def _record(self) -> int:
        """The address of this fit's ``mq_data`` (made at the first call)."""
        if self._data is None:
            x, y, w = self._x, self._y, self._w
            record = _RECORD(_address(x), x.shape[-1], _address(y),
                             None if w is None else _address(w), y.shape[0])
            self._data = (record, _ADDRESSOF(record))
        return self._data[1]

    def pointers(self) -> tuple[int, int] | None:
        """(function, data) addresses once the check at the start passed, else None."""
        if self._answer is False:
            self._answer = self._check()
        return self._answer

    def residuals(self, p: np.ndarray) -> np.ndarray:
        """w·(f(x; p) − y), (m,), computed by the compiled form."""
        p = np.ascontiguousarray(p, dtype=np.float64)
        r = np.empty(self._y.shape[0])
        self._entry.call(_address(p), self._record(), _address(r), None)
        return r

    def jacobian(self, p: np.ndarray) -> np.ndarray:
        """Its exact partials w·∂f/∂p, (m, n)."""
        p = np.ascontiguousarray(p, dtype=np.float64)
        m = self._y.shape[0]
        r, jac = np.empty(m), np.empty((m, self._n))
        self._entry.call(_address(p), self._record(), _address(r), _address(jac))
        return jac

    def jacobian_function(self, fun: Callable) -> Callable:
        """``jac(p) -> J`` (``jacobian``) for the host executor, which the native loop forms
        in C instead (``native_jacobian``'s ``"exact"`` method: ``fun``'s ``curve`` holds
        this compiled form)."""
        def jac(p):
            return self.jacobian(p)

        jac.exact_partials = True  # (errors name autodiff's remedies, not a user's jac's)
        return native_jacobian(jac, fun, "exact", self._n, self._y.shape[0])

    def _check(self) -> tuple[int, int] | None:
        entry = self._entry
        if entry.state != "compiled":  # dropped by another fit since
            return None
        data = self._record()
        if self.exact:
            with _LOCK:
                STATS["fits"] += 1
            return entry.function, data
        x, y, w = self._x, self._y, self._w
        known = self._reference()
        if known is None:  # no evaluation kept: the model's own call here
            p = np.asarray(self._p0, dtype=np.float64)
            with np.errstate(all="ignore"):
                out = np.asarray(self._f(x.copy(), *p), dtype=np.float64)
            r = (out - y) * w if w is not None else out - y
        else:
            p, r = known
        p = np.ascontiguousarray(p, dtype=np.float64)
        r = np.ascontiguousarray(r, dtype=np.float64)
        same = (r.shape == y.shape and p.shape == self._p0.shape
                and entry.agrees(_address(p), data, _address(r), RTOL) == 1)
        with _LOCK:
            if not same:  # not the model it was: calls it, and rents again
                entry.state, entry.function, entry.evaluations = "renting", None, 0
                entry.source = None  # captured again once the rent is paid again
                STATS["dropped"] += 1
                return None
            STATS["fits"] += 1
        return entry.function, data


# set once a model is compiled (ctypes imported then only): native_formula.DataRecord,
# ctypes.addressof, ctypes.c_char
_RECORD: Any = None
_ADDRESSOF: Any = None
_CHAR: Any = None


def _address(a: np.ndarray) -> int:
    """The address of a contiguous array's first value (``ctypes.c_char.from_buffer``: a
    third of ``a.ctypes.data``'s cost; that where the array is read-only)."""
    try:
        return _ADDRESSOF(_CHAR.from_buffer(a))
    except (TypeError, ValueError):
        return a.ctypes.data

