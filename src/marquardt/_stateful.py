"""Whether a Python function may keep what it is given beyond its call.

``marquardt._model_capture`` calls a model once on symbolic values to record its formula; a
model that stores its arguments somewhere that outlives the call would keep those symbols,
and its next real call could meet them (a memo of its last parameters, compared with the new
ones: SciPy's gh-13670 test model). Such models are not called symbolically. The answer is
read from the function's own bytecode, never by running it.
"""

from __future__ import annotations

import dis
import functools
import types
from typing import Any, Callable

__all__ = ["keeps_state"]

#: Operations that write outside the call's own frame (or into any container or object).
_STATE_WRITES = frozenset({"STORE_GLOBAL", "DELETE_GLOBAL", "STORE_ATTR", "DELETE_ATTR",
                           "STORE_SUBSCR", "DELETE_SUBSCR"})


def keeps_state(f: Callable[..., Any]) -> bool:
    """Whether ``f``'s own code (and the functions and lambdas defined in it) may store what
    it is given somewhere that outlives the call: a global, a ``nonlocal`` of an enclosing
    function, an attribute (``self.last = p``) or an item (``cache[key] = value``). The
    symbolic call would leave symbolic objects there, and the model's next real call could
    meet them (a memo compared with its parameters: SciPy's gh-13670 test); such models are
    not captured. Functions ``f`` calls are not inspected (a helper that memoises is caught
    only where it fails the capture's check), nor callables that are not Python code."""
    while isinstance(f, functools.partial):
        f = f.func
    if isinstance(f, types.MethodType):
        f = f.__func__
    elif not isinstance(f, types.FunctionType):
        call = getattr(type(f), "__call__", None)
        if not isinstance(call, types.FunctionType):
            return False
        f = call
    codes = [f.__code__]
    while codes:
        code = codes.pop()
        for op in dis.get_instructions(code):
            if op.opname in _STATE_WRITES or (op.opname in ("STORE_DEREF", "DELETE_DEREF")
                                              and op.argval in code.co_freevars):
                return True
        codes.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    return False
