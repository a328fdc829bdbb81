"""The C every emitted step shares (``native_emit``): NumPy's summation order, and NumPy's BLAS
and LAPACK calls as NumPy makes them.

* ``mq_add(a, b)``, ``mq_mul(a, b)``: a + b and a · b as one instruction with a first, so that
  where both are NaN a's is kept (x86's rule, and the ``-O0`` code's) at any optimisation
  level, and nothing is folded away (``native_load``'s docstring); every float addition and
  product of the generated code and of these sums is one of them.
* ``np_sum(a, n, stride)``: ``np.add.reduce`` over a contiguous-loop axis: the identity 0.0
  plus NumPy's pairwise sum (``pairwise_sum_DOUBLE``: left to right below 8 terms; up to 128,
  eight running sums over blocks of eight joined as ((s0+s1)+(s2+s3))+((s4+s5)+(s6+s7)), then
  the rest left to right; above 128, the two halves (the first a multiple of 8) summed
  recursively and added). Checked against ``np.add.reduce`` for n = 1..400
  (``tests/test_native_emit.py``).
* ``np_gemv_cm(trans, rows, cols, a, lda, x, y)``: y = op(A) x for the column-major A that
  NumPy's ``matmul`` hands OpenBLAS's ``cblas_dgemv`` (alpha 1, beta 0, unit strides):
  a C-ordered matrix is the transpose of a column-major one, so its product is the
  transposed call; the same kernel and so the same bits as NumPy's.
* ``np_svd(a, ...)``: ``np.linalg._umath_linalg.svd_s`` for one matrix: the input copied to
  column-major order, LAPACK ``dgesdd`` with ``jobz='S'`` and the workspace its query asks
  for (NumPy queries at every call; the answer depends on the shape alone, so each call site
  queries once and keeps it: the same workspace, the same computation, ~4,000 fewer
  instructions a call), then u, s, vᵀ copied back to C order. Returns LAPACK's ``info``
  (nonzero: no convergence, where NumPy raises).
* ``np_matmul(a, ..., b, ..., m, n, p, out)``: ``matmul`` of two dense matrices as NumPy's
  ``DOUBLE_matmul_matrixmatrix`` calls BLAS (``native_ops``): ``syrk`` for a matrix and its
  transpose (one pointer, swapped strides), else ``gemm``.
* ``np_eigh(a, ..., w, v, memo)``: ``np.linalg.eigh``, LAPACK ``dsyevd`` as ``_umath_linalg``
  calls it (the workspaces queried once per call site, as ``np_svd``'s).

``prelude(ilp64, kernel=True)`` is the batch kernel's (``native_kernel``): the same names, but
``mq_add``/``mq_mul`` plain operators and ``np_gemv_cm``/``np_matmul`` plain C loops, which
an optimiser may reorder and inline (results to rounding, not the trace's bits; no call into
the library for a 25 × 5 product); the SVD and ``eigh`` stay LAPACK's.

The BLAS integer (``blasint``) is 64-bit for an ILP64 library (NumPy 2's wheels) and the
function pointers are set once by ``marquardt_init``.
"""

from __future__ import annotations

__all__ = ["prelude", "init"]

_TEXT = r"""
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

typedef BLASINT blasint;
typedef void (*gemv_t)(int, int, blasint, blasint, double, const double *, blasint,
                       const double *, blasint, double, double *, blasint);
typedef void (*gesdd_t)(const char *, const blasint *, const blasint *, double *,
                        const blasint *, double *, double *, const blasint *, double *,
                        const blasint *, double *, const blasint *, blasint *, blasint *,
                        size_t);
typedef void (*syrk_t)(int, int, int, blasint, blasint, double, const double *, blasint,
                       double, double *, blasint);
typedef void (*gemm_t)(int, int, int, blasint, blasint, blasint, double, const double *,
                       blasint, const double *, blasint, double, double *, blasint);
typedef void (*syevd_t)(const char *, const char *, const blasint *, double *, const blasint *,
                        double *, double *, const blasint *, blasint *, const blasint *,
                        blasint *, size_t, size_t);
static gemv_t p_gemv;
static gesdd_t p_gesdd;
static syrk_t p_syrk;
static gemm_t p_gemm;
static syevd_t p_syevd;

/* the library's routines, set once before any step runs (read-only afterwards) */
void marquardt_init(void *gemv, void *gesdd, void *syrk, void *gemm, void *syevd) {
    p_gemv = (gemv_t)gemv; p_gesdd = (gesdd_t)gesdd; p_syrk = (syrk_t)syrk;
    p_gemm = (gemm_t)gemm; p_syevd = (syevd_t)syevd;
}

static double D(uint64_t bits) { double d; memcpy(&d, &bits, 8); return d; }

@ARITH@
static double pairwise(const double *a, long n, long s) {
    if (n < 8) {
        double res = 0.0;
        for (long i = 0; i < n; i++) res = mq_add(res, a[i * s]);
        return res;
    } else if (n <= 128) {
        double r[8], res;
        long i;
        for (int j = 0; j < 8; j++) r[j] = a[j * s];
        for (i = 8; i < n - (n % 8); i += 8)
            for (int j = 0; j < 8; j++) r[j] = mq_add(r[j], a[(i + j) * s]);
        res = mq_add(mq_add(mq_add(r[0], r[1]), mq_add(r[2], r[3])),
                     mq_add(mq_add(r[4], r[5]), mq_add(r[6], r[7])));
        for (; i < n; i++) res = mq_add(res, a[i * s]);
        return res;
    } else {
        long n2 = n / 2;
        n2 -= n2 % 8;
        return mq_add(pairwise(a, n2, s), pairwise(a + n2 * s, n - n2, s));
    }
}

static double np_sum(const double *a, long n, long s) { return mq_add(0.0, pairwise(a, n, s)); }

/* np.add.reduce along an outer axis: one running sum from the identity */
static double np_sum_running(const double *a, long n, long s) {
    double acc = 0.0;
    for (long i = 0; i < n; i++) acc = mq_add(acc, a[i * s]);
    return acc;
}

static int np_all(const int64_t *a, long n, long s) {
    for (long i = 0; i < n; i++) if (!a[i * s]) return 0;
    return 1;
}

static int np_any(const int64_t *a, long n, long s) {
    for (long i = 0; i < n; i++) if (a[i * s]) return 1;
    return 0;
}

static double np_max(const double *a, long n, long s) {
    double m = a[0];
    for (long i = 1; i < n; i++) { double v = a[i * s]; m = (m >= v || m != m) ? m : v; }
    return m;
}

@PRODUCTS@
/* thin SVD of the m x n matrix at a (element strides sa0, sa1): u (m x k), s (k), vt (k x n),
   all C order, k = min(m, n). *lwork_memo: the workspace dgesdd asked for at this shape (0:
   not asked yet; each call site passes its own, its shape fixed): asked once, then reused,
   the same size every call and so the same computation. One block holds every buffer. */
static int np_svd(const double *a, long sa0, long sa1, long m, long n, double *u, double *s,
                  double *vt, int64_t *lwork_memo) {
    blasint M = m, N = n, K = m < n ? m : n, lda = m > 1 ? m : 1, ldu = lda, ldvt = K,
            info = 0, query = -1;
    blasint lwork = (blasint)__atomic_load_n(lwork_memo, __ATOMIC_RELAXED);
    if (lwork < 1) {
        double wq = 0.0, none[1] = {0.0};  /* the query reads no array */
        blasint inone[1] = {0};
        p_gesdd("S", &M, &N, none, &lda, none, none, &ldu, none, &ldvt, &wq, &query, inone,
                &info, 1);
        if (info != 0) return (int)info;
        lwork = (blasint)wq;
        if (lwork < 1) lwork = 1;
        __atomic_store_n(lwork_memo, (int64_t)lwork, __ATOMIC_RELAXED);
    }
    /* af, uf, vf, work, iwork: each at a multiple of 64 bytes */
    size_t sizes[5] = {(size_t)(m * n), (size_t)(m * K), (size_t)(K * n), (size_t)lwork,
                       (size_t)(8 * K)}, at[5], total = 0;
    for (int k = 0; k < 5; k++) { at[k] = total; total += (sizes[k] + 7) & ~(size_t)7; }
    double *block = malloc(sizeof(double) * (total ? total : 1));
    if (!block) return -1;
    double *af = block + at[0], *uf = block + at[1], *vf = block + at[2], *work = block + at[3];
    blasint *iwork = (blasint *)(block + at[4]);
    for (long j = 0; j < n; j++)
        for (long i = 0; i < m; i++) af[i + j * m] = a[i * sa0 + j * sa1];
    p_gesdd("S", &M, &N, af, &lda, s, uf, &ldu, vf, &ldvt, work, &lwork, iwork, &info, 1);
    for (long i = 0; i < m; i++)
        for (long j = 0; j < K; j++) u[i * K + j] = uf[i + j * m];
    for (long i = 0; i < K; i++)
        for (long j = 0; j < n; j++) vt[i * n + j] = vf[i + j * K];
    free(block);
    return (int)info;
}

/* eigenvalues w (ascending) and eigenvectors v (n x n, C order, v[:, i] the i-th) of the
   symmetric matrix at a: np.linalg.eigh, LAPACK dsyevd (jobz 'V', uplo 'L') on a
   column-major copy; memo[0], memo[1]: the workspaces its query asked for at this n */
static int np_eigh(const double *a, long sa0, long sa1, long n, double *w, double *v,
                   int64_t *memo) {
    blasint N = n, lda = n > 1 ? n : 1, info = 0, query = -1;
    blasint lwork = (blasint)__atomic_load_n(memo, __ATOMIC_RELAXED);
    blasint liwork = (blasint)__atomic_load_n(memo + 1, __ATOMIC_RELAXED);
    size_t nn = (size_t)(n * n);
    if (lwork < 1 || liwork < 1) {
        double wq = 0.0, none[1] = {0.0};
        blasint iq = 0;
        p_syevd("V", "L", &N, none, &lda, none, &wq, &query, &iq, &query, &info, 1, 1);
        if (info != 0) return (int)info;
        lwork = (blasint)wq > 0 ? (blasint)wq : 1;
        liwork = iq > 0 ? iq : 1;
        __atomic_store_n(memo, (int64_t)lwork, __ATOMIC_RELAXED);
        __atomic_store_n(memo + 1, (int64_t)liwork, __ATOMIC_RELAXED);
    }
    size_t af_n = (nn + 7) & ~(size_t)7, work_n = ((size_t)lwork + 7) & ~(size_t)7;
    double *block = malloc(sizeof(double) * (af_n + work_n + (size_t)liwork + 1));
    if (!block) return -1;
    double *af = block, *work = block + af_n;
    blasint *iwork = (blasint *)(block + af_n + work_n);
    for (long j = 0; j < n; j++)
        for (long i = 0; i < n; i++) af[i + j * n] = a[i * sa0 + j * sa1];
    p_syevd("V", "L", &N, af, &lda, w, work, &lwork, iwork, &liwork, &info, 1, 1);
    for (long r = 0; r < n; r++)
        for (long c = 0; c < n; c++) v[r * n + c] = af[r + c * n];
    free(block);
    return (int)info;
}
"""


_EXACT_ARITH = r"""
/* a + b and a * b as one instruction with a as its first operand, whatever the optimiser
   would reorder: where both are NaN, x86 (and AArch64) keep the first one's, so that the
   operands' order in the source is the NaN kept, as in Python's and NumPy's loops (and the
   folds that drop an operation, x * 1.0 -> x, cannot skip the quieting of a signalling NaN).
   Elsewhere the NaN is chosen explicitly. */
#if defined(__GNUC__) && defined(__x86_64__) && defined(__SSE2__)
static inline double mq_add(double a, double b) { __asm__("addsd %1, %0" : "+x"(a) : "x"(b)); return a; }
static inline double mq_mul(double a, double b) { __asm__("mulsd %1, %0" : "+x"(a) : "x"(b)); return a; }
#else
static inline double mq_add(double a, double b) { return (a != a && b != b) ? a + a : a + b; }
static inline double mq_mul(double a, double b) { return (a != a && b != b) ? a + a : a * b; }
#endif

"""

_EXACT_PRODUCTS = r"""
/* y = op(A) x, A column-major rows x cols with leading dimension lda */
static void np_gemv_cm(int trans, long rows, long cols, const double *a, long lda,
                       const double *x, long incx, double *y) {
    p_gemv(102, trans ? 112 : 111, rows, cols, 1.0, a, lda, x, incx, 0.0, y, 1);
}

/* a (m x n) @ b (n x p) into out (m x p, C order), element strides given: NumPy's
   DOUBLE_matmul_matrixmatrix, row-major, syrk where a is b's transpose (the upper triangle,
   then copied down), else gemm */
static void np_matmul(const double *a, long sa0, long sa1, const double *b, long sb0,
                      long sb1, long m, long n, long p, double *out) {
    int t1, t2;
    blasint lda, ldb, ldc = p;
    if (sa1 == 1 && sa0 >= n) { t1 = 111; lda = sa0; } else { t1 = 112; lda = sa1; }
    if (sb1 == 1 && sb0 >= p) { t2 = 111; ldb = sb0; } else { t2 = 112; ldb = sb1; }
    if (a == b && m == p && sa0 == sb1 && sa1 == sb0 && t1 != t2) {
        p_syrk(101, 121, t1, p, n, 1.0, a, t1 == 111 ? lda : ldb, 0.0, out, ldc);
        for (long i = 0; i < p; i++)
            for (long j = i + 1; j < p; j++) out[j * ldc + i] = out[i * ldc + j];
    } else {
        p_gemm(101, t1, t2, m, p, n, 1.0, a, lda, b, ldb, 0.0, out, ldc);
    }
}

"""

_KERNEL_ARITH = r"""
/* the batch kernel's arithmetic: plain operators, for the optimiser to schedule */
static inline double mq_add(double a, double b) { return a + b; }
static inline double mq_mul(double a, double b) { return a * b; }

"""

_KERNEL_PRODUCTS = r"""
/* the batch kernel's products: plain loops, always inlined so that the sizes and strides of
   each call site (constants in the emitted code) unroll them; no library call on a 25 x 5
   matrix */
#define MQ_INLINE static inline __attribute__((always_inline))
MQ_INLINE void np_gemv_cm(int trans, long rows, long cols, const double *a, long lda,
                          const double *x, long incx, double *y) {
    if (!trans) {
        for (long i = 0; i < rows; i++) y[i] = 0.0;
        for (long j = 0; j < cols; j++) {
            const double xj = x[j * incx];
            for (long i = 0; i < rows; i++) y[i] += a[i + j * lda] * xj;
        }
    } else {
        for (long j = 0; j < cols; j++) {
            double acc = 0.0;
            for (long i = 0; i < rows; i++) acc += a[i + j * lda] * x[i * incx];
            y[j] = acc;
        }
    }
}

/* out (m x p, C order) = a @ b; a matrix times its transpose (one pointer, swapped strides:
   JᵀJ) by rank-one updates of the upper triangle, row by row of J, then mirrored */
MQ_INLINE void np_matmul(const double *a, long sa0, long sa1, const double *b, long sb0,
                         long sb1, long m, long n, long p, double *out) {
    if (a == b && m == p && sa0 == sb1 && sa1 == sb0) {
        for (long i = 0; i < m * p; i++) out[i] = 0.0;
        for (long j = 0; j < n; j++) {
            const double *row = a + j * sa1;  /* J's row j: a[i * sa0 + j * sa1], i < m */
            for (long i = 0; i < m; i++) {
                const double ri = row[i * sa0];
                for (long k = i; k < p; k++) out[i * p + k] += ri * row[k * sa0];
            }
        }
        for (long i = 0; i < m; i++)
            for (long k = 0; k < i; k++) out[i * p + k] = out[k * p + i];
        return;
    }
    for (long i = 0; i < m; i++)
        for (long k = 0; k < p; k++) {
            double acc = 0.0;
            for (long j = 0; j < n; j++) acc += a[i * sa0 + j * sa1] * b[j * sb0 + k * sb1];
            out[i * p + k] = acc;
        }
}
"""


def prelude(ilp64: bool, kernel: bool = False) -> str:
    """The shared C text for a BLAS with 64-bit (``ilp64``) or 32-bit integers; ``kernel``:
    the batch kernel's (``native_kernel``: plain operators and loops, not the trace's bits)."""
    text = _TEXT.replace("@ARITH@", _KERNEL_ARITH if kernel else _EXACT_ARITH)
    text = text.replace("@PRODUCTS@", _KERNEL_PRODUCTS if kernel else _EXACT_PRODUCTS)
    return text.replace("BLASINT", "int64_t" if ilp64 else "int32_t")


def init(lib, blas) -> None:
    """Hand a loaded module the library's routines (``marquardt_init``)."""
    import ctypes

    lib.marquardt_init.argtypes = [ctypes.c_void_p] * 5
    lib.marquardt_init.restype = None
    lib.marquardt_init(*(ctypes.c_void_p(a) for a in (blas.dgemv, blas.dgesdd, blas.dsyrk,
                                                       blas.dgemm, blas.dsyevd)))
