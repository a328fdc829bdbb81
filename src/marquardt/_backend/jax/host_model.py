"""A JAX model differenced on the host (``curve_fit_batch(jac='2-point')``): one jitted call
per evaluation of many problems, compiled once per padded shape.

The host executor (``marquardt._core.host``) iterates on the problems still running, so the
number of rows it evaluates changes from one iteration to the next (300, 287, 141, ...),
and the finite differences evaluate n perturbed points of each. Called eagerly, every
``jax.numpy`` op of the model was compiled by XLA for every new number of rows: 21
compilations, 1.0 s of a 1.3 s warm call of 300 fits of a 3-parameter exponential with new
data (cProfile, 2026-12-05), where the autodiff route, compiled once, took 0.03 s.

Here the one-problem model is vectorised by ``jax.vmap`` and jitted once per model; the rows
are padded to the next power of two (at least ``MIN_ROWS``; the padding rows repeat the last
real row), so that a batch meets a few shapes (8, 16, ..., up to 2·K·n rows), each compiled
once and reused by later calls, and the n points of a difference Jacobian are evaluated in
one call (``model_evaluator``'s ``batch_model``). The differences and the LM step stay on
the host, unchanged.

Bits: jitted, XLA fuses the model's elementwise ops and may round differently from the eager
ops: it contracts a·b + c into one fused multiply-add (one rounding, not two) and divides by
a broadcast value as a multiplication by its reciprocal. Such a model's values move by an
ulp, and its differenced fits by what an ulp in r moves them: about ulp/h relative in J
(1.5e-8 with 2-point's h), measured up to 5e-8 relative in x and 2e-14 in the cost (300
exponentials a·exp(−k·t) + c). A model without those patterns gets the eager bits
(``tests/test_jax_backend.py``). The compiled autodiff route has always run the model jitted.
"""

from __future__ import annotations

from typing import Callable

import jax
import numpy as np

from marquardt._backend.jax import compile as jc

__all__ = ["batch_model", "padded_rows", "MIN_ROWS"]

#: The fewest rows of one call: evaluations of up to 8 rows share one compilation.
MIN_ROWS = 8


def padded_rows(k: int) -> int:
    """The rows of the call that evaluates ``k`` rows: the next power of two ≥ k, at least
    ``MIN_ROWS``."""
    return max(MIN_ROWS, 1 << max(0, int(k) - 1).bit_length())


def batch_model(f: Callable, x: np.ndarray, shared_x: bool, p0: np.ndarray
                ) -> Callable | None:
    """``model(p, problems) -> values`` (k, m) float64 NumPy for parameter rows ``p`` (k, n)
    of problems ``problems`` (k indices into x's problem axis, repeats allowed): the model
    ``f(x, *params)`` of one problem, vmapped and jitted, in float64
    (``jc.float64``, as the host's eager calls ran under ``x64_if_jax``). None when ``f``
    cannot be traced (a Python branch on a parameter, NumPy on one: ``jax.errors``' tracer
    errors) or fails vmapped, tried at problem 0's start ``p0`` (n,): the caller then calls
    it eagerly, as before."""
    def build():
        def one(p, xk):
            return f(xk, *p)
        return jax.jit(jax.vmap(one, in_axes=(0, None if shared_x else 0)))

    try:
        key = ("host_model", f, shared_x)
        hash(key)
    except TypeError:
        key = None
    vectorised = jc.cached(key, build)

    def model(p, problems):
        k = p.shape[0]
        rows = padded_rows(k)
        if rows > k:
            p = np.concatenate([p, np.broadcast_to(p[-1:], (rows - k,) + p.shape[1:])])
            problems = np.concatenate([problems, np.full(rows - k, problems[-1])])
        with jc.float64():
            out = vectorised(p, x if shared_x else x[problems])
        return np.asarray(out, dtype=np.float64)[:k]

    try:  # traceable and vmappable? (compiles the smallest shape, once per model)
        model(np.asarray(p0, np.float64)[None], np.zeros(1, dtype=int))
    except Exception:  # noqa: BLE001 - any failure: the eager calls run (and report) it
        jc.forget(key)
        return None
    return model
