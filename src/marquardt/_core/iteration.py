"""One Levenberg-Marquardt iteration, as pure functions of the state, for every executor.

Glossary (as in ``marquardt._gain``): r the residuals (m,) and J = ∂r/∂x (m, n), rescaled to
r̃, J̃ for a robust loss (``marquardt._robust``); g = J̃ᵀr̃ the gradient of the cost F; D = diag(d)
the damping matrix (``marquardt._scaling``); λ the damping (``marquardt._damping``); δ the
damped step, p the step taken (δ projected onto the bounds); ρ the gain ratio.

One iteration (Marquardt 1963; Moré 1978; Madsen, Nielsen & Tingleff 2004, Algorithm 3.16)::

    linearise: r̃, J̃ ← rescale(r, J);  g ← J̃ᵀr̃ (active bounds: columns frozen)
              — or, where J is never held whole (the Keras step), A = JᵀJ and g given
    prepare:  gtol / min_grad / goal tests;  D ← scaling rule;  factor J̃ or A (solver)
    repeat                                       # attempts: only λ changes
        propose:  δ ← solve(λ);  x_try ← clip(x + δ)
        (the executor evaluates r at x_try)
        judge:    ρ ← (F(x) − F(x_try)) / (L(0) − L(p));  accept?;  λ ← policy(λ, ρ);
                  ftol / xtol / max_nfev / λ-ceiling / goal tests
    until accepted or terminated
    (the executor evaluates J at the accepted point)
    finish:   the new ``LoopState``

Every function works on K problems at once (a leading axis on every array): a problem that
has stopped is frozen by masks while the others go on. The executors own everything else:
the loops, the calls of the residual function, compilation, history and callbacks. The host
executor (``marquardt._core.host``) runs these functions on NumPy arrays in a Python loop;
the TensorFlow executor (``marquardt._backend.tensorflow.solve_loop``) inside
``tf.while_loop``. ``xp`` is the array namespace of the arrays (``marquardt._xp``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from marquardt import _gain, _robust, _scaling, _termination
from marquardt._core import box, measures, verdicts
from marquardt._core.masks import all_finite_rows, select
from marquardt._core.masks import as_int32 as _int
from marquardt._core.records import RUNNING, LoopConfig, LoopState
from marquardt._damping import DampingState, StepMeasure
from marquardt._status import Status

__all__ = ["Linearization", "Prepared", "Attempt", "start", "linearize", "jacobian_linearization",
           "normal_linearization",
           "damping_diagonal", "initial_damping", "prepare", "live", "propose",
           "propose_checked", "judge", "refit_damping",
           "finish", "history_row", "history_rows", "gradient", "select", "all_finite_rows"]


class Linearization(NamedTuple):
    """The Gauss-Newton model of the cost at x: L(p) = F + gᵀp + ½ pᵀAp.

    Either ``jt`` (the rescaled Jacobian, A = J̃ᵀJ̃ implicit) or ``a`` (A itself, from
    normal equations accumulated in chunks) is given, the other None.
    """

    g: Any  # (K, n) gradient
    colsq: Any  # (K, n) diag(A), squared column norms of J̃
    r_norm: Any  # (K,) ‖r̃‖
    rt: Any  # (K, m) rescaled residuals, or None
    jt: Any  # (K, m, n) rescaled Jacobian (active-bound columns zeroed), or None
    a: Any  # (K, n, n) A = JᵀJ, or None
    free: Any = None  # (K, n) 1.0 where a parameter may move, 0.0 where frozen at a bound


class Prepared(NamedTuple):
    """What one iteration fixes before its attempts (only λ changes between attempts)."""

    active: Any  # (K,) bool: the problem was running at the start of the iteration; None: all
    lin: Linearization
    g: Any  # (K, n) gradient J̃ᵀr̃
    d: Any  # (K, n) damping diagonal
    fac: Any  # the solver's factorisation
    sqrt_d: Any  # (K, n)
    x_norm: Any  # (K,) ‖√D x‖
    cosine: Any  # (K,) gradient cosine maxⱼ |gⱼ| / (‖r̃‖ ‖J̃ⱼ‖)
    spectrum: Any = None  # the solver's ``Spectrum``, for a trust-region policy; else None
    model_size: Any = None  # (K,) Σⱼ ‖J̃ⱼ‖ |xⱼ|, the size of the model's terms in x
    lost: Any = None  # (K,) bool: the gradient points along a lost column of J̃ D^{-1/2}


class Attempt(NamedTuple):
    """The state of the attempts of one iteration."""

    lam: Any
    nu: Any
    nfev: Any
    status: Any
    accepted: Any
    x_new: Any
    f_new: Any
    cost_new: Any
    step: Any
    rho: Any
    attempts: Any
    cost_try_last: Any


def _scaled_system(cfg: LoopConfig, xp, x, f, j, lb, ub):
    """Robust rescaling, gradient, the bound-frozen Jacobian and the mask of free parameters
    (None without bounds)."""
    rt, jt = _robust.model_rescale(cfg.loss, f, j, cfg.f_scale, xp)
    g = xp.matvec(jt, rt, transpose_a=True)
    free = None
    if cfg.bounded:
        frozen = xp.logical_or(xp.logical_and(xp.less_equal(x, lb), xp.greater(g, 0.0)),
                               xp.logical_and(xp.less_equal(ub, x), xp.less(g, 0.0)))
        free = xp.cast(xp.logical_not(frozen), x.dtype)
        jt = jt * xp.expand_dims(free, -2)
        g = g * free
    return rt, jt, g, free


def gradient(cfg: LoopConfig, xp, f, j):
    """g = J̃ᵀr̃ = ρ′Jᵀr (without bound freezing), for history rows and results."""
    rt, jt = _robust.model_rescale(cfg.loss, f, j, cfg.f_scale, xp)
    return xp.matvec(jt, rt, transpose_a=True)


def damping_diagonal(cfg: LoopConfig, xp, d_prev, colsq, d_fixed=None):
    """The diagonal d of D after an iteration that sees diag(A) = ``colsq``
    (``marquardt._scaling``); ``d_prev`` None at the first iteration."""
    if cfg.scaling == "marquardt":
        return _scaling.marquardt_diagonal(d_prev, colsq, xp)
    if cfg.scaling == "identity":
        return xp.ones_like(colsq)
    return d_fixed


def start(cfg: LoopConfig, xp, x0, f0, j0, lb, ub, d_fixed) -> LoopState:
    """The state at the start points ``x0`` (K, n), given r and J there."""
    cost0 = _robust.robust_cost(cfg.loss, f0, cfg.f_scale, xp)
    finite0 = xp.logical_and(all_finite_rows(xp, f0), all_finite_rows(xp, j0))
    _, jt0, _, _ = _scaled_system(cfg, xp, x0, f0, j0, lb, ub)
    colsq0 = xp.sum(jt0 * jt0, axis=-2)
    d0 = damping_diagonal(cfg, xp, None, colsq0, d_fixed)
    damp0 = initial_damping(cfg, xp, colsq0, d0, xp.norm(xp.sqrt(d0) * x0, axis=-1))
    ones = _int(xp, xp.ones_like(cost0))
    zero = 0.0 * cost0
    return LoopState(
        x=x0, f=f0, j=j0, cost=cost0, lam=damp0.lam, nu=damp0.nu, d=d0,
        nfev=ones * (1 + cfg.jac_nfev), njev=ones, nit=0 * ones,
        status=_int(xp, xp.where(finite0, RUNNING, int(Status.NON_FINITE))) * ones,
        last_step=zero, last_rho=zero, last_reduction=zero, x_norm=zero,
    )


def initial_damping(cfg: LoopConfig, xp, colsq, d, x_norm=None) -> DampingState:
    """λ₀ (and the policy's memory) from the scale maxᵢ Aᵢᵢ/Dᵢᵢ and ``x_norm`` = ‖√D x₀‖ at
    the start point (the trust-region policy's Δ₀)."""
    return cfg.damping.init(xp.max(colsq / d, axis=-1), xp, x_norm=x_norm)


def linearize(cfg: LoopConfig, xp, s: LoopState, lb, ub) -> Linearization:
    """The Gauss-Newton model from the state's r and J (robust rescaling, bound freezing)."""
    rt, jt, g, free = _scaled_system(cfg, xp, s.x, s.f, s.j, lb, ub)
    return jacobian_linearization(xp, rt, jt, g)._replace(free=free)


def jacobian_linearization(xp, r, j, g=None) -> Linearization:
    """The Gauss-Newton model from residuals r (K, m) and Jacobian J (K, m, n) as they are
    (already rescaled and bound-frozen where that applies); g = Jᵀr unless given."""
    if g is None:
        g = xp.matvec(j, r, transpose_a=True)
    return Linearization(g=g, colsq=xp.sum(j * j, axis=-2), r_norm=xp.norm(r, axis=-1),
                         rt=r, jt=j, a=None)


def normal_linearization(xp, a, g, cost) -> Linearization:
    """The Gauss-Newton model from normal equations A = JᵀJ (K, n, n), g = Jᵀr (K, n) and the
    cost F = ½‖r‖² (K,), for an executor that never holds J (no robust loss, no bounds)."""
    return Linearization(g=g, colsq=xp.diagonal(a), r_norm=xp.sqrt(2.0 * cost), rt=None,
                         jt=None, a=a)


def prepare(cfg: LoopConfig, xp, s: LoopState, lb, ub, d_fixed,
            lin: Linearization | None = None, masked: bool = True, all_live: bool = False
            ) -> tuple[Prepared, Attempt]:
    """The iteration's fixed part (gradient tests, D, the factorisation) and its first
    ``Attempt``. ``lin``: the Gauss-Newton model at ``s.x``; by default ``linearize``.
    ``masked=False``: the caller never factors a stopped problem's system (one problem whose
    attempts do not run once it has stopped), so no masked copy of J or A is made (the Keras
    step: A is P × P). ``all_live=True``: the caller passes running problems only (the host
    executor gathers them), so no per-problem selection is made at all (``Prepared.active``
    None), which on the host's tiny arrays saves a third of the operations."""
    active = None if all_live else xp.equal(s.status, RUNNING)
    if lin is None:
        lin = linearize(cfg, xp, s, lb, ub)
    g, colsq = lin.g, lin.colsq
    col_norms = xp.sqrt(colsq)
    cosine = _termination.gradient_cosine(g, lin.r_norm, col_norms, xp)
    gstat = _termination.gradient_status(g, lin.r_norm, col_norms, cfg.gtol, xp, cosine=cosine)
    if cfg.min_grad > 0:  # MATLAB trainlm: stop when the gradient falls below min_grad
        gstat = xp.where(xp.less(xp.norm(g, axis=-1), cfg.min_grad), int(Status.GTOL), gstat)
    if cfg.goal > float("-inf"):
        gstat = xp.where(xp.less_equal(s.cost, cfg.goal), int(Status.GOAL), gstat)
    # max_nfev is a hard limit: with no room for one more evaluation and the Jacobian that
    # would follow its acceptance, no step is attempted (SciPy returns x0 for max_nfev=1)
    gstat = xp.where(xp.logical_and(xp.equal(gstat, RUNNING),
                                    xp.greater(s.nfev + 1 + cfg.jac_nfev, cfg.max_nfev)),
                     int(Status.MAX_NFEV), gstat)
    status = _int(xp, select(xp, active, gstat, s.status))
    d = select(xp, active, damping_diagonal(cfg, xp, s.d, colsq, d_fixed), s.d)
    # Problems that no longer run still pass through the batched solve (their steps are
    # discarded). Give them the trivial system J = 0, D = I, λ = 1: a stopped problem with a
    # singular or non-finite Jacobian must not send the whole batch down a solver's fallback
    # route (the eigen-decomposition behind the Cholesky solvers) at every attempt.
    def live_only(a, inactive):
        return select(xp, active, a, inactive(a)) if masked and active is not None else a

    d_solve = live_only(d, xp.ones_like)
    if lin.a is None:
        fac = cfg.solver.factor(live_only(lin.jt, xp.zeros_like),
                                live_only(lin.rt, xp.zeros_like), d_solve, xp)
    else:
        fac = cfg.solver.factor_normal(live_only(lin.a, xp.zeros_like),
                                       live_only(g, xp.zeros_like), d_solve, xp)
    sqrt_d = xp.sqrt(d)
    spectrum, lam, nu = None, s.lam, s.nu
    if cfg.damping.needs_spectrum:  # λ from the trust radius, on this iteration's factor
        spectrum = cfg.solver.spectrum(fac, xp)
        fitted = cfg.damping.fit(DampingState(s.lam, s.nu), spectrum, xp)
        lam = select(xp, active, fitted.lam, s.lam)
        nu = select(xp, active, fitted.nu, s.nu)
    model_size = xp.sum(col_norms * xp.abs(s.x), axis=-1)
    lost = None
    if not verdicts.one_residual(s.f):  # m = 1: every cosine is 1 (``verdicts.limit_cosine``)
        # a column lost to the solve's rounding (the state's ε); residuals at their own
        r_epsilon = verdicts.rounding_epsilon(cfg, s.cost.dtype)
        lost = _termination.lost_direction(
            g, lin.r_norm, colsq, d, xp,
            r_noise=_termination.ROUNDING_RESIDUAL * r_epsilon * model_size,
            epsilon=_termination.machine_epsilon(s.cost.dtype))
    prep = Prepared(active=active, lin=lin, g=g, d=d, fac=fac, sqrt_d=sqrt_d,
                    x_norm=xp.norm(sqrt_d * s.x, axis=-1), cosine=cosine, spectrum=spectrum,
                    model_size=model_size, lost=lost)
    zero = xp.zeros_like(s.cost)
    attempt = Attempt(lam=lam, nu=nu, nfev=s.nfev, status=status,
                      accepted=xp.less(s.cost, -1.0),  # False (costs are not negative)
                      x_new=s.x, f_new=s.f,
                      cost_new=s.cost, step=zero, rho=zero, attempts=0 * s.nfev,
                      cost_try_last=s.cost)
    return prep, attempt


def live(xp, c: Attempt):
    """(K,) bool: problems still attempting a step in this iteration."""
    return xp.logical_and(xp.equal(c.status, RUNNING), xp.logical_not(c.accepted))


def propose(cfg: LoopConfig, xp, prep: Prepared, s: LoopState, c: Attempt, lb, ub,
            all_live: bool = False):
    """The candidate point x + p for the current λ (x itself where no attempt is live).
    ``all_live=True``: the caller knows that every problem attempts (no masks)."""
    return _candidate(cfg, xp, prep, s, c, lb, ub, all_live, checked=False)[0]


def propose_checked(cfg: LoopConfig, xp, prep: Prepared, s: LoopState, c: Attempt, lb, ub,
                    all_live: bool = False):
    """``(x_try, failed)``: ``propose``'s candidate and, per problem (K,), whether this
    attempt's Cholesky factorisation of A + λD failed (not numerically positive definite), so
    that the solver's eigen route gave the step; False where no attempt is live. The Keras
    executors count these per iteration (the ``cholesky_failures`` log)."""
    return _candidate(cfg, xp, prep, s, c, lb, ub, all_live, checked=True)


def _candidate(cfg, xp, prep, s, c, lb, ub, all_live, checked):
    lv = None if all_live else live(xp, c)
    lam = c.lam if all_live else xp.where(lv, c.lam, xp.ones_like(c.lam))
    if checked:
        delta, failed = cfg.solver.solve_checked(prep.fac, lam, xp)
        if lv is not None:
            failed = xp.logical_and(lv, failed)
    else:
        delta, failed = cfg.solver.solve(prep.fac, lam, xp), None
    if prep.lin.free is not None:  # exactly 0: an SVD leaves ~1e-16 in a zeroed column's row
        delta = delta * prep.lin.free
    x_try = s.x + delta
    if cfg.bounded:
        x_try = box.into_bounds(xp, x_try, lb, ub, c.cost_try_last)
    return select(xp, lv, x_try, s.x), failed


def judge(cfg: LoopConfig, xp, prep: Prepared, s: LoopState, c: Attempt, x_try, f_try,
          reduce=None, all_live: bool = False, refit: bool = True) -> Attempt:
    """Accept or reject the candidate ``x_try`` with residuals ``f_try``; update λ and the
    step tests. ``all_live=True``: every problem attempted (no masks, as in ``propose``).

    A policy that takes λ from a trust radius (``needs_spectrum``) needs a new λ only for the
    next attempt after a rejection (an accepted step keeps its λ; the next iteration fits one
    to its own factorisation): ``refit=False`` leaves that to ``refit``, which an executor
    that knows the outcome (the host's one-problem loop) calls only then. ``refit=True``
    calls it here, the same values.

    ``reduce``: for an executor whose ``s.f`` and ``f_try`` are one shard of the residuals
    (data-parallel training, ``marquardt._backend.tensorflow.keras_distribute``), a function
    that sums a (3, K) array of per-shard sums over all shards (an all-reduce); every shard
    then takes the same decision. ``None``: the residuals are whole.
    """
    lv = None if all_live else live(xp, c)
    tried = 1 if all_live else _int(xp, lv)
    p = x_try - s.x
    curvature = measures.curvature(xp, prep, p)
    predicted = _gain.quadratic_reduction(prep.g, curvature, p, xp)  # L(0) − L(p)
    actual, cost_try, bad = measures.shard_sums(cfg, xp, s.f, f_try)
    if reduce is not None:
        summed = reduce(xp.stack([actual, cost_try, bad]))
        actual, cost_try, bad = summed[0], summed[1], summed[2]
    finite = xp.equal(bad, 0.0)
    actual = xp.where(finite, actual, float("-inf"))
    cost_try = xp.where(finite, cost_try, float("inf"))
    if cfg.noise > 0:
        rho = _gain.gain_ratio_with_noise_floor(actual, predicted, s.cost, cfg.noise, xp)
    else:
        rho = _gain.gain_ratio(actual, predicted, xp)
    epsilon = verdicts.rounding_epsilon(cfg, s.cost.dtype)
    if cfg.loss == "linear" and (cfg.ftol > 0 or cfg.xtol <= 0):
        # at a stationary point, a Gauss-Newton step whose predicted and actual changes are
        # both within the rounding of the residuals is the model's step: ρ = 1
        # (``_gain.gain_ratio_at_rounding``; a robust loss's model is Ceres' approximation of
        # its curvature, whose step is no better than a shorter one there). That step is the
        # last by ftol; with ftol off (None, 0) and xtol on, nothing would end a fit that took
        # such steps (a 2-point Jacobian's noise keeps them ~1e-9 long: max_nfev), so there
        # the step keeps its own ρ, and rejected steps shrink until xtol ends the fit, as in
        # SciPy's trf. With both off (the Keras step) no step test ends anything: taken.
        rho = _gain.gain_ratio_at_rounding(
            rho, actual, predicted,
            _gain.ROUNDING_CHANGE * epsilon * prep.lin.r_norm * prep.model_size,
            xp.less_equal(prep.cosine, _termination.stationary_cosine(prep.cosine.dtype)), xp)
    ok = cfg.damping.accept(rho, xp)
    if lv is not None:
        ok = xp.logical_and(lv, ok)
    step = xp.norm(prep.sqrt_d * p, axis=-1)
    new_damp = cfg.damping.update(DampingState(c.lam, c.nu), rho, xp, step=StepMeasure(step))
    nfev = c.nfev + tried
    tstat = _termination.step_status(actual, s.cost, measures.undamped_step(xp, prep, c, p, ok),
                                     prep.x_norm, rho, cfg.ftol, cfg.xtol, xp)
    # first-order check: a step the damping cut short ends nothing away from a stationary point
    damping_term = c.lam * xp.sum(prep.d * p * p, axis=-1)
    tstat = xp.where(_termination.damping_limited_away(damping_term, curvature, prep.cosine, xp),
                     RUNNING, tstat)
    # nor does a step that only the noise floor made good (ρ = 1 for two rounding errors): the
    # cost is flat along it to working precision, which away from a stationary point is a
    # plateau, not a minimum (``_restart.fit_again``'s continuation of a stalled fit)
    if cfg.noise > 0:
        away = xp.logical_not(xp.less_equal(prep.cosine,
                                            _termination.stationary_cosine(prep.cosine.dtype)))
        tstat = xp.where(xp.logical_and(away, _gain.at_noise_floor(actual, predicted, s.cost,
                                                                   cfg.noise, xp)),
                         RUNNING, tstat)
    # nor does a step of a model that has lost a direction along which the cost still falls
    if prep.lost is not None:
        tstat = xp.where(prep.lost, RUNNING, tstat)
    # a step that rounded to nothing (x + p = x): no larger λ can change that, so the fit ends
    # here, by the step tests at a stationary point, else STALLED (``_termination.rounded_away``)
    end_cosine = verdicts.end_cosine(cfg, xp, prep)
    rounded = _termination.rounded_away(p, end_cosine, verdicts.one_residual(s.f),
                                        prep.lin.r_norm, prep.model_size, xp, epsilon)
    tstat = xp.where(xp.logical_and(rounded, xp.logical_not(ok)), int(Status.STALLED), tstat)
    running = xp.equal(tstat, RUNNING)
    spent = nfev + _int(xp, ok) * cfg.jac_nfev  # with the Jacobian at an accepted point
    tstat = xp.where(xp.logical_and(running,
                                    xp.greater(spent + 1 + cfg.jac_nfev, cfg.max_nfev)),
                     int(Status.MAX_NFEV), tstat)
    if not cfg.damping.needs_spectrum:  # a trust radius's λ is checked by ``refit``
        exhausted = xp.logical_and(cfg.damping.exhausted(new_damp, xp), xp.logical_not(ok))
        tstat = xp.where(xp.logical_and(xp.equal(tstat, RUNNING), exhausted),
                         _termination.damping_limit_status(
                             verdicts.limit_cosine(xp, prep, s.f, end_cosine), xp),
                         tstat)
    if cfg.goal > float("-inf"):  # trainlm's performance goal, reached by this step
        tstat = xp.where(xp.logical_and(ok, xp.less_equal(cost_try, cfg.goal)),
                         int(Status.GOAL), tstat)
    judged = Attempt(
        lam=select(xp, lv, new_damp.lam, c.lam),
        nu=select(xp, lv, new_damp.nu, c.nu),
        nfev=nfev,
        status=_int(xp, select(xp, lv, tstat, c.status)),
        accepted=ok if lv is None else xp.logical_or(c.accepted, ok),
        x_new=select(xp, ok, x_try, c.x_new),
        f_new=select(xp, ok, f_try, c.f_new),
        cost_new=xp.where(ok, cost_try, c.cost_new),
        step=select(xp, lv, step, c.step),
        rho=select(xp, lv, rho, c.rho),
        attempts=c.attempts + tried,
        cost_try_last=select(xp, lv, cost_try, c.cost_try_last),
    )
    if refit and cfg.damping.needs_spectrum:
        judged = refit_damping(cfg, xp, prep, s, judged)
    return judged


def refit_damping(cfg: LoopConfig, xp, prep: Prepared, s: LoopState, c: Attempt,
                  all_live: bool = False) -> Attempt:
    """After ``judge(refit=False)``: the next attempt's λ from the trust radius that the
    judgement updated (``c.nu``), on this iteration's factorisation, for the problems that
    still attempt (rejected and running); those whose λ exceeds the policy's ceiling, or
    whose radius has shrunk to nothing, stop at the damping limit, as ``judge`` stops a
    Nielsen or trainlm λ. ``all_live=True``: the caller knows that every problem attempts
    again. A no-op for a policy without a trust radius."""
    if not cfg.damping.needs_spectrum:
        return c
    lv = None if all_live else live(xp, c)
    fitted = cfg.damping.fit(DampingState(c.lam, c.nu), prep.spectrum, xp)
    limit = _termination.damping_limit_status(
        verdicts.limit_cosine(xp, prep, s.f, verdicts.end_cosine(cfg, xp, prep)), xp)
    status = xp.where(cfg.damping.exhausted(fitted, xp), limit, c.status)
    return c._replace(lam=select(xp, lv, fitted.lam, c.lam),
                      status=_int(xp, select(xp, lv, status, c.status)))


def finish(cfg: LoopConfig, xp, s: LoopState, prep: Prepared, c: Attempt, f_new, j_new
           ) -> LoopState:
    """The state after the iteration, given r and J at the accepted points (``f_new``,
    ``j_new``; anything of the right shape where no step was accepted)."""
    acc = c.accepted
    j_ok = all_finite_rows(xp, j_new)
    status = xp.where(xp.logical_and(acc, xp.logical_not(j_ok)), int(Status.NON_FINITE),
                      c.status)
    active = prep.active
    return LoopState(
        x=select(xp, acc, c.x_new, s.x),
        f=select(xp, acc, f_new, s.f),
        j=select(xp, xp.logical_and(acc, j_ok), j_new, s.j),
        cost=xp.where(acc, c.cost_new, s.cost),
        lam=c.lam, nu=c.nu, d=prep.d,
        nfev=c.nfev + _int(xp, acc) * cfg.jac_nfev,
        njev=s.njev + _int(xp, acc),
        nit=s.nit + _int(xp, acc),
        status=_int(xp, status),
        last_step=select(xp, active, c.step, s.last_step),
        last_rho=select(xp, active, c.rho, s.last_rho),
        last_reduction=select(xp, active, s.cost - c.cost_try_last, s.last_reduction),
        x_norm=select(xp, active, prep.x_norm, s.x_norm),
    )


def history_row(cfg: LoopConfig, xp, it, new: LoopState, old_cost, step, rho, accepted,
                attempts):
    """The ``HISTORY_FIELDS`` row of problem 0 after iteration ``it``."""
    dt = new.cost.dtype
    g = gradient(cfg, xp, new.f, new.j)
    return history_rows(xp, xp.reshape(xp.cast(it, dt), (1,)), g[:1], new.cost[:1],
                        old_cost[:1], step[:1], rho[:1], new.lam[:1], accepted[:1],
                        attempts[:1], new.nfev[:1])[0]


def history_rows(xp, it, g, cost, old_cost, step, rho, lam, accepted, attempts, nfev):
    """``HISTORY_FIELDS`` rows (T, 10) from T records along the leading axis (one problem at
    T iterations, when the host executor forms its history table at the end): the iteration
    number, cost, cost change, ‖g‖∞ (g the gradient, ``gradient``), step, ρ, λ, accepted,
    attempts, nfev."""
    dt = cost.dtype
    return xp.stack([xp.cast(it, dt), cost, old_cost - cost, xp.max(xp.abs(g), axis=-1), step,
                     rho, lam, xp.cast(accepted, dt), xp.cast(attempts, dt),
                     xp.cast(nfev, dt)], axis=-1)
