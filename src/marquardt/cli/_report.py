"""Text and JSON reports of the command line: the fit report, the NIST LRE table, the training report.

Reports are built from plain records (``FitSummary``, ``NistRow``, ``TrainSummary``) so that the
text, the JSON and the tests read the same numbers. JSON has no NaN or infinity: such values are
written as ``null``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from marquardt._status import Status

__all__ = [
    "FitSummary",
    "fit_report_text",
    "NistRow",
    "nist_header",
    "nist_line",
    "TrainSummary",
    "train_report_text",
    "to_json",
    "CORRELATION_THRESHOLD",
]

CORRELATION_THRESHOLD = 0.1
"""Correlations with a smaller magnitude are left out of the text report (as lmfit does)."""


def to_json(document: Any) -> str:
    """JSON text of ``document`` with NumPy values converted and non-finite numbers as ``null``."""
    return json.dumps(_plain(document), indent=2, allow_nan=False)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


# ---- fit -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FitSummary:
    """Everything ``marquardt fit`` reports. Arrays are in the order of ``names``."""

    model: str
    data: str
    x_columns: Mapping[str, str]
    y_column: str
    sigma_column: str | None
    absolute_sigma: bool
    names: tuple[str, ...]
    init: np.ndarray
    values: np.ndarray
    stderr: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    at_bound: np.ndarray
    correlation: np.ndarray
    ndata: int
    dof: int
    chisq: float
    redchi: float
    r_squared: float
    aic: float
    bic: float
    nfev: int
    nit: int
    status: int
    message: str
    success: bool
    dropped_lines: tuple[int, ...]

    def relative_errors(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.abs(self.stderr / self.values)

    def as_dict(self) -> dict[str, Any]:
        relative = self.relative_errors()
        return {
            "model": self.model,
            "data": self.data,
            "variables": dict(self.x_columns),
            "y": self.y_column,
            "sigma": self.sigma_column,
            "absolute_sigma": self.absolute_sigma,
            "parameters": {
                name: {
                    "value": self.values[i],
                    "stderr": self.stderr[i],
                    "relative_error": relative[i],
                    "init": self.init[i],
                    "min": self.lower[i],
                    "max": self.upper[i],
                    "at_bound": self.at_bound[i],
                }
                for i, name in enumerate(self.names)
            },
            "correlation": {a: {b: self.correlation[i, j] for j, b in enumerate(self.names)}
                            for i, a in enumerate(self.names)},
            "ndata": self.ndata,
            "nvars": len(self.names),
            "dof": self.dof,
            "chisq": self.chisq,
            "redchi": self.redchi,
            "r_squared": self.r_squared,
            "aic": self.aic,
            "bic": self.bic,
            "nfev": self.nfev,
            "nit": self.nit,
            "status": self.status,
            "status_name": _status_name(self.status),
            "message": self.message,
            "success": self.success,
            "dropped_lines": list(self.dropped_lines),
        }


def _status_name(status: int) -> str:
    try:
        return Status(status).name
    except ValueError:
        return str(status)


def fit_report_text(s: FitSummary) -> str:
    """A fit report laid out like lmfit's ``fit_report``: statistics, variables, correlations."""
    width = max(len(name) for name in s.names) + 1
    weights = "none" if s.sigma_column is None else (
        f"1/{s.sigma_column}^2" + (" (absolute sigma)" if s.absolute_sigma else ""))
    lines = [
        "[[Model]]",
        f"    {s.model}",
        "[[Fit Statistics]]",
        "    # fitting method   = Levenberg-Marquardt (marquardt)",
        f"    # function evals   = {s.nfev}",
        f"    # data points      = {s.ndata}",
        f"    # variables        = {len(s.names)}",
        f"    weights            = {weights}",
        f"    chi-square         = {_g(s.chisq)}",
        f"    reduced chi-square = {_g(s.redchi)}",
        f"    Akaike info crit   = {_g(s.aic)}",
        f"    Bayesian info crit = {_g(s.bic)}",
        f"    R-squared          = {_g(s.r_squared)}",
        f"    status             = {s.status} ({_status_name(s.status)}): {s.message}",
        "[[Variables]]",
    ]
    relative = s.relative_errors()
    for i, name in enumerate(s.names):
        text = f"    {(name + ':').ljust(width)} {_g(s.values[i]):>14}"
        if math.isfinite(s.stderr[i]):
            text += f" +/- {_g(s.stderr[i], 4):<10}"
            if math.isfinite(relative[i]):
                text += f" ({100 * relative[i]:.2f}%)"
        else:
            text += " +/- (not estimated)"
        text += f" (init = {_g(s.init[i])})"
        if math.isfinite(s.lower[i]) or math.isfinite(s.upper[i]):
            text += f" [{_g(s.lower[i])}, {_g(s.upper[i])}]"
        if s.at_bound[i]:
            text += " (at bound)"
        lines.append(text)
    pairs = []
    for i in range(len(s.names)):
        for j in range(i + 1, len(s.names)):
            value = s.correlation[i, j]
            if math.isfinite(value) and abs(value) >= CORRELATION_THRESHOLD:
                pairs.append((abs(value), f"C({s.names[i]}, {s.names[j]})", value))
    if pairs:
        lines.append(f"[[Correlations]] (unreported correlations are < {CORRELATION_THRESHOLD:.3f})")
        label_width = max(len(label) for _, label, _ in pairs)
        for _, label, value in sorted(pairs, key=lambda item: -item[0]):
            lines.append(f"    {label.ljust(label_width)} = {value:+.4f}")
    return "\n".join(lines)


def _g(value: float, digits: int = 8) -> str:
    value = float(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{digits}g}"


# ---- nist ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NistRow:
    """One fit of one NIST StRD problem from one start."""

    dataset: str
    difficulty: str
    start: int
    names: tuple[str, ...]
    estimate: np.ndarray
    certified: np.ndarray
    lre: np.ndarray
    stderr: np.ndarray
    certified_stderr: np.ndarray
    lre_stderr: np.ndarray
    rss: float
    certified_rss: float
    lre_rss: float
    nfev: int
    seconds: float
    status: int
    message: str

    @property
    def min_lre(self) -> float:
        return float(np.min(self.lre))

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "difficulty": self.difficulty,
            "start": self.start,
            "parameters": [
                {"name": name, "estimate": self.estimate[i], "certified": self.certified[i], "lre": self.lre[i],
                 "stderr": self.stderr[i], "certified_stderr": self.certified_stderr[i],
                 "lre_stderr": self.lre_stderr[i]}
                for i, name in enumerate(self.names)
            ],
            "min_lre": self.min_lre,
            "min_lre_stderr": float(np.min(self.lre_stderr)),
            "rss": self.rss,
            "certified_rss": self.certified_rss,
            "lre_rss": self.lre_rss,
            "nfev": self.nfev,
            "seconds": self.seconds,
            "status": self.status,
            "status_name": _status_name(self.status),
            "message": self.message,
        }


_NIST_COLUMNS = (("dataset", 10, "<"), ("level", 7, "<"), ("start", 5, ">"), ("LRE b", 6, ">"),
                 ("LRE sd", 6, ">"), ("LRE RSS", 7, ">"), ("nfev", 5, ">"), ("time s", 7, ">"),
                 ("status", 9, "<"))


def nist_header() -> str:
    """The header of the LRE table (two lines: names and a rule)."""
    names = "  ".join(f"{name:{align}{width}}" for name, width, align in _NIST_COLUMNS)
    return names.rstrip() + "\n" + "-" * len(names.rstrip())


def nist_line(row: NistRow) -> str:
    """One row of the LRE table: the smallest LRE over the parameters and over their std. deviations."""
    cells = (row.dataset, row.difficulty, str(row.start), f"{row.min_lre:.1f}", f"{np.min(row.lre_stderr):.1f}",
             f"{row.lre_rss:.1f}", str(row.nfev), f"{row.seconds:.2f}", _status_name(row.status))
    return "  ".join(f"{cell:{align}{width}}" for cell, (_, width, align) in zip(cells, _NIST_COLUMNS)).rstrip()


# ---- train ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainSummary:
    """Everything ``marquardt train`` reports.

    ``mse`` and ``r`` map a split name (``train``, ``validation``, ``test``, ``all``) to the mean
    squared error in the units of the targets and to the correlation of outputs and targets.
    """

    data: str
    inputs: tuple[str, ...]
    targets: tuple[str, ...]
    layers: tuple[int, ...]
    activation: str
    weights: int
    rows: Mapping[str, int]
    epochs: int
    best_epoch: int | None
    seconds: float
    stop_reason: str
    mse: Mapping[str, float]
    r: Mapping[str, float]
    model_path: str | None
    seed: int
    method: str = "trainlm"
    #: Bayesian regularisation (``--method trainbr``): γ, α, β, E_D, E_W after the last epoch
    bayes: Mapping[str, float] | None = None
    #: LM attempts, and those whose Cholesky factorisation failed so that the
    #: eigen-decomposition solved them (the Keras logs' ``cholesky_failures``, summed)
    attempts: int = 0
    cholesky_failures: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method, "bayes": None if self.bayes is None else dict(self.bayes),
            "data": self.data, "inputs": list(self.inputs), "targets": list(self.targets),
            "hidden": list(self.layers), "activation": self.activation, "weights": self.weights,
            "rows": dict(self.rows), "epochs": self.epochs, "best_epoch": self.best_epoch,
            "seconds": self.seconds, "stop_reason": self.stop_reason, "mse": dict(self.mse),
            "r": dict(self.r), "model": self.model_path, "seed": self.seed,
            "attempts": self.attempts, "cholesky_failures": self.cholesky_failures,
        }


def train_report_text(s: TrainSummary) -> str:
    """The training report: the network, the division of the data, the errors per split, the stop."""
    sizes = "-".join(str(n) for n in (len(s.inputs), *s.layers, len(s.targets)))
    lines = [
        f"network      {sizes} ({s.activation} hidden layers, linear output), {s.weights} weights",
        f"inputs       {', '.join(s.inputs)}",
        f"targets      {', '.join(s.targets)}",
        f"data         {s.data}: " + ", ".join(f"{n} {split}" for split, n in s.rows.items()) + f" (seed {s.seed})",
        f"training     {s.epochs} epochs in {s.seconds:.1f} s"
        + (f"; best validation at epoch {s.best_epoch}" if s.best_epoch is not None else ""),
        f"stopped      {s.stop_reason}",
    ]
    if s.cholesky_failures:
        lines.append(f"solver       {s.cholesky_failures} of {s.attempts} attempts failed their Cholesky "
                     "factorisation (A + λI not numerically positive definite); the eigen-decomposition "
                     "solved them")
    if s.bayes is not None:
        b = s.bayes
        lines.append(f"trainbr      effective parameters γ = {b['gamma']:.2f} of {s.weights}; "
                     f"α = {_g(b['alpha'], 4)}, β = {_g(b['beta'], 4)} (E_D = {_g(b['e_d'], 4)}, "
                     f"E_W = {_g(b['e_w'], 4)})")
    lines += [
        "",
        f"{'split':<12}{'rows':>6}{'MSE':>14}{'R':>10}",
    ]
    for split in ("train", "validation", "test", "all"):
        if s.rows.get(split):
            lines.append(f"{split:<12}{s.rows[split]:>6}{_g(s.mse[split], 5):>14}{s.r[split]:>10.5f}")
    if s.model_path:
        lines += ["", f"model        {s.model_path} (takes raw inputs, returns outputs in the targets' units)"]
    return "\n".join(lines)


