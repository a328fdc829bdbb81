"""SciPy's own test modules, loaded from the installed SciPy with marquardt rebound in them.

Each module is loaded afresh under a private name (SciPy's own copy is left alone), and its
``least_squares`` / ``curve_fit`` globals are replaced by marquardt's. The test functions
and mixin classes of that copy look their globals up at call time, so they exercise
marquardt. Nothing of SciPy's test text is copied into this repository.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

import pytest


def load(module: str, **rebind: object) -> ModuleType:
    """Load ``scipy.optimize.tests.<module>`` as a private module with ``rebind`` applied."""
    spec = importlib.util.find_spec(f"scipy.optimize.tests.{module}")
    if spec is None or spec.origin is None:  # a SciPy built without its tests
        pytest.skip(f"the installed SciPy ships no scipy/optimize/tests/{module}.py",
                    allow_module_level=True)
    name = f"_marquardt_scipy_suite_{module}"
    copy = importlib.util.spec_from_file_location(name, spec.origin)
    mod = importlib.util.module_from_spec(copy)
    sys.modules[name] = mod  # multiprocessing pickles functions by module name
    copy.loader.exec_module(mod)
    for key, value in rebind.items():
        setattr(mod, key, value)
    return mod
