"""Time to capture ``benchmarks/batch.py``'s TensorFlow models as formula trees.

``marquardt._model_capture.capture_model`` on the 2-D Gaussian ``gauss2d`` (a (2, 25) grid,
5 parameters) and the double exponential ``double_exp`` (64 points, 4 parameters), written
with ``tf.exp``, in a fresh process: TensorFlow's import first (timed alone), then the first
capture (which pays the process's first ``tf.function`` trace), then ``--repeat`` more, each
with ``backend=None`` (the symbolic NumPy call fails, an eager call decides TensorFlow, then
the trace, the walk and the check at up to ``CHECKS`` = 4 starts) and with
``backend='tensorflow'`` (the trace, the walk and the check only). The NumPy ``gauss2d_np``
is timed for comparison. Wall clock (``time.perf_counter``), best and median.

Usage: python benchmarks/capture_time.py [--repeat 10]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _bench():
    spec = importlib.util.spec_from_file_location("batch_benchmark",
                                                  Path(__file__).with_name("batch.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _ms(seconds: list[float]) -> str:
    return f"best {1e3 * min(seconds):.1f} ms, median {1e3 * statistics.median(seconds):.1f} ms"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args(argv)
    bench = _bench()
    start = time.perf_counter()
    import tensorflow as tf  # noqa: F401 - timed alone
    print(f"import tensorflow: {time.perf_counter() - start:.2f} s")
    from marquardt._model_capture import capture_model

    cases = {"gauss2d": (bench.gauss2d, bench.gauss2d_data), "gauss2d_np": (
        bench.gauss2d_np, bench.gauss2d_data), "double_exp": (bench.double_exp,
                                                             bench.double_exp_data)}
    first = True
    for name, (f, data) in cases.items():
        x, _, p0 = data(100, seed=0)
        for backend in ((None,) if name.endswith("_np") else (None, "tensorflow")):
            times = []
            for _ in range(args.repeat + first):
                start = time.perf_counter()
                model = capture_model(f, x, p0, backend=backend)
                times.append(time.perf_counter() - start)
                assert model is not None, name
            if first:
                print(f"{name}: first capture in the process {1e3 * times.pop(0):.1f} ms")
                first = False
            print(f"{name} backend={backend!r}: {_ms(times)} ({args.repeat} captures)")


if __name__ == "__main__":
    main()
