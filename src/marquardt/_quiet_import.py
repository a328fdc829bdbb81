"""TensorFlow's import without the two notices that ``TF_CPP_MIN_LOG_LEVEL`` cannot hide.

On CPUs where TensorFlow turns oneDNN on by default (AVX-512 with VNNI or BF16, AMX: recent
Xeon and EPYC machines), ``import tensorflow`` writes, once per shared library and before absl's
logging has read ``TF_CPP_MIN_LOG_LEVEL``::

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 ... port.cc:153] oneDNN custom operations are on. You may see slightly different ...

(twice in one import of TensorFlow 2.21). ``marquardt`` sets ``TF_CPP_MIN_LOG_LEVEL=2`` to keep
TensorFlow's start-up log off the user's stderr (``marquardt/__init__.py``), so the import it
causes runs with the process's file descriptor 2 pointed at a temporary file; afterwards every
line written there goes back to stderr except those two notices. Nothing else is dropped: a
warning or error printed during the import reaches stderr in its order, after the import.

Only a first import of ``tensorflow`` is wrapped, only while the log level is 1 or more, and only
when marquardt (or code run after ``import marquardt``) causes it: a ``MetaPathFinder`` placed
first on ``sys.meta_path`` takes the ``tensorflow`` spec from the other finders, wraps its
loader's ``exec_module`` and removes itself once TensorFlow's package runs. ``TF_CPP_MIN_LOG_LEVEL=0`` shows the notices again,
as it shows the rest of the log; ``TF_ENABLE_ONEDNN_OPTS=0`` turns oneDNN (and its notice) off.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec

#: The lines dropped: absl's "before InitializeLog" warning and TensorFlow's oneDNN notice.
NOTICES = re.compile(r"^WARNING: All log messages before absl::InitializeLog\(\) is called"
                     r"|^I\d{4} [\d:. ]+\d+ port\.cc:\d+\] oneDNN custom operations are on")

_T = TypeVar("_T")


def full_log_asked() -> bool:
    """Whether ``TF_CPP_MIN_LOG_LEVEL`` is 0: the user asked for TensorFlow's whole C++ log
    (marquardt sets 2 when imported first, JAX's import sets 1 unless set: so 0 is a choice).
    Otherwise marquardt may drop the lines its own compiled functions cause
    (``_backend/tensorflow/quiet_log.first_run``)."""
    return os.environ.get("TF_CPP_MIN_LOG_LEVEL", "").strip() == "0"


def _log_level() -> int:
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


def without_notices(call: Callable[[], _T], notices: re.Pattern = NOTICES) -> _T:
    """``call()`` with file descriptor 2 captured; the captured lines, less ``notices``, are
    written back to stderr afterwards (also when ``call`` raises). Also used for the first run
    of marquardt's compiled functions (``_backend/tensorflow/quiet_log.first_run``)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable descriptor 2 (some embedders)
        return call()
    import tempfile  # here: its import (random, shutil) would cost every `import marquardt`

    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            return call()
        finally:
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", errors="replace")
            kept = [line for line in text.splitlines(keepends=True) if not notices.search(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


class _QuietTensorFlowFinder:  # a MetaPathFinder (the ABC's import costs every `import marquardt` 13 ms)
    """Finds ``tensorflow`` through the other finders and wraps its loader (see module doc)."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if fullname != "tensorflow":
            return None
        if "tensorflow" in sys.modules or _log_level() < 1:
            remove()
            return None
        # the spec the other finders give (``importlib.util.find_spec`` also lands here, and
        # must not use the finder up: it stays until TensorFlow has been executed)
        for finder in list(sys.meta_path):
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec = find(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        exec_module = loader.exec_module

        def quiet_exec_module(module: ModuleType) -> None:
            remove()
            without_notices(lambda: exec_module(module))

        loader.exec_module = quiet_exec_module  # type: ignore[method-assign]
        return spec


_FINDER = _QuietTensorFlowFinder()


def install() -> None:
    """Wraps the next first import of ``tensorflow`` (nothing if it is imported already)."""
    if "tensorflow" not in sys.modules and _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


def remove() -> None:
    if _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)
