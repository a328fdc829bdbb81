"""``OptimizeResult``: SciPy's result type, without importing SciPy.

A dict with attribute access, like ``scipy.optimize.OptimizeResult``; ``import marquardt``
must not import SciPy (it is imported lazily by ``marquardt.scipy``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["OptimizeResult"]


class OptimizeResult(dict):
    """Result of a solve: a ``dict`` whose keys are also attributes.

    Fields follow ``scipy.optimize.least_squares``: ``x, cost, fun, jac, grad, optimality,
    active_mask, nfev, njev, status, message, success``; ours add ``damping`` (the final λ:
    with a trust radius, the λ of the last accepted step, or after a rejection the λ of the
    attempt that would have followed), ``nit`` (accepted iterations) and ``history`` (a list
    of ``IterationSummary``, λ likewise).
    """

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(name) from exc

    __setattr__ = dict.__setitem__
    __delattr__ = dict.__delitem__

    def __dir__(self):
        return list(self.keys())

    def __repr__(self) -> str:
        if not self:
            return f"{type(self).__name__}()"
        width = max(len(k) for k in self) + 1
        lines = []
        for key, value in self.items():
            if key == "history":
                text = f"[{len(value)} IterationSummary records]"
            elif isinstance(value, np.ndarray) and value.size > 12:
                text = f"array of shape {value.shape}"
            else:
                text = repr(value)
            lines.append(f"{key.rjust(width)}: {text}")
        return "\n".join(lines)
