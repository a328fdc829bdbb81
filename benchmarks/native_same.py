"""Does the native executor give the Python trace's results bit for bit across options?

The exponential of ``single_fit.py`` (``least_squares`` on its residuals, x0 = (1, 1, 0)) under
every combination of loss, Jacobian (``'2-point'``, ``'3-point'``, ``'cs'``, a callable), damping
policy, solver, bounds and ``x_scale`` (a random sample of ``--count`` of them, ``--seed``):
each fitted on the trace, then twice with ``native_loop.enabled()`` (the first records and
builds, the second runs natively), and the results' x, cost, residuals, J, gradient, counts,
status and history compared byte for byte. Prints how many were the same, how many differed
(each one named), and how many stayed on the trace and why (an operation without a C form, a
step that runs eagerly).

Usage: python benchmarks/native_same.py [--count 120] [--seed 1] [--solvers svd eigen cholesky]
"""

from __future__ import annotations

import argparse
import collections
import itertools
import random

import numpy as np

import marquardt
from marquardt._backend.numpy import native_loop
from marquardt._core import host

T = np.linspace(0.0, 4.0, 50)
Y = 2.5 * np.exp(-1.3 * T) + 0.5 + 0.01 * np.random.default_rng(0).standard_normal(50)
KEYS = ("x", "cost", "fun", "jac", "grad", "nfev", "njev", "status", "nit", "history")


def fun(p):
    return p[0] * np.exp(-p[1] * T) + p[2] - Y


def jac(p):
    e = np.exp(-p[1] * T)
    return np.stack([e, -p[0] * T * e, np.ones_like(T)], axis=1)


def configurations(solvers):
    for loss, j, damping, solver, bounds, x_scale in itertools.product(
            ("linear", "soft_l1", "huber", "cauchy", "arctan"), ("2-point", "3-point", "cs", jac),
            ("trust-region", "nielsen", "trainlm"), solvers,
            (None, ([0, 0, -1], [2.2, 5, 1])), (1.0, "jac")):
        options = dict(loss=loss, jac=j, damping=damping, solver=solver, x_scale=x_scale)
        if bounds is not None:
            options["bounds"] = bounds
        yield options


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=120)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--solvers", nargs="+", default=["svd", "eigen", "cholesky"])
    args = parser.parse_args()
    chosen = list(configurations(args.solvers))
    random.Random(args.seed).shuffle(chosen)
    tally = collections.Counter()
    reasons = collections.Counter()
    for options in chosen[:args.count]:
        host._STEPS.clear()
        native_loop._BUILT.clear()
        native_loop._FAILURES.clear()
        with np.errstate(all="ignore"):
            expected = marquardt.least_squares(fun, [1.0, 1.0, 0.0], **options)
            with native_loop.enabled():
                marquardt.least_squares(fun, [1.0, 1.0, 0.0], **options)
                got = marquardt.least_squares(fun, [1.0, 1.0, 0.0], **options)
        built = list(native_loop._BUILT.values())
        if not built or built[0] is None:
            tally["on the trace"] += 1
            reasons[str(list(native_loop._FAILURES.values()))[:100]] += 1
            continue
        bad = [k for k in KEYS if np.asarray(expected[k]).tobytes() != np.asarray(got[k]).tobytes()]
        if bad:
            tally["differ"] += 1
            shown = {k: ("callable" if callable(v) else v) for k, v in options.items()}
            print(f"differ: {shown}: {bad}")
        else:
            tally["same"] += 1
    print(dict(tally))
    for reason, n in reasons.most_common():
        print(f"  on the trace ({n}): {reason}")


if __name__ == "__main__":
    main()
