"""The covariance's scaled SVD in C, bit for bit ``_covariance._pinv_normal``'s NumPy route.

``curve_fit``'s pcov (``marquardt._covariance``) takes the thin SVD of J S, S = diag(1/‖Jⱼ‖),
after checking that no column has vanished beside the longest. In NumPy that is five array
operations and the SVD's generalized ufunc under an error state: ~108,000 instructions for a
50 × 3 J, of which LAPACK's ``dgesdd`` does a third (issue #13, result 1: a warm fit's
Python). Here the same numbers come from one call into C (~64,000 instructions, J copied in
and the results out of buffers made once per shape: asking NumPy for an array's address
costs more than the copy), with the native executor's prelude (``native_prelude``: NumPy's
summation orders and its ``dgesdd`` call):

* ‖Jⱼ‖² as ``np.add.reduce(J * J, axis=0)`` forms it: for a column-major J (the native
  loop's and numdiff's) the reduction runs along each contiguous column (``np_sum``: NumPy's
  pairwise sum); for a row-major J, row after row (``np_sum_running``); then ``sqrt``;
* the cut-off test ``all(‖Jⱼ‖ > ε·max(m, n)·maxₖ ‖Jₖ‖)`` on those values (a NaN fails it),
  Sⱼ = 1/‖Jⱼ‖ and J S, each one IEEE operation as NumPy's;
* the SVD of J S: ``np_svd``, the ``svd_s`` kernel's ``dgesdd`` call (``jobz='S'``, the
  workspace its query asks for).

Where a column is lost (or a length is NaN), J is neither row- nor column-major, m or n is 1,
or ``dgesdd`` fails, None is returned and the NumPy route runs (and raises as before). Used
only once the native executor is in use (``native_loop.differences_in_c``): a process that
never builds native code never compiles this either.
"""

from __future__ import annotations

import ctypes
import threading

import numpy as np

from marquardt._backend.numpy import native_load
from marquardt._backend.numpy.native_prelude import prelude

__all__ = ["scaled_svd"]

_TEXT = r"""
typedef struct {
    long m, n, s0, s1;  /* J's shape and element strides (column-major: s0 == 1) */
    double cut;         /* eps * max(m, n) */
    const double *jac;  /* m x n */
    double *scale, *s, *vt, *js, *u;  /* n, k, k x n; scratch m x n, m x k */
    int64_t *lwork_memo;
} mq_svd_args;

/* J -> scale (n), s (k), vt (k x n), k = min(m, n). 0: written; 1: a column lost or a NaN
   length (the caller's NumPy route); 2: dgesdd failed. */
int mq_scaled_svd(const mq_svd_args *a) {
    long m = a->m, n = a->n, s0 = a->s0, s1 = a->s1;
    const double *jac = a->jac;
    double *scale = a->scale, *js = a->js, top = 0.0;
    int column_major = s0 == 1;
    for (long j = 0; j < n; j++) {  /* squares into js (column-major), then the sums */
        const double *col = jac + j * s1;
        double *sq = js + j * m;
        for (long i = 0; i < m; i++) sq[i] = mq_mul(col[i * s0], col[i * s0]);
        double length = sqrt(column_major ? np_sum(sq, m, 1) : np_sum_running(sq, m, 1));
        scale[j] = length;
        if (j == 0 || length > top) top = length;  /* Python's max (a NaN: refused below) */
    }
    top = a->cut * top;
    for (long j = 0; j < n; j++)
        if (!(scale[j] > top)) return 1;
    for (long j = 0; j < n; j++) scale[j] = 1.0 / scale[j];
    for (long j = 0; j < n; j++)
        for (long i = 0; i < m; i++) js[i + j * m] = mq_mul(jac[i * s0 + j * s1], scale[j]);
    return np_svd(js, 1, m, m, n, a->u, a->s, a->vt, a->lwork_memo) ? 2 : 0;
}
"""


class _Args(ctypes.Structure):
    """``mq_svd_args``."""

    _fields_ = [("m", ctypes.c_long), ("n", ctypes.c_long), ("s0", ctypes.c_long),
                ("s1", ctypes.c_long), ("cut", ctypes.c_double)] + [
        (name, ctypes.c_void_p) for name in ("jac", "scale", "s", "vt", "js", "u",
                                             "lwork_memo")]


class _Shape:
    """One shape and memory order's buffers, addresses and record, made once: J is copied
    into ``jac`` (the address of the caller's array costs more than the copy), the results
    read back from ``out``; ``lock``: one call at a time on them."""

    def __init__(self, m: int, n: int, column_major: bool, cut: float):
        k = min(m, n)
        # jac (m n), then scale (n), s (k), vt (k n), then the scratch js (m n), u (m k), and
        # the workspace size dgesdd asked for (an int64 cell, in a float64's place)
        block = self.block = np.zeros(m * n + n + k + k * n + m * n + m * k + 1)
        order = "F" if column_major else "C"
        self.jac = np.ndarray((m, n), np.float64, buffer=block, order=order)
        self.out = block[m * n:m * n + n + k + k * n]
        self.cuts = (n, n + k)
        self.vt_shape = (k, n)
        at = block.ctypes.data
        base = at + 8 * m * n
        s0, s1 = (1, m) if column_major else (n, 1)
        self.args = _Args(m, n, s0, s1, cut, at, base, base + 8 * n, base + 8 * (n + k),
                          base + 8 * (n + k + k * n), base + 8 * (n + k + k * n + m * n),
                          at + 8 * (block.size - 1))
        self.pointer = ctypes.addressof(self.args)
        self.lock = threading.Lock()

_LIBRARY: list = []  # [function] once loaded, [None] where it cannot be
_LOCK = threading.Lock()
_SHAPES: dict = {}  # (m, n, column-major) -> _Shape
_SHAPES_MAX = 64


def _function():
    """``mq_scaled_svd``, compiled (or loaded from the disk cache) at the first call; None
    where no C can be built."""
    if not _LIBRARY:
        with _LOCK:
            if not _LIBRARY:
                try:
                    blas = native_load.blas()
                    lib = native_load.load(prelude(blas.ilp64) + _TEXT)
                    lib.marquardt_init.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
                    lib.marquardt_init.restype = None
                    lib.marquardt_init(ctypes.c_void_p(blas.dgemv),
                                       ctypes.c_void_p(blas.dgesdd))
                    fn = lib.mq_scaled_svd
                    fn.argtypes = [ctypes.c_void_p]
                    fn.restype = ctypes.c_int
                    _LIBRARY.append(fn)
                except native_load.NativeUnavailable:
                    _LIBRARY.append(None)
    return _LIBRARY[0]


def scaled_svd(jac: np.ndarray, cut: float):
    """(S, s, Vᵀ) with S = 1/‖Jⱼ‖ and J S = U diag(s) Vᵀ, the bits of ``_pinv_normal``'s
    NumPy route, for a float64 (m, n) ndarray J, m, n > 1, row- or column-major, no column
    of length ≤ ``cut`` · the longest (``cut``: ε · max(m, n), ``_pinv_normal``'s); None
    otherwise (and where no C can be built, or the SVD fails): the caller's NumPy route then
    runs."""
    if type(jac) is not np.ndarray or jac.dtype != np.float64 or jac.ndim != 2:
        return None
    m, n = jac.shape
    if m < 2 or n < 2:
        return None
    flags = jac.flags
    column_major = flags.f_contiguous
    if not (column_major or flags.c_contiguous):
        return None
    key = (m, n, column_major)
    shape = _SHAPES.get(key)
    if shape is None or shape.args.cut != cut:
        fn = _function()
        if fn is None:
            return None
        if len(_SHAPES) >= _SHAPES_MAX:
            _SHAPES.clear()
        shape = _SHAPES[key] = _Shape(m, n, column_major, cut)
    with shape.lock:
        shape.jac[...] = jac
        if _LIBRARY[0](shape.pointer):
            return None
        out = shape.out.copy()
    a, b = shape.cuts
    return out[:a], out[a:b], out[b:].reshape(shape.vt_shape)
