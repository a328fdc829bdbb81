"""``check_residuals``: do a residual function and a scalar loss describe the same problem?

``scipy.optimize.least_squares`` minimises the cost F(x) = ½‖r(x)‖² of a residual *vector*
r(x) (m values). A frequent mistake is to hand it the *gradient* ∇L(x) of a loss (n values):
it then drives ‖∇L‖ to zero — a search for any stationary point of L (minimum, maximum or
saddle) with ∇²L, the Hessian, as its Jacobian — and it stalls or wanders. Another is to hand
it the loss itself, one number, whose Jacobian has rank one.

The check evaluates both functions at x0 and at a few points around it and asks whether
L = c · ½Σr² with one constant c > 0 (c = 1: L is SciPy's cost; c = 2: L = Σr²; c = 2/m:
L = mean(r²), Keras' ``"mse"``). Where both are differentiable it also compares ∇L with
c · Jᵀr, the gradient the solver will follow. A constant factor does not move the minimum;
anything else means the solver minimises something other than L.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from marquardt import _checks
from marquardt._backend.tensorflow import bridge
from marquardt._parameters import start_values

__all__ = ["check_residuals", "ResidualCheck"]

#: Points besides x0, at x0 + STEP · max(1, |x0|) · z with z standard normal (seed 0).
N_POINTS = 3
STEP = 0.1

_PITFALL = (
    "least_squares minimises ½‖fun(x)‖², so `fun` must return the residual vector r(x) "
    "whose squares add up to the loss (for L = Σ(model(x, t) − y)², r = model(x, t) − y), "
    "one entry per observation. Given the gradient ∇L instead, it drives ‖∇L‖ to zero: it "
    "looks for any stationary point of L (a maximum or a saddle will do), and its Jacobian "
    "is then the Hessian ∇²L, not J. Given the loss itself (one number), the Jacobian has "
    "rank one and Gauss-Newton degenerates into a gradient step."
)


class ResidualCheck(NamedTuple):
    """Outcome of ``check_residuals``; ``str()`` gives the explanation.

    Attributes:
        consistent: L = scale · ½Σr² at every point tried, within ``rtol`` (and the gradients
            agree where both functions are differentiable).
        scale: L / ½Σr² at x0 (at the first point where ½Σr² > 0).
        relation: the scale in words, e.g. ``"loss = Σr² (scale 2)"``; ``"none"`` where no
            constant relates the values.
        half_sum_squares: ½Σr² at x0, SciPy's ``cost``.
        loss: L(x0).
        max_relative_error: worst |L − scale · ½Σr²| / |L| over the points.
        gradient_error: ‖∇L − scale · Jᵀr‖ / ‖∇L‖ at x0, or None where either function
            cannot be differentiated by TensorFlow.
        looks_like_gradient: ``fun`` returns (a multiple of) ∇L rather than residuals.
        message: what was found and, on a mismatch, what to change.
    """

    consistent: bool
    scale: float
    relation: str
    half_sum_squares: float
    loss: float
    max_relative_error: float
    gradient_error: float | None
    looks_like_gradient: bool
    message: str

    def __str__(self) -> str:
        return self.message


def _relation(scale: float, m: int) -> str:
    named = [(1.0, "loss = ½Σr²"), (2.0, "loss = Σr²"), (1.0 / m, "loss = ½·mean(r²)"),
             (2.0 / m, "loss = mean(r²), as Keras' 'mse'")]
    for value, text in named:
        if np.isclose(scale, value, rtol=1e-6, atol=0.0):
            return f"{text} (scale {value:.6g})"
    return f"loss = {scale:.6g} · ½Σr²"


def check_residuals(fun: Callable, x0: Any, loss_fn: Callable, *, args: Sequence = (),
                    kwargs: dict | None = None, rtol: float = 1e-6) -> ResidualCheck:
    """Check that ``fun`` returns residuals whose ½Σr² is ``loss_fn``, up to a constant.

    Args:
        fun: the residual function you mean to give ``least_squares``, ``fun(x, *args,
            **kwargs) -> r`` (TensorFlow or NumPy; called with a float64 tensor).
        x0: a point (n,) where both functions are defined.
        loss_fn: the scalar loss ``loss_fn(x, *args, **kwargs) -> L`` you want minimised.
        args, kwargs: extra arguments of both functions.
        rtol: relative tolerance of the comparisons.

    Returns:
        A ``ResidualCheck``; ``.consistent`` says whether they agree, ``.scale`` and
        ``.relation`` how (SciPy's ``cost`` times ``scale`` is the loss), and ``str()`` explains
        a mismatch, in particular a gradient passed where residuals are expected.

    Raises:
        TypeError: ``fun`` or ``loss_fn`` not callable.
        ValueError: invalid ``x0`` or ``rtol``, ``loss_fn`` not scalar, or non-finite values
            at x0.

    Example:
        >>> t = np.linspace(0, 1, 20); y = 3.0 * t + 1.0
        >>> res = lambda p: p[0] * t + p[1] - y
        >>> mse = lambda p: tf.reduce_mean((p[0] * t + p[1] - y) ** 2)
        >>> check_residuals(res, [1.0, 0.0], mse).relation
        "loss = mean(r²), as Keras' 'mse' (scale 0.1)"
    """
    for name, f in (("fun", fun), ("loss_fn", loss_fn)):
        if not callable(f):
            raise TypeError(f"`{name}` must be callable. Received: {name}={_checks.short_repr(f)}")
    x0 = start_values(x0, "x0")
    rtol = _checks.check_positive(rtol, "rtol")
    kwargs = {} if kwargs is None else kwargs
    if not isinstance(kwargs, dict):
        raise TypeError(f"`kwargs` must be a dict. Received: kwargs={_checks.short_repr(kwargs)}")
    args = tuple(args) if isinstance(args, (tuple, list)) else (args,)

    def residual(x):
        return fun(x, *args, **kwargs)

    def loss(x):
        return loss_fn(x, *args, **kwargs)

    scalar_loss = _scalar(loss)
    r0, jtr = bridge.residual_and_gradient(residual, x0)
    r0 = np.atleast_1d(r0).ravel()  # a scalar: one residual (a loss passed as fun, surely)
    _checks.check_finite(r0, "fun(x0)")
    l0, grad = bridge.value_and_gradient(scalar_loss, x0)
    if not np.isfinite(l0):
        raise ValueError(f"`loss_fn(x0)` must be finite. Received: {l0!r}")

    rng = np.random.default_rng(0)
    points = [x0] + [x0 + STEP * np.maximum(1.0, np.abs(x0)) * rng.standard_normal(x0.size)
                     for _ in range(N_POINTS)]
    # Each function is called once per point. ∇L is needed away from x0 only to test whether
    # fun returns a gradient (m = n); it then comes from the same call as L.
    want_gradient = r0.size == x0.size
    pairs, residuals = [], []
    for x in points:
        if x is x0:
            r, value, g = r0, l0, grad
        else:
            r = np.atleast_1d(bridge.evaluate(residual, x)).ravel()
            if want_gradient:
                value, g = bridge.value_and_gradient(scalar_loss, x)
            else:
                value, g = float(np.sum(bridge.evaluate(scalar_loss, x))), None
        if r.size == r0.size and np.all(np.isfinite(r)) and np.isfinite(value):
            pairs.append((0.5 * float(r @ r), value))
            residuals.append((x, r, g))

    scale = next((l / h for h, l in pairs if h > 0), float("nan"))
    errors = [abs(l - scale * h) / max(abs(l), np.finfo(float).tiny) for h, l in pairs]
    max_err = max(errors) if np.isfinite(scale) else float("inf")
    grad_err = None
    if grad is not None and jtr is not None and np.isfinite(scale):
        gnorm = np.linalg.norm(grad)
        diff = np.linalg.norm(grad - scale * jtr)
        grad_err = float(diff / gnorm) if gnorm > 0 else float(diff)
    like_grad = _looks_like_gradient(residuals, rtol)
    consistent = bool(np.isfinite(scale) and scale > 0 and max_err <= rtol and
                      (grad_err is None or grad_err <= 10 * rtol) and not like_grad)
    # a relation only where the values bear one out (the gradients may still disagree)
    relation = (_relation(scale, r0.size) if np.isfinite(scale) and scale > 0
                and max_err <= rtol else "none")
    message = _message(consistent, scale, relation, pairs, max_err, grad_err, like_grad,
                       r0.size, x0.size, rtol)
    return ResidualCheck(consistent=consistent, scale=float(scale), relation=relation,
                         half_sum_squares=0.5 * float(r0 @ r0), loss=l0,
                         max_relative_error=float(max_err), gradient_error=grad_err,
                         looks_like_gradient=like_grad, message=message)


def _scalar(loss: Callable) -> Callable:
    def fn(x):
        value = loss(x)
        size = int(np.size(value.numpy() if hasattr(value, "numpy") else value))
        if size != 1:
            raise ValueError("`loss_fn` must return one number, the loss. Received: "
                             f"{size} values")
        return value

    return fn


def _looks_like_gradient(residuals, rtol) -> bool:
    """``fun`` returns α·∇L (α > 0 constant) at every point, given ``(x, r, ∇L)`` per point
    (∇L None where TensorFlow cannot compute it)."""
    if not residuals or residuals[0][1].size != residuals[0][0].size:
        return False
    tol = max(np.sqrt(rtol), 1e-4)
    ratios = []
    for _, r, g in residuals:
        if g is None:
            return False
        gg = float(g @ g)
        if gg == 0.0:
            continue
        alpha = float(r @ g) / gg
        if alpha <= 0 or np.linalg.norm(r - alpha * g) > tol * np.linalg.norm(r):
            return False
        ratios.append(alpha)
    return bool(ratios) and (max(ratios) - min(ratios)) <= tol * max(ratios)


def _message(consistent, scale, relation, pairs, max_err, grad_err, like_grad, m, n, rtol):
    table = ", ".join(f"{l / h:.6g}" if h > 0 else "inf" for h, l in pairs)
    if consistent:
        text = (f"Consistent: {relation} at all {len(pairs)} points tried (worst relative "
                f"difference {max_err:.2g} <= rtol {rtol:g}")
        if grad_err is not None:
            text += f"; gradients agree to {grad_err:.2g}"
        text += ")."
        if not np.isclose(scale, 1.0, rtol=rtol):
            text += (f" SciPy's cost is ½Σr²: multiply res.cost by {scale:.6g} to get the loss; "
                     "the minimiser is the same.")
        return text
    if like_grad:
        return (f"Mismatch: `fun` returns the gradient of the loss (n={n} values, proportional "
                f"to ∇L at every point tried), not residuals. " + _PITFALL)
    if m == 1:
        return ("Mismatch: `fun` returns one value; if it is the loss, least_squares minimises "
                "its square. " + _PITFALL)
    if not pairs:
        return "Mismatch: no point gave finite values of both functions."
    text = (f"Mismatch: loss / ½Σr² is not one constant: {table} at the {len(pairs)} points "
            f"tried (worst relative difference {max_err:.2g} > rtol {rtol:g}")
    if grad_err is not None and max_err <= rtol:
        text = (f"Mismatch: the values agree ({relation}) but the gradients do not: "
                f"‖∇L − scale·Jᵀr‖/‖∇L‖ = {grad_err:.2g} (a tf.stop_gradient, or a residual "
                "that is not differentiable as written?")
    if m == n:
        text += "; fun has as many outputs as parameters — is it a gradient?"
    return text + "). " + _PITFALL
