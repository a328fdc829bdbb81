"""Small regression networks at defaults: marquardt against torch-levenberg-marquardt and Adam.

Two problems of the sizes where LM is usually recommended (scikit-learn is not a dependency,
so both are generated):

* diabetes-size: 442 rows × 10 standardised features (scikit-learn's diabetes set's shape),
  y = x·w + 0.5·tanh(x₀x₁) + noise with the noise variance equal to the signal's (an R² of
  about 0.5, like that set), y standardised; network 10-10-1 (P = 121).
* Friedman #1-size: 1,000 rows of Friedman's #1 (x ~ U[0, 1]¹⁰, y = 10 sin(πx₁x₂) +
  20(x₃ − ½)² + 10x₄ + 5x₅ + N(0, 1)); network 10-20-1 (P = 241).

Each is split 80/20 into training and test rows. Same initial weights for every method. At
defaults: marquardt ``mk.fit`` full batch (``LMOptions()``), torch-levenberg-marquardt 1.2.3's
``LevenbergMarquardtModule`` (its defaults) on the full batch, Keras Adam (lr 1e-3, batch 32).
The test MSE is measured after every epoch, off the clock. Reported: the seconds (and epochs)
to reach the stated test MSE (``TARGETS``), the best test MSE in the budget, and the median
seconds per iteration (one LM iteration = one full-batch epoch; for Adam, one epoch). The
wall-clock start-up of each run (model building, the first tracing) is reported apart.

    python benchmarks/small_nets.py            # 3 seeds, 20 s per run
    python benchmarks/small_nets.py --quick    # 1 seed, 6 s per run
    python benchmarks/small_nets.py --threads 1   # a busy machine
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

#: test MSE to reach (diabetes-size: standardised units, the noise floor is about 0.5;
#: Friedman #1: the noise variance is 1)
TARGETS = {"diabetes": 0.62, "friedman1": 1.6}


def diabetes_like(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(442, 10))
    signal = x @ rng.normal(size=10) / np.sqrt(10) + 0.5 * np.tanh(x[:, 0] * x[:, 1])
    y = signal + rng.normal(size=442) * signal.std()
    return x.astype("float32"), ((y - y.mean()) / y.std())[:, None].astype("float32"), (10,)


def friedman1(seed=0, n=1000):
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(n, 10))
    y = (10 * np.sin(np.pi * x[:, 0] * x[:, 1]) + 20 * (x[:, 2] - 0.5) ** 2 + 10 * x[:, 3]
         + 5 * x[:, 4] + rng.normal(size=n))
    return x.astype("float32"), y[:, None].astype("float32"), (20,)


PROBLEMS = {"diabetes": diabetes_like, "friedman1": friedman1}


def split(x, y):
    cut = int(0.8 * len(x))
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


def network(inputs, hidden, seed):
    import keras

    keras.utils.set_random_seed(seed)
    layers = [keras.Input((inputs,))] + [keras.layers.Dense(h, "tanh") for h in hidden]
    return keras.Sequential(layers + [keras.layers.Dense(1)])


class Trace:
    """Test MSE per epoch against the training time (measurement off the clock)."""

    def __init__(self, predict, xt, yt, budget):
        self.predict, self.xt, self.yt, self.budget = predict, xt, yt, budget
        self.points, self.paused, self.start, self.stamps = [], 0.0, None, []

    def begin(self):
        self.start = time.perf_counter()

    def epoch(self) -> bool:
        t0 = time.perf_counter()
        mse = float(np.mean((self.predict(self.xt) - self.yt) ** 2))
        now = time.perf_counter()
        self.paused += now - t0
        elapsed = t0 - self.start - self.paused + (now - t0)
        self.points.append((elapsed, mse))
        return elapsed > self.budget


def keras_trace_callback(trace):
    import keras

    class _CB(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            trace.begin()

        def on_epoch_end(self, epoch, logs=None):
            if trace.epoch():
                self.model.stop_training = True

    return _CB()


def run_marquardt(data, hidden, seed, budget):
    import marquardt.keras as mk

    (x, y), (xt, yt) = data
    t0 = time.perf_counter()
    net = network(x.shape[1], hidden, seed)
    trace = Trace(lambda v: net(v, training=False).numpy(), xt, yt, budget)
    mk.fit(net, x, y, loss="mse", epochs=1_000_000, verbose=0, batch_size="full",
           callbacks=[keras_trace_callback(trace)])
    return trace, trace.start - t0


def run_torchlm(data, hidden, seed, budget):
    import torch
    import torch_levenberg_marquardt as tlm
    from _torch_copy import torch_copy

    (x, y), (xt, yt) = data
    t0 = time.perf_counter()
    torch.set_num_threads(THREADS[0])
    keras_net = network(x.shape[1], hidden, seed)
    model = torch_copy(keras_net)
    module = tlm.training.LevenbergMarquardtModule(model)
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)

    def predict(v):
        with torch.no_grad():
            return model(torch.from_numpy(v)).numpy()

    trace = Trace(predict, xt, yt, budget)
    startup = time.perf_counter() - t0
    trace.begin()
    while True:
        module.training_step(xs, ys)
        if trace.epoch():
            return trace, startup


def run_adam(data, hidden, seed, budget):
    import keras

    (x, y), (xt, yt) = data
    t0 = time.perf_counter()
    net = network(x.shape[1], hidden, seed)
    net.compile(keras.optimizers.Adam(1e-3), "mse")
    trace = Trace(lambda v: net(v, training=False).numpy(), xt, yt, budget)
    net.fit(x, y, batch_size=32, epochs=1_000_000, verbose=0,
            callbacks=[keras_trace_callback(trace)])
    return trace, trace.start - t0


#: threads of TensorFlow's and torch's kernels (``--threads``), the same for both
THREADS = [2]

METHODS = {"marquardt": run_marquardt, "torch-lm": run_torchlm, "adam": run_adam}


def summarise(trace, target):
    points = trace.points
    hit = next(((t, i + 1) for i, (t, m) in enumerate(points) if m <= target), None)
    steps = np.diff([0.0] + [t for t, _ in points])
    return {"hit": hit, "best": min(m for _, m in points), "epochs": len(points),
            "per_iter": float(np.median(steps[1:] if len(steps) > 1 else steps))}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 seed, 6 s per run")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budget", type=float, default=20.0, help="seconds per run")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--threads", type=int, default=2,
                        help="intra-op threads of TensorFlow and torch (default 2); on a busy "
                        "machine 1 avoids torch's thread contention (2 threads: 200-3,000 ms "
                        "per torch-lm iteration at P = 241 where 1 thread took 40-60 ms)")
    args = parser.parse_args(argv)
    import tensorflow as tf

    THREADS[0] = args.threads
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    if args.quick:
        args.seeds, args.budget = 1, 6.0
    methods = args.methods.split(",")
    print(f"budget {args.budget:g} s per run, {args.seeds} seed(s); medians over seeds")
    for name, make in PROBLEMS.items():
        x, y, hidden = make()
        data = split(x, y)
        p = x.shape[1] * hidden[0] + hidden[0] + hidden[0] + 1
        target = TARGETS[name]
        print(f"\n{name}: {len(data[0][0])} training / {len(data[1][0])} test rows, "
              f"10-{hidden[0]}-1 (P = {p}); target test MSE {target}")
        print(f"{'method':<11} {'time to target':>14} {'epochs':>7} {'best test MSE':>14} "
              f"{'s/iteration':>12} {'start-up':>9}")
        per_iter = {}
        for method in methods:
            results = []
            for seed in range(args.seeds):
                trace, startup = METHODS[method](data, hidden, seed, args.budget)
                results.append((summarise(trace, target), startup))
            hits = [r["hit"] for r, _ in results if r["hit"] is not None]
            t_hit = (f"{statistics.median(h[0] for h in hits):11.2f} s" if len(hits) * 2 >
                     len(results) else "       -     ")
            e_hit = f"{int(statistics.median(h[1] for h in hits)):7d}" if hits else "      -"
            per_iter[method] = statistics.median(r["per_iter"] for r, _ in results)
            best = statistics.median(r["best"] for r, _ in results)
            startup = statistics.median(s for _, s in results)
            print(f"{method:<11} {t_hit:>14} {e_hit} {best:14.4g} "
                  f"{per_iter[method] * 1e3:9.2f} ms {startup:7.2f} s")
        if "marquardt" in per_iter and "torch-lm" in per_iter:
            print(f"per-iteration cost, torch-lm / marquardt: "
                  f"{per_iter['torch-lm'] / per_iter['marquardt']:.2f}")


if __name__ == "__main__":
    main()
