"""When a differentiable model's single fits move from the host executor to one compiled loop.

A model written with TensorFlow or JAX ops can be fitted two ways, with the same LM core:

* the **host executor** (``_core/host.py``): the model and its exact Jacobian compiled once as
  a function (0.1-0.4 s), the LM algebra in NumPy and LAPACK on the host, about 0.5 ms (JAX) to
  1.2 ms (TensorFlow) of Python per evaluation of r or of r and J;
* the **compiled loop**: the whole solve traced into one ``tf.while_loop`` or
  ``lax.while_loop`` and compiled by XLA, so a warm fit is one call (3-parameter exponential:
  1.0 ms on JAX, 2 ms on TensorFlow, against 5-6 ms on the host; NIST on TensorFlow: median
  3.4 ms), at the price of tracing and compiling it, 1.4 s (JAX) to 3-5 s (TensorFlow) once
  per model and shapes.

Which is cheaper depends on how many fits of the model follow, which nobody knows at the first
fit. The ski-rental rule (Karlin, Manasse, McGeoch, Owicki, "Competitive randomized algorithms
for non-uniform problems", Algorithmica 11, 1994) answers such questions: rent (run on the
host) until the rent paid equals the price of buying (compiling), then buy; the total is then
at most twice what the best choice in hindsight costs, however many fits follow. Compiling at
the second fit, the rule before this module, made a user who fits each model twice (the NIST
command: two starts per file) pay 0.8-2.5 s per model for nothing.

The rent is counted in evaluations on the host, not in seconds, so that which fit compiles does
not depend on the machine's load (the host executor and the compiled loop agree to rounding,
not bit for bit). It is counted per configuration (the loop's options: tolerances, loss,
f_scale, max_nfev, damping...), since each configuration is its own compiled loop: fits that
vary an option from call to call pay for no loop they will not reuse. The thresholds below are
the compile times divided by the host executor's cost per evaluation, both measured on a 2-core
machine: TensorFlow 3.5 s / 1.2 ms (its loop under XLA, 2026-12-05; 1.2 s as a plain graph
before), JAX 1.4 s / 0.45 ms (2026-12-04). A fit with a callback, ``verbose=2`` or a callable loss always runs on the
host (they run as Python after each iteration).
"""

from __future__ import annotations

import threading
from typing import Callable, Hashable

__all__ = ["HostUse", "compile_now", "TENSORFLOW_EVALUATIONS", "JAX_EVALUATIONS"]

#: Host evaluations of a TensorFlow model after which its solve is compiled into one loop.
TENSORFLOW_EVALUATIONS = 3000

#: The same for a JAX model (its host evaluations are cheaper, its compilation as long).
JAX_EVALUATIONS = 3000


class HostUse:
    """The evaluations a model's host functions have made, per configuration of the solve:
    kept with them in the backend's cache of compiled functions, so that they are forgotten
    together."""

    __slots__ = ("_counts", "_lock")

    def __init__(self) -> None:
        self._counts: dict[Hashable, int] = {}
        self._lock = threading.Lock()

    def counter(self, config: Hashable) -> Callable[[], None]:
        """A function that counts one evaluation made for a fit with ``config``."""
        def add() -> None:
            with self._lock:
                self._counts[config] = self._counts.get(config, 0) + 1
        return add

    def evaluations(self, config: Hashable | None = None) -> int:
        """Evaluations made for ``config``; with None, for all configurations."""
        with self._lock:
            if config is None:
                return sum(self._counts.values())
            return self._counts.get(config, 0)

    def paid_for(self, config: Hashable, threshold: int) -> bool:
        """The host has made ``threshold`` evaluations for ``config``: compiling its solve is
        now worth it."""
        return self.evaluations(config) >= threshold


def compile_now(compiled, host_functions, config: Hashable, threshold: int) -> bool:
    """Whether a fit with ``config`` runs as the compiled loop: the loop is compiled already
    (``compiled``, the backend's cache entry, or None), or the model's host functions
    (their cache entry ``(r, r and J, HostUse)``, or None) have paid for it."""
    if compiled is not None:
        return True
    return host_functions is not None and host_functions[2].paid_for(config, threshold)
