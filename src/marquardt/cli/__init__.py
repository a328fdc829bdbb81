"""The ``marquardt`` command line: ``demo``, ``train``, ``fit`` and ``nist``.

``main(argv)`` parses the arguments with :mod:`argparse` and runs one subcommand. Every error the
user can act on (a missing file or column, a bad value, a formula outside the whitelist, data that
cannot be fitted) is printed as one line, ``marquardt: error: ...``, and turned into the exit
status: 2 for a usage error, 1 for a data or fit error, 130 when interrupted (a reader that closes
the pipe, ``marquardt nist | head``, ends the command quietly, status 0). No traceback is printed unless ``--debug``
is given. Heavy imports (TensorFlow, Keras, matplotlib) happen inside the subcommands, after
TensorFlow's start-up logging has been quietened, so ``--help`` and usage errors are fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn, Sequence

from marquardt._formula import FormulaError
from marquardt.cli import _demo, _fit, _nist, _train
from marquardt.cli._errors import EXIT_DATA, EXIT_INTERRUPTED, CliError, UsageError

__all__ = ["main", "build_parser", "CliError"]

_MAX_MESSAGE = 600


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are raised (one line, exit status 2), not printed with the usage."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.partition(" ")[2]  # "fit" in "marquardt fit"; empty for the main parser
        raise UsageError(f"{command + ': ' if command else ''}{message} (see '{self.prog} --help')")

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        """As argparse's, but an option no parser knows is reported by the subcommand's parser
        (argparse leaves such options to the main parser, whose message would point to
        ``marquardt --help`` instead of ``marquardt fit --help``)."""
        parsed, extra = self.parse_known_args(args, namespace)
        if extra:
            commands = getattr(self, "commands", {})
            owner = commands.get(getattr(parsed, "command", None), self)
            owner.error(f"unrecognized arguments: {' '.join(extra)}")
        return parsed


def build_parser() -> argparse.ArgumentParser:
    """The parser of the whole command line, one subparser per subcommand."""
    from marquardt import __version__

    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show Python tracebacks and TensorFlow's log messages")
    parser = _Parser(
        prog="marquardt",
        description="Levenberg-Marquardt for TensorFlow and Keras: train networks and fit formulas from data files.",
        epilog="Run 'marquardt COMMAND --help' for the options of a command. Start with 'marquardt demo'.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"marquardt {__version__}")
    subparsers = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND", required=True)
    for module in (_demo, _train, _fit, _nist):
        module.add_parser(subparsers, [common])
    parser.commands = subparsers.choices  # for parse_args' messages
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line.

    Args:
        argv: The arguments after the program name (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 on success, 1 for a data or fit error (or a fit that did not converge),
        2 for a usage error, 130 when interrupted.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except CliError as exc:
        return _report(exc, exc.exit_code)
    except SystemExit as exc:  # --help and --version print and exit through argparse
        return exc.code if isinstance(exc.code, int) else 0
    debug = getattr(args, "debug", False)
    if not debug:
        _quiet_tensorflow()
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        print("marquardt: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader stopped (``marquardt nist | head``): not an error
        _detach_stdout()
        return 0
    except CliError as exc:
        if debug:
            raise
        return _report(exc, exc.exit_code)
    except (FormulaError, ValueError, TypeError, OSError) as exc:
        # Validation errors of the library (argument, expectation, `Received: ...`), and files.
        if debug:
            raise
        return _report(exc, EXIT_DATA)
    except ImportError as exc:  # a missing dependency: its message says how to install it, one
        if debug:               # command per line, so the lines are kept
            raise
        print(f"marquardt: error: {exc}", file=sys.stderr)
        return EXIT_DATA
    except Exception as exc:  # noqa: BLE001 - the one place a command line may catch everything
        if debug:
            raise
        return _report(exc, EXIT_DATA, prefix=f"unexpected {type(exc).__name__} (run with --debug for details): ")


def _detach_stdout() -> None:
    """Points standard output at the null device, so that the interpreter's last flush does
    not meet the closed pipe again (Python's documented way for ``SIGPIPE``)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no file descriptor (a captured stream): nothing to flush
        pass


def _report(exc: BaseException, code: int, prefix: str = "") -> int:
    """Prints ``marquardt: error: ...`` on one line and returns ``code``."""
    message = " ".join(str(exc).split()) or type(exc).__name__
    if len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 3] + "..."
    print(f"marquardt: error: {prefix}{message}", file=sys.stderr)
    return code


def _quiet_tensorflow() -> None:
    """Hides TensorFlow's C++ start-up messages and Python warnings, unless the user chose a level."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if "tensorflow" in sys.modules:  # already imported (e.g. main() called from a program): leave it
        return
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"(tensorflow|keras|tf_keras)(\..*)?")


