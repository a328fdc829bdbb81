"""Data-parallel full-batch LM: one worker against two, on one host (docs/distributed.md).

A tanh MLP (1 input, hidden widths ``--hidden``, 1 output: 70, 70 gives P = 5,181 weights)
fitted to sinc(10x) on ``--samples`` points (200,000 by default), full batch, float32 model,
float64 normal equations (the defaults). Each configuration runs in fresh processes:

* 1 worker: one process, no strategy, all ``--threads`` threads;
* 2 workers: two processes on localhost under ``MultiWorkerMirroredStrategy`` (``TF_CONFIG``
  with two free ports), ``--threads / 2`` threads each, each worker holding half the batch.

Reported per configuration: the median time of a full-batch LM iteration (the epochs after the
first, which traces), the speed-up over one worker, the all-reduce's share of the iteration
(the median time of an all-reduce of the P² + P + 1 numbers of A, g and F, plus that of the
3-number all-reduce per attempt times the attempts made, measured in the same workers after
training, over the iteration time), and the bytes each worker contributes to the all-reduces
per iteration: 8(P² + P + 1) + 24·attempts.

    python benchmarks/tf_distribute.py                       # P = 5,181, 200,000 samples
    python benchmarks/tf_distribute.py --hidden 20 20 --samples 20000 --epochs 3   # P = 481

On a machine with few cores, the two workers share them (``--threads`` in all), so the
speed-up measures what the data-parallel split costs rather than what more hardware buys.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np


def _weights(hidden):
    sizes = [1, *hidden, 1]
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


def _median_time(fn, reps):
    fn()  # trace
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def worker(args):
    """One process: train, time the epochs, time the all-reduces, write JSON (worker 0)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    strategy = tf.distribute.MultiWorkerMirroredStrategy() if "TF_CONFIG" in os.environ else None
    import keras

    import marquardt.keras as mk

    x = np.linspace(-1.0, 1.0, args.samples, dtype=np.float32)[:, None]
    y = np.sinc(10.0 * x).astype(np.float32)
    scope = strategy.scope() if strategy is not None else tf.distribute.get_strategy().scope()
    with scope:
        keras.utils.set_random_seed(0)
        layers = [keras.Input((1,))] + [keras.layers.Dense(h, "tanh") for h in args.hidden]
        net = keras.Sequential(layers + [keras.layers.Dense(1)])
        lm = mk.LMModel(net)
        lm.compile(loss="mse")
    p = net.count_params()
    times = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.t0)

    history = lm.fit(x, y, epochs=args.epochs + 1, verbose=0, callbacks=[Timer()],
                     batch_size="full")
    attempts = [float(a) for a in history.history["attempts"][1:]]
    record = {"p": p, "iteration": float(np.median(times[1:])), "attempts": attempts,
              "loss": float(history.history["loss"][-1]), "replicas": 1,
              "allreduce_big": 0.0, "allreduce_small": 0.0}
    if strategy is not None:
        record["replicas"] = strategy.num_replicas_in_sync

        def allreduce(size):
            @tf.function
            def run():
                def fn():
                    ctx = tf.distribute.get_replica_context()
                    return ctx.all_reduce(tf.distribute.ReduceOp.SUM,
                                          tf.ones([size], tf.float64))
                return strategy.run(fn)
            return lambda: strategy.experimental_local_results(run())[0].numpy()

        record["allreduce_big"] = _median_time(allreduce(p * p + p + 1), args.reps)
        record["allreduce_small"] = _median_time(allreduce(3), args.reps)
    task = json.loads(os.environ.get("TF_CONFIG", '{"task": {"index": 0}}'))["task"]["index"]
    if task == 0:
        with open(args.out, "w") as f:
            json.dump(record, f)


def _free_ports(count):
    socks = [socket.socket() for _ in range(count)]
    for s in socks:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def run(workers, args, tmp):
    out = os.path.join(tmp, f"w{workers}.json")
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--out", out,
           "--samples", str(args.samples), "--epochs", str(args.epochs), "--reps", str(args.reps),
           "--threads", str(max(1, args.threads // workers)), "--hidden",
           *[str(h) for h in args.hidden]]
    env = dict(os.environ)
    env.pop("TF_CONFIG", None)
    procs = []
    if workers == 1:
        procs.append(subprocess.Popen(cmd, env=env))
    else:
        cluster = {"worker": [f"localhost:{port}" for port in _free_ports(workers)]}
        for index in range(workers):
            config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
            procs.append(subprocess.Popen(cmd, env=dict(env, TF_CONFIG=json.dumps(config))))
    codes = [proc.wait() for proc in procs]
    if any(codes):
        raise RuntimeError(f"a worker failed: exit codes {codes}")
    with open(out) as f:
        return json.load(f)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200_000)
    parser.add_argument("--hidden", type=int, nargs="+", default=[70, 70])
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs (after the first)")
    parser.add_argument("--reps", type=int, default=5, help="all-reduce timings (median)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="threads in all, split between the workers")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    p = _weights(args.hidden)
    print(f"full-batch LM iteration, P = {p:,} weights, {args.samples:,} samples, "
          f"{args.threads} threads in all; 2 workers: MultiWorkerMirroredStrategy, 2 processes")
    with tempfile.TemporaryDirectory() as tmp:
        results = {w: run(w, args, tmp) for w in (1, 2)}
    base = results[1]["iteration"]
    print(f"{'workers':>7} {'replicas':>8} {'iteration s':>12} {'speed-up':>8} "
          f"{'all-reduce s':>12} {'share':>6} {'MB/iter':>8} {'attempts':>8} {'loss':>10}")
    for w, r in results.items():
        att = float(np.mean(r["attempts"])) if r["attempts"] else 0.0
        reduce_s = r["allreduce_big"] + att * r["allreduce_small"]
        mb = 0.0 if w == 1 else (8 * (p * p + p + 1) + 24 * att) / 1e6
        print(f"{w:>7} {r['replicas']:>8} {r['iteration']:>12.3f} {base / r['iteration']:>8.2f} "
              f"{reduce_s:>12.3f} {reduce_s / r['iteration']:>6.1%} {mb:>8.1f} {att:>8.1f} "
              f"{r['loss']:>10.3e}")


if __name__ == "__main__":
    main()
