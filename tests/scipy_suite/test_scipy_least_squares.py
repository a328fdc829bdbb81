"""SciPy's ``test_least_squares.py`` (from the installed SciPy) run against
``marquardt.least_squares``.

marquardt has one method, Levenberg-Marquardt, spelt ``method='lm'`` as in SciPy. SciPy's
``TestLM`` runs as is. SciPy's bounds and robust-loss tests (``BoundsMixin``,
``LossFunctionMixin``), written for its ``trf`` and ``dogbox`` methods, run against our LM,
which supports both. ``SparseMixin`` does not run: sparse Jacobians and ``LinearOperator``
are refused, as by SciPy's ``lm`` (``TestLM`` checks that refusal). Module-level tests that
call ``method='trf'`` or ``'dogbox'`` by name (``test_callback``, ``test_gh_19103``) do not
run: those methods are refused with a ValueError that says why.

``DIFFERENCES`` lists the deliberate differences with their reasons; each is a strict xfail
(``conftest.py``). Two that the Nielsen default had are gone with the trust radius
(``damping='trust-region'``, the default since issue #14): ``TestBoundsWithLM::test_bounds_shape``
(x == 0 exactly on a linear problem: the Gauss-Newton step, λ = λ_min, lands on it; Nielsen's
damped steps ended at |x| ~ 1e-31) and ``TestLM::test_nfev_options`` (x² + 5 within max_nfev=20
calls: Nielsen's λ converged linearly, at |x| = 1.6e-4 after 20).
"""

from __future__ import annotations

import marquardt
from _scipy_tests import load

scipy_tests = load("test_least_squares", least_squares=marquardt.least_squares)

_FLAT = ("x² + 5 is flat to rounding near its minimum (5x² < ε·12.5 for |x| < 1e-8), so LM "
         "stops within ~1e-8 of x = 0 (SciPy's lm: 3e-10); SciPy's trf reaches 0 exactly "
         "because its first trust-region step, of radius |x0|, lands on it")

DIFFERENCES = {
    # What SciPy's MINPACK wrapper cannot do and marquardt's LM can:
    "TestLM::test_bounds_not_supported": "marquardt's LM accepts bounds (projected steps).",
    "TestLM::test_loss": "marquardt's LM accepts robust losses (Triggs' rescaling, as trf).",
    "test_small_tolerances_for_lm": "a tolerance may be None (0) to disable its test, as in "
                                    "SciPy's trf; MINPACK needs all three >= eps.",
    "TestLM::test_m_less_n_not_supported": "marquardt's LM solves fewer residuals than "
                                           "parameters (here one, a scalar as SciPy allows, "
                                           "in two unknowns); MINPACK refuses m < n.",
    "TestLM::test_rosenbrock_cropped": "the same function as test_m_less_n_not_supported: "
                                       "m < n is solved, not refused.",
    "TestLM::test_full_result": "njev counts Jacobian evaluations for lm too (SciPy's MINPACK "
                                "wrapper reports None).",
    # SciPy's default method (trf) landing exactly on a flat minimum:
    "TestLM::test_x_scale_options": "asserts x == 0 exactly at SciPy's default method: " + _FLAT,
    "test_basic": "asserts |x| <= 1e-10 at SciPy's default method: " + _FLAT,
    "TestLossesWithLM::test_options": "asserts |x| <= 1e-15 for every loss: " + _FLAT,
    "test_gh_18793_and_19351": "asserts status 1 by SciPy trf's scaled gradient test; LM "
                               "(differences relative to x0 = 1.1e-12) ends by xtol (status "
                               "3) at x = 1.003e-12, beside the answer 1e-12, where the "
                               "gradient is 6e-44 but MINPACK's cosine test is not met",
}


class TestLM(scipy_tests.TestLM):
    """SciPy's tests of ``method='lm'``."""


class TestBoundsWithLM(scipy_tests.BoundsMixin):
    """SciPy's bounds tests (written for trf/dogbox) against marquardt's bounded LM."""

    method = "lm"


class TestLossesWithLM(scipy_tests.LossFunctionMixin):
    """SciPy's robust-loss tests (written for trf/dogbox) against marquardt's LM."""

    method = "lm"


test_basic = scipy_tests.test_basic
test_small_tolerances_for_lm = scipy_tests.test_small_tolerances_for_lm
test_fp32_gh12991 = scipy_tests.test_fp32_gh12991
test_gh_18793_and_19351 = scipy_tests.test_gh_18793_and_19351
