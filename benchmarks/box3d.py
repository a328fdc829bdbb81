"""Why MGH Box 3-D from 10·x0 and 100·x0 ends at f = 0.0756 (ours, MINPACK) or at 0 (trf).

Box 3-D (Moré, Garbow & Hillstrom 1981, problem 12): rᵢ = e^{−tᵢx₁} − e^{−tᵢx₂} − x₃(e^{−tᵢ} −
e^{−10tᵢ}), tᵢ = i/10, i = 1..10. f = Σ rᵢ² is 0 at (1, 10, 1), (10, 1, −1) and on the line
x₁ = x₂, x₃ = 0, and tends to 0 as x₁, x₂ → ∞ with x₃ = 0; as x₂ → ∞ alone it tends to the
2-parameter minimum f = 0.0756 at x₁ = 0.6136, x₃ = 1.320 (a stationary point at infinity).

What this prints, each line measured in this run:

1. The final f, evaluations and x of marquardt (defaults, and ``x_scale=1.0``), MINPACK ``lm``
   (``x_scale='jac'``, its default, and 1.0) and SciPy ``trf`` (tolerances 1e-15,
   ``x_scale=1.0``, its default, and ``'jac'``), from 10·x0 and 100·x0.
2. The squared column norms of J at the start: x₂'s column is t e^{−tx₂}, 2e-11 at x₂ = 100
   and 1e-89 at x₂ = 1000, so Moré's D (diag JᵀJ, MINPACK's and ours) lets x₂ take steps
   10⁵-10⁴⁴ times longer than x₁, x₃ for the same scaled length.
3. The points ours evaluates first, from 10·x0: x₂ = −6.2e4 (overflow), then 4.2e6 and 1.1e6
   (rejected) and 2.8e5 (accepted, ρ = 1.26: the cost does fall as e^{−tx₂} → 0), after which
   x₂'s column is 0 in floating point and x₂ is frozen: the rest of the fit is the 2-parameter
   problem in x₁, x₃, whose minimum is f = 0.0756. That fit ends ``STALLED``, and since
   2026-12-05 ``least_squares`` then fits the start again from x0 with D = I (item 1's
   defaults: f = 1e-64 after 41 + 10 evaluations); from 100·x0 the scaled fit ends by
   ``ftol`` at x₂'s exactly zero column and D = I ends at 0.0756 too.
4. From 10·x0, a sweep of ``x_scale`` (D = diag(1/x_scale²)) for ours and trf: ours solves the
   start when x₂'s scale is at most x₁'s and x₃'s (D = I among them) and fails from twice
   theirs up; trf likewise, but for one scale (10×) where its path happens to go elsewhere.
   Moré's D makes x₂'s scale 4e5 times x₁'s here.
5. trf's first step from 100·x0 by SciPy's own subproblem solver: J has an exactly zero singular
   value (x₂'s column 1e-45 rounds away), the minimum-norm Gauss-Newton step (length 1999) fits
   in Δ₀ = ‖x0‖ = 2236, yet ``solve_lsq_trust_region`` returns a step of length Δ with a
   negative Levenberg-Marquardt parameter α (not a solution of the trust-region subproblem),
   which overshoots x₁ to 183; there both exponentials vanish and x₃ → 0 gives f → 0.
6. f = 0.0756 at x₂ → ∞ is a saddle at infinity, not a minimum: the least f over x₁, x₃ at
   fixed x₂ (SciPy ``lm`` from (0.6136, 1.32)) falls monotonically as x₂ comes back from
   1000 (0.0755887) to 10 (0); e^{−0.1x₂} is its only way in, and its slope underflows.
7. The cost along x₂ alone from the stall of the fit with D = I at (0.6136, 1000, 1.32)
   (x₂'s column 4e-45, gradient cosine 0.84): flat to working precision down to x₂ ≈ 400
   (f changes in its 14th digit at 330), below the stall's f from there down to x₂ ≈ 11,
   above it lower down, infinite (overflow) below x₂ ≈ −355. The model's step along x₂
   alone there is −6e43; with Moré's D afresh, the step must shrink by 10⁴¹
   (λ far past the policies' ceiling 1e32), and steps that land on the flat stretch have
   predicted and actual changes of F both below its rounding (ρ is then a ratio of two
   rounding errors: 0 when the cost does not change).
8. The default from 100·x0 since the continuation of stalled fits (``_restart.fit_again``):
   the scaled fit's ``ftol`` success at x₂'s exactly zero column, the fit from x0 with
   D = I (``STALLED`` at item 7's point), and the fit continued from there with Moré's D
   afresh, no ceiling on λ and the gain ratio's noise floor (plateau steps count as ρ = 1):
   x₂ walks down the flat stretch in accepted steps and the fit ends at (1, 10, 1), f = 0.

Usage::

    PYTHONPATH=src python benchmarks/box3d.py
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import warnings

import numpy as np
import scipy.optimize
from scipy.optimize._lsq.common import solve_lsq_trust_region

import marquardt

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
from mgh_problems import BY_NAME  # noqa: E402

P = BY_NAME["box3d"]
TOL15 = dict(ftol=1e-15, xtol=1e-15, gtol=1e-15)


def _f(x) -> float:
    r = P.fun(x)
    return float(r @ r) if np.all(np.isfinite(r)) else float("inf")


def _solve(solver: str, x0, x_scale):
    if solver == "ours":
        res = marquardt.least_squares(P.fun, x0, jac=P.jac, x_scale=x_scale)
    elif solver == "lm":
        res = scipy.optimize.least_squares(P.fun, x0, jac=P.jac, method="lm", x_scale=x_scale)
    else:
        res = scipy.optimize.least_squares(P.fun, x0, jac=P.jac, method="trf", x_scale=x_scale,
                                           **TOL15)
    return res


def main() -> None:
    np.set_printoptions(precision=4, linewidth=120)
    warnings.simplefilter("ignore")
    np.seterr(all="ignore")
    print("1. final f, evaluations, status, x")
    for k in (10.0, 100.0):
        x0 = k * np.asarray(P.x0)
        for solver, x_scale in (("ours", "jac"), ("ours", 1.0), ("lm", "jac"), ("lm", 1.0),
                                ("trf", 1.0), ("trf", "jac")):
            res = _solve(solver, x0, x_scale)
            print(f"  x{int(k):<4} {solver:<5} x_scale={x_scale!s:<4} f = {_f(res.x):.4e}  "
                  f"nfev {res.nfev:4d}  status {res.status:3d}  x = {res.x}")
    print("2. squared column norms of J at the start (Moré's D at iteration 0)")
    for k in (10.0, 100.0):
        j = P.jac(k * np.asarray(P.x0))
        print(f"  x{int(k):<4} {np.sum(j * j, axis=0)}")
    print("3. ours from 10·x0: the first points evaluated")
    seen = []

    def fun(x):
        seen.append(np.array(x))
        return P.fun(x)

    marquardt.least_squares(fun, 10.0 * np.asarray(P.x0), jac=P.jac, max_nfev=8)
    for x in seen:
        print(f"  x = {x}  f = {_f(x):.4e}  x2's column^2 = {np.sum(P.jac(x)[:, 1] ** 2):.2e}")
    print("4. 10·x0, x_scale sweep: final f of ours and trf")
    for xs in ((1, 1, 1), (0.5, 0.5, 0.5), (1, 0.1, 1), (1, 0.5, 1), (0.8, 1, 0.8),
               (0.51, 1, 0.57), (1, 2, 1), (1, 10, 1)):
        scale = np.asarray(xs, dtype=float)
        ours = _solve("ours", 10.0 * np.asarray(P.x0), scale)
        trf = _solve("trf", 10.0 * np.asarray(P.x0), scale)
        print(f"  x_scale {xs!s:<16} ours {_f(ours.x):.3e}  trf {_f(trf.x):.3e}")
    print("5. trf's first step from 100·x0 (SciPy's solve_lsq_trust_region)")
    x0 = 100.0 * np.asarray(P.x0)
    j, r = P.jac(x0), P.fun(x0)
    u, s, vt = np.linalg.svd(j, full_matrices=False)
    delta = float(np.linalg.norm(x0))
    step, alpha, _ = solve_lsq_trust_region(3, 10, u.T @ r, s, vt.T, delta)
    keep = s > 0
    gn = -vt.T[:, keep] @ ((u.T @ r)[keep] / s[keep])
    print(f"  singular values {s}; Delta0 = {delta:.1f}")
    print(f"  minimum-norm Gauss-Newton step {gn}, length {np.linalg.norm(gn):.1f}")
    print(f"  trf's step {step}, length {np.linalg.norm(step):.1f}, alpha = {alpha:.4g}")
    print("6. least f over x1, x3 at fixed x2 (the 2-parameter minimum at x2 -> inf: 0.0756)")
    for x2 in (1000.0, 200.0, 100.0, 50.0, 30.0, 20.0, 15.0, 12.0, 10.0):
        sub = scipy.optimize.least_squares(lambda z: P.fun(np.array([z[0], x2, z[1]])),
                                           [0.6136, 1.32], method="lm", xtol=1e-15, ftol=1e-15)
        print(f"  x2 = {x2:6.0f}  f = {2.0 * sub.cost:.7e}  x1, x3 = {sub.x}")
    print("7. f along x2 alone from the D = I stall (0.6136, x2, 1.32)")
    stall = marquardt.least_squares(P.fun, x0, jac=P.jac, x_scale=1.0)
    print(f"  the stall: x = {stall.x}, status {stall.status}, f = {_f(stall.x):.10e}")
    for x2 in (1000.0, 646.0, 400.0, 330.0, 300.0, 200.0, 100.0, 30.0, 15.0, 11.0, 10.0, 0.0,
               -350.0, -360.0):
        x = np.array([stall.x[0], x2, stall.x[2]])
        print(f"  x2 = {x2:7.0f}  f = {_f(x):.16e}")
    j = P.jac(stall.x)
    g = j.T @ P.fun(stall.x)
    print(f"  model's step along x2 alone: -g2 / |J2|^2 = {-g[1] / np.sum(j[:, 1] ** 2):.3e}")
    print("8. the default from 100·x0: the three fits")
    res = marquardt.least_squares(P.fun, x0, jac=P.jac)
    print(f"  f = {_f(res.x):.4e}  nfev {res.nfev}  status {res.status}  x = {res.x}")


if __name__ == "__main__":
    argparse.ArgumentParser(description=__doc__.split("\n")[0]).parse_args()
    main()
