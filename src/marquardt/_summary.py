"""Per-iteration summary record and the fixed-width progress table.

Modelled on Ceres' ``IterationSummary`` and SciPy's ``print_iteration_nonlinear``. Callbacks
receive one ``IterationSummary`` per iteration; ``verbose=2`` prints one table row each.
"""

from __future__ import annotations

import sys
from typing import NamedTuple, TextIO

__all__ = ["IterationSummary", "ProgressPrinter"]


class IterationSummary(NamedTuple):
    """What one LM iteration did.

    Attributes:
        iteration: 0 for the start point, then 1, 2, ... per outer iteration.
        cost: F = ½Σρ(r²) after the iteration.
        cost_change: decrease of F in this iteration (0 if no step was accepted).
        gradient_norm: ‖g‖∞ at the new point.
        step_norm: ‖p‖₂ of the last attempted step.
        gain_ratio: ρ of the last attempted step.
        damping: λ after the iteration (with a trust radius: the accepted step's λ; after
            a rejection that ended the fit, the λ the next attempt would have taken).
        accepted: whether a step was accepted.
        attempts: number of λ tried (function evaluations) in this iteration.
        nfev: function evaluations so far.
    """

    iteration: int
    cost: float
    cost_change: float
    gradient_norm: float
    step_norm: float
    gain_ratio: float
    damping: float
    accepted: bool
    attempts: int
    nfev: int


class ProgressPrinter:
    """Prints a fixed-width table of ``IterationSummary`` rows to a stream (stdout by default,
    looked up at print time so ``contextlib.redirect_stdout`` works)."""

    HEADER = (f"{'Iter':>6} {'nfev':>6} {'Cost':>14} {'Cost change':>12} {'Gradient':>10} "
              f"{'Step':>10} {'rho':>9} {'lambda':>9} {'ok':>3} {'try':>4}")

    def __init__(self, stream: TextIO | None = None):
        self._stream = stream
        self._started = False

    def __call__(self, s: IterationSummary) -> None:
        out = self._stream or sys.stdout
        if not self._started:
            print(self.HEADER, file=out)
            self._started = True
        if s.iteration == 0:
            print(f"{0:>6d} {s.nfev:>6d} {s.cost:>14.7e} {'':>12} {s.gradient_norm:>10.3e} "
                  f"{'':>10} {'':>9} {s.damping:>9.2e} {'':>3} {'':>4}", file=out)
            return
        print(f"{s.iteration:>6d} {s.nfev:>6d} {s.cost:>14.7e} {s.cost_change:>12.4e} "
              f"{s.gradient_norm:>10.3e} {s.step_norm:>10.3e} {s.gain_ratio:>9.2e} "
              f"{s.damping:>9.2e} {'y' if s.accepted else 'n':>3} {s.attempts:>4d}", file=out)
