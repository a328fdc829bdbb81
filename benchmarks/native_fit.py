"""A warm single fit on the native executor (issue #13, result 1): the Python trace, the
native steps (``_backend/numpy/native_loop.py``) and SciPy's ``curve_fit``, side by side.

The problem is ``single_fit.py``'s exponential (y = a·exp(−b·t) + c, 50 points, p0 = (1, 1, 0),
``jac='2-point'``; ``--jac`` for the analytic Jacobian). Each form is warmed up first (the
native one fits once on the trace, then compiles its steps, cached on disk), then ``--repeat``
rounds of one fit of each form, interleaved so that a busy machine slows every form alike:
the median and the fastest, and the ratios to SciPy. The native fit is checked to give the
trace's result bit for bit. ``native`` runs the loop in C (``native_cloop``),
``native-pyloop`` the same C steps from the loop in Python.

For instruction counts (repeatable on a shared machine), run one form alone:
``--fits N --form native`` does the warm-up and then N fits of that form only, so that under
``valgrind --tool=callgrind`` the difference between ``--fits N`` and ``--fits 0`` over N is one
warm fit's instructions (``--count`` runs both under callgrind and prints that).

Usage:
    python benchmarks/native_fit.py [--repeat 300] [--jac]
    python benchmarks/native_fit.py --fits 20 --form native      # under callgrind
    python benchmarks/native_fit.py --count --fits 20 [--forms native scipy]   # callgrind
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

T = np.linspace(0.0, 4.0, 50)
Y = 2.5 * np.exp(-1.3 * T) + 0.5 + 0.01 * np.random.default_rng(0).standard_normal(50)
P0 = [1.0, 1.0, 0.0]


def model(t, a, b, c):
    return a * np.exp(-b * t) + c


def model_jac(t, a, b, c):
    e = np.exp(-b * t)
    return np.stack([e, -a * t * e, np.ones_like(t)], axis=1)


FORMS = ("trace", "native", "native-pyloop", "scipy")


def fits(analytic: bool) -> dict:
    """One fit of each form (a callable each)."""
    import scipy.optimize

    import marquardt
    from marquardt._backend.numpy import native_loop

    jac = model_jac if analytic else "2-point"

    def trace():
        return marquardt.curve_fit(model, T, Y, p0=P0, jac=jac)

    def native():
        with native_loop.enabled():
            return marquardt.curve_fit(model, T, Y, p0=P0, jac=jac)

    def native_pyloop():  # the C steps, the loop in Python (``native_loop.LOOP_IN_C``)
        native_loop.LOOP_IN_C = False
        try:
            return native()
        finally:
            native_loop.LOOP_IN_C = True

    def scipy_fit():
        return scipy.optimize.curve_fit(model, T, Y, p0=P0,
                                        jac=model_jac if analytic else None)
    return {"trace": trace, "native": native, "native-pyloop": native_pyloop,
            "scipy": scipy_fit}


def warm_up(calls: dict) -> None:
    """Two fits of each form (the native one: record and compile, then its first native
    fit), and the native result checked against the trace's."""
    for _ in range(2):
        for call in calls.values():
            call()
    if "native" in calls and "trace" in calls:
        from marquardt._backend.numpy import native_loop

        failed = [str(e) for e in native_loop._FAILURES.values()]
        if failed:
            sys.exit(f"the native steps were not built: {failed}")
        a, b = calls["trace"](), calls["native"]()
        same = all(np.asarray(u).tobytes() == np.asarray(v).tobytes() for u, v in zip(a, b))
        print(f"native result bit for bit the trace's: {same}")


def timed(calls: dict, repeat: int) -> dict:
    times = {name: [] for name in calls}
    for _ in range(repeat):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return times


def count(forms, n: int, analytic: bool) -> None:
    """Instructions per warm fit of each form under callgrind (fits n minus fits 0, over n)."""
    per_fit = {}
    for form in forms:
        totals = []
        with tempfile.TemporaryDirectory() as tmp:
            for k in (0, n):
                cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/cg.out",
                       sys.executable, os.path.abspath(__file__), "--fits", str(k),
                       "--form", form] + (["--jac"] if analytic else [])
                out = subprocess.run(cmd, capture_output=True, text=True, check=True,
                                     env=dict(os.environ, PYTHONHASHSEED="0"))
                totals.append(int(re.search(r"Collected : (\d+)", out.stderr).group(1)))
        per_fit[form] = (totals[1] - totals[0]) // n
    base = per_fit.get("scipy")
    for form, value in per_fit.items():
        ratio = f"{value / base:8.2f}" if base else ""
        print(f"{form:<14}{value:>14,}{ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=300)
    parser.add_argument("--jac", action="store_true", help="the analytic Jacobian")
    parser.add_argument("--fits", type=int, default=None,
                        help="callgrind mode: warm up, then this many fits of --form")
    parser.add_argument("--form", choices=FORMS, default="native")
    parser.add_argument("--count", action="store_true",
                        help="run the forms under callgrind: instructions per warm fit")
    parser.add_argument("--forms", nargs="+", choices=FORMS, default=list(FORMS),
                        help="with --count: the forms to count (scipy last for the ratios)")
    args = parser.parse_args()
    if args.count:
        count(args.forms, args.fits or 20, args.jac)
        return
    calls = fits(args.jac)
    if args.fits is not None:  # one form, for callgrind
        call = calls[args.form]
        warm_up({args.form: call})
        for _ in range(args.fits):
            call()
        return
    warm_up(calls)
    times = timed(calls, args.repeat)
    base_med = statistics.median(times["scipy"])
    base_min = min(times["scipy"])
    print(f"{'form':<14}{'median ms':>11}{'x SciPy':>9}{'fastest ms':>12}{'x SciPy':>9}")
    for name, ts in times.items():
        med, low = statistics.median(ts), min(ts)
        print(f"{name:<14}{med * 1e3:>11.3f}{med / base_med:>9.2f}{low * 1e3:>12.3f}"
              f"{low / base_min:>9.2f}")


if __name__ == "__main__":
    main()
