"""The user's residual function as the host executor calls it: on NumPy arrays.

An ``Evaluator`` holds ``residual(x) -> r`` and ``residual_and_jacobian(x) -> (r, J)`` on one
problem with a leading axis (x (1, n), r (1, m), J (1, m, n)), float64 NumPy. The NumPy
evaluator here calls the user's function as SciPy does (a float64 ``ndarray`` x of shape (n,))
with finite differences or the user's ``jac``, and needs no TensorFlow; a TensorFlow model
gets a compiled one (``marquardt._backend.tensorflow.host_functions``).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy as np

from marquardt._backend.numpy import xp
from marquardt._core import numdiff

__all__ = ["CurveModel", "Evaluator", "numpy_evaluator", "model_evaluator"]


class Evaluator(NamedTuple):
    """The residual function of one problem, for the host executor.

    Attributes:
        residual: ``residual(x, problems)``: x (k, n) → r (k, m), for the problems with
            indices ``problems`` (k,) (their data; a single problem ignores them).
        residual_and_jacobian: ``(x, problems)`` → (r (k, m), J (k, m, n)).
        jacobian_with_residual: J costs little beside r (autodiff of a compiled model): the
            executor evaluates both at every candidate.
        first: (r, J) at x0 when already computed, else None.
        jacobian: ``jacobian(x, r, problems) -> J`` given the residuals r at x (finite
            differences then make no call at x itself), or None.
    """

    residual: Callable
    residual_and_jacobian: Callable
    jacobian_with_residual: bool = False
    first: tuple | None = None
    jacobian: Callable | None = None


class CurveModel(NamedTuple):
    """What a residual function of ``curve_fit``'s is made of, for a caller that can form it
    itself: ``fun(p) = finish(model(xdata, *p))`` with ``finish(out) = out − ydata`` (times
    ``weights``), ``out`` converted to float64 first where it is not a float64 ndarray. The
    native executor calls ``model`` from C and subtracts there (``native_model.ModelCall``);
    ``curve_fit`` hangs it on its function as the attribute ``curve``.

    Attributes:
        model: the user's ``f(xdata, *params)``, called with NumPy float64 scalars.
        xdata: what ``model`` receives as its first argument (the same object each call).
        ydata: the data, float64 (m,).
        weights: 1/σ, float64 (m,), or None (no weights).
        finish: ``finish(out) -> r``: the residuals from what ``model`` returned, as the
            function forms them (its conversion and its errors).
        compiled: the same residuals compiled (``compiled_curve.CompiledCurve``: its
            ``pointers()`` once checked at the fit's start), or None.
        jac: the user's callable ``jac(xdata, *params)`` (C may call it as it calls
            ``model``: ``native_model.mq_curve_jacobian``), or None.
        jac_finish: ``jac_finish(out) -> J`` (m, n): the weighted Jacobian from what ``jac``
            returned, as the host function forms it (its conversion, checks and errors).
    """

    model: Callable
    xdata: object
    ydata: np.ndarray
    weights: np.ndarray | None
    finish: Callable
    compiled: Any = None
    jac: Callable | None = None
    jac_finish: Callable | None = None


_NDARRAY = np.ndarray
_F64 = np.dtype(np.float64)


def _as_vector(value, m: int, who: str) -> np.ndarray:
    r = np.asarray(value, dtype=np.float64)
    if r.shape != (m,):
        r = np.atleast_1d(r)
        if r.shape != (m,):
            raise ValueError(f"`{who}` must return the same shape (m,) = ({m},) at every call. "
                             f"Received: shape {r.shape}")
    return r


def _as_jacobian(value, m: int, n: int) -> np.ndarray:
    """The user's J as a float64 (m, n) array, read as SciPy reads it (``np.atleast_2d``: a
    1-D J of length n is one row); a sparse matrix or a ``LinearOperator`` is refused, as by
    SciPy's ``lm``, and so is any other shape (ValueError naming both shapes)."""
    if not isinstance(value, np.ndarray) and (hasattr(value, "toarray")
                                              or hasattr(value, "matvec")):
        raise ValueError("`jac` must return a dense array: marquardt's LM works with dense "
                         f"Jacobian matrices, as SciPy's method='lm'. Received: "
                         f"{type(value).__name__} (call .toarray() on a sparse matrix)")
    j = np.asarray(value, dtype=np.float64)
    if j.ndim < 2:
        j = np.atleast_2d(j)
    if j.shape != (m, n):
        raise ValueError(f"`jac` must return an array of shape (m, n) = ({m}, {n}). "
                         f"Received: shape {np.shape(value)}")
    return j


def numpy_evaluator(fun: Callable, jac, n: int, m: int, lb: np.ndarray, ub: np.ndarray,
                    diff_step: float | None, who: str = "fun", r0=None, f_dtype=np.float64,
                    workers: Callable | None = None, complex_fun: Callable | None = None,
                    typical=None) -> Evaluator:
    """The evaluator of ``fun(x) -> r`` called on NumPy (n,) vectors.

    Args:
        fun: ``fun(x) -> r`` with extra arguments already bound; its output is converted to
            float64 (any array-like: NumPy, a TensorFlow eager tensor).
        jac: ``"2-point"``, ``"3-point"`` (finite differences, SciPy's rules,
            ``marquardt._core.numdiff``), ``"cs"`` (complex step), or a callable
            ``jac(x) -> J`` (m, n).
        n, m: the numbers of parameters and residuals.
        lb, ub: the bounds (1, n), for the finite-difference steps.
        diff_step: the relative finite-difference step (SciPy's default when None).
        who: the name of ``fun`` in error messages.
        r0: ``fun(x0)`` already computed (the first call), reused at x0.
        f_dtype: the dtype ``fun`` returned: a float32 model gets float32-sized steps.
        workers: a map-like callable ``workers(f, xs)`` evaluating the finite-difference
            points (SciPy's ``workers``), or None for a plain loop.
        complex_fun: ``fun`` on complex vectors, for ``"cs"`` (default ``fun``).
        typical: the parameters' typical magnitudes (1, n) for the difference steps (``curve_fit``:
            the start's, ``numdiff.typical_magnitudes``); None: SciPy ``least_squares``' 1.
    """

    shape = (m,)

    def residual(x, problems=None):
        r = fun(x[0])
        if type(r) is not _NDARRAY or r.dtype is not _F64 or r.shape != shape:
            r = _as_vector(r, m, who)  # (a float64 (m,) array is returned as it is)
        return r[None]

    if callable(jac):
        def jacobian(x, r=None, problems=None):
            return _as_jacobian(jac(x[0]), m, n)[None]

        for name in ("native_spec", "native_differences"):  # J formed in C by the native
            if hasattr(jac, name):  # loop (``compiled_curve``'s exact partials)
                setattr(jacobian, name, getattr(jac, name))
    elif jac == "cs":
        by_complex_step = numdiff.complex_step_jacobian(complex_fun or fun, n, diff_step)

        def jacobian(x, r=None, problems=None):
            return by_complex_step(x)
    else:
        if workers is None:
            def many(xs):  # (B, n) -> (B, m): the points as (n,) views, as ``residual``
                rows = []
                for x in xs:
                    r = fun(x)
                    if type(r) is not _NDARRAY or r.dtype is not _F64 or r.shape != shape:
                        r = _as_vector(r, m, who)
                    rows.append(r)
                return np.array(rows)
        else:
            def many(xs):
                out = list(workers(fun, list(xs)))
                return np.stack([_as_vector(v, m, who) for v in out])

        step = diff_step if diff_step is not None else numdiff.default_rel_step(jac, f_dtype)
        # one problem: the same differences without the namespace's layers
        by_differences = numdiff.one_problem_jacobian(residual, many, n, jac, lb, ub, step,
                                                      typical)

        def jacobian(x, r=None, problems=None):
            return by_differences(x, r)[1]

        if workers is None and _native_differences is not None:  # off by default
            jacobian = _native_differences(fun, jac, n, m, lb, ub, step, typical, who,
                                           residual) or jacobian
        elif workers is None and _lazy_differences is not None:
            jacobian = _lazy_differences(jacobian, fun, jac, n, m, lb, ub, step, typical, who)

    def residual_and_jacobian(x, problems=None):
        r = residual(x)
        return r, jacobian(x, r)

    first = None
    if r0 is not None:
        f0 = _as_vector(r0, m, who)[None]
        first = (f0, None)
    return Evaluator(residual=residual, residual_and_jacobian=residual_and_jacobian,
                     first=first, jacobian=jacobian)


def _rows(a: np.ndarray, problems: np.ndarray) -> np.ndarray:
    """``a[problems]``; a view where the problems are consecutive (a chunk's problems before
    any has stopped), no copy."""
    size = problems.size
    if size > 1:
        first, last = int(problems[0]), int(problems[-1])
        if last - first == size - 1 and (problems[1:] > problems[:-1]).all():
            return a[first:last + 1]
    return a[problems]


def _jacobian_axes(both: np.ndarray, alone: np.ndarray) -> tuple | None:
    """The order of axes that turns ``both``, a ``jac`` called for two problems at once,
    into ``alone`` (2, m, n), its two calls one problem at a time, or None when no order or
    more than one does. ``np.stack(columns, axis=1)``, SciPy's idiom for one problem's
    (m, n), stacks a batch's (k, m) columns into (k, n, m); ``np.array(columns).T`` makes
    (m, k, n)."""
    if both.ndim != 3:
        return None
    import itertools
    found = [axes for axes in itertools.permutations(range(3))
             if both.transpose(axes).shape == alone.shape
             and np.allclose(both.transpose(axes), alone, rtol=1e-12, atol=0, equal_nan=True)]
    return found[0] if len(found) == 1 else None


#: ``native_numdiff.evaluator_jacobian`` while differences in C are enabled
#: (``native_numdiff.enabled()``; off by default): the same J, formed in C. It returns None
#: where it cannot serve (no compiler), and numdiff's Python serves.
_native_differences = None

#: ``native_numdiff.lazy_jacobian`` once the native executor is in use (``native_loop``):
#: J stays numdiff's in Python, and a fit on the native loop builds the same differences in
#: C at its first need (``jacobian.native_differences()``).
_lazy_differences = None


def model_evaluator(f: Callable, jac, x: np.ndarray, shared_x: bool, y: np.ndarray,
                    w: np.ndarray, n: int, lb: np.ndarray, ub: np.ndarray,
                    diff_step: float | None, f_dtype=np.float64, typical=None,
                    batch_model: Callable | None = None) -> Evaluator:
    """The evaluator of K problems of a NumPy model ``f(x, *params)`` (``curve_fit_batch``):
    residuals rₖ = wₖ (f(xₖ, *pₖ) − yₖ), exactly 0 where wₖᵢ = 0 (absent points).

    The model is called once for many problems at a time, each parameter a column (k, 1)
    that broadcasts against x (NumPy ufunc code needs no change for this: a·exp(−b·t) on
    t (m,) and a, b (k, 1) is (k, m)); per-problem x is passed as (k, m), or (v, k, m) for v
    variables so that ``x[0]`` still picks the first. A model that does not broadcast so
    (checked on two problems against two single calls) is called once per problem.

    Args:
        f: the model for one problem, NumPy code.
        jac: ``"2-point"``/``"3-point"`` (finite differences, vectorised over the problems)
            or a callable ``jac(x, *params) -> (m, n)`` for one problem: called for many
            problems at once where the model broadcasts and ``jac`` does too, in any order
            of its three axes (checked on two problems against two single calls, as the
            model is; ``_jacobian_axes``), else per problem.
        x: the independent variables: shared (m,) or (v, m), or per problem (K, m) or
            (K, v, m).
        shared_x: whether ``x`` is shared.
        y: the data (K, m), 0 at absent points; w: the weights (K, m), 0 at absent points.
        n: the number of parameters.
        lb, ub: the bounds (K, n), for the finite-difference steps.
        diff_step: the relative finite-difference step; None: SciPy's default for the
            precision of what the model returns (``f_dtype``: float32 steps of ~3e-4).
        typical: the parameters' typical magnitudes (K, n) for the difference steps (the
            starts', as ``curve_fit``'s); None: 1.
        batch_model: ``batch_model(p, problems) -> values`` (k, m) for parameter rows p
            (k, n) of ``problems`` (indices, repeats allowed), called instead of ``f``: a JAX
            model jitted per padded shape (``_backend/jax/host_model.py``). The n points of
            a difference Jacobian are then evaluated by one call, not one call each.

    A model that broadcasts over problems gets the n points of a difference Jacobian in one
    call too: the n·k parameter rows stacked, point i's rows after point i − 1's (the same
    element-wise values as n calls, without stacking their outputs).
    """
    m = y.shape[1]
    if diff_step is None and isinstance(jac, str):
        diff_step = numdiff.default_rel_step(jac, f_dtype)

    def x_of(problems):
        if shared_x:
            return x
        return x[problems] if x.ndim == 2 else np.moveaxis(x[problems], 0, 1)

    def one_at_a_time(p, problems):
        return np.stack([np.asarray(f(x if shared_x else x[k], *p[i]), dtype=np.float64)
                         for i, k in enumerate(problems)])

    def together(p, problems):
        return np.asarray(f(x_of(problems), *(p[:, i:i + 1] for i in range(n))),
                          dtype=np.float64)

    model = one_at_a_time if batch_model is None else batch_model
    if batch_model is None:
        try:  # does the model broadcast over problems? two problems, together and alone
            pair = np.array([0, min(1, y.shape[0] - 1)])
            p_pair = np.stack([np.ones(n), np.full(n, 1.5)])
            with np.errstate(all="ignore"):
                both = together(p_pair, pair)
                alone = one_at_a_time(p_pair, pair)
            if both.shape == (2, m) and np.allclose(both, alone, rtol=1e-12, atol=0,
                                                     equal_nan=True):
                model = together
        except Exception:  # the model does not broadcast: call it per problem
            pass

    # every point present and no sigma: r = f − y, which is (f − y)·1 where w ≠ 0 exactly
    unit = bool(np.all(w == 1.0))

    def weighted(values, problems):  # values (…, k, m) of the model → residuals
        if unit:
            return values - _rows(y, problems)
        wk = _rows(w, problems)
        return np.where(wk != 0.0, (values - _rows(y, problems)) * wk, 0.0)

    def residual(p, problems):
        return weighted(model(p, problems), problems)

    if callable(jac):
        def jac_one_at_a_time(p, problems):
            return np.stack([_as_jacobian(jac(x if shared_x else x[k], *p[i]), m, n)
                             for i, k in enumerate(problems)])

        jac_model = jac_one_at_a_time
        if model is together:  # the model broadcasts: does its jac, in some axes' order?
            axes = None
            try:
                with np.errstate(all="ignore"):
                    both = np.asarray(jac(x_of(pair), *(p_pair[:, i:i + 1] for i in range(n))),
                                      dtype=np.float64)
                    alone = jac_one_at_a_time(p_pair, pair)
                axes = _jacobian_axes(both, alone)
            except Exception:  # it does not: called per problem
                pass
            if axes is not None:
                def jac_model(p, problems):
                    jm = np.asarray(jac(x_of(problems), *(p[:, i:i + 1] for i in range(n))),
                                    dtype=np.float64)
                    if jm.ndim != 3 or jm.shape[axes.index(0)] != p.shape[0]:
                        raise ValueError(
                            "`jac` called for many problems at once must return the axes it "
                            f"returned for two. Received: shape {jm.shape} for {p.shape[0]}")
                    return np.ascontiguousarray(jm.transpose(axes))

        def jacobian(p, r, problems):
            jm = jac_model(p, problems)
            if unit:  # J·1 exactly
                return jm
            wk = _rows(w, problems)[:, :, None]
            return np.where(wk != 0.0, jm * wk, 0.0)
    else:
        def jacobian(p, r, problems):
            def many(ps):  # (B, k, n) -> (B, k, m)
                b, k = ps.shape[:2]
                if model is not one_at_a_time:  # the B·k points in one call of the model
                    values = model(ps.reshape(b * k, n), np.tile(problems, b))
                    return weighted(values.reshape(b, k, m), problems)
                return np.stack([residual(ps[i], problems) for i in range(b)])

            return numdiff.finite_difference_jacobian(
                xp, lambda q: residual(q, problems), many, n, jac, lb[problems],
                ub[problems], diff_step, None if typical is None else typical[problems],
                in_place=True)(p, r)[1]

    def residual_and_jacobian(p, problems):
        r = residual(p, problems)
        return r, jacobian(p, r, problems)

    # ``jacobian`` given the residuals at p: the executor has them at an accepted point (the
    # same values a call would return: the model is deterministic), one call of the model
    # fewer per Jacobian
    return Evaluator(residual=residual, residual_and_jacobian=residual_and_jacobian,
                     jacobian=jacobian)
