"""Benchmark on tf-levenberg-marquardt's README problem: y = sinc(10x), x in [-1, 1].

Side by side, same seeds and initial weights: marquardt at its defaults (``batch_size="auto"``:
mini-batches of 4·⌈P/k⌉ samples, then full batch once an epoch stops lowering the full-data
loss), full batch (``batch_size="full"``) and mini-batch 1000 throughout,
torch-levenberg-marquardt 1.2.3 (the fastest LM trainer we know: its defaults, batch 1000,
shuffled each epoch, 2 threads), tf-levenberg-marquardt 1.0.3 (batch 1000, its README
setting) and Keras Adam (lr 1e-2 and 1e-3, batch 1000). For each run the training-set MSE is measured after every epoch, with the
measurement excluded from the clock. Reported per network and method (medians over seeds):
time and epochs to reach MSE 1e-4 and 1e-6, the best MSE within the time budget, and the
ratio of each method's time to 1e-4 over marquardt's.

    python benchmarks/sinc.py              # 3 seeds, 60 s budget per run
    python benchmarks/sinc.py --quick      # smoke run: 1 seed, small budget, 1-20-1 only
    python benchmarks/sinc.py --seeds 1 --budget 20 --networks 20-20   # one network, short
    python benchmarks/sinc.py --methods "marquardt (full batch)" --json out.json  # + traces

``--json`` keeps every run's trace with its epoch cost, first-epoch overhead and peak RSS;
``benchmarks/sinc_jax.py`` runs one method and seed per process this way.

tf-levenberg-marquardt must be installed with ``pip install --no-deps
tf-levenberg-marquardt==1.0.3`` (without --no-deps it would install a second TensorFlow);
torch-levenberg-marquardt with ``pip install torch torch-levenberg-marquardt==1.2.3``
(it imports pytorch-lightning and torchmetrics). Each is skipped with a note when missing. Timings depend on the machine: run it on a quiet one.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time

import numpy as np

N_POINTS = 20_000
TARGETS = (1e-4, 1e-6, 1e-7)
#: ``--numpy-init``: initial weights from a NumPy generator (``benchmarks/sinc_jax.py``)
NUMPY_INIT = False
#: ``--stop-mse``: a run ends once its training MSE is at or below this
STOP_MSE = 1e-9


def data():
    x = np.linspace(-1.0, 1.0, N_POINTS, dtype=np.float32)[:, None]
    return x, np.sinc(10.0 * x).astype(np.float32)


def network(hidden, seed):
    import keras

    keras.utils.set_random_seed(seed)
    layers = [keras.Input((1,))] + [keras.layers.Dense(h, "tanh") for h in hidden]
    net = keras.Sequential(layers + [keras.layers.Dense(1)])
    if NUMPY_INIT:  # the same start on every Keras backend (their generators differ)
        rng = np.random.default_rng(seed)
        net.set_weights([np.zeros(w.shape, np.float32) if w.ndim == 1 else  # Glorot uniform
                         rng.uniform(-1, 1, w.shape).astype(np.float32)
                         * np.float32(np.sqrt(6.0 / sum(w.shape))) for w in net.get_weights()])
    return net


class Recorder:
    """Keras callback: training MSE after each epoch, time net of the measurement."""

    def __init__(self, x, y, budget):
        import keras

        outer = self

        class _CB(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                outer.start = time.perf_counter()
                outer.paused = 0.0

            def on_epoch_end(self, epoch, logs=None):
                t0 = time.perf_counter()
                pred = outer.predict(x)
                mse = float(np.mean((pred - y) ** 2))
                now = time.perf_counter()
                outer.paused += now - t0
                outer.trace.append((t0 - outer.start - outer.paused + (now - t0), mse))
                if t0 - outer.start - outer.paused + (now - t0) > budget or mse <= STOP_MSE:
                    self.model.stop_training = True

        self.callback = _CB()
        self.trace = []
        self.predict = None


def summarise(trace, budget):
    out = {}
    for target in TARGETS:
        hit = next(((t, i + 1) for i, (t, m) in enumerate(trace) if m <= target), None)
        out[target] = hit
    inside = [m for t, m in trace if t <= budget] or [math.inf]
    out["best"] = min(inside)
    out["epochs"] = len(trace)
    return out


def run_marquardt(hidden, seed, x, y, budget, batch_size=None):
    """``mk.fit`` at its defaults (``batch_size=None`` here: not passed), or with
    ``batch_size`` (``"full"`` or a number)."""
    import marquardt.keras as mk

    net = network(hidden, seed)
    rec = Recorder(x, y, budget)
    rec.predict = lambda v: np.asarray(net(v, training=False))  # TensorFlow or JAX
    extra = {} if batch_size is None else {"batch_size": batch_size}
    mk.fit(net, x, y, loss="mse", epochs=100_000, verbose=0, callbacks=[rec.callback],
           shuffle=True, **extra)
    return rec.trace


def run_tflm(hidden, seed, x, y, budget):
    import keras
    import tensorflow as tf
    import tf_levenberg_marquardt as lm

    net = network(hidden, seed)
    wrapper = lm.model.ModelWrapper(net)
    wrapper.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0),
                    loss=lm.loss.MeanSquaredError())
    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(N_POINTS, seed=seed).batch(1000)
    ds = ds.cache().prefetch(tf.data.AUTOTUNE)
    rec = Recorder(x, y, budget)
    rec.predict = lambda v: net(v, training=False).numpy()
    wrapper.fit(ds, epochs=100_000, verbose=0, callbacks=[rec.callback])
    return rec.trace


def run_torchlm(hidden, seed, x, y, budget):
    """torch-levenberg-marquardt's ``LevenbergMarquardtModule`` at its defaults (MSE, the
    standard damping strategy, 10 attempts per step, QR solve), on a torch MLP given the
    Keras network's initial weights; batch 1000, reshuffled every epoch."""
    import torch
    import torch_levenberg_marquardt as tlm
    from _torch_copy import torch_copy

    torch.set_num_threads(2)
    keras_net = network(hidden, seed)
    model = torch_copy(keras_net)
    module = tlm.training.LevenbergMarquardtModule(model)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    generator = torch.Generator().manual_seed(seed)
    trace, start, paused = [], time.perf_counter(), 0.0
    while True:
        order = torch.randperm(N_POINTS, generator=generator)
        for i in range(0, N_POINTS, 1000):
            idx = order[i:i + 1000]
            module.training_step(xt[idx], yt[idx])
        t0 = time.perf_counter()
        with torch.no_grad():
            mse = float(torch.mean((model(xt) - yt) ** 2))
        now = time.perf_counter()
        paused += now - t0
        elapsed = now - start - paused
        trace.append((elapsed, mse))
        if elapsed > budget or mse <= STOP_MSE:
            return trace


def run_adam(hidden, seed, x, y, budget, lr):
    import keras

    net = network(hidden, seed)
    net.compile(keras.optimizers.Adam(lr), "mse")
    rec = Recorder(x, y, budget)
    rec.predict = lambda v: net(v, training=False).numpy()
    net.fit(x, y, batch_size=1000, epochs=100_000, verbose=0, callbacks=[rec.callback])
    return rec.trace


def fmt_hit(hit):
    return "      -      " if hit is None else f"{hit[0]:6.1f}s/{hit[1]:<5d}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budget", type=float, default=60.0, help="seconds per run")
    parser.add_argument("--networks", default="20,20-20")
    parser.add_argument("--methods", help="comma-separated names of the methods to run "
                        "(default: all)")
    parser.add_argument("--numpy-init", action="store_true",
                        help="initial weights (Glorot uniform, zero biases) from NumPy's seeded "
                        "generator: the same on TensorFlow and JAX")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds first-seed, first-seed + 1, ... (sinc_jax.py: one a process)")
    parser.add_argument("--stop-mse", type=float, default=1e-9,
                        help="end a run once its training MSE is at or below this")
    parser.add_argument("--json", metavar="PATH",
                        help="also write every run's trace (seconds, MSE per epoch), epoch cost, "
                        "first-epoch overhead and the process' peak RSS to PATH")
    args = parser.parse_args(argv)
    global NUMPY_INIT, STOP_MSE
    NUMPY_INIT = args.numpy_init
    STOP_MSE = args.stop_mse
    if os.environ.get("KERAS_BACKEND") == "jax":  # benchmarks/sinc_jax.py
        import jax

        jax.config.update("jax_enable_x64", True)  # A and g in float64, as on TensorFlow
    if args.quick:
        args.seeds, args.budget, args.networks = 1, 8.0, "20"
    x, y = data()
    methods = {
        "marquardt (defaults)": lambda h, s: run_marquardt(h, s, x, y, args.budget),
        "marquardt (full batch)": lambda h, s: run_marquardt(h, s, x, y, args.budget, "full"),
        "marquardt (batch 1000)": lambda h, s: run_marquardt(h, s, x, y, args.budget, 1000),
        "torch-levenberg-marquardt": lambda h, s: run_torchlm(h, s, x, y, args.budget),
        "tf-levenberg-marquardt": lambda h, s: run_tflm(h, s, x, y, args.budget),
        "adam lr=1e-2": lambda h, s: run_adam(h, s, x, y, args.budget, 1e-2),
        "adam lr=1e-3": lambda h, s: run_adam(h, s, x, y, args.budget, 1e-3),
    }
    if args.methods:
        keep = set(args.methods.split(","))
        methods = {k: v for k, v in methods.items() if k in keep}
    for module, name in (("tf_levenberg_marquardt", "tf-levenberg-marquardt"),
                         ("torch_levenberg_marquardt", "torch-levenberg-marquardt")):
        if name not in methods:  # importing tf_levenberg_marquardt imports TensorFlow
            continue
        try:
            __import__(module)
        except ImportError as exc:
            print(f"note: {name} skipped ({exc})")
            del methods[name]
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    record = {"points": N_POINTS, "budget_s": args.budget, "stop_mse": args.stop_mse,
              "keras_backend": os.environ.get("KERAS_BACKEND", "tensorflow"), "runs": []}
    print(f"sinc(10x), {N_POINTS} points, {args.seeds} seed(s), budget {args.budget:g} s/run")
    for net_spec in args.networks.split(","):
        hidden = tuple(int(h) for h in net_spec.split("-"))
        params = sum((a + 1) * b for a, b in zip((1,) + hidden, hidden + (1,)))
        print(f"\nnetwork 1-{net_spec}-1 ({params} parameters); time/epochs to MSE, median")
        print(f"{'method':24s} {'to 1e-4':>13s} {'to 1e-6':>13s} {'to 1e-7':>13s} "
              f"{'best MSE':>9s}")
        results = {}
        for name, fn in methods.items():
            runs = []
            for seed in seeds:
                trace = fn(hidden, seed)
                runs.append(summarise(trace, args.budget))
                record["runs"].append(dict(network=net_spec, method=name, seed=seed,
                                           trace=trace, **epoch_costs(trace),
                                           peak_rss_mb=peak_rss_mb()))
            results[name] = runs
        for name, runs in results.items():
            cells = [fmt_hit(_median_hit(runs, t)) for t in TARGETS]
            best = statistics.median(r["best"] for r in runs)
            print(f"{name:24s} {cells[0]} {cells[1]} {cells[2]} {best:9.2e}")
        _speedups(results, args.budget)
        _issue_line(results)
        sys.stdout.flush()
    print("\nspeed-up: the reference's median time to MSE 1e-4 over the marquardt variant's "
          "(issue targets: >= 1.5x over torch-levenberg-marquardt at marquardt's defaults, "
          ">= 10x over tf-levenberg-marquardt, >= 20x over Adam, and MSE 1e-7 reached). '>' marks a lower bound: the reference did not reach 1e-4 within the "
          "budget in more than half of the seeds. 'marquardt (defaults)' is mk.fit without "
          "batch_size (batch_size='auto'); the full-batch and batch-1000 rows are options. Timings on a loaded machine are inflated and noisy; "
          "compare rows of one run only.")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(record, fh)


def epoch_costs(trace):
    """Median seconds per epoch after the first, and the first epoch's excess over it (for
    the compiled trainers: tracing and compilation of the train step)."""
    if len(trace) < 2:
        return {"epoch_s": None, "first_epoch_s": trace[0][0] if trace else None,
                "overhead_s": None}
    epoch = statistics.median(b[0] - a[0] for a, b in zip(trace, trace[1:]))
    return {"epoch_s": epoch, "first_epoch_s": trace[0][0], "overhead_s": trace[0][0] - epoch}


def peak_rss_mb():
    """This process' peak resident memory so far, MB (Linux: ``ru_maxrss`` in KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

def _speedups(results, budget):
    refs = [name for name in results if not name.startswith("marquardt")]
    for name, runs in results.items():
        if not name.startswith("marquardt"):
            continue
        mine = _median_time(runs, 1e-4)
        reached = _median_hit(runs, 1e-7) is not None
        parts = []
        for ref in refs:
            theirs = _median_time(results[ref], 1e-4)
            if mine is None:
                parts.append(f"{ref}: -")
            elif theirs is None:
                parts.append(f"{ref}: >{budget / mine:.1f}x")
            else:
                parts.append(f"{ref}: {theirs / mine:.1f}x")
        print(f"  {name}: " + ", ".join(parts) + f"; MSE 1e-7 {'reached' if reached else 'not reached'}")


def _issue_line(results):
    """Issue #13, result 3, for the defaults row: MSE 1e-4 >= 1.5x sooner than
    torch-levenberg-marquardt, and 1e-7 within 100 s."""
    mine, theirs = results.get("marquardt (defaults)"), results.get("torch-levenberg-marquardt")
    if mine is None:
        return
    t4, t7 = _median_time(mine, 1e-4), _median_time(mine, 1e-7)
    ref = None if theirs is None else _median_time(theirs, 1e-4)
    if t4 is None or theirs is None:
        speed = "no ratio (defaults or torch-levenberg-marquardt not run or 1e-4 not reached)"
    elif ref is None:
        speed = "torch-levenberg-marquardt did not reach 1e-4 (ratio is a lower bound)"
    else:
        speed = (f"{ref / t4:.2f}x sooner than torch-levenberg-marquardt "
                 f"({t4:.1f} s against {ref:.1f} s): {'met' if ref / t4 >= 1.5 else 'NOT met'}")
    seven = ("not reached" if t7 is None else
             f"{t7:.1f} s: {'met' if t7 <= 100 else 'NOT met'}")
    print(f"  issue #13 result 3, marquardt (defaults): MSE 1e-4 {speed}; MSE 1e-7 in {seven}")


def _median_hit(runs, target):
    hits = [r[target] for r in runs if r[target] is not None]
    if len(hits) * 2 <= len(runs):
        return None
    return (statistics.median(h[0] for h in hits), int(statistics.median(h[1] for h in hits)))


def _median_time(runs, target):
    hit = _median_hit(runs, target)
    return None if hit is None else hit[0]


if __name__ == "__main__":
    main()
