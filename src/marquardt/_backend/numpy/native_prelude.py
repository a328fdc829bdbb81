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

The BLAS integer (``blasint``) is 64-bit for an ILP64 library (NumPy 2's wheels) and the
function pointers are set once by ``marquardt_init``.
"""

from __future__ import annotations

__all__ = ["prelude"]

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
static gemv_t p_gemv;
static gesdd_t p_gesdd;

void marquardt_init(void *gemv, void *gesdd) { p_gemv = (gemv_t)gemv; p_gesdd = (gesdd_t)gesdd; }

static double D(uint64_t bits) { double d; memcpy(&d, &bits, 8); return d; }

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

/* y = op(A) x, A column-major rows x cols with leading dimension lda */
static void np_gemv_cm(int trans, long rows, long cols, const double *a, long lda,
                       const double *x, long incx, double *y) {
    p_gemv(102, trans ? 112 : 111, rows, cols, 1.0, a, lda, x, incx, 0.0, y, 1);
}

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
"""


def prelude(ilp64: bool) -> str:
    """The shared C text for a BLAS with 64-bit (``ilp64``) or 32-bit integers."""
    return _TEXT.replace("BLASINT", "int64_t" if ilp64 else "int32_t")
