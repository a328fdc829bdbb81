"""The per-problem batch kernel (``marquardt._backend.numpy.native_kernel``) on many small fits,
against SciPy's loop in the same run (issue #13, result 2: at least 50× SciPy's loop warm).

The kernel is the LM core's steps, traced for one problem and emitted as C, looped over the
problems in C with the model in C (here Gpufit's 2-D Gaussian written by hand with its
analytic Jacobian, ``GAUSS2D_C``; the library will generate it from the NumPy model). Its
configuration is ``curve_fit_batch``'s (Nielsen's damping, ``cholesky_unrolled``) at SciPy's
tolerances 1e-8, as ``benchmarks/batch.py``.

Printed, in interleaved rounds (data of ``batch.py``'s ``gauss2d_data``, K problems, a new
seed each round): fits/s of SciPy's ``curve_fit`` loop (MINPACK, analytic Jacobian; on
``--sample`` problems), of the kernel on 1 and on 2 threads (``solve(threads=...)``, two
Python threads on two halves, the GIL released), their ratios, medians; and how far the
kernel's x lies from SciPy's. Wall-clock on a shared machine is noisy; the instructions per
fit are not:

    python benchmarks/batch_kernel.py [--k 10000] [--rounds 3] [--sample 1000]
    valgrind --tool=callgrind --callgrind-out-file=cg.out python benchmarks/batch_kernel.py \\
        --count 1000        # one solve of 1,000 problems, nothing else timed
    callgrind_annotate --inclusive=yes cg.out | grep mq_kernel_solve

(``--count`` prints the iterations and evaluations: divide the instructions under
``mq_kernel_solve`` by the problems.)
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from batch import TOL, gauss2d_data, gauss2d_jac, gauss2d_np  # noqa: E402

GAUSS2D_C = r"""
static int mq_cmodel(const double *p, const mq_data *d, double *r, double *J) {
    const double a = p[0], x0 = p[1], y0 = p[2], s = p[3], b = p[4], s2 = s * s;
    const double *xs = d->x, *ys = d->x + d->x_row;
    for (long i = 0; i < d->m; i++) {
        const double dx = xs[i] - x0, dy = ys[i] - y0, q = dx * dx + dy * dy;
        const double e = exp(-q / (2.0 * s2)), w = d->w ? d->w[i] : 1.0;
        r[i] = (a * e + b - d->y[i]) * w;
        if (J) {
            double *row = J + 5 * i;
            row[0] = w * e; row[1] = w * a * e * dx / s2; row[2] = w * a * e * dy / s2;
            row[3] = w * a * e * q / (s2 * s); row[4] = w;
        }
    }
    return 0;
}
"""


def kernel():
    """The kernel of ``curve_fit_batch``'s configuration for the 2-D Gaussian, and its D."""
    from marquardt import _batch
    from marquardt._backend.numpy import native_kernel
    from marquardt._options import with_jacobian_calls

    cfg, d_fixed, _, _ = _batch._loop_config(dict(TOL), 5, False)
    cfg = with_jacobian_calls(cfg, 0, 5, False)  # an analytic J: no evaluations counted
    started = time.perf_counter()
    built = native_kernel.build(cfg, 25, 5, GAUSS2D_C)
    return built, d_fixed, time.perf_counter() - started


def time_kernel(built, d_fixed, k, seed, threads):
    from marquardt._backend.numpy import native_kernel

    xy, y, p0 = gauss2d_data(k, seed=seed)
    started = time.perf_counter()
    state = native_kernel.solve(built, xy, y, None, p0, d_fixed=d_fixed, threads=threads)
    return k / (time.perf_counter() - started), state


def time_scipy(k, count):
    import scipy.optimize

    xy, y, p0 = gauss2d_data(k, seed=0)
    out = np.full((count, 5), np.nan)
    started = time.perf_counter()
    for i in range(count):
        try:
            out[i] = scipy.optimize.curve_fit(gauss2d_np, xy, y[i], p0[i], jac=gauss2d_jac,
                                              method="lm", **TOL)[0]
        except RuntimeError:
            pass
    return count / (time.perf_counter() - started), out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--k", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sample", type=int, default=1000)
    parser.add_argument("--count", type=int, default=0,
                        help="one solve of this many problems (for callgrind), no timing")
    args = parser.parse_args(argv)
    built, d_fixed, build_s = kernel()
    if args.count:
        _, state = time_kernel(built, d_fixed, args.count, 0, 1)
        print(f"{args.count} problems: {int(state.nit.sum())} iterations, "
              f"{int(state.nfev.sum())} evaluations of r (and {int(state.njev.sum())} of J)")
        return
    print(f"kernel built in {build_s:.2f} s (compiled, or loaded from the disk cache)")
    rows = []
    for r in range(args.rounds):
        scipy_rate, scipy_x = time_scipy(args.k, args.sample)
        one, state = time_kernel(built, d_fixed, args.k, r + 1, 1)
        two, _ = time_kernel(built, d_fixed, args.k, r + 1, 2)
        rows.append((scipy_rate, one, two))
        print(f"round {r}: SciPy loop {scipy_rate:,.0f} fits/s; kernel {one:,.0f} fits/s on 1 "
              f"thread ({one / scipy_rate:.1f}x), {two:,.0f} on 2 ({two / scipy_rate:.1f}x)")
    s, one, two = np.median(np.array(rows), axis=0)
    print(f"median: SciPy {s:,.0f} fits/s; kernel {one:,.0f} ({one / s:.1f}x) on 1 thread, "
          f"{two:,.0f} ({two / s:.1f}x) on 2")
    _, state = time_kernel(built, d_fixed, args.k, 0, 1)  # SciPy's problems
    ok = np.isfinite(scipy_x).all(axis=1)
    rel = np.abs(state.x[:args.sample][ok] - scipy_x[ok]) / np.abs(scipy_x[ok])
    print(f"x against SciPy's: median {np.median(rel):.1e}, 99th percentile "
          f"{np.percentile(rel, 99):.1e} relative ({ok.sum()} problems)")


if __name__ == "__main__":
    main()
