"""``curve_fit_batch`` on Dask arrays: one in-memory ``curve_fit_batch`` per block of problems.

A ``ydata`` that is a Dask array of shape (K, m), chunked over the K problems, gives a result
whose per-problem fields are Dask arrays of the same problem chunks: nothing is read or solved
until they are computed (``dask.compute(res.x, res.stderr, res.status)``), and then each block
of problems is one call of the in-memory ``curve_fit_batch`` (``_batch.fit``) on a worker,
with the executor it would use in memory (NumPy host, or TensorFlow's compiled streams).

The graph: one task per block solves it and returns the in-memory result (a dict); each field
of the Dask result is a light task per block that takes its field out. Fields computed
together share the solve; fields computed one after the other solve twice (docs/dask.md).
The ``message`` field is a Dask array of strings, formatted only when it is computed.

Per-problem arguments (``p0`` (K, n), ``sigma`` (K, m), bounds (K, n), ``xdata`` (K, m) or
(K, k, m)), as Dask or NumPy arrays, are rechunked to ``ydata``'s problem chunks; shared ones
are small NumPy constants of the graph (a shared argument given as a Dask array is computed).
A ``ydata`` chunked along its points is rechunked to one chunk per row (a block needs whole
problems); one with unknown chunk sizes is refused. Whether the core projects on bounds
(``LoopConfig.bounded``) is decided once for the call, as the in-memory call decides it for
all its problems: from NumPy bounds, True for Dask bounds (not read before the blocks run;
with all-infinite bounds the projection changes nothing). Errors raised by a block (bad
values, ``f`` failing) name the block's range of problems.

Dask is imported only when a Dask array reaches ``curve_fit_batch``; ``is_dask_array`` asks
``sys.modules``, as ``_xp`` does for TensorFlow: a Dask array cannot exist before Dask is
imported.

On a ``dask.distributed`` cluster, the model arrives in each task as a fresh unpickled copy;
the compiled TensorFlow solve is cached per model *object* (``_backend/tensorflow/driver``),
so ``_same_model`` maps each copy to the first one that worker process saw (keyed by the
model's pickled bytes): the solve is compiled once per worker process, not once per block.
"""

from __future__ import annotations

import collections
import hashlib
import sys
import threading
from typing import Any, Callable, NamedTuple

import numpy as np

from marquardt import _checks

__all__ = ["is_dask_array", "curve_fit_batch", "result_fields"]


def is_dask_array(a: Any) -> bool:
    """Whether ``a`` is a Dask array (Dask is not imported here)."""
    module = sys.modules.get("dask.array")
    return module is not None and isinstance(a, module.Array)


def result_fields(n: int, m: int) -> dict:
    """``curve_fit_batch``'s per-problem result fields, in its order: name -> (shape after
    the problem axis, dtype)."""
    f8, i4, i8 = np.dtype(np.float64), np.dtype(np.int32), np.dtype(np.int64)
    return {"x": ((n,), f8), "cov": ((n, n), f8), "stderr": ((n,), f8), "cost": ((), f8),
            "chisq": ((), f8), "dof": ((), i8), "redchi": ((), f8), "fun": ((m,), f8),
            "optimality": ((), f8), "status": ((), i4), "success": ((), np.dtype(bool)),
            "nfev": ((), i4), "njev": ((), i4), "nit": ((), i4),
            "message": ((), np.dtype(object)), "npoints": ((), i8)}


class _Plan(NamedTuple):
    """What every block task needs besides its per-problem blocks (pickled into the graph)."""

    f: Callable
    jac: Any
    model_key: Any             # ``_same_model``'s key
    per_problem: tuple         # names of the per-problem arguments, in the task's order
    shared: dict               # name -> value of the shared arguments
    settings: dict             # the keyword arguments of ``_batch.fit``


def curve_fit_batch(f, xdata, ydata, p0=None, *, sigma=None, absolute_sigma=False,
                    bounds=(-np.inf, np.inf), jac="auto", nan_policy="raise", shared_x=None,
                    chunk_size=None, jit_compile=True, dtype="float64", workers=None,
                    kernel=None, **options):
    """``marquardt.curve_fit_batch`` for a Dask ``ydata`` (its docstring and docs/dask.md):
    the same arguments and result fields, each field a Dask array chunked like ``ydata``'s
    problems. Checked now: everything that needs no data values (shapes, options, the
    parameter count); checked when computed, by each block: the values (NaN, bounds, ``f``'s
    output), with the block's problem range in the message."""
    from marquardt import _batch

    if chunk_size is None:
        chunk_size = _batch.DEFAULT_CHUNK_SIZE
    chunk_size = _batch.check_settings(f, jac, nan_policy, shared_x, chunk_size, jit_compile,
                                       options, dtype, kernel)
    from marquardt._batch_inputs import check_workers
    check_workers(workers)
    y = _problem_blocks(ydata)
    args = _Arguments(y, f)
    args.start_values(p0)
    _batch._loop_config(options, args.n, False)  # every option checked before any block runs
    x_shared = args.xdata(xdata, shared_x, nan_policy)
    args.sigma(sigma, nan_policy)
    bounded = args.bounds(bounds)
    settings = dict(absolute_sigma=absolute_sigma, jac=jac, nan_policy=nan_policy,
                    shared_x=x_shared, chunk_size=chunk_size, jit_compile=jit_compile,
                    dtype=dtype, bounded=bounded, workers=workers, kernel=kernel, **options)
    plan = _Plan(f, jac, _model_key(f, jac), tuple(args.per_problem), args.shared, settings)
    return _lazy_result(y, args, plan)


class _Arguments:
    """The arguments of a Dask call, checked, sorted into per-problem Dask arrays with
    ``y``'s problem chunks (``per_problem``) and shared NumPy values (``shared``)."""

    def __init__(self, y, f):
        self.y, self.f = y, f
        self.k_all, self.m = y.shape
        self.n = None
        self.per_problem: dict = {}
        self.shared: dict = {}

    def along_problems(self, name: str, value) -> None:
        import dask.array as da

        chunks = (self.y.chunks[0],) + (-1,) * (value.ndim - 1)
        self.per_problem[name] = (value.rechunk(chunks) if is_dask_array(value)
                                  else da.from_array(value, chunks=chunks))

    def start_values(self, p0) -> None:
        """p0 decides n: (K, n) per problem, else (n,) shared (None: ones, n from ``f``'s
        signature)."""
        from marquardt._curve_data import check_enough_points
        from marquardt._parameters import prepare_p0

        k_all = self.k_all
        if is_dask_array(p0) and p0.ndim == 2:
            if p0.shape[0] != k_all:
                raise ValueError(f"`p0` must have shape (n,) or (K, n) with K={k_all} "
                                 f"problems. Received: p0 with shape {p0.shape}")
            self.n = p0.shape[1]
            prepare_p0(np.zeros(self.n), self.f)  # n against f's signature
            self.along_problems("p0", p0)
        else:
            start = prepare_p0(_small(p0), self.f, batch=k_all if np.ndim(p0) == 2 else None)
            self.n = start.shape[-1]
            if start.ndim == 2:
                self.along_problems("p0", start)
            else:
                self.shared["p0"] = start
        check_enough_points(self.m, self.n, per_problem=True)

    def xdata(self, xdata, shared_x, nan_policy: str = "raise") -> bool:
        """Returns whether x is shared (then a NumPy constant of the graph). With
        ``nan_policy='omit'`` a NaN in x is each block's to omit (``prepare_xdata``)."""
        from marquardt import _batch_inputs as _inputs

        if is_dask_array(xdata) and not _inputs.xdata_is_shared(xdata.shape, self.k_all,
                                                                 self.m, shared_x):
            self.along_problems("xdata", xdata)
            return False
        x = _small(xdata)
        if nan_policy == "omit":  # checked here apart from its NaN; each block omits those
            x = _checks.as_float_array(x, "xdata")
            _checks.check_finite(np.where(np.isnan(x), 0.0, x), "xdata")
            x_shared = _inputs.xdata_is_shared(x.shape, self.k_all, self.m, shared_x)
        else:
            x, x_shared, _ = _inputs.prepare_xdata(x, self.k_all, self.m, shared_x)
        if x_shared:
            self.shared["xdata"] = x
        else:
            self.along_problems("xdata", x)
        return x_shared

    def sigma(self, sigma, nan_policy: str = "raise") -> None:
        from marquardt import _batch_inputs as _inputs

        k_all, m = self.k_all, self.m
        if is_dask_array(sigma) and sigma.ndim == 2:
            if sigma.shape != (k_all, m):
                raise ValueError(f"`sigma` must have shape (m,) or (K, m) with K={k_all}, "
                                 f"m={m}. Received: sigma with shape {sigma.shape}")
            self.along_problems("sigma", sigma)
        elif sigma is None:
            self.shared["sigma"] = None
        else:
            s = _checks.as_float_array(_small(sigma), "sigma", ndim=(1, 2))
            # checks shape and values (a NaN may be at a point each block omits)
            _inputs.prepare_sigma(np.where(np.isnan(s), 1.0, s) if nan_policy == "omit" else s,
                                  k_all, m)
            if s.ndim == 2:
                self.along_problems("sigma", s)
            else:
                self.shared["sigma"] = s

    def bounds(self, bounds) -> bool:
        """Returns ``bounded`` for every block (see ``_bounds``); the shared p0 is checked
        against NumPy bounds now (against Dask bounds, each block checks its own)."""
        from marquardt._parameters import check_within_bounds

        lb, ub, bounded = _bounds(bounds, self.n, self.k_all)
        for name, b in (("lb", lb), ("ub", ub)):
            if np.ndim(b) == 2:
                self.along_problems(name, b)
            else:
                self.shared[name] = b
        if "p0" in self.shared and not is_dask_array(lb) and not is_dask_array(ub):
            check_within_bounds(self.shared["p0"], lb, ub, "p0")
        return bounded


def _lazy_result(y, args: _Arguments, plan: _Plan):
    """The graph: one ``_solve_block`` task per block of problems (``blockwise`` over the
    problem axis, index k), and one light ``_field`` task per block and field."""
    import dask.array as da

    from marquardt._result import OptimizeResult

    problem_chunks = y.chunks[0]
    # blockwise indices: k problems, j points (m), n parameters, i variables of x
    inputs = [da.arange(args.k_all, chunks=(problem_chunks,)), "k", y, "kj"]
    for name, value in args.per_problem.items():
        inputs += [value, "kn" if name in ("p0", "lb", "ub") else
                   ("kij" if value.ndim == 3 else "kj")]
    solved = da.blockwise(_solve_block, "k", *inputs, plan=plan, dtype=object,
                          meta=np.empty((0,), object), concatenate=True,
                          token="curve_fit_batch")
    token = solved.name.rsplit("-", 1)[-1]
    out = OptimizeResult()
    for name, (shape, dtype) in result_fields(args.n, args.m).items():
        out[name] = solved.map_blocks(
            _field, name, shape, dtype, dtype=dtype,
            chunks=(problem_chunks,) + tuple((s,) for s in shape),
            new_axis=list(range(1, 1 + len(shape))) or None,
            meta=np.empty((0,) * (1 + len(shape)), dtype),
            name=f"curve_fit_batch-{name}-{token}")
    return out


def _small(value):
    """A shared argument as NumPy (a Dask one is computed: it has no problem axis)."""
    return value.compute() if is_dask_array(value) else value


def _problem_blocks(ydata):
    """``ydata`` as a Dask array of whole problems: 2-D, real, known chunk sizes, one chunk
    along the points (rechunked if it had more)."""
    shape = ydata.shape
    if ydata.dtype.kind not in "biuf":
        raise TypeError(f"`ydata` must hold real numbers. Received: ydata with dtype "
                        f"{ydata.dtype} (a Dask array of shape {shape})")
    if ydata.ndim != 2:
        from marquardt import _batch_inputs as _inputs
        raise _inputs.ydata_ndim_error(shape)
    if any(np.isnan(c) for axis in ydata.chunks for c in axis):
        raise ValueError("`ydata` must have known chunk sizes (each block is one batch of whole "
                         "problems). Received: a Dask array with unknown chunk sizes "
                         f"{ydata.chunks}; call ydata.compute_chunk_sizes() first")
    if 0 in shape:
        raise ValueError(f"`ydata` must not be empty. Received: ydata with shape {shape}")
    if len(ydata.chunks[1]) > 1:  # a block must hold whole problems
        ydata = ydata.rechunk({1: -1})
    return ydata


def _bounds(bounds, n: int, k_all: int):
    """``(lb, ub, bounded)``: each bound NumPy (scalar, (n,) or (K, n)) or a (K, n) Dask
    array; ``bounded`` is whether any bound is finite (True with Dask bounds: their values
    are not read before the blocks run)."""
    from marquardt._parameters import prepare_bounds

    if bounds is None:
        bounds = (-np.inf, np.inf)
    if hasattr(bounds, "lb") and hasattr(bounds, "ub") and not isinstance(bounds, (tuple, list)):
        bounds = (bounds.lb, bounds.ub)
    if not isinstance(bounds, (tuple, list)) or len(bounds) != 2 \
            or not any(is_dask_array(b) and b.ndim == 2 for b in bounds):
        if isinstance(bounds, (tuple, list)):
            bounds = tuple(_small(b) for b in bounds)
        per_problem = isinstance(bounds, tuple) and any(np.ndim(b) == 2 for b in bounds)
        lb, ub = prepare_bounds(bounds, n, batch=k_all if per_problem else None)
        return lb, ub, bool(np.isfinite(lb).any() or np.isfinite(ub).any())
    import dask.array as da

    out = []
    for name, b in zip(("lb", "ub"), bounds):
        if not is_dask_array(b):  # NumPy beside a Dask (K, n) bound: checked now
            b = np.asarray(b, dtype=np.float64)
            if b.shape not in ((), (n,), (k_all, n)) or np.isnan(b).any():
                raise ValueError(f"`bounds` {name} must be a scalar, shape (n,) or (K, n) "
                                 f"with K={k_all}, n={n}, without NaN. Received: {name}="
                                 f"{_checks.short_repr(b)}")
            b = da.from_array(np.broadcast_to(b, (n,)) if b.ndim < 2 else b)
        if b.shape in ((), (n,)):
            b = da.broadcast_to(b, (k_all, n))
        elif b.shape != (k_all, n):
            raise ValueError(f"`bounds` {name} must be a scalar or have shape (n,) or "
                             f"(K, n) with K={k_all}, n={n}. Received: {name} with shape "
                             f"{b.shape}")
        out.append(b)
    return out[0], out[1], True


# --- on the workers --------------------------------------------------------------------------


def _model_key(f, jac):
    """The same key for every unpickled copy of one model (its pickled bytes); the objects'
    ids where the model cannot be pickled (it then runs in this process only)."""
    try:
        import cloudpickle
        return hashlib.sha256(cloudpickle.dumps((f, jac))).hexdigest()
    except Exception:  # any pickling failure: the model stays in this process
        return ("in-process", id(f), id(jac))


#: The model objects each key stands for in this process (at most ``MODELS_KEPT``).
_models: "collections.OrderedDict[Any, tuple]" = collections.OrderedDict()
_models_lock = threading.Lock()
MODELS_KEPT = 16


def _same_model(key, f, jac) -> tuple:
    """The ``(f, jac)`` this process first received under ``key``: the compiled solve, cached
    per model object, is then reused by every block of the model that runs here."""
    with _models_lock:
        if key in _models:
            _models.move_to_end(key)
            return _models[key]
        _models[key] = (f, jac)
        while len(_models) > MODELS_KEPT:
            _models.popitem(last=False)
        return f, jac


def _solve_block(problems: np.ndarray, y: np.ndarray, *blocks: np.ndarray, plan: _Plan):
    """One block: the in-memory ``curve_fit_batch`` of its problems (``problems``: their
    indices in the whole ``ydata``, for messages). None for an empty block."""
    if y.shape[0] == 0:
        return None
    from marquardt._batch import fit

    values = dict(plan.shared)
    values.update(zip(plan.per_problem, blocks))
    f, jac = _same_model(plan.model_key, plan.f, plan.jac)
    settings = dict(plan.settings, jac=jac)
    try:
        return fit(f, values["xdata"], y, values["p0"], sigma=values["sigma"],
                   bounds=(values["lb"], values["ub"]), **settings)
    except (ValueError, TypeError) as exc:
        raise type(exc)(f"{exc} [in the Dask block of problems {int(problems[0])} to "
                        f"{int(problems[-1])}; indices in this message count from the block's "
                        "first problem]") from exc


def _field(result, name: str, shape: tuple, dtype: np.dtype) -> np.ndarray:
    """One field of a block's result (its messages formatted now)."""
    if result is None:
        return np.empty((0, *shape), dtype)
    if name == "message":
        out = np.empty(len(result.message), object)
        out[:] = list(result.message)
        return out
    return np.asarray(result[name], dtype=dtype)
