"""Parsers for option values, used as ``argparse`` ``type=`` functions.

Each raises ``argparse.ArgumentTypeError`` with a one-line message, which ``argparse`` reports as
``argument --p0: ...`` and ``marquardt.cli.main`` turns into a usage error (exit status 2).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from marquardt.cli._errors import CliError

__all__ = [
    "name_values",
    "name_intervals",
    "fractions",
    "positive_int",
    "seed",
    "positive_float",
    "non_negative_float",
    "layer_sizes",
    "column_list",
    "make_report_directory",
]

_INFINITIES = {"inf": math.inf, "+inf": math.inf, "-inf": -math.inf, "infinity": math.inf,
               "+infinity": math.inf, "-infinity": -math.inf}


def _float(text: str, what: str, *, allow_inf: bool = False) -> float:
    text = text.strip()
    if allow_inf and text.lower() in _INFINITIES:
        return _INFINITIES[text.lower()]
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what}: {text!r} is not a number") from None
    if allow_inf and math.isnan(value):  # a bound may be infinite, never NaN
        raise argparse.ArgumentTypeError(f"{what}: {text!r} is not a number (for no bound, "
                                         "leave that end empty or write inf)")
    if not math.isfinite(value) and not allow_inf:
        raise argparse.ArgumentTypeError(f"{what}: {text!r} is not a finite number")
    return value


def _pairs(text: str, example: str) -> list[tuple[str, str]]:
    """``a=1, b=2`` as [(name, value text)], names checked to be identifiers and not repeated."""
    pairs = []
    for item in text.split(","):
        name, equals, value = item.partition("=")
        name = name.strip()
        if not equals or not name:
            raise argparse.ArgumentTypeError(f"expected NAME=VALUE items separated by commas, like {example!r}; "
                                             f"found {item.strip()!r}")
        if not (name.isascii() and name.isidentifier()):
            raise argparse.ArgumentTypeError(f"{name!r} is not a valid parameter name")
        if name in dict(pairs):
            raise argparse.ArgumentTypeError(f"parameter {name!r} is given twice")
        pairs.append((name, value))
    return pairs


def name_values(text: str) -> dict[str, float]:
    """``a=1,b=0.1,c=0`` as ``{"a": 1.0, "b": 0.1, "c": 0.0}`` (finite numbers)."""
    return {name: _float(value, name) for name, value in _pairs(text, "a=1,b=0.1")}


def name_intervals(text: str) -> dict[str, tuple[float, float]]:
    """``b=0:inf,a=-1:1`` as ``{"b": (0, inf), "a": (-1, 1)}``; an empty end means unbounded."""
    out = {}
    for name, value in _pairs(text, "b=0:inf,a=-1:1"):
        low, colon, high = value.partition(":")
        if not colon:
            raise argparse.ArgumentTypeError(f"{name}: expected LOW:HIGH, like 0:inf; found {value.strip()!r}")
        lo = -math.inf if not low.strip() else _float(low, name, allow_inf=True)
        hi = math.inf if not high.strip() else _float(high, name, allow_inf=True)
        if not lo < hi:
            raise argparse.ArgumentTypeError(f"{name}: the lower bound {lo:g} must be below the upper bound {hi:g}")
        out[name] = (lo, hi)
    return out


def fractions(text: str) -> tuple[float, float, float]:
    """``0.7,0.15,0.15`` (train, validation, test) as fractions that sum to 1."""
    parts = text.split(",")
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(
            f"expected three fractions TRAIN,VAL,TEST like 0.7,0.15,0.15; found {text!r}")
    values = tuple(_float(part, "split") for part in parts)
    if any(v < 0 for v in values) or values[0] <= 0:
        raise argparse.ArgumentTypeError(f"the fractions must be >= 0, the training one > 0; found {text!r}")
    if not math.isclose(sum(values), 1.0, abs_tol=1e-6):
        raise argparse.ArgumentTypeError(f"the fractions must sum to 1; {text!r} sums to {sum(values):g}")
    return values  # type: ignore[return-value]


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1; found {value}")
    return value


def seed(text: str) -> int:
    """A random seed: a whole number from 0 to 2**32 - 1 (what NumPy's and Keras' seeding take)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"must be a whole number from 0 to 2**32 - 1; found {value}")
    return value


def positive_float(text: str) -> float:
    value = _float(text, "value")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0; found {text!r}")
    return value


def non_negative_float(text: str) -> float:
    value = _float(text, "value")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0; found {text!r}")
    return value


def layer_sizes(text: str) -> tuple[int, ...]:
    """``20,20`` as ``(20, 20)``; ``0`` or an empty text means no hidden layer (a linear model)."""
    if text.strip() in ("", "0"):
        return ()
    sizes = []
    for part in text.split(","):
        try:
            size = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected layer sizes like 20,20; found {text!r}") from None
        if not 1 <= size <= 10_000:
            raise argparse.ArgumentTypeError(f"a layer size must be between 1 and 10000; found {size}")
        sizes.append(size)
    return tuple(sizes)


def column_list(text: str) -> tuple[str, ...]:
    """``a,b,c`` as column names (stripped, not empty, not repeated)."""
    names = tuple(part.strip() for part in text.split(","))
    if any(not name for name in names):
        raise argparse.ArgumentTypeError(f"expected column names separated by commas; found {text!r}")
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"a column is named twice in {text!r}")
    return names


def make_report_directory(directory: Path) -> None:
    """Creates ``--report DIR`` (and its parents) before any work, so that a path that cannot
    be a directory is reported at once and in words, naming the option, instead of as Python's
    ``[Errno 17] File exists`` after the fit or the training.

    Raises:
        CliError: DIR exists and is not a directory, or cannot be created (exit status 1).
    """
    if directory.exists() and not directory.is_dir():
        raise CliError(f"--report {directory}: exists and is not a directory; name a directory "
                       "(it is created if missing)")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"--report {directory}: cannot create the directory "
                       f"({exc.strerror or exc})") from None
