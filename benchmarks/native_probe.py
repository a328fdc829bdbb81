"""What a native executor for single fits would pay per call: measured, not assumed.

Issue #13's warm target (≤ 1.5× MINPACK for a small fit) is out of reach of any loop that runs
in Python (``single_fit.py --forms python-floor``: a minimal LM loop is already 1.2-1.7×
MINPACK). The design that would reach it keeps the whole fit in compiled code, emitted from
the core's trace (``_backend/numpy/trace.py``) as C, compiled once per configuration by the
system's C compiler and cached, with the user's Python model called back from it. This
probe measures the three costs that design rests on, with a C file written here:

1. a Python model called back from C through ``ctypes`` (the model writes into NumPy views of
   the C buffers, so no array is wrapped per call), against the same model called from a
   Python loop;
2. a ``ctypes`` call of a C function with pre-built pointer arguments (a step of the core on
   flat state buffers);
3. compiling a generated straight-line C function of 3,000 scalar lines (the traced steps of
   a 3-parameter fit are about 700 lines) with ``-O1``.

Usage: python benchmarks/native_probe.py   (needs a C compiler: ``cc``)
"""

from __future__ import annotations

import argparse
import ctypes
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

C_SOURCE = r"""
typedef int (*model_fn)(double *x, double *r);
/* the fit's loop stands in: the model called n times at moving points */
double drive(model_fn f, double *x, double *r, int n) {
    double s = 0.0;
    for (int i = 0; i < n; i++) { x[0] += 1e-9; if (f(x, r)) return -1.0; s += r[0]; }
    return s;
}
/* a step stands in: reads the residuals, writes the state */
int step(double *state, double *r, double *j, int m) {
    double s = 0.0;
    for (int i = 0; i < m; i++) s += r[i] * r[i];
    state[0] = s; state[1] = j[0];
    return 0;
}
"""


def straight_line(lines: int) -> str:
    """A generated function of ``lines`` scalar statements (arithmetic and selects, as the
    trace's lanes emit)."""
    rng = random.Random(0)
    out = ["double generated(const double *a) {", "  double v0 = a[0], v1 = a[1], v2 = a[2];"]
    for i in range(3, lines):
        x, y = rng.randrange(i), rng.randrange(i)
        op = rng.choice("+-*/")
        out.append(f"  double v{i} = (v{x} {op} v{y}) > 0.5 ? v{x} : v{y} {op} 0.25;")
    out.append(f"  return v{lines - 1};\n}}\n")
    return "\n".join(out)


def compile_c(cc: str, source: str, where: str, name: str, level: str = "-O2") -> tuple[str, float]:
    path = os.path.join(where, name + ".c")
    with open(path, "w") as fh:
        fh.write(source)
    lib = os.path.join(where, name + ".so")
    start = time.perf_counter()
    subprocess.run([cc, level, "-fPIC", "-shared", "-ffp-contract=off", "-o", lib, path],
                   check=True)
    return lib, time.perf_counter() - start


def main() -> None:
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        sys.exit("no C compiler on the PATH (cc, gcc, clang): nothing to measure")
    with tempfile.TemporaryDirectory() as where:
        lib_path, _ = compile_c(cc, C_SOURCE, where, "probe")
        _, seconds = compile_c(cc, straight_line(3000), where, "generated", "-O1")
        lib = ctypes.CDLL(lib_path)

        t = np.linspace(0.0, 4.0, 50)
        y = 2.5 * np.exp(-1.3 * t) + 0.5
        x, r = np.array([1.0, 1.0, 0.0]), np.zeros(50)

        def model(_px, _pr) -> int:  # NumPy views of the C buffers: nothing wrapped per call
            r[:] = x[0] * np.exp(-x[1] * t) + x[2] - y
            return 0

        model_fn = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_double),
                                    ctypes.POINTER(ctypes.c_double))
        callback = model_fn(model)
        lib.drive.argtypes = [model_fn, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
        lib.drive.restype = ctypes.c_double
        lib.step.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int]
        lib.step.restype = ctypes.c_int
        state, jac = np.zeros(16), np.zeros((50, 3))
        pointers = (state.ctypes.data, r.ctypes.data, jac.ctypes.data)

        calls = 20_000
        best = {"callback": np.inf, "python": np.inf, "step": np.inf}
        for _ in range(5):
            start = time.perf_counter()
            lib.drive(callback, x.ctypes.data, r.ctypes.data, calls)
            best["callback"] = min(best["callback"], time.perf_counter() - start)
            start = time.perf_counter()
            for _ in range(calls):
                x[0] += 1e-9
                model(None, None)
            best["python"] = min(best["python"], time.perf_counter() - start)
            start = time.perf_counter()
            for _ in range(calls):
                lib.step(*pointers, 50)
            best["step"] = min(best["step"], time.perf_counter() - start)
    per = {k: v / calls * 1e6 for k, v in best.items()}
    print(f"compiler: {cc}")
    print(f"model (exponential, 50 points) called back from C: {per['callback']:.2f} µs a call")
    print(f"the same model from a Python loop:                 {per['python']:.2f} µs a call")
    print(f"a C step through ctypes, pointers pre-built:       {per['step']:.2f} µs a call")
    print(f"compiling 3,000 generated scalar lines (-O1):      {seconds:.2f} s")


if __name__ == "__main__":
    argparse.ArgumentParser(description=__doc__.split("\n")[0]).parse_args()
    main()
