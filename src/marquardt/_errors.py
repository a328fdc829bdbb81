"""Errors shared by every front door and backend."""

from __future__ import annotations

__all__ = ["NoGradientError", "RecompileWarning"]


class NoGradientError(ValueError):
    """The residual function cannot be differentiated by the backend's autodiff."""


class RecompileWarning(UserWarning):
    """Many new function objects with the same code were compiled: each is compiled anew
    (0.1-2 s), usually because the function is defined inside a loop (``marquardt._cache``)."""
