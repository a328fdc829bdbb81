"""When a single NumPy fit's configuration moves to the native executor: the rent it pays on
the Python trace first.

Building a configuration's native steps (``native_loop``) costs the emission (~0.1 s) and,
the first time on a machine, the compilation (``cc -O1``, ~0.4 s on a 2-core machine at
load ~4, ~0.8 s at load 5-7; then on disk, ``native_load``), while each fit there saves
about two thirds of a fit on the trace (the exponential of ``benchmarks/single_fit.py``, 36
evaluations: 1.29 -> 0.44 ms, ~24 us an evaluation). The ski-rental rule (``marquardt._tiering``
explains it) then says: fit on the trace until the fits have made ``LOAD_EVALUATIONS`` (~0.1 s
of savings), then emit the steps and load them where the disk cache holds them; where it does
not, compile them once the fits have made ``COMPILE_EVALUATIONS`` (~0.8 s of savings, the
busy machine's compilation). The rent is counted in evaluations, not seconds, so which fit
builds does not depend on the machine's load; the results do not depend on it at all (the
native steps are the trace's bit for bit).

This module is light on purpose: a process whose configurations never reach the rent never
imports the native executor (~36 ms of imports, ``native_loop`` and its companions).
``MARQUARDT_NATIVE=0`` in the environment turns the native executor off.
"""

from __future__ import annotations

import os
import threading

import numpy as np

from marquardt._core import host
from marquardt._core.records import LoopState

__all__ = ["COMPILE_EVALUATIONS", "LOAD_EVALUATIONS", "pay", "rent", "run", "wanted"]

#: Evaluations a configuration makes on the Python trace before its steps are emitted and
#: loaded from the disk cache: the emission's ~0.1 s over the ~24 us an evaluation saves
#: (2-core machine, 2026-12-05).
LOAD_EVALUATIONS = 5_000

#: The same before they are compiled where the disk cache lacks them: ``cc -O1``'s ~0.8 s on
#: the busy machine (0.38-0.84 s measured for the exponential's configuration, load 4-7; the
#: earlier 60,000 priced ``-O0`` at 1.3 s, which measures 0.16-0.37 s there) over ~24 us.
COMPILE_EVALUATIONS = 35_000

_RENT: dict = {}  # host's steps -> evaluations made on the trace
_RENT_LOCK = threading.Lock()
_RENT_MAX = 64  # configurations counted, as many as host._STEPS and native_loop keep


def wanted() -> bool:
    """Whether the environment leaves the native executor on (``MARQUARDT_NATIVE`` unset or
    not ``0``/``off``/``false``/``no``)."""
    return os.environ.get("MARQUARDT_NATIVE", "").strip().lower() not in ("0", "off", "false",
                                                                          "no")


def run(cfg, steps, evaluator, x0, f0, j0, lb, ub, d_fixed
        ) -> tuple[LoopState, np.ndarray] | None:
    """``host._native`` by default: the fit on the trace while the configuration ``steps``
    has made fewer than ``LOAD_EVALUATIONS`` (counted), else ``native_loop.run``'s (which
    builds, or fits on the native steps, or returns None for the trace)."""
    if rent(steps) < LOAD_EVALUATIONS:
        done = host.trace_fit(cfg, steps, evaluator, x0, f0, j0, lb, ub, d_fixed)
        pay(steps, done[0].nfev)
        return done
    from marquardt._backend.numpy import native_loop  # the first configuration that paid
    native_loop.differences_in_c()
    return native_loop.run(cfg, steps, evaluator, x0, f0, j0, lb, ub, d_fixed)


def rent(steps) -> int:
    """Evaluations the configuration ``steps`` has made on the trace."""
    with _RENT_LOCK:
        return _RENT.get(steps, 0)


def pay(steps, nfev) -> None:
    """Counts a trace fit's evaluations; the oldest configurations' counts go, as
    ``host._STEPS``'s entries do (``forget`` is told)."""
    with _RENT_LOCK:
        _RENT[steps] = _RENT.get(steps, 0) + int(nfev)
        while len(_RENT) > _RENT_MAX:
            del _RENT[next(iter(_RENT))]
