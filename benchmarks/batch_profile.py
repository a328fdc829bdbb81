"""Where a warm ``curve_fit_batch`` call of a TensorFlow model spends its time.

Wraps (in this process only) the compiled round of ``_backend/tensorflow/batch_stepper``, its
per-round input gathering, and the storing of finished problems (``_batch_results``, with the
covariances apart), then times warm calls of 10,000 2-D Gaussians (benchmarks/batch.py's
model and data) on new data. Reports, per call: wall time; the rounds and the seconds spent
inside them (summed over the stream threads); the host work between rounds (inputs, stores,
covariances); and the occupancy of the slots: the model evaluations the problems needed
(Σ nfev) against those the slots ran (per round, the largest nfev increase of a slot times
the slot count; idle and finished slots compute too). The front door's probe call of ``f``
(``_batch_inputs.probe``: one problem, eagerly, with the zero-column check) is timed too.

    python benchmarks/batch_profile.py [--k 10000] [--repeat 3] [--dtype float32] [--jac]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--k", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    parser.add_argument("--jac", action="store_true", help="the analytic Jacobian")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import batch as bench

    import marquardt
    from marquardt import _batch, _batch_results
    from marquardt._backend.tensorflow import batch_stepper

    model, _, _, jac_tf, data = bench.MODELS["2-D Gaussian 5x5 (n=5, m=25)"]
    options = dict(bench.TOL) if args.dtype == "float64" else dict(dtype=args.dtype)
    if args.jac:
        options["jac"] = jac_tf
    x, y, p0 = data(args.k, seed=100)
    marquardt.curve_fit_batch(model, x, y, p0, **options)  # trace and compile

    lock, acc = threading.Lock(), {}

    def add(name, value):
        with lock:
            acc[name] = acc.get(name, 0) + value

    def timed(name, fn):
        def wrapper(*a, **k):
            started = time.perf_counter()
            out = fn(*a, **k)
            add(name, time.perf_counter() - started)
            return out
        return wrapper

    run = batch_stepper._run

    def counted_round(step, jit_compile, *a):
        state, fresh = a[0], a[1].numpy()
        started = time.perf_counter()
        out = run(step, jit_compile, *a)
        nfev = out.nfev.numpy()  # waits for the round
        add("round", time.perf_counter() - started)
        add("rounds", 1)
        add("slot_evaluations", int((nfev - np.where(fresh, 0, state.nfev.numpy())).max())
            * fresh.size)
        return out

    batch_stepper._run = counted_round
    batch_stepper._Inputs.__call__ = timed("inputs", batch_stepper._Inputs.__call__)
    _batch._inputs.probe = timed("probe", _batch._inputs.probe)
    _batch_results.BatchOutputs.store = timed("store", _batch_results.BatchOutputs.store)
    _batch_results.unscaled_covariances = timed("covariances",
                                                _batch_results.unscaled_covariances)
    print(f"K = {args.k} 2-D Gaussians, {args.dtype}, "
          f"{'analytic' if args.jac else 'autodiff'} Jacobian; load average "
          f"{os.getloadavg()[0]:.1f}; seconds summed over the stream threads")
    for r in range(args.repeat):
        x, y, p0 = data(args.k, seed=r)
        acc.clear()
        started = time.perf_counter()
        res = marquardt.curve_fit_batch(model, x, y, p0, **options)
        wall = time.perf_counter() - started
        print(f"  wall {wall * 1e3:6.1f} ms | probe call of f {acc['probe'] * 1e3:5.1f} ms | "
              f"{acc['rounds']} rounds {acc['round'] * 1e3:6.1f} ms"
              f" | between rounds: inputs {acc['inputs'] * 1e3:5.1f} ms, stores "
              f"{acc['store'] * 1e3:5.1f} ms (covariances {acc['covariances'] * 1e3:5.1f} ms)"
              f" | slots busy {res.nfev.sum() / acc['slot_evaluations']:.0%} "
              f"(nfev mean {res.nfev.mean():.2f})")


if __name__ == "__main__":
    main()
