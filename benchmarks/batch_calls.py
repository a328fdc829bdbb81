"""Small batches, call by call: the warm cost of one ``curve_fit_batch`` call of K 2-D Gaussians
(a TensorFlow model, XLA), against a loop over SciPy's ``curve_fit`` on the same K problems.

Users with one image (or one spectrum file) at a time call ``curve_fit_batch`` once per image:
for small K the call's fixed cost (the front door, the probe of problem 0, the compiled call,
the results) matters as much as the fits. Each K is run with ``chunk_size`` the next power of
two at least K (at least 128), warm (the first call, which compiles, is not timed), on new data
at every call.

    python benchmarks/batch_calls.py [--k 100 1000] [--repeat 9]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from batch import gauss2d, gauss2d_data, gauss2d_jac, gauss2d_np  # noqa: E402

TOLERANCES = dict(ftol=1e-8, xtol=1e-8, gtol=1e-8)  # SciPy's defaults, for all


def ours(k: int, repeat: int) -> list[float]:
    import marquardt

    chunk = max(128, 1 << (k - 1).bit_length())
    x, y, p0 = gauss2d_data(k, seed=1)
    marquardt.curve_fit_batch(gauss2d, x, y, p0=p0, chunk_size=chunk, **TOLERANCES)
    times = []
    for seed in range(2, 2 + repeat):
        x, y, p0 = gauss2d_data(k, seed=seed)
        started = time.perf_counter()
        marquardt.curve_fit_batch(gauss2d, x, y, p0=p0, chunk_size=chunk, **TOLERANCES)
        times.append(time.perf_counter() - started)
    return times


def scipy_loop(k: int, repeat: int) -> list[float]:
    import scipy.optimize

    times = []
    for seed in range(2, 2 + repeat):
        x, y, p0 = gauss2d_data(k, seed=seed)
        started = time.perf_counter()
        for i in range(k):
            scipy.optimize.curve_fit(gauss2d_np, x, y[i], p0=p0[i], jac=gauss2d_jac,
                                     **TOLERANCES)
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.1f} at start; "
          f"tolerances 1e-8; warm, new data at every call; median (best) of {args.repeat}")
    for k in args.k:
        a, b = ours(k, args.repeat), scipy_loop(k, max(3, args.repeat // 3))
        print(f"  K = {k:6,d}: curve_fit_batch {1e3 * np.median(a):8.2f} ms a call "
              f"({1e3 * min(a):.2f}), {k / np.median(a):9,.0f} fits/s; SciPy loop "
              f"{1e3 * np.median(b):8.2f} ms ({k / np.median(b):7,.0f} fits/s); "
              f"ratio {np.median(b) / np.median(a):.1f}x")


if __name__ == "__main__":
    main()
