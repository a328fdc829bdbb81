"""What every JAX executor shares: float64 tracing, the cache of compiled solves, exact
Jacobians, and the split of a function's ``args`` into array inputs and static values.

float64: JAX computes in float32 unless ``jax_enable_x64`` is set, silently (a float64 NumPy
array becomes a float32 JAX array). The LM core needs float64 for the tolerances it is
given by default (ftol 1e-15; NIST's certified digits), so every compiled solve is traced
and run inside ``jax.enable_x64(True)`` (``float64()``): a user's JAX function works without
a global setting, and the global setting is left as it was. A function that casts to
float32 itself computes in float32 and is promoted at its output (docs/jax.md).

The cache: ``jax.jit`` caches per function object, so the executors build one jitted solve
per (user's function, options, shapes) and keep it here (``cached``): a second fit of the
same function with new data of the same shapes compiles nothing.
"""

from __future__ import annotations

from typing import Any, Callable, Hashable, NamedTuple, Sequence

import jax
import numpy as np

from marquardt._cache import CompiledCache

__all__ = ["float64", "cached", "peek", "forget", "trace_count", "jacobian", "DataLayout",
           "split_args", "is_jax_value", "CACHE_SIZE"]

#: Compiled solves kept (least recently used dropped first); each holds an XLA executable.
CACHE_SIZE = 64

_cache = CompiledCache(CACHE_SIZE)
_traces = {"count": 0}


def float64():
    """The context every compiled solve is traced and called in: ``jax.enable_x64(True)``
    (``jax.experimental.enable_x64()`` in JAX releases before the top-level one)."""
    if callable(getattr(jax, "enable_x64", None)):
        return jax.enable_x64(True)
    from jax.experimental import enable_x64
    return enable_x64()


def is_jax_value(value: Any) -> bool:
    """``value`` is a JAX array (the function was written with ``jax.numpy``)."""
    return isinstance(value, jax.Array)


def cached(key: Hashable | None, factory: Callable[[], Callable]) -> Callable:
    """The compiled function for ``key``, built by ``factory()`` on a miss; ``key`` None or
    unhashable: built anew (compiled on each call)."""
    return _cache.get(key, factory)


def peek(key: Hashable | None):
    """The cached entry for ``key``, or None; builds nothing."""
    return _cache.peek(key)


def forget(key: Hashable | None) -> None:
    """Drop ``key`` from the cache (a build that failed)."""
    _cache.forget(key)


def count_trace() -> None:
    """Called while a solve is traced (Python side effect: runs at trace time only)."""
    _traces["count"] += 1


def trace_count() -> int:
    """How many solves were traced so far in this process (tests count retraces)."""
    return _traces["count"]


def jacobian(one: Callable, n: int, m: int, mode: str) -> Callable:
    """``x -> (r, J)`` of a one-problem residual ``one(x) -> r`` (m,): forward mode
    (``jax.jacfwd``, n tangents) for ``'forward'``, reverse (``jax.jacrev``, m cotangents)
    for ``'reverse'``; ``'auto'``: forward when n ≤ m (the cheaper side), else reverse.
    The residuals come with J from the same pass (``has_aux``)."""
    if mode == "auto":
        mode = "forward" if n <= m else "reverse"
    jac = jax.jacfwd if mode == "forward" else jax.jacrev

    def with_value(x):
        r = one(x)
        return r, r

    return lambda x: jac(with_value, has_aux=True)(x)[::-1]


class DataLayout(NamedTuple):
    """Where the arguments of ``fun(x, *args)`` come from at call time.

    Attributes:
        slots: one per positional argument: ``("tensor", i)`` for ``data[i]`` (an input of
            the compiled functions) or ``("static", value)`` (passed as it is).
        data: the input arrays (float64 NumPy).
    """

    slots: tuple
    data: tuple

    def call_args(self, data: Sequence) -> list:
        return [data[v] if kind == "tensor" else v for kind, v in self.slots]

    def key(self) -> tuple:
        """What identifies a compiled solve: the static values and the arrays' shapes."""
        return (tuple(("tensor", np.shape(self.data[v])) if kind == "tensor" else (kind, v)
                      for kind, v in self.slots))


def split_args(args: Sequence, rows_only: bool = False) -> DataLayout:
    """Floating NumPy or JAX arrays among ``args`` become float64 inputs (new data of the same
    shape compiles nothing); everything else is passed to the function as it is.
    ``rows_only``: the SciPy bridge's rule, numeric arrays of at least one dimension (integer
    and boolean ones in their own dtype)."""
    slots, data = [], []
    for a in args:
        arr = None
        if isinstance(a, (np.ndarray, jax.Array)):
            kind = np.dtype(a.dtype).kind
            if rows_only and np.ndim(a) > 0 and kind in "fiub":
                arr = np.asarray(a, np.float64) if kind == "f" else np.asarray(a)
            elif not rows_only and kind == "f":
                arr = np.asarray(a, np.float64)
        if arr is None:
            slots.append(("static", a))
        else:
            slots.append(("tensor", len(data)))
            data.append(arr)
    return DataLayout(tuple(slots), tuple(data))
