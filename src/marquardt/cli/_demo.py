"""``marquardt demo``: Levenberg-Marquardt against Adam on a built-in regression problem.

The same 1-10-1 tanh network, from the same initial weights, is trained on 200 noise-free samples
of a smooth curve, first with Levenberg-Marquardt (MATLAB ``trainlm``'s constants, full batch),
then with Keras' own ``keras.optimizers.Adam`` (learning rate 0.05, batches of 32), which by default
gets as many epochs as Levenberg-Marquardt took: equal epochs, so the ratio of the errors does not
depend on the machine or its load (given Levenberg-Marquardt's time instead, Adam's epochs, and the
ratio, swung 50-fold between runs). ``--same-time`` gives Adam Levenberg-Marquardt's time instead.
Compilation is outside both clocks: each method's clock starts at the end of its first epoch, which
traces and compiles its training step. The table gives the epochs, the time
and the mean squared error on the training samples and on 400 fresh test points; the plot shows
both training curves against epochs and against time, and the fitted functions. Nothing is read
from disk or the network.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from marquardt.cli import _options
from marquardt.cli._errors import check_output_path
from marquardt.cli._network import Scaling, build_network
from marquardt.cli._progress import recorder_callback

__all__ = ["add_parser", "run", "demo_problem"]

DESCRIPTION = """\
Train a small network (1-10-1, tanh) on a built-in curve with
Levenberg-Marquardt and, from the same initial weights, with Keras' Adam for
as many epochs (or the same time, with --same-time); print a table of epochs,
time and error, and write a plot of both training curves. Needs no data file
and no network access."""

ADAM_LEARNING_RATE = 0.05
"""Tuned for Adam on this problem, to make the comparison fair: after 80 epochs (batches of 32, seed 0)
the test MSE was 0.12, 0.071, 0.060, 0.0025, 0.0040, 0.0096 and 0.0035 for learning rates 0.003,
0.01, 0.03, 0.05, 0.1, 0.2 and 0.3. Keras' default, 0.001, gave 0.15 in the time LM takes."""
ADAM_BATCH_SIZE = 32
"""Keras' default batch size."""


def add_parser(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "demo", parents=parents, help="Levenberg-Marquardt against Adam on a built-in problem (start here)",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  marquardt demo --plot demo.png",
    )
    parser.add_argument("--epochs", type=_options.positive_int, default=100, metavar="N",
                        help="most Levenberg-Marquardt epochs (default: 100)")
    parser.add_argument("--adam-epochs", type=_options.positive_int, metavar="N",
                        help="train Adam for N epochs (default: as many as Levenberg-Marquardt took)")
    parser.add_argument("--same-time", action="store_true",
                        help="train Adam for the time Levenberg-Marquardt took (compilation excluded) "
                             "instead of its number of epochs")
    parser.add_argument("--seed", type=_options.seed, default=0, help="seed of the initial weights (default: 0)")
    parser.add_argument("--plot", type=Path, default=Path("demo.png"), metavar="FILE.png",
                        help="where to write the plot (default: demo.png)")
    parser.add_argument("--no-plot", action="store_true", help="do not write the plot")
    parser.set_defaults(run=run)


def demo_problem(samples: int, *, test: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The built-in curve y = sin(2πx)·exp(−x²) + 0.3x on [−2, 2]: training samples on a grid, or
    test points halfway between them. Shapes ``(samples, 1)``."""
    x = np.linspace(-2.0, 2.0, samples)
    if test:
        x = x[:-1] + (x[1] - x[0]) / 2.0
    y = np.sin(2.0 * math.pi * x) * np.exp(-(x**2)) + 0.3 * x
    return x[:, None], y[:, None]


def comparison(ratio: float) -> str:
    """The demo's verdict for ``ratio`` = Adam's test MSE / LM's, in words that stay true when
    LM is behind (after one epoch, say): "0.906 times lower" read as a win."""
    if ratio >= 1:
        return f"Levenberg-Marquardt's test error is {ratio:.3g} times lower than Adam's"
    return f"Levenberg-Marquardt's test error is {1 / ratio:.3g} times higher than Adam's"


def run(args: argparse.Namespace) -> int:
    from marquardt.cli._train import import_trainer

    if not args.no_plot:
        check_output_path(args.plot, "--plot", directory=False)

    trainer = import_trainer()
    import keras

    if not args.no_plot:
        from marquardt.cli._plots import pyplot

        pyplot()  # report a missing matplotlib before training
    x, y = demo_problem(200)
    x_test, y_test = demo_problem(401, test=True)
    x32, y32, xt32 = x.astype(np.float32), y.astype(np.float32), x_test.astype(np.float32)

    def network() -> Any:
        return build_network(inputs=Scaling.from_data(x), outputs=Scaling.from_data(y), hidden=(10,),
                             activation="tanh", init="nguyen-widrow", seed=args.seed)

    def errors(model: Any) -> tuple[float, float]:
        train = float(np.mean((np.asarray(model(x32)) - y) ** 2))
        test = float(np.mean((np.asarray(model(xt32)) - y_test) ** 2))
        return train, test

    print(f"Training a 1-10-1 tanh network on {x.shape[0]} samples of y = sin(2*pi*x)*exp(-x^2) + 0.3*x ...",
          file=sys.stderr, flush=True)
    lm_model = network()
    lm_record = recorder_callback()
    lm_history = trainer.fit(lm_model, x32, y32, loss="mse", epochs=args.epochs, callbacks=[lm_record],
                             verbose=0, options=trainer.TRAINLM)
    lm_compile = lm_record.record["seconds"][0]  # the first epoch: tracing and compiling the LM step
    lm_seconds = lm_record.record["seconds"][-1] - lm_compile

    adam_model = network()
    adam_model.compile(optimizer=keras.optimizers.Adam(learning_rate=ADAM_LEARNING_RATE), loss="mse")
    adam_record = recorder_callback()
    callbacks = [adam_record]
    same_time = args.same_time and args.adam_epochs is None
    if same_time:
        callbacks.append(_time_limit(lm_seconds))
        adam_epochs = 1_000_000
    else:
        adam_epochs = args.adam_epochs or len(lm_history.epoch)
    adam_model.fit(x32, y32, batch_size=ADAM_BATCH_SIZE, epochs=adam_epochs, verbose=0,
                   callbacks=callbacks, shuffle=True)
    adam_compile = adam_record.record["seconds"][0]
    adam_seconds = adam_record.record["seconds"][-1] - adam_compile

    rows = [
        ("Levenberg-Marquardt (trainlm)", len(lm_history.epoch), lm_seconds, *errors(lm_model)),
        (f"Adam (lr {ADAM_LEARNING_RATE:g}, batch {ADAM_BATCH_SIZE})", len(adam_record.record.get("loss", [])),
         adam_seconds, *errors(adam_model)),
    ]
    print(f"Times leave out each method's first epoch, which compiles its training step "
          f"(LM {lm_compile:.1f} s, Adam {adam_compile:.1f} s).")
    print(f"{'method':<32}{'epochs':>8}{'time (s)':>10}{'train MSE':>12}{'test MSE':>12}")
    for name, epochs, seconds, train, test in rows:
        print(f"{name:<32}{epochs:>8}{seconds:>10.1f}{train:>12.2e}{test:>12.2e}")
    ratio = rows[1][4] / rows[0][4] if rows[0][4] > 0 else math.inf
    if same_time:
        budget = "in the same time, compilation excluded"
    elif args.adam_epochs is None:
        budget = f"after as many epochs ({adam_epochs})"
    else:
        budget = f"after {adam_epochs} Adam epochs"
    print(f"\n{comparison(ratio)} {budget}.")
    print(f"Levenberg-Marquardt stopped: {getattr(lm_history, 'stop_reason', '')}")
    if not args.no_plot:
        from marquardt.cli._plots import demo_plot

        grid = np.linspace(-2.0, 2.0, 400, dtype=np.float32)[:, None]
        args.plot.parent.mkdir(parents=True, exist_ok=True)  # as train's --out and --report
        demo_plot(
            args.plot,
            curves={rows[0][0]: (np.asarray(lm_record.record["seconds"]) - lm_compile, lm_record.record["loss"]),
                    rows[1][0]: (np.asarray(adam_record.record["seconds"]) - adam_compile,
                                 adam_record.record["loss"])},
            fits={rows[0][0]: (grid[:, 0], np.asarray(lm_model(grid))[:, 0]),
                  rows[1][0]: (grid[:, 0], np.asarray(adam_model(grid))[:, 0])},
            data=(x[:, 0], y[:, 0]),
        )
        print(f"Wrote the training curves to {args.plot}")
    return 0


def _time_limit(seconds: float) -> Any:
    """A Keras callback that stops training once ``seconds`` have passed since the end of the first
    epoch (which compiles the training step, and is left out of the clock)."""
    import keras

    class TimeLimit(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                self._start = time.perf_counter()
            if time.perf_counter() - self._start >= seconds:
                self.model.stop_training = True

    return TimeLimit()
