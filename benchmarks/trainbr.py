"""Bayesian regularisation (``TRAINBR``) against trainlm on small noisy regression problems.

Two problems, each over several seeds (a seed draws the data, the noise and the initial weights,
shared by every method):

* ``1-D``: y = sin(3x) + ε, x uniform on [−1, 1], 60 training rows, a 1-20-1 tanh network
  (P = 61 ≥ N = 60: plain LM can interpolate the noise);
* ``3-D``: y = sin(πx₁/2)·cos(x₂) + ½x₃² + ε, x uniform on [−1, 1]³, 100 rows, 3-10-1 (P = 51);

ε ~ N(0, 0.1²), so the noise variance is σ² = 0.01; inputs lie in [−1, 1] and targets are of
order one, the normalisation the method assumes. Test MSE is measured on 4,000 fresh noisy rows,
so the best possible is σ² (ratio 1). Methods:

* ``trainbr``: ``mk.TRAINBR``, all training rows, up to ``--epochs`` epochs;
* ``trainlm + early stop``: ``mk.TRAINLM`` on 85% of the rows, the other 15% for validation,
  ``EarlyStopping(patience=6, restore_best_weights=True)`` (MATLAB's max_fail 6);
* ``trainlm``: ``mk.TRAINLM`` on all rows, no stop but its own (μ ceiling, min_grad, epochs);
* ``AdamW (best of grid)``: full-batch AdamW for ``--adam-steps`` steps at each point of a small
  (learning rate, weight decay) grid; the grid point with the lowest median *test* MSE is shown
  (an oracle choice, so optimistic for Adam).

The table gives the median over seeds of the test MSE, its ratio to σ², the median γ of BR
against P, the median epochs and the median time per epoch (the first epoch, which traces the
step, left out; one run per seed, so noisy on a shared machine). The cost table times BR against
trainlm epochs on the two networks and on a larger one (1-20-20-1, P = 481, 2,000 rows), where
the extra factorisation of A + ρI is visible, alternating runs and keeping the best.

    python benchmarks/trainbr.py --quick     # 3 seeds, 300 epochs, 2 grid points (~2-4 min)
    python benchmarks/trainbr.py             # 10 seeds, 1000 epochs, 6 grid points
    python benchmarks/trainbr.py --init glorot   # every method from Keras' default start
    python benchmarks/trainbr.py --cost --cpu --dtypes float32,float64   # the cost table alone
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

SIGMA = 0.1

#: The epoch clock: wall time, or with ``--cpu`` the process' CPU time (all of TensorFlow's
#: threads: the work done, steadier than wall time on a shared machine)
CLOCK = time.perf_counter


def problem(name: str, seed: int):
    rng = np.random.default_rng(seed)
    if name == "1-D":
        n, d, hidden = 60, 1, 20

        def f(x):
            return np.sin(3.0 * x[:, 0])
    else:
        n, d, hidden = 100, 3, 10

        def f(x):
            return np.sin(np.pi * x[:, 0] / 2) * np.cos(x[:, 1]) + 0.5 * x[:, 2] ** 2
    x = rng.uniform(-1, 1, (n, d))
    y = f(x) + SIGMA * rng.normal(size=n)
    xt = rng.uniform(-1, 1, (4000, d))
    yt = f(xt) + SIGMA * rng.normal(size=4000)
    f32 = np.float32
    return (x.astype(f32), y[:, None].astype(f32), xt.astype(f32), yt[:, None].astype(f32),
            hidden)


#: The initial weights, shared by every method: the hidden layer by MATLAB's ``initnw``
#: (``mk.initnw``; Nguyen & Widrow 1990), the start of MATLAB's trainlm and trainbr and of
#: Foresee & Hagan (1997), the output layer Keras' default; or with ``--init glorot`` Keras'
#: defaults everywhere (Glorot-uniform kernels, zero biases)
INIT = "nguyen-widrow"


def network(d: int, hidden: tuple[int, ...], seed: int):
    import keras

    keras.utils.set_random_seed(seed)
    layers = [keras.Input((d,))] + [keras.layers.Dense(h, "tanh") for h in hidden]
    net = keras.Sequential(layers + [keras.layers.Dense(1)])
    if INIT == "nguyen-widrow":
        import marquardt.keras as mk

        mk.initnw(net, seed=1000 + seed)  # the hidden tanh layer(s); the output keeps Glorot
    return net


class _Clock:
    """Per-epoch times (a Keras callback made lazily, so ``--help`` needs no TensorFlow)."""

    def __new__(cls):
        import keras

        class Clock(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.times = []

            def on_epoch_begin(self, epoch, logs=None):
                self.t = CLOCK()

            def on_epoch_end(self, epoch, logs=None):
                self.times.append(CLOCK() - self.t)

        return Clock()


def _median_epoch(times):
    return statistics.median(times[1:]) if len(times) > 1 else float("nan")


def train_lm(net, x, y, epochs, *, bayesian: bool, validation: bool):
    import keras

    import marquardt.keras as mk

    clock = _Clock()
    callbacks = [clock]
    val = None
    if validation:
        k = int(round(0.85 * len(x)))
        x, y, val = x[:k], y[:k], (x[k:], y[k:])
        callbacks.insert(0, keras.callbacks.EarlyStopping(patience=6, restore_best_weights=True))
    options = mk.TRAINBR if bayesian else mk.TRAINLM
    history = mk.fit(net, x, y, loss="mse", epochs=epochs, options=options,
                     validation_data=val, callbacks=callbacks, verbose=0)
    gamma = history.history["gamma"][-1] if bayesian else float("nan")
    train_lm.attempts = statistics.mean(history.history["attempts"][1:])
    return float(gamma), len(history.epoch), _median_epoch(clock.times)


def train_adamw(net, x, y, steps, lr, wd):
    import keras
    import tensorflow as tf

    opt = keras.optimizers.AdamW(learning_rate=lr, weight_decay=wd)
    xs, ys = tf.constant(x), tf.constant(y)
    variables = net.trainable_variables
    opt.build(variables)

    @tf.function
    def run(count):
        for _ in tf.range(count):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(net(xs, training=True) - ys))
            opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    run(tf.constant(steps))


def test_mse(net, xt, yt):
    return float(np.mean((np.asarray(net(xt, training=False)) - yt) ** 2))


def bench_problem(name, seeds, epochs, adam_steps, grid):
    import keras

    rows = {m: [] for m in ("trainbr", "trainlm + early stop", "trainlm")}
    gammas, epochs_used, times = [], {m: [] for m in rows}, {m: [] for m in rows}
    adam = {g: [] for g in grid}
    p = None
    for seed in seeds:
        x, y, xt, yt, hidden = problem(name, seed)
        for method, kw in (("trainbr", dict(bayesian=True, validation=False)),
                           ("trainlm + early stop", dict(bayesian=False, validation=True)),
                           ("trainlm", dict(bayesian=False, validation=False))):
            net = network(x.shape[1], (hidden,), seed)
            p = net.count_params()
            gamma, used, per_epoch = train_lm(net, x, y, epochs, **kw)
            rows[method].append(test_mse(net, xt, yt))
            epochs_used[method].append(used)
            times[method].append(per_epoch)
            if method == "trainbr":
                gammas.append(gamma)
            keras.backend.clear_session()
        for g in grid:
            net = network(x.shape[1], (hidden,), seed)
            train_adamw(net, x, y, adam_steps, *g)
            adam[g].append(test_mse(net, xt, yt))
            keras.backend.clear_session()
    best = min(grid, key=lambda g: statistics.median(adam[g]))
    out = []
    for method, mses in rows.items():
        out.append((method, statistics.median(mses), statistics.median(gammas)
                    if method == "trainbr" else None, statistics.median(epochs_used[method]),
                    statistics.median(times[method])))
    out.append((f"AdamW lr={best[0]:g} wd={best[1]:g}", statistics.median(adam[best]), None,
                adam_steps, None))
    return p, out, rows, gammas


COST_CASES = (("1-D", (20,), 60), ("3-D", (10,), 100), ("1-D", (20, 20), 2000))


def _floatx(dtype: str):
    import keras

    keras.config.set_floatx(dtype)
    keras.config.set_dtype_policy(dtype)


def bench_cost(epochs, repeats, dtypes=("float32",)):
    """Epoch time of BR against trainlm, same network, data and start: the median epoch of a
    run (the first left out), the best of ``repeats`` runs alternating the two methods (the
    machine is shared; the best run is the least disturbed one), and the dtypes alternating
    within each repeat. One row per ``COST_CASES`` and dtype."""
    import keras

    rows = []
    for name, hidden, n in COST_CASES:
        rng = np.random.default_rng(0)
        d = 1 if name == "1-D" else 3
        x64 = rng.uniform(-1, 1, (n, d))
        y64 = np.sin(3 * x64[:, :1]) + SIGMA * rng.normal(size=(n, 1))
        out = {(dt, m): [] for dt in dtypes for m in ("trainbr", "trainlm")}
        tries = {key: [] for key in out}
        for _ in range(repeats):
            for dt, method in out:
                _floatx(dt)
                net = network(d, hidden, 0)
                _, _, per_epoch = train_lm(net, x64.astype(dt), y64.astype(dt), epochs,
                                           bayesian=method == "trainbr", validation=False)
                out[dt, method].append(per_epoch)
                tries[dt, method].append(train_lm.attempts)
                p = net.count_params()
                keras.backend.clear_session()
        size = "-".join(str(v) for v in (d, *hidden, 1))
        for dt in dtypes:
            rows.append((size, p, n, dt, min(out[dt, "trainbr"]), min(out[dt, "trainlm"]),
                         statistics.mean(tries[dt, "trainbr"]),
                         statistics.mean(tries[dt, "trainlm"])))
    _floatx("float32")
    return rows


def print_cost(epochs, repeats, dtypes):
    import os

    clock = "CPU" if CLOCK is time.process_time else "wall"
    print(f"epoch cost ({clock} time, median epoch of a run of {epochs}, best of {repeats} "
          "alternating runs; "
          f"load average {os.getloadavg()[0]:.1f} at the start)")
    print("  (attempts: mean attempts per epoch, first epoch left out; the two methods follow")
    print("   different paths, so an epoch of one may hold more attempts than one of the other)")
    print(f"{'network':<10}{'P':>5}{'rows':>6}{'dtype':>9}{'trainbr ms':>12}{'trainlm ms':>12}"
          f"{'ratio':>7}{'attempts br/lm':>16}")
    for size, p, n, dt, br, lm, a_br, a_lm in bench_cost(epochs, repeats, dtypes):
        print(f"{size:<10}{p:>5}{n:>6}{dt:>9}{1e3 * br:>12.2f}{1e3 * lm:>12.2f}{br / lm:>7.2f}"
              f"{a_br:>9.2f}/{a_lm:.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 seeds, 300 epochs, 2 grid points")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--cost", action="store_true",
                        help="only the epoch-cost table (BR against trainlm, alternating)")
    parser.add_argument("--dtypes", default="float32",
                        help="dtypes of the cost table, comma-separated (float32,float64)")
    parser.add_argument("--repeats", type=int, default=None, help="cost table: runs per method")
    parser.add_argument("--init", choices=("glorot", "nguyen-widrow"), default="nguyen-widrow",
                        help="initial weights of every method: MATLAB's initnw on the hidden "
                             "layer (default), or Keras' default")
    parser.add_argument("--cpu", action="store_true",
                        help="time epochs by process CPU time instead of wall time")
    args = parser.parse_args()
    global CLOCK, INIT
    INIT = args.init
    import marquardt  # noqa: F401 - before TensorFlow: its C++ log (Cholesky lines) stays quiet
    if args.cpu:
        CLOCK = time.process_time
    dtypes = tuple(args.dtypes.split(","))
    repeats = args.repeats or (3 if args.quick else 5)
    if args.cost:
        print_cost(args.epochs or (30 if args.quick else 60), repeats, dtypes)
        return
    seeds = range(args.seeds or (3 if args.quick else 10))
    epochs = args.epochs or (300 if args.quick else 1000)
    adam_steps = 1000 if args.quick else 3000
    grid = ([(1e-2, 1e-3), (1e-2, 1e-2)] if args.quick else
            [(lr, wd) for lr in (1e-2, 3e-3) for wd in (1e-4, 1e-3, 1e-2)])
    print(f"noise variance σ² = {SIGMA ** 2:g}; {len(seeds)} seeds; up to {epochs} LM epochs, "
          f"{adam_steps} AdamW steps; initial weights: {INIT}; medians over seeds\n")
    head = (f"{'problem':<8}{'method':<28}{'test MSE':>10}{'/σ²':>7}{'γ':>7}{'P':>5}"
            f"{'epochs':>8}{'ms/epoch':>10}")
    print(head)
    for name in ("1-D", "3-D"):
        p, out, _, _ = bench_problem(name, seeds, epochs, adam_steps, grid)
        for method, mse, gamma, used, per_epoch in out:
            g = f"{gamma:.1f}" if gamma is not None else "–"
            t = f"{1e3 * per_epoch:.2f}" if per_epoch is not None else "–"
            print(f"{name:<8}{method:<28}{mse:>10.5f}{mse / SIGMA ** 2:>7.2f}{g:>7}{p:>5}"
                  f"{used:>8.0f}{t:>10}")
    print()
    print_cost(30 if args.quick else 60, repeats, dtypes)


if __name__ == "__main__":
    main()
