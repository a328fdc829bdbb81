"""SciPy's ``TestCurveFit`` (``test_minpack.py``, from the installed SciPy) run against
``marquardt.curve_fit``.

Many of SciPy's tests loop over its three methods (``'lm'``, ``'trf'``, ``'dogbox'``).
marquardt refuses ``'trf'`` and ``'dogbox'`` with a ValueError that says why
(``tests/test_curve_fit.py`` checks it); so that those tests still check everything else, the
``curve_fit`` bound into SciPy's module runs marquardt's LM where they name one of them.

``DIFFERENCES`` lists the deliberate differences with their reasons; each is a strict xfail
(``conftest.py``).
"""

from __future__ import annotations

import marquardt
from _scipy_tests import load

SCIPY_ONLY_METHODS = ("trf", "dogbox")


def curve_fit(*args, **kwargs):
    """``marquardt.curve_fit``, with SciPy's trust-region method names read as LM."""
    if kwargs.get("method") in SCIPY_ONLY_METHODS:
        kwargs["method"] = None
    return marquardt.curve_fit(*args, **kwargs)


scipy_tests = load("test_minpack", curve_fit=curve_fit)

DIFFERENCES = {
    "TestCurveFit::test_bounds": "marquardt's LM takes bounds: method='lm' with bounds is not "
                                 "refused (SciPy's lm raises ValueError).",
    "TestCurveFit::test_gh4555b": "the reference covariance was recorded at SciPy's default "
                                  "tolerances (1.5e-8) and is 1.6e-6 from the converged one; "
                                  "marquardt's agrees with SciPy's at ftol=xtol=gtol=1e-15 "
                                  "to 1e-7, the test asks 2e-7 of the unconverged value",
}


class TestCurveFit(scipy_tests.TestCurveFit):
    """SciPy's tests of ``curve_fit``."""
