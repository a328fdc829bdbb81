"""``marquardt fit``: fit a formula typed on the command line to columns of a data file.

The formula is parsed by the safe parser of ``marquardt._formula`` (a whitelist; the text is never
passed to ``eval``), evaluated with NumPy and fitted with ``marquardt.curve_fit`` given its exact
Jacobian, derived symbolically from the parsed tree (``marquardt._formula_jacobian``): the command
imports neither TensorFlow nor JAX. Names in the formula are the parameters given by ``--p0``, the
data columns (every column whose name is a valid identifier, except the response and ``--sigma``
columns), the alias ``x`` for the ``--x`` column, and the constants ``pi`` and ``e``; any other
name is refused before anything runs.
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from marquardt._formula import Formula, FormulaError, parse_formula
from marquardt._parameters import strictly_feasible
from marquardt.cli import _options
from marquardt.cli._data import Columns, Table, read_table
from marquardt.cli._errors import EXIT_DATA, CliError, UsageError, check_output_path
from marquardt.cli._report import FitSummary, fit_report_text, to_json

__all__ = ["add_parser", "run"]

DESCRIPTION = """\
Fit a formula to columns of a data file by Levenberg-Marquardt and print a fit
report (values, standard errors, relative errors, correlations above 0.1,
chi-square, reduced chi-square, R-squared, function evaluations, status).

The formula may use + - * / ** and unary minus, brackets, numbers, the
parameters named in --p0, the data columns, x (the --x column), the constants
pi and e, and the functions exp, log, log10, sqrt, sin, cos, tan, arcsin,
arccos, arctan, arctan2, sinh, cosh, tanh and abs. It is parsed against this
whitelist, never evaluated as Python."""

EPILOG = """\
examples:
  marquardt fit decay.csv --model "a*exp(-b*x) + c" --p0 a=1,b=0.1,c=0
  marquardt fit decay.csv --model "a*exp(-b*t) + c" --p0 a=1,b=0.1,c=0 --y counts --sigma err \\
      --bounds b=0:inf --report out/
  marquardt fit plane.csv --model "a*x1 + b*x2 + c" --p0 a=0,b=0,c=0 --json"""


def add_parser(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "fit", parents=parents, help="fit a formula to a data file (like gnuplot's fit or lmfit)",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("data", metavar="DATA.csv",
                        help="data file with a header row (comma, semicolon, tab or space separated)")
    parser.add_argument("--model", required=True, metavar="FORMULA", help='the formula, e.g. "a*exp(-b*x) + c"')
    parser.add_argument("--p0", required=True, type=_options.name_values, metavar="NAME=VALUE,...",
                        help="every parameter of the formula with its starting value, e.g. a=1,b=0.1,c=0")
    parser.add_argument("--x", metavar="COL", help="the column the formula calls x (default: the column named x)")
    parser.add_argument("--y", metavar="COL", help="the response column (default: the column named y)")
    parser.add_argument("--sigma", metavar="COL", help="column of standard deviations of y; weights are 1/sigma^2")
    parser.add_argument("--absolute-sigma", action="store_true",
                        help="take --sigma as absolute: do not rescale the covariance by the reduced chi-square")
    parser.add_argument("--bounds", type=_options.name_intervals, default={}, metavar="NAME=LOW:HIGH,...",
                        help="bounds on parameters, e.g. b=0:inf,a=-1:1 (an empty end is unbounded)")
    parser.add_argument("--dropna", action="store_true", help="drop rows with a missing value in a used column")
    parser.add_argument("--max-nfev", type=_options.positive_int, metavar="N",
                        help="most function evaluations (default: max(1000, 200*(n+1)))")
    parser.add_argument("--report", type=Path, metavar="DIR",
                        help="also write fit_report.txt, fit.json and the plot fit.png to DIR")
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of the text report")
    parser.set_defaults(run=run)


@dataclass(frozen=True)
class _Problem:
    """The checked fit problem: formula, data arrays, starting point and bounds."""

    formula: Formula
    names: tuple[str, ...]  # parameter names, in --p0 order
    p0: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    variables: tuple[str, ...]  # formula variable names, in the order of the rows of xdata
    columns_of: dict[str, str]  # formula variable -> data column
    xdata: np.ndarray
    ydata: np.ndarray
    sigma: np.ndarray | None
    y_column: str
    data: Columns


def run(args: argparse.Namespace) -> int:
    check_output_path(args.report, "--report", directory=True)
    problem = prepare(args)
    if args.report is not None:
        from marquardt.cli._plots import pyplot

        pyplot()  # a missing matplotlib is reported before the fit, not after
        _options.make_report_directory(args.report)
    summary = fit(problem, args)
    text = fit_report_text(summary)
    if args.json:
        print(to_json(summary.as_dict()))
    else:
        print(text)
    if args.report is not None:
        _write_report(args.report, summary, text, problem)
    if not summary.success:
        print(f"marquardt: error: the fit did not converge: {summary.message}", file=sys.stderr)
        return EXIT_DATA
    return 0


def prepare(args: argparse.Namespace) -> _Problem:
    """Reads the data and checks the formula against it, before any fitting."""
    if len(args.model) > 10_000:  # the parser refuses >2000 characters; do not even echo more
        raise UsageError("--model: the formula is too long")
    table = read_table(args.data)
    y_column = _column(table, args.y, "y", "--y")
    sigma_column = None
    if args.sigma is not None:
        table.check_column(args.sigma, "--sigma")
        sigma_column = args.sigma
    if sigma_column == y_column:
        raise CliError(f"--sigma: the column {sigma_column!r} is also the response column")

    columns_of: dict[str, str] = {}
    for name in table.columns:
        if name not in (y_column, sigma_column) and _usable_name(name):
            columns_of[name] = name
    if args.x is not None:
        table.check_column(args.x, "--x")
        if args.x in (y_column, sigma_column):
            raise CliError(f"--x: the column {args.x!r} is also the response or sigma column")
        columns_of["x"] = args.x

    clash = sorted(set(args.p0) & set(columns_of))
    if clash:
        raise UsageError(f"--p0: {clash[0]!r} is both a parameter and a data column of {table.path}; "
                         "rename the parameter")
    try:
        formula = parse_formula(args.model, variables=tuple(columns_of), parameters=tuple(args.p0))
    except FormulaError as exc:
        raise UsageError(f"--model: {exc}") from None
    unused = [name for name in args.p0 if name not in formula.parameters]
    if unused:
        raise UsageError(f"--p0: the formula does not use the parameter(s) {unused}; "
                         "remove them or use them in --model")
    unknown = sorted(set(args.bounds) - set(args.p0))
    if unknown:
        raise UsageError(f"--bounds: {unknown[0]!r} is not a parameter (parameters: {', '.join(args.p0)})")

    variables = formula.variables
    if not variables:  # a constant model still needs an x to take the number of points from
        if "x" not in columns_of:
            raise UsageError("--model: the formula uses no data column; name one, or give --x")
        variables = ("x",)
    needed = [columns_of[v] for v in variables] + [y_column] + ([sigma_column] if sigma_column else [])
    data = table.numeric(needed, dropna=args.dropna)
    if data.dropped:
        count = len(data.dropped)
        print(f"marquardt: note: dropped {count} {'row' if count == 1 else 'rows'} with missing "
              f"values ({'line' if count == 1 else 'lines'} {_line_list(data.dropped)})",
              file=sys.stderr)
    names = tuple(args.p0)
    if data.size < len(names):
        raise CliError(f"{table.path}: {data.size} data rows cannot determine {len(names)} parameters")
    sigma = None
    if sigma_column is not None:
        sigma = data[sigma_column]
        bad = np.flatnonzero(sigma <= 0)
        if bad.size:
            where = table.where(int(data.lines[bad[0]]), sigma_column)
            raise CliError(f"{where}: sigma must be > 0, found {sigma[bad[0]]:g}")
    p0 = np.array([args.p0[name] for name in names], dtype=np.float64)
    lower = np.array([args.bounds.get(name, (-math.inf, math.inf))[0] for name in names])
    upper = np.array([args.bounds.get(name, (-math.inf, math.inf))[1] for name in names])
    outside = [(name, p0[i]) for i, name in enumerate(names) if not lower[i] <= p0[i] <= upper[i]]
    if outside:
        name, value = outside[0]
        raise UsageError(f"--p0: {name}={value:g} lies outside its bounds {_interval(*args.bounds[name])}")
    rows = [data[columns_of[v]] for v in variables]
    xdata = rows[0] if len(rows) == 1 else np.stack(rows)
    # where the fit starts: a start on a bound moves 1e-10 inside (SciPy's trf, ours)
    _check_start(formula, variables, columns_of, data, names, strictly_feasible(p0, lower, upper))
    return _Problem(formula=formula, names=names, p0=p0, lower=lower, upper=upper, variables=variables,
                    columns_of=columns_of, xdata=xdata, ydata=data[y_column], sigma=sigma,
                    y_column=y_column, data=data)


def fit(problem: _Problem, args: argparse.Namespace) -> FitSummary:
    """Runs ``curve_fit`` and collects everything the report shows."""
    from marquardt._covariance import NOT_ESTIMATED, optimize_warning
    from marquardt._curve_fit import fit_curve
    from marquardt._errors import NonFiniteJacobianError

    # the formula in NumPy with its exact Jacobian, derived symbolically: no TensorFlow
    model = problem.formula.as_numpy_model(problem.variables, problem.names)
    jacobian = problem.formula.as_numpy_jacobian(problem.variables, problem.names)
    options = {} if args.max_nfev is None else {"max_nfev": args.max_nfev}
    with warnings.catch_warnings(record=True) as caught:
        # m == n or a rank-deficient J: the covariance is reported as not estimated, and why
        # goes to stderr as one line (not Python's warning format with its source line). The
        # filter names the message, not SciPy's OptimizeWarning: its class costs an import of
        # scipy.optimize (0.4 s), made below only when a warning was caught.
        warnings.filterwarnings("always", message=NOT_ESTIMATED)
        arguments = dict(p0=problem.p0, sigma=problem.sigma, absolute_sigma=args.absolute_sigma,
                         bounds=(problem.lower, problem.upper), **options)
        try:
            popt, _, result = fit_curve(model, problem.xdata, problem.ydata, jac=jacobian,
                                        **arguments)
        except NonFiniteJacobianError:
            # a derivative undefined where the formula is defined (sqrt(b*x) at x = 0): exact
            # derivatives are impossible there, differences of the formula's values are not
            print("marquardt: warning: the formula's derivative is not finite at the starting "
                  "values (sqrt(b*x) at x = 0 does this); fitting with finite differences "
                  "(2-point) instead", file=sys.stderr)
            popt, _, result = fit_curve(model, problem.xdata, problem.ydata, jac="2-point",
                                        **arguments)
    for warning in caught:
        if issubclass(warning.category, optimize_warning()):
            print(f"marquardt: warning: {' '.join(str(warning.message).split())}", file=sys.stderr)
        else:
            warnings.showwarning(warning.message, warning.category, warning.filename,
                                 warning.lineno)
    # R² = 1 − Σwᵢ(yᵢ − fᵢ)² / Σwᵢ(yᵢ − ȳ)², with ȳ the weighted mean and wᵢ = 1/σᵢ² (or 1):
    # the numerator is χ².
    weights = np.ones_like(problem.ydata) if problem.sigma is None else problem.sigma**-2.0
    mean = np.sum(weights * problem.ydata) / np.sum(weights)
    total = float(np.sum(weights * (problem.ydata - mean) ** 2))
    chisq = float(result.chisq)
    m, n = problem.ydata.size, len(problem.names)
    return FitSummary(
        model=problem.formula.text,
        data=str(args.data),
        x_columns={v: problem.columns_of[v] for v in problem.variables},
        y_column=problem.y_column,
        sigma_column=args.sigma,
        absolute_sigma=bool(args.absolute_sigma),
        names=problem.names,
        init=problem.p0,
        values=np.asarray(popt, dtype=np.float64),
        stderr=np.asarray(result.perr, dtype=np.float64),
        lower=problem.lower,
        upper=problem.upper,
        at_bound=np.asarray(result.active_mask) != 0,
        correlation=np.asarray(result.correlation, dtype=np.float64),
        ndata=m,
        dof=int(result.dof),
        chisq=chisq,
        redchi=float(result.redchi),
        r_squared=1.0 - chisq / total if total > 0 else math.nan,
        aic=m * math.log(chisq / m) + 2 * n if chisq > 0 else -math.inf,
        bic=m * math.log(chisq / m) + math.log(m) * n if chisq > 0 else -math.inf,
        nfev=int(result.nfev),
        nit=int(result.nit),
        status=int(result.status),
        message=str(result.message),
        success=bool(result.success),
        dropped_lines=problem.data.dropped,
    )


def _evaluate(problem: _Problem, params: np.ndarray, variables: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """The formula in float64 NumPy (for R², plots), broadcast to the data."""
    if variables is None:
        variables = {v: problem.data[problem.columns_of[v]] for v in problem.variables}
    size = next(iter(variables.values())).shape
    value = problem.formula.evaluate_numpy(variables, dict(zip(problem.names, params)))
    return np.broadcast_to(value, size)


def _check_start(formula, variables, columns_of, data, names, p0) -> None:
    """Refuses a start where the model is not finite, naming the first bad row (before fitting)."""
    values = {v: data[columns_of[v]] for v in variables}
    out = np.broadcast_to(formula.evaluate_numpy(values, dict(zip(names, p0))), data.lines.shape)
    bad = np.flatnonzero(~np.isfinite(out))
    if bad.size:
        raise CliError(
            f"the model is not finite at the starting values --p0 (line {int(data.lines[bad[0]])} of the data "
            f"gives {out[bad[0]]}; {bad.size} row{'s' if bad.size != 1 else ''} in all); choose other starting values"
        )


def _write_report(directory: Path, summary: FitSummary, text: str, problem: _Problem) -> None:
    from marquardt.cli import _plots

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "fit_report.txt").write_text(text + "\n")
    (directory / "fit.json").write_text(to_json(summary.as_dict()) + "\n")
    x_label = ", ".join(problem.columns_of[v] for v in problem.variables)
    if len(problem.variables) == 1:
        x = problem.xdata
        grid = np.linspace(x.min(), x.max(), 400)
        curve = _evaluate(problem, summary.values, {problem.variables[0]: grid})
        fitted = _evaluate(problem, summary.values)
        _plots.fit_plot(directory / "fit.png", x=x, y=problem.ydata, sigma=problem.sigma, grid=grid,
                        curve=curve, fitted=fitted, x_label=x_label, y_label=problem.y_column,
                        title=summary.model)
    else:
        fitted = _evaluate(problem, summary.values)
        _plots.fit_plot(directory / "fit.png", x=np.arange(1, problem.ydata.size + 1, dtype=float),
                        y=problem.ydata, sigma=problem.sigma, grid=None, curve=None, fitted=fitted,
                        x_label=f"row (x = {x_label})", y_label=problem.y_column, title=summary.model)
    print(f"marquardt: wrote {directory / 'fit_report.txt'}, fit.json and fit.png", file=sys.stderr)


def _column(table: Table, given: str | None, default: str, option: str) -> str:
    if given is not None:
        table.check_column(given, option)
        return given
    if default in table.columns:
        return default
    raise CliError(f"{table.path}: no column {default!r}; name the column with {option} COL "
                   f"(columns: {', '.join(map(repr, table.columns))})")


def _usable_name(name: str) -> bool:
    """Whether a column name can be a formula variable (an identifier the parser accepts)."""
    try:
        parse_formula("0", variables=(name,), parameters=())
    except FormulaError:
        return False
    return True


def _interval(low: float, high: float) -> str:
    return f"[{low:g}, {high:g}]"


def _line_list(lines: tuple[int, ...], limit: int = 8) -> str:
    shown = ", ".join(map(str, lines[:limit]))
    return shown + (", ..." if len(lines) > limit else "")


