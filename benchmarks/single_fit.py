"""One small fit, as users feel it: marquardt against SciPy's curve_fit (MINPACK), side by side.

The problem: y = a·exp(−b·t) + c on 50 points (a, b, c = 2.5, 1.3, 0.5, 1% noise), from
p0 = (1, 1, 0). Three forms of the model for marquardt:

* ``numpy``: the model in NumPy, ``jac='2-point'`` (SciPy's default): no TensorFlow at all;
  once its fits have paid for it, the model is compiled (``compiled_curve``: each fit still
  calls it at its start, as a check);
* ``numpy-called``: the same model with ``t = np.asarray(t)`` first, which the capture does
  not follow: called at every evaluation, the path of any model that is not one closed-form
  expression;
* ``numpy-tol``: the same at SciPy's ``curve_fit`` tolerances (ftol = xtol = 1.49e-8)
  instead of ours (1e-15, 1e-12): the share of the evaluations in the ratio;
* ``numpy+jac``: the model and its analytic Jacobian in NumPy;
* ``python-floor``: not marquardt: a minimal Levenberg-Marquardt loop in Python and NumPy
  (``benchmarks/_lean_lm.py``, SciPy's tolerances), the floor of any executor that runs the
  iteration in Python;
* ``tensorflow``: the model in TensorFlow ops, exact autodiff Jacobian (our default): its
  first fits on the host executor, then (``compiled_curve.EXACT_COMPILE_EVALUATIONS``) its
  graph captured and compiled to C with its exact partials, on the native executor once that
  configuration has paid for it (``native_tier``);
* ``tensorflow-loop``: a TensorFlow model the capture cannot follow (a reduction over the
  points, ``+ 0 * tf.reduce_sum(t)``) after enough fits to pay for compiling its solve: every
  later fit is one compiled loop (XLA);
* ``jax``, ``jax-loop``: the model in ``jax.numpy``, on the host executor and as one compiled
  loop (skipped without JAX).

Measured:

1. *fresh*: a new Python process that imports what it needs and fits once; the wall time of
   the whole process and, inside it, the import time and the first fit's time (tracing
   included). The NumPy runs also report whether ``tensorflow`` was imported.
2. *warm*: in this process, after as many fits as it takes a form to reach its steady
   tier (the NumPy forms: until the native executor has built the configuration's steps,
   ``native_tier.COMPILE_EVALUATIONS`` evaluations; the ``-loop`` forms: until the solve is
   compiled; the others: two fits), ``--repeat`` rounds of one fit of each form
   (interleaved, so that a busy machine slows every form alike): the median and the fastest.

Ratios are to SciPy's time for the same measurement. Run on a quiet machine: a busy core
slows TensorFlow's calls more than NumPy's.

``--no-native`` sets ``MARQUARDT_NATIVE=0`` (here and in the fresh processes): the NumPy forms
then stay on the Python trace, the tier before the native one.

Usage: python benchmarks/single_fit.py [--repeat 200] [--fresh 3] [--forms scipy numpy ...]
[--no-native]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

SETUP = """
import numpy as np
t = np.linspace(0.0, 4.0, 50)
rng = np.random.default_rng(0)
y = 2.5 * np.exp(-1.3 * t) + 0.5 + 0.01 * rng.standard_normal(50)
p0 = [1.0, 1.0, 0.0]

def model_np(t, a, b, c):
    return a * np.exp(-b * t) + c

def jac_np(t, a, b, c):
    e = np.exp(-b * t)
    return np.stack([e, -a * t * e, np.ones_like(t)], axis=1)
"""

FITS = {
    "scipy": ("import scipy.optimize", "scipy.optimize.curve_fit(model_np, t, y, p0=p0)"),
    "numpy": ("import marquardt", "marquardt.curve_fit(model_np, t, y, p0=p0, jac='2-point')"),
    "numpy-called": ("import marquardt\n"
                     "def model_called(t, a, b, c):\n"
                     "    t = np.asarray(t)  # not captured: called at every evaluation\n"
                     "    return a * np.exp(-b * t) + c",
                     "marquardt.curve_fit(model_called, t, y, p0=p0, jac='2-point')"),
    "numpy-tol": ("import marquardt",  # at SciPy's tolerances: the evaluations' share
                  "marquardt.curve_fit(model_np, t, y, p0=p0, jac='2-point', ftol=1.49012e-8, "
                  "xtol=1.49012e-8)"),
    "numpy+jac": ("import marquardt", "marquardt.curve_fit(model_np, t, y, p0=p0, jac=jac_np)"),
    # not marquardt: the floor of any Python-level loop (benchmarks/_lean_lm.py)
    "python-floor": (f"import sys\nsys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})"
                     "\nfrom _lean_lm import lean_curve_fit",
                     "lean_curve_fit(model_np, t, y, p0)"),
    "tensorflow": ("import marquardt, tensorflow as tf\n"
                   "def model_tf(t, a, b, c):\n    return a * tf.exp(-b * t) + c",
                   "marquardt.curve_fit(model_tf, t, y, p0=p0)"),
    "tensorflow-loop": ("import marquardt, tensorflow as tf\n"
                        "def model_tf_loop(t, a, b, c):  # (a reduction: not captured)\n"
                        "    return a * tf.exp(-b * t) + c + 0.0 * tf.reduce_sum(t)",
                        "marquardt.curve_fit(model_tf_loop, t, y, p0=p0)"),
    "jax": ("import marquardt, jax.numpy as jnp\n"
            "def model_jax(t, a, b, c):\n    return a * jnp.exp(-b * t) + c",
            "marquardt.curve_fit(model_jax, t, y, p0=p0)"),
    "jax-loop": ("import marquardt, jax.numpy as jnp\n"
                 "def model_jax_loop(t, a, b, c):\n    return a * jnp.exp(-b * t) + c",
                 "marquardt.curve_fit(model_jax_loop, t, y, p0=p0)"),
}

#: Fits before the warm rounds: ``tensorflow`` until its compiled form runs on the native
#: executor (600 evaluations to compile it, then 35,000 of its configuration's, 9 a fit);
#: the ``-loop`` forms fit until their solve is compiled
#: (``marquardt._tiering``: 3,000 host evaluations for TensorFlow and for JAX, about 10-14
#: per fit of this problem).
#: The NumPy forms: until the native executor has compiled their steps
#: (``native_tier.COMPILE_EVALUATIONS``, 35,000 evaluations; 9-36 per fit, the fewest with
#: the analytic ``jac``; the object may already be on disk, then 5,000 suffice) and, for the
#: differenced forms, their model (``compiled_curve.COMPILE_EVALUATIONS``, 120,000: 36 a fit
#: at our tolerances, 24 at SciPy's).
WARM_UP = {"tensorflow-loop": 400, "jax-loop": 400, "numpy": 5000, "numpy-called": 5000,
           "numpy-tol": 6000, "numpy+jac": 5000, "tensorflow": 4500}

FRESH = """
import time, sys, json
t0 = time.perf_counter()
{imports}
t1 = time.perf_counter()
{setup}
t2 = time.perf_counter()
popt = {fit}[0]
t3 = time.perf_counter()
print(json.dumps({{"import": t1 - t0, "first_fit": t3 - t2, "tensorflow": "tensorflow" in sys.modules,
                   "popt": [float(v) for v in popt]}}))
"""


def fresh(name: str) -> dict:
    imports, fit = FITS[name]
    code = FRESH.format(imports=imports, setup=SETUP, fit=fit)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True)
    wall = time.perf_counter() - start
    info = json.loads(out.stdout.strip().splitlines()[-1])
    info["wall"] = wall
    return info


def warm(names: list[str], repeat: int) -> dict[str, list[float]]:
    """Warm fit times of each form, interleaved (one fit of each form per round), so that a
    busy machine slows every form alike."""
    calls = {}
    for name in names:
        imports, fit = FITS[name]
        scope: dict = {}
        try:
            exec(imports + "\n" + SETUP, scope)  # noqa: S102 - our own benchmark code
        except ImportError as e:
            print(f"{name}: skipped ({e})")
            continue
        call = compile(fit, "<fit>", "eval")
        for _ in range(WARM_UP.get(name, 2)):  # the first fits (tracing, compilation)
            eval(call, scope)  # noqa: S307 - our own benchmark code
        calls[name] = (call, scope)
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeat):
        for name, (call, scope) in calls.items():
            start = time.perf_counter()
            eval(call, scope)  # noqa: S307
            times[name].append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200, help="warm fits per form")
    parser.add_argument("--fresh", type=int, default=3, help="fresh processes per form "
                        "(0: warm fits only)")
    parser.add_argument("--forms", nargs="+", choices=list(FITS), default=None,
                        help="the forms of the warm table (default: all; scipy always)")
    parser.add_argument("--no-native", action="store_true",
                        help="MARQUARDT_NATIVE=0: the NumPy forms on the Python trace")
    args = parser.parse_args()
    if args.no_native:
        os.environ["MARQUARDT_NATIVE"] = "0"
        for name in ("numpy", "numpy-called", "numpy-tol", "numpy+jac"):
            WARM_UP[name] = 2

    if args.fresh:
        fresh_table(args.fresh)
    print(f"\nwarm fits, interleaved ({args.repeat} rounds):")
    print(f"{'form':<16}{'median ms':>10}{'x SciPy':>9}{'fastest ms':>11}{'x SciPy':>9}")
    forms = list(FITS) if args.forms is None else ["scipy"] + [f for f in args.forms
                                                               if f != "scipy"]
    times = warm(forms, args.repeat)
    med = {name: statistics.median(t) for name, t in times.items()}
    low = {name: min(t) for name, t in times.items()}
    for name in times:
        print(f"{name:<16}{1e3 * med[name]:>10.3f}{med[name] / med['scipy']:>9.2f}"
              f"{1e3 * low[name]:>11.3f}{low[name] / low['scipy']:>9.2f}")


def fresh_table(count: int) -> None:
    print(f"fresh processes ({count} each; median):")
    print(f"{'form':<16}{'wall s':>9}{'x SciPy':>9}{'import s':>10}{'1st fit s':>11}"
          f"{'tensorflow':>12}")
    base = None
    for name in (n for n in FITS if not n.endswith("-loop")):  # fresh: one fit, no loop
        runs = [fresh(name) for _ in range(count)]
        wall = statistics.median(r["wall"] for r in runs)
        base = wall if name == "scipy" else base
        print(f"{name:<16}{wall:>9.2f}{wall / base:>9.2f}"
              f"{statistics.median(r['import'] for r in runs):>10.2f}"
              f"{statistics.median(r['first_fit'] for r in runs):>11.3f}"
              f"{str(runs[0]['tensorflow']):>12}")


if __name__ == "__main__":
    main()
