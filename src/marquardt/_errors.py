"""Errors shared by every front door and backend."""

from __future__ import annotations

__all__ = ["NoGradientError", "NonFiniteJacobianError", "OutputError", "RecompileWarning"]


class NoGradientError(ValueError):
    """The residual function cannot be differentiated by the backend's autodiff."""


class OutputError(ValueError):
    """What the user's function returned at its start is not what the fit needs (a model's
    output not shaped like ydata): raised by our check, not by the function."""


class NonFiniteJacobianError(ValueError):
    """The function is finite at the start but its Jacobian there is not (a derivative undefined
    where the model is defined: autodiff of sqrt(b*x) at x = 0)."""


class RecompileWarning(UserWarning):
    """Many new function objects with the same code were compiled: each is compiled anew
    (0.1-2 s), usually because the function is defined inside a loop (``marquardt._cache``)."""
