"""One finite-difference Jacobian of ``single_fit.py``'s exponential: numdiff's Python against C.

The model is ``single_fit.py``'s y = a·exp(−b·t) + c on 50 points, as ``curve_fit`` hands it to
the host executor (``host_fun(p) = asarray(model(t, *p)) − y``), at p0 = (1, 1, 0) with
``curve_fit``'s typical magnitudes. Forms of one Jacobian ('2-point': 3 model calls,
'3-point': 6):

* ``python``: the host executor's, ``numpy_evaluator(...).jacobian(x, r)``
  (``numdiff.one_problem_jacobian``);
* ``c``: ``native_numdiff.NativeDifferences(x, r)``: one ``ctypes`` call into C per Jacobian,
  the model called by C through the Python C API (``native_model.ModelCall``);
* ``c-loop``: the same C function called ``--repeat`` times from a C loop, as the native
  executor's loop will call it: no Python but the model's;
* ``c (callback)``, ``c-loop (callback)``: the same with the model as a ``ctypes`` callback
  (``native_model.ModelCallback``).

And per model call: the model from Python (``host_fun(x)``), the same model from C
(``mq_evaluate`` in a C loop; by the C API, and as a callback), and an empty model (returns
a ready array) each way: the cost of the way itself.

``--whole``: warm ``curve_fit`` fits of the exponential ('2-point') instead: on the Python
trace, the trace with its differences in C (``native_numdiff.enabled``), cstep's native loop
(``native_loop.enabled``), the loop with differences in C, and SciPy's ``curve_fit``; every
form's result checked bit for bit against the trace's.

Times: interleaved rounds of ``--repeat`` calls each, best and median per call (a busy
machine slows every form alike). ``--instructions``: callgrind's instructions per Jacobian
(or fit) instead (exact: two runs under valgrind, with 0 and ``--repeat`` calls,
differenced; OpenBLAS kept to one thread, whose spinning would count).

Usage: python benchmarks/native_numdiff.py [--repeat 2000] [--rounds 7] [--instructions]
       python benchmarks/native_numdiff.py --whole [--repeat 200] [--instructions]
(needs a C compiler; ``--instructions`` needs valgrind)
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
from marquardt._backend.numpy import native_load  # noqa: E402
from marquardt._backend.numpy.native_model import ModelCall, ModelCallback  # noqa: E402
from marquardt._backend.numpy.native_numdiff import NativeDifferences, c_source  # noqa: E402
from marquardt._core import numdiff  # noqa: E402
from marquardt._core.functions import numpy_evaluator  # noqa: E402

#: C loops around the API, for timing it without Python between calls.
DRIVER = r"""
int bench_jacobians(int count, const mq_differences *d, const mq_model *f, const double *x,
                    const double *r, double *h, double *jac, int *nfev) {
    for (int c = 0; c < count; c++) {
        int failed = mq_difference_jacobian(d, f, x, r, h, jac, nfev);
        if (failed) return failed;
    }
    return 0;
}
int bench_evaluations(int count, const mq_model *f, const double *x, double *r, int *nfev) {
    for (int c = 0; c < count; c++) {
        int failed = mq_evaluate(f, x, r, nfev);
        if (failed) return failed;
    }
    return 0;
}
"""

T = np.linspace(0.0, 4.0, 50)
Y = 2.5 * np.exp(-1.3 * T) + 0.5 + 0.01 * np.random.default_rng(0).standard_normal(50)
X0 = np.array([[1.0, 1.0, 0.0]])
INF = np.full((1, 3), np.inf)


def model_np(t, a, b, c):
    return a * np.exp(-b * t) + c


def host_fun(p):  # curve_fit's, without weights (``_curve_fit.fit_curve``)
    return np.asarray(model_np(T, *p), dtype=np.float64) - Y


def forms(method: str) -> dict:
    """Each form as a function of a count: runs that many Jacobians (or calls)."""
    typical = numdiff.typical_magnitudes(X0)
    ev = numpy_evaluator(host_fun, method, 3, 50, -INF, INF, None, typical=typical)
    r0 = host_fun(X0[0])[None]
    # the GIL held in C (a ModelCall calls Python from C): PyDLL
    lib = ctypes.PyDLL(native_load.load(c_source() + DRIVER)._name)
    lib.bench_jacobians.argtypes = [ctypes.c_int] + [ctypes.c_void_p] * 7
    lib.bench_evaluations.argtypes = [ctypes.c_int] + [ctypes.c_void_p] * 4
    jac, nfev, r_out, x1 = np.empty(150), ctypes.c_int(0), np.empty(50), X0[0].copy()
    ready = host_fun(X0[0])
    keep = [jac, nfev, r0, r_out, x1]  # alive while C holds their addresses

    def loop(fn, *args):
        def run(count):
            for _ in range(count):
                fn(*args)
        return run

    def c_loop(model):
        nd = NativeDifferences(model, method, -INF, INF, None, typical)
        keep.extend((model, nd))
        args = (ctypes.addressof(nd.record), ctypes.addressof(model.record), X0.ctypes.data,
                r0.ctypes.data, nd.h.ctypes.data, jac.ctypes.data, ctypes.addressof(nfev))
        return nd, lambda count, keep=keep: lib.bench_jacobians(count, *args)

    def c_evaluations(model):
        keep.append(model)
        args = (ctypes.addressof(model.record), x1.ctypes.data, r_out.ctypes.data,
                ctypes.addressof(nfev))
        return lambda count, keep=keep: lib.bench_evaluations(count, *args)

    nd_call, c_loop_call = c_loop(ModelCall(host_fun, 3, 50, who="f"))
    nd_callback, c_loop_callback = c_loop(ModelCallback(host_fun, 3, 50, who="f"))
    return {
        "python": loop(ev.jacobian, X0, r0),
        "c": loop(nd_call, X0, r0),
        "c-loop": c_loop_call,
        "c (callback)": loop(nd_callback, X0, r0),
        "c-loop (callback)": c_loop_callback,
        "model from Python": loop(host_fun, x1),
        "model from C": c_evaluations(ModelCall(host_fun, 3, 50)),
        "model from C (callback)": c_evaluations(ModelCallback(host_fun, 3, 50)),
        "empty model from Python": loop(lambda p: ready, x1),
        "empty model from C": c_evaluations(ModelCall(lambda p: ready, 3, 50)),
        "empty model from C (callback)": c_evaluations(ModelCallback(lambda p: ready, 3, 50)),
    }


def timings(repeat: int, rounds: int) -> None:
    for method in ("2-point", "3-point"):
        fs = forms(method)
        best = {k: [] for k in fs}
        for _ in range(rounds):
            for name, run in fs.items():
                run(10)
                start = time.perf_counter()
                run(repeat)
                best[name].append((time.perf_counter() - start) / repeat * 1e6)
        calls = numdiff.calls_per_jacobian(method) * 3
        print(f"{method} ({calls} model calls a Jacobian), µs a call, best / median of "
              f"{rounds} rounds of {repeat}:")
        base = min(best["python"])
        for name, ts in best.items():
            ratio = f"   {min(ts) / base:.2f}x python" if name.startswith("c") else ""
            print(f"  {name:<30}{min(ts):>8.2f} /{statistics.median(ts):>8.2f}{ratio}")


def fit_forms() -> dict:
    """Each whole-fit form as a function of a count (warmed up, checked against the trace)."""
    import scipy.optimize

    import marquardt
    from marquardt._backend.numpy import native_loop, native_numdiff

    def fit():
        return marquardt.curve_fit(model_np, T, Y, p0=[1.0, 1.0, 0.0], jac="2-point")

    def under(*switches):
        def run():
            with contextlib.ExitStack() as stack:
                for switch in switches:
                    stack.enter_context(switch())
                return fit()
        return run

    calls = {"trace": fit, "trace+c-diff": under(native_numdiff.enabled),
             "native": under(native_loop.enabled),
             "native+c-diff": under(native_loop.enabled, native_numdiff.enabled),
             "scipy": lambda: scipy.optimize.curve_fit(model_np, T, Y, p0=[1.0, 1.0, 0.0])}
    for call in calls.values():  # the native loop: record and compile, then run native
        call(), call()
    want = calls["trace"]()
    for name in ("trace+c-diff", "native", "native+c-diff"):
        got = calls[name]()
        if any(np.asarray(a).tobytes() != np.asarray(b).tobytes() for a, b in zip(want, got)):
            sys.exit(f"{name}: not the trace's result bit for bit")

    def counted(call):
        def run(count):
            for _ in range(count):
                call()
        return run
    return {name: counted(call) for name, call in calls.items()}


def whole_timings(repeat: int, rounds: int) -> None:
    fs = fit_forms()
    times = {k: [] for k in fs}
    for _ in range(rounds):
        for name, run in fs.items():
            start = time.perf_counter()
            run(repeat)
            times[name].append((time.perf_counter() - start) / repeat * 1e3)
    print(f"warm curve_fit, ms a fit, best / median of {rounds} rounds of {repeat}:")
    for name, ts in times.items():
        print(f"  {name:<16}{min(ts):>8.3f} /{statistics.median(ts):>8.3f}   "
              f"{min(ts) / min(times['scipy']):.2f}x scipy")


SCRIPT = """
import sys
sys.path.insert(0, {here!r})
from native_numdiff import fit_forms, forms
run = (fit_forms() if {method!r} == "fit" else forms({method!r}))[{form!r}]
run(20)
run(int(sys.argv[1]))
"""


def callgrind(method: str, form: str, repeat: int) -> float:
    """Instructions per call of ``form`` (``method``: a difference method, or "fit")."""
    here = os.path.dirname(os.path.abspath(__file__))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "run.py")
        with open(path, "w") as fh:
            fh.write(SCRIPT.format(here=here, method=method, form=form))
        totals = []
        for count in (0, repeat):
            out = subprocess.run(
                ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/cg",
                 sys.executable, path, str(count)],
                capture_output=True, text=True, check=True,
                env=dict(os.environ, PYTHONHASHSEED="0", OPENBLAS_NUM_THREADS="1"))
            totals.append(int(re.search(r"Collected : (\d+)", out.stderr).group(1)))
    return (totals[1] - totals[0]) / repeat


def whole_instructions(repeat: int) -> None:
    print(f"callgrind instructions a warm fit ({repeat} fits minus 0):")
    counts = {}
    for form in ("trace", "trace+c-diff", "native", "native+c-diff", "scipy"):
        counts[form] = callgrind("fit", form, repeat)
        print(f"  {form:<16}{counts[form]:>12,.0f}", flush=True)
    for form, value in counts.items():
        print(f"  {form:<16}{value / counts['scipy']:>6.2f}x scipy")


def instructions(repeat: int) -> None:
    print(f"callgrind instructions a Jacobian or a call ({repeat} minus 0, same process "
          "otherwise):")
    jacobians = ("python", "c", "c-loop", "c (callback)", "c-loop (callback)")
    for method in ("2-point", "3-point"):
        counts = {}
        names = forms(method) if method == "2-point" else jacobians  # calls: once
        for form in names:
            counts[form] = callgrind(method, form, repeat)
            ratio = f"   {counts[form] / counts['python']:.2f}x python" if form in jacobians \
                else ""
            print(f"  {method} {form:<30}{counts[form]:>12,.0f}{ratio}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--instructions", action="store_true",
                        help="callgrind instruction counts instead of times")
    parser.add_argument("--whole", action="store_true", help="whole warm fits")
    args = parser.parse_args()
    if native_load.compiler() is None:
        sys.exit("no C compiler on the PATH (cc, gcc, clang): nothing to measure")
    if args.whole and args.instructions:
        whole_instructions(args.repeat)
    elif args.whole:
        whole_timings(args.repeat, args.rounds)
    elif args.instructions:
        instructions(args.repeat)
    else:
        timings(args.repeat, args.rounds)


if __name__ == "__main__":
    main()
