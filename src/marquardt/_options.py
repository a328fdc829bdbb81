"""The options the single-fit and batch front doors share, with their defaults, in one record.

``least_squares`` takes them as keyword arguments with SciPy's names; ``curve_fit`` and
``curve_fit_batch`` take the same through ``**kwargs`` (SciPy's convention for ``curve_fit``).
``SolveOptions`` holds the defaults once; the ``jac`` modes are named once here too. The options
are checked here as SciPy checks them (None disables a tolerance, one below machine epsilon
warns, all three below it is a ValueError; ``tr_solver``, ``tr_options`` and ``jac_sparsity``
as SciPy's ``lm`` checks them, and, as there, not used; ``workers`` as SciPy reads it), and
turned into the core's ``LoopConfig`` (``loop_config``).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy as np

from marquardt import _checks
from marquardt._core.records import LoopConfig, replaced
from marquardt._damping import get_damping
from marquardt._robust import LOSSES
from marquardt._solvers import get_solver

__all__ = ["SolveOptions", "AUTODIFF_MODES", "DIFFERENCE_MODES", "JAC_MODES", "check_jac",
           "DEFAULT_FTOL", "DEFAULT_XTOL", "DEFAULT_GTOL", "COMPLEX_STEP", "EPS", "WorkerMap",
           "check_loss", "check_scipy_options", "loop_config", "with_jacobian_calls"]

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

#: Default damping policy: λ from a trust radius (``marquardt.TrustRegion``), as MINPACK's
#: ``lmder`` (SciPy's ``lm``) and SciPy's ``trf``: on ``benchmarks/mgh.py`` 41/57 hard starts
#: against 39 for Nielsen's rule, on ``benchmarks/robust.py`` SciPy trf's cost or lower on
#: 132/132 cases against 129 (issue #14). The Keras trainer keeps Nielsen's rule
#: (``marquardt.keras.LMOptions``).
DEFAULT_DAMPING = "trust-region"


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
    damping: Any = DEFAULT_DAMPING
    solver: Any = "svd"


def check_jac(jac: Any) -> None:
    """``jac`` is one of ``JAC_MODES`` or a callable, else ValueError naming it."""
    if not (callable(jac) or (isinstance(jac, str) and jac in JAC_MODES)):
        raise ValueError(f"`jac` must be one of {list(JAC_MODES)} or a callable. "
                         f"Received: jac={jac!r}")


def _tol(value, name):
    if value is None:
        return 0.0
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be a number or None. "
                        f"Received: {name}={value!r}") from None
    if not np.isfinite(v):
        raise ValueError(f"`{name}` must be a finite number or None. Received: {name}={value!r}")
    return max(v, 0.0)  # below ε (negative included) disables the test, with SciPy's warning


def _x_scale(x_scale, n: int) -> tuple[str, np.ndarray]:
    if isinstance(x_scale, str):
        if x_scale == "jac":
            return "marquardt", np.ones(n)
        raise ValueError(f"`x_scale` must be 'jac' or positive numbers. Received: x_scale={x_scale!r}")
    arr = np.asarray(x_scale, dtype=np.float64)
    if arr.ndim > 1 or (arr.ndim == 1 and arr.size != n) or not np.all(np.isfinite(arr)) \
            or np.any(arr <= 0):
        raise ValueError("`x_scale` must be 'jac', or a positive finite scalar or array of length "
                         f"n={n}. Received: x_scale={_checks.short_repr(x_scale)}")
    arr = np.broadcast_to(arr, (n,))
    if np.all(arr == 1.0):
        return "identity", np.ones(n)
    return "fixed", 1.0 / arr**2


def check_scipy_options(tr_solver, tr_options, jac_sparsity) -> None:
    """SciPy's ``tr_solver``, ``tr_options`` and ``jac_sparsity``, checked as SciPy's ``lm``
    checks them (and, as there, not used)."""
    if tr_solver not in (None, "exact", "lsmr"):
        raise ValueError("`tr_solver` must be None, 'exact' or 'lsmr'. "
                         f"Received: tr_solver={tr_solver!r}")
    if tr_options is not None and not isinstance(tr_options, dict):
        raise TypeError(f"`tr_options` must be a dict or None. Received: "
                        f"tr_options={_checks.short_repr(tr_options)}")
    if jac_sparsity is not None:
        raise ValueError("`jac_sparsity` must be None: marquardt's LM works with dense "
                         "Jacobians (as SciPy's method='lm'). Received: jac_sparsity="
                         f"{_checks.short_repr(jac_sparsity)}")


class WorkerMap:
    """Context manager: SciPy's ``workers`` as a map-like callable (None: in turn), with a
    process pool it made closed at the end."""

    def __init__(self, workers):
        if workers is not None and not callable(workers) and not (
                isinstance(workers, (int, np.integer)) and not isinstance(workers, bool)
                and (workers >= 1 or workers == -1)):
            raise ValueError("`workers` must be None, a positive int, -1 or a map-like "
                             f"callable. Received: workers={_checks.short_repr(workers)}")
        self.workers, self.pool = workers, None

    def __enter__(self):
        w = self.workers
        if w is None or (not callable(w) and w == 1):
            return None
        if callable(w):
            return w
        import multiprocessing
        self.pool = multiprocessing.Pool(None if w == -1 else int(w))
        return self.pool.map

    def __exit__(self, *exc):
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
        return False


#: Machine epsilon: SciPy's lower limit for the tolerances (``_lsq.common.EPS``).
EPS = float(np.finfo(np.float64).eps)


def _tolerances(ftol, xtol, gtol) -> tuple[float, float, float]:
    """SciPy's ``check_tolerance`` (for its default method): None means 0 (test disabled); one
    below ε, zero and negative values included, warns that it disables its test; all three
    below ε is a ValueError. SciPy's ``method='lm'`` refuses any tolerance below ε; marquardt
    keeps the default method's rule, since its LM accepts tighter tolerances."""
    tols = tuple(_tol(v, name) for v, name in ((ftol, "ftol"), (xtol, "xtol"), (gtol, "gtol")))
    for (value, name) in zip((ftol, xtol, gtol), ("ftol", "xtol", "gtol")):
        if value is not None and float(value) < EPS:
            _checks.warn_user(f"Setting `{name}` below the machine epsilon ({EPS:.2e}) "
                              "effectively disables the corresponding termination condition.",
                              UserWarning)
    if all(t < EPS for t in tols):
        raise ValueError(f"At least one of the tolerances must be higher than machine epsilon "
                         f"({EPS:.2e}). Received: ftol={ftol!r}, xtol={xtol!r}, gtol={gtol!r}")
    return tols


def check_loss(loss) -> None:
    """``loss`` is one of ``LOSSES`` or a callable (SciPy's rule), else ValueError."""
    if not (callable(loss) or (isinstance(loss, str) and loss in LOSSES)):
        raise ValueError(f"`loss` must be one of {list(LOSSES)} or a callable. "
                         f"Received: loss={_checks.short_repr(loss)}")


#: ``loop_config``'s answers for options given as plain Python values (numbers, strings, None),
#: keyed by their types and values: a warm fit with the usual options is configured by one
#: dictionary look-up instead of the checks (which a cached answer has passed without raising
#: or warning).
_CONFIGS: dict = {}
_CONFIGS_MAX = 64
_PLAIN = frozenset((float, int, bool, str, type(None)))


def _config_key(n, options: tuple):
    """The cache key of ``loop_config``'s options (their types too: ``max_nfev=True`` is
    not 1), or None where one is not a plain value or a tolerance below ε would warn (the
    warning is due at every call)."""
    types = tuple(map(type, options))
    if not _PLAIN.issuperset(types):
        return None
    for tol in options[:3]:  # ftol, xtol, gtol
        if tol is not None and (type(tol) is str or not tol >= EPS):
            return None
    return n, types, options


def loop_config(n: int, *, ftol, xtol, gtol, x_scale, loss, f_scale, diff_step, max_nfev,
                damping, solver, bounded: bool
                ) -> tuple[LoopConfig, np.ndarray | None, float | tuple[float, ...] | None]:
    """The core's ``LoopConfig`` for n parameters from ``least_squares``' options, validated
    (each bad option raises naming it); also x_scale's fixed diagonal and the checked
    ``diff_step``. ``max_nfev=None`` means max(1000, 200(n + 1)) steps' worth of calls
    (``with_jacobian_calls`` multiplies it by 1 + the calls one Jacobian costs). Options
    given as plain values are answered from ``_CONFIGS`` after their first check."""
    key = _config_key(n, (ftol, xtol, gtol, x_scale, loss, f_scale, diff_step, max_nfev,
                          damping, solver, bounded))
    if key is not None:
        cached = _CONFIGS.get(key)
        if cached is not None:
            cfg, d_fixed, diff_step = cached
            return cfg, d_fixed.copy(), diff_step
    answer = _loop_config(n, ftol=ftol, xtol=xtol, gtol=gtol, x_scale=x_scale, loss=loss,
                          f_scale=f_scale, diff_step=diff_step, max_nfev=max_nfev,
                          damping=damping, solver=solver, bounded=bounded)
    if key is not None:
        if len(_CONFIGS) >= _CONFIGS_MAX:
            _CONFIGS.clear()
        cfg, d_fixed, diff_step = answer
        _CONFIGS[key] = (cfg, d_fixed.copy(), diff_step)
    return answer


def _diff_step(value, n: int) -> float | tuple[float, ...]:
    """``diff_step`` checked: one positive number for every parameter (a float), or one per
    parameter (array_like of n positive numbers, as SciPy's ``least_squares`` takes it,
    "x * diff_step"; a tuple of floats, hashable for the compiled functions' caches)."""
    if np.ndim(value) == 0:
        return _checks.check_positive(value, "diff_step")
    try:
        steps = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError("`diff_step` must be a positive number or n positive numbers. "
                        f"Received: diff_step={_checks.short_repr(value)}") from None
    if steps.shape != (n,) or not np.all(np.isfinite(steps)) or not np.all(steps > 0):
        raise ValueError(f"`diff_step` must be a positive number or n={n} positive numbers "
                         f"(one per parameter). Received: diff_step with shape "
                         f"{steps.shape}: {_checks.short_repr(value)}")
    return tuple(steps.tolist())


def _loop_config(n: int, *, ftol, xtol, gtol, x_scale, loss, f_scale, diff_step, max_nfev,
                 damping, solver, bounded: bool
                 ) -> tuple[LoopConfig, np.ndarray | None, float | tuple[float, ...] | None]:
    check_loss(loss)
    if max_nfev is None:
        max_nfev = max(1000, 200 * (n + 1))
    if isinstance(max_nfev, bool) or not isinstance(max_nfev, (int, np.integer)) or max_nfev < 1:
        raise ValueError(f"`max_nfev` must be a positive integer or None. Received: max_nfev={max_nfev!r}")
    if diff_step is not None:
        diff_step = _diff_step(diff_step, n)
    scaling, d_fixed = _x_scale(x_scale, n)
    ftol, xtol, gtol = _tolerances(ftol, xtol, gtol)
    cfg = LoopConfig(damping=get_damping(damping), solver=get_solver(solver), scaling=scaling,
                     loss=loss, f_scale=_checks.check_positive(f_scale, "f_scale"),
                     ftol=ftol, xtol=xtol, gtol=gtol, max_nfev=int(max_nfev), bounded=bounded)
    return cfg, d_fixed, diff_step




def with_jacobian_calls(cfg: LoopConfig, jac_nfev: int, n: int, max_nfev_given: bool
                        ) -> LoopConfig:
    """``cfg`` counting ``jac_nfev`` calls per Jacobian (known once the user's function has
    been called: NumPy or TensorFlow, differences or not); a default ``max_nfev`` is scaled
    to match (``loop_config``'s rule)."""
    if max_nfev_given:
        return replaced(cfg, jac_nfev=int(jac_nfev))
    return replaced(cfg, jac_nfev=int(jac_nfev),
                    max_nfev=max(1000, 200 * (n + 1)) * (1 + int(jac_nfev)))
