"""Float64 against float32 normal equations for a float32 Keras model, on an ill-conditioned fit.

A ``Dense(1)`` float32 model on the monomial features x, x², …, x^d (x uniform on [0, 1],
20,000 rows, targets an exact polynomial, so the optimum has zero residual): κ(J) ≈ 2.2e4 for
d = 6 and 7e5 for d = 8, so κ(JᵀJ) = κ(J)² is beyond float32's 1/ε ≈ 1.7e7. Both runs start
from the same weights and differ only in ``precision``; the table reports the epochs to reach
each MSE, the final MSE, and the parameter error max|w − w*| / max|w*| against the float64
least-squares solution (``numpy.linalg.lstsq``), and the median time per epoch.

    python benchmarks/precision.py                 # d = 6 and 8, 40 epochs each
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def run(degree: int, epochs: int, precision: str, rows: int = 20_000):
    import keras

    import marquardt.keras as mk

    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 1.0, rows)
    features = np.stack([x**k for k in range(1, degree + 1)], axis=1)
    coef = rng.standard_normal(degree)
    y = features @ coef + 1.0
    design = np.c_[features, np.ones(rows)]
    exact, *_ = np.linalg.lstsq(design, y, rcond=None)
    keras.utils.set_random_seed(0)
    net = keras.Sequential([keras.Input((degree,)), keras.layers.Dense(1)])
    times = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.t)

    history = mk.fit(net, features.astype(np.float32), y.astype(np.float32)[:, None],
                     loss="mse", epochs=epochs, verbose=0, precision=precision,
                     callbacks=[Clock()], batch_size="full")
    dense = net.layers[0]
    w = np.r_[dense.kernel.numpy().ravel(), dense.bias.numpy()].astype(np.float64)
    return {
        "cond": np.linalg.cond(design),
        "loss": history.history["loss"],
        "error": np.max(np.abs(w - exact)) / np.max(np.abs(exact)),
        "epoch_time": statistics.median(times[1:]),
    }


def _epochs_to(losses, level):
    hits = [i + 1 for i, v in enumerate(losses) if v <= level]
    return str(hits[0]) if hits else "—"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--degrees", type=int, nargs="+", default=[6, 8])
    parser.add_argument("--epochs", type=int, default=40)
    args = parser.parse_args(argv)
    levels = (1e-10, 1e-12, 1e-14)
    print("| degree | κ(J) | precision | " + " | ".join(f"epochs to MSE {v:g}" for v in levels)
          + " | final MSE | parameter error | time per epoch |")
    print("| --- " * (7 + len(levels) - 1) + "|")
    for degree in args.degrees:
        for precision in ("float64", "float32"):
            r = run(degree, args.epochs, precision)
            cells = " | ".join(_epochs_to(r["loss"], v) for v in levels)
            print(f"| {degree} | {r['cond']:.1e} | {precision} | {cells} | {min(r['loss']):.2e} | "
                  f"{r['error']:.1e} | {r['epoch_time'] * 1e3:.1f} ms |", flush=True)


if __name__ == "__main__":
    main()
