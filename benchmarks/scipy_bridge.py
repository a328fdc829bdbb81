"""SciPy's least_squares with our exact Jacobian against its default '2-point' differences.

A 1-20-20-1 tanh MLP (n = 481 weights) on 2,000 points of y = sin(2x) + noise, fitted by
``scipy.optimize.least_squares`` from the same start, with the same residual function
``f`` (``marquardt.scipy.residual_functions``), once with ``jac=`` our exact Jacobian and once
with SciPy's default ``jac='2-point'``. Side by side: function evaluations (every call of
``f``, the finite-difference ones included — SciPy's own ``nfev`` leaves those out for
'trf'), Jacobian evaluations, wall time, final cost, and the time each needs to reach the
cost the other ends at (from SciPy's per-iteration callback). Then the per-call overhead of
``f`` and ``jac``: the bridge's NumPy-in, NumPy-out call against a direct call of the same
compiled TensorFlow function on tensors already made.

    python benchmarks/scipy_bridge.py                 # max_nfev 100, lsmr then dense (minutes)
    python benchmarks/scipy_bridge.py --quick         # max_nfev 15, fewer repetitions
    python benchmarks/scipy_bridge.py --tr-solver exact    # only SciPy's dense default
    python benchmarks/scipy_bridge.py --method lm          # MINPACK
    python benchmarks/scipy_bridge.py --jac-mode forward   # the general-purpose dense mode

By default BLAS and TensorFlow run on one thread each (``--threads``): on a shared machine
several threads per process mostly wait on each other (an SVD of the 2000 × 481 Jacobian took
4.5 s with default threads against 0.4 s with one, under load). Both sides get the same
setting. Timings depend on the machine: run it on a quiet one.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

N_POINTS = 2_000
HIDDEN = (20, 20)

#: The issue's targets.
TARGET_NFEV_RATIO = 20.0
TARGET_TIME_RATIO = 10.0
TARGET_OVERHEAD_US = 100.0


def set_threads(threads: int) -> None:
    """Before NumPy and TensorFlow are imported: the thread counts of BLAS and TensorFlow."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def problem(seed: int):
    """Data (t, y), the layer shapes, and the start p0 (Glorot-uniform weights, zero biases)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    t = np.linspace(-3.0, 3.0, N_POINTS)
    y = np.sin(2.0 * t) + 0.05 * rng.standard_normal(N_POINTS)
    sizes = [1, *HIDDEN, 1]
    shapes, parts = [], []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        shapes += [(fan_in, fan_out), (fan_out,)]
        parts += [rng.uniform(-limit, limit, fan_in * fan_out), np.zeros(fan_out)]
    return t, y, shapes, np.concatenate(parts)


def mlp_residuals(shapes):
    """``r(p, t, y)``: the MLP with weights unpacked from p, minus y (TensorFlow ops)."""
    import numpy as np
    import tensorflow as tf

    sizes = [int(np.prod(s)) for s in shapes]

    def residual(p, t, y):
        parts = [tf.reshape(w, s) for w, s in zip(tf.split(p, sizes), shapes)]
        h = t[:, None]
        for i in range(0, len(parts) - 2, 2):
            h = tf.tanh(h @ parts[i] + parts[i + 1])
        return tf.reshape(h @ parts[-2] + parts[-1], [-1]) - y

    return residual


class Counted:
    """Counts the calls of ``f`` (SciPy's finite differences call it too)."""

    def __init__(self, f):
        self.f, self.calls = f, 0

    def __call__(self, x):
        self.calls += 1
        return self.f(x)


def fit(f, jac, p0, method, max_nfev, tr_solver):
    """One least_squares run: result, calls of f, wall time, (time, cost) per iteration."""
    import scipy.optimize

    counted = Counted(f)
    trace = []
    start = time.perf_counter()

    def callback(intermediate_result):
        trace.append((time.perf_counter() - start, float(intermediate_result.cost)))

    options = {} if method == "lm" else {"callback": callback, "tr_solver": tr_solver}
    # SciPy 1.17's 'lm' does not count the finite-difference calls in max_nfev either
    # (max_nfev=5 with '2-point' made 967 calls here), so one max_nfev fits every method.
    res = scipy.optimize.least_squares(counted, p0, jac=jac, method=method, max_nfev=max_nfev,
                                       **options)
    return res, counted.calls, time.perf_counter() - start, trace


def linear_algebra_time(jac_matrix, method: str, repeat: int = 3) -> float:
    """Seconds of the dense factorisation SciPy does once per iteration on J (best of repeat).

    ``trf``/``dogbox`` with ``tr_solver='exact'`` take an SVD of J each iteration, MINPACK's
    ``lm`` a pivoted QR. No Jacobian, however cheap, removes this cost.
    """
    import numpy as np
    import scipy.linalg

    if method == "lm":
        return _best_time(lambda: scipy.linalg.qr(jac_matrix, mode="economic", pivoting=True),
                          repeat)
    return _best_time(lambda: np.linalg.svd(jac_matrix, full_matrices=False), repeat)


def compare(f, jac, p0, method, max_nfev, tr_solver):
    """Exact Jacobian against '2-point' with one SciPy setting; prints the table and ratios."""
    runs = {}
    for name, j in (("exact (bridge)", jac), ("'2-point'", "2-point")):
        runs[name] = fit(f, j, p0, method, max_nfev, tr_solver)
    setting = method if method == "lm" else f"{method}, tr_solver={tr_solver!r}"
    print(f"== {setting}")
    header = (f"{'Jacobian':<16}{'f calls':>9}{'SciPy nfev':>11}{'njev':>6}{'wall s':>9}"
              f"{'s / iter':>9}{'final cost':>13}  status")
    print(header)
    print("-" * len(header))
    for name, (res, calls, wall, _) in runs.items():
        if res.njev:  # SciPy leaves njev out for 'lm' with finite differences
            njev, per_iter = f"{res.njev:>6}", f"{wall / res.njev:>9.3f}"
        else:
            njev, per_iter = f"{'-':>6}", f"{'-':>9}"
        print(f"{name:<16}{calls:>9}{res.nfev:>11}{njev}{wall:>9.2f}{per_iter}"
              f"{res.cost:>13.6g}  {res.status}")
    (ex, ex_calls, ex_wall, ex_trace), (fd, fd_calls, fd_wall, fd_trace) = runs.values()
    nfev_ratio = fd_calls / ex_calls
    time_ratio = fd_wall / ex_wall
    print(f"\nfunction evaluations, '2-point' / exact: {nfev_ratio:.1f}x "
          f"(target >= {TARGET_NFEV_RATIO:g}x: {'met' if nfev_ratio >= TARGET_NFEV_RATIO else 'NOT met'})")
    print(f"wall time, '2-point' / exact:            {time_ratio:.2f}x "
          f"(target >= {TARGET_TIME_RATIO:g}x: {'met' if time_ratio >= TARGET_TIME_RATIO else 'NOT met'})")
    if ex_trace and fd_trace:
        target = max(ex.cost, fd.cost)
        te, tf_ = time_to(ex_trace, target), time_to(fd_trace, target)
        if te and tf_:
            print(f"time to reach cost {target:.6g} (the worse final cost): exact {te:.2f} s, "
                  f"'2-point' {tf_:.2f} s ({tf_ / te:.2f}x)")
    print(f"final cost, exact / '2-point': {ex.cost / fd.cost:.4f}")
    if tr_solver != "lsmr":
        # Amdahl: both runs pay SciPy's dense factorisation once per iteration.
        j_matrix = jac(p0)
        t_la = linear_algebra_time(j_matrix, method)
        t_exact = _best_time(lambda: jac(p0))
        t_fd = _best_time(lambda: [f(p0) for _ in range(f.n + 1)], repeat=1)
        bound = (t_la + t_fd) / t_la
        what = "pivoted QR" if method == "lm" else "SVD"
        print(f"per iteration: SciPy's {what} of the {j_matrix.shape[0]} x {j_matrix.shape[1]} J "
              f"{t_la:.3f} s, exact J {t_exact:.4f} s, '2-point' J ({f.n + 1} calls of f) "
              f"{t_fd:.3f} s: with this solver no Jacobian can make an iteration more than "
              f"{bound:.1f}x cheaper than with '2-point'")
    print()


def _best_time(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def time_to(trace, cost):
    """First time the run's cost is at or below ``cost`` (None if never)."""
    return next((t for t, c in trace if c <= cost), None)


def paired_us(ours, ours_args, direct, direct_args, blocks: int, per_block: int):
    """Per-call µs of the bridge's call and of the direct call, and the overhead.

    Blocks of ``per_block`` calls of each alternate, so a change of load on a shared machine
    hits both alike; reported are medians over blocks of wall time and of process CPU time
    (which leaves out the time spent waiting for a core), and the medians of the per-block
    differences (the overhead).
    """
    import statistics

    ours(*ours_args), direct(*direct_args)
    wall = {"ours": [], "direct": []}
    cpu = {"ours": [], "direct": []}
    for _ in range(blocks):
        for key, fn, fn_args in (("ours", ours, ours_args), ("direct", direct, direct_args)):
            w0, c0 = time.perf_counter(), time.process_time()
            for _ in range(per_block):
                fn(*fn_args)
            wall[key].append((time.perf_counter() - w0) / per_block * 1e6)
            cpu[key].append((time.process_time() - c0) / per_block * 1e6)

    def summary(times):
        diff = statistics.median(a - b for a, b in zip(times["ours"], times["direct"]))
        return statistics.median(times["ours"]), statistics.median(times["direct"]), diff

    return summary(wall), summary(cpu)


def overhead_rows(f, jac, x, data_np):
    """(name, bridge callable, its args, direct concrete function, its args) for f and jac."""
    import tensorflow as tf

    cfs = f.compiled.concrete_functions
    direct_args = (tf.constant(x), *(tf.constant(d) for d in data_np))
    return [("f", f, (x,), cfs["residual"], direct_args),
            ("jac", jac, (x,), cfs["jacobian"], direct_args)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="max_nfev 15, fewer repetitions")
    parser.add_argument("--max-nfev", type=int, default=None, help="SciPy's max_nfev (100)")
    parser.add_argument("--method", default="trf", choices=("trf", "dogbox", "lm"))
    parser.add_argument("--tr-solver", default="both", choices=("both", "exact", "lsmr"),
                        help="SciPy's tr_solver for trf/dogbox, the same on both sides "
                             "(default: lsmr, then SciPy's dense default 'exact')")
    parser.add_argument("--jac-mode", default="per_sample",
                        choices=("per_sample", "auto", "forward", "reverse"),
                        help="how the bridge forms J (default per_sample)")
    parser.add_argument("--jit", action="store_true", help="XLA-compile f and jac (both sides)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS and TensorFlow threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    max_nfev = args.max_nfev or (15 if args.quick else 100)

    set_threads(args.threads)
    import numpy as np
    import tensorflow as tf

    from marquardt.scipy import residual_functions

    t, y, shapes, p0 = problem(args.seed)
    t0 = time.perf_counter()
    f, jac = residual_functions(mlp_residuals(shapes), p0, args=(t, y), mode=args.jac_mode,
                                jit_compile=args.jit)
    build = time.perf_counter() - t0
    print(f"1-20-20-1 tanh MLP, n = {f.n} weights, m = {f.m} residuals; method={args.method}"
          f", max_nfev={max_nfev}, jac mode {args.jac_mode}{', XLA' if args.jit else ''}, "
          f"{args.threads} thread(s); building f and jac (tracing): {build:.1f} s\n")

    solvers = [None] if args.method == "lm" else (
        ["lsmr", "exact"] if args.tr_solver == "both" else [args.tr_solver])
    for tr_solver in solvers:
        compare(f, jac, p0, args.method, max_nfev, tr_solver)

    # Per-call overhead: the bridge against the same concrete function called on tensors,
    # on the MLP and on a cheap problem (y = a·exp(-b·t) + c, n = 3, same m) where the
    # computation itself does not drown the overhead.
    blocks = 15 if args.quick else 41
    small_f, small_jac = residual_functions(
        lambda p, t, y: p[0] * tf.exp(-p[1] * t) + p[2] - y, [1.0, 1.0, 0.0], args=(t, y))
    rows = [("MLP " + name, *rest) for name, *rest in overhead_rows(f, jac, p0 + 0.01, (t, y))]
    rows += [("exp " + name, *rest) for name, *rest in
             overhead_rows(small_f, small_jac, np.array([1.0, 1.0, 0.0]), (t, y))]
    print(f"\nper-call time, µs: medians over {blocks} alternating blocks; 'direct' calls the "
          "same concrete function on tensors made beforehand")
    print(f"{'':<9}{'wall: bridge':>14}{'direct':>9}{'overhead':>10}"
          f"{'CPU: bridge':>14}{'direct':>9}{'overhead':>10}")
    worst_wall = worst_cpu = 0.0
    for name, ours, ours_args, direct, direct_args in rows:
        per_block = 2 if name == "MLP jac" else 20
        (wa, wb, wd), (ca, cb, cd) = paired_us(ours, ours_args, direct, direct_args, blocks,
                                               per_block)
        if name != "MLP jac":  # 10 ms calls: µs differences are noise there
            worst_wall, worst_cpu = max(worst_wall, wd), max(worst_cpu, cd)
        print(f"{name:<9}{wa:>14.1f}{wb:>9.1f}{wd:>10.1f}{ca:>14.1f}{cb:>9.1f}{cd:>10.1f}")
    for what, worst in (("wall", worst_wall), ("CPU", worst_cpu)):
        print(f"worst overhead ({what}) {worst:.1f} µs (target < {TARGET_OVERHEAD_US:g} µs: "
              f"{'met' if worst < TARGET_OVERHEAD_US else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
