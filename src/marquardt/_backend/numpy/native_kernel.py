"""A per-problem batch kernel: the core's steps for one problem, emitted as C from the trace,
looped over K problems in C with the model in C (issue #13, result 2).

``curve_fit_batch`` on the host runs the core over K problems as NumPy array operations, and
its XLA executor as fused kernels: either way every iteration makes passes over (K, ·) arrays
in memory. Cpufit's design runs one whole fit per problem with its state in cache; this module
builds that from the one LM core (``marquardt._core.iteration``), not from a second loop:

* the steps (``start``, ``begin``, ``attempt``, ``judged``, ``end``: ``native_steps.STEPS``)
  are traced for one problem of the batch's shapes and configuration on a synthetic problem
  (``_record``: the trace is specialised on shapes, types and the configuration, never on the
  values), and emitted as C by the single-fit emitter (``native_emit``; the Cholesky solvers'
  branch as a C ``if``, ``native_ops``);
* the text is compiled with the kernel's prelude (``native_prelude.prelude(kernel=True)``:
  plain ``+``/``*``, products as C loops, no BLAS call) at ``FLAGS`` (``-O2``): results equal
  the host executor's to rounding, not bit for bit (the single fit's emission keeps the
  trace's bits with ``-O1``, ``mq_add``/``mq_mul`` and NumPy's BLAS calls, 5-8 times the
  instructions at this size);
* ``mq_kernel_solve``, the C entry, loops over problems k in [k0, k1): writes problem k's
  start, bounds and D into per-call buffers (``F``, ``I``: ``native_slots``' layout,
  ``calloc``'d per call, so that calls share nothing), evaluates r and J at the start with
  the model, runs ``native_cloop``'s loop (the same order of steps and copies) with the model
  called in C, and stores the final ``LoopState`` in the output rows. No history, no
  callback; no global mutable state (the library's routine pointers are set once at load;
  the LAPACK workspace sizes are atomic), so Python threads may call it on disjoint ranges at
  once (``ctypes.CDLL`` releases the GIL): ``solve(..., threads=2)``.

The model is C with the contract (``MODEL_CONTRACT``): ``mq_cmodel(p, d, r, J)`` writes
r[i] = (f(x_i; p) − y[i]) w_i and, where J is not NULL, J[i n + j] = w_i ∂f(x_i; p)/∂p_j
(row-major m × n); w NULL means 1; it returns 0 (nonzero: the problem stops, code 1).
Problem k's data: x = xdata + k · x_stride (0 where x is shared; ``x_row`` the distance
between its rows), y = ydata + k m, w = wdata + k m (or shared, or NULL).
"""

from __future__ import annotations

import ctypes
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np

from marquardt._backend.numpy import native_load, native_prelude, native_steps
from marquardt._backend.numpy.native_emit import Emitted, emit_step
from marquardt._backend.numpy.native_kernel_c import driver
from marquardt._backend.numpy.native_slots import Layout, Unsupported
from marquardt._core import host
from marquardt._core.functions import Evaluator
from marquardt._core.records import LoopConfig, LoopState, replaced

__all__ = ["FLAGS", "MODEL_CONTRACT", "BatchKernel", "build", "solve"]

#: The kernel's compiler flags: ``-O2`` (the optimiser may schedule the plain operators;
#: no ``-ffast-math``: IEEE semantics, NaN and inf as the core expects them);
#: ``-fno-math-errno``: ``sqrt`` one instruction (nothing reads ``errno``).
FLAGS = ("-O3", "-funroll-loops", "-fno-math-errno", "-fPIC", "-shared")

#: The model's C declaration (the data record and the function the kernel calls).
MODEL_CONTRACT = """typedef struct { const double *x; long x_row; const double *y; const double *w;
                 long m; } mq_data;
static int mq_cmodel(const double *p, const mq_data *d, double *r, double *J);"""

_FIELDS = LoopState._fields
_BUILT: dict = {}  # (cfg, m, n, model source) -> BatchKernel: built once per process
_BUILT_MAX = 32
_RANGES_PER_THREAD = 4
_LOCK = threading.Lock()
_BUILDING = threading.Lock()  # held while a kernel is traced, emitted and compiled
_INT_FIELDS = ("nfev", "njev", "nit", "status")


class BatchKernel(NamedTuple):
    """A compiled kernel: its configuration, sizes, entry, the output row layout (per field
    of ``LoopState``: (buffer 'F' or 'I', offset, per-problem shape)), and its C text."""

    cfg: LoopConfig
    m: int
    n: int
    entry: object
    fields: tuple
    row_f: int
    row_i: int
    source: str


def _record(cfg: LoopConfig, m: int, n: int) -> tuple[dict, dict]:
    """The traced steps and their first calls' arguments, from a fit of a synthetic problem
    of ``m`` residuals and ``n`` parameters (r = A p + ½ sin(A p) − y)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, n))
    y = a @ np.ones(n) + 0.5 * np.sin(a @ np.ones(n)) + 0.01 * rng.standard_normal(m)

    def residual(x, problems=None):
        z = x @ a.T
        return z + 0.5 * np.sin(z) - y

    def jacobian(x, r=None, problems=None):
        z = x @ a.T
        return np.ascontiguousarray(a[None] * (1.0 + 0.5 * np.cos(z))[..., None])

    ev = Evaluator(residual=residual,
                   residual_and_jacobian=lambda x, p=None: (residual(x), jacobian(x)),
                   jacobian=jacobian)
    x0 = np.zeros((1, n))
    lb, ub = (np.full((1, n), -10.0), np.full((1, n), 10.0)) if cfg.bounded else (
        np.full((1, n), -np.inf), np.full((1, n), np.inf))
    d_fixed = np.ones((1, n))
    f0, j0 = residual(x0), jacobian(x0)
    steps = host._steps(cfg, x0, f0, j0, lb, ub, d_fixed)
    if steps is None:
        raise Unsupported("this configuration runs eagerly (a callable loss)")
    calls: dict = {}

    def recorder(step, name):
        def call(*args):
            calls.setdefault(name, args)
            return step(*args)
        return call
    rec = host._Steps(*(None if s is None else recorder(s, name)
                        for name, s in zip(host._Steps._fields, steps)))
    with host._quiet():
        state = rec.start(x0, f0, j0, lb, ub, d_fixed)
    host._run_one(cfg, rec, ev, state, lb, ub, d_fixed, None)
    compiled = {name: s.compiled for name, s in zip(host._Steps._fields, steps)
                if s is not None and s.compiled is not None}
    needed = {"start", "begin", "attempt", "judged", "end"}
    if not needed <= set(compiled) & set(calls):
        raise Unsupported("a step runs eagerly or was not called")
    return compiled, calls


def _emit_row_major(name: str, step, args, layout: Layout) -> Emitted:
    """Step ``name`` for row-major Jacobians only: the kernel's model writes J row-major and
    its loop copies J row-major (the single fit's emission also makes a variant per memory
    order of each matrix, ``native_steps._emit_variants``: half the code to compile here).
    ``step_<name>`` checks the order tags of the matrices it reads (2: another order)."""
    in_vars, out_vars = native_steps.STEPS[name]
    groups = native_steps._matrix_groups(args, in_vars)
    rows = {id(obj): native_steps._in_order(obj, 0) for obj, _ in groups}
    e = emit_step(name, step.fn, step.source, native_steps._replaced(args, rows), in_vars,
                  out_vars, layout, suffix="_0")
    tags = sorted({layout.slots[key].tag for _, keys in groups for key in keys
                   if key in e.loaded})
    check = " || ".join(f"I[{t}]" for t in tags) or "0"
    return e._replace(text=e.text + f"static inline int step_{name}(double *F, int64_t *I) "
                                    f"{{ return ({check}) ? 2 : step_{name}_0(F, I); }}\n")


def build(cfg: LoopConfig, m: int, n: int, model_source: str, compile: bool = True  # noqa: A002
          ) -> BatchKernel:
    """The kernel of configuration ``cfg`` for problems of ``m`` residuals and ``n``
    parameters, with the model ``model_source`` (C defining ``mq_cmodel``, see
    ``MODEL_CONTRACT``); kept per process (a second call costs a dictionary look-up; the
    compiled object is also on disk, ``native_load``).

    Raises:
        Unsupported: the configuration has no kernel (a trust radius's ``refit``, a callable
            loss, an operation without a C form).
        native_load.NativeUnavailable: no compiler, or the compilation failed.
        native_load.NotCompiled: ``compile`` is false and the object is not on disk.
    """
    if cfg.damping.needs_spectrum:
        raise Unsupported("a trust radius (its refit step): the kernel runs Nielsen's or "
                          "trainlm's λ")
    cfg = replaced(cfg, callback=None, record_history=False)
    key = (cfg, m, n, model_source)
    with _LOCK:
        kernel = _BUILT.get(key)
    if kernel is not None:
        return kernel
    with _BUILDING:  # one build at a time (``ast.parse`` in threads: CPython 3.11's
        with _LOCK:  # "AST constructor recursion depth mismatch"; a second would repeat it)
            kernel = _BUILT.get(key)
        if kernel is None:
            kernel = _build(cfg, m, n, model_source, compile)
    with _LOCK:
        _BUILT[key] = kernel
        while len(_BUILT) > _BUILT_MAX:  # the oldest goes
            _BUILT.pop(next(iter(_BUILT)))
    return kernel


def _build(cfg: LoopConfig, m: int, n: int, model_source: str, compile: bool  # noqa: A002
           ) -> BatchKernel:
    compiled, calls = _record(cfg, m, n)
    blas = native_load.blas()
    layout = Layout()
    emitted, texts = {}, []
    for name in native_steps.STEPS:
        if name == "refit":
            continue
        emitted[name] = _emit_row_major(name, compiled[name], calls[name], layout)
        texts.append(emitted[name].text)
    loop, fields, row_f, row_i = driver(layout, emitted, m, n)
    source = (native_prelude.prelude(blas.ilp64, kernel=True) + "\n" + MODEL_CONTRACT + "\n"
              + model_source + "\n" + "\n".join(texts) + loop)
    lib = native_load.load(source, compile, FLAGS)
    native_prelude.init(lib, blas)
    entry = lib.mq_kernel_solve
    entry.argtypes = [ctypes.c_long, ctypes.c_long] + [ctypes.c_void_p, ctypes.c_long,
                                                        ctypes.c_long] + [ctypes.c_void_p] * 2 + [
        ctypes.c_long] + [ctypes.c_void_p] * 6
    entry.restype = ctypes.c_int
    return BatchKernel(cfg, m, n, entry, tuple(fields), row_f, row_i, source)


def _ptr(a) -> ctypes.c_void_p:
    return ctypes.c_void_p(None if a is None else a.ctypes.data)


def solve(kernel: BatchKernel, xdata, ydata, w, p0, lb=None, ub=None, threads: int = 1,
          d_fixed=None, shared_x: bool | None = None, outputs: bool = False):
    """Fit the K problems: ``ydata`` (K, m), ``p0`` (K, n) (or (n,) for all), ``xdata`` shared
    ((m,) or (k, m)) or per problem ((K, m) or (K, k, m); ``shared_x`` decides where the
    shapes do not), ``w`` None, (m,) or (K, m); ``lb``, ``ub`` (K, n), (n,) or None (±inf);
    ``d_fixed`` the damping diagonal of a fixed scaling ((K, n) or (n,); default ones);
    ``threads``: that many Python threads solving contiguous ranges of problems side by side
    (four ranges per thread where there are enough problems, for balance).

    Returns:
        The final ``LoopState`` of every problem, batched ((K, ...) arrays; the counts and
        status int32), as ``host.run`` returns it (``_batch_results.BatchOutputs.store``
        takes it); with ``outputs``, also the gradients Jᵀr (K, n), the covariances (K, n, n)
        and where they hold (K,) bool (``native_kernel_c``'s ``mq_kernel_covariance``: the
        direct route of ``_covariance.unscaled_covariances``; False: take NumPy's). Problems the C loop could not finish (the model returned nonzero, LAPACK
        did not converge) raise.
    """
    m, n = kernel.m, kernel.n
    y = np.ascontiguousarray(ydata, dtype=np.float64)
    if y.ndim != 2 or y.shape[1] != m:
        raise ValueError(f"`ydata` must have shape (K, {m}). Received: shape {np.shape(ydata)}")
    k_all = y.shape[0]
    x = np.ascontiguousarray(xdata, dtype=np.float64)
    if shared_x is None:
        shared_x = not (x.ndim >= 2 and x.shape[0] == k_all and x.shape[-1] == m
                        and x.size == k_all * m * (1 if x.ndim == 2 else x.shape[1]))
        if x.ndim == 1:
            shared_x = True
    per = x.reshape(1, -1, m) if shared_x else x.reshape(k_all, -1, m)
    x_stride, x_row = (0 if shared_x else per.shape[1] * m), m
    rows = lambda a, fill: np.ascontiguousarray(  # noqa: E731
        np.broadcast_to(np.full(n, fill) if a is None else np.asarray(a, np.float64),
                        (k_all, n)))
    p = rows(p0, 0.0)
    lo, hi = rows(lb, -np.inf), rows(ub, np.inf)
    d = rows(d_fixed, 1.0)
    wk, w_stride = None, 0
    if w is not None:
        wk = np.ascontiguousarray(w, dtype=np.float64)
        w_stride = m if wk.ndim == 2 else 0
    out_f = np.empty((k_all, kernel.row_f))
    out_i = np.empty((k_all, kernel.row_i), np.int64)
    args = (_ptr(per), x_stride, x_row, _ptr(y), _ptr(wk), w_stride, _ptr(p), _ptr(lo),
            _ptr(hi), _ptr(d), _ptr(out_f), _ptr(out_i))
    threads = max(1, min(int(threads), k_all))
    if threads == 1:
        codes = [kernel.entry(0, k_all, *args)]
    else:  # a few ranges per thread: a range of slow fits (noise) does not hold one back
        parts = threads * _RANGES_PER_THREAD if k_all >= 64 * threads else threads
        bounds = np.linspace(0, k_all, parts + 1).astype(int)
        with ThreadPoolExecutor(threads) as pool:
            codes = list(pool.map(lambda i: kernel.entry(int(bounds[i]), int(bounds[i + 1]),
                                                         *args), range(parts)))
    if any(codes):
        raise RuntimeError(f"the batch kernel could not allocate its buffers (code {codes})")
    failed = out_i[:, -1]
    if np.any((failed != 0) & (failed != 3)):
        k = int(np.flatnonzero((failed != 0) & (failed != 3))[0])
        what = "the model returned nonzero" if failed[k] == 1 else "LAPACK did not converge"
        raise RuntimeError(f"problem {k}: {what} (code {int(failed[k])})")
    state = []
    for name, (buffer, offset, shape) in zip(_FIELDS, kernel.fields):
        size = int(np.prod(shape)) if shape else 1
        src = out_f if buffer == "F" else out_i
        v = src[:, offset:offset + size].reshape((k_all,) + tuple(shape))
        # views of the rows, which they keep alive (J of 10,000 Gaussians is 10 MB: no copy),
        # the counts as the int32 the core's state holds
        state.append(v.astype(np.int32) if name in _INT_FIELDS else v)
    if not outputs:
        return LoopState(*state)
    at = kernel.row_f - (n + n * n + 1)  # the driver's g, cov, ok (``mq_kernel_covariance``)
    return (LoopState(*state), out_f[:, at:at + n],
            out_f[:, at + n:at + n + n * n].reshape(k_all, n, n),
            out_f[:, at + n + n * n] == 1.0)
