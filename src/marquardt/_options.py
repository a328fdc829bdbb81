"""The options the single-fit and batch front doors share, with their defaults, in one record.

``least_squares`` takes them as keyword arguments with SciPy's names; ``curve_fit`` and
``curve_fit_batch`` take the same through ``**kwargs`` (SciPy's convention for ``curve_fit``).
``SolveOptions`` holds the defaults once; the ``jac`` modes are named once here too.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

__all__ = ["SolveOptions", "AUTODIFF_MODES", "DIFFERENCE_MODES", "JAC_MODES", "check_jac",
           "DEFAULT_FTOL", "DEFAULT_XTOL", "DEFAULT_GTOL", "COMPLEX_STEP"]

#: ``jac`` modes that differentiate the model by the backend's autodiff.
AUTODIFF_MODES = ("auto", "forward", "reverse")
#: ``jac`` modes by finite differences (SciPy's rules, ``marquardt._core.numdiff``).
DIFFERENCE_MODES = ("2-point", "3-point")
#: SciPy's complex step: NumPy functions only (a TensorFlow function gets exact autodiff).
COMPLEX_STEP = "cs"
JAC_MODES = AUTODIFF_MODES + DIFFERENCE_MODES + (COMPLEX_STEP,)

#: Default tolerances. SciPy uses 1e-8 for all three; with them SciPy's ``lm`` reaches a mean
#: of 6.7 correct digits on the NIST StRD problems. A relative cost change says little about
#: the parameters in ill-conditioned directions (ΔF is quadratic in Δx), so ``ftol`` is set
#: just above machine epsilon (SciPy's lower limit for ``lm``) and ``xtol``, ``gtol`` to
#: 1e-12: a few more evaluations buy the certified digits (mean LRE 9.6 over the 38 NIST
#: runs, ``tests/test_nist.py``). Ceres' defaults are 1e-6 / 1e-8 / 1e-10.
DEFAULT_FTOL = 1e-15
DEFAULT_XTOL = 1e-12
DEFAULT_GTOL = 1e-12


class SolveOptions(NamedTuple):
    """The solver options of ``least_squares``, with its defaults (meanings there)."""

    ftol: float | None = DEFAULT_FTOL
    xtol: float | None = DEFAULT_XTOL
    gtol: float | None = DEFAULT_GTOL
    x_scale: Any = "jac"
    loss: str = "linear"
    f_scale: float = 1.0
    diff_step: float | None = None
    max_nfev: int | None = None
    verbose: int = 0
    callback: Callable | None = None
    damping: Any = "nielsen"
    solver: Any = "svd"


def check_jac(jac: Any) -> None:
    """``jac`` is one of ``JAC_MODES`` or a callable, else ValueError naming it."""
    if not (callable(jac) or (isinstance(jac, str) and jac in JAC_MODES)):
        raise ValueError(f"`jac` must be one of {list(JAC_MODES)} or a callable. "
                         f"Received: jac={jac!r}")
