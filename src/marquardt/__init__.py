"""marquardt: Levenberg-Marquardt for TensorFlow and Keras 3, done right.

Public API:

* ``least_squares``, ``curve_fit`` — SciPy-compatible nonlinear least squares with exact
  autodiff Jacobians, in float64, compiled to one TensorFlow loop.
* ``Status``, ``OptimizeResult``, ``IterationSummary`` — results and progress records.
* ``Nielsen``, ``TrainLM`` — damping policies; ``standard_errors``, ``correlation_matrix``.
* ``marquardt.keras`` — LM training inside Keras' ``fit``; ``marquardt.scipy`` — the SciPy
  bridge (SciPy is imported only there); ``marquardt.nist`` — NIST StRD reader.
"""

from __future__ import annotations

import importlib.util as _util

if _util.find_spec("tensorflow") is None:  # pragma: no cover - depends on the environment
    raise ImportError(
        "marquardt needs TensorFlow, which is not installed. Install it with one of:\n"
        "    pip install 'marquardt[cpu]'         # tensorflow-cpu\n"
        "    pip install 'marquardt[tensorflow]'  # the full tensorflow build\n"
        "or keep the TensorFlow you already have (GPU, conda or source builds all work)."
    )

from marquardt._covariance import correlation_matrix, standard_errors  # noqa: E402
from marquardt._curve_fit import curve_fit  # noqa: E402
from marquardt._damping import Nielsen, TrainLM  # noqa: E402
from marquardt._least_squares import least_squares  # noqa: E402
from marquardt._result import OptimizeResult  # noqa: E402
from marquardt._status import Status  # noqa: E402
from marquardt._summary import IterationSummary  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "least_squares",
    "curve_fit",
    "Status",
    "OptimizeResult",
    "IterationSummary",
    "Nielsen",
    "TrainLM",
    "standard_errors",
    "correlation_matrix",
    "__version__",
]
