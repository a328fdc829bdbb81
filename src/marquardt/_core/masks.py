"""Per-problem masking for arrays with a leading problem axis (K problems at once)."""

from __future__ import annotations

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
    """(K,) bool: every entry of problem k is finite. One axis at a time, not a reshape to
    (K, -1): that copies a Jacobian held as a transposed view (the host's differences)."""
    ok = xp.isfinite(a)
    for _ in range(len(a.shape) - 1):
        ok = xp.all(ok, axis=-1)
    return ok


def as_int32(xp, a):
    return xp.cast(a, "int32")
