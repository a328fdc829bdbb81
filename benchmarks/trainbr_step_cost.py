"""Where a trainbr epoch's extra cost goes: one LM iteration of ``TRAINBR`` against ``TRAINLM``
from comparable states, with and without the trace of H⁻¹.

``benchmarks/trainbr.py`` times whole epochs, whose attempts (one Cholesky solve and one forward
pass each) differ between the methods and whose wall time on a shared machine varies by ±30%
between runs. Here each method is first trained 5 epochs on the same data from the same start,
then its λ is set to ``--lam`` (1.0: the next step is accepted at the first attempt in both),
its variables are saved, and its compiled ``train_step`` is called ``--repeats`` times,
alternating the methods, each call from the saved variables: one iteration of exactly one
accepted attempt each. Reported: the least wall time and the least process CPU time per
call; ``--one-thread`` runs TensorFlow on one intra-op and one inter-op thread (and the host's
OpenBLAS on one, through ``OPENBLAS_NUM_THREADS`` set before NumPy loads), so that CPU time is
the work done (the most stable figure on a loaded machine).

``--trace`` names the routes of tr((A + ρI)⁻¹) to time, each as its own trainbr run in the same
alternation: ``auto`` (the library's choice, ``linalg.use_host_trace``), ``tf`` (TensorFlow's
Cholesky and a triangular solve against the identity), ``host`` (LAPACK's ``potrf`` + ``trtri``
on the host), ``none`` (replaced by a trivial function: what is left of trainbr's extra cost is
everything but the trace; ``--no-trace`` is ``--trace none``).

    python benchmarks/trainbr_step_cost.py --one-thread            # 1-20-20-1, 2,000 rows
    python benchmarks/trainbr_step_cost.py --one-thread --trace tf,host,none
    python benchmarks/trainbr_step_cost.py --hidden 20 --rows 60   # P = 61
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", default="20,20", help="hidden widths (default 20,20: P = 481)")
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--inputs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--lam", type=float, default=1.0)
    parser.add_argument("--one-thread", action="store_true")
    parser.add_argument("--trace", default="auto",
                        help="trace routes of trainbr, comma-separated: auto, tf, host, none")
    parser.add_argument("--no-trace", action="store_true", help="the same as --trace none")
    args = parser.parse_args()
    routes = ["none"] if args.no_trace else args.trace.split(",")
    if args.one_thread:
        os.environ["OPENBLAS_NUM_THREADS"] = "1"

    import numpy as np

    import marquardt  # noqa: F401  (before TensorFlow: quiet)
    import tensorflow as tf

    if args.one_thread:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)

    import marquardt.keras as mk
    from trainbr import SIGMA, network

    from marquardt._backend.tensorflow import keras_bayes, linalg

    auto_trace, auto_route = keras_bayes.effective_parameters, linalg.use_host_trace

    def set_route(route):
        """Patched before the step is traced; the compiled step keeps its route."""
        keras_bayes.effective_parameters = (
            (lambda m, rho, p, eps=None, host=False: (tf.linalg.trace(m), tf.constant(0)))
            if route == "none" else auto_trace)
        linalg.use_host_trace = (auto_route if route in ("auto", "none") else
                                 (lambda n, jit_compile, host=route == "host": host))

    hidden = tuple(int(v) for v in args.hidden.split(","))
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (args.rows, args.inputs)).astype(np.float32)
    y = (np.sin(3 * x[:, :1]) + SIGMA * rng.normal(size=(args.rows, 1))).astype(np.float32)
    data = (tf.constant(x), tf.constant(y))
    runs = {}
    methods = [("trainlm", mk.TRAINLM, "auto")] + [
        ("trainbr" if len(routes) == 1 else f"trainbr[{route}]", mk.TRAINBR, route)
        for route in routes]
    for name, options, route in methods:
        set_route(route)
        net = network(args.inputs, hidden, 0)
        lm = mk.LMModel(net, options=options)
        lm.compile(loss="mse")
        lm.fit(x, y, epochs=5, verbose=0)
        lm.lm_lambda.assign(args.lam)
        step = tf.function(lambda d, lm=lm: lm.train_step(d))
        saved = [v.numpy() for v in lm.variables]
        step(data)
        runs[name] = (lm, step, saved, net.count_params())
    wall = {k: float("inf") for k in runs}
    cpu = dict(wall)
    attempts = {}
    for _ in range(args.repeats):
        for name, (lm, step, saved, _) in runs.items():
            for v, s in zip(lm.variables, saved):
                v.assign(s)
            t, c = time.perf_counter(), time.process_time()
            logs = step(data)
            float(logs["loss"])
            wall[name] = min(wall[name], time.perf_counter() - t)
            cpu[name] = min(cpu[name], time.process_time() - c)
            attempts[name] = (int(logs["attempts"]), float(logs["step_norm"]) > 0)

    p = runs["trainlm"][3]
    print(f"{'-'.join(map(str, (args.inputs, *hidden, 1)))}, P = {p}, {args.rows} rows"
          f"{', one thread' if args.one_thread else ''}; load average {os.getloadavg()[0]:.1f}")
    for name in runs:
        n, accepted = attempts[name]
        ratio = ("" if name == "trainlm" else
                 f"; /trainlm: wall {wall[name] / wall['trainlm']:.3f}, "
                 f"CPU {cpu[name] / cpu['trainlm']:.3f}")
        print(f"  {name}: {n} attempt(s), {'accepted' if accepted else 'rejected'}; "
              f"wall {1e3 * wall[name]:.2f} ms, CPU {1e3 * cpu[name]:.2f} ms{ratio}")


if __name__ == "__main__":
    main()
