"""Finite-difference Jacobians in C, bit for bit ``numdiff.one_problem_jacobian``'s.

For the native executor (issue #13, result 1): the '2-point' and '3-point' Jacobians of one
problem formed in C, the user's model called back through one ``ctypes`` callback
(``native_model``), so that a fit run in C spends no Python per difference. Not the default
path: ``enabled()`` (or ``enable(True)``) has the host evaluator
(``functions.numpy_evaluator``) form its difference Jacobians here, for tests and benchmarks.

Every number is the Python's (``marquardt._core.numdiff``), the same IEEE double operations in
the same order, compiled without contraction (``native_load.FLAGS``). A sum where two different
NaNs can meet keeps the one the Python keeps, chosen explicitly (``mq_sum``; x86 keeps the
first operand, and NumPy's compiled loops put them either way round by position:
``sum_operands``), so that no compiler flag changes a bit (the tests pass at ``-O2`` and
``-O3`` too):

* the steps: hᵢ = (relᵢ · sᵢ) · max(typicalᵢ, |xᵢ|) with sᵢ = 1 if xᵢ ≥ 0 (−0.0 too) else −1,
  the max as Python's ``typical if typical > |x| else |x|`` (NaN → |x|); hᵢ = −|hᵢ| where
  xᵢ + hᵢ > ubᵢ (away from a near upper bound); then hᵢ = (xᵢ + hᵢ) − xᵢ, the step actually
  representable;
* the points as NumPy forms them from h·I: component j of point i is xⱼ + hⱼ·δᵢⱼ, with the
  product taken, so that off the diagonal xⱼ + (±0.0) turns −0.0 into +0.0 where hⱼ > 0, and
  NaN spreads from a NaN step, exactly as ``x + h * eye``; the second point of '3-point' is
  xⱼ − hⱼ·δᵢⱼ where xᵢ − hᵢ ≥ lbᵢ, else xⱼ + 2·(hⱼ·δᵢⱼ);
* the columns: (f⁺ − r) / hᵢ ('2-point'); (f⁺ − f²) / (2hᵢ) (central) or
  ((−3)·r + 4·f⁺ − f²) / (2hᵢ) (one-sided second order where x − h would cross lb);
* the calls in numdiff's order: the n forward points i = 0..n−1, then ('3-point') the n
  second points: ``calls_per_jacobian(method) · n`` calls, counted in ``nfev``.

J is written into a flat buffer, column i at ``jac + i·m`` (numdiff's memory: its J (1, m, n)
is a transposed view of an (n, 1, m) array) or row-major (m, n) ``jac[k·n + i]``.

The C API (``c_source()``: ``native_model.MODEL_C``'s ``mq_model``, ``mq_call`` and
``mq_evaluate``, then these; ``MQ_LINKAGE`` is empty for a shared library, ``static`` when
the functions are pasted into a larger translation unit)::

    typedef struct {
        int method;          /* 2: '2-point', 3: '3-point' */
        int row_major;       /* 0: column i at jac + i*m; 1: jac[k*n + i] */
        const double *rel;   /* (n,) relative steps */
        const double *typical;  /* (n,) typical magnitudes (1: SciPy's least_squares) */
        const double *lb, *ub;  /* (n,) bounds, +-inf where none */
        const unsigned char *swap_sums;  /* (n, m): sum_operands(n, m) */
    } mq_differences;

    /* J at x given r = fun(x) (r must not be f->r); h: (n,) scratch, left holding the
       steps; 0, or the model's nonzero flag (J then partly written). With a ModelCall the
       caller must hold the GIL (an entry called through ctypes.PyDLL). */
    int mq_difference_jacobian(const mq_differences *d, const mq_model *f,
                               const double *x, const double *r, double *h,
                               double *jac, int *nfev);
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
from typing import Callable

import numpy as np

from marquardt._backend.numpy import native_load
from marquardt._backend.numpy.native_model import MODEL_C, ModelCall, ModelCallback
from marquardt._core import functions, numdiff

__all__ = ["DIFFERENCES_C", "c_source", "DifferencesRecord", "NativeDifferences",
           "enable", "enabled", "evaluator_jacobian", "jacobian_function", "python_function",
           "sum_operands"]

DIFFERENCES_C = r"""
typedef struct {
    int method;                      /* 2, 3; 0: the compiled model's exact J */
    int row_major;
    const double *rel;
    const double *typical;
    const double *lb, *ub;
    const unsigned char *swap_sums;  /* (n, m): -3r + 4f+ keeps f+'s NaN where 1 */
} mq_differences;

/* a + b, and where both are NaN the one NumPy's loop keeps at this position: a's, or b's
   where `second` (x86 keeps an addition's first operand; NumPy's compiled loops put the
   operands either way round by position). Either NaN comes out quieted. */
static double mq_sum(double a, double b, int second) {
    if (a != a && b != b) return second ? b + b : a + a;
    return a + b;
}

/* numdiff.one_problem_jacobian's steps(x), in Python floats (a sum keeps its first NaN) */
static void mq_difference_steps(const mq_differences *d, int n, const double *x, double *h) {
    for (int i = 0; i < n; i++) {
        double xi = x[i], size = fabs(xi), floor_i = d->typical[i];
        double hi = d->rel[i] * (xi >= 0.0 ? 1.0 : -1.0) * (floor_i > size ? floor_i : size);
        if (xi + hi > d->ub[i]) hi = -fabs(hi);
        h[i] = mq_sum(xi, hi, 0) - xi;
    }
}

/* method 0: J of the compiled model, row-major (compiled_curve's exact J: no evaluation
   counted; its residuals left in f->r) */
static int mq_exact_jacobian(const mq_model *f, const double *x, double *jac) {
    return f->compiled ? f->compiled(x, f->data, f->r, jac) : 1;
}

/* the memory order of the last J formed: 0 row-major, 1 by columns (numdiff's) */
static int mq_jacobian_order(const mq_differences *d, const mq_model *f) {
    if (d->method == 1) return *f->py->order;
    return d->method == 0 || d->row_major ? 0 : 1;
}

MQ_LINKAGE int mq_difference_jacobian(const mq_differences *d, const mq_model *f,
                                   const double *x, const double *r, double *h,
                                   double *jac, int *nfev) {
    if (d->method == 0) return mq_exact_jacobian(f, x, jac);
    if (d->method == 1) {  /* a curve's callable jac, called through the C API */
        if (!f->py || !f->py->jac) return 1;
        return mq_curve_jacobian(f, x, jac);
    }
    int n = f->n, m = f->m;
    long si = d->row_major ? 1 : m, sk = d->row_major ? n : 1;
    double *p = f->x, *v = f->r;
    const unsigned char *ss = d->swap_sums;
    mq_difference_steps(d, n, x, h);
    /* x + h * eye: two NaNs meet only where x_j is NaN, and h_j (so h_j * 0.0) is then x_j's
       NaN: either operand gives the same bits */
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < n; j++) p[j] = x[j] + h[j] * (j == i ? 1.0 : 0.0);
        int failed = mq_call(f, nfev);
        if (failed) return failed;
        double *col = jac + i * si;
        if (d->method == 2)
            for (int k = 0; k < m; k++) col[k * sk] = (v[k] - r[k]) / h[i];
        else
            for (int k = 0; k < m; k++) col[k * sk] = v[k];  /* f+, kept for the second pass */
    }
    if (d->method == 2) return 0;
    for (int i = 0; i < n; i++) {  /* where(lo_ok, x - hx, x + 2.0 * hx)[i] */
        int lo_ok = x[i] - h[i] >= d->lb[i];
        for (int j = 0; j < n; j++) {
            double hx = h[j] * (j == i ? 1.0 : 0.0);
            p[j] = lo_ok ? x[j] - hx : x[j] + 2.0 * hx;
        }
        int failed = mq_call(f, nfev);
        if (failed) return failed;
        double *col = jac + i * si, two_h = 2.0 * h[i];
        for (int k = 0; k < m; k++) {
            double fp = col[k * sk], s = v[k];
            col[k * sk] = lo_ok ? (fp - s) / two_h
                                : (mq_sum(-3.0 * r[k], 4.0 * fp, ss[(long)i * m + k]) - s)
                                  / two_h;
        }
    }
    return 0;
}
"""


def c_source(linkage: str = "") -> str:
    """The C translation unit: the model record (``native_model.MODEL_C``) and the differences,
    their public functions declared with ``linkage`` (``""``: exported; ``"static"``)."""
    return f"#include <math.h>\n#define MQ_LINKAGE {linkage}\n" + MODEL_C + DIFFERENCES_C


class DifferencesRecord(ctypes.Structure):
    """``mq_differences``."""

    _fields_ = [("method", ctypes.c_int), ("row_major", ctypes.c_int),
                ("rel", ctypes.c_void_p), ("typical", ctypes.c_void_p),
                ("lb", ctypes.c_void_p), ("ub", ctypes.c_void_p),
                ("swap_sums", ctypes.c_void_p)]


def sum_operands(rows: int, length: int) -> tuple[np.ndarray, int]:
    """Where NumPy's ``a + B``, a (1, length) and B (rows, length) C-ordered float64, returns
    B's NaN when both are NaN: a read-only uint8 table (rows, length), 1 for B's, and its
    address (made once per shape). A sum of two NaNs is one of
    them, and which one x86 keeps depends on the order of the operands in the instruction,
    which NumPy's compiled loops choose by position (its vector body and its tail differ):
    probed once per shape on this machine's NumPy, not assumed. numdiff's ``−3·r + 4·f⁺``
    ((1, m) + (n, m)) is of this form (so are ``x + h·I`` and ``x + 2·(h·I)``, but there
    two NaNs meet only where xⱼ is NaN, and hⱼ is then xⱼ's NaN: the same bits either
    way)."""
    key = (rows, length)
    found = _OPERANDS.get(key)
    if found is None:
        nan = np.float64(np.nan)
        with np.errstate(all="ignore"):
            both = np.full((1, length), nan) + np.full((rows, length), -nan)
        table = np.signbit(both).astype(np.uint8)
        table.flags.writeable = False
        found = (table, table.ctypes.data)
        if len(_OPERANDS) < 64:
            _OPERANDS[key] = found
    return found


_OPERANDS: dict = {}  # sum_operands' tables and their addresses by shape (up to 64 kept)

_METHODS = {"2-point": 2, "3-point": 3, "exact": 0, "callable": 1}


@functools.lru_cache(maxsize=8)
def python_function(name: str, arguments: int) -> ctypes._CFuncPtr:
    """The compiled library's function ``name`` (built, or loaded from the disk cache, at the
    first call in the process), its ``arguments`` addresses, returning an int, called through
    ``ctypes.PyDLL``: with the GIL held (a ``ModelCall`` calls Python from C) and the Python
    exception set during the call, if any, raised as it returns.

    Raises:
        native_load.NativeUnavailable: no C compiler, or it failed.
    """
    fn = getattr(ctypes.PyDLL(native_load.load(c_source())._name), name)
    fn.argtypes = [ctypes.c_void_p] * arguments
    fn.restype = ctypes.c_int
    return fn


def jacobian_function() -> ctypes._CFuncPtr:
    """``mq_difference_jacobian`` (``python_function``'s)."""
    global _JACOBIAN
    if _JACOBIAN is None:
        _JACOBIAN = python_function("mq_difference_jacobian", 7)
    return _JACOBIAN


_JACOBIAN = None


def _flat(values, n: int, name: str) -> np.ndarray:
    """1 or n float values in any nesting as (1,) or (n,) float64."""
    try:
        flat = np.asarray(values, dtype=np.float64).reshape(-1)
    except (ValueError, TypeError):
        flat = None
    if flat is None or flat.size not in (1, n):
        raise ValueError(f"`{name}` must hold 1 or n={n} float values. Received: "
                         f"{values!r}") from None
    return flat


class NativeDifferences:
    """``numdiff.one_problem_jacobian(...)`` formed in C: ``nd(x, r) -> J`` for x (1, n),
    r = fun(x) (1, m), J (1, m, n) with numdiff's memory order (``row_major=False``) or
    C-ordered (``row_major=True``), the same bits.

    Args:
        model: the residual function as C calls it (``native_model.ModelCall``, or
            ``ModelCallback``).
        method: ``"2-point"`` or ``"3-point"``; or ``"exact"``: J of the model's compiled
            form (``model.record.compiled``, ``compiled_curve``: a captured TensorFlow model's
            exact partials, always row-major); or ``"callable"``: a curve's callable ``jac`` called from C
            (``model``, a ``ModelCall`` of a function whose ``curve`` holds it); no
            evaluation counted by either, the steps and bounds unused.
        lb, ub: the bounds, 1 or n values ((1, n) as the host executor holds them).
        rel_step: the relative step, one or n values; SciPy's default for float64 when None.
        typical: the typical magnitudes, 1 or n values; None: 1.
        row_major: J's layout in the buffer C writes.

    Attributes:
        nfev: the calls of the model so far (``calls_per_jacobian(method) · n`` per J).
        h: the steps of the last J (n,).

    Raises:
        ValueError: an unknown ``method``, or bounds/steps of the wrong size.
        native_load.NativeUnavailable: (at the first call from Python, which compiles or
            loads the stand-alone library, ``jacobian_function``) no C compiler, or it failed.

    Examples:
        >>> import numpy as np
        >>> t = np.linspace(0.0, 1.0, 4)
        >>> fun = lambda p: p[0] * np.exp(-p[1] * t)
        >>> nd = NativeDifferences(ModelCallback(fun, 2, 4), "2-point", -np.inf, np.inf)
        >>> x = np.array([[2.0, 1.0]])
        >>> nd(x, fun(x[0])[None]).shape, nd.nfev
        ((1, 4, 2), 2)
    """

    def __init__(self, model: ModelCall | ModelCallback, method: str, lb, ub, rel_step=None,
                 typical=None, row_major: bool = False):
        if method not in _METHODS:
            raise ValueError("`method` must be '2-point', '3-point', 'exact' or 'callable' "
                             f"for Jacobians in C. Received: method={method!r}")
        n, m = model.x.size, model.r.size
        if rel_step is None:
            rel_step = numdiff.default_rel_step(method if method in ("2-point", "3-point")
                                                else "2-point")
        row_major = row_major or method == "exact"  # (the compiled form writes rows)
        self.model, self.n, self.m, self.row_major = model, n, m, row_major
        self.method = method
        # one float64 block, one address asked for (~1 µs each): rel, typical, lb, ub, then
        # h and fixed buffers in and out (a copy of a few hundred bytes costs far less)
        block = self._block = np.empty(6 * n + m + n * m)
        self._rows = block[:4 * n].reshape(4, n)
        self._set_steps(lb, ub, rel_step, typical)
        self.h, self._x = block[4 * n:5 * n], block[5 * n:6 * n]
        self._r, out = block[6 * n:6 * n + m], block[6 * n + m:]
        self._out = out.reshape((1, m, n) if row_major else (n, 1, m))
        base = block.ctypes.data
        at = [base + 8 * i * n for i in range(4)]  # rel, typical, lb, ub
        # where two NaNs meet in −3·r + 4·f⁺, the one NumPy keeps
        swaps, swaps_at = sum_operands(n, m)
        self.record = DifferencesRecord(_METHODS[method], int(row_major), *at, swaps_at)
        self._keep = swaps
        self._nfev = ctypes.c_int(0)
        self._head = (ctypes.addressof(self.record), ctypes.addressof(model.record))
        self._tail = (base + 8 * 4 * n, ctypes.addressof(self._nfev))
        args = (*self._head, base + 8 * 5 * n, base + 8 * 6 * n, self._tail[0],
                base + 8 * (6 * n + m), self._tail[1])
        self._args = args  # jacobian_function() at the first call from Python: a loop in C
        # passes the records (``pointers``) and never loads the stand-alone library

    def _set_steps(self, lb, ub, rel_step, typical) -> None:
        rows, n = self._rows, self.n
        if rel_step is None:
            rel_step = numdiff.default_rel_step(
                self.method if self.method in ("2-point", "3-point") else "2-point")
        for i, (values, name) in enumerate(((rel_step, "rel_step"),
                                            (1.0 if typical is None else typical, "typical"),
                                            (lb, "lb"), (ub, "ub"))):
            try:  # one value, n values, or (1, n) (NumPy's assignment drops the leading 1)
                rows[i] = values
            except (ValueError, TypeError):  # nested lists, or no n values
                rows[i] = _flat(values, n, name)

    def rebind(self, fun: Callable | None, lb=None, ub=None, rel_step=None,
               typical=None) -> None:
        """The same records for another model with the same method, n, m and name (a
        ``native_model.ModelCall``'s; a loop in C reuses them from fit to fit: ~10 µs of
        construction saved a fit): ``fun``, and the bounds and steps as in the constructor;
        ``rebind(None)`` lets the last model go (the bounds then stay).

        Raises:
            ValueError: bounds/steps of the wrong size.
        """
        self.model.rebind(fun)
        if fun is not None:
            self._set_steps(lb, ub, rel_step, typical)

    @property
    def nfev(self) -> int:
        return self._nfev.value

    def __call__(self, x: np.ndarray, r: np.ndarray) -> np.ndarray:
        try:  # (the method: ``np.reshape`` costs three times as much)
            self._x[...] = x.reshape(self.n)
            self._r[...] = r.reshape(self.m)
        except (AttributeError, ValueError):  # not arrays, or the wrong sizes
            if np.size(x) != self.n or np.size(r) != self.m:
                raise ValueError(f"expected x of {self.n} and r of {self.m} values. "
                                 f"Received: shapes {np.shape(x)} and {np.shape(r)}") from None
            self._x[...] = np.reshape(x, self.n)
            self._r[...] = np.reshape(r, self.m)
        if jacobian_function()(*self._args):
            self.model.raise_error()
        if self.method == "callable":  # in the order the call returned (its record's)
            flat, (m, n) = self._out.reshape(-1), (self.m, self.n)
            by_columns = self.model._python.order and self.model._jacobian[3].value
            return (flat.reshape(n, m).T if by_columns else flat.reshape(m, n)).copy()[None]
        j = self._out.copy()
        return j if self.row_major else j.transpose(1, 2, 0)

    def pointers(self) -> tuple[int, int, int]:
        """The addresses a loop in C passes ``mq_difference_jacobian`` (and ``mq_evaluate``):
        the differences' record, the model's record, the steps' scratch h."""
        return self._head + (self._tail[0],)

    def at(self, x: int, r: int, jac: int) -> None:
        """J written at address ``jac`` from x and r at theirs (a native loop's slots: no
        copies, no array made); the layout is ``row_major``'s. The addresses must hold n, m
        and n·m float64 values, and r must not be the model's own buffer.

        Raises:
            whatever the model raised (C stopped at that call; J is then partly written).
        """
        if jacobian_function()(*self._head, x, r, self._tail[0], jac, self._tail[1]):
            self.model.raise_error()


def evaluator_jacobian(fun: Callable, method: str, n: int, m: int, lb, ub, rel_step,
                       typical, who: str, residual: Callable, model=ModelCall
                       ) -> Callable | None:
    """The host evaluator's ``jacobian(x, r=None, problems=None) -> J`` (1, m, n) formed in C
    (``functions.numpy_evaluator``'s, the same bits), or None where no C can be built.
    ``residual(x)`` gives r where the caller has none; ``model``: how C calls ``fun``
    (``native_model.ModelCall`` or ``ModelCallback``)."""
    try:
        jacobian_function()  # the library its calls run in, built now: or no C at all
        nd = NativeDifferences(model(fun, n, m, who), method, lb, ub, rel_step, typical)
    except native_load.NativeUnavailable:
        return None

    def jacobian(x, r=None, problems=None):
        return nd(x, residual(x) if r is None else r)

    jacobian.native = nd  # for a loop in C (native_cloop): the records themselves
    return jacobian


def lazy_jacobian(jacobian: Callable, fun: Callable, method: str, n: int, m: int, lb, ub,
                  rel_step, typical, who: str) -> Callable:
    """The host evaluator's ``jacobian`` (numdiff's, in Python; a closure of its own evaluator)
    given an attribute ``native_differences()`` that builds the same differences in C (``NativeDifferences``,
    through ``ModelCall``) at its first call and returns them, or None where no C can be
    built: what the native loop calls (``native_loop``), so that a fit on the trace pays
    nothing for it."""
    built: list = []

    def native_differences():
        if not built:
            try:
                built.append(NativeDifferences(ModelCall(fun, n, m, who), method, lb, ub,
                                               rel_step, typical))
            except native_load.NativeUnavailable:
                built.append(None)
        return built[0]

    jacobian.native_differences = native_differences  # the evaluator's own closure: no
    # layer added to a Jacobian on the trace; what a loop needs to rebind its own records
    # (``NativeDifferences.rebind``) instead of building these
    jacobian.native_spec = (fun, method, n, m, lb, ub, rel_step, typical, who)
    return jacobian


def enable(on: bool = True) -> None:
    """Form single NumPy fits' difference Jacobians in C (on) or in Python (off, the
    default), from the next evaluator made (``functions.numpy_evaluator``)."""
    functions._native_differences = evaluator_jacobian if on else None


@contextlib.contextmanager
def enabled():
    """Differences in C inside the block."""
    previous = functions._native_differences
    functions._native_differences = evaluator_jacobian
    try:
        yield
    finally:
        functions._native_differences = previous
