"""sinc(10x) to MSE 1e-4: marquardt on Keras' JAX backend, marquardt on TensorFlow and
torch-levenberg-marquardt 1.2.3, in one run.

Keras fixes its backend per process, so each method runs ``benchmarks/sinc.py`` in a
subprocess of its own (``KERAS_BACKEND=jax`` for the first; ``jax_enable_x64`` is set there so
that A and g are accumulated in float64 as on TensorFlow), one after the other, and the tables
are printed together. Every run starts from the same weights (``sinc.py --numpy-init``:
Glorot uniform from NumPy's generator per seed; Keras' own seeded initialisers differ between
TensorFlow and JAX).

    python benchmarks/sinc_jax.py                          # 1-20-20-1, 3 seeds, 60 s budget
    python benchmarks/sinc_jax.py --seeds 1 --budget 30    # short
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

RUNS = (
    ("jax", "marquardt (full batch)"),
    ("tensorflow", "marquardt (full batch)"),
    ("tensorflow", "torch-levenberg-marquardt"),
)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budget", type=float, default=60.0, help="seconds per run")
    parser.add_argument("--networks", default="20-20")
    args = parser.parse_args(argv)
    for backend, method in RUNS:
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
        cmd = [sys.executable, str(HERE / "sinc.py"), "--seeds", str(args.seeds),
               "--budget", str(args.budget), "--networks", args.networks, "--methods", method,
               "--numpy-init"]
        print(f"=== {method}, KERAS_BACKEND={backend}", flush=True)
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        rows = [line for line in done.stdout.splitlines()
                if line.startswith(("network", "method", method, "sinc"))]
        print("\n".join(rows) if done.returncode == 0 else done.stdout + done.stderr, flush=True)


if __name__ == "__main__":
    main()
