"""``curve_fit_batch`` on the per-problem kernel: the model compiled to C with its exact
Jacobian, the LM core's steps emitted as C, one whole fit per problem in cache.

The batch's other executors (the host's NumPy arrays, XLA's fused kernels) run every
iteration as passes over (K, ...) arrays in memory; a small fit's whole state fits in cache,
so one fit per problem, as Cpufit runs them, costs a fraction (docs/batch.md). The kernel
(``_backend/numpy/native_kernel``) is built from two pieces, neither a second LM loop:

* the model: ``marquardt._model_capture.capture_model`` records a NumPy or TensorFlow
  curve model that is one closed-form expression per point (``a*np.exp(-b*t) + c``, a 2-D
  Gaussian) as a formula tree, checks it against the model at the starts, and
  ``native_formula`` writes it and its symbolic partials as C;
* the iteration: the core's steps (``marquardt._core.iteration``) traced for one problem of
  the batch's configuration and emitted as C by the single-fit emitter.

What the model's capture changes (``plan``): a model captured with ``jac='auto'`` (for a
TensorFlow model also ``'forward'`` and ``'reverse'``) in float64 is fitted with its exact
Jacobian. For a TensorFlow model that is what autodiff gives; a NumPy model gets it where the
host would difference it (``nfev`` counts no calls for Jacobians, ``LoopConfig.jac_nfev`` 0),
on the host executor (``curve_jacobian``, vectorised over the problems) until its kernel
runs. The capture depends on the model and the arguments only, so the results do not depend
on the machine or on what ran before: the executors agree to rounding.

Where the kernel runs (``kernel_for``): a C compiler exists, the configuration has a kernel
(Nielsen's or trainlm's λ: ``Unsupported`` for a trust radius), ``MARQUARDT_NATIVE`` does not
turn the native executors off, and the model is not a TensorFlow model on a GPU (the compiled
executor runs there); ``curve_fit_batch(kernel=True)`` asks for it now (an error where it
cannot run), ``kernel=False`` never.

Which executor pays off depends on what follows, as for single fits (``marquardt._tiering``'s
ski-rental rule): a TensorFlow model's kernel (capture ~20-100 ms, emission and ``cc``
~1-2 s, once per machine: then on disk) replaces XLA's compilation of the batch step
(6-9 s), so it is built at once. A NumPy model runs on the host without compiling anything,
so its kernel is built (unless built already in this process: a TensorFlow model of the
same expression, or an earlier call with ``kernel=True``, bought it) once the host has
evaluated ``LOAD_POINTS`` (the kernel on disk
already: the emission only) or ``COMPILE_POINTS`` (not on disk: the compilation too) data
points for this model and configuration, counted in point evaluations (nfev × m) so that
the threshold does not depend on the machine's load. The kernel's threads: ``workers``, or
by default one per core (no user code runs in them) with at least
``MIN_PROBLEMS_PER_THREAD`` problems each.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from typing import Any, Callable, NamedTuple

import numpy as np

from marquardt._options import AUTODIFF_MODES, with_jacobian_calls

__all__ = ["COMPILE_POINTS", "LOAD_POINTS", "MIN_PROBLEMS_PER_THREAD", "Plan", "plan",
           "kernel_for", "pay", "solve", "STATS"]

#: Host point evaluations (nfev × m, summed over a NumPy model's batches of one configuration)
#: after which its kernel is compiled: ``cc``'s ~1 s for a kernel (2-D Gaussian, 2-core
#: machine) over the host executor's ~350 ns a point evaluation (10,000 Gaussians of 5×5
#: pixels with the captured Jacobian, 1.6 M point evaluations: 0.57 s, 2026-12-05): the third
#: call of such a batch compiles.
COMPILE_POINTS = 3_000_000

#: The same where the kernel is on disk already: its emission (~0.12 s) only.
LOAD_POINTS = 400_000

#: Fewest problems per thread of the kernel's default thread count (a thread's start costs
#: ~50 µs, a 2-D Gaussian fit ~7 µs).
MIN_PROBLEMS_PER_THREAD = 256

#: Kernels kept in memory (each holds a loaded shared object).
_KEEP = 16

#: Problems solved by the kernel in this process, and calls (for tests and benchmarks).
STATS = {"problems": 0, "calls": 0}

_KERNELS: OrderedDict = OrderedDict()  # key -> (BatchKernel, or None where it cannot be; why)
_RENT: dict = {}  # key -> host point evaluations
_LOCK = threading.Lock()


class Plan(NamedTuple):
    """A captured model: its C (what its kernels are keyed on), what it is written with, and
    its exact Jacobian in ``curve_fit``'s convention for the host executor."""

    source: str  # the model's C (``native_formula.cmodel_source``)
    backend: str
    jacobian: Callable  # jac(xdata, *params): (..., m, n), parameters that broadcast


def plan(f: Callable, jac: Any, backend: str, f_dtype, dtype, x: np.ndarray, shared_x: bool,
         p0: np.ndarray, todo: np.ndarray) -> tuple[Plan | None, str]:
    """The captured model where this call's Jacobian may be the captured one, else None and
    why. ``x``: the batch's xdata (shared, or per problem), ``p0``: (K, n) starts, ``todo``:
    the problems to solve (non-empty). Depends on the model and the arguments only, never on
    the machine (a compiler, a GPU): the results are the same, to rounding, whichever
    executor then runs."""
    if backend not in ("numpy", "tensorflow"):
        return None, f"a model written with {backend} is not captured"
    if np.dtype(dtype) != np.float64 or np.dtype(f_dtype) != np.float64:
        return None, "the kernel computes in float64 only"
    if not (jac == "auto" or (backend == "tensorflow" and jac in AUTODIFF_MODES)):
        return None, (f"jac={jac!r}: the kernel uses the model's exact Jacobian "
                      "(jac='auto')")
    from marquardt._model_capture import capture_model
    one = x if shared_x else x[todo[0]]
    shape = (np.shape(one), p0.shape[1])
    if backend == "tensorflow":  # its graph traced again costs 10-30 ms a call: kept per f
        known = _known_plan(f, shape)
        if known is not None and _agrees(known[0], f, one, p0[todo[0]]):
            return known[1], ""
    model = capture_model(f, one, p0[todo], backend=backend)
    if model is None:
        return None, ("`f` is not one closed-form expression of the parameters and the "
                      "points that the kernel can compile (marquardt._model_capture)")
    from marquardt._backend.numpy.native_formula import cmodel_source
    answer = Plan(cmodel_source(model, typedef=False), backend,
                  curve_jacobian(model, one_row=np.ndim(one) == 1))
    if backend == "tensorflow":
        try:
            _TF_PLANS[f] = (shape, model, answer)
        except TypeError:  # not weakly referable: captured at every call
            pass
    return answer, ""


#: A TensorFlow model's captured tree and plan, per model function (weakly: forgotten with
#: it) and shape, re-checked at one start per call (``_agrees``) instead of traced again.
_TF_PLANS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _known_plan(f, shape):
    try:
        known = _TF_PLANS.get(f)
    except TypeError:
        return None
    return None if known is None or known[0] != shape else known[1:]


def _agrees(model, f, x, p) -> bool:
    """The captured tree still gives ``f``'s values at ``p`` (the capture's own check,
    ``_model_capture.RTOL``, at one start): a closure's constant changed since is caught."""
    from marquardt._backend.tensorflow.host_functions import call_with_tensors
    from marquardt._model_capture import RTOL
    try:
        with np.errstate(all="ignore"):
            ref = np.asarray(call_with_tensors(f, x, *np.asarray(p, np.float64)))
            got = model.values(x, p)
    except Exception:  # noqa: BLE001 - not the model it was: capture it again
        return False
    return ref.shape == got.shape and bool(np.isclose(got, ref, rtol=RTOL, atol=0.0,
                                                      equal_nan=True).all())


def curve_jacobian(model, one_row: bool) -> Callable:
    """The captured partials as ``jac(xdata, *params)``: xdata itself the one variable
    (``one_row``) or its rows the variables; the parameters scalars or (k, 1) columns, as the
    host executor passes them for k problems (then (k, m, n))."""
    from marquardt._formula_jacobian import evaluate

    def jac(xdata, *params):
        x = np.asarray(xdata, dtype=np.float64)
        rows = [x] if one_row else [x[i] for i in range(len(model.variables))]
        env = {**dict(zip(model.variables, rows)),
               **{name: np.asarray(v, dtype=np.float64)
                  for name, v in zip(model.parameters, params)}}
        memo: dict = {}
        with np.errstate(all="ignore"):
            columns = [np.asarray(evaluate(tree, env, memo), dtype=np.float64)
                       for tree in model.partials]
        shape = np.broadcast_shapes(np.shape(rows[0]), *(c.shape for c in columns),
                                    *(np.shape(v) for v in params))
        return np.stack([np.broadcast_to(c, shape) for c in columns], axis=-1)
    return jac


def exact_config(cfg, n: int, max_nfev_given: bool):
    """``cfg`` with the kernel's exact Jacobian: no calls of the model counted per Jacobian."""
    return with_jacobian_calls(cfg, 0, n, max_nfev_given)


def kernel_for(p: Plan, cfg, m: int, n: int, now: bool = False) -> tuple[Any, str]:
    """The kernel of ``p``'s model for configuration ``cfg`` (the exact Jacobian's: see
    ``exact_config``), or None and why: the host or the compiled executor runs this call (a
    NumPy model whose rent is not paid yet, a configuration without a kernel, no working
    compiler, ``MARQUARDT_NATIVE=0``, a TensorFlow model on a GPU). ``now``: build it
    whatever the rent (``kernel=True``)."""
    from marquardt._backend.numpy import native_tier
    if not native_tier.wanted():
        return None, "MARQUARDT_NATIVE turns the native executors off"
    from marquardt._backend.numpy import native_kernel, native_load
    from marquardt._backend.numpy.native_slots import Unsupported
    if native_load.compiler() is None:
        return None, "no C compiler found (cc, gcc or clang; or $CC)"
    if p.backend == "tensorflow" and not now and _tensorflow_gpu():
        return None, "a TensorFlow model on a GPU runs on the compiled executor"
    key = (p.source, cfg, m, n)
    with _LOCK:
        if key in _KERNELS:
            _KERNELS.move_to_end(key)
            kernel, why = _KERNELS[key]
            return kernel, why
        rent = _RENT.get(key, 0)
    if p.backend == "numpy" and not now and rent < LOAD_POINTS:
        return None, "not paid for yet"
    try:
        kernel, why = native_kernel.build(
            cfg, m, n, p.source,
            compile=now or p.backend != "numpy" or rent >= COMPILE_POINTS), ""
    except native_load.NotCompiled:
        return None, "not on disk and not paid for yet"
    except (Unsupported, native_load.NativeUnavailable) as exc:
        kernel, why = None, str(exc)  # remembered: this configuration stays where it is
    with _LOCK:
        _KERNELS[key] = (kernel, why)
        while len(_KERNELS) > _KEEP:
            _KERNELS.popitem(last=False)
    return kernel, why


def pay(p: Plan, cfg, m: int, n: int, nfev: np.ndarray) -> None:
    """Counts the host's point evaluations of a call that ran there (``nfev`` per problem)."""
    with _LOCK:
        key = (p.source, cfg, m, n)
        _RENT[key] = _RENT.get(key, 0) + int(np.sum(nfev, dtype=np.int64)) * m
        while len(_RENT) > 4 * _KEEP:
            del _RENT[next(iter(_RENT))]


def solve(kernel, x: np.ndarray, shared_x: bool, y: np.ndarray, present: np.ndarray,
          inv_sigma, p0: np.ndarray, lb: np.ndarray, ub: np.ndarray, d_fixed: np.ndarray,
          todo: np.ndarray, store: Callable, workers) -> None:
    """Problems ``todo`` on the kernel, their final states handed to ``store(idx, state, grad,
    cov, ok)`` as the host executor's are (with the kernel's gradients and, where ``ok``,
    covariances: ``BatchOutputs.store``). Missing points (``present`` False) weigh 0, as on
    the host."""
    from marquardt._backend.numpy import native_kernel
    all_present = bool(present[todo].all())
    w = None
    if not all_present or inv_sigma is not None:
        w = present[todo].astype(np.float64)
        if inv_sigma is not None:
            w = w * np.broadcast_to(inv_sigma, present.shape)[todo]
    yk = np.where(present[todo], y[todo], 0.0) if not all_present else y[todo]
    d = np.broadcast_to(d_fixed, (p0.shape[0], p0.shape[1]))[todo]
    state, grad, cov, ok = native_kernel.solve(
        kernel, x if shared_x else x[todo], yk, w, p0[todo], lb[todo], ub[todo],
        threads=_threads(workers, todo.size), d_fixed=d, shared_x=shared_x, outputs=True)
    with _LOCK:
        STATS["problems"] += int(todo.size)
        STATS["calls"] += 1
    store(todo, state, grad, cov, ok)


def _threads(workers, k: int) -> int:
    """``workers`` threads (-1: one per core), or by default one per core with at least
    ``MIN_PROBLEMS_PER_THREAD`` problems each."""
    from marquardt._batch_inputs import check_workers
    if workers is not None:
        return max(1, min(check_workers(workers), k))
    cores = check_workers(-1)
    return max(1, min(cores, k // MIN_PROBLEMS_PER_THREAD))


def _tensorflow_gpu() -> bool:
    """Whether TensorFlow sees a GPU (then a TensorFlow model's batch stays on XLA)."""
    from marquardt._backend.tensorflow.batch_stepper import sees_gpu
    return sees_gpu()


def reset() -> None:
    """Forgets the kernels and the rent (the tests' fresh start)."""
    with _LOCK:
        _KERNELS.clear()
        _RENT.clear()
        STATS.update(problems=0, calls=0)
