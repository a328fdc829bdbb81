"""The user's one-problem model, vectorised over a batch of problems, for ``curve_fit_batch``.

``curve_fit_batch`` takes the model ``f(x, *params)`` that ``curve_fit`` takes, written for
one problem. ``tf.vectorized_map`` (TensorFlow's ``pfor``) rewrites it for a batch: each op
of ``f`` becomes one op on the whole batch, with no Python loop over problems and no batch
code in the user's model. The result is the batch residual ``r(P, x, y, w)`` of shape
(K, m) that the engine (``solve_loop``) expects, and its Jacobian (K, m, n).

The Jacobian is the engine's own autodiff (``jacobian.autodiff_jacobian``: forward mode, n
passes) applied to ONE problem inside the vectorised body, not to the vectorised residual:
forward-mode accumulation through ``pfor``'s rewrite of a model that indexes a shared x
(``x[0]``, ``x[1]`` for several variables) makes XLA treat the parameters and x as
compile-time constants, so every new batch of data recompiled the solve (seconds each).
Differentiating the one-problem function first and vectorising the result has no such
dependence. A user's analytic ``jac(x, *params)`` is vectorised the same way.

Precision: the model's output is cast to the dtype of the data ``y`` (float64, or float32
for ``curve_fit_batch(dtype="float32")``), the parameters and x arrive in it too.

Weights and absent points: ``w`` holds 1/σ per point (ones without ``sigma``) and 0 for a
point marked absent; the residual there is exactly 0 (``tf.where``, so a model that is not
finite at an absent point does not leak NaN into the fit), and so is its Jacobian row.
"""

from __future__ import annotations

from typing import Callable

import tensorflow as tf

from marquardt._backend.tensorflow.driver import ResidualAndJacobian
from marquardt._backend.tensorflow.quiet_log import vectorized_map
from marquardt._backend.tensorflow.jacobian import (UNROLL_MAX, as_dtype, autodiff_jacobian,
                                                    resolved_mode, scalar_forward_jacobian)

__all__ = ["batched_residual", "batched_residual_and_jacobian", "scalar_tangents"]


def _weighted(out, y, w):
    """where(w ≠ 0, w · (out − y), 0) for one problem or a batch."""
    return tf.where(tf.not_equal(w, 0.0), (out - y) * w, tf.zeros_like(y))


def _vectorise(one: Callable, shared_x: bool) -> Callable:
    """``fn(p, x, y, w)`` on a batch from ``one(p_k, x_k, y_k, w_k)`` for one problem."""

    def fn(p, x, y, w):
        if shared_x:
            return vectorized_map(lambda a: one(a[0], x, a[1], a[2]), (p, y, w))
        return vectorized_map(lambda a: one(*a), (p, x, y, w))

    return fn


def _check_shape(out, want, what: str):
    """``out`` with the static shape ``want``: a dimension unknown at trace time (the output
    of ``tf.numpy_function``, ``(None,)``) is accepted and checked when the graph runs."""
    if not out.shape.is_compatible_with(want):
        raise ValueError(f"`{what}` must return shape {tuple(want)} for one problem. "
                         f"Received: shape {tuple(out.shape)}")
    return out if out.shape.is_fully_defined() else tf.ensure_shape(out, want)


def batched_residual(f: Callable, shared_x: bool) -> Callable:
    """The batch residual ``r(P, x, y, w) = where(w ≠ 0, w · (f(x, *p) − y), 0)``, (K, m)."""

    def one(p, x, y, w):
        out = _check_shape(as_dtype(f(x, *tf.unstack(p)), y.dtype), y.shape, "f(xdata, *p)")
        return _weighted(out, y, w)

    return _vectorise(one, shared_x)


def scalar_tangents(n: int, m: int, jac: str) -> bool:
    """Forward mode with one tangent per scalar parameter (``scalar_forward_jacobian``): for
    forward mode with up to ``UNROLL_MAX`` parameters, whose passes are unrolled anyway;
    beyond, ``autodiff_jacobian`` vectorises the n passes (n unrolled passes took 82 s to
    compile at n = 32 against 23 s vectorised)."""
    return n <= UNROLL_MAX and resolved_mode(n, m, jac) == "forward"


def batched_residual_and_jacobian(f: Callable, jac: str | Callable,
                                  shared_x: bool) -> ResidualAndJacobian:
    """The batch residuals and Jacobian ``(r, J)(P, x, y, w)``, (K, m) and (K, m, n), of the
    weighted residuals, from one pass: by autodiff (``jac`` one of ``'auto'``, ``'forward'``,
    ``'reverse'``), whose primal pass gives r, or from the user's analytic
    ``jac(x, *params) -> (m, n)`` beside one call of ``f``."""
    if callable(jac):
        def one(p, x, y, w):
            out = as_dtype(f(x, *tf.unstack(p)), y.dtype)
            jm = _check_shape(as_dtype(jac(x, *tf.unstack(p)), y.dtype),
                              (y.shape[0], p.shape[0]), "jac(xdata, *p)")
            return _weighted(out, y, w), tf.where(tf.not_equal(w, 0.0)[:, None],
                                                  jm * w[:, None], tf.zeros_like(jm))
    else:
        def one(p, x, y, w):
            n, m = p.shape[0], y.shape[0]
            if scalar_tangents(n, m, jac):  # one tangent per scalar parameter
                return scalar_forward_jacobian(
                    lambda ps: _weighted(as_dtype(f(x, *ps), y.dtype), y, w), tf.unstack(p))

            def residual(p1):  # a batch of one: (1, n) -> (1, m)
                return _weighted(as_dtype(f(x, *tf.unstack(p1[0])), y.dtype), y, w)[None]

            r, jm = autodiff_jacobian(residual, n, m, jac)(p[None])
            return r[0], jm[0]

    return ResidualAndJacobian(_vectorise(one, shared_x))
