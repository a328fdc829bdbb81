"""``marquardt nist``: fit NIST StRD nonlinear-regression problems and score them against certified values.

Each file is read by :func:`marquardt.nist.load`, whose model line goes through the same safe
formula parser as ``marquardt fit``. Every file is read and checked before the first fit, so a bad
file stops the command before anything runs. As ``marquardt fit``, the command fits the formula's
NumPy model with its exact Jacobian, derived symbolically (``marquardt._formula_jacobian``), at
``curve_fit``'s defaults: no TensorFlow. The score of an estimate is its log relative error
(LRE, about the number of correct significant digits, capped at 11; McCullough 1999) against the
certified parameters, their certified standard deviations and the certified residual sum of
squares.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from marquardt.cli import _options
from marquardt.cli._errors import EXIT_DATA, CliError
from marquardt.cli._report import NistRow, nist_header, nist_line, to_json
from marquardt.nist import files, load, lre

__all__ = ["add_parser", "run"]

DESCRIPTION = """\
Fit NIST StRD nonlinear-regression problems (.dat files from
https://www.itl.nist.gov/div898/strd/nls/nls_main.shtml) from NIST's starting
values and print the log relative error (LRE: correct significant digits, at
most 11) of the estimates against the certified values: the smallest over the
parameters (LRE b), over their standard deviations (LRE sd), and of the
residual sum of squares. A directory stands for the .dat files in it. With no
file, the 19 problems shipped with marquardt are scored."""

EPILOG = """\
examples:
  marquardt nist                      # the 19 problems shipped with marquardt
  marquardt nist tests/data/nist/Misra1a.dat
  marquardt nist tests/data/nist/ --start 1 --min-lre 6
  marquardt nist tests/data/nist/*.dat --json > lre.json"""


def add_parser(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "nist", parents=parents, help="score fits of NIST StRD reference problems (LRE table)",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("files", nargs="*", metavar="FILE.dat",
                        help="NIST StRD files, or directories of them (default: the 19 files shipped with marquardt)")
    parser.add_argument("--start", choices=("1", "2", "both"), default="both",
                        help="NIST's starting values to fit from (default: both)")
    parser.add_argument("--min-lre", type=_options.non_negative_float, metavar="DIGITS",
                        help="exit with status 1 when a parameter LRE is below DIGITS")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of the table")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    paths = _expand(args.files) if args.files else files()
    if not paths:
        raise CliError("this installation has no NIST files (marquardt/data/nist); name files or a directory")
    problems = []
    for path in paths:
        try:
            problems.append(load(path))
        except ValueError as exc:  # the reader's message names the file and the line
            raise CliError(str(exc)) from None
        except OSError as exc:
            raise CliError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    starts = (1, 2) if args.start == "both" else (int(args.start),)

    from marquardt._curve_fit import fit_curve

    begin = time.perf_counter()
    if not args.json:
        print(nist_header(), flush=True)
    rows: list[NistRow] = []
    for problem in problems:
        names = (problem.variable_names, problem.parameter_names)
        model = problem.formula.as_numpy_model(*names)
        jacobian = problem.formula.as_numpy_jacobian(*names)
        target = problem.target()
        for start in starts:
            tic = time.perf_counter()
            popt, _, result = fit_curve(model, problem.x, target, p0=problem.starts[start - 1],
                                        jac=jacobian)
            seconds = time.perf_counter() - tic
            rss = float(result.chisq)
            row = NistRow(
                dataset=problem.name, difficulty=problem.difficulty, start=start, names=problem.parameter_names,
                estimate=np.asarray(popt), certified=problem.certified, lre=lre(popt, problem.certified),
                stderr=np.asarray(result.perr), certified_stderr=problem.certified_std,
                lre_stderr=lre(result.perr, problem.certified_std), rss=rss,
                certified_rss=problem.residual_sum_of_squares,
                lre_rss=float(lre(rss, problem.residual_sum_of_squares)),
                nfev=int(result.nfev), seconds=seconds, status=int(result.status), message=str(result.message),
            )
            rows.append(row)
            if not args.json:
                print(nist_line(row), flush=True)
    total = time.perf_counter() - begin
    worst = min(rows, key=lambda row: row.min_lre)
    if args.json:
        print(to_json({"fits": [row.as_dict() for row in rows], "seconds": total,
                       "min_lre": worst.min_lre}))
    else:
        mean = float(np.mean([row.min_lre for row in rows]))
        evaluations = sum(row.nfev for row in rows)
        print(f"\n{len(rows)} fits in {total:.1f} s; "
              f"smallest parameter LRE {worst.min_lre:.1f} ({worst.dataset}, start {worst.start}), "
              f"mean {mean:.2f}; {evaluations:,} evaluations")
    if args.min_lre is not None:
        low = [row for row in rows if row.min_lre < args.min_lre]
        if low:
            names = ", ".join(f"{row.dataset} start {row.start} ({row.min_lre:.1f})" for row in low[:5])
            print(f"marquardt: error: {len(low)} fits have a parameter LRE below {args.min_lre:g}: {names}",
                  file=sys.stderr)
            return EXIT_DATA
    return 0


def _expand(items: list[str]) -> list[Path]:
    """Files as given; a directory gives its ``*.dat`` files, sorted by name."""
    paths: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(path.glob("*.dat"))
            if not found:
                raise CliError(f"{item}: a directory with no .dat files")
            paths.extend(found)
        elif path.exists():
            paths.append(path)
        else:
            raise CliError(f"{item}: no such file")
    return paths
