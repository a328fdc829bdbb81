"""The command line's one error type.

Every problem the user can fix (a missing file or column, a bad option value, data that cannot be
fitted) is raised as :class:`CliError` and printed by ``marquardt.cli.main`` as one line,
``marquardt: error: ...``, with the exit status the error carries: 2 for a usage error (what
``argparse`` itself uses), 1 for a data or fit error. An interrupted command exits with 130
(128 + SIGINT, the shells' convention); ``Interruption`` notes a Ctrl-C that a trainer caught, so
that the command can finish its report and still exit with 130.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

__all__ = ["CliError", "UsageError", "Interruption", "EXIT_DATA", "EXIT_USAGE", "EXIT_INTERRUPTED"]

EXIT_DATA = 1
"""Exit status of a data or fit error, and of a fit that did not converge."""
EXIT_USAGE = 2
"""Exit status of a usage error, as ``argparse`` uses."""
EXIT_INTERRUPTED = 130
"""Exit status after Ctrl-C (SIGINT): 128 + 2, as shells report a process ended by SIGINT."""


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


def check_output_path(path: Path | None, option: str, *, directory: bool) -> None:
    """Refuses, before any work is done, an output path that cannot be written: a directory
    given for a file, a file given for a directory or standing where a directory would be made.
    (Found after training, these lost the trained model and its report, with a bare
    ``[Errno 17] File exists`` that did not name the option.)

    Raises:
        UsageError: naming ``option`` and the path.
    """
    if path is None:
        return
    try:
        _check_output_path(path, option, directory=directory)
    except OSError as exc:  # a name too long for the file system, a loop of links, ...
        raise UsageError(f"{option}: {str(path)!r} cannot be used ({exc.strerror or exc}); "
                         f"found {option} {path}") from None


def _check_output_path(path: Path, option: str, *, directory: bool) -> None:
    if directory and path.exists() and not path.is_dir():
        raise UsageError(f"{option}: {str(path)!r} is a file, not a directory; found {option} {path}")
    if not directory and path.is_dir():
        raise UsageError(f"{option}: {str(path)!r} is a directory, not a file; found {option} {path}")
    folder = path if directory else path.parent
    for ancestor in (folder, *folder.parents):
        if ancestor.exists():
            if not ancestor.is_dir():
                raise UsageError(f"{option}: {str(ancestor)!r} is a file, not a directory; "
                                 f"found {option} {path}")
            return


class Interruption:
    """A context in which SIGINT is noted before it raises ``KeyboardInterrupt`` as usual.

    ``marquardt.keras.fit`` catches the ``KeyboardInterrupt`` (it stops training and keeps the
    weights); ``occurred`` then tells the command that the user asked it to stop, so that it writes
    what it has and exits with ``EXIT_INTERRUPTED``. Outside the main thread (where Python cannot
    install a signal handler) it notes nothing.
    """

    def __init__(self):
        self.occurred = False
        self._previous = None

    def _handler(self, signum, frame):
        self.occurred = True
        raise KeyboardInterrupt

    def callback(self) -> Any:
        """A Keras callback that stops training at the end of the epoch once SIGINT was noted: a
        ``KeyboardInterrupt`` raised where something swallows it (a ``__del__``, a generator's
        ``close``) still ends the run."""
        import keras

        interruption = self

        class StopWhenInterrupted(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                if interruption.occurred:
                    self.model.stop_training = True

            on_epoch_end = on_train_batch_end

        return StopWhenInterrupted()

    def __enter__(self) -> "Interruption":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc_info) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
