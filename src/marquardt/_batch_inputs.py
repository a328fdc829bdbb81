"""Validation of ``curve_fit_batch``'s inputs: each bad argument gets an error naming it.

Every function returns the argument as the batch solve wants it (float64 NumPy arrays of the
documented shapes) or raises ``ValueError``/``TypeError`` with the argument's name, what was
expected and what was received. Start values and bounds are checked by ``_parameters``, with
the rules of ``curve_fit`` and ``least_squares`` plus the leading axis of K problems.
"""

from __future__ import annotations

import os

import numpy as np

from marquardt import _checks
from marquardt._curve_data import inverse_sigma
from marquardt._probe import first_call
from marquardt._values import is_jax_value, is_tensorflow_value
from marquardt._options import AUTODIFF_MODES
from marquardt._probe import FLOAT32_DTYPE_FIX, call_at_x0

__all__ = ["NAN_POLICIES", "check_nan_policy", "check_shared_x", "prepare_ydata",
           "prepare_xdata", "xdata_is_shared", "ydata_ndim_error", "prepare_sigma",
           "check_chunk_size", "probe"]

NAN_POLICIES = ("raise", "omit")


def check_nan_policy(nan_policy) -> None:
    if nan_policy not in NAN_POLICIES:
        raise ValueError(f"`nan_policy` must be one of {list(NAN_POLICIES)}. "
                         f"Received: nan_policy={nan_policy!r}")


def check_shared_x(shared_x) -> None:
    if shared_x not in (None, True, False):
        raise TypeError(f"`shared_x` must be None, True or False. Received: shared_x={shared_x!r}")


def prepare_ydata(ydata, nan_policy: str) -> tuple[np.ndarray, np.ndarray]:
    check_nan_policy(nan_policy)
    y = _checks.as_float_array(ydata, "ydata")  # (K, 0) or (0, m): "must not be empty"
    if y.ndim != 2:
        raise ydata_ndim_error(y.shape)
    nan = np.isnan(y)
    if nan.any() and nan_policy == "raise":
        raise ValueError("`ydata` must not contain NaN unless nan_policy='omit' (which marks "
                         f"NaN points as absent). Received: "
                         f"{_checks.entry(y, _checks.first_index(nan), 'ydata')} "
                         f"({int(nan.sum())} NaN value(s) in all)")
    inf = np.isinf(y)
    if inf.any():
        raise ValueError("`ydata` must not contain infinite values. Received: "
                         f"{_checks.entry(y, _checks.first_index(inf), 'ydata')} "
                         f"({int(inf.sum())} infinite value(s) in all)")
    return y, ~nan


def ydata_ndim_error(shape: tuple) -> ValueError:
    """The error for a ``ydata`` that is not 2-D, (K, m), with the reshape a user most likely
    needs: one problem given as (m,), or images (K, h, w) given unflattened."""
    if len(shape) == 1:
        hint = " (one problem: ydata[None], shape (1, m))"
    elif len(shape) > 2:
        hint = (" (images or other multi-dimensional problems: ydata.reshape(K, -1), with "
                "xdata's point axes flattened the same way)")
    else:
        hint = ""
    return ValueError(f"`ydata` must have 2 dimension(s), shape (K, m): one row of m points per "
                      f"problem{hint}. Received: ydata with shape {tuple(shape)}")


def prepare_xdata(xdata, k_all: int, m: int, shared_x, present: np.ndarray | None = None,
                  nan_policy: str = "raise") -> tuple[np.ndarray, bool, np.ndarray | None]:
    """``(x, shared_x, present)``. With ``nan_policy='omit'`` a point whose x holds a NaN is
    absent, as in SciPy's ``curve_fit`` (``present``, the points of ydata that are not NaN,
    loses it: for every problem where x is shared, for its problem where x is per problem);
    its x is replaced by a finite x of the same row, so that the model, evaluated at every
    point and weighted 0 there, stays finite. Infinite x is an error under either policy."""
    check_shared_x(shared_x)
    x = _checks.as_float_array(xdata, "xdata")
    nan = np.isnan(x)
    if nan_policy != "omit" or not nan.any():
        _checks.check_finite(x, "xdata")
        return x, xdata_is_shared(x.shape, k_all, m, shared_x), present
    _checks.check_finite(np.where(nan, 0.0, x), "xdata")  # infinities stay errors
    shared = xdata_is_shared(x.shape, k_all, m, shared_x)
    lead = tuple(range(x.ndim - 1)) if shared else tuple(range(1, x.ndim - 1))
    absent = nan.any(axis=lead) if lead else nan  # (m,) shared, (K, m) per problem
    present = present & ~absent
    # a finite stand-in from the same row (the row's first finite x), 0 in a row of NaN
    rows = x.reshape(-1, m)
    finite = ~np.isnan(rows)
    first = np.where(finite.any(axis=1), rows[np.arange(rows.shape[0]), finite.argmax(axis=1)],
                     0.0)
    x = np.where(finite, rows, first[:, None]).reshape(x.shape)
    return x, shared, present


def xdata_is_shared(shape: tuple, k_all: int, m: int, shared_x) -> bool:
    """Whether an ``xdata`` of this shape is shared by the K problems (``shared_x=None``:
    decided by the shape, see ``curve_fit_batch``); a shape that fits neither is an error."""
    want = (f"shape (m,) or (k, m) shared by all problems, or (K, m) or (K, k, m) per problem, "
            f"with m={m} points and K={k_all} problems (`ydata`'s shape (K, m) = ({k_all}, {m}): "
            f"one row per problem)")
    ndim = len(shape)
    if ndim == 0 or shape[-1] != m:
        hint = ("; if the columns of `ydata` are the problems, pass ydata.T"
                if ndim and shape[-1] == k_all else "")
        raise ValueError(f"`xdata` must have {want}. Received: xdata with shape {shape}{hint}")
    if shared_x is None:
        shared_x = not (ndim >= 2 and shape[0] == k_all)
        if ndim == 3 and shared_x:
            raise ValueError(f"`xdata` must have {want}. Received: xdata with shape {shape}")
    elif not shared_x and (ndim == 1 or shape[0] != k_all):
        raise ValueError(f"`xdata` per problem (shared_x=False) must have shape (K, m) or "
                         f"(K, k, m) with K={k_all}, m={m}. Received: xdata with shape {shape}")
    return bool(shared_x)


def prepare_sigma(sigma, k_all: int, m: int, present: np.ndarray | None = None
                  ) -> np.ndarray | None:
    """1/σ, shape (m,) or (K, m), or None. Given ``present`` (K, m) (``nan_policy='omit'``),
    σ at an absent point is not used (SciPy's ``curve_fit`` drops it with the point): a NaN
    there is no error (1/σ is set to 1 where no problem has the point)."""
    if sigma is None:
        return None
    s = _checks.as_float_array(sigma, "sigma", ndim=(1, 2))
    if s.shape not in ((m,), (k_all, m)):
        raise ValueError(f"`sigma` must have shape (m,) or (K, m) with K={k_all}, m={m} "
                         f"(standard deviations; a covariance matrix is not supported in "
                         f"batches). Received: sigma with shape {s.shape}")
    if present is not None:
        used = present if s.ndim == 2 else present.any(axis=0)
        _checks.check_finite(np.where(used, s, 1.0), "sigma")
        s = np.where(used, s, 1.0)
    else:
        _checks.check_finite(s, "sigma")
    if s.ndim == 2 and k_all == m and np.any(s <= 0):  # (K, m) or, by mistake, (m, m)?
        raise ValueError("`sigma` must be positive standard deviations, shape (m,) or (K, m) "
                         "(a covariance matrix, which has the same shape here as K = m, is "
                         "not supported in batches). Received: sigma with minimum "
                         f"{float(s.min())!r}")
    return inverse_sigma(s)


#: The working precisions of ``curve_fit_batch(dtype=...)``.
DTYPES = ("float64", "float32")


def check_dtype(dtype) -> np.dtype:
    """The working precision ``dtype`` ('float64' or 'float32', or the NumPy dtype) as a
    NumPy dtype."""
    try:
        checked = np.dtype(dtype) if dtype is not None else None
    except TypeError:
        checked = None
    if checked is None or checked.name not in DTYPES or isinstance(dtype, bool):
        raise ValueError("`dtype` must be 'float64' or 'float32'. "
                         f"Received: dtype={dtype!r}")
    return checked


def check_chunk_size(chunk_size) -> int:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) \
            or chunk_size < 1:
        raise ValueError("`chunk_size` must be a positive integer. "
                         f"Received: chunk_size={chunk_size!r}")
    return int(chunk_size)


def check_workers(workers) -> int:
    """``curve_fit_batch``'s ``workers`` as a thread count: None → 1, -1 → the cores this
    process may use; else a positive integer (ValueError naming it)."""
    if workers is None:
        return 1
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) \
            or not (workers >= 1 or workers == -1):
        raise ValueError("`workers` must be None, a positive integer or -1 (one thread per "
                         f"core). Received: workers={workers!r}")
    if workers == -1:
        return (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                else (os.cpu_count() or 1))
    return int(workers)


def per_problem_hint(shape: tuple, shared_x_given, shared: bool) -> str:
    """For an error of ``f`` at problem 0: a 2-D ``xdata`` whose first dimension equals K was
    taken as one row per problem by its shape alone (``shared_x=None``), where the user may
    have meant k = K variables shared by every problem (two 5×5 images on a (2, 25) grid)."""
    if shared_x_given is None and not shared and len(shape) == 2:
        return (f" (xdata with shape {tuple(shape)} was taken as one row of x per problem, "
                f"its first dimension being K={shape[0]}; pass shared_x=True if its rows are "
                "variables shared by every problem)")
    return ""


def probe(f, jac, x, shared_x: bool, p: np.ndarray, m: int, n: int, hint: str = "",
          dtype: np.dtype = np.dtype(np.float64)) -> tuple[str, np.dtype]:
    """Call ``f`` (and a callable ``jac``) once for problem 0, as ``curve_fit`` does
    (``_probe.first_call``: NumPy values first): shapes and dtypes. Returns what
    ``f`` is written with, from what it returned: ``"tensorflow"`` (a tensor; then, with an
    autodiff ``jac``, no parameter may lack a gradient, ``_probe.check_zero_columns``),
    ``"jax"`` (a JAX array) or ``"numpy"``; and the dtype it returned (a float32 model is
    differenced and judged at float32's precision on the host, as ``curve_fit`` does it).
    ``hint`` ends the messages of errors found here (``per_problem_hint``).

    ``dtype``: the working precision. Tensors reach ``f`` in it, as the compiled solve
    passes them (``dtype='float32'``: x and the parameters as float32 tensors, so that a
    model with float32 constants, ``tf.constant(2.0)`` or ``tf.cast(t, tf.float32)``, runs);
    in float64, a float32 tensor meeting the parameters is reported with the remedy
    (``_probe.FLOAT32_DTYPE_FIX``)."""
    x0 = np.array(x if shared_x else x[0])
    where = "for problem 0 at its p0" + hint
    fix = FLOAT32_DTYPE_FIX if dtype == np.float64 else ""

    def tensor_call():
        from marquardt._backend.tensorflow.host_functions import call_with_tensors
        return call_with_tensors(f, x0.astype(dtype), *np.asarray(p, dtype))

    out = first_call(lambda: f(x0.copy(), *p), tensor_call, jac, "f", where, fix)
    out_dtype = _check_output(out, "f", (m,), hint)
    if callable(jac):
        _check_output(call_at_x0(lambda: jac(x0.copy(), *p), "jac", where), "jac", (m, n), hint)
    if is_jax_value(out):
        return "jax", out_dtype
    tensorflow = is_tensorflow_value(out)
    if tensorflow and jac in AUTODIFF_MODES:
        from marquardt._backend.tensorflow.host_functions import check_model_autodiff
        # called with tensors of the working precision now (a float32 tensor inside f meets
        # float64 ones): named as the first call's errors are, with the remedy
        # (NoGradientError passes as it is)
        call_at_x0(lambda: check_model_autodiff(f, x0, p, dtype=dtype), "f", where, fix)
    return ("tensorflow" if tensorflow else "numpy"), out_dtype


def _check_output(out, name: str, shape: tuple, hint: str = "") -> np.dtype:
    arr = np.asarray(out.numpy() if hasattr(out, "numpy") else out)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"`{name}` must return floating-point values. Received: dtype "
                        f"{arr.dtype}")
    if arr.shape != shape:
        raise ValueError(f"`{name}(xdata, *p0)` must return shape {shape} for one problem. "
                         f"Received: shape {arr.shape} for problem 0{hint}")
    return arr.dtype
