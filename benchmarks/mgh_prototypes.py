"""Two damping ideas tried as small NumPy prototypes on the MGH starts we do not solve.

Not library code: dense, one problem, no bounds, for measuring whether an idea would move the
starts listed in docs/benchmarks.md (section "Moré-Garbow-Hillstrom hard starts") before it
is built into the core (``marquardt._core.iteration``) and every executor.

* ``nielsen``: our default loop re-written plainly (Marquardt's running-max D, Nielsen's rule,
  λ₀ = 1e-3 on the scaled system, no ftol/xtol/gtol tests); it reproduces ``least_squares``
  on Meyer ×10 and ×100, not everywhere (Gaussian ×100: 0.38 here, solved by ours).
* ``geodesic``: the same with geodesic acceleration (Transtrum & Sethna 2012): a second
  residual evaluation at x + h v gives the directional second derivative r_vv; the step is
  v + a/2 with (JᵀJ + λD) a = −Jᵀr_vv, taken only when 2‖a‖ ≤ α‖v‖ (h = 0.1, α = 0.75).
* ``trust``: λ from a trust radius Δ in the scaled norm, as MINPACK's lmder and SciPy's trf
  (Moré 1978): λ = 0 when the Gauss-Newton step fits in Δ, else the λ whose step has length
  Δ (secular equation on the SVD of J D^-1/2); Δ₀ = factor ‖√D x₀‖; Δ ← ¼ min(Δ, ‖p‖) when
  ρ < ¼, Δ ← 2‖p‖ when ρ > ¾ or the step was Gauss-Newton.

Usage: PYTHONPATH=src python benchmarks/mgh_prototypes.py

References:
    M. K. Transtrum, J. P. Sethna, "Improvements to the Levenberg-Marquardt algorithm for
    nonlinear least-squares minimization", arXiv:1201.5885 (2012).
    J. J. Moré, "The Levenberg-Marquardt algorithm: implementation and theory", Numerical
    Analysis, Lecture Notes in Mathematics 630, 105-116 (1978).
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
from mgh_problems import BY_NAME  # noqa: E402

STARTS = [("meyer", 10), ("meyer", 100), ("beale", 100), ("box3d", 10), ("box3d", 100),
          ("gaussian", 100), ("powell_badly_scaled", 10), ("kowalik_osborne", 10),
          ("osborne1", 100), ("bard", 100)]


def nielsen(p, x0, geodesic=False, max_nfev=1000, tau=1e-3, h=0.1, alpha=0.75):
    x = np.asarray(x0, float)
    r, jac, nfev = p.fun(x), p.jac(x), 1
    d = np.sum(jac * jac, 0)
    d[d == 0] = 1.0
    lam, nu, cost = tau, 2.0, 0.5 * r @ r
    while nfev < max_nfev and cost > 0:
        d = np.maximum(d, np.sum(jac * jac, 0))
        a_mat, g = jac.T @ jac, jac.T @ r
        while nfev < max_nfev:
            m = a_mat + lam * np.diag(d)
            step = v = np.linalg.solve(m, -g)
            if geodesic:
                rvv = (2 / h) * ((p.fun(x + h * v) - r) / h - jac @ v)
                nfev += 1
                acc = np.linalg.solve(m, -jac.T @ rvv)
                ok = np.all(np.isfinite(acc)) and (2 * np.sqrt(acc @ (d * acc))
                                                   <= alpha * np.sqrt(v @ (d * v)))
                if not ok:
                    lam, nu = lam * nu, 2 * nu
                    continue
                step = v + 0.5 * acc
            rn = p.fun(x + step)
            nfev += 1
            cn = 0.5 * rn @ rn if np.all(np.isfinite(rn)) else np.inf
            pred = -g @ step - 0.5 * np.sum((jac @ step) ** 2)
            rho = (cost - cn) / pred if pred > 0 and np.isfinite(cn) else -np.inf
            if rho > 1e-3:
                x, r, cost = x + step, rn, cn
                jac = p.jac(x)
                lam, nu = lam * max(1 / 3, 1 - (2 * rho - 1) ** 3), 2.0
                break
            lam, nu = lam * nu, 2 * nu
            if lam > 1e32:
                return 2 * cost, nfev
    return 2 * cost, nfev


def _gauss_newton(s, c):
    keep = s > 1e-15 * s.max()
    return np.where(keep, c / np.where(keep, s, 1.0), 0.0)


def _lam_for_radius(s, c, delta):
    """Smallest λ ≥ 0 with ‖s c / (s² + λ)‖ ≤ Δ (bisection in log λ)."""
    if np.linalg.norm(_gauss_newton(s, c)) <= delta:
        return 0.0
    hi = max(s.max() ** 2, 1e-300)
    while np.linalg.norm(s * c / (s ** 2 + hi)) > delta:
        hi *= 10
    lo = hi * 1e-30
    for _ in range(100):
        mid = np.sqrt(lo * hi)
        lo, hi = (mid, hi) if np.linalg.norm(s * c / (s ** 2 + mid)) > delta else (lo, mid)
    return hi


def trust(p, x0, factor=1.0, max_nfev=1000):
    x = np.asarray(x0, float)
    r, jac, nfev = p.fun(x), p.jac(x), 1
    d = np.sum(jac * jac, 0)
    d[d == 0] = 1.0
    cost = 0.5 * r @ r
    delta = factor * np.linalg.norm(np.sqrt(d) * x) or factor
    while nfev < max_nfev and cost > 0:
        d = np.maximum(d, np.sum(jac * jac, 0))
        sd = np.sqrt(d)
        u, s, vt = np.linalg.svd(jac / sd, full_matrices=False)
        c = -(u.T @ r)
        while nfev < max_nfev:
            lam = _lam_for_radius(s, c, delta)
            z = vt.T @ (s * c / (s ** 2 + lam) if lam > 0 else _gauss_newton(s, c))
            step, pn = z / sd, np.linalg.norm(z)
            rn = p.fun(x + step)
            nfev += 1
            cn = 0.5 * rn @ rn if np.all(np.isfinite(rn)) else np.inf
            pred = -(jac.T @ r) @ step - 0.5 * np.sum((jac @ step) ** 2)
            rho = (cost - cn) / pred if pred > 0 and np.isfinite(cn) else -np.inf
            if rho < 0.25:
                delta = 0.25 * min(delta, pn)
            elif rho > 0.75 or lam == 0:
                delta = 2 * pn
            if rho > 1e-4:
                x, r, cost = x + step, rn, cn
                jac = p.jac(x)
                break
            if delta < 1e-15 * np.linalg.norm(sd * x):
                return 2 * cost, nfev
    return 2 * cost, nfev


def main():
    runs = {"nielsen": nielsen, "geodesic": lambda p, x0: nielsen(p, x0, geodesic=True),
            "trust Δ₀=‖√D x₀‖": trust, "trust Δ₀=100‖√D x₀‖": lambda p, x0: trust(p, x0, 100.0)}
    print(f"{'start':<24}" + "".join(f"{k:>24}" for k in runs))
    for name, k in STARTS:
        p = BY_NAME[name]
        row = f"{name + ' x' + str(k):<24}"
        for fn in runs.values():
            with np.errstate(all="ignore"):
                f, nfev = fn(p, k * np.asarray(p.x0, float))
            row += f"{f:>16.4e} {nfev:>6d} "
        print(row)
    print("f = Σ rᵢ² at the end, then evaluations (max 1000)")


if __name__ == "__main__":
    argparse.ArgumentParser(description=__doc__.split("\n")[0]).parse_args()
    main()
