"""``_core.host._run_one``'s loop in C: a few hand-written lines that call the emitted steps
(``native_steps``) in the core's order, and call back into Python, through one ``ctypes``
callback, only for what the user's code must do.

The callback's ``what``:

* 0: the residuals at ``x_try`` into ``f_try``;
* 1: the Jacobian at ``c.x_new`` (the residuals there: ``c.f_new``) into ``j_new``;

(0 and 1 in C instead, without the callback, where the fit is given the differences and the
model of ``native_numdiff``: ``mq_evaluate`` and ``mq_difference_jacobian``, J written in
numdiff's memory order, tag 1)
* 2: the residuals and the Jacobian at ``c.x_new`` into ``f_new`` and ``j_new``;
* 3: the trust radius's ``refit`` in Python (a step never traced for this configuration);
* 4: a history record of iteration ``it`` (``old_cost``: the cost before it).

It returns nonzero where Python raised (the loop stops and returns 1; the exception is then
raised by the caller). The loop's copies are the trace's: after a rejected iteration
``f_new, j_new = s.f.copy(), s.j.copy()``, J row-major (its tag 0), as NumPy's ``copy``
makes it; after an accepted one with a Jacobian from the residuals, ``f_new`` is ``c.f_new``.

``fit`` returns 0 (ended after ``end``), 3 (ended at ``start``), 1 (a Python exception) or 2
(the SVD did not converge).
"""

from __future__ import annotations

import ctypes

from marquardt._backend.numpy.native_slots import Layout, Unsupported
from marquardt._core import iteration as core
from marquardt._core.records import RUNNING, LoopState

__all__ = ["CALLBACK", "first_jacobian_slots", "source"]

#: The callback's C type: int (*)(int what, long it, double old_cost).
CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_double)

_TEXT = r"""
typedef int (*fit_cb)(int what, long it, double old_cost);

static void copy_row_major(const double *src, int64_t tag, double *dst, long m, long n) {
    if (tag == 0) { memcpy(dst, src, sizeof(double) * (size_t)(m * n)); return; }
    for (long i = 0; i < m; i++)
        for (long j = 0; j < n; j++) dst[i * n + j] = src[i + j * m];
}

/* d, f, h: the differences and the model in C (native_numdiff, native_model), or NULL: the
   callback forms J (what 1) and evaluates the residuals (what 0). first_jacobian: J at x0
   is formed here from r(x0) (d and f given; the caller wrote x0 and f0, not j0). */
int marquardt_fit(double *F, int64_t *I, fit_cb cb, int jacobian_mode, int history,
                  const mq_differences *d, const mq_model *f, double *h, int first_jacobian) {
    int nfev = 0;  /* (the steps count the calls: cfg.jac_nfev per Jacobian) */
    long it = 0;
    if (FIRST_JACOBIAN && first_jacobian) {  /* numdiff's J at x0: column i at i*M, tag 1 */
        if (mq_difference_jacobian(d, f, F + X0, F + F0, h, F + J0, &nfev)) return 1;
        I[J0_TAG] = mq_jacobian_order(d, f);  /* (a callable's J: the order it came in) */
    }
    if (step_start(F, I)) return 2;
    if (history && cb(4, 0, 0.0)) return 1;
    if (I[STATUS] != RUNNING) return 3;
    if (step_begin(F, I)) return 2;
    if (I[LV] && step_attempt(F, I)) return 2;
    for (;;) {
        it++;
        while (I[LV]) {
            if (C_RESIDUALS && f) {
                if (mq_evaluate(f, F + X_TRY, F + F_TRY, &nfev)) return 1;
            } else if (cb(0, it, 0.0)) return 1;
            if (step_judged(F, I)) return 2;
            if (I[LV]) { REFIT }
            if (I[LV] && step_attempt(F, I)) return 2;
        }
        if (!I[ACCEPTED]) {
            memcpy(F + F_NEW, F + S_F, sizeof(double) * M);
            copy_row_major(F + S_J, I[S_J_TAG], F + J_NEW, M, N);
            I[J_NEW_TAG] = 0;
        } else if (jacobian_mode) {
            memcpy(F + F_NEW, F + C_F_NEW, sizeof(double) * M);
            if (C_RESIDUALS && d) {  /* numdiff's J, column i at i*M: order tag 1 */
                if (mq_difference_jacobian(d, f, F + C_X_NEW, F + C_F_NEW, h, F + J_NEW,
                                           &nfev)) return 1;
                I[J_NEW_TAG] = mq_jacobian_order(d, f);
            } else if (cb(1, it, 0.0)) return 1;
        } else if (cb(2, it, 0.0)) return 1;
        double old_cost = F[S_COST];
        if (step_end(F, I)) return 2;
        if (history && cb(4, it, old_cost)) return 1;
        if (I[STATUS] != RUNNING) return 0;
        if (step_begin(F, I)) return 2;
        if (I[LV] && step_attempt(F, I)) return 2;
    }
}
"""


def source(layout: Layout, steps: set, trust_radius: bool) -> str:
    """The loop's C for this layout; ``steps``: the steps emitted (``refit`` may be
    missing: then the callback runs it), ``trust_radius``: the policy refits.

    Raises:
        Unsupported: a slot the loop needs is missing or of another shape.
    """
    if not {"start", "begin", "attempt", "judged", "end"} <= steps:
        raise Unsupported("a step is not emitted")

    def at(var, field=None, record=LoopState):
        return layout.find(var, field, record)
    s_f, f_new, c_f_new = at("s", "f"), at("f_new"), at("c", "f_new", core.Attempt)
    s_j, j_new = at("s", "j"), at("j_new")
    if not (s_f.shape == f_new.shape == c_f_new.shape and len(s_f.shape) == 2):
        raise Unsupported("residual slots of other shapes")
    if s_j.shape != j_new.shape or len(s_j.shape) != 3 or s_j.tag < 0 or j_new.tag < 0:
        raise Unsupported("Jacobian slots of other shapes")
    m, n = s_j.shape[1], s_j.shape[2]
    if trust_radius:
        refit = ("if (step_refit(F, I)) return 2;" if "refit" in steps
                 else "if (cb(3, it, 0.0)) return 1;")
    else:
        refit = ""
    # the residuals and J in C (``native_numdiff``): x_try, f_try, c.x_new flat float rows
    x_try, f_try, c_x_new = at("x_try"), at("f_try"), at("c", "x_new", core.Attempt)
    flat = all(v.buffer == "F" and v.kind == "f" and v.tag < 0 and v.shape == shape
               and v.strides in ((0, 1), (shape[1], 1))
               for v, shape in ((x_try, (1, n)), (c_x_new, (1, n)), (f_try, (1, m))))
    first = first_jacobian_slots(layout)
    names = {"STATUS": at("s", "status").offset, "LV": at("lv").offset,
             "ACCEPTED": at("c", "accepted", core.Attempt).offset, "RUNNING": RUNNING,
             "F_NEW": f_new.offset, "S_F": s_f.offset, "C_F_NEW": c_f_new.offset,
             "S_J": s_j.offset, "S_J_TAG": s_j.tag, "J_NEW": j_new.offset,
             "J_NEW_TAG": j_new.tag, "S_COST": at("s", "cost").offset, "M": m, "N": n,
             "C_RESIDUALS": int(flat), "X_TRY": x_try.offset, "F_TRY": f_try.offset,
             "C_X_NEW": c_x_new.offset, "FIRST_JACOBIAN": int(first is not None)}
    names.update(first or {"X0": 0, "F0": 0, "J0": 0, "J0_TAG": 0})
    for slot in (at("s", "status"), at("lv"), at("c", "accepted", core.Attempt)):
        if slot.buffer != "I" or slot.shape:
            raise Unsupported("a flag that is not an integer scalar")
    defines = "".join(f"#define {k} {v}\n" for k, v in names.items())
    undefines = "".join(f"#undef {k}\n" for k in names)
    return defines + _TEXT.replace("{ REFIT }", "{ " + refit + " }") + undefines


def first_jacobian_slots(layout: Layout) -> dict | None:
    """Where the loop forms J at x0 itself (``marquardt_fit``'s ``first_jacobian``): the
    offsets of x0 (1, n) and f0 (1, m), flat float rows, and of j0 (1, m, n), a matrix with
    its order tag; None where the start's slots are otherwise (J at x0 is then written by
    Python)."""
    slots = layout.slots
    x0, f0, j0 = (slots.get((var, ())) for var in ("x0", "f0", "j0"))
    if x0 is None or f0 is None or j0 is None or len(j0.shape) != 3 or j0.tag < 0:
        return None
    m, n = j0.shape[1], j0.shape[2]
    if not all(v.buffer == "F" and v.kind == "f" and v.tag < 0 and v.shape == shape
               and v.strides in ((0, 1), (shape[1], 1))
               for v, shape in ((x0, (1, n)), (f0, (1, m)))):
        return None
    if j0.buffer != "F" or j0.kind != "f" or j0.shape[0] != 1:
        return None
    return {"X0": x0.offset, "F0": f0.offset, "J0": j0.offset, "J0_TAG": j0.tag}
