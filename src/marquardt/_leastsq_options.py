"""SciPy ``curve_fit``'s method and ``leastsq``'s option names, read as marquardt's options.

SciPy's ``curve_fit`` (method ``'lm'``) hands its ``**kwargs`` to ``leastsq``: ``maxfev``,
``epsfcn``, ``diag``, ``factor`` and ``col_deriv`` name what marquardt's ``least_squares``
calls ``max_nfev``, ``diff_step``, ``x_scale``, the trust region's initial radius factor and a
transposed callable ``jac``. ``curve_fit`` and ``curve_fit_batch`` both read them here.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from marquardt import _checks

__all__ = ["LEASTSQ_OPTIONS", "check_lm_method", "leastsq_names", "transposed"]

#: leastsq's options ``curve_fit`` takes in ``**kwargs`` (and ``col_deriv``, its own).
LEASTSQ_OPTIONS = ("maxfev", "epsfcn", "diag", "factor")


def check_lm_method(method) -> None:
    """SciPy's ``method``: None or 'lm'; 'trf' and 'dogbox' are refused with the reason."""
    if method in ("trf", "dogbox"):
        raise ValueError(
            f"`method` must be None or 'lm': marquardt fits with Levenberg-Marquardt, which "
            f"takes `bounds` and robust `loss` itself (what SciPy's {method!r} is chosen for); "
            f"leave `method` out, or call scipy.optimize.curve_fit for SciPy's trust-region "
            f"methods. Received: method={method!r}")
    if method not in (None, "lm"):
        raise ValueError(f"`method` must be None or 'lm'. Received: method={method!r}")


def leastsq_names(kwargs: dict, who: str = "curve_fit") -> dict:
    """``kwargs`` with SciPy's ``leastsq`` names (``maxfev``, ``epsfcn``, ``diag``,
    ``factor``) as ours (``max_nfev``, ``diff_step`` = √epsfcn, ``x_scale`` = 1/diag;
    ``maxfev=0``, leastsq's default, is ours; ``factor``, MINPACK's initial trust radius
    relative to ‖D x₀‖ (its default 100), is the trust-region policy's own: ``damping =
    TrustRegion(factor=factor)``, whose default is 1, as in SciPy's ``trf``)."""
    kwargs = dict(kwargs)
    if "factor" in kwargs:
        kwargs["damping"] = _with_factor(kwargs.pop("factor"), kwargs.get("damping"), who)
    renames = {"maxfev": "max_nfev", "epsfcn": "diff_step", "diag": "x_scale"}
    for old, new in renames.items():
        if old in kwargs:
            if new in kwargs:
                raise TypeError(f"{who}() got both `{old}` and `{new}`, two names for one "
                                f"option. Received: {old}={kwargs[old]!r}, {new}={kwargs[new]!r}")
            value = kwargs.pop(old)
            if old == "maxfev" and isinstance(value, (int, np.integer)) and value == 0:
                value = None  # leastsq's default, maxfev=0: "use the default"
            if old == "epsfcn" and value is not None:
                value = float(np.sqrt(_checks.check_positive(value, "epsfcn")))
            if old == "diag" and value is not None:
                value = 1.0 / np.asarray(value, dtype=np.float64)
            kwargs[new] = value
    return kwargs


def _with_factor(factor, damping, who: str):
    """The trust-region policy with MINPACK's ``factor`` (``leastsq_names``)."""
    import dataclasses

    from marquardt._damping import TrustRegion, get_damping
    policy = get_damping("trust-region" if damping is None else damping)
    if not isinstance(policy, TrustRegion):
        raise ValueError(f"{who}(): `factor` (leastsq's initial trust radius) sets the "
                         "trust-region policy's; the damping given has none. Received: "
                         f"factor={factor!r}, damping={damping!r}")
    return dataclasses.replace(policy, factor=_checks.check_positive(factor, "factor"))


def transposed(jac: Callable) -> Callable:
    """``jac`` giving (n, m), as leastsq's ``col_deriv=True`` reads it, as one giving
    (m, n)."""
    def rows(x, *p):
        return np.transpose(np.asarray(jac(x, *p)))
    return rows
