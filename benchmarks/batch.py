"""Many independent fits: curve_fit_batch against loops of SciPy's and our curve_fit.

Two models, as in the batched-fits issue: a 4-parameter double exponential decay (64 time
points) and Gpufit's 2-D Gaussian (5 parameters on a 5×5 pixel grid). For each, K problems with
random true parameters, noise and starts 10-20 % off, fitted
  * by ``marquardt.curve_fit_batch`` (all K at once; the first call, which compiles, is timed
    separately),
  * by a Python loop over ``scipy.optimize.curve_fit(method='lm')`` with the analytic
    Jacobian, on the first ``--loop`` problems (fits per second extrapolate linearly),
  * by a loop over ``marquardt.curve_fit`` on the first ``--ours-loop`` problems.
Prints fits per second and ratios, the agreement of the batched and SciPy answers, and peak
memory: ``ru_maxrss`` of a child process per K (``--memory``), whose slope is bytes per fit.

Usage: python benchmarks/batch.py [--k 10000] [--loop 1000] [--ours-loop 30] [--memory]
Run on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import scipy.optimize  # noqa: E402
import tensorflow as tf  # noqa: E402

import marquardt  # noqa: E402


def double_exp(t, a1, k1, a2, k2):
    return a1 * tf.exp(-k1 * t) + a2 * tf.exp(-k2 * t)


def double_exp_np(t, a1, k1, a2, k2):
    return a1 * np.exp(-k1 * t) + a2 * np.exp(-k2 * t)


def double_exp_jac(t, a1, k1, a2, k2):
    e1, e2 = np.exp(-k1 * t), np.exp(-k2 * t)
    return np.stack([e1, -a1 * t * e1, e2, -a2 * t * e2], axis=1)


def gauss2d(xy, a, x0, y0, s, b):
    return a * tf.exp(-((xy[0] - x0) ** 2 + (xy[1] - y0) ** 2) / (2 * s * s)) + b


def gauss2d_np(xy, a, x0, y0, s, b):
    return a * np.exp(-((xy[0] - x0) ** 2 + (xy[1] - y0) ** 2) / (2 * s * s)) + b


def gauss2d_jac(xy, a, x0, y0, s, b):
    dx, dy = xy[0] - x0, xy[1] - y0
    e = np.exp(-(dx**2 + dy**2) / (2 * s * s))
    return np.stack([e, a * e * dx / s**2, a * e * dy / s**2,
                     a * e * (dx**2 + dy**2) / s**3, np.ones_like(e)], axis=1)


def double_exp_data(k, seed=0, m=64):
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 10.0, m)
    p = np.stack([rng.uniform(0.5, 1.5, k), rng.uniform(1.5, 3.0, k),
                  rng.uniform(0.2, 0.8, k), rng.uniform(0.1, 0.5, k)], axis=1)
    y = p[:, :1] * np.exp(-p[:, 1:2] * t) + p[:, 2:3] * np.exp(-p[:, 3:4] * t)
    return t, y + 0.01 * rng.standard_normal(y.shape), p * rng.uniform(0.8, 1.2, p.shape)


def gauss2d_data(k, seed=0, size=5):
    rng = np.random.default_rng(seed)
    g = np.arange(size, dtype=float)
    xy = np.stack([a.ravel() for a in np.meshgrid(g, g)])
    c = (size - 1) / 2
    p = np.stack([rng.uniform(5, 15, k), c + rng.uniform(-0.5, 0.5, k),
                  c + rng.uniform(-0.5, 0.5, k), rng.uniform(0.8, 1.2, k),
                  rng.uniform(0.5, 1.5, k)], axis=1)
    y = p[:, :1] * np.exp(-((xy[0] - p[:, 1:2]) ** 2 + (xy[1] - p[:, 2:3]) ** 2)
                          / (2 * p[:, 3:4] ** 2)) + p[:, 4:5]
    y += 0.05 * p[:, :1] * rng.standard_normal(y.shape)
    return xy, y, p * rng.uniform(0.9, 1.1, p.shape)


MODELS = {
    "double_exp": (double_exp, double_exp_np, double_exp_jac, double_exp_data),
    "gauss2d": (gauss2d, gauss2d_np, gauss2d_jac, gauss2d_data),
}


def memory_child(name, k):
    """Peak RSS (bytes) of a process that imports everything and fits K problems."""
    f, _, _, data = MODELS[name]
    x, y, p0 = data(k)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    marquardt.curve_fit_batch(f, x, y, p0)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(before * 1024, after * 1024)


def run_model(name, k, loop, ours_loop):
    f, f_np, jac_np, data = MODELS[name]
    x, y, p0 = data(k)
    t0 = time.perf_counter()
    marquardt.curve_fit_batch(f, x, y, p0)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = marquardt.curve_fit_batch(f, x, y, p0)
    batch_t = time.perf_counter() - t0

    t0 = time.perf_counter()
    ref = []
    for i in range(loop):
        try:
            ref.append(scipy.optimize.curve_fit(f_np, x, y[i], p0=p0[i], jac=jac_np,
                                                method="lm")[0])
        except RuntimeError:
            ref.append(np.full(p0.shape[1], np.nan))
    scipy_t = time.perf_counter() - t0
    ref = np.array(ref)

    marquardt.curve_fit(f, x, y[0], p0=p0[0])  # compile once; the loop measures warm fits
    t0 = time.perf_counter()
    for i in range(ours_loop):
        marquardt.curve_fit(f, x, y[i], p0=p0[i])
    ours_t = time.perf_counter() - t0

    rel = np.abs(res.x[:loop] - ref) / np.maximum(np.abs(ref), 1e-12)
    agree = np.nanmax(rel, axis=1)
    batch_fps, scipy_fps, ours_fps = k / batch_t, loop / scipy_t, ours_loop / ours_t
    print(f"\n{name}: K = {k}, {int(np.sum(res.success))} successful")
    print(f"  curve_fit_batch      {batch_fps:>12,.0f} fits/s  ({batch_t:.2f} s; first call with "
          f"compilation {first:.2f} s)")
    print(f"  scipy curve_fit loop {scipy_fps:>12,.0f} fits/s  ({loop} fits in {scipy_t:.2f} s)")
    print(f"  marquardt.curve_fit  {ours_fps:>12,.0f} fits/s  ({ours_loop} fits in {ours_t:.2f} s)")
    print(f"  ratio batch / scipy loop: {batch_fps / scipy_fps:,.1f}x; batch / our loop: "
          f"{batch_fps / ours_fps:,.0f}x")
    print(f"  agreement with SciPy on the first {loop}: median max rel. diff "
          f"{np.nanmedian(agree):.1e}, {int(np.sum(agree < 1e-6))} within 1e-6")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, default=10_000)
    ap.add_argument("--loop", type=int, default=1000)
    ap.add_argument("--ours-loop", type=int, default=30)
    ap.add_argument("--models", default="double_exp,gauss2d")
    ap.add_argument("--memory", action="store_true", help="peak RSS per K in child processes")
    ap.add_argument("--memory-child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.memory_child:
        memory_child(args.memory_child[0], int(args.memory_child[1]))
        return
    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPU cores, devices: "
          f"{[d.device_type for d in tf.config.list_physical_devices()]}")
    for name in args.models.split(","):
        run_model(name, args.k, min(args.loop, args.k), min(args.ours_loop, args.k))
        if args.memory:
            peaks = []
            for k in (2_000, 10_000, 40_000):
                out = subprocess.run([sys.executable, __file__, "--memory-child", name, str(k)],
                                     capture_output=True, text=True, check=True).stdout.split()
                peaks.append((k, int(out[0]), int(out[1])))
            for k, before, after in peaks:
                print(f"  K = {k:>6}: peak RSS {after / 2**20:,.0f} MiB (after imports "
                      f"{before / 2**20:,.0f} MiB)")
            slope = (peaks[-1][2] - peaks[0][2]) / (peaks[-1][0] - peaks[0][0])
            print(f"  growth: {slope:,.0f} bytes per fit")


if __name__ == "__main__":
    main()
