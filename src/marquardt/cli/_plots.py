"""The command line's plots, written as PNG files with matplotlib's Agg backend (no display needed).

matplotlib is an optional dependency (the ``cli`` extra); it is imported only when a plot is
asked for, and a missing install is reported in one line with the command that installs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from marquardt.cli._errors import CliError

__all__ = ["pyplot", "fit_plot", "training_record_plot", "regression_plot", "error_histogram_plot",
           "demo_plot"]

DPI = 110


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend, or a ``CliError`` saying how to install it."""
    try:
        import matplotlib
    except ImportError:
        from marquardt._install import install_command

        raise CliError(f"plots need matplotlib, which is not installed: {install_command('cli')}") from None
    matplotlib.use("Agg")  # files only; never opens a window
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    plt = pyplot()
    try:
        fig.savefig(path, dpi=DPI)
    finally:
        plt.close(fig)


def fit_plot(path: Path, *, x: np.ndarray, y: np.ndarray, sigma: np.ndarray | None, grid: np.ndarray | None,
             curve: np.ndarray | None, fitted: np.ndarray, x_label: str, y_label: str, title: str) -> None:
    """Data with the fitted curve above, residuals below (``marquardt fit``)."""
    plt = pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True, height_ratios=(3, 1.2),
                                      layout="constrained")
    if sigma is None:
        top.plot(x, y, "o", ms=3.5, color="tab:blue", label="data")
    else:
        top.errorbar(x, y, yerr=sigma, fmt="o", ms=3.5, color="tab:blue", elinewidth=0.8, label="data")
    if grid is not None and curve is not None:
        top.plot(grid, curve, "-", color="tab:red", lw=1.6, label="fit")
    else:
        top.plot(x, fitted, "x", color="tab:red", ms=5, label="fit")
    top.set_ylabel(y_label)
    top.set_title(title if len(title) <= 80 else title[:77] + "...", fontsize=10)
    top.legend()
    residuals = y - fitted
    bottom.axhline(0.0, color="0.4", lw=0.8)
    bottom.plot(x, residuals, "o", ms=3, color="tab:blue")
    bottom.set_xlabel(x_label)
    bottom.set_ylabel("residual")
    _save(fig, path)


def training_record_plot(path: Path, *, performance: Mapping[str, Sequence[float]], best_epoch: int | None,
                         goal: float, series: Mapping[str, Sequence[float]]) -> None:
    """MATLAB's training record: performance per split, then one panel per extra series (λ, gradient...).

    Args:
        path: The PNG file.
        performance: Split name to MSE per epoch (epochs counted from 1).
        best_epoch: The epoch whose weights were kept (marked), or None.
        goal: The performance goal (drawn when > 0).
        series: Panel title to values per epoch, each drawn on a log scale.
    """
    plt = pyplot()
    panels = 1 + len(series)
    fig, axes = plt.subplots(panels, 1, figsize=(7, 3 + 1.6 * len(series)), sharex=True,
                             height_ratios=(2.2,) + (1,) * len(series), layout="constrained")
    axes = np.atleast_1d(axes)
    colors = {"train": "tab:blue", "validation": "tab:green", "test": "tab:red"}
    for split, values in performance.items():
        epochs = np.arange(1, len(values) + 1)
        axes[0].semilogy(epochs, _positive(values), color=colors.get(split), label=split)
    if best_epoch is not None:
        axes[0].axvline(best_epoch, color="0.3", ls=":", lw=1, label=f"best (epoch {best_epoch})")
    if goal > 0:
        axes[0].axhline(goal, color="0.3", ls="--", lw=1, label="goal")
    axes[0].set_ylabel("mean squared error")
    axes[0].set_title("training record")
    axes[0].legend(fontsize=8)
    for ax, (name, values) in zip(axes[1:], series.items()):
        epochs = np.arange(1, len(values) + 1)
        ax.semilogy(epochs, _positive(values), ".-", ms=3, lw=1, color="tab:purple")
        ax.set_ylabel(name)
    axes[-1].set_xlabel("epoch")
    _save(fig, path)


def regression_plot(path: Path, splits: Mapping[str, tuple[np.ndarray, np.ndarray]],
                    r: Mapping[str, float]) -> None:
    """Outputs against targets for each split, with the least-squares line and R (MATLAB's plotregression)."""
    plt = pyplot()
    names = [name for name, (t, _) in splits.items() if t.size]
    cols = 2 if len(names) > 1 else 1
    rows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.8 * rows), squeeze=False, layout="constrained")
    colors = {"train": "tab:blue", "validation": "tab:green", "test": "tab:red", "all": "0.3"}
    for ax, name in zip(axes.flat, names):
        targets, outputs = (np.ravel(a) for a in splits[name])
        low, high = float(min(targets.min(), outputs.min())), float(max(targets.max(), outputs.max()))
        ax.plot([low, high], [low, high], ":", color="0.5", lw=1, label="Y = T")
        ax.plot(targets, outputs, "o", ms=3, mfc="none", color=colors.get(name, "0.3"), label="data")
        if targets.size > 1 and np.ptp(targets) > 0:
            slope, intercept = np.polyfit(targets, outputs, 1)
            ax.plot([low, high], [slope * low + intercept, slope * high + intercept], "-", color="k", lw=1,
                    label="fit")
        ax.set_title(f"{name}: R = {r[name]:.5f}", fontsize=10)
        ax.set_xlabel("target")
        ax.set_ylabel("output")
        ax.legend(fontsize=7, loc="upper left")
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    _save(fig, path)


def error_histogram_plot(path: Path, errors: Mapping[str, np.ndarray], bins: int = 20) -> None:
    """Histogram of errors (targets − outputs), stacked by split (MATLAB's ploterrhist)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    names = [name for name, e in errors.items() if e.size]
    data = [np.ravel(errors[name]) for name in names]
    colors = {"train": "tab:blue", "validation": "tab:green", "test": "tab:red"}
    ax.hist(data, bins=bins, stacked=True, label=names, color=[colors.get(n, "0.5") for n in names])
    ax.axvline(0.0, color="tab:orange", lw=1.2, label="zero error")
    ax.set_xlabel("error (target - output)")
    ax.set_ylabel("instances")
    ax.set_title(f"error histogram with {bins} bins")
    ax.legend(fontsize=8)
    _save(fig, path)


def demo_plot(path: Path, curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
              fits: Mapping[str, tuple[np.ndarray, np.ndarray]], data: tuple[np.ndarray, np.ndarray]) -> None:
    """The demo: training error against epochs and against time for each method, and the fitted curves.

    Args:
        path: The PNG file.
        curves: Method to (seconds since the start of training per epoch, MSE per epoch).
        fits: Method to (x grid, prediction on it).
        data: The training data (x, y).
    """
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 4), layout="constrained")
    colors = {}
    for i, (name, (seconds, mse)) in enumerate(curves.items()):
        colors[name] = f"C{i}"
        epochs = np.arange(1, len(mse) + 1)
        axes[0].loglog(epochs, _positive(mse), color=colors[name], label=name)
        axes[1].semilogy(seconds, _positive(mse), color=colors[name], label=name)
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("training MSE")
    axes[0].set_title("error per epoch")
    axes[1].set_xlabel("seconds")
    axes[1].set_title("error against time")
    axes[2].plot(*data, "o", ms=2.5, color="0.6", label="data")
    for name, (grid, prediction) in fits.items():  # short labels: the legend sits inside the curve's range
        axes[2].plot(grid, prediction, color=colors.get(name), lw=1.5, label=name.split(" (")[0])
    axes[2].set_title("fitted functions")
    for ax in axes[:2]:
        ax.legend(fontsize=8)
    axes[2].legend(fontsize=8, loc="lower left")
    _save(fig, path)


def _positive(values: Sequence[float]) -> np.ndarray:
    """Values for a log axis: non-positive and non-finite ones are not drawn."""
    out = np.asarray(values, dtype=np.float64).copy()
    out[~(out > 0) | ~np.isfinite(out)] = np.nan
    return out
