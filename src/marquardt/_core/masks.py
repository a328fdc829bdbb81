"""Per-problem masking for arrays with a leading problem axis (K problems at once)."""

from __future__ import annotations

import numpy as np

__all__ = ["select", "all_finite_rows", "as_int32"]


def select(xp, mask, new, old):
    """Per-problem ``where`` for arrays with a leading problem axis; ``mask`` None: every
    problem (``new`` itself, no operation: the host executor's case, ``all_live``)."""
    if mask is None:
        return new
    extra = len(new.shape) - 1
    if extra:
        mask = xp.expand_dims(mask, tuple(range(-extra, 0)))
    return xp.where(mask, new, old)


def all_finite_rows(xp, a):
    """(K,) bool: every entry of problem k is finite. A NumPy array that is not C-ordered
    (the host's difference Jacobian, a transposed view of (n, K, m)) is reduced one axis at
    a time: a reshape to (K, -1) would copy it."""
    if len(a.shape) == 2:
        return xp.all(xp.isfinite(a), axis=-1)
    if isinstance(a, np.ndarray) and not a.flags.c_contiguous:
        ok = xp.isfinite(a)
        for _ in range(a.ndim - 1):
            ok = xp.all(ok, axis=-1)
        return ok
    return xp.all(xp.isfinite(xp.reshape(a, (a.shape[0] if a.shape[0] is not None
                                              else xp.shape(a)[0], -1))), axis=-1)


def as_int32(xp, a):
    return xp.cast(a, "int32")
