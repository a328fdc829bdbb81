"""Many small fits: ``curve_fit_batch`` against loops over SciPy's and our own ``curve_fit``.

Two models, K independent noisy problems each (one run, side by side):

* a 4-parameter double exponential decay, 64 time points (a fluorescence lifetime pixel);
* Gpufit's 2-D Gaussian (amplitude, centre x and y, width, offset) on a 5×5 pixel grid.

For each: ``marquardt.curve_fit_batch`` on all K problems; a Python loop over
``scipy.optimize.curve_fit`` (MINPACK's LM, with the analytic Jacobian, so that SciPy does no
finite differences); a Python loop over ``marquardt.curve_fit`` (one compiled solve per fit;
timed on a sample, it is slow). All three use the same tolerances, SciPy's defaults
ftol = xtol = gtol = 1e-8 (``curve_fit_batch`` is also timed at our tighter defaults). Rates
are fits per second of wall time; the batch is timed warm (the first call, which traces and
compiles, is reported apart as "cold") on data it has not seen. The fitted parameters of the
batch are compared with SciPy's.

Peak memory: a child process per K runs one ``curve_fit_batch`` of the 2-D Gaussian and
reports its peak resident set size (``resource.getrusage(RUSAGE_SELF).ru_maxrss``);
``tracemalloc`` would miss TensorFlow's own allocations. The slope of peak RSS against K
is the memory per fit; the intercept is TensorFlow, XLA's compilation and the fixed slots.

    python benchmarks/batch.py            # K = 10,000 per model; SciPy loop over all K;
                                          # memory at K = 20k, 40k, 80k (a few minutes)
    python benchmarks/batch.py --quick    # K = 2,000; SciPy loop over 1,000; memory at
                                          # K = 8k, 16k (about a minute after compiling)
    python benchmarks/batch.py --one-off  # what a script with one call costs: each method in
                                          # a fresh process, imports and compilation
                                          # included (K = 10,000; --k to change)
    python benchmarks/batch.py --numpy --model gauss   # the NumPy model's batch (the
                                          # kernel, the host with the captured Jacobian,
                                          # '2-point', the analytic jac) warm, interleaved
                                          # with SciPy's loop; no TensorFlow

Targets (issue): at least 100 times SciPy's loop in fits per second on 2 CPU cores; peak
memory linear in K. For reference, Gpufit reports about 61,000 fits/s for its CPU version
(Cpufit) and about 3 million fits/s on a GPU for the 2-D Gaussian (its own hardware and
stopping rule; not run here).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

TOL = dict(ftol=1e-8, xtol=1e-8, gtol=1e-8)  # SciPy's defaults, for all three


# --- the two models, for TensorFlow (ours) and NumPy (SciPy, with analytic Jacobians) ----------

def double_exp(t, a1, k1, a2, k2):
    import tensorflow as tf
    return a1 * tf.exp(-k1 * t) + a2 * tf.exp(-k2 * t)


def double_exp_np(t, a1, k1, a2, k2):
    return a1 * np.exp(-k1 * t) + a2 * np.exp(-k2 * t)


def double_exp_jac(t, a1, k1, a2, k2):
    e1, e2 = np.exp(-k1 * t), np.exp(-k2 * t)
    return np.stack([e1, -a1 * t * e1, e2, -a2 * t * e2], axis=1)


def double_exp_jac_tf(t, a1, k1, a2, k2):
    import tensorflow as tf
    e1, e2 = tf.exp(-k1 * t), tf.exp(-k2 * t)
    return tf.stack([e1, -a1 * t * e1, e2, -a2 * t * e2], axis=1)


def gauss2d(xy, a, x0, y0, s, b):
    import tensorflow as tf
    return a * tf.exp(-((xy[0] - x0) ** 2 + (xy[1] - y0) ** 2) / (2 * s * s)) + b


def gauss2d_np(xy, a, x0, y0, s, b):
    return a * np.exp(-((xy[0] - x0) ** 2 + (xy[1] - y0) ** 2) / (2 * s * s)) + b


def gauss2d_jac(xy, a, x0, y0, s, b):
    dx, dy, s2 = xy[0] - x0, xy[1] - y0, s * s
    e = np.exp(-(dx * dx + dy * dy) / (2 * s2))
    return np.stack([e, a * e * dx / s2, a * e * dy / s2, a * e * (dx * dx + dy * dy) / (s2 * s),
                     np.ones_like(e)], axis=1)


def gauss2d_jac_tf(xy, a, x0, y0, s, b):
    import tensorflow as tf
    dx, dy, s2 = xy[0] - x0, xy[1] - y0, s * s
    e = tf.exp(-(dx * dx + dy * dy) / (2 * s2))
    return tf.stack([e, a * e * dx / s2, a * e * dy / s2, a * e * (dx * dx + dy * dy) / (s2 * s),
                     tf.ones_like(e)], axis=1)


def double_exp_data(k, seed):
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 10.0, 64)
    p = np.stack([rng.uniform(0.5, 1.5, k), rng.uniform(1.5, 3.0, k),
                  rng.uniform(0.2, 0.8, k), rng.uniform(0.1, 0.5, k)], axis=1)
    y = p[:, :1] * np.exp(-p[:, 1:2] * t) + p[:, 2:3] * np.exp(-p[:, 3:4] * t)
    return t, y + 0.01 * rng.standard_normal(y.shape), p * rng.uniform(0.8, 1.2, p.shape)


def gauss2d_data(k, seed, size=5):
    rng = np.random.default_rng(seed)
    g = np.arange(size, dtype=float)
    xy = np.stack([a.ravel() for a in np.meshgrid(g, g)])
    c = (size - 1) / 2
    p = np.stack([rng.uniform(5, 15, k), c + rng.uniform(-0.5, 0.5, k),
                  c + rng.uniform(-0.5, 0.5, k), rng.uniform(0.8, 1.2, k),
                  rng.uniform(0.5, 1.5, k)], axis=1)
    y = gauss2d_np(xy, *(p.T[:, :, None]))
    y = y + 0.05 * p[:, :1] * rng.standard_normal(y.shape)
    return xy, y, p * rng.uniform(0.9, 1.1, p.shape)


MODELS = {
    "double exponential (n=4, m=64)": (double_exp, double_exp_np, double_exp_jac,
                                       double_exp_jac_tf, double_exp_data),
    "2-D Gaussian 5x5 (n=5, m=25)": (gauss2d, gauss2d_np, gauss2d_jac, gauss2d_jac_tf,
                                     gauss2d_data),
}


# --- timing ------------------------------------------------------------------------------------

def time_batch(model, data, k, repeat, **options):
    from marquardt._batch import curve_fit_batch

    x, y, p0 = data(k, seed=100)
    started = time.perf_counter()
    curve_fit_batch(model, x, y, p0, **options)
    cold = time.perf_counter() - started
    best, first = np.inf, None
    for r in range(repeat):
        x, y, p0 = data(k, seed=r)  # data it has not seen; seed 0 is what the loops fit
        started = time.perf_counter()
        res = curve_fit_batch(model, x, y, p0, **options)
        best = min(best, time.perf_counter() - started)
        first = first or res
    return cold, best, first


def time_scipy(f_np, jac, data, k, count):
    import scipy.optimize

    x, y, p0 = data(k, seed=0)
    out = np.full((count, p0.shape[1]), np.nan)
    started = time.perf_counter()
    for i in range(count):
        try:
            out[i] = scipy.optimize.curve_fit(f_np, x, y[i], p0[i], jac=jac, method="lm",
                                              **TOL)[0]
        except RuntimeError:  # MINPACK gave up
            pass
    return count / (time.perf_counter() - started), out


def time_loop(model, data, k, count):
    import marquardt

    x, y, p0 = data(k, seed=0)
    marquardt.curve_fit(model, x, y[0], p0[0], solver="cholesky_unrolled", **TOL)  # compile
    started = time.perf_counter()
    for i in range(count):
        marquardt.curve_fit(model, x, y[i], p0[i], solver="cholesky_unrolled", **TOL)
    return count / (time.perf_counter() - started)


def evaluation_floor(model, data, slots, workers, repeat=20):
    """Seconds per problem of one vectorised residual; of one residual with its forward-mode
    Jacobian; and of that with JᵀJ and Jᵀr: the engine's own model evaluations on ``slots``
    problems, in a compiled (XLA) loop of ``repeat`` evaluations at moving parameters, in
    ``workers`` threads at once as the batch runs its streams. Nothing else: no solve, no
    damping, no tests, no bookkeeping, no Python between evaluations."""
    from concurrent.futures import ThreadPoolExecutor

    import tensorflow as tf

    from marquardt._backend.tensorflow.batch import (batched_residual,
                                                     batched_residual_and_jacobian)

    x, y, p0 = data(slots, seed=7)
    args = (tf.constant(np.asarray(x, float)), tf.constant(y), tf.ones_like(tf.constant(y)))
    out = {}
    rj = batched_residual_and_jacobian(model, "auto", True).fn

    def normal(p, x, y, w):  # as the engine's Cholesky solvers form them
        r, j = rj(p, x, y, w)
        return tf.linalg.matmul(j, j, transpose_a=True), tf.linalg.matvec(j, r, transpose_a=True)

    for name, fn in (("r", batched_residual(model, True)), ("rj", rj), ("normal", normal)):
        def looped(p, x, y, w, fn=fn):
            def body(i, acc):
                outs = tf.nest.flatten(fn(p * (1.0 + 1e-9 * tf.cast(i, p.dtype)), x, y, w))
                return i + 1, acc + tf.add_n([tf.reduce_sum(o) for o in outs])
            return tf.while_loop(lambda i, acc: i < repeat, body,
                                 (tf.constant(0), tf.constant(0.0, tf.float64)))[1]

        compiled = tf.function(looped, jit_compile=True)
        p = tf.constant(p0)
        compiled(p, *args)

        def run():
            return compiled(p, *args).numpy()

        best = np.inf
        for _ in range(3):
            with ThreadPoolExecutor(workers) as pool:
                started = time.perf_counter()
                for done in [pool.submit(run) for _ in range(workers)]:
                    done.result()
                best = min(best, time.perf_counter() - started)
        out[name] = best / (repeat * slots * workers)
    return out["r"], out["rj"], out["normal"]


# --- memory ------------------------------------------------------------------------------------

def _peak_kib():
    """Peak resident set size of this process so far, KiB: Linux's VmHWM (this program image
    only), else ``ru_maxrss`` (which a child may inherit from a large parent; the children
    are therefore started before the parent imports TensorFlow)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _memory_child(k):
    from marquardt._batch import curve_fit_batch

    x, y, p0 = gauss2d_data(k, seed=0)
    before = _peak_kib()
    curve_fit_batch(gauss2d, x, y, p0, **TOL)
    print(json.dumps({"k": k, "before_kib": before, "peak_kib": _peak_kib(),
                      "ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


def peak_memory(k):
    out = subprocess.run([sys.executable, __file__, "--memory-child", str(k)],
                         capture_output=True, text=True, check=True,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def memory_report(quick):
    """Peak memory against K, in child processes (run before this process imports TensorFlow)."""
    ks = [8_000, 16_000] if quick else [20_000, 40_000, 80_000]
    print("Peak memory, 2-D Gaussian, one child process per K (VmHWM, else ru_maxrss):")
    points = []
    for kk in ks:
        r = peak_memory(kk)
        points.append((kk, r["peak_kib"] * 1024))
        print(f"  K = {kk:>7,}: peak RSS {r['peak_kib'] / 1024:8.1f} MiB (after imports and data "
              f"{r['before_kib'] / 1024:.1f} MiB)")
    kk, peak = np.array(points, dtype=float).T
    slope, intercept = np.polyfit(kk, peak, 1)
    print(f"  linear fit: {slope:,.0f} bytes per fit + {intercept / 2**20:,.0f} MiB "
          f"(the data alone: {25 * 8 + 25} bytes per fit as float64 ydata and the NaN mask)\n")


# --- one-off calls: fresh processes ----------------------------------------------------------

ONE_OFF = {
    "scipy loop": "import scipy.optimize\n"
                  "for i in range(len(y)):\n"
                  "    try:\n"
                  "        out[i] = scipy.optimize.curve_fit(F_NP, x, y[i], p0[i], jac=JAC,\n"
                  "                                          method='lm', **TOL)[0]\n"
                  "    except RuntimeError:\n"
                  "        pass",
    "batch, NumPy model": "import marquardt\n"
                          "out = marquardt.curve_fit_batch(F_NP, x, y, p0, **TOL).x",
    "batch, TensorFlow model": "import marquardt\n"
                               "out = marquardt.curve_fit_batch(F_TF, x, y, p0, **TOL).x",
}


def _one_off_child(model_name: str, method: str, k: int) -> None:
    """Runs in a fresh process: the data, then one method on all K problems, timed from
    before its imports; prints JSON."""
    started = time.perf_counter()
    model, f_np, jac, _, data = MODELS[model_name]
    x, y, p0 = data(k, seed=0)
    scope = {"F_NP": f_np, "F_TF": model, "JAC": jac, "TOL": TOL, "x": x, "y": y, "p0": p0,
             "out": np.full(p0.shape, np.nan)}
    t0 = time.perf_counter()
    exec(ONE_OFF[method], scope)  # noqa: S102 - our own benchmark code, above
    elapsed = time.perf_counter() - t0
    print(json.dumps({"seconds": elapsed, "total": time.perf_counter() - started,
                      "tensorflow": "tensorflow" in sys.modules,
                      "x": np.asarray(scope["out"])[:200].tolist()}))


def _chosen(name: str, which: str) -> bool:
    return which == "all" or name.lower().startswith({"exp": "double", "gauss": "2-d"}[which])


def one_off_report(k: int, which: str = "all") -> None:
    print(f"One-off calls, K = {k}: each method alone in a fresh Python process, timed from "
          "its imports (TensorFlow's, the kernel's compilation) to the answers; SciPy with "
          "the analytic Jacobian, the NumPy batch on the host with the captured closed "
          "form's Jacobian (its kernel is built once the host has paid for it: not in a "
          "one-off call unless on disk), the TensorFlow batch on the kernel; tolerances "
          f"{TOL['ftol']:g}. Run it with an empty MARQUARDT_NATIVE_CACHE for first-time "
          "costs.\n")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    for model_name in (name for name in MODELS if _chosen(name, which)):
        print(model_name)
        base, ref = None, None
        for method in ONE_OFF:
            out = subprocess.run([sys.executable, __file__, "--one-off-child", model_name,
                                  method, str(k)], capture_output=True, text=True, env=env,
                                 check=True)
            info = json.loads(out.stdout.strip().splitlines()[-1])
            x = np.array(info["x"])
            base = base or info["seconds"]
            ref = x if ref is None else ref
            ok = np.all(np.isfinite(ref), axis=1) & np.all(np.isfinite(x), axis=1)
            diff = np.median(np.abs(x[ok] - ref[ok]) / np.abs(ref[ok])) if ok.any() else np.nan
            print(f"  {method:<24}{info['seconds']:>8.2f} s  {k / info['seconds']:>9,.0f} fits/s"
                  f"  {base / info['seconds']:>6.2f}x SciPy's loop  tensorflow imported: "
                  f"{str(info['tensorflow']):<5}  median |x - SciPy's| / |x|: {diff:.1e}")
        print()


# --- the NumPy model's batch, interleaved with SciPy's loop -----------------------------------

def numpy_report(k: int, which: str, rounds: int, sample: int, workers) -> None:
    """The NumPy model's ``curve_fit_batch`` warm on K problems (the captured closed form's
    exact Jacobian at ``jac='auto'`` on the per-problem kernel, ``kernel=True``, and on the
    host executor, ``kernel=False``; the host with '2-point' differences and with the
    analytic ``jac``), alternated with SciPy's ``curve_fit`` loop on
    ``sample`` of them, ``rounds`` times (each batch call on data it has not seen); medians
    of fits/s, and the ratio of each round's batch to that round's SciPy loop (so that both
    sides of a ratio saw the same load on a shared machine). No TensorFlow is imported."""
    import marquardt

    extra = {} if workers is None else {"workers": workers}
    print(f"marquardt {marquardt.__version__}, NumPy {np.__version__}; {os.cpu_count()} "
          f"CPU(s), load average {os.getloadavg()[0]:.1f} at start; K = {k}, SciPy's loop on "
          f"{sample} of them per round, {rounds} rounds alternated; tolerances "
          f"{TOL['ftol']:g}{'; workers=' + str(workers) if workers is not None else ''}\n")
    for name, (_, f_np, jac, _, data) in MODELS.items():
        if not _chosen(name, which):
            continue
        x, y, p0 = data(k, seed=100)
        variants = {"kernel": {"kernel": True}, "host": {"kernel": False},
                    "'2-point'": {"jac": "2-point"}, "jac": {"jac": jac}}
        for options in variants.values():  # warm: the first calls' imports and probes
            marquardt.curve_fit_batch(f_np, x, y[:200], p0[:200], **TOL, **options, **extra)
        rates = {v: [] for v in variants}
        ratios = {v: [] for v in variants}
        scipy_rates, nfev = [], {}
        for r in range(rounds):
            x, y, p0 = data(k, seed=r + 1)
            for v, options in variants.items():
                started = time.perf_counter()
                res = marquardt.curve_fit_batch(f_np, x, y, p0, **TOL, **options, **extra)
                rates[v].append(k / (time.perf_counter() - started))
                nfev[v] = (res.nfev.mean(), res.njev.mean(), res.success.mean())
            scipy_rate, _ = time_scipy(f_np, jac, data, sample, sample)
            scipy_rates.append(scipy_rate)
            for v in variants:
                ratios[v].append(rates[v][-1] / scipy_rate)
        print(name)
        print(f"  scipy curve_fit loop   {np.median(scipy_rates):>10,.0f} fits/s  (analytic jac; "
              f"rounds {', '.join(f'{v:,.0f}' for v in scipy_rates)})")
        for v in variants:
            mean_nfev, mean_njev, success = nfev[v]
            print(f"  batch, NumPy, {v:<9}{np.median(rates[v]):>10,.0f} fits/s  "
                  f"{k / np.median(rates[v]) * 1e3:6.1f} ms  ratio {np.median(ratios[v]):5.1f}x "
                  f"(rounds {', '.join(f'{q:.1f}' for q in ratios[v])}); nfev {mean_nfev:.1f}, "
                  f"njev {mean_njev:.2f}, success {success:.1%}")
        print()


# --- main --------------------------------------------------------------------------------------

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller K and samples")
    parser.add_argument("--k", type=int, help="problems per model (default 10,000; quick 2,000)")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory children")
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--one-off", action="store_true",
                        help="only the one-off comparison in fresh processes")
    parser.add_argument("--one-off-child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--numpy", action="store_true",
                        help="only the NumPy model's batch, warm, alternated with SciPy's loop")
    parser.add_argument("--rounds", type=int, default=5, help="--numpy: alternated rounds")
    parser.add_argument("--sample", type=int, default=1000,
                        help="--numpy: fits of SciPy's loop per round")
    parser.add_argument("--workers", type=int, default=None,
                        help="--numpy: curve_fit_batch's workers (default: not passed)")
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                        help="curve_fit_batch's working precision; float32 at its own default "
                             "tolerances (1e-6), float64 at SciPy's (1e-8)")
    parser.add_argument("--model", choices=("all", "exp", "gauss"), default="all",
                        help="which models to run (default both)")
    args = parser.parse_args(argv)
    if args.memory_child:
        return _memory_child(args.memory_child)
    if args.one_off_child:
        model_name, method, k = args.one_off_child
        return _one_off_child(model_name, method, int(k))
    if args.one_off:
        return one_off_report(args.k or 10_000, args.model)
    if args.numpy:
        return numpy_report(args.k or 10_000, args.model, args.rounds, args.sample,
                            args.workers)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    k = args.k or (2_000 if args.quick else 10_000)
    scipy_count = min(k, 1_000 if args.quick else k)
    loop_count = 50 if args.quick else 200
    repeat = 2 if args.quick else 3

    if not args.no_memory:
        memory_report(args.quick)

    import tensorflow as tf

    import marquardt
    from marquardt._batch import DEFAULT_CHUNK_SIZE
    from marquardt._core.stream import workers

    print(f"marquardt {marquardt.__version__}, TensorFlow {tf.__version__}, "
          f"NumPy {np.__version__}; {os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.1f} at start; "
          f"GPU: {bool(tf.config.list_physical_devices('GPU'))}")
    print(f"K = {k} problems per model; chunk_size {DEFAULT_CHUNK_SIZE}, {workers()} stream(s); "
          f"tolerances {TOL['ftol']:g} for all (SciPy's defaults)"
          + ("" if args.dtype == "float64" else
             "; the batch in float32 at its default tolerances (1e-6)") + "\n")
    rows = []
    for name, (model, f_np, jac, jac_tf, data) in MODELS.items():
        if not _chosen(name, args.model):
            continue
        # float64 is the default: not passed, so that the script runs on versions without dtype
        single = {} if args.dtype == "float64" else dict(dtype=args.dtype)
        tol = TOL if args.dtype == "float64" else single
        cold, warm, res = time_batch(model, data, k, repeat, **tol)
        _, warm_jac, _ = time_batch(model, data, k, repeat, jac=jac_tf, **tol)
        cold_xla, warm_xla, _ = time_batch(model, data, k, repeat, kernel=False, **tol)
        _, warm_default, res_default = time_batch(model, data, k, 1, **single)
        scipy_rate, scipy_x = time_scipy(f_np, jac, data, k, scipy_count)
        loop_rate = time_loop(model, data, k, loop_count)
        batch_rate = k / warm
        ok = np.all(np.isfinite(scipy_x), axis=1)
        rel = np.abs(res.x[:scipy_count][ok] - scipy_x[ok]) / np.abs(scipy_x[ok])
        rows.append((name, batch_rate, scipy_rate))
        print(f"{name}")
        print(f"  curve_fit_batch        {batch_rate:>12,.0f} fits/s   warm {warm:.3f} s, cold "
              f"(capture + kernel build, or trace + XLA compile) {cold:.1f} s; success "
              f"{res.success.mean():.1%}, nfev mean {res.nfev.mean():.1f}")
        print(f"    kernel=False (XLA)   {k / warm_xla:>12,.0f} fits/s   (the compiled executor; "
              f"cold {cold_xla:.1f} s; ratio batch/SciPy {k / warm_xla / scipy_rate:,.1f}x)")
        print(f"    analytic jac         {k / warm_jac:>12,.0f} fits/s   (the Jacobian SciPy "
              f"gets, a callable: the compiled executor; ratio batch/SciPy "
              f"{k / warm_jac / scipy_rate:,.1f}x)")
        print(f"    at our defaults      {k / warm_default:>12,.0f} fits/s   ("
              f"{'ftol 1e-15, xtol gtol 1e-12' if args.dtype == 'float64' else 'float32: 1e-6'}"
              f"; nfev mean {res_default.nfev.mean():.1f})")
        print(f"  scipy curve_fit loop   {scipy_rate:>12,.0f} fits/s   ({scipy_count} fits, "
              f"analytic jac)   ratio batch/SciPy {batch_rate / scipy_rate:,.1f}x")
        print(f"  marquardt.curve_fit    {loop_rate:>12,.0f} fits/s   ({loop_count} fits)       "
              f"ratio batch/loop  {batch_rate / loop_rate:,.0f}x")
        print(f"  batch x against SciPy's: median relative difference {np.median(rel):.1e}, "
              f"99th percentile {np.percentile(rel, 99):.1e} ({ok.sum()} fits SciPy finished)")
        slots = DEFAULT_CHUNK_SIZE  # as curve_fit_batch chooses them
        streams = max(1, min(workers(), k // slots))
        t_r, t_rj, t_normal = evaluation_floor(model, data, slots, streams)
        # per fit: njev residual-and-Jacobian passes (the first at p0), nfev - 1 residuals
        evals = res.njev.mean() * t_rj + (res.nfev.mean() - 1) * t_r
        normal = res.njev.mean() * t_normal + (res.nfev.mean() - 1) * t_r
        print(f"  floor, per problem and pass, XLA, {slots} slots x {streams} thread(s): residual "
              f"{t_r * 1e6:.2f} us; with its Jacobian {t_rj * 1e6:.2f} us; with JtJ and Jtr "
              f"too {t_normal * 1e6:.2f} us ({res.njev.mean():.2f} Jacobians and "
              f"{res.nfev.mean() - 1:.2f} more residuals per fit)")
        print(f"    model evaluations alone   {1 / evals:>12,.0f} fits/s = "
              f"{1 / evals / scipy_rate:,.0f}x SciPy's loop; the batch reaches "
              f"{batch_rate * evals:.0%} of it")
        print(f"    with JtJ and Jtr          {1 / normal:>12,.0f} fits/s = "
              f"{1 / normal / scipy_rate:,.0f}x SciPy's loop; the batch reaches "
              f"{batch_rate * normal:.0%} of it\n")
    if not any(name.startswith("2-D") for name, *_ in rows):
        return
    gauss_rate = rows[-1][1]
    print(f"Gpufit's reference (2-D Gaussian, its hardware): ~61,000 fits/s Cpufit, ~3,000,000 "
          f"GPU; curve_fit_batch here: {gauss_rate:,.0f} fits/s ({gauss_rate / 61_000:.2f} of "
          f"Cpufit's figure)\n")


if __name__ == "__main__":
    main()
