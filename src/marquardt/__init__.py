"""marquardt: Levenberg-Marquardt for TensorFlow and Keras 3, done right.

Public API:

* ``least_squares``, ``curve_fit`` — SciPy-compatible nonlinear least squares in float64:
  NumPy models as in SciPy, TensorFlow models with exact autodiff Jacobians;
  ``curve_fit_batch`` — many independent fits of one model as one batched solve.
* ``Status``, ``OptimizeResult``, ``IterationSummary`` — results and progress records.
* ``Nielsen``, ``TrainLM``, ``TrustRegion`` — damping policies; ``standard_errors``, ``correlation_matrix``.
* ``RecompileWarning`` — many new functions of the same code compiled (one defined in a loop).
* ``marquardt.keras`` — LM training inside Keras' ``fit``; ``marquardt.scipy`` — the SciPy
  bridge (SciPy is imported only there); ``marquardt.nist`` — NIST StRD reader.

The public names are imported on first use (PEP 562 ``__getattr__``), so ``import marquardt``
does not import TensorFlow until a name that needs it is used. ``least_squares`` and
``curve_fit`` with a model written in NumPy never import it (TensorFlow need not even be
installed), nor does ``curve_fit_batch`` with a NumPy model; a model written with TensorFlow
ops, ``marquardt.keras`` and ``marquardt.scipy`` do. This keeps ``marquardt --help`` fast, and lets the command line
quieten TensorFlow's start-up logging before it is imported.

Imported before TensorFlow, ``marquardt`` sets ``TF_CPP_MIN_LOG_LEVEL=2`` unless the user has set it:
TensorFlow's C++ log (the absl and CPU-feature start-up banners, and one "Cholesky decomposition was
not successful" warning per rejected factorisation, which the LM step notices, handles and
counts in the Keras logs' ``cholesky_failures``) then stays off stderr. ``TF_CPP_MIN_LOG_LEVEL=0``
shows it again. TensorFlow reads the variable once, when it is imported: imported after
TensorFlow, ``marquardt`` changes nothing (docs/keras.md, "Quiet output and failed
factorisations"). Two start-up lines escape that setting on CPUs where TensorFlow turns oneDNN on
by default (absl's "before InitializeLog" warning and the "oneDNN custom operations are on"
notice): the first import of TensorFlow after ``import marquardt`` drops exactly those two
(``marquardt/_quiet_import.py``; ``TF_ENABLE_ONEDNN_OPTS=0`` turns oneDNN and its notice off).
"""

from __future__ import annotations

import importlib as _importlib
import os as _os
import sys as _sys
from typing import TYPE_CHECKING

if "tensorflow" not in _sys.modules:
    _os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from marquardt import _quiet_import

    _quiet_import.install()

__version__ = "0.1.0"

# Public name -> the private module that defines it.
_LAZY = {
    "least_squares": "marquardt._least_squares",
    "curve_fit": "marquardt._curve_fit",
    "curve_fit_batch": "marquardt._batch",
    "Status": "marquardt._status",
    "OptimizeResult": "marquardt._result",
    "IterationSummary": "marquardt._summary",
    "Nielsen": "marquardt._damping",
    "TrainLM": "marquardt._damping",
    "TrustRegion": "marquardt._damping",
    "standard_errors": "marquardt._covariance",
    "correlation_matrix": "marquardt._covariance",
    "RecompileWarning": "marquardt._errors",
}

#: Subpackages reachable as attributes (``marquardt.keras`` after a plain ``import marquardt``).
_SUBMODULES = ("keras", "scipy", "nist", "cli")

__all__ = [*_LAZY, "__version__"]

if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from marquardt._covariance import correlation_matrix, standard_errors
    from marquardt._batch import curve_fit_batch
    from marquardt._curve_fit import curve_fit
    from marquardt._damping import Nielsen, TrainLM, TrustRegion
    from marquardt._errors import RecompileWarning
    from marquardt._least_squares import least_squares
    from marquardt._result import OptimizeResult
    from marquardt._status import Status
    from marquardt._summary import IterationSummary


def __getattr__(name: str) -> object:
    if name in _SUBMODULES:
        return _importlib.import_module(f"marquardt.{name}")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'marquardt' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*__all__, *(k for k in globals() if k.startswith("__"))})
