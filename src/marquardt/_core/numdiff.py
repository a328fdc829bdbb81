"""Finite-difference Jacobians with SciPy's step rules, for any executor.

``2-point`` (forward) and ``3-point`` (central) differences, as ``scipy.optimize`` takes them
(``_numdiff.approx_derivative``): step hᵢ = rel_step · sign(xᵢ) · max(1, |xᵢ|), rel_step =
ε^(1/2) or ε^(1/3); a step that would cross the upper bound is taken the other way, and a
central difference that would cross the lower bound becomes the one-sided second-order
formula (−3 f(x) + 4 f(x + h) − f(x + 2h)) / 2h: 2n calls either way. Batched over K problems, written against
the array namespace ``xp``; the caller says how the n perturbed points are evaluated
(``many``: a loop on the host, a vectorised map in a graph).

``typical``: the parameters' typical magnitudes (Dennis & Schnabel's typx) in place of SciPy's
1, hᵢ = rel_step · sign(xᵢ) · max(|xᵢ|, typicalᵢ). The front doors pass the start's |x0ᵢ| (1
where p0ᵢ = 0), so that a parameter of size 1e-7 (NIST Hahn1's cubic coefficients, multiplying
x³ ≈ 7e8) is moved by a step relative to itself, as MINPACK's ``fdjac2`` moves it (SciPy's
``curve_fit`` through ``leastsq``: hᵢ = √epsfcn · |xᵢ|), not by 10 % of its value, which
makes J wrong enough to end the fit far from its minimum; unlike MINPACK's, the step does not
shrink with a parameter that tends to 0 from a start of size 1 (an offset, a baseline), where
a relative step would leave only rounding noise in its column.

Reference:
    J. E. Dennis, R. B. Schnabel, *Numerical Methods for Unconstrained Optimization and
    Nonlinear Equations*, Prentice-Hall (1983), §5.4.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["finite_difference_jacobian", "one_problem_jacobian", "complex_step_jacobian",
           "default_rel_step", "calls_per_jacobian", "typical_magnitudes"]


def default_rel_step(method: str, dtype=np.float64) -> float:
    """SciPy's relative step: ε^(1/2) for ``2-point`` and ``cs``, ε^(1/3) for ``3-point``,
    with ε the machine epsilon of ``dtype``: the residuals' precision when it is coarser
    than float64 (SciPy's ``_eps_for_method``: a float32 model needs steps of ~3e-4, not
    1.5e-8, or its differences are rounding noise; SciPy gh-12991)."""
    try:
        return _REL_STEPS[method, dtype]
    except (KeyError, TypeError):  # not asked before, or an unhashable dtype
        pass
    key = (method, dtype)
    dtype = np.dtype(dtype) if np.issubdtype(np.dtype(dtype), np.floating) else np.float64
    eps = float(np.finfo(dtype).eps)
    step = eps ** 0.5 if method in ("2-point", "cs") else eps ** (1.0 / 3.0)
    try:
        if len(_REL_STEPS) < 64:
            _REL_STEPS[key] = step
    except TypeError:
        pass
    return step


#: ``default_rel_step``'s answers by (method, dtype as given).
_REL_STEPS: dict = {}


def typical_magnitudes(x0) -> np.ndarray:
    """The typical magnitudes ``curve_fit`` differences its parameters at: |x0ᵢ|, 1 where x0ᵢ
    is 0 (or not finite)."""
    a = np.asarray(x0, dtype=np.float64)
    if a.size > _SCALAR_MAX:  # a batch's starts: one array operation
        m = np.abs(a)
        with np.errstate(invalid="ignore"):
            return np.where((m > 0.0) & (m < _INF), m, 1.0)
    sizes = [v if 0.0 < v < _INF else 1.0 for v in map(abs, a.ravel().tolist())]
    return np.array(sizes, dtype=np.float64).reshape(a.shape)


#: Most parameters ``typical_magnitudes`` sizes as Python floats (one fit's few parameters:
#: faster than NumPy's array operations); above, a batch's starts: 6 ms for 10,000 × 5 as
#: Python floats, 0.2 ms as arrays.
_SCALAR_MAX = 64


_INF = float("inf")


def calls_per_jacobian(method) -> int:
    """How many calls of the residual function one Jacobian costs, per parameter: 1 for
    ``2-point`` and ``cs``, 2 for ``3-point``, 0 for a callable or autodiff (SciPy's ``lm``
    counts these calls in ``nfev``)."""
    return {"2-point": 1, "cs": 1, "3-point": 2}.get(method, 0) if isinstance(method, str) \
        else 0


def finite_difference_jacobian(xp, residual: Callable, many: Callable, n: int, method: str,
                               lb, ub, rel_step: float | None = None, typical=None,
                               in_place: bool = False) -> Callable:
    """``fn(x, r=None) -> (r, J)`` for x (K, n), J (K, m, n), by ``method`` differences;
    ``r``, the residuals at x when the caller has them, saves one evaluation.

    Args:
        xp: the array namespace.
        residual: ``residual(x) -> r`` (K, m).
        many: ``many(xs) -> rs`` for xs (B, K, n): the residuals at B points per problem.
        n: the number of parameters.
        method: ``"2-point"`` or ``"3-point"``.
        lb, ub: the bounds (K, n) (±inf for none).
        rel_step: the relative step, one for all parameters or one per parameter (n,);
            SciPy's default when None.
        typical: the parameters' typical magnitudes (K, n), positive; None: 1 (SciPy's).
        in_place: ``many`` returns a new float64 NumPy array each call, which the columns
            may overwrite.
    """
    if rel_step is None:
        rel_step = default_rel_step(method)
    # one relative step per parameter, (n,): the array made once, cast to x's dtype per call
    steps = np.asarray(rel_step, dtype=np.float64) if np.ndim(rel_step) > 0 else None
    floor = 1.0 if typical is None else typical

    def fn(x, r=None):
        if r is None:
            r = residual(x)
        one = xp.ones_like(x)
        sign = xp.where(xp.greater_equal(x, 0.0), one, -one)
        step = rel_step if steps is None else xp.cast(xp.asarray(steps), x.dtype)
        h = step * sign * xp.maximum(xp.abs(x), floor)
        h = xp.where(xp.greater(x + h, ub), -xp.abs(h), h)  # away from a near upper bound
        h = (x + h) - x  # the step actually representable
        eye = xp.eye(n, dtype=x.dtype)  # (n, n)
        hx = xp.expand_dims(h, 0) * xp.expand_dims(eye, 1)  # (n, K, n): row i moves x_i
        ht = xp.expand_dims(xp.swapaxes(h, 0, 1), -1)  # (n, K, 1)
        x_b = xp.expand_dims(x, 0)
        f_plus = many(x_b + hx)
        if method == "2-point" and in_place and isinstance(f_plus, np.ndarray) \
                and f_plus.flags.writeable and f_plus.dtype == np.float64:
            # the same two operations written into the (n, K, m) points' residuals, which
            # are ours: no two more arrays of that size per Jacobian
            cols = np.subtract(f_plus, r, out=f_plus)
            np.divide(cols, ht, out=cols)
        elif method == "2-point":
            cols = (f_plus - xp.expand_dims(r, 0)) / ht
        else:  # central, or one-sided second order where x − h would cross the lower bound:
            # either way one more point per parameter (x − h or x + 2h), so 2n calls in all
            lo_ok = xp.expand_dims(xp.swapaxes(xp.greater_equal(x - h, lb), 0, 1), -1)
            second = many(xp.where(lo_ok, x_b - hx, x_b + 2.0 * hx))  # lo_ok: (n, K, 1)
            central = (f_plus - second) / (2.0 * ht)
            one_sided = (-3.0 * xp.expand_dims(r, 0) + 4.0 * f_plus - second) / (2.0 * ht)
            cols = xp.where(lo_ok, central, one_sided)
        return r, xp.transpose(cols, (1, 2, 0))

    return fn


def one_problem_jacobian(residual: Callable, many: Callable, n: int, method: str, lb, ub,
                         rel_step: float | None = None, typical=None) -> Callable:
    """``finite_difference_jacobian`` for one problem (K = 1) on NumPy arrays: the same
    element-wise operations in the same order, so the same J bit for bit and in the same
    memory order (a transposed view of an (n, 1, m) C-ordered array), without the
    namespace's layers (the host executor forms a Jacobian per iteration of a small fit,
    where those layers cost more than the arithmetic). The steps hᵢ are formed in Python
    floats, the same IEEE double operations (a product, ``max``, a sum and a difference, each
    rounded) as the array expression's element by element, and the points and columns as
    (n, n) and (n, m) arrays without the problem axis. ``tests/test_numdiff.py`` holds the two
    to the same bits.

    Here ``many(points) -> rs`` takes the n points as rows of an (n, n) array and returns
    their residuals (n, m); ``residual(x) -> r`` maps (1, n) to (1, m)."""
    if rel_step is None:
        rel_step = default_rel_step(method)
    eye = _eye(n)  # (n, n)
    where = np.where
    per_parameter: list = []  # (rel_steps, floors, uppers) as floats, at the first J (an
    # evaluator whose Jacobians are all formed in C, on the native loop, never needs them)

    def steps(x):  # (1, n) -> h (1, n)
        if not per_parameter:
            per_parameter.append((_values(rel_step, n),  # one per parameter
                                  [1.0] * n if typical is None else _values(typical, n),
                                  _values(ub, n)))
        rel_steps, floors, uppers = per_parameter[0]
        h = []
        for xi, rel, floor, upper in zip(x[0].tolist(), rel_steps, floors, uppers):
            size = abs(xi)
            hi = rel * (1.0 if xi >= 0.0 else -1.0) * (floor if floor > size else size)
            if xi + hi > upper:  # away from a near upper bound
                hi = -abs(hi)
            h.append((xi + hi) - xi)  # the step actually representable
        return np.array([h])

    def fn(x, r=None):
        if r is None:
            r = residual(x)
        h = steps(x)
        hx = h * eye  # (n, n): row i moves x_i
        ht = h.T  # (n, 1)
        f_plus = many(x + hx)  # (n, m)
        if method == "2-point":
            cols = (f_plus - r) / ht
        else:
            lo_ok = (x - h >= lb).T  # (n, 1)
            second = many(where(lo_ok, x - hx, x + 2.0 * hx))
            central = (f_plus - second) / (2.0 * ht)
            one_sided = (-3.0 * r + 4.0 * f_plus - second) / (2.0 * ht)
            cols = where(lo_ok, central, one_sided)
        return r, cols.reshape(n, 1, -1).transpose(1, 2, 0)

    return fn


_EYES: dict = {}


def _eye(n: int) -> np.ndarray:
    """The identity (n, n), read-only, made once per n (up to 64 sizes kept)."""
    eye = _EYES.get(n)
    if eye is None:
        eye = np.eye(n)
        eye.flags.writeable = False
        if len(_EYES) < 64:
            _EYES[n] = eye
    return eye


def _values(a, n: int) -> list[float]:
    """A scalar, (n,) or (1, n) array's n values as Python floats (broadcast)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    if a.size not in (1, n):
        raise ValueError(f"expected 1 or n={n} values. Received: shape {np.shape(a)}")
    return a.tolist() if a.size == n else [float(a[0])] * n


def complex_step_jacobian(complex_residual: Callable, n: int, rel_step: float | None = None
                          ) -> Callable:
    """``fn(x) -> J`` (1, m, n) for one problem x (1, n) by the complex step
    Jᵢ = Im r(x + i·hᵢ·eᵢ) / hᵢ (Squire & Trapp 1998): exact to rounding for a function that
    is real-analytic and written with complex-safe NumPy operations (SciPy's ``jac='cs'``;
    hᵢ = rel_step · max(1, |xᵢ|), rel_step = ε^(1/2) by default, as SciPy's). Costs n calls.
    ``complex_residual`` takes a complex (n,) vector and returns the residuals (m,). Bounds
    are ignored, as in SciPy: the step leaves x's real part where it is."""
    if rel_step is None:
        rel_step = default_rel_step("cs")
    rel = np.asarray(rel_step, dtype=np.float64)  # one for all, or one per parameter (n,)

    def fn(x):
        x1 = np.asarray(x[0], dtype=np.float64)
        h = rel * np.maximum(np.abs(x1), 1.0)
        cols = []
        for i in range(n):
            xc = x1.astype(np.complex128)
            xc[i] += 1j * h[i]
            cols.append(np.imag(np.asarray(complex_residual(xc))) / h[i])
        return np.stack(cols, axis=-1)[None]

    return fn
