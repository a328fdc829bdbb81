"""Cost per point of a captured model's generated C (``mq_cmodel``) against hand-written C.

The 2-D Gaussian of ``benchmarks/batch.py`` (5 parameters, a 5 x 5 image: m = 25), written in
NumPy (``gauss2d_np``), is captured by ``marquardt._model_capture.capture_model`` and emitted
with its exact Jacobian by ``_backend/numpy/native_formula.py``; it is compared with the
hand-written ``gauss2d`` of the probe ``benchmarks/batch_kernel_floor.py`` (analytic Jacobian,
e = exp(-q/(2 s²)) and a·e reused by hand). Both are compiled by ``native_load.load`` (the
project's flags, ``cc -O1 -ffp-contract=off``) with a loop calling the function ``--calls``
times on the same data, r and J both asked for.

Printed: nanoseconds per point (best of ``--rounds``; wall clock, noisy on a shared machine)
and, with ``--callgrind``, instructions per point counted by valgrind (``--toggle-collect`` on
each loop: exact and repeatable), value only and value with J.

With ``--fits K``: whole fits. The probe's LM loop (``batch_kernel_floor.C_SOURCE``) is
compiled once with a third model, the generated ``mq_cmodel`` behind the probe's model
signature, and K problems of the Gaussian are fitted with each model, one thread,
interleaved with SciPy's ``curve_fit`` loop on ``--sample`` of them (MINPACK, analytic
``jac``, tolerances 1e-8): fits/s, the ratios, and how far the two kernels' x lie apart.

Usage: python benchmarks/cmodel_point.py [--calls 200000] [--rounds 5] [--callgrind]
       [--fits 10000 --sample 1000]
"""

from __future__ import annotations

import argparse
import ctypes
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from batch import gauss2d_data, gauss2d_jac, gauss2d_np  # noqa: E402
from batch_kernel_floor import C_SOURCE, run_kernel, scipy_loop  # noqa: E402

from marquardt._backend.numpy import native_load  # noqa: E402
from marquardt._backend.numpy.native_formula import cmodel_source, load_cmodel  # noqa: E402
from marquardt._model_capture import capture_model  # noqa: E402

HAND = C_SOURCE + r"""
double hand_repeat(const double *p, const double *x, const double *y, long m, double *r,
                   double *J, long times) {
    double acc = 0.0;
    for (long t = 0; t < times; t++) {
        gauss2d(x, p, y, (int)m, r, J);
        acc += r[0];
    }
    return acc;
}
"""


def setup():
    xy, y, p0 = gauss2d_data(1, seed=0)
    xy = np.ascontiguousarray(xy)
    model = capture_model(gauss2d_np, xy, p0)
    if model is None:
        raise SystemExit("gauss2d_np was not captured")
    generated = load_cmodel(model)
    hand = native_load.load(HAND).hand_repeat
    hand.restype = ctypes.c_double
    hand.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_long] + [ctypes.c_void_p] * 2 + [
        ctypes.c_long]
    p = np.ascontiguousarray(p0[0])
    y0 = np.ascontiguousarray(y[0])
    r, J = np.empty(25), np.empty((25, 5))

    def run_generated(calls: int, jacobian: bool) -> None:
        generated.repeat(p, xy, y0, calls, jacobian=jacobian)

    def run_hand(calls: int, jacobian: bool) -> None:
        hand(p.ctypes.data, xy.ctypes.data, y0.ctypes.data, 25, r.ctypes.data,
             J.ctypes.data if jacobian else None, calls)

    # the same numbers, first: r and J of the two agree to rounding
    rg, Jg = generated(p, xy, y0)
    hand(p.ctypes.data, xy.ctypes.data, y0.ctypes.data, 25, r.ctypes.data, J.ctypes.data, 1)
    assert np.allclose(rg, r, rtol=1e-13, atol=1e-13) and np.allclose(Jg, J, rtol=1e-12,
                                                                        atol=1e-13)
    return {"generated": run_generated, "hand-written": run_hand}


def _collected(symbol: str, which: str, jacobian: bool, calls: int) -> int:
    """Instructions valgrind counts inside ``symbol`` (and what it calls) in one process."""
    env = {**os.environ, "PYTHONHASHSEED": "0", "OPENBLAS_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg.out")
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                        f"--toggle-collect={symbol}", sys.executable, __file__,
                        "--inner", which, str(int(jacobian)), str(calls)],
                       check=True, capture_output=True, env=env)
        with open(out) as fh:
            return int(re.search(r"^(?:summary|totals): (\d+)", fh.read(), re.M)[1])


def callgrind(calls: int) -> None:
    """Instructions per point: the model function's count (``--toggle-collect`` on it: the
    static ``mq_cmodel`` and the probe's ``gauss2d``, functions of their own at -O1, their
    ``exp`` calls included) with 2·calls and with calls, the difference / (calls · 25)."""
    for which, symbol in (("generated", "mq_cmodel"), ("hand-written", "gauss2d")):
        for jacobian in (False, True):
            twice = _collected(symbol, which, jacobian, 2 * calls)
            once = _collected(symbol, which, jacobian, calls)
            label = "r and J" if jacobian else "r only "
            print(f"  {which:<13} {label}: {(twice - once) / (calls * 25):7.1f} "
                  f"instructions per point (valgrind)")


def fits(k: int, sample: int, rounds: int) -> None:
    """The probe's LM loop with the hand-written and with the generated Gaussian."""
    xy, y, p0 = gauss2d_data(k, seed=0)
    model = capture_model(gauss2d_np, xy, p0)
    adapter = r"""
static void generated(const double *xy, const double *p, const double *y, int m, double *r,
                      double *J) {
    const mq_data d = {xy, m, y, 0, m};
    mq_cmodel(p, &d, r, J);
}
"""
    choice = "model_fn f = model == 0 ? gauss2d : double_exp;"
    assert choice in C_SOURCE
    source = cmodel_source(model) + adapter + C_SOURCE.replace(
        choice, "model_fn f = model == 0 ? gauss2d : model == 1 ? double_exp : generated;")
    kernel = native_load.load(source)
    kernel.fit_range.restype = ctypes.c_int
    kernel.fit_range.argtypes = [ctypes.c_int] + [ctypes.c_void_p] * 4 + [ctypes.c_int] * 4 + [
        ctypes.c_double, ctypes.c_int]
    best = {"hand-written": np.inf, "generated": np.inf, "scipy": np.inf}
    scipy_loop(gauss2d_np, gauss2d_jac, xy, y, p0, 20)
    for _ in range(rounds):
        for name, which in (("hand-written", 0), ("generated", 2)):
            started = time.perf_counter()
            x, nfev = run_kernel(kernel, which, xy, y, p0, 1)
            best[name] = min(best[name], (time.perf_counter() - started) / k)
            if name == "hand-written":
                x_hand, nfev_hand = x, nfev
        started = time.perf_counter()
        scipy_loop(gauss2d_np, gauss2d_jac, xy, y, p0, sample)
        best["scipy"] = min(best["scipy"], (time.perf_counter() - started) / sample)
    rel = np.abs(x - x_hand) / np.maximum(np.abs(x_hand), 1e-300)
    print(f"whole fits, K = {k}, one thread, best of {rounds} interleaved rounds "
          f"(native_load's -O1):")
    for name, seconds in best.items():
        print(f"  {name:<13} {1 / seconds:>10,.0f} fits/s = {best['scipy'] / seconds:5.1f}x "
              f"SciPy's loop")
    print(f"  evaluations per fit: hand-written {nfev_hand.mean():.2f}, generated "
          f"{nfev.mean():.2f}; x, generated against hand-written: median relative "
          f"difference {np.median(rel):.1e}, max {rel.max():.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--callgrind", action="store_true")
    parser.add_argument("--fits", type=int, default=0, help="K problems for whole fits")
    parser.add_argument("--sample", type=int, default=1000, help="SciPy fits per round")
    parser.add_argument("--inner", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fits:
        fits(args.fits, args.sample, args.rounds)
        return
    runs = setup()
    if args.inner:
        which, jacobian, calls = args.inner
        runs[which](int(calls), bool(int(jacobian)))
        return
    print(f"2-D Gaussian, m = 25, n = 5; {args.calls:,} calls, best of {args.rounds} rounds; "
          f"load average {os.getloadavg()[0]:.1f}")
    for jacobian in (False, True):
        best = {name: np.inf for name in runs}
        for _ in range(args.rounds):
            for name, run in runs.items():  # interleaved
                started = time.perf_counter()
                run(args.calls, jacobian)
                best[name] = min(best[name], time.perf_counter() - started)
        for name, seconds in best.items():
            label = "r and J" if jacobian else "r only "
            print(f"  {name:<13} {label}: {seconds / (args.calls * 25) * 1e9:6.2f} ns per point")
    if args.callgrind:
        callgrind(max(1, args.calls // 100))


if __name__ == "__main__":
    main()
