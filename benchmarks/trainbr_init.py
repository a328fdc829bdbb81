"""Why Bayesian regularisation only ties trainlm with early stopping on the 1-D problem of
``benchmarks/trainbr.py``: BR's test MSE after 300, 1,000 and 3,000 epochs (has it converged?)
and from two initialisations, Keras' Glorot-uniform and Nguyen-Widrow on the hidden layer
(MATLAB's ``initnw``, the initialisation of Foresee & Hagan 1997 and of ``fitnet``), against
trainlm with early stopping (85/15 split, patience 6) from the same two starts.

Same data, seeds and networks as ``benchmarks/trainbr.py`` (1-20-1 tanh, 60 rows of
sin(3x) + N(0, 0.1²), inputs in [−1, 1]); test MSE on 4,000 fresh noisy rows (σ² = 0.01 is the
floor). Prints one line per seed, then medians and the number of seeds where BR is lower.

    python benchmarks/trainbr_init.py [SEEDS]     # default 10 seeds (~10-25 min, shared machine)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

CHECK = (300, 1000, 3000)


def main(n_seeds: int = 10):
    import keras
    from trainbr import network, problem, test_mse

    import marquardt.keras as mk

    def start(net, seed, init):
        if init == "nguyen-widrow":
            mk.initnw(net, seed=1000 + seed)
        return net

    class At(keras.callbacks.Callback):
        """Test MSE and γ after the epochs of ``CHECK``."""

        def __init__(self, net, xt, yt):
            super().__init__()
            self.net, self.xt, self.yt, self.out = net, xt, yt, {}

        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 in CHECK:
                self.out[epoch + 1] = (test_mse(self.net, self.xt, self.yt), logs["gamma"])

    inits = ("glorot", "nguyen-widrow")
    res: dict = {}
    for seed in range(n_seeds):
        x, y, xt, yt, hidden = problem("1-D", seed)
        for init in inits:
            net = start(network(1, (hidden,), seed), seed, init)
            clock = At(net, xt, yt)
            h = mk.fit(net, x, y, loss="mse", epochs=max(CHECK), options=mk.TRAINBR,
                       callbacks=[clock], verbose=0).history
            for e in CHECK:  # a run that stopped earlier keeps its last state
                mse, gamma = clock.out.get(e, (test_mse(net, xt, yt), h["gamma"][-1]))
                res.setdefault(("trainbr", init, e), []).append(mse)
                res.setdefault(("gamma", init, e), []).append(gamma)
            keras.backend.clear_session()
            net = start(network(1, (hidden,), seed), seed, init)
            k = int(round(0.85 * len(x)))
            mk.fit(net, x[:k], y[:k], loss="mse", epochs=1000, options=mk.TRAINLM,
                   validation_data=(x[k:], y[k:]), verbose=0,
                   callbacks=[keras.callbacks.EarlyStopping(patience=6,
                                                            restore_best_weights=True)])
            res.setdefault(("early stop", init, 0), []).append(test_mse(net, xt, yt))
            keras.backend.clear_session()
        print(seed, " ".join(f"{init}: BR {res['trainbr', init, 1000][-1]:.5f} "
                             f"ES {res['early stop', init, 0][-1]:.5f}" for init in inits),
              flush=True)
    print("medians over seeds (test MSE; γ of P = 61)")
    for init in inits:
        es = res["early stop", init, 0]
        print(f"  {init}: early stop {statistics.median(es):.5f}")
        for e in CHECK:
            br = res["trainbr", init, e]
            wins = sum(b < s for b, s in zip(br, es))
            print(f"  {init}: BR after {e} epochs {statistics.median(br):.5f} "
                  f"(γ {statistics.median(res['gamma', init, e]):.2f}), lower than early stop "
                  f"on {wins} of {len(es)} seeds")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("seeds", nargs="?", type=int, default=10, help="seeds (default 10)")
    main(parser.parse_args().seeds)
