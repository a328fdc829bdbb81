"""The batch kernel's C loop and entry (``native_kernel``): ``native_cloop``'s loop with the
model called in C, and the loop over problems that feeds it and stores each final state.

The loop (``mq_kernel_fit``) calls the emitted steps in the core's order, as
``_core.host._run_one`` does: the residuals at each candidate (``x_try`` -> ``f_try``); after
an accepted iteration ``f_new`` is the candidate's residuals and ``j_new`` J there; after a
rejected one ``f_new, j_new`` are copies of the state's, J row-major (tag 0), as the trace
copies it. The model gives J with r at every candidate, into ``j_new``: the attempts of an
iteration end at its accepted candidate (an accepted attempt is no longer live), so ``j_new``
then holds J there, without a second call of the model at the same point (whose exp() are
most of its cost); J at a rejected candidate is written and not used (the same values as the
host's separate evaluation of J, as the model is a function of the point).
Its codes: 0 ended after ``end``, 3 ended at ``start`` (not finite at the start point), 1 the
model returned nonzero, 2 LAPACK did not converge (the SVD, or the eigen fallback).

The entry (``mq_kernel_solve``) takes the problems [k0, k1), the data, starts, bounds and D
(row-major (K, n)), and two output tables: per problem one row of doubles and one of int64,
each ``LoopState`` field at a fixed column (``driver``'s ``fields``), the loop's code last.
"""

from __future__ import annotations

import numpy as np

from marquardt._backend.numpy.native_slots import Layout, Unsupported
from marquardt._core import iteration as core
from marquardt._core.records import RUNNING, LoopState
from marquardt._covariance import FAST_COND_MAX, FAST_COND_UNSCALED_MAX

__all__ = ["driver"]

_TEXT = r"""
static void mq_copy_row_major(const double *src, int64_t tag, double *dst, long m, long n) {
    if (tag == 0) { memcpy(dst, src, sizeof(double) * (size_t)(m * n)); return; }
    for (long i = 0; i < m; i++)
        for (long j = 0; j < n; j++) dst[i * n + j] = src[i + j * m];
}

static int mq_kernel_fit(double *F, int64_t *I, const mq_data *d) {
    if (step_start(F, I)) return 2;
    if (I[STATUS] != RUNNING) return 3;
    if (step_begin(F, I)) return 2;
    if (I[LV] && step_attempt(F, I)) return 2;
    for (;;) {
        while (I[LV]) {  /* J with r at each candidate: the last one is the accepted */
            if (mq_cmodel(F + X_TRY, d, F + F_TRY, F + J_NEW)) return 1;
            if (step_judged(F, I)) return 2;
            if (I[LV] && step_attempt(F, I)) return 2;
        }
        if (!I[ACCEPTED]) {
            memcpy(F + F_NEW, F + S_F, sizeof(double) * M);
            mq_copy_row_major(F + S_J, I[S_J_TAG], F + J_NEW, M, N);
        } else {
            memcpy(F + F_NEW, F + C_F_NEW, sizeof(double) * M);
        }
        I[J_NEW_TAG] = 0;
        if (step_end(F, I)) return 2;
        if (I[STATUS] != RUNNING) return 0;
        if (step_begin(F, I)) return 2;
        if (I[LV] && step_attempt(F, I)) return 2;
    }
}

/* After the fit, for the result (``_batch_results.BatchOutputs``): g = Jᵀr and, where the
   direct route of ``_covariance.unscaled_covariances`` holds, its (JᵀJ)⁻¹: A = JᵀJ,
   S = diag(A)^(-1/2), A_s = S A S inverted by Cholesky (L, M = L⁻¹, A_s⁻¹ = MᵀM), cov =
   S A_s⁻¹ S, kept where J is finite, diag(A) > 0, every pivot positive, and the 1-norm
   condition estimates of A_s and of A within FAST_COND_MAX and FAST_COND_UNSCALED_MAX;
   out: g (N), cov (N x N), ok (1: 1.0 where kept, else 0.0: the caller takes NumPy's route,
   the SVD's, for that problem). The same arithmetic as the NumPy code, summed in another
   order: equal to rounding. */
static void mq_kernel_covariance(const double *J, const double *r, double *out) {
    double *g = out, *cov = out + N, *ok = out + N + N * N;
    double a[N][N], sc[N], as[N][N], low[N][N], inv_l[N][N], inv[N][N];
    int finite = 1;
    ok[0] = 0.0;
    for (long j = 0; j < N; j++) {
        g[j] = 0.0;
        for (long q = 0; q < N; q++) a[j][q] = 0.0;
    }
    for (long i = 0; i < M; i++) {
        const double *row = J + i * N;
        for (long j = 0; j < N; j++) {
            const double v = row[j];
            if (!isfinite(v)) finite = 0;
            g[j] += v * r[i];
            for (long q = 0; q <= j; q++) a[j][q] += v * row[q];
        }
    }
    for (long j = 0; j < N; j++) {
        for (long q = j + 1; q < N; q++) a[j][q] = a[q][j];
        if (!(a[j][j] > 0.0)) finite = 0;
    }
    if (!finite) return;
    for (long j = 0; j < N; j++) sc[j] = 1.0 / sqrt(a[j][j]);
    for (long j = 0; j < N; j++)
        for (long q = 0; q < N; q++) as[j][q] = a[j][q] * sc[j] * sc[q];
    for (long j = 0; j < N; j++) {  /* Cholesky-Banachiewicz */
        double d = as[j][j];
        for (long q = 0; q < j; q++) d -= low[j][q] * low[j][q];
        if (!(d > 0.0)) return;
        low[j][j] = sqrt(d);
        for (long i = j + 1; i < N; i++) {
            double t = as[i][j];
            for (long q = 0; q < j; q++) t -= low[i][q] * low[j][q];
            low[i][j] = t / low[j][j];
        }
    }
    for (long i = 0; i < N; i++) {  /* M = L⁻¹ */
        inv_l[i][i] = 1.0 / low[i][i];
        for (long j = 0; j < i; j++) {
            double t = low[i][j] * inv_l[j][j];
            for (long q = j + 1; q < i; q++) t += low[i][q] * inv_l[q][j];
            inv_l[i][j] = -t * inv_l[i][i];
        }
    }
    for (long i = 0; i < N; i++)
        for (long j = 0; j <= i; j++) {
            double t = inv_l[i][i] * inv_l[i][j];
            for (long q = i + 1; q < N; q++) t += inv_l[q][i] * inv_l[q][j];
            inv[i][j] = inv[j][i] = t;
        }
    double n_as = 0.0, n_inv = 0.0, n_a = 0.0, n_cov = 0.0;
    for (long q = 0; q < N; q++) {  /* 1-norms: the largest column sum of |entries| */
        double c1 = 0.0, c2 = 0.0, c3 = 0.0, c4 = 0.0;
        for (long j = 0; j < N; j++) {
            const double cv = inv[j][q] * sc[j] * sc[q];
            if (!isfinite(inv[j][q])) return;
            c1 += fabs(as[j][q]); c2 += fabs(inv[j][q]); c3 += fabs(a[j][q]); c4 += fabs(cv);
            cov[j * N + q] = cv;
        }
        if (c1 > n_as) n_as = c1;
        if (c2 > n_inv) n_inv = c2;
        if (c3 > n_a) n_a = c3;
        if (c4 > n_cov) n_cov = c4;
    }
    if (n_as * n_inv <= FAST_COND_MAX && n_a * n_cov <= FAST_COND_UNSCALED_MAX) ok[0] = 1.0;
}

/* problems [k0, k1): 0, or -1 where the buffers could not be allocated */
int mq_kernel_solve(long k0, long k1, const double *xdata, long x_stride, long x_row,
                    const double *ydata, const double *wdata, long w_stride,
                    const double *p0, const double *lb, const double *ub, const double *dfix,
                    double *out_f, int64_t *out_i) {
    double *F = calloc(F_SIZE, sizeof(double));
    int64_t *I = calloc(I_SIZE, sizeof(int64_t));
    if (!F || !I) { free(F); free(I); return -1; }
    for (long k = k0; k < k1; k++) {
        mq_data d = {xdata + k * x_stride, x_row, ydata + k * M,
                     wdata ? wdata + k * w_stride : NULL, M};
        memcpy(F + X0, p0 + k * N, sizeof(double) * N);
        INPUTS
        I[J0_TAG] = 0;
        int code = mq_cmodel(F + X0, &d, F + F0, F + J0) ? 1 : mq_kernel_fit(F, I, &d);
        double *of = out_f + k * ROW_F;
        int64_t *oi = out_i + k * ROW_I;
        STORE
        mq_kernel_covariance(of + J_COL, of + F_COL, of + EXTRA_COL);
        oi[ROW_I - 1] = code;
    }
    free(F);
    free(I);
    return 0;
}
"""


def driver(layout: Layout, emitted: dict, m: int, n: int) -> tuple[str, list, int, int]:
    """The loop and entry for this layout: (C text, the output columns of each ``LoopState``
    field as (buffer, offset, per-problem shape), doubles per row, int64 per row).

    Raises:
        Unsupported: a slot the loop needs is missing or not of the expected shape.
    """
    slots = layout.slots

    def at(var, field=None, record=LoopState):
        return layout.find(var, field, record)

    def flat(slot, size):
        if slot.buffer != "F" or slot.kind != "f" or slot.tag >= 0 or \
                int(np.prod(slot.shape)) != size or max(slot.strides, default=1) > 1:
            raise Unsupported(f"a slot of shape {slot.shape}, strides {slot.strides}")
        return slot.offset

    s_j, j_new, j0 = at("s", "j"), at("j_new"), at("j0")
    for slot in (s_j, j_new, j0):
        if slot.shape != (1, m, n) or slot.tag < 0:
            raise Unsupported("Jacobian slots of another shape")
    a = core.Attempt
    names = {"STATUS": at("s", "status").offset, "LV": at("lv").offset,
             "ACCEPTED": at("c", "accepted", a).offset, "RUNNING": RUNNING,
             "F_NEW": flat(at("f_new"), m), "S_F": flat(at("s", "f"), m),
             "C_F_NEW": flat(at("c", "f_new", a), m), "S_J": s_j.offset,
             "S_J_TAG": s_j.tag, "J_NEW": j_new.offset, "J_NEW_TAG": j_new.tag,
             "X_TRY": flat(at("x_try"), n), "F_TRY": flat(at("f_try"), m),
             "C_X_NEW": flat(at("c", "x_new", a), n), "X0": flat(at("x0"), n),
             "F0": flat(at("f0"), m), "J0": j0.offset, "J0_TAG": j0.tag, "M": m, "N": n,
             "F_SIZE": max(layout.size["F"], 1), "I_SIZE": max(layout.size["I"], 1)}
    for key in ("STATUS", "LV", "ACCEPTED"):
        slot = {"STATUS": at("s", "status"), "LV": at("lv"),
                "ACCEPTED": at("c", "accepted", a)}[key]
        if slot.buffer != "I" or slot.shape:
            raise Unsupported("a flag that is not an integer scalar")
    inputs = []
    for var, source in (("lb", "lb"), ("ub", "ub"), ("d_fixed", "dfix")):
        slot = slots.get((var, ()))
        if slot is not None:
            inputs.append(f"memcpy(F + {flat(slot, n)}, {source} + k * N, sizeof(double) * N);")
    fields, store, row = [], [], {"F": 0, "I": 0}
    end = emitted["end"].templates["s"]
    start = emitted["start"].templates["s"]
    if end != start or end[0] != "rec" or end[1] is not LoopState:
        raise Unsupported("the final state is not one flat record in one place")
    for name, node in zip(LoopState._fields, end[2]):
        if node is None or node[0] != "leaf":
            raise Unsupported(f"the state's {name} is not a leaf")
        slot = node[1]
        shape = tuple(slot.shape[1:]) if slot.shape else ()
        size = int(np.prod(shape)) if shape else 1
        buf = slot.buffer
        col = row[buf]
        if slot.tag >= 0:  # a matrix: row-major whatever its order
            store.append(f"mq_copy_row_major(F + {slot.offset}, I[{slot.tag}], of + {col}, "
                         f"{slot.shape[-2]}, {slot.shape[-1]});")
        elif shape:
            if max(slot.strides, default=1) > 1:
                raise Unsupported(f"the state's {name} is not contiguous")
            ctype = "double" if buf == "F" else "int64_t"
            target = "of" if buf == "F" else "oi"
            store.append(f"memcpy({target} + {col}, {buf} + {slot.offset}, "
                         f"sizeof({ctype}) * {size});")
        else:
            store.append(f"{'of' if buf == 'F' else 'oi'}[{col}] = {buf}[{slot.offset}];")
        fields.append((buf, col, shape))
        row[buf] += size
    row["I"] += 1  # the loop's code
    cols = dict(zip(LoopState._fields, fields))
    if cols["j"][0] != "F" or cols["f"][0] != "F":
        raise Unsupported("J or the residuals not among the doubles")
    names["J_COL"], names["F_COL"], names["EXTRA_COL"] = cols["j"][1], cols["f"][1], row["F"]
    names["FAST_COND_MAX"] = float(FAST_COND_MAX).hex()
    names["FAST_COND_UNSCALED_MAX"] = float(FAST_COND_UNSCALED_MAX).hex()
    row["F"] += n + n * n + 1  # g, cov, ok (``mq_kernel_covariance``)
    names["ROW_F"], names["ROW_I"] = max(row["F"], 1), row["I"]
    defines = "".join(f"#define {k} {v}\n" for k, v in names.items())
    undefines = "".join(f"#undef {k}\n" for k in names)
    text = _TEXT.replace("INPUTS", "\n        ".join(inputs) or ";")
    text = text.replace("STORE", "\n        ".join(store))
    return defines + text + undefines, fields, names["ROW_F"], names["ROW_I"]
