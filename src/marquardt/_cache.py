"""A bounded, thread-safe cache of compiled functions, one per backend executor.

Compiled solves are keyed by (function, options, shapes); building one traces and compiles
(seconds), so the executors keep the most recently used ``size`` of them and drop the least
recently used first. A key that is None or unhashable is never cached: the function is built
anew each time.

The key holds the user's function object, so a function defined inside a loop (a new
``lambda`` per fit) is compiled at every fit. That is silent and slow (0.1-2 s a fit against
milliseconds), so each build notes the functions in its key by what they compute: their code,
the objects their closure cells hold and their defaults (``_signature``). When
``RECOMPILE_WARN_AFTER`` distinct function objects of one signature have been compiled, one
``RecompileWarning`` names the function (as TensorFlow warns about ``tf.function``
retracing). Functions of one code that close over different objects (a factory of models,
such as one per NIST problem) are different models, and are not counted together.
"""

from __future__ import annotations

import os
import sys
import threading
import warnings
import weakref
from collections import OrderedDict
from typing import Any, Callable, Hashable, Iterator

from marquardt._errors import RecompileWarning

__all__ = ["CompiledCache", "RECOMPILE_WARN_AFTER"]

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


class CompiledCache:
    """Least-recently-used cache of at most ``size`` compiled functions."""

    def __init__(self, size: int):
        self.size = size
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable | None, factory: Callable[[], Callable]) -> Callable:
        """The function for ``key``, built by ``factory()`` on a miss (outside the lock: a
        build may take seconds and call back into the cache)."""
        if key is None:
            return factory()
        try:
            hash(key)
        except TypeError:
            return factory()
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        fn = factory()
        note_compiled(key)
        with self._lock:
            self._items[key] = fn
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return fn

    def forget(self, key: Hashable | None) -> None:
        """Drop ``key`` (a build that failed); an unhashable or absent key is ignored."""
        with self._lock:
            try:
                self._items.pop(key, None)
            except TypeError:
                pass

    def peek(self, key: Hashable | None):
        """The entry for ``key`` if there is one (None otherwise); builds nothing."""
        with self._lock:
            try:
                return self._items.get(key)
            except TypeError:
                return None

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def keys(self) -> list:
        with self._lock:
            return list(self._items)

    def items(self) -> list:
        with self._lock:
            return list(self._items.items())

    def __getitem__(self, key: Hashable) -> Callable:
        return self._items[key]

    def __iter__(self) -> Iterator:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._items)
