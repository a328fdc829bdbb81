"""What a per-problem compiled kernel reaches on many small fits (issue #13, result 2's design).

``curve_fit_batch`` runs the LM core over K problems at once as array operations (XLA, or
NumPy for NumPy models): hundreds of small kernels over (K,) and (K, n) arrays per iteration,
so its warm speed is bounded by passes over memory, not by arithmetic (docs/benchmarks.md,
"Many fits: where a warm batch's time goes"). Gpufit/Cpufit instead run one kernel per
problem, with the model, its Jacobian and the n × n solve in registers. This script measures
that design's ceiling on this machine, side by side with SciPy's loop, before it is built
into the library: a **probe, not marquardt's code**. A small Levenberg-Marquardt loop written
once here in C (Moré's scaling D = max diag JᵀJ so far, Nielsen's damping update, the normal
equations by Cholesky, MINPACK's ftol/xtol/gtol tests at SciPy's 1e-8) with the two models of
``benchmarks/batch.py`` and their analytic Jacobians written in C, compiled with ``cc -O2``
at run time, called once for all K problems through ``ctypes`` (which releases the GIL, so two
Python threads run two halves on two cores).

Printed: fits/s of the kernel on 1 and 2 threads, of SciPy's ``curve_fit`` loop (MINPACK,
analytic Jacobian, SciPy's tolerances) measured in the same run, interleaved, their ratios,
and how far the kernel's x lies from SciPy's (median and 99th percentile relative
difference). The target of issue #13 result 2 is 50× SciPy's loop warm.

``--batch`` adds marquardt's ``curve_fit_batch`` (TensorFlow model, autodiff Jacobian, SciPy's
tolerances; warm: its first call, which compiles, is not timed) to the same rounds.

Usage: python benchmarks/batch_kernel_floor.py [--k 10000] [--rounds 3] [--sample 1000] [--batch]
"""

from __future__ import annotations

import argparse
import ctypes
import os
import pathlib
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from batch import (TOL, double_exp, double_exp_data, double_exp_jac,  # noqa: E402
                   double_exp_np, gauss2d, gauss2d_data, gauss2d_jac, gauss2d_np)

C_SOURCE = r"""
#include <math.h>
#include <string.h>

#define NMAX 8
#define MMAX 128

/* r = f(p) - y and, where J is given, J = df/dp (row-major m x n) */
static void gauss2d(const double *xy, const double *p, const double *y, int m, double *r,
                    double *J) {
    const double a = p[0], x0 = p[1], y0 = p[2], s = p[3], b = p[4], s2 = s * s;
    for (int i = 0; i < m; i++) {
        const double dx = xy[i] - x0, dy = xy[m + i] - y0, q = dx * dx + dy * dy;
        const double e = exp(-q / (2.0 * s2));
        r[i] = a * e + b - y[i];
        if (J) {
            double *row = J + 5 * i;
            row[0] = e; row[1] = a * e * dx / s2; row[2] = a * e * dy / s2;
            row[3] = a * e * q / (s2 * s); row[4] = 1.0;
        }
    }
}

static void double_exp(const double *t, const double *p, const double *y, int m, double *r,
                       double *J) {
    for (int i = 0; i < m; i++) {
        const double e1 = exp(-p[1] * t[i]), e2 = exp(-p[3] * t[i]);
        r[i] = p[0] * e1 + p[2] * e2 - y[i];
        if (J) {
            double *row = J + 4 * i;
            row[0] = e1; row[1] = -p[0] * t[i] * e1; row[2] = e2; row[3] = -p[2] * t[i] * e2;
        }
    }
}

typedef void (*model_fn)(const double *, const double *, const double *, int, double *,
                         double *);

static double half_sum_squares(const double *r, int m) {
    double c = 0.0;
    for (int i = 0; i < m; i++) c += r[i] * r[i];
    return 0.5 * c;
}

/* (A + lam diag(D)) d = -g by Cholesky of the lower triangle; 1 if not positive definite */
static int damped_solve(const double *H, const double *D, const double *g, double lam, int n,
                        double *d) {
    double L[NMAX * NMAX];
    for (int j = 0; j < n; j++) {
        double s = H[j * n + j] + lam * D[j];
        for (int k = 0; k < j; k++) s -= L[j * n + k] * L[j * n + k];
        if (!(s > 0.0)) return 1;
        s = sqrt(s);
        L[j * n + j] = s;
        for (int i = j + 1; i < n; i++) {
            double t = H[i * n + j];
            for (int k = 0; k < j; k++) t -= L[i * n + k] * L[j * n + k];
            L[i * n + j] = t / s;
        }
    }
    for (int i = 0; i < n; i++) {
        double t = -g[i];
        for (int k = 0; k < i; k++) t -= L[i * n + k] * d[k];
        d[i] = t / L[i * n + i];
    }
    for (int i = n - 1; i >= 0; i--) {
        double t = d[i];
        for (int k = i + 1; k < n; k++) t -= L[k * n + i] * d[k];
        d[i] = t / L[i * n + i];
    }
    return 0;
}

/* one problem; returns the number of residual evaluations, x updated in place */
static int fit_one(model_fn f, const double *data, const double *y, int m, int n, double *x,
                   double tol, int max_nfev) {
    double r[MMAX], rt[MMAX], J[MMAX * NMAX], H[NMAX * NMAX], g[NMAX], D[NMAX], d[NMAX],
        xt[NMAX];
    int nfev = 1;
    f(data, x, y, m, r, J);
    double cost = half_sum_squares(r, m), lam = -1.0;
    for (int j = 0; j < n; j++) D[j] = 0.0;
    for (;;) {
        for (int a = 0; a < n; a++) {
            g[a] = 0.0;
            for (int b = 0; b <= a; b++) H[a * n + b] = 0.0;
        }
        for (int i = 0; i < m; i++) {
            const double *row = J + n * i;
            for (int a = 0; a < n; a++) {
                g[a] += row[a] * r[i];
                for (int b = 0; b <= a; b++) H[a * n + b] += row[a] * row[b];
            }
        }
        double gmax = 0.0, rnorm = sqrt(2.0 * cost), hmax = 0.0;
        for (int a = 0; a < n; a++) {
            for (int b = 0; b < a; b++) H[b * n + a] = H[a * n + b];
            if (H[a * n + a] > D[a]) D[a] = H[a * n + a];  /* More's scaling */
            if (D[a] > hmax) hmax = D[a];
            const double col = sqrt(H[a * n + a]);
            if (col > 0.0 && rnorm > 0.0) {
                const double c = fabs(g[a]) / (col * rnorm);
                if (c > gmax) gmax = c;
            }
        }
        if (gmax <= tol) return nfev;  /* gtol: MINPACK's cosine test */
        if (lam < 0.0) lam = 1e-3;  /* relative to D: Nielsen's tau */
        for (;;) {  /* attempts until a step is accepted */
            if (damped_solve(H, D, g, lam, n, d)) { lam *= 10.0; continue; }
            double dx = 0.0, xx = 0.0, pred = 0.0;
            for (int a = 0; a < n; a++) {
                xt[a] = x[a] + d[a];
                dx += D[a] * d[a] * d[a];
                xx += D[a] * x[a] * x[a];
                pred += d[a] * (lam * D[a] * d[a] - g[a]);
            }
            pred *= 0.5;
            f(data, xt, y, m, rt, NULL);
            nfev++;
            const double ct = half_sum_squares(rt, m), actual = cost - ct;
            const double rho = pred > 0.0 ? actual / pred : -1.0;
            const int small_step = sqrt(dx) <= tol * sqrt(xx);
            if (rho > 1e-4) {
                memcpy(x, xt, sizeof(double) * n);
                const int small_change = actual <= tol * cost && pred <= tol * cost;
                cost = ct;
                const double t = 2.0 * rho - 1.0, shrink = 1.0 - t * t * t;
                lam *= shrink > 1.0 / 3.0 ? shrink : 1.0 / 3.0;
                if (small_change || small_step || nfev >= max_nfev) return nfev;
                f(data, x, y, m, r, J);  /* J at the accepted point */
                break;
            }
            lam *= 2.0;
            if (small_step || nfev >= max_nfev) return nfev;
        }
    }
}

/* problems [start, stop) of K, each with its own row of y and x */
int fit_range(int model, const double *data, const double *Y, double *X, int *nfev, int m,
              int n, int start, int stop, double tol, int max_nfev) {
    if (n > NMAX || m > MMAX) return 1;
    model_fn f = model == 0 ? gauss2d : double_exp;
    for (int k = start; k < stop; k++)
        nfev[k] = fit_one(f, data, Y + (long)k * m, m, n, X + (long)k * n, tol, max_nfev);
    return 0;
}
"""


def build() -> ctypes.CDLL:
    """The probe compiled with the system C compiler (``cc -O2``)."""
    folder = tempfile.mkdtemp(prefix="mq-kernel-floor-")
    src, lib = os.path.join(folder, "kernel.c"), os.path.join(folder, "kernel.so")
    with open(src, "w") as out:
        out.write(C_SOURCE)
    subprocess.run(["cc", "-O2", "-ffp-contract=off", "-shared", "-fPIC", "-o", lib, src, "-lm"],
                   check=True)
    kernel = ctypes.CDLL(lib)
    kernel.fit_range.restype = ctypes.c_int
    kernel.fit_range.argtypes = [ctypes.c_int] + [ctypes.c_void_p] * 4 + [ctypes.c_int] * 4 + [
        ctypes.c_double, ctypes.c_int]
    return kernel


def run_kernel(kernel, which: int, data, y, p0, threads: int):
    """All K problems, split into ``threads`` contiguous ranges run concurrently."""
    k, n = p0.shape
    m = y.shape[1]
    data = np.ascontiguousarray(data, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    x = np.ascontiguousarray(p0, dtype=np.float64).copy()
    nfev = np.zeros(k, dtype=np.intc)
    edges = np.linspace(0, k, threads + 1).astype(int)

    def part(i):
        return kernel.fit_range(which, data.ctypes.data, y.ctypes.data, x.ctypes.data,
                                nfev.ctypes.data, m, n, int(edges[i]), int(edges[i + 1]), 1e-8,
                                100 * (n + 1))

    if threads == 1:
        codes = [part(0)]
    else:
        with ThreadPoolExecutor(threads) as pool:
            codes = list(pool.map(part, range(threads)))
    if any(codes):
        raise RuntimeError("the kernel refused the problem's size")
    return x, nfev


def scipy_loop(f_np, jac, data, y, p0, count):
    import scipy.optimize

    out = np.full((count, p0.shape[1]), np.nan)
    for i in range(count):
        try:
            out[i] = scipy.optimize.curve_fit(f_np, data, y[i], p0[i], jac=jac, method="lm",
                                              ftol=1e-8, xtol=1e-8, gtol=1e-8)[0]
        except RuntimeError:
            pass
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--k", type=int, default=10_000, help="problems per model")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--sample", type=int, default=1000, help="SciPy fits per round")
    parser.add_argument("--batch", action="store_true",
                        help="also marquardt's curve_fit_batch (TensorFlow), warm")
    args = parser.parse_args(argv)
    if args.batch:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        from marquardt import curve_fit_batch
    kernel = build()
    print(f"{os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.1f} at start; K = "
          f"{args.k}; tolerances 1e-8 (SciPy's); best of {args.rounds} interleaved rounds")
    models = {"2-D Gaussian 5x5 (n=5, m=25)": (0, gauss2d_data, gauss2d_np, gauss2d_jac,
                                                gauss2d),
              "double exponential (n=4, m=64)": (1, double_exp_data, double_exp_np,
                                                 double_exp_jac, double_exp)}
    for name, (which, make, f_np, jac, f_tf) in models.items():
        data, y, p0 = make(args.k, seed=0)
        best = {1: np.inf, 2: np.inf, "scipy": np.inf, "batch": np.inf}
        if args.batch:
            curve_fit_batch(f_tf, data, y, p0, **TOL)  # compiles
        scipy_loop(f_np, jac, data, y, p0, 20)  # SciPy's first calls (imports, caches)
        for _ in range(args.rounds):
            if args.batch:
                started = time.perf_counter()
                curve_fit_batch(f_tf, data, y, p0, **TOL)
                best["batch"] = min(best["batch"], (time.perf_counter() - started) / args.k)
            for threads in (1, 2):
                started = time.perf_counter()
                x, nfev = run_kernel(kernel, which, data, y, p0, threads)
                best[threads] = min(best[threads], (time.perf_counter() - started) / args.k)
            started = time.perf_counter()
            ref = scipy_loop(f_np, jac, data, y, p0, args.sample)
            best["scipy"] = min(best["scipy"], (time.perf_counter() - started) / args.sample)
        ok = np.all(np.isfinite(ref), axis=1)
        rel = np.abs(x[:args.sample][ok] - ref[ok]) / np.maximum(np.abs(ref[ok]), 1e-300)
        print(f"{name}")
        print(f"  SciPy curve_fit loop (analytic jac)  {1 / best['scipy']:>10,.0f} fits/s")
        if args.batch:
            print(f"  marquardt curve_fit_batch (XLA)      {1 / best['batch']:>10,.0f} fits/s = "
                  f"{best['scipy'] / best['batch']:5.1f}x SciPy's loop")
        for threads in (1, 2):
            rate = 1 / best[threads]
            print(f"  compiled kernel, {threads} thread(s)         {rate:>10,.0f} fits/s = "
                  f"{best['scipy'] / best[threads]:5.1f}x SciPy's loop")
        print(f"  evaluations per fit: kernel {nfev.mean():.2f}; x against SciPy's: median "
              f"relative difference {np.median(rel):.1e}, 99th percentile "
              f"{np.percentile(rel, 99):.1e}")


if __name__ == "__main__":
    main()
