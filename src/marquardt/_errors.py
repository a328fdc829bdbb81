"""Errors shared by every front door and backend."""

from __future__ import annotations

__all__ = ["NoGradientError"]


class NoGradientError(ValueError):
    """The residual function cannot be differentiated by the backend's autodiff."""
