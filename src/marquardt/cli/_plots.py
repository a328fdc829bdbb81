"""The command line's plots, written as PNG files with matplotlib's Agg backend (no display needed).

matplotlib is an optional dependency (the ``cli`` extra); it is imported only when a plot is
asked for, and a missing install is reported in one line with the command that installs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from marquardt.cli._errors import CliError

__all__ = ["pyplot", "fit_plot"]

DPI = 110


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend, or a ``CliError`` saying how to install it."""
    try:
        import matplotlib
    except ImportError:
        raise CliError("plots need matplotlib, which is not installed: pip install 'marquardt[cli]'") from None
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


def _positive(values: Sequence[float]) -> np.ndarray:
    """Values for a log axis: non-positive and non-finite ones are not drawn."""
    out = np.asarray(values, dtype=np.float64).copy()
    out[~(out > 0) | ~np.isfinite(out)] = np.nan
    return out
