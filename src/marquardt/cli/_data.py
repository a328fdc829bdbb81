"""Reading the data file of ``fit`` and ``train``: a delimited text file with a header row.

A deliberately small reader on the standard library's :mod:`csv`, so that every problem can be
reported in one line naming the file, the line and the column, and so that the command line needs
no data-frame library. The format:

* the first line that is neither blank nor a ``#`` comment names the columns;
* fields are separated by the most frequent of ``,`` ``;`` and tab in that header line, or by
  runs of white space when it has none of them (gnuplot-style data files); quoted fields follow
  the :mod:`csv` rules;
* blank lines and lines starting with ``#`` are skipped everywhere;
* a cell is a number as Python's ``float`` reads it; an empty cell, ``nan``, ``NA``, ``N/A``,
  ``null`` or ``?`` (any case) is a missing value. Infinite values are refused.

Only the columns a command uses are converted, so other columns may hold text (labels, dates).
A row with a missing value in a used column is an error naming the row, unless the caller asks
for such rows to be dropped (``--dropna``).
"""

from __future__ import annotations

import csv
import difflib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from marquardt.cli._errors import CliError

__all__ = ["Table", "Columns", "read_table", "MISSING"]

MISSING = frozenset({"", "nan", "na", "n/a", "null", "none", "?"})
"""Cell texts (compared in lower case) that mean a missing value."""

_DELIMITERS = (",", ";", "\t")


@dataclass(frozen=True)
class Columns:
    """Numeric columns taken from a :class:`Table`, with the same rows kept in each.

    Attributes:
        values: Column name to float64 array, all of one length.
        lines: The file line number of each kept row.
        dropped: Lines of the rows dropped for missing values (only with ``dropna``).
    """

    values: Mapping[str, np.ndarray]
    lines: np.ndarray
    dropped: tuple[int, ...]

    def __getitem__(self, name: str) -> np.ndarray:
        return self.values[name]

    @property
    def size(self) -> int:
        return int(self.lines.size)


@dataclass(frozen=True)
class Table:
    """The text of a data file, split into a header and rows of cells (not yet converted).

    Attributes:
        path: The file, as the user named it.
        columns: Column names, in file order.
        rows: The cells of each data row, as text.
        lines: The file line number (1-based) of each data row.
    """

    path: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    lines: tuple[int, ...]

    def where(self, line: int | None = None, column: str | None = None) -> str:
        """``file, line N, column 'c'`` for messages."""
        parts = [self.path]
        if line is not None:
            parts.append(f"line {line}")
        if column is not None:
            parts.append(f"column {column!r}")
        return ", ".join(parts)

    def check_column(self, name: str, option: str | None = None) -> None:
        """Raises a :class:`CliError` naming the known columns when ``name`` is not one."""
        if name in self.columns:
            return
        close = difflib.get_close_matches(name, self.columns, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        given = f" (given by {option})" if option else ""
        raise CliError(
            f"{self.path}: no column {name!r}{given}; the columns are {', '.join(map(repr, self.columns))}{hint}"
        )

    def numeric(self, names: Iterable[str], *, dropna: bool = False) -> Columns:
        """Converts the named columns to float64, keeping the rows that are complete in all of them.

        Args:
            names: The columns to convert (each must exist; repeats are allowed).
            dropna: Drop rows with a missing value in any of ``names`` instead of refusing them.

        Returns:
            The :class:`Columns`.

        Raises:
            CliError: A missing column, a cell that is not a number or is infinite, a missing value
                without ``dropna``, or no complete row at all.
        """
        names = list(dict.fromkeys(names))
        for name in names:
            self.check_column(name)
        index = {name: self.columns.index(name) for name in names}
        data = np.empty((len(self.rows), len(names)), dtype=np.float64)
        for r, (row, line) in enumerate(zip(self.rows, self.lines)):
            for c, name in enumerate(names):
                data[r, c] = self._number(row[index[name]], line, name)
        missing = np.isnan(data)
        incomplete = missing.any(axis=1)
        if incomplete.any() and not dropna:
            r = int(np.argmax(incomplete))
            name = names[int(np.argmax(missing[r]))]
            count = int(incomplete.sum())
            others = f" ({count} rows have missing values)" if count > 1 else ""
            raise CliError(
                f"{self.where(self.lines[r], name)}: missing value in data row {r + 1}{others}; "
                "pass --dropna to drop incomplete rows"
            )
        keep = ~incomplete
        if not keep.any():
            raise CliError(f"{self.path}: no row has values in all of the columns {names}")
        lines = np.asarray(self.lines, dtype=np.int64)
        return Columns(
            values={name: data[keep, c].copy() for c, name in enumerate(names)},
            lines=lines[keep],
            dropped=tuple(int(n) for n in lines[incomplete]),
        )

    def _number(self, cell: str, line: int, column: str) -> float:
        text = cell.strip()
        if text.lower() in MISSING:
            return math.nan
        try:
            value = float(text)
        except ValueError:
            shown = text if len(text) <= 30 else text[:27] + "..."
            raise CliError(f"{self.where(line, column)}: {shown!r} is not a number") from None
        if math.isinf(value):
            raise CliError(f"{self.where(line, column)}: {text!r} is not a finite number")
        return value  # NaN spelt in a way `MISSING` does not list is still a missing value


def read_table(path: str | os.PathLike) -> Table:
    """Reads a delimited text file with a header row (see the module docstring).

    Args:
        path: The file.

    Returns:
        The :class:`Table`, cells still as text.

    Raises:
        CliError: The file is missing or unreadable, not text, has no header or no data, repeats
            or leaves out a column name, has a header that looks like data, or has a row with the
            wrong number of fields.
    """
    shown = os.fspath(path)
    file = Path(path)
    if not file.exists():
        raise CliError(f"{shown}: no such file")
    if file.is_dir():
        raise CliError(f"{shown}: is a directory, not a data file")
    try:
        text = file.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CliError(f"{shown}: not a UTF-8 text file (byte {exc.start})") from None
    except OSError as exc:
        raise CliError(f"{shown}: cannot be read ({exc.strerror or exc})") from None

    numbered = [
        (number, line)
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not numbered:
        raise CliError(f"{shown}: the file is empty (no header line)")
    header_line, header_text = numbered[0]
    delimiter = max(_DELIMITERS, key=header_text.count)
    delimiter = delimiter if header_text.count(delimiter) else None

    def split(line: str) -> list[str]:
        if delimiter is None:
            return line.split()
        return [cell.strip() for cell in next(csv.reader([line], delimiter=delimiter))]

    columns = tuple(split(header_text))
    for position, name in enumerate(columns, start=1):
        if not name:
            raise CliError(f"{shown}, line {header_line}: column {position} of the header has no name")
    repeated = sorted({name for name in columns if columns.count(name) > 1})
    if repeated:
        raise CliError(f"{shown}, line {header_line}: the header repeats the column name(s) {repeated}")
    if all(_looks_numeric(name) for name in columns):
        raise CliError(
            f"{shown}, line {header_line}: the first line must name the columns, but it holds numbers "
            f"({header_text.strip()[:40]!r})"
        )
    rows, lines = [], []
    for number, line in numbered[1:]:
        cells = split(line)
        if len(cells) != len(columns):
            raise CliError(
                f"{shown}, line {number}: expected {len(columns)} fields like the header, found {len(cells)}"
            )
        rows.append(tuple(cells))
        lines.append(number)
    if not rows:
        raise CliError(f"{shown}: no data rows after the header")
    return Table(path=shown, columns=columns, rows=tuple(rows), lines=tuple(lines))


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
