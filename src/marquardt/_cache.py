"""A bounded, thread-safe cache of compiled functions, one per backend executor.

Compiled solves are keyed by (function, options, shapes); building one traces and compiles
(seconds), so the executors keep the most recently used ``size`` of them and drop the least
recently used first. A key that is None or unhashable is never cached: the function is built
anew each time.

Each build is noted by ``marquardt._recompile`` (the ``RecompileWarning`` for a function
defined inside a loop).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Hashable, Iterator

from marquardt._recompile import note_compiled

__all__ = ["CompiledCache"]


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
