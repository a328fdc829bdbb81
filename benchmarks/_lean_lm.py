"""A minimal Levenberg-Marquardt loop in Python and NumPy: the floor of any Python-level
executor, for ``single_fit.py``'s ``python-floor`` form and ``instructions.py``.

Not marquardt's method and not for use: no bounds, losses, trust radius, safeguards or status
beyond a flag. It keeps what every LM iteration needs, each as one NumPy call on the small
arrays: forward differences for J (n + 1 calls of the model), JᵀJ and Jᵀr, Marquardt's
D = running max of diag(JᵀJ), a Cholesky solve of (JᵀJ + λD)δ = −Jᵀr, the gain ratio ρ and
Nielsen's (1999) λ update, MINPACK's relative tests on the cost and the step. What it costs
a fit beyond the model's own calls is what Python and NumPy charge for that much work.
"""

from __future__ import annotations

import numpy as np

__all__ = ["lean_curve_fit"]

_SQRT_EPS = float(np.sqrt(np.finfo(float).eps))


def lean_curve_fit(f, xdata, ydata, p0, ftol=1.49012e-8, xtol=1.49012e-8, max_nfev=2000):
    """``(popt, nfev)`` for ``ydata ≈ f(xdata, *p)`` by the loop above."""
    x = np.array(p0, dtype=float)
    n = x.size

    def residual(p):
        return f(xdata, *p) - ydata

    r = residual(x)
    nfev = 1
    cost = 0.5 * float(r @ r)
    d = np.zeros(n)
    lam = nu = None
    jac = np.empty((r.size, n))
    while nfev < max_nfev:
        h = _SQRT_EPS * np.maximum(1.0, np.abs(x))
        for j in range(n):
            xj = x.copy()
            xj[j] += h[j]
            jac[:, j] = (residual(xj) - r) / h[j]
        nfev += n
        a = jac.T @ jac
        g = jac.T @ r
        d = np.maximum(d, np.diag(a))
        if lam is None:
            lam, nu = 1e-3 * float(np.max(np.diag(a) / d)), 2.0
        while nfev < max_nfev:
            chol = np.linalg.cholesky(a + lam * np.diag(d))
            step = -np.linalg.solve(chol.T, np.linalg.solve(chol, g))
            r_new = residual(x + step)
            nfev += 1
            cost_new = 0.5 * float(r_new @ r_new)
            predicted = -float(g @ step) - 0.5 * float(step @ (a @ step))
            rho = (cost - cost_new) / predicted if predicted > 0 else -1.0
            if rho > 0:
                lam *= max(1.0 / 3.0, 1.0 - (2.0 * rho - 1.0) ** 3)
                nu = 2.0
                small_f = cost - cost_new <= ftol * cost
                small_x = np.linalg.norm(step) <= xtol * (xtol + np.linalg.norm(x))
                x, r, cost = x + step, r_new, cost_new
                if small_f or small_x:
                    return x, nfev
                break
            lam *= nu
            nu *= 2.0
    return x, nfev
