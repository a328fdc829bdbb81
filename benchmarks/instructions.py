"""Instructions per warm fit, counted by valgrind: exact, and immune to a busy machine.

Each form of ``benchmarks/single_fit.py`` (the exponential of 50 points) runs in a process under
``valgrind --tool=callgrind`` twice: after two warm-up fits, once with 0 more fits and once with
``--fits`` more; the difference of the two totals over ``--fits`` is the cost of one warm fit
(imports and warm-up cancel). Ratios are to SciPy's ``curve_fit``.

The processes run with one OpenBLAS thread and a fixed hash seed: the idle threads of
OpenBLAS's pool spin for a varying number of instructions under valgrind (the same fit gave
4.0-6.8 M instructions in three runs with the default pool, 7.504 M twice on one thread), and
string hashes decide some dictionaries' probes.

Usage: python benchmarks/instructions.py [--fits 20] [--forms scipy numpy numpy+jac]
(needs ``valgrind`` on the PATH; a few minutes per form)
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from single_fit import FITS, SETUP  # noqa: E402

SCRIPT = """
import sys
{imports}
{setup}
for _ in range(2 + int(sys.argv[1])):
    {fit}
"""


def instructions(name: str, fits: int) -> int:
    imports, fit = FITS[name]
    code = SCRIPT.format(imports=imports, setup=SETUP, fit=fit)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "fit.py")
        with open(path, "w") as f:
            f.write(code)
        totals = []
        for count in (0, fits):
            out = subprocess.run(
                ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/cg.out",
                 sys.executable, path, str(count)],
                capture_output=True, text=True, check=True,
                env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", OPENBLAS_NUM_THREADS="1",
                         PYTHONHASHSEED="0"))
            totals.append(int(re.search(r"Collected : (\d+)", out.stderr).group(1)))
    return (totals[1] - totals[0]) // fits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fits", type=int, default=20)
    parser.add_argument("--forms", nargs="+", choices=list(FITS),
                        default=["scipy", "numpy", "numpy+jac"])
    args = parser.parse_args()
    forms = ["scipy"] + [f for f in args.forms if f != "scipy"]
    print(f"{'form':<12}{'instructions/fit':>18}{'x SciPy':>9}")
    base = None
    for name in forms:
        n = instructions(name, args.fits)
        base = n if name == "scipy" else base
        print(f"{name:<12}{n:>18,}{n / base:>9.2f}", flush=True)


if __name__ == "__main__":
    main()
