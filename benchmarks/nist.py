"""NIST StRD nonlinear regression: marquardt.curve_fit against SciPy, side by side.

For every file in tests/data/nist and both NIST starting points, fits with
  * marquardt.curve_fit at default settings,
  * scipy.optimize.least_squares(method='lm') at default tolerances,
  * scipy.optimize.least_squares(method='trf') at default tolerances and at 1e-15,
SciPy getting the same exact Jacobian (TensorFlow autodiff through ``marquardt.scipy``) and the
residuals evaluated with NumPy (the fastest residual a SciPy user would write); and, timed only,
``least_squares(method='lm')`` with its '2-point' differences (what ``curve_fit`` runs). Prints, per
problem and start, the LRE (NIST's log relative error, minimum over parameters, capped at 11)
and the time of one fit; then totals: runs solved (LRE >= 4 and >= 6), mean LRE, median warm
time per fit and the ratio to SciPy lm.

Our times: *cold* is the first fit of a problem (tracing included); *warm* the median of
``--repeat`` later fits: on the host executor with the model's compiled r and J reused, until
the model has made 3,000 evaluations (``marquardt._tiering``), then as one compiled loop. SciPy has no compile step; its time is the
median of ``--repeat`` fits.

``--loop``: every warm fit as one compiled loop (XLA), from a problem's second fit on.

``--numpy``: our fits take the NumPy residual that SciPy gets (the model as NumPy code,
``jac='2-point'``, as a SciPy user's ``curve_fit`` would be called) instead of the TensorFlow
model, on the native executor from a problem's second fit on (``native_loop.enable``: the
tier a configuration reaches after 60,000 evaluations, built at once here); no TensorFlow is
imported. The LRE is then that of '2-point' differences, not of exact derivatives.

``--symbolic``: as ``--numpy``, but the exact Jacobian, derived symbolically from the parsed
formula (``Formula.as_numpy_jacobian``, what ``marquardt nist`` and ``marquardt fit`` use), is
given as a callable ``jac`` to our fits and to SciPy's ``lm``/``trf`` alike; no TensorFlow.

Usage: python benchmarks/nist.py [--repeat 5] [--markdown] [--loop | --numpy | --symbolic]
[FILES...]
Run on a quiet machine: other processes using the cores distort TensorFlow's timings most.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import sys  # noqa: E402

import numpy as np  # noqa: E402
import scipy.optimize  # noqa: E402

import marquardt  # noqa: E402
from marquardt import nist  # noqa: E402

SYMBOLIC = "--symbolic" in sys.argv[1:]
NUMPY = SYMBOLIC or "--numpy" in sys.argv[1:]  # before TensorFlow would be imported
if not NUMPY:
    import tensorflow as tf  # noqa: E402

    from marquardt.scipy import residual_functions  # noqa: E402

DATA = pathlib.Path(__file__).resolve().parents[1] / "tests" / "data" / "nist"


def timed(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, statistics.median(times)


def run_problem(path, repeat):
    p = nist.load(path)
    model = None if NUMPY else p.model()
    x, y = p.x, p.target()
    variables = dict(zip(p.variable_names, np.atleast_2d(x))) if x.ndim == 2 else {"x": x}

    def np_residual(b):
        return p.formula.evaluate_numpy(variables, dict(zip(p.parameter_names, b))) - y

    if SYMBOLIC:  # the formula's NumPy model and symbolic Jacobian, for both
        names = (p.variable_names, p.parameter_names)
        model, exact = p.formula.as_numpy_model(*names), p.formula.as_numpy_jacobian(*names)
        jac = {"jac": exact}

        def tf_jac(b):
            return exact(x, *b)
    elif NUMPY:  # ours on the NumPy model (the same evaluator), SciPy's Jacobian the same
        def model(_, *b):
            return p.formula.evaluate_numpy(variables, dict(zip(p.parameter_names, b)))
        tf_jac = "2-point"
        jac = {"jac": "2-point"}
    else:
        xt, yt = tf.constant(x), tf.constant(y)
        _, tf_jac = residual_functions(lambda b: model(xt, *tf.unstack(b)) - yt, p.starts[0])
        jac = {}
    rows = []
    for start in (0, 1):
        x0 = p.starts[start]
        t0 = time.perf_counter()
        popt = marquardt.curve_fit(model, x, y, p0=x0, **jac)[0]
        cold = time.perf_counter() - t0
        popt, warm = timed(lambda: marquardt.curve_fit(model, x, y, p0=x0, **jac)[0], repeat)
        row = {"name": p.name, "start": start + 1, "ours": nist.lre(popt, p.certified).min(),
               "ours_cold": cold, "ours_warm": warm}
        with np.errstate(all="ignore"):  # SciPy's curve_fit default: lm, '2-point'
            est, t = timed(lambda: scipy.optimize.least_squares(np_residual, x0, method="lm").x,
                           repeat)
        row["lm2"], row["lm2_time"] = nist.lre(est, p.certified).min(), t
        for label, kw in (("lm", {"method": "lm"}), ("trf", {"method": "trf"}),
                          ("trf15", {"method": "trf", "ftol": 1e-15, "xtol": 1e-15,
                                     "gtol": 1e-15})):
            def fit(kw=kw):
                try:
                    return scipy.optimize.least_squares(np_residual, x0, jac=tf_jac, **kw).x
                except Exception:  # noqa: BLE001 - a failed fit scores LRE 0
                    return np.full_like(x0, np.nan)
            with np.errstate(all="ignore"):
                est, t = timed(fit, repeat)
            row[label] = nist.lre(est, p.certified).min()
            row[label + "_time"] = t
        rows.append(row)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", type=pathlib.Path)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    ap.add_argument("--loop", action="store_true",
                    help="warm fits as the compiled loop from a problem's second fit (the "
                         "ski-rental threshold set to 0), not on the host executor")
    ap.add_argument("--numpy", action="store_true",
                    help="our fits on the NumPy residual with '2-point' differences, on the "
                         "native executor from a problem's second fit")
    ap.add_argument("--symbolic", action="store_true",
                    help="as --numpy with the formula's symbolic exact Jacobian for ours and "
                         "SciPy's lm and trf")
    args = ap.parse_args(argv)
    if args.numpy or args.symbolic:
        from marquardt._backend.numpy import native_loop
        native_loop.enable(True)
    if args.loop:
        from marquardt import _tiering
        _tiering.TENSORFLOW_EVALUATIONS = 0
    files = args.files or sorted(DATA.glob("*.dat"))
    rows = [r for f in files for r in run_problem(f, args.repeat)]
    head = ("problem", "start", "ours LRE", "cold s", "warm ms", "lm LRE", "lm ms", "trf LRE",
            "trf ms", "trf 1e-15 LRE", "trf 1e-15 ms")
    fmt = lambda r: (r["name"], str(r["start"]), f"{r['ours']:.1f}", f"{r['ours_cold']:.2f}",  # noqa: E731
                     f"{1e3 * r['ours_warm']:.2f}", f"{r['lm']:.1f}", f"{1e3 * r['lm_time']:.2f}",
                     f"{r['trf']:.1f}", f"{1e3 * r['trf_time']:.2f}", f"{r['trf15']:.1f}",
                     f"{1e3 * r['trf15_time']:.2f}")
    if args.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for r in rows:
            print("| " + " | ".join(fmt(r)) + " |")
    else:
        print(("{:<10}" + "{:>14}" * (len(head) - 1)).format(*head))
        for r in rows:
            print(("{:<10}" + "{:>14}" * (len(head) - 1)).format(*fmt(r)))
    print()
    lm_med = statistics.median(r["lm_time"] for r in rows)
    lm2_med = statistics.median(r["lm2_time"] for r in rows)
    ratios = np.array([r["ours_warm"] / r["lm2_time"] for r in rows])
    print(f"marquardt against SciPy lm with '2-point' (curve_fit's default): median time "
          f"{1e3 * lm2_med:.2f} ms for SciPy; per-fit ratio median {np.median(ratios):.2f}x, "
          f"geometric mean {np.exp(np.log(ratios).mean()):.2f}x")
    same = np.array([r["ours_warm"] / r["lm_time"] for r in rows])
    print(f"marquardt against SciPy lm given the same Jacobian: median time {1e3 * lm_med:.2f} "
          f"ms for SciPy; per-fit ratio median {np.median(same):.2f}x, geometric mean "
          f"{np.exp(np.log(same).mean()):.2f}x")
    for label, key, tkey in (("marquardt", "ours", "ours_warm"), ("scipy lm", "lm", "lm_time"),
                             ("scipy trf", "trf", "trf_time"), ("scipy trf 1e-15", "trf15", "trf15_time")):
        lres = np.array([r[key] for r in rows])
        med = statistics.median(r[tkey] for r in rows)
        print(f"{label:<16} solved {int((lres >= 4).sum())}/{len(rows)} (LRE>=4), "
              f"{int((lres >= 6).sum())}/{len(rows)} (LRE>=6); mean LRE {lres.mean():.2f}; "
              f"min {lres.min():.2f}; median time per fit {1e3 * med:.2f} ms "
              f"({med / lm_med:.2f}x scipy lm)")
    cold = [r["ours_cold"] for r in rows if r["start"] == 1]
    print(f"marquardt cold (first fit of a problem, tracing included): median {statistics.median(cold):.2f} s, "
          f"total {sum(cold):.1f} s over {len(cold)} problems")


if __name__ == "__main__":
    main()
