"""The command line's one error type.

Every problem the user can fix (a missing file or column, a bad option value, data that cannot be
fitted) is raised as :class:`CliError` and printed by ``marquardt.cli.main`` as one line,
``marquardt: error: ...``, with the exit status the error carries: 2 for a usage error (what
``argparse`` itself uses), 1 for a data or fit error.
"""

from __future__ import annotations

__all__ = ["CliError", "UsageError", "EXIT_DATA", "EXIT_USAGE"]

EXIT_DATA = 1
"""Exit status of a data or fit error, and of a fit that did not converge."""
EXIT_USAGE = 2
"""Exit status of a usage error, as ``argparse`` uses."""


class CliError(Exception):
    """A problem to report in one line, without a traceback.

    Args:
        message: What is wrong, and where possible how to fix it.
        exit_code: The process exit status (``EXIT_DATA`` unless given).
    """

    def __init__(self, message: str, exit_code: int = EXIT_DATA):
        super().__init__(message)
        self.exit_code = exit_code


class UsageError(CliError):
    """A command line that cannot be parsed: an unknown option, a missing or malformed value."""

    def __init__(self, message: str):
        super().__init__(message, EXIT_USAGE)
