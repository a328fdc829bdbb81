"""NIST StRD with NumPy models: marquardt.curve_fit against SciPy's curve_fit, warm, side by side.

The host executor's speed on the problems of ``benchmarks/nist.py``, without TensorFlow: each
model is the NIST formula evaluated with NumPy (``Formula.evaluate_numpy``), and both fitters
get the same function and the same finite differences (``jac='2-point'``; SciPy's
``curve_fit`` runs MINPACK's ``lmdif``). Per problem and NIST start: the median of ``--repeat``
warm fits for each (fits interleaved, so that a busy machine slows both alike), the ratio,
the calls of the model (``nfev``, finite-difference calls included for both) and the LRE of
each. Totals: the median and geometric mean of the per-fit ratios.

marquardt runs at its defaults (ftol 1e-15, xtol = gtol 1e-12, for the certified digits);
SciPy at its own (1.49e-8). ``--scipy-tolerances`` runs marquardt at SciPy's tolerances too,
which separates the cost of the stricter defaults (more evaluations) from the cost of the
Python loop (time per evaluation).

Usage: python benchmarks/nist_numpy.py [--repeat 21] [--scipy-tolerances] [FILES...]
"""

from __future__ import annotations

import argparse
import math
import pathlib
import statistics
import sys
import time
import warnings

import numpy as np
import scipy.optimize

import marquardt
from marquardt import nist

DATA = pathlib.Path(__file__).resolve().parents[1] / "tests" / "data" / "nist"


def numpy_model(p):
    """``f(x, *b)`` evaluating the problem's formula with NumPy."""
    names, params = p.variable_names, p.parameter_names

    def f(x, *b):
        return p.formula.evaluate_numpy(dict(zip(names, np.atleast_2d(x))), dict(zip(params, b)))

    return f


def run(path, repeat, ours_kw):
    p = nist.load(path)
    f, x, y = numpy_model(p), p.x, p.target()
    rows = []
    for start in (0, 1):
        x0 = p.starts[start]

        def ours():
            return marquardt.curve_fit(f, x, y, p0=x0, jac="2-point", full_output=True,
                                       **ours_kw)

        def theirs():
            return scipy.optimize.curve_fit(f, x, y, p0=x0, full_output=True)

        out = {}
        for name, fit in (("ours", ours), ("scipy", theirs)):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    res = fit()
                out[name] = (nist.lre(res[0], p.certified).min(), res[2]["nfev"])
            except RuntimeError:  # not converged: LRE 0
                out[name] = (0.0, 0)
        times = {"ours": [], "scipy": []}
        for _ in range(repeat):
            for name, fit in (("ours", ours), ("scipy", theirs)):
                t0 = time.perf_counter()
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        fit()
                except RuntimeError:
                    pass
                times[name].append(time.perf_counter() - t0)
        ours_t, scipy_t = (statistics.median(times[k]) for k in ("ours", "scipy"))
        rows.append((p.name, start + 1, ours_t, scipy_t, out["ours"], out["scipy"]))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", type=pathlib.Path)
    ap.add_argument("--repeat", type=int, default=21)
    ap.add_argument("--scipy-tolerances", action="store_true",
                    help="marquardt at SciPy's ftol = xtol = 1.49e-8, gtol off")
    args = ap.parse_args(argv)
    kw = dict(ftol=1.49012e-8, xtol=1.49012e-8, gtol=None) if args.scipy_tolerances else {}
    files = args.files or sorted(DATA.glob("*.dat"))
    rows = [r for path in files for r in run(path, args.repeat, kw)]
    print(f"{'problem':<10}{'start':>6}{'ours ms':>10}{'scipy ms':>10}{'ratio':>8}"
          f"{'ours nfev':>11}{'scipy nfev':>11}{'ours LRE':>10}{'scipy LRE':>10}")
    for name, start, ours_t, scipy_t, (lre_o, nfev_o), (lre_s, nfev_s) in rows:
        print(f"{name:<10}{start:>6}{1e3 * ours_t:>10.3f}{1e3 * scipy_t:>10.3f}"
              f"{ours_t / scipy_t:>8.2f}{nfev_o:>11}{nfev_s:>11}{lre_o:>10.1f}{lre_s:>10.1f}")
    ratios = [r[2] / r[3] for r in rows]
    per_call = [(r[2] / max(r[4][1], 1)) / (r[3] / max(r[5][1], 1)) for r in rows]
    print(f"\nwarm time ratio (ours / SciPy): median {statistics.median(ratios):.2f}, geometric "
          f"mean {math.exp(statistics.fmean(math.log(v) for v in ratios)):.2f}; "
          f"calls of the model {sum(r[4][1] for r in rows)} against "
          f"{sum(r[5][1] for r in rows)}; time per call, ratio: median "
          f"{statistics.median(per_call):.2f}")
    print(f"tensorflow imported: {'tensorflow' in sys.modules}")


if __name__ == "__main__":
    main()
