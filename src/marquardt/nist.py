"""Reader for the NIST StRD nonlinear regression files, and the log relative error used to score fits.

The Statistical Reference Datasets (https://www.itl.nist.gov/div898/strd/nls/nls_main.shtml) give, for
each problem, a model, two starting points, certified parameter values to 11 significant digits, their
standard deviations, the certified residual sum of squares and the data. A file's header says where
each block is, e.g. ``Starting Values (lines 41 to 43)``, ``Certified Values (lines 41 to 48)`` and
``Data (lines 61 to 274)``; :func:`load` reads those line numbers rather than guessing. The model text
(``y = b1*(1-exp[-b2*x])  +  e``) is parsed with the safe formula parser of ``marquardt._formula``:
the leading ``y =`` and the trailing ``+ e`` error term are removed here, and a transformed response
such as Nelson's ``log[y] = ...`` is recorded in :attr:`NistProblem.response_transform`.

The 19 problems' files are shipped with the package (``marquardt/data/nist``): :func:`files`
lists them.

Examples:
    >>> problem = load(files()[0])  # doctest: +SKIP
    >>> problem.model_text, problem.starts.shape  # doctest: +SKIP
    ('y = b1*(1-exp[-b2*x])  +  e', (2, 2))
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NoReturn

import numpy as np
import numpy.typing as npt

from marquardt._formula import CONSTANTS, Formula, FormulaError, parse_formula

__all__ = ["NistProblem", "files", "load", "lre"]

LRE_DIGITS = 11.0
"""The certified values carry 11 significant digits, so an LRE is capped at 11."""

# Left-hand sides understood, and the transform of the response each one means.
_RESPONSE_TRANSFORMS = {"y": None, "log[y]": "log", "log(y)": "log", "ln[y]": "log", "ln(y)": "log"}


@dataclass(frozen=True, eq=False)
class NistProblem:
    """One NIST StRD nonlinear regression problem, as read by :func:`load`. Arrays are read-only.

    Attributes:
        name: The dataset name, e.g. ``"Misra1a"``.
        difficulty: ``"Lower"``, ``"Average"`` or ``"Higher"``.
        model_text: The model equation as printed in the file, its lines joined by single spaces.
        formula: The right-hand side without the ``+ e`` error term, parsed with the safe parser.
        response_transform: ``None``, or ``"log"`` when the model is written for ``log[y]`` (Nelson).
        parameter_names: ``("b1", "b2", ...)``.
        variable_names: ``("x",)``, or ``("x1", "x2")`` for Nelson.
        starts: Shape ``(2, n)``: NIST's start 1 and start 2.
        certified: Shape ``(n,)``: certified parameter values.
        certified_std: Shape ``(n,)``: their certified standard deviations.
        residual_sum_of_squares: Certified residual sum of squares (of the transformed response).
        residual_std: Certified residual standard deviation.
        degrees_of_freedom: As printed in the file. Rat43's file says 9 although it has 15
            observations and 4 parameters; its certified residual standard deviation uses 11.
        x: Predictors, float64, shape ``(m,)`` for one variable or ``(k, m)`` for ``k``.
        y: The response as printed in the file, shape ``(m,)``.
    """

    name: str
    difficulty: str
    model_text: str
    formula: Formula
    response_transform: str | None
    parameter_names: tuple[str, ...]
    variable_names: tuple[str, ...]
    starts: np.ndarray
    certified: np.ndarray
    certified_std: np.ndarray
    residual_sum_of_squares: float
    residual_std: float
    degrees_of_freedom: int
    x: np.ndarray
    y: np.ndarray

    def model(self) -> Callable:
        """The model ``f(x, *params)`` for ``marquardt.curve_fit``, built from TensorFlow operations.

        Returns:
            A function of ``x`` (shaped like :attr:`x`) and the parameters in the order of
            :attr:`parameter_names`, returning the model of :meth:`target` (the transformed response).
        """
        return self.formula.as_model(self.variable_names, self.parameter_names)

    def target(self) -> np.ndarray:
        """The response to fit: :attr:`y`, or ``log(y)`` when :attr:`response_transform` is ``"log"``."""
        return np.log(self.y) if self.response_transform == "log" else self.y.copy()


def files() -> list[Path]:
    """The NIST StRD files shipped with marquardt (package data ``marquardt/data/nist``), sorted by name.

    These are the 19 problems ``tests/test_nist.py`` and ``marquardt nist`` (with no argument) score.
    """
    return sorted(Path(__file__).with_name("data").joinpath("nist").glob("*.dat"))


def lre(estimate: npt.ArrayLike, certified: npt.ArrayLike, *, digits: float = LRE_DIGITS) -> np.ndarray:
    """The log relative error of an estimate, elementwise: about the number of correct digits.

    ``LRE = -log10(|estimate - certified| / |certified|)``, or ``-log10(|estimate - certified|)``
    (the absolute error) where ``certified == 0``. Following McCullough (1999), it is capped at the
    number of digits of the certified value (``digits``, 11 for StRD; an exact match gets the cap) and
    reported as 0 when it is negative, that is when the estimate is off by more than 100%; a NaN or
    infinite estimate also gets 0.

    Args:
        estimate: Estimated values.
        certified: Certified values, broadcastable with ``estimate``.
        digits: The cap.

    Returns:
        float64 array of LREs in ``[0, digits]``.

    References:
        McCullough, B. D. (1999). Assessing the reliability of statistical software: Part II.
        The American Statistician 53(2), 149-159.

    Examples:
        >>> lre([1.0001, 2.0], [1.0, 2.0])
        array([ 4., 11.])
    """
    estimate = np.asarray(estimate, dtype=np.float64)
    certified = np.asarray(certified, dtype=np.float64)
    error = np.abs(estimate - certified)
    scale = np.where(certified == 0, 1.0, np.abs(certified))
    with np.errstate(divide="ignore", invalid="ignore"):
        value = -np.log10(error / scale)
    value = np.where(error == 0, digits, value)
    value = np.where(np.isnan(value), 0.0, value)
    return np.clip(value, 0.0, digits)


def load(path: str | os.PathLike) -> NistProblem:
    """Reads a NIST StRD nonlinear regression file (``.dat``, CRLF or LF line endings).

    Args:
        path: The file.

    Returns:
        The :class:`NistProblem`.

    Raises:
        ValueError: When the file does not have the StRD layout; the message names the file, the
            problem and, where there is one, the line.
        OSError: When the file cannot be read.
    """
    return _Reader(Path(path)).read()


class _Reader:
    """Reads one file; every failure goes through :meth:`fail`, which names the file and the line."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.lines = path.read_bytes().decode("ascii").splitlines()
        except UnicodeDecodeError as exc:
            self.fail(f"not an ASCII NIST StRD file ({exc.reason} at byte {exc.start})")

    def fail(self, message: str, line: int | None = None) -> NoReturn:
        where = f" (line {line})" if line is not None else ""
        raise ValueError(f"{self.path}: {message}{where}")

    def line(self, number: int) -> str:
        """The 1-based line ``number``."""
        if not 1 <= number <= len(self.lines):
            self.fail(f"the header refers to line {number}, but the file has {len(self.lines)} lines")
        return self.lines[number - 1]

    def find(self, pattern: str, what: str) -> tuple[int, re.Match]:
        """The first line matching ``pattern``, as (1-based number, match)."""
        regex = re.compile(pattern, re.IGNORECASE)
        for number, text in enumerate(self.lines, start=1):
            match = regex.search(text)
            if match:
                return number, match
        self.fail(f"no {what} found")

    def block(self, title: str) -> range:
        """The line numbers of a block named in the header, e.g. ``Data (lines 61 to 74)``."""
        number, match = self.find(rf"{title}\s*\(lines\s+(\d+)\s+to\s+(\d+)\s*\)", f"'{title} (lines A to B)' header")
        first, last = int(match.group(1)), int(match.group(2))
        if not 0 < first <= last:
            self.fail(f"bad line range {first} to {last} for {title}", number)
        self.line(last)
        return range(first, last + 1)

    def numbers(self, text: str, count: int, number: int, what: str) -> list[float]:
        fields = text.split()
        if len(fields) != count:
            self.fail(f"expected {count} numbers for {what}, found {len(fields)}: {text.strip()!r}", number)
        values = []
        for field in fields:
            try:
                values.append(float(field))
            except ValueError:
                values = None
                break
        if values is None:
            self.fail(f"expected numbers for {what}: {text.strip()!r}", number)
        return values

    def labelled(self, lines: range, label: str) -> tuple[str, int]:
        """The value after ``label:`` within ``lines``."""
        for number in lines:
            text = self.line(number)
            if text.strip().lower().startswith(label.lower() + ":"):
                return text.split(":", 1)[1].strip(), number
        self.fail(f"no '{label}:' line within lines {lines.start} to {lines.stop - 1}")

    def read(self) -> NistProblem:
        _, name_match = self.find(r"^Dataset Name:\s*(\S+)", "'Dataset Name:' line")
        _, difficulty_match = self.find(r"\b(Lower|Average|Higher)\s+Level of Difficulty", "level of difficulty")
        starts_lines = self.block("Starting Values")
        certified_lines = self.block("Certified Values")
        data_lines = self.block("Data")

        parameter_names, table = self.parameters(starts_lines)
        response, variable_names = self.columns(data_lines)
        model_text, formula, transform = self.model(response, variable_names, parameter_names)

        rss_text, rss_line = self.labelled(certified_lines, "Residual Sum of Squares")
        std_text, std_line = self.labelled(certified_lines, "Residual Standard Deviation")
        dof_text, dof_line = self.labelled(certified_lines, "Degrees of Freedom")
        count_text, count_line = self.labelled(certified_lines, "Number of Observations")
        rss = self.numbers(rss_text, 1, rss_line, "the residual sum of squares")[0]
        residual_std = self.numbers(std_text, 1, std_line, "the residual standard deviation")[0]
        if not (dof_text.isdigit() and count_text.isdigit()):
            self.fail(f"expected whole numbers, found {dof_text!r} and {count_text!r}", dof_line)

        data = np.array(
            [self.numbers(self.line(n), 1 + len(variable_names), n, "a data row") for n in data_lines],
            dtype=np.float64,
        )
        if data.shape[0] != int(count_text):
            self.fail(f"{data.shape[0]} data rows, but the header says {count_text} observations", count_line)
        x = data[:, 1].copy() if len(variable_names) == 1 else data[:, 1:].T.copy()
        return NistProblem(
            name=name_match.group(1),
            difficulty=difficulty_match.group(1).capitalize(),
            model_text=model_text,
            formula=formula,
            response_transform=transform,
            parameter_names=parameter_names,
            variable_names=variable_names,
            starts=_read_only(table[:, :2].T.copy()),
            certified=_read_only(table[:, 2].copy()),
            certified_std=_read_only(table[:, 3].copy()),
            residual_sum_of_squares=rss,
            residual_std=residual_std,
            degrees_of_freedom=int(dof_text),
            x=_read_only(x),
            y=_read_only(data[:, 0].copy()),
        )

    def parameters(self, lines: range) -> tuple[tuple[str, ...], np.ndarray]:
        """Lines ``b1 = start1 start2 certified std``: the names and an ``(n, 4)`` table."""
        names, rows = [], []
        for number in lines:
            match = re.match(r"^\s*([A-Za-z]\w*)\s*=(.*)$", self.line(number))
            if not match:
                self.fail(f"expected 'name = start1 start2 certified std', found {self.line(number).strip()!r}", number)
            names.append(match.group(1))
            rows.append(self.numbers(match.group(2), 4, number, f"parameter {match.group(1)}"))
        if len(set(names)) != len(names):
            self.fail(f"repeated parameter names {names}", lines.start)
        return tuple(names), np.array(rows, dtype=np.float64)

    def columns(self, data_lines: range) -> tuple[str, tuple[str, ...]]:
        """The column header just above the data, ``Data:  y  x`` (response first)."""
        number = data_lines.start - 1
        while number > 1 and not self.line(number).strip():
            number -= 1
        match = re.match(r"^Data:\s+(\w+)((?:\s+\w+)+)\s*$", self.line(number))
        if not match:
            self.fail(f"expected the column header 'Data:  y  x' above the data, found {self.line(number)!r}", number)
        return match.group(1), tuple(match.group(2).split())

    def model(
        self, response: str, variable_names: tuple[str, ...], parameter_names: tuple[str, ...]
    ) -> tuple[str, Formula, str | None]:
        """The model block: ``Model:``, ``n Parameters (...)``, optional ``pi = ...``, the equation."""
        start, _ = self.find(r"^Model:", "'Model:' block")
        end, _ = self.find(r"^\s*Starting values\s*Certified values", "'Starting values' column header")
        equation: list[str] = []
        first_line = count = None
        for number in range(start + 1, end):
            text = self.line(number).strip()
            if not text:
                if equation:
                    break  # the equation ends at the first blank line after it
                continue
            count_match = re.match(r"^(\d+)\s+Parameters?\b", text)
            if count_match and not equation:
                count = int(count_match.group(1))
                continue
            definition = re.match(r"^([A-Za-z]\w*)\s*=\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[Ee][-+]?\d+)?)$", text)
            if definition and not equation:
                self.constant(definition.group(1), float(definition.group(2)), number)
                continue
            first_line = number if first_line is None else first_line
            equation.append(text)
        if not equation:
            self.fail("no model equation in the 'Model:' block", start)
        if count != len(parameter_names):
            self.fail(f"the 'Model:' block announces {count} parameters, the file has {len(parameter_names)}", start)
        model_text = " ".join(equation)
        lhs, equals, rhs = model_text.partition("=")
        lhs = re.sub(r"\s+", "", lhs)
        transforms = {key.replace("y", response): value for key, value in _RESPONSE_TRANSFORMS.items()}
        if not equals or lhs not in transforms:
            self.fail(f"expected the equation to start with '{response} =' or 'log[{response}] ='", first_line)
        rhs = re.sub(r"\+\s*e\s*$", "", rhs.strip())  # NIST's error term
        try:
            formula = parse_formula(rhs, variables=variable_names, parameters=parameter_names)
        except FormulaError as exc:
            self.fail(f"model {rhs.strip()!r}: {exc}", first_line)
        unused = [name for name in parameter_names if name not in formula.parameters]
        if unused:
            self.fail(f"parameters {unused} do not appear in the model", first_line)
        return model_text, formula, transforms[lhs]

    def constant(self, name: str, value: float, number: int) -> None:
        """A definition such as Roszman1's ``pi = 3.14159...``: must agree with our constant."""
        if name not in CONSTANTS:
            self.fail(f"the model defines {name!r}; only {sorted(CONSTANTS)} are known constants", number)
        if not math.isclose(value, CONSTANTS[name], rel_tol=1e-15):
            self.fail(f"the model defines {name} = {value!r}, which differs from {CONSTANTS[name]!r}", number)


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array
