"""Moré-Garbow-Hillstrom hard starts: marquardt.least_squares against MINPACK and SciPy trf.

The 19 fixed-dimension nonlinear least-squares problems of Moré, Garbow & Hillstrom (problems
1-19 of the paper, all with m ≥ n; the variable-dimension problems 20-35 are left out), each
from the paper's start x0 and from 10·x0 and 100·x0 (the far starts of MINPACK's own test
driver), 57 starts in all. The problems, written from the paper's definitions with analytic
Jacobians, are in ``tests/mgh_problems.py`` (shared with ``tests/test_mgh.py``).

Solvers, run side by side on every start with the same residuals and Jacobian:

* ``ours``: ``marquardt.least_squares`` at its defaults, ``jac`` the analytic callable;
* ``lm``: ``scipy.optimize.least_squares(method='lm')`` (MINPACK ``lmder``), default tolerances;
* ``lm15``: the same with ftol = xtol = gtol = 1e-15 (ftol and xtol at MINPACK's lower limit,
  machine epsilon, would be refused below it);
* ``trf``: ``least_squares(method='trf', ftol=xtol=gtol=1e-15)``.

Costs are printed as the paper's f(x) = Σ fᵢ(x)², twice SciPy's ``cost``.

Solved rule: a start is solved by a solver when its final f is within a relative 1e-6 of the
reference value f_ref of the problem, plus an absolute 1e-10 for the zero-residual problems
(f* = 0): f ≤ f_ref (1 + 1e-6) + 1e-10·[f* = 0]. f_ref is the smaller of the paper's global
minimum f* (given here to more digits where known) and the best f any solver reached on any
start of that problem. Where several local minima exist (Freudenstein-Roth 48.98, Bard 17.43,
Kowalik-Osborne 1.03e-3, Biggs EXP6 5.66e-3, Box 3-D's valley) a start that ends in a local
minimum is therefore *not* solved, for every solver alike. Some starts run off to a minimum at
infinity: Beale's valley x₂ → 1, x₁ → ∞ has infimum f = 0.4524, Bard's x₂, x₃ → −∞ has 17.43;
there the gradient cosine stays large although ‖g‖ → 0.

A ``!`` after our cost marks a start where marquardt reported success (``res.success``) away
from a stationary point: not solved and the gradient cosine maxⱼ |Jⱼᵀr| / (‖r‖ ‖Jⱼ‖) above
1e-4 (MINPACK's scale-invariant gradient test).

Usage::

    PYTHONPATH=src python benchmarks/mgh.py [--only NAME ...] [--verbose] [--damping NAME]
        [--x-scale jac|NUMBER]

Runs in about five seconds.

Reference:
    J. J. Moré, B. S. Garbow, K. E. Hillstrom, "Testing unconstrained optimization software",
    ACM Transactions on Mathematical Software 7(1), 17-41 (1981).
"""

from __future__ import annotations

import argparse
import inspect
import math
import pathlib
import sys
import time
import warnings
from typing import NamedTuple

import numpy as np
import scipy.optimize

import marquardt

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
from mgh_problems import PROBLEMS, Problem  # noqa: E402

__all__ = ["run_start", "solved", "main"]


FACTORS = (1.0, 10.0, 100.0)
SOLVERS = ("ours", "lm", "lm15", "trf")
RTOL, ATOL, COS_TOL = 1e-6, 1e-10, 1e-4


class Run(NamedTuple):
    f: float  # Σ rᵢ² at the end (inf when the solver raised)
    nfev: int
    success: bool
    cosine: float  # gradient cosine at the end
    seconds: float


def _cosine(r, jac):
    g = jac.T @ r
    denom = np.linalg.norm(r) * np.linalg.norm(jac, axis=0)
    ok = denom > 0
    return float(np.max(np.abs(g[ok]) / denom[ok])) if ok.any() else 0.0


#: ``ours``' damping policy (``--damping``; least_squares' default unless given)
DAMPING = ["nielsen"]
#: ``ours``' damping matrix (``--x-scale``): ``'jac'`` (least_squares' default, Moré's D) or a
#: float, D = I / x_scale² (Levenberg's D = I for 1.0, as trf's default)
X_SCALE = ["jac"]


def run_start(p: Problem, factor: float, solver: str) -> Run:
    """One solver from ``factor``·x0; the final f = Σ rᵢ² and counts."""
    x0 = factor * np.asarray(p.x0, dtype=float)
    t0 = time.perf_counter()
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            if solver == "ours":
                res = marquardt.least_squares(p.fun, x0, jac=p.jac, damping=DAMPING[0],
                                              x_scale=X_SCALE[0])
            elif solver == "lm":
                res = scipy.optimize.least_squares(p.fun, x0, jac=p.jac, method="lm")
            elif solver == "lm15":
                eps = np.finfo(float).eps
                res = scipy.optimize.least_squares(p.fun, x0, jac=p.jac, method="lm", ftol=eps,
                                                   xtol=eps, gtol=1e-15)
            else:
                res = scipy.optimize.least_squares(p.fun, x0, jac=p.jac, method="trf",
                                                   ftol=1e-15, xtol=1e-15, gtol=1e-15)
        except Exception:  # a solver that fails outright has not solved the start
            return Run(math.inf, 0, False, math.nan, time.perf_counter() - t0)
        seconds = time.perf_counter() - t0
        r = p.fun(res.x)
        f = float(r @ r) if np.all(np.isfinite(r)) else math.inf
        cos = _cosine(r, p.jac(res.x)) if math.isfinite(f) else math.nan
    return Run(f, int(res.nfev), bool(res.success), cos, seconds)


def solved(f: float, f_ref: float, fstar: float) -> bool:
    """The solved rule of the module docstring."""
    return f <= f_ref * (1.0 + RTOL) + (ATOL if fstar == 0.0 else 0.0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", help="problem names to run")
    ap.add_argument("--verbose", action="store_true", help="print gradient cosines too")
    ap.add_argument("--x-scale", default="jac",
                    help="ours' x_scale: 'jac' (default, Moré's D) or a number (1: D = I)")
    ap.add_argument("--damping", default=None,
                    help="ours' damping policy (default: least_squares' default)")
    args = ap.parse_args(argv)
    X_SCALE[0] = args.x_scale if args.x_scale == "jac" else float(args.x_scale)
    DAMPING[0] = args.damping or inspect.signature(marquardt.least_squares).parameters[
        "damping"].default
    problems = [p for p in PROBLEMS if not args.only or p.name in args.only]
    t_start = time.perf_counter()
    results = {}
    for p in problems:
        for k in FACTORS:
            for s in SOLVERS:
                results[p.name, k, s] = run_start(p, k, s)
    f_ref = {p.name: min([p.fstar] + [results[p.name, k, s].f for k in FACTORS for s in SOLVERS])
             for p in problems}

    head = f"{'problem':<20}{'x0':>5} " + "".join(f"{s + ' f':>14}{'':2}" for s in SOLVERS)
    head += "".join(f"{s + ' nfev':>10}" for s in SOLVERS)
    print(head)
    print("-" * len(head))
    counts = {s: 0 for s in SOLVERS}
    missed, false_success = [], []
    for p in problems:
        for k in FACTORS:
            row = f"{p.name:<20}{int(k):>5} "
            ok = {}
            for s in SOLVERS:
                run = results[p.name, k, s]
                ok[s] = solved(run.f, f_ref[p.name], p.fstar)
                counts[s] += ok[s]
                flag = "*" if ok[s] else " "
                if s == "ours" and run.success and not ok[s] and not run.cosine <= COS_TOL:
                    flag += "!"
                    false_success.append(f"{p.name} x{int(k)} (cosine {run.cosine:.1e})")
                row += f"{run.f:>14.6e}{flag:<2}"
            row += "".join(f"{results[p.name, k, s].nfev:>10d}" for s in SOLVERS)
            if args.verbose:
                row += "  cos " + " ".join(f"{results[p.name, k, s].cosine:.0e}"
                                           for s in SOLVERS)
            print(row)
            if not ok["ours"] and (ok["lm"] or ok["lm15"] or ok["trf"]):
                who = [s for s in ("lm", "lm15", "trf") if ok[s]]
                missed.append(f"{p.name} x{int(k)} (ours {results[p.name, k, 'ours'].f:.3e}, "
                              f"solved by {', '.join(who)}: f_ref {f_ref[p.name]:.6e})")
    total = len(problems) * len(FACTORS)
    print()
    print("* solved (f <= f_ref (1 + 1e-6), + 1e-10 where f* = 0); "
          "! ours reported success away from a stationary point")
    print("solved: " + ", ".join(f"{s} {counts[s]}/{total}" for s in SOLVERS))
    print("solved by MINPACK lm or trf and not by ours: " + (str(len(missed)) if missed
                                                              else "none"))
    for line in missed:
        print("  " + line)
    if false_success:
        print("ours reported success away from a stationary point:")
        for line in false_success:
            print("  " + line)
    for p in problems:
        if f_ref[p.name] < p.fstar * (1.0 - 1e-5):
            print(f"note: {p.name}: best f {f_ref[p.name]:.10e} below the paper's f* {p.fstar}")
    print(f"time: {time.perf_counter() - t_start:.1f} s")


if __name__ == "__main__":
    main()
