"""Bayesian regularisation from two starting values of α and β, side by side in one run:
Foresee & Hagan's α = 0, β = 1 (what ``TRAINBR`` does: the first step minimises E_D alone)
and MATLAB ``trainbr.m``'s γ = P, β = (N − P)/(2E_D) (1 where that is ≤ 0), α = P/(2E_W)
(a regularised first step), set on the wrapper's ``lm_alpha`` and ``lm_beta`` before ``fit``.

Data: 80 rows of sin(2πx)·exp(−x²) + N(0, 0.1²), x uniform in [−1, 1]; network 1-15-1 tanh
(P = 46) from MATLAB's Nguyen-Widrow start (``mk.initnw``), the same weights for both starts;
test MSE against the noise-free function on 400 points. Prints one line per seed, then the
medians.

    python benchmarks/trainbr_start.py [SEEDS] [EPOCHS]    # default 6 seeds, 100 epochs
"""

from __future__ import annotations

import argparse
import statistics


def main(n_seeds: int = 6, epochs: int = 100) -> None:
    import numpy as np

    import marquardt  # noqa: F401  (quiet TensorFlow import)
    import keras
    import marquardt.keras as mk

    results = {"foresee-hagan": [], "matlab": []}
    for seed in range(n_seeds):
        rng = np.random.default_rng(seed)
        x = rng.uniform(-1, 1, (80, 1))
        y = np.sin(2 * np.pi * x) * np.exp(-x**2) + 0.1 * rng.normal(size=x.shape)
        xt = np.linspace(-1, 1, 400)[:, None]
        yt = np.sin(2 * np.pi * xt) * np.exp(-xt**2)
        for start in results:
            keras.utils.set_random_seed(seed)
            net = keras.Sequential([keras.Input((1,)), keras.layers.Dense(15, "tanh"),
                                    keras.layers.Dense(1)])
            mk.initnw(net, seed=seed)
            lm = mk.LMModel(net, options=mk.TRAINBR)
            lm.compile(loss="mse")
            if start == "matlab":
                p, n = net.count_params(), len(x)
                e_d = float(np.sum((net.predict(x, verbose=0) - y) ** 2))
                e_w = float(sum(np.sum(w**2) for w in net.get_weights()))
                beta = (n - p) / (2 * e_d) if e_d > 0 else 1.0
                lm.lm_alpha.assign(p / (2 * e_w))
                lm.lm_beta.assign(beta if beta > 0 else 1.0)
            lm.fit(x, y, epochs=epochs, verbose=0)
            results[start].append(float(np.mean((net.predict(xt, verbose=0) - yt) ** 2)))
        print(f"seed {seed}: " + "  ".join(f"{k} {v[-1]:.3g}" for k, v in results.items()),
              flush=True)
    print(f"medians after {epochs} epochs: " + "  ".join(
        f"{k} {statistics.median(v):.3g}" for k, v in results.items()))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("seeds", nargs="?", type=int, default=6, help="seeds (default 6)")
    parser.add_argument("epochs", nargs="?", type=int, default=100,
                        help="epochs (default 100)")
    args = parser.parse_args()
    main(args.seeds, args.epochs)
