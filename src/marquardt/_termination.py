"""Termination tests with SciPy's meanings (``scipy.optimize.least_squares``).

* ``ftol``: dF < ftol · F, and the last step agreed with its model (ρ > 0.25); SciPy's
  ``check_termination`` in ``_lsq/common.py``, MINPACK's (Moré 1978) test on the actual and
  predicted relative reductions.
* ``xtol``: ‖S p‖ < xtol · (xtol + ‖S x‖) for the step p in the scaled variables S x, S = √D
  (MINPACK's ``delta <= xtol * xnorm`` on scaled norms; SciPy adds the ``xtol +`` so that
  x = 0 can terminate). The core passes an accepted step with the diagonal part of its damping
  undone (``_core.measures.undamped_step``): a step that λD kept short is no sign of
  convergence.
* ``gtol``: the largest cosine between the residual vector and a column of J is below
  ``gtol`` (MINPACK's scale-invariant test and SciPy's meaning for ``method='lm'``), or the
  residual vector is zero.
* first-order check: ``ftol`` and ``xtol`` measure a step, and a step that the damping cut
  short (λ‖√D p‖² above the model's own curvature pᵀAp) says nothing about stationarity: with
  λ at 10¹⁴ every step is 1e-16 of x wherever x is (issue #14 stopped there with
  ``success=True``, the gradient cosine at 0.4). Such a step stops nothing while the gradient
  cosine exceeds ``STATIONARY_COSINE``; accepted steps then lower λ, and a damping that keeps
  rising ends at its ceiling, there ``STALLED`` (a failure), not ``DAMPING_LIMIT``.
* a step that rounds to nothing (x + p = x): no λ can change that, so the fit ends there,
  by the step tests where the gradient cosine is at most ``ROUNDED_COSINE`` (or says nothing:
  one residual, or residuals at their rounding level), else as ``STALLED``: the cost is flat
  to working precision along a column of J that has vanished, an infimum at infinity
  (``rounded_away``).
* a direction the model has lost: ``ftol`` and ``xtol`` measure the steps of the model, which
  cannot move a parameter whose column of J̃ = J D^{-1/2} has shrunk to the rounding of the
  largest (Aⱼⱼ/Dⱼⱼ ≤ ε maxₖ Aₖₖ/Dₖₖ); where the residual still points along such a column
  (its cosine above ``ROUNDED_COSINE``), the step tests stop nothing (``lost_direction``).
* one residual (m = 1): the gradient cosine is 1 wherever J ≠ 0, so a damping at its
  ceiling is judged by ``scaled_gradient_cosine`` (the gradient against D) instead: x² + 5
  with ``xtol=None`` ends at its minimum by the damping limit, a success, not ``STALLED``.

All functions are batched over leading dimensions and return int32 status codes, with
``Status.RUNNING`` where no test fires.
"""

from __future__ import annotations

from marquardt._status import Status
from marquardt._xp import array_namespace

__all__ = ["step_status", "gradient_cosine", "gradient_status", "damping_limited_away",
           "rounded_away", "lost_direction", "damping_limit_status", "scaled_gradient_cosine",
           "STATIONARY_COSINE",
           "ROUNDED_COSINE", "ROUNDING_RESIDUAL", "machine_epsilon", "stationary_cosine",
           "rounded_cosine", "resolved_cosine", "ROUNDING_GRADIENT"]

#: Largest gradient cosine (MINPACK's measure, ``gradient_cosine``) at which a step cut short
#: by the damping may still end the fit by ``ftol``/``xtol``, and below which a damping at its
#: ceiling means a minimum: √ of the default ``gtol`` 1e-12, and 45 times the largest cosine
#: at which the 38 NIST runs of ``tests/test_nist.py`` stop (2.2e-8, ENSO from start 2).
STATIONARY_COSINE = 1e-6


#: Largest gradient cosine at which a step rounded to nothing (``rounded_away``) is a
#: minimum to working precision: MINPACK's scale-invariant measure at the threshold that
#: ``benchmarks/mgh.py`` calls a stationary point. Looser than ``STATIONARY_COSINE``: the zero
#: step is the end of the road for every λ, and a finite-difference Jacobian leaves cosines
#: of ~1e-5 at a minimum (SciPy's ``TestCurveFit.test_regression_2639``: x ≈ 574, 2-point
#: steps of √ε |x|, cosine 6e-6 where the step rounds to nothing); the minima at infinity it
#: must catch have cosines of 0.16 and 0.83.
ROUNDED_COSINE = 1e-4

#: Machine epsilon of float64, ``rounded_away``'s default ε (``machine_epsilon`` for others).
EPSILON = 2.0 ** -52
_EPSILONS = {"float64": EPSILON, "float32": 2.0 ** -23, "float16": 2.0 ** -10,
             "bfloat16": 2.0 ** -7}


def machine_epsilon(dtype) -> float:
    """ε of a floating dtype given as NumPy's, TensorFlow's or JAX's (by its name; float64's
    for a name not listed)."""
    name = getattr(dtype, "name", None) or str(dtype)
    return _EPSILONS.get(str(name), EPSILON)

def stationary_cosine(dtype) -> float:
    """``STATIONARY_COSINE`` for arrays of ``dtype``: scaled by √(ε/ε₆₄), so float64's is
    unchanged and float32's is 1e-6 · 2^14.5 ≈ 2.3e-2. In precision ε a gradient cosine
    cannot be resolved below about √m ε (g = Jᵀr summed in that precision); the factor keeps
    the threshold as far above that floor, on a log scale, as float64's 1e-6 is above 1e-16
    and below 1."""
    return STATIONARY_COSINE * (machine_epsilon(dtype) / EPSILON) ** 0.5


def rounded_cosine(dtype) -> float:
    """``ROUNDED_COSINE`` for arrays of ``dtype``: never stricter than ``stationary_cosine``
    (float32: 2.3e-2), of which it is the looser form; float64's unchanged."""
    return max(ROUNDED_COSINE, stationary_cosine(dtype))


def _dtype(a):
    return getattr(a, "dtype", None)


#: Residuals no larger than this many ε times Σⱼ ‖Jⱼ‖ |xⱼ| (the size of the model's terms that
#: depend on x) are rounding noise: a zero-residual fit at its solution (``rounded_away``).
#: 100: the rounding of the model's evaluation grows with the number of its operations; the
#: exactly fitted line of ``tests/test_termination.py`` has ‖r‖ = 0.02 ε Σⱼ ‖Jⱼ‖ |xⱼ|, the
#: MGH minima at infinity 10¹³ (Jennrich-Sampson ×10) and more.
ROUNDING_RESIDUAL = 100.0


def step_status(d_cost, cost, step_norm, x_norm, rho, ftol: float, xtol: float, xp=None):
    """Status after a step attempt: FTOL, XTOL, FTOL_XTOL or RUNNING (int32). A tolerance
    of 0 (SciPy's None) disables its test: with the gain ratio's noise floor a step may be
    accepted whose cost change is a rounding-level increase, which ``dF < 0·F`` would take
    for convergence."""
    xp = xp or array_namespace(d_cost, cost, step_norm)
    def never():  # False, shaped like the batch (costs are not negative)
        return xp.less(cost, -1.0)

    f_ok = (xp.logical_and(xp.less(d_cost, ftol * cost), xp.greater(rho, 0.25)) if ftol > 0
            else never())
    x_ok = xp.less(step_norm, xtol * (xtol + x_norm)) if xtol > 0 else never()
    code = xp.where(
        xp.logical_and(f_ok, x_ok),
        int(Status.FTOL_XTOL),
        xp.where(f_ok, int(Status.FTOL), xp.where(x_ok, int(Status.XTOL), int(Status.RUNNING))),
    )
    return xp.cast(code, "int32")


def gradient_cosine(g, r_norm, col_norms, xp=None):
    """maxⱼ |gⱼ| / (‖r‖ ‖Jⱼ‖), MINPACK's gnorm; zero columns and r = 0 contribute 0."""
    xp = xp or array_namespace(g, r_norm, col_norms)
    denom = xp.expand_dims(r_norm, -1) * col_norms
    ok = xp.greater(denom, 0.0)
    cos = xp.where(ok, xp.abs(g) / xp.where(ok, denom, 1.0), 0.0)
    return xp.max(cos, axis=-1)


#: The gradient's projections maxⱼ |gⱼ| / ‖Jⱼ‖ no larger than this many ε times Σⱼ ‖Jⱼ‖ |xⱼ|
#: are the rounding of the residuals (``resolved_cosine``). 10: float32 NumPy models at their
#: minima (exponentials, a Gaussian, a sine, a line; noise 0 to 1e-3) end at up to 1.0 such
#: units, the MGH starts that stall in float32 (Jennrich-Sampson from 10·x₀, Bard from 10·x₀,
#: Freudenstein-Roth, Brown-Dennis) at 360 to 10⁶.
ROUNDING_GRADIENT = 10.0


def resolved_cosine(cosine, r_norm, model_size, epsilon: float, xp=None):
    """The gradient cosine as far as residuals of precision ``epsilon`` resolve it: 0 where
    maxⱼ |gⱼ| / ‖Jⱼ‖ = cosine · ‖r‖ is at most ``ROUNDING_GRADIENT`` · ε Σⱼ ‖Jⱼ‖ |xⱼ|
    (``model_size``), the rounding of the model's values, else the cosine itself.

    The projection of r on a column of J, |Jⱼᵀr| / ‖Jⱼ‖, moves by up to ‖δ‖ when the residuals
    carry rounding errors δ, and ‖δ‖ ≈ ε ‖model‖ ≤ ε Σⱼ ‖Jⱼ‖ |xⱼ| for a model linear in its
    parameters; a Jacobian differenced from such residuals adds its own error. Below that the
    direction of the gradient is rounding, not a way down: a NumPy model that returns float32,
    solved in float64 (``LoopConfig.output_epsilon`` = 2⁻²³), fitting an exponential to data
    with noise 1e-3 ends where its step rounds to nothing with a cosine of 1.7e-4 (its float64
    twin: 6e-10), which ``rounded_away`` took for a stall away from a minimum."""
    xp = xp or array_namespace(cosine, r_norm, model_size)
    level = ROUNDING_GRADIENT * epsilon * model_size
    return xp.where(xp.less_equal(cosine * r_norm, level), 0.0, cosine)


def gradient_status(g, r_norm, col_norms, gtol: float, xp=None, cosine=None):
    """GTOL where the gradient cosine is at most ``gtol`` or r = 0, else RUNNING (int32).
    ``cosine``: ``gradient_cosine(g, r_norm, col_norms)`` when the caller has it."""
    xp = xp or array_namespace(g, r_norm, col_norms)
    if cosine is None:
        cosine = gradient_cosine(g, r_norm, col_norms, xp)
    done = xp.logical_or(xp.less_equal(cosine, gtol), xp.equal(r_norm, 0.0))
    return xp.cast(xp.where(done, int(Status.GTOL), int(Status.RUNNING)), "int32")


def damping_limited_away(damping_term, curvature, cosine, xp=None):
    """(…,) bool: the step's length was set by the damping, λ‖√D p‖² > pᵀAp, at a point whose
    gradient cosine exceeds ``STATIONARY_COSINE`` or is not a number: the step tests must not
    stop there."""
    xp = xp or array_namespace(damping_term, curvature, cosine)
    return xp.logical_and(xp.greater(damping_term, curvature),
                          xp.logical_not(xp.less_equal(cosine,
                                                       stationary_cosine(_dtype(cosine)))))


def rounded_away(p, cosine, one_residual: bool, r_norm=None, model_size=None, xp=None,
                 epsilon: float = EPSILON):
    """(…,) bool: the step p rounded to nothing (x + p = x in every parameter) at a point whose
    gradient cosine exceeds ``ROUNDED_COSINE`` or is not a number: the fit must stop there
    (a larger λ only shortens the step) and must not report success.

    There the cost is flat to working precision along a direction in which the gradient still
    points: a column of J has vanished with the cost at an infimum at infinity (Moré, Garbow &
    Hillstrom's Jennrich-Sampson from 10·x₀, x₁ → −∞, cosine 0.16; Bard from 100·x₀,
    x₂, x₃ → −∞, cosine 0.83), where ``xtol`` on the zero step reported success.

    The cosine says nothing, and the step tests decide as in MINPACK and SciPy, where
    * ``one_residual``: with m = 1 the cosine |J r| / (|r| ‖J‖) is 1 at every point where
      J ≠ 0 (at the minimum of x² + 5, J = 2x rounds to ~1e-8, not to 0; SciPy's
      ``test_workers``);
    * the residuals are at their rounding level, ‖r‖ ≤ ``ROUNDING_RESIDUAL`` · ε · Σⱼ ‖Jⱼ‖ |xⱼ|
      (``r_norm``, ``model_size`` = Σⱼ ‖Jⱼ‖ |xⱼ|, ε = ``epsilon`` of the fit's dtype): a
      zero-residual fit at its solution, whose r is rounding noise and so is the direction of
      r (a straight line fitted exactly: ‖r‖ = 1e-15, cosine 0.12).
    """
    xp = xp or array_namespace(p, cosine)
    zero = xp.all(xp.equal(p, 0.0), axis=-1)
    if one_residual:
        return xp.logical_and(zero, xp.less(cosine, -1.0))  # False, shaped like the batch
    away = xp.logical_not(xp.less_equal(cosine, rounded_cosine(_dtype(cosine))))
    if r_norm is not None:
        noise = ROUNDING_RESIDUAL * epsilon * model_size
        away = xp.logical_and(away, xp.logical_not(xp.less_equal(r_norm, noise)))
    return xp.logical_and(zero, away)


def lost_direction(g, r_norm, colsq, d, xp=None, r_noise=None, epsilon: float = EPSILON):
    """(…,) bool: the gradient points along a column of J that the scaled Jacobian
    J̃ = J D^{-1/2} has lost to rounding, so that ``ftol`` and ``xtol`` must not stop there.

    A column is lost when Aⱼⱼ/Dⱼⱼ = ‖Jⱼ‖²/dⱼ ≤ ε maxₖ ‖Jₖ‖²/dₖ (A = JᵀJ, ``colsq`` its
    diagonal, ``d`` the damping diagonal): in A + λD it is at the rounding of the largest entry,
    and the damped step moves xⱼ by nothing the step tests can see, while its cosine
    |gⱼ| / (‖r‖ ‖Jⱼ‖) (MINPACK's, scale-invariant) says that the cost still falls along it.
    There ``ftol`` and ``xtol`` measure the model's progress in the other parameters only: with
    D = I (``x_scale=1.0``) MGH Box 3-D from 100·x₀ stopped by ``ftol`` at f = 0.0756 with x₂'s
    column at 4e-45 and its cosine 0.84, and Jennrich-Sampson from 10·x₀ at f = 259.6 with x₁'s
    column at 4e-33 and its cosine 0.16, both reported as successes. The fit then goes on
    until its steps round to nothing (``rounded_away``: ``STALLED``) or ``max_nfev``.

    A column that is exactly zero has gⱼ = 0 (the cost is flat in xⱼ to working precision) and
    is no lost direction. ``r_noise``: residuals at most this large are rounding noise (a
    zero-residual fit at its solution), whose direction says nothing (``rounded_away``)."""
    xp = xp or array_namespace(g, r_norm, colsq)
    ratio = colsq / d
    lost = xp.less_equal(ratio, epsilon * xp.max(ratio, axis=-1, keepdims=True))
    held = xp.greater(colsq, 0.0)
    denom = xp.expand_dims(r_norm, -1) * xp.sqrt(xp.where(held, colsq, 1.0))
    cos = xp.where(xp.logical_and(held, xp.greater(denom, 0.0)),
                   xp.abs(g) / xp.where(xp.greater(denom, 0.0), denom, 1.0), 0.0)
    away = xp.any(xp.logical_and(lost, xp.greater(cos, ROUNDED_COSINE)), axis=-1)
    if r_noise is not None:
        away = xp.logical_and(away, xp.greater(r_norm, r_noise))
    return away


def scaled_gradient_cosine(g, r_norm, sqrt_d, xp=None):
    """maxⱼ |gⱼ| / (‖r‖ √dⱼ): the gradient measured against the scale D of the step (D the
    damping matrix, ``marquardt._scaling``), the stationarity measure of a fit with one
    residual, whose gradient cosine |Jⱼ r| / (|r| |Jⱼ|) is 1 wherever Jⱼ ≠ 0.

    With Marquardt's running maximum √dⱼ = maxₖ |Jⱼ(xₖ)| it is the column of J now
    against its largest over the fit: x² + 5 at x = −8e-9 from x₀ = 2 gives 4e-9 (J = −1.6e-8
    against 4), a minimum; with ``x_scale`` (√dⱼ = 1/sⱼ) it is the relative change of r when
    xⱼ moves by its scale sⱼ. r = 0 gives 0."""
    xp = xp or array_namespace(g, r_norm, sqrt_d)
    denom = xp.expand_dims(r_norm, -1) * sqrt_d
    ok = xp.greater(denom, 0.0)
    return xp.max(xp.where(ok, xp.abs(g) / xp.where(ok, denom, 1.0), 0.0), axis=-1)


def damping_limit_status(cosine, xp=None):
    """The status of a fit whose damping passed its ceiling: ``DAMPING_LIMIT`` (a minimum to
    working precision) where the gradient cosine is at most ``stationary_cosine``, else
    ``STALLED`` (int32), and where the cosine is not a number (a cost that overflowed)."""
    xp = xp or array_namespace(cosine)
    return xp.cast(xp.where(xp.logical_not(xp.less_equal(cosine,
                                                         stationary_cosine(_dtype(cosine)))),
                            int(Status.STALLED),
                            int(Status.DAMPING_LIMIT)), "int32")
