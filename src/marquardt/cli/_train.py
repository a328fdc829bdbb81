"""``marquardt train``: fit a feed-forward network to columns of a data file, as MATLAB's ``nftool`` does.

The network (``_network.build_network``) carries the input and output scaling inside it, so the
saved ``.keras`` file takes raw inputs and returns outputs in the targets' units. The rows are
divided at random into training, validation and test sets; the network is trained on the first
with Levenberg-Marquardt (``marquardt.keras.fit``, by default with MATLAB ``trainlm``'s constants),
stops early after ``--max-fail`` epochs without a better validation error and keeps the weights of
the best validation epoch; the report gives the MSE and the regression R of every set.

``--method trainbr`` trains with Bayesian regularisation instead (MATLAB's ``trainbr``,
``marquardt.keras.TRAINBR``): no validation stop (MATLAB's ``max_fail`` 0; ``--max-fail`` is
refused), so by default no validation rows (``--split 0.85,0,0.15``; with validation rows given
their MSE is reported), the last weights are kept, and the report adds the effective number of
parameters γ and the hyperparameters α and β, per epoch in the training record. The network's
input and output scaling to [-1, 1] is the normalisation the method assumes.
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
from marquardt.cli._data import read_table
from marquardt.cli._errors import (EXIT_DATA, EXIT_INTERRUPTED, CliError, Interruption, UsageError,
                                   check_output_path)
from marquardt.cli._network import ACTIVATIONS, BOUNDED, Scaling, build_network
from marquardt.cli._progress import progress_callback, recorder_callback
from marquardt.cli._report import TrainSummary, to_json, train_report_text

__all__ = ["add_parser", "run", "divide", "regression_r", "import_trainer"]

SPLITS = ("train", "validation", "test")

DESCRIPTION = """\
Train a feed-forward network (tanh hidden layers, linear output) to predict
the target column(s) of a data file from the input columns with
Levenberg-Marquardt, as MATLAB's trainlm/nftool does: input and output scaling
inside the model, Nguyen-Widrow initialisation, a random division into
training, validation and test rows, early stopping on validation failures, and
a report of the MSE and regression R of each set, with plots of the training
record, the regression and the errors."""

EPILOG = """\
examples:
  marquardt train engine.csv --target torque
  marquardt train engine.csv --target torque,nox --inputs fuel,speed --hidden 20,20 --out engine.keras --report out/
  marquardt train data.csv --target y --goal 1e-4 --epochs 200 --seed 3
  marquardt train data.csv --target y --method trainbr"""


def add_parser(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "train", parents=parents, help="train a network on a data file (like MATLAB's nftool and trainlm)",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("data", metavar="DATA.csv",
                        help="data file with a header row (comma, semicolon, tab or space separated)")
    parser.add_argument("--target", required=True, type=_options.column_list, metavar="COL[,COL...]",
                        help="the column(s) to predict")
    parser.add_argument("--inputs", type=_options.column_list, metavar="COLS",
                        help="the input columns, separated by commas (default: every other column)")
    parser.add_argument("--hidden", type=_options.layer_sizes, default=(10,), metavar="N[,N...]",
                        help="hidden layer sizes (default: 10, as MATLAB's fitnet)")
    parser.add_argument("--activation", choices=ACTIVATIONS, default="tanh", help="hidden activation (default: tanh)")
    parser.add_argument("--init", choices=("nguyen-widrow", "glorot"), default="nguyen-widrow",
                        help=f"initialisation of hidden layers with a bounded activation ({', '.join(BOUNDED)}); "
                             "default: nguyen-widrow, as MATLAB's initnw")
    parser.add_argument("--split", type=_options.fractions, default=None, metavar="TRAIN,VAL,TEST",
                        help="fractions of rows for training, validation and test (default: 0.7,0.15,0.15; "
                             "with --method trainbr 0.85,0,0.15, as it has no validation stop)")
    parser.add_argument("--epochs", type=_options.positive_int, default=1000, metavar="N",
                        help="most epochs (Levenberg-Marquardt iterations; default: 1000, as trainlm)")
    parser.add_argument("--goal", type=_options.non_negative_float, default=0.0, metavar="MSE",
                        help="stop when the training MSE reaches this value, in the targets' units (default: 0; "
                             "with --method trainbr the MSE plus its weight penalty, which MATLAB's trainbr leaves "
                             "out)")
    parser.add_argument("--max-fail", type=_options.positive_int, default=None, metavar="N",
                        help="stop after N epochs without a better validation MSE (default: 6, as trainlm; "
                             "not with --method trainbr)")
    parser.add_argument("--method", choices=("trainlm", "trainbr"), default="trainlm",
                        help="trainlm: Levenberg-Marquardt with validation early stopping (default); trainbr: "
                             "Bayesian regularisation (MacKay; Foresee & Hagan), no validation stop")
    parser.add_argument("--preset", choices=("trainlm", "default"), default="trainlm",
                        help="Levenberg-Marquardt options: MATLAB's constants (trainlm's, or trainbr's with "
                             "--method trainbr), or marquardt.keras' defaults")
    parser.add_argument("--seed", type=_options.seed, default=0,
                        help="seed of the division and the initial weights (default: 0)")
    parser.add_argument("--out", type=Path, metavar="MODEL.keras", help="save the trained model to this .keras file")
    parser.add_argument("--report", type=Path, metavar="DIR",
                        help="write train_report.txt, train.json and the plots training_record.png, regression.png "
                             "and error_histogram.png to DIR")
    parser.add_argument("--dropna", action="store_true", help="drop rows with a missing value in a used column")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def import_trainer() -> Any:
    """``marquardt.keras``, or an ``ImportError`` naming the command's need when this installation
    has no Keras trainer (``marquardt.cli.main`` prints it with its install commands one per
    line)."""
    try:
        import marquardt.keras as trainer
    except ImportError as exc:
        raise ImportError(f"this command needs marquardt.keras, the Keras trainer, which cannot be "
                          f"imported: {exc}") from None
    return trainer


def divide(rows: int, fractions: tuple[float, float, float], seed: int,
           path: str = "the data") -> dict[str, np.ndarray]:
    """Random division of ``rows`` into training, validation and test indices (MATLAB's ``dividerand``).

    Raises:
        CliError: When a set with a non-zero fraction would get no row, or training fewer than 2.
    """
    sizes = [0, math.floor(fractions[1] * rows + 0.5), math.floor(fractions[2] * rows + 0.5)]  # halves round up
    sizes[0] = rows - sizes[1] - sizes[2]
    if sizes[0] < 2 or any(f > 0 and n == 0 for f, n in zip(fractions, sizes)):
        given = ",".join(f"{f:g}" for f in fractions)
        raise CliError(
            f"{path}: {rows} rows are too few for --split {given} ({sizes[0]} training, {sizes[1]} validation, "
            f"{sizes[2]} test); each non-zero fraction needs a row, and training at least 2"
        )
    order = np.random.default_rng(seed).permutation(rows)
    bounds = np.cumsum([0, *sizes])
    return {name: np.sort(order[bounds[i]:bounds[i + 1]]) for i, name in enumerate(SPLITS)}


def regression_r(targets: np.ndarray, outputs: np.ndarray) -> float:
    """Correlation coefficient of outputs and targets over all elements (MATLAB's regression R)."""
    t, o = np.ravel(targets), np.ravel(outputs)
    if t.size < 2 or np.ptp(t) == 0 or np.ptp(o) == 0:
        return float("nan")
    return float(np.corrcoef(t, o)[0, 1])


#: ``--split`` by method: trainlm's is MATLAB's dividerand 70/15/15; trainbr has no validation
#: stop (MATLAB's max_fail 0), so its default gives those rows to training and keeps the test set.
DEFAULT_SPLIT = {"trainlm": (0.7, 0.15, 0.15), "trainbr": (0.85, 0.0, 0.15)}
DEFAULT_MAX_FAIL = 6


def run(args: argparse.Namespace) -> int:
    if args.out is not None and args.out.suffix != ".keras":
        raise UsageError(f"--out: the model file must end in .keras; found {str(args.out)!r}")
    check_output_path(args.out, "--out", directory=False)
    check_output_path(args.report, "--report", directory=True)
    if args.method == "trainbr" and args.max_fail is not None:
        raise UsageError(f"--max-fail: --method trainbr has no validation stop (MATLAB's max_fail 0); "
                         f"found --max-fail {args.max_fail}")
    if args.split is None:
        args.split = DEFAULT_SPLIT[args.method]
    if args.max_fail is None:
        args.max_fail = DEFAULT_MAX_FAIL
    table = read_table(args.data)
    for name in args.target:
        table.check_column(name, "--target")
    if args.inputs is None:
        inputs = tuple(name for name in table.columns if name not in args.target)
        if not inputs:
            raise CliError(f"{table.path}: no column is left for the inputs besides the target(s)")
    else:
        inputs = args.inputs
        for name in inputs:
            table.check_column(name, "--inputs")
        both = sorted(set(inputs) & set(args.target))
        if both:
            raise UsageError(f"--inputs: the column {both[0]!r} is also a target")
    try:
        data = table.numeric([*inputs, *args.target], dropna=args.dropna)
    except CliError as exc:
        if args.inputs is None and "is not a number" in str(exc):
            raise CliError(f"{exc} (every column but the target is an input unless --inputs names them)") from None
        raise
    if data.dropped:
        print(f"marquardt: note: dropped {len(data.dropped)} rows with missing values", file=sys.stderr)
    x = np.column_stack([data[name] for name in inputs])
    y = np.column_stack([data[name] for name in args.target])
    parts = divide(data.size, args.split, args.seed, table.path)

    trainer = import_trainer()
    if args.report is not None:
        from marquardt.cli._plots import pyplot

        pyplot()  # a missing matplotlib is reported before training, not after
        _options.make_report_directory(args.report)
    import keras

    train = parts["train"]
    network = build_network(inputs=Scaling.from_data(x[train]), outputs=Scaling.from_data(y[train]),
                            hidden=args.hidden, activation=args.activation, init=args.init, seed=args.seed)
    x32, y32 = x.astype(np.float32), y.astype(np.float32)

    def mse_of(index: np.ndarray):
        return lambda: float(np.mean((np.asarray(network(x32[index], training=False)) - y[index]) ** 2))

    has_val, has_test = parts["validation"].size > 0, parts["test"].size > 0
    bayesian = args.method == "trainbr"
    early_stop = has_val and not bayesian  # trainbr: max_fail 0, validation only reported
    recorder = recorder_callback(extra={"test_loss": mse_of(parts["test"])} if has_test else None,
                                 keep_best=network if early_stop else None)
    callbacks: list[Any] = [recorder]
    if early_stop:
        callbacks.insert(0, keras.callbacks.EarlyStopping(monitor="val_loss", patience=args.max_fail))
    if not args.quiet and sys.stderr.isatty():  # no bar in logs and pipes
        callbacks.append(progress_callback(args.epochs, "epoch"))
    if bayesian:
        options = trainer.TRAINBR if args.preset == "trainlm" else trainer.LMOptions(regularization="bayesian")
    else:
        options = trainer.TRAINLM if args.preset == "trainlm" else trainer.LMOptions()
    validation = (x32[parts["validation"]], y32[parts["validation"]]) if has_val else None
    print(f"marquardt: training on {train.size} rows (Ctrl-C stops it and keeps the best weights)",
          file=sys.stderr, flush=True)
    tic = time.perf_counter()
    so_far = keras.callbacks.History()  # what was logged, should Ctrl-C end fit by an exception
    with Interruption() as interruption:  # Ctrl-C stops training: the report is still written
        try:
            history = trainer.fit(network, x32[train], y32[train], loss="mse", epochs=args.epochs,
                                  validation_data=validation,
                                  callbacks=[*callbacks, so_far, interruption.callback()],
                                  verbose=0, options=options, goal=args.goal)
        except KeyboardInterrupt:  # marquardt.keras.fit re-raises it, as Keras does
            if not interruption.occurred:
                raise
            history = so_far
            history.stop_reason = "Interrupted (Ctrl-C)."
    seconds = time.perf_counter() - tic
    stop_reason = str(getattr(history, "stop_reason", "") or "training ended")
    if interruption.occurred and not stop_reason.startswith("Interrupted"):
        stop_reason = "Interrupted (Ctrl-C); training stopped at the end of the epoch."
    if recorder.restore_best():
        stop_reason += f" Kept the weights of epoch {recorder.best_epoch}, the best validation MSE."

    outputs = np.asarray(network.predict(x32, verbose=0), dtype=np.float64)
    sets = {**parts, "all": np.arange(data.size)}
    mse = {name: float(np.mean((outputs[i] - y[i]) ** 2)) if i.size else float("nan") for name, i in sets.items()}
    r = {name: regression_r(y[i], outputs[i]) for name, i in sets.items()}
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        network.save(args.out)
    summary = TrainSummary(
        data=table.path, inputs=tuple(inputs), targets=tuple(args.target), layers=tuple(args.hidden),
        activation=args.activation, weights=int(sum(np.prod(w.shape) for w in network.trainable_weights)),
        rows={name: int(i.size) for name, i in sets.items()}, epochs=len(history.epoch),
        best_epoch=recorder.best_epoch, seconds=seconds, stop_reason=stop_reason, mse=mse, r=r,
        model_path=None if args.out is None else str(args.out), seed=args.seed, method=args.method,
        bayes=_bayes_summary(history.history) if bayesian else None,
        attempts=_total(history.history, "attempts"),
        cholesky_failures=_total(history.history, "cholesky_failures"),
    )
    text = train_report_text(summary)
    print(text)
    if args.report is not None:
        _write_report(args.report, summary, text, recorder, y, outputs, sets, args.goal)
    if interruption.occurred:
        print("marquardt: interrupted; the report and model above hold the weights kept at the interruption",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    if not np.isfinite(mse["train"]):
        print("marquardt: error: training ended with a non-finite error", file=sys.stderr)
        return EXIT_DATA
    return 0


def _total(history: dict, key: str) -> int:
    """The sum of a per-epoch count over the epochs (full batch: one iteration an epoch)."""
    return int(sum(np.asarray(history.get(key, []), dtype=np.float64)))


def _bayes_summary(history: dict) -> dict[str, float] | None:
    """γ, α, β, E_D and E_W after the last epoch (Bayesian regularisation)."""
    if not history.get("gamma"):
        return None
    return {key: float(np.asarray(history[key][-1])) for key in ("gamma", "alpha", "beta", "e_d", "e_w")}


def _write_report(directory: Path, summary: TrainSummary, text: str, recorder: Any, y: np.ndarray,
                  outputs: np.ndarray, sets: dict[str, np.ndarray], goal: float) -> None:
    from marquardt.cli import _plots

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "train_report.txt").write_text(text + "\n")
    record = recorder.record
    (directory / "train.json").write_text(to_json({**summary.as_dict(), "record": record}) + "\n")
    performance = {"train": record.get("loss", [])}
    if "val_loss" in record:
        performance["validation"] = record["val_loss"]
    if "test_loss" in record:
        performance["test"] = record["test_loss"]
    names = (("gradient", "grad_norm"), ("λ (mu)", "lam"), ("γ (effective parameters)", "gamma"), ("α", "alpha"),
             ("β", "beta"))
    series = {name: record[key] for name, key in names if key in record}
    _plots.training_record_plot(directory / "training_record.png", performance=performance,
                                best_epoch=summary.best_epoch, goal=goal, series=series)
    pairs = {name: (y[i], outputs[i]) for name, i in sets.items() if i.size}
    _plots.regression_plot(directory / "regression.png", pairs, summary.r)
    _plots.error_histogram_plot(directory / "error_histogram.png",
                                {name: (y[i] - outputs[i]) for name, i in sets.items() if name != "all"})
    print(f"marquardt: wrote {directory}/train_report.txt, train.json, training_record.png, regression.png "
          "and error_histogram.png", file=sys.stderr)
