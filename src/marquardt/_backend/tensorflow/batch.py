"""The user's one-problem model, vectorised over a batch of problems, for ``curve_fit_batch``.

``curve_fit_batch`` takes the model ``f(x, *params)`` that ``curve_fit`` takes, written for
one problem. ``tf.vectorized_map`` (TensorFlow's ``pfor``) rewrites it for a batch: each op
of ``f`` becomes one op on the whole batch, with no Python loop over problems and no batch
code in the user's model. The result is the batch residual ``r(P, x, y, w)`` of shape
(K, m) that the engine (``solve_loop.run_loop``) expects, with its Jacobian by the engine's
own autodiff (forward mode, n passes), or from the user's analytic ``jac(x, *params)``,
vectorised the same way.

Weights and absent points: ``w`` holds 1/σ per point (ones without ``sigma``) and 0 for a
point marked absent; the residual there is exactly 0 (``tf.where``, so a model that is not
finite at an absent point does not leak NaN into the fit), and so is its Jacobian row.
"""

from __future__ import annotations

from typing import Callable

import tensorflow as tf

__all__ = ["batched_residual", "batched_jacobian"]


def _model_on_batch(f: Callable, shared_x: bool) -> Callable:
    """``model(P, x) -> (K, m)``: ``f(x_k, *P[k])`` for every problem k, vectorised."""

    def model(p, x):
        if shared_x:
            out = tf.vectorized_map(lambda pk: _as_float64(f(x, *tf.unstack(pk))), p)
        else:
            out = tf.vectorized_map(lambda a: _as_float64(f(a[1], *tf.unstack(a[0]))), (p, x))
        return out

    return tf.function(model, autograph=False)


def _as_float64(out):
    return tf.cast(tf.convert_to_tensor(out), tf.float64)


def _check_shape(out, y, what: str):
    if out.shape != y.shape:
        raise ValueError(f"`{what}` must return shape {tuple(y.shape[1:])} for each problem, like "
                         f"a row of ydata. Received: shape {tuple(out.shape[1:])}")


def batched_residual(f: Callable, shared_x: bool) -> Callable:
    """The batch residual ``r(P, x, y, w) = where(w ≠ 0, w · (f(x, *p) − y), 0)``, (K, m)."""
    model = _model_on_batch(f, shared_x)

    def residual_fn(p, x, y, w):
        out = model(p, x)
        _check_shape(out, y, "f(xdata, *p)")
        return tf.where(tf.not_equal(w, 0.0), (out - y) * w, tf.zeros_like(y))

    return residual_fn


def batched_jacobian(jac: Callable, shared_x: bool) -> Callable:
    """The batch Jacobian of the weighted residuals from the user's analytic
    ``jac(x, *params) -> (m, n)``: ``J(P, x, y, w)`` of shape (K, m, n)."""
    model = _model_on_batch(jac, shared_x)

    def jac_fn(p, x, y, w):
        jm = model(p, x)
        if jm.shape[:2] != y.shape or jm.shape[2:] != p.shape[1:]:
            raise ValueError(f"`jac(xdata, *p)` must return shape {(y.shape[1], p.shape[1])} "
                             f"for each problem. Received: shape {tuple(jm.shape[1:])}")
        keep = tf.not_equal(w, 0.0)[..., None]
        return tf.where(keep, jm * w[..., None], tf.zeros_like(jm))

    return jac_fn
