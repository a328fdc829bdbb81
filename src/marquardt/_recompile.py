"""The ``RecompileWarning``: a function compiled anew as a new object at every fit.

The key holds the user's function object, so a function defined inside a loop (a new
``lambda`` per fit) is compiled at every fit. That is silent and slow (0.1-2 s a fit against
milliseconds), so each build notes the functions in its key by what they compute: their code,
the objects their closure cells hold and their defaults (``_signature``). When
``RECOMPILE_WARN_AFTER`` distinct function objects of one signature have been compiled, one
``RecompileWarning`` names the function (as TensorFlow warns about ``tf.function``
retracing). Functions of one code that close over different objects (a factory of models,
such as one per NIST problem) are different models, and are not counted together.

``CompiledCache.get`` (``marquardt._cache``) calls ``note_compiled`` after each build.
"""

from __future__ import annotations

import os
import sys
import threading
import warnings
import weakref
from typing import Any

from marquardt._errors import RecompileWarning

__all__ = ["note_compiled", "RECOMPILE_WARN_AFTER"]

#: Distinct function objects of one code compiled before ``RecompileWarning`` (TensorFlow
#: warns at 5 retracings of a ``tf.function`` in its recent calls).
RECOMPILE_WARN_AFTER = 5

_seen: dict[Any, weakref.WeakSet] = {}  # signature -> the function objects compiled
_warned: set = set()
_seen_lock = threading.Lock()


def _functions(key, depth: int = 3) -> list:
    """The Python functions in ``key`` (tuples searched ``depth`` levels deep)."""
    if getattr(key, "__code__", None) is not None:
        return [key]
    if depth and isinstance(key, tuple):
        return [f for item in key for f in _functions(item, depth - 1)]
    return []


_PACKAGE = os.path.dirname(os.path.abspath(__file__))


def _user_stacklevel() -> int:
    """The ``stacklevel`` of the first frame outside marquardt (the user's call)."""
    level, frame = 1, sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        level, frame = level + 1, frame.f_back
    return level


def _same(value) -> Any:
    """A value's stand-in in a signature: plain scalars and strings by value, anything else
    by identity (two closures over equal arrays that are distinct objects count apart)."""
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes)):
        return (type(value), value)
    return ("id", id(value))


def _signature(fn) -> tuple:
    """What a function computes, short of its identity: code, closure contents, defaults."""
    cells = []
    for cell in fn.__closure__ or ():
        try:
            cells.append(_same(cell.cell_contents))
        except ValueError:  # an empty cell
            cells.append(("empty",))
    defaults = tuple(_same(v) for v in (getattr(fn, "__defaults__", None) or ()))
    return (fn.__code__, tuple(cells), defaults)


def note_compiled(key) -> None:
    """Count the functions of a key just built; warn once per signature (``_signature``)
    whose distinct function objects reach ``RECOMPILE_WARN_AFTER``."""
    for fn in _functions(key):
        code = fn.__code__
        try:
            signature = _signature(fn)
        except AttributeError:
            continue
        with _seen_lock:
            if len(_seen) > 4096:  # signatures whose functions are all gone
                for stale in [k for k, v in _seen.items() if not v]:
                    del _seen[stale]
            objects = _seen.setdefault(signature, weakref.WeakSet())
            try:
                objects.add(fn)
            except TypeError:  # no weak references: not counted
                continue
            warn = len(objects) >= RECOMPILE_WARN_AFTER and signature not in _warned
            if warn:
                _warned.add(signature)
        if warn:
            where = f"{code.co_filename}:{code.co_firstlineno}"
            warnings.warn(
                f"marquardt has compiled {RECOMPILE_WARN_AFTER} different function objects "
                f"of the same code and closure ({code.co_name} at {where}): a new function object is "
                "compiled anew at every fit (0.1-2 s each), usually because it is defined "
                "inside a loop. Define it once, outside the loop, and pass what changes "
                "through least_squares' args=/kwargs= or curve_fit's xdata/ydata; a model "
                "written in NumPy is never compiled.", RecompileWarning,
                stacklevel=_user_stacklevel())
