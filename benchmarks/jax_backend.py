"""The JAX backend side by side with the TensorFlow backend, our NumPy path and SciPy.

1. Single fits, warm (median of ``--repeat`` fits after two): the solve compiled into one loop,
   the state a model reaches after 1,000 (TensorFlow) or 3,000 (JAX) evaluations on the host
   executor (``marquardt._tiering``; its thresholds are set to 0 here, so the second fit
   compiles and the timed ones run the loop; ``benchmarks/single_fit.py`` shows both states).
   The 3-parameter exponential of
   ``benchmarks/single_fit.py`` (50 points) and the 19 NIST StRD problems from start 1
   (median over the problems of each one's median time): ``marquardt.curve_fit`` with a
   ``jax.numpy`` model, with a TensorFlow model (when TensorFlow is importable), with a NumPy
   model and its analytic Jacobian, against ``scipy.optimize.curve_fit`` (MINPACK).
2. Batches: Gpufit's 2-D Gaussian (5 parameters, 5×5 pixels, ``benchmarks/batch.py``'s
   problem) at each K of ``--problems``: ``curve_fit_batch`` with a JAX model, warm and
   one-off (a fresh process: imports and compilation included, with its peak RSS), the
   TensorFlow batch the same way (when importable), and SciPy's loop over
   ``--scipy-sample`` problems, extrapolated to K (said so in the output). All at SciPy's
   tolerances, 1e-8.

Runs with only numpy, scipy, jax and marquardt installed (TensorFlow is optional); JAX runs
on whatever device it finds first (a GPU when the CUDA wheels are installed). ``--dtype
float32`` runs the JAX batch in float32 (tolerances 1e-6) through the backend's executor
directly: ``curve_fit_batch`` itself always fits in float64.

Usage::

    python benchmarks/jax_backend.py                          # CPU: K = 10,000 and 100,000
    python benchmarks/jax_backend.py --quick                  # K = 2,000; few repeats
    python benchmarks/jax_backend.py --problems 100000 1000000 10000000 --dtype float32 \\
        --skip-single --skip-one-off                          # a GPU
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
TOL = dict(ftol=1e-8, xtol=1e-8, gtol=1e-8)


def _have(module: str) -> bool:
    import importlib.util
    return importlib.util.find_spec(module) is not None


# --- models -----------------------------------------------------------------------------------

def exp_np(t, a, b, c):
    return a * np.exp(-b * t) + c


def exp_jac(t, a, b, c):
    e = np.exp(-b * t)
    return np.stack([e, -a * t * e, np.ones_like(t)], axis=1)


def exp_jax(t, a, b, c):
    import jax.numpy as jnp
    return a * jnp.exp(-b * t) + c


def exp_tf(t, a, b, c):
    import tensorflow as tf
    return a * tf.exp(-b * t) + c


def gauss_np(xy, a, x0, y0, s, b):
    return a * np.exp(-((xy[0] - x0) ** 2 + (xy[1] - y0) ** 2) / (2 * s * s)) + b


def gauss_jac(xy, a, x0, y0, s, b):
    dx, dy = xy[0] - x0, xy[1] - y0
    e = np.exp(-(dx ** 2 + dy ** 2) / (2 * s * s))
    return np.stack([e, a * e * dx / s ** 2, a * e * dy / s ** 2,
                     a * e * (dx ** 2 + dy ** 2) / s ** 3, np.ones_like(e)], axis=1)


def gauss_jax(xy, a, x0, y0, s, b):
    import jax.numpy as jnp
    return a * jnp.exp(-((xy[0] - x0) ** 2 + (xy[1] - y0) ** 2) / (2 * s * s)) + b


def gauss_tf(xy, a, x0, y0, s, b):
    import tensorflow as tf
    return a * tf.exp(-((xy[0] - x0) ** 2 + (xy[1] - y0) ** 2) / (2 * s * s)) + b


def gauss_data(k, seed=0, size=5):
    """``benchmarks/batch.py``'s 2-D Gaussians: 5×5 pixels, 5% noise, p0 within 10%."""
    rng = np.random.default_rng(seed)
    g = np.arange(size, dtype=float)
    xy = np.stack([a.ravel() for a in np.meshgrid(g, g)])
    c = (size - 1) / 2
    p = np.stack([rng.uniform(5, 15, k), c + rng.uniform(-0.5, 0.5, k),
                  c + rng.uniform(-0.5, 0.5, k), rng.uniform(0.8, 1.2, k),
                  rng.uniform(0.5, 1.5, k)], axis=1)
    y = gauss_np(xy, *(p.T[:, :, None]))
    y = y + 0.05 * p[:, :1] * rng.standard_normal(y.shape)
    return xy, y, p * rng.uniform(0.9, 1.1, p.shape)


def _median_time(fn, repeat):
    fn()
    fn()  # the first fit on the host executor, the second compiles the solve (thresholds 0)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# --- single fits --------------------------------------------------------------------------------

def single_fits(repeat: int) -> None:
    import scipy.optimize

    import marquardt
    from marquardt import _tiering, nist

    _tiering.JAX_EVALUATIONS = _tiering.TENSORFLOW_EVALUATIONS = 0  # warm = the compiled loop
    t = np.linspace(0.0, 4.0, 50)
    y = 2.5 * np.exp(-1.3 * t) + 0.5 + 0.01 * np.random.default_rng(0).standard_normal(50)
    p0 = [1.0, 1.0, 0.0]
    rows = {"scipy (MINPACK)": lambda: scipy.optimize.curve_fit(exp_np, t, y, p0=p0),
            "marquardt jax": lambda: marquardt.curve_fit(exp_jax, t, y, p0=p0),
            "marquardt numpy+jac": lambda: marquardt.curve_fit(exp_np, t, y, p0=p0,
                                                               jac=exp_jac)}
    if _have("tensorflow"):
        rows["marquardt tensorflow"] = lambda: marquardt.curve_fit(exp_tf, t, y, p0=p0)
    print("\nSingle fit, 3-parameter exponential, 50 points: warm median of", repeat)
    base = None
    for name, fn in rows.items():
        sec = _median_time(fn, repeat)
        base = base or sec
        print(f"  {name:24s} {sec * 1e3:8.3f} ms   {sec / base:6.2f} x scipy")

    print("\nNIST StRD, 19 problems from start 1: median over problems of the warm median "
          f"of {max(3, repeat // 10)} fits, ratio to scipy.optimize.curve_fit (lm)")
    ratios = {"jax": [], "numpy (2-point)": []}
    if _have("tensorflow"):
        ratios["tensorflow"] = []
    files = sorted((ROOT / "tests" / "data" / "nist").glob("*.dat"))
    for path in files:
        pr = nist.load(path)
        x, yy, b0 = pr.x, pr.target(), pr.starts[0]
        env_names = pr.variable_names

        def f_np(xv, *b, pr=pr, env_names=env_names):
            rows_ = [xv] if len(env_names) == 1 else list(xv)
            return pr.formula.evaluate_numpy(dict(zip(env_names, rows_)),
                                             dict(zip(pr.parameter_names, b)))

        f_jax = pr.formula.as_jax_model(env_names, pr.parameter_names)
        rep = max(3, repeat // 10)
        try:
            ref = _median_time(lambda: scipy.optimize.curve_fit(f_np, x, yy, p0=b0,
                                                                maxfev=10000), rep)
        except RuntimeError:
            continue
        ratios["jax"].append(_median_time(lambda: marquardt.curve_fit(f_jax, x, yy, p0=b0),
                                          rep) / ref)
        ratios["numpy (2-point)"].append(_median_time(
            lambda: marquardt.curve_fit(f_np, x, yy, p0=b0), rep) / ref)
        if "tensorflow" in ratios:
            f_tf = pr.model()
            ratios["tensorflow"].append(_median_time(
                lambda: marquardt.curve_fit(f_tf, x, yy, p0=b0), rep) / ref)
    for name, r in ratios.items():
        print(f"  marquardt {name:16s} median {statistics.median(r):6.2f} x scipy "
              f"(range {min(r):.2f}-{max(r):.2f}, {len(r)} problems)")


# --- batches ------------------------------------------------------------------------------------

CHUNK = {"size": 1024}


def jax_batch(k: int, dtype: str):
    """(seconds, result x) of one warm ``curve_fit_batch`` of K 2-D Gaussians on JAX."""
    import marquardt

    xy, y, p0 = gauss_data(k, seed=1)
    if dtype == "float64":
        run = lambda: marquardt.curve_fit_batch(gauss_jax, xy, y, p0=p0,  # noqa: E731
                                                chunk_size=CHUNK["size"], **TOL)
    else:
        run = lambda: _float32_batch(xy, y, p0)  # noqa: E731
    run()  # compiles for this K's slot count (the TensorFlow batch always uses 1,024 slots)
    t0 = time.perf_counter()
    out = run()
    sec = time.perf_counter() - t0
    return sec, out


def _float32_batch(xy, y, p0):
    """The JAX batch executor in float32 (what ``curve_fit_batch`` does in float64)."""
    from marquardt._backend.jax import batch as jax_batch_module
    from marquardt._batch import _loop_config

    k, n = p0.shape
    cfg, d_fixed, _, _ = _loop_config(dict(ftol=1e-6, xtol=1e-6, gtol=1e-6), n, False)
    out = {}
    lb, ub = np.full((k, n), -np.inf), np.full((k, n), np.inf)
    jax_batch_module.solve(gauss_jax, "auto", True, cfg, np.arange(k), CHUNK["size"],
                           (xy, y, np.ones(y.shape, bool), None, p0, lb, ub,
                            d_fixed), lambda idx, s: out.__setitem__("x", s.x),
                           dtype=np.float32)
    return out


def tf_batch(k: int):
    import marquardt

    xy, y, p0 = gauss_data(k, seed=1)
    marquardt.curve_fit_batch(gauss_tf, xy, y[:64], p0=p0[:64], **TOL)
    t0 = time.perf_counter()
    marquardt.curve_fit_batch(gauss_tf, xy, y, p0=p0, **TOL)
    return time.perf_counter() - t0


def scipy_loop(k: int, sample: int) -> float:
    """Seconds for K fits, extrapolated from ``sample`` of them."""
    import scipy.optimize

    xy, y, p0 = gauss_data(k, seed=1)
    sample = min(sample, k)
    t0 = time.perf_counter()
    for i in range(sample):
        try:
            scipy.optimize.curve_fit(gauss_np, xy, y[i], p0=p0[i], jac=gauss_jac, **TOL)
        except RuntimeError:
            pass
    return (time.perf_counter() - t0) * k / sample


ONE_OFF = """
import sys, time, json, resource
t0 = time.perf_counter()
sys.path.insert(0, {bench!r})
import jax_backend as b, marquardt
xy, y, p0 = b.gauss_data({k}, seed=1)
model = b.gauss_jax if {backend!r} == "jax" else b.gauss_tf
marquardt.curve_fit_batch(model, xy, y, p0=p0, **b.TOL)
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")]
peak = int(hwm[0].split()[1]) / 1024 if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"seconds": time.perf_counter() - t0, "peak_mib": peak}}))
"""


def one_off(k: int, backend: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep
               + os.environ.get("PYTHONPATH", ""))
    code = ONE_OFF.format(bench=str(pathlib.Path(__file__).parent), k=k, backend=backend,
                          chunk=CHUNK["size"])
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if out.returncode:
        return {"error": out.stderr.strip().splitlines()[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def batches(problems, dtype, sample, skip_one_off) -> None:
    import jax

    print(f"\n2-D Gaussian batches (5 parameters, 25 pixels), tolerances 1e-8; JAX on "
          f"{jax.devices()[0].device_kind} ({jax.devices()[0].platform}), {dtype}")
    for k in problems:
        sec, _ = jax_batch(k, dtype)
        line = [f"  K = {k:>9,}: jax warm {k / sec:>11,.0f} fits/s ({sec:.2f} s)"]
        if dtype == "float64" and _have("tensorflow"):
            tsec = tf_batch(k)
            line.append(f"tensorflow warm {k / tsec:>9,.0f} fits/s (jax/tf time "
                        f"{sec / tsec:.2f})")
        if sample:
            ssec = scipy_loop(k, sample)
            line.append(f"scipy loop {k / ssec:>7,.0f} fits/s (from {min(sample, k)} fits, "
                        f"extrapolated; jax {ssec / sec:.0f}x)")
        print(";  ".join(line))
        if not skip_one_off:
            for backend in ("jax",) + (("tensorflow",) if _have("tensorflow") else ()):
                r = one_off(k, backend)
                if "error" in r:
                    print(f"      one-off {backend}: failed ({r['error']})")
                else:
                    print(f"      one-off {backend:10s} (fresh process, compile included): "
                          f"{r['seconds']:.1f} s, {k / r['seconds']:,.0f} fits/s, "
                          f"peak RSS {r['peak_mib']:,.0f} MiB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", type=int, nargs="+", default=None)
    ap.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    ap.add_argument("--repeat", type=int, default=100)
    ap.add_argument("--scipy-sample", type=int, default=1000)
    ap.add_argument("--skip-single", action="store_true")
    ap.add_argument("--skip-one-off", action="store_true")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--chunk-size", type=int, default=1024,
                    help="JAX slots per compiled solve (on a GPU: 65536 or more)")
    args = ap.parse_args()
    CHUNK["size"] = args.chunk_size
    problems = args.problems or ([2000] if args.quick else [10_000, 100_000])
    if args.quick:
        args.repeat, args.scipy_sample = 20, 200
    print("python", sys.version.split()[0], "| cores", len(os.sched_getaffinity(0)),
          "| tensorflow", "present" if _have("tensorflow") else "absent")
    if not args.skip_single:
        single_fits(args.repeat)
    batches(problems, args.dtype, args.scipy_sample, args.skip_one_off)
    print(f"\npeak RSS of this process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB")


if __name__ == "__main__":
    main()
