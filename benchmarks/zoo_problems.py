"""The zoo's problems (``benchmarks/zoo.py``): users' models written once against a namespace.

Every model is ``f(m, x, *p)`` with ``m`` a namespace of ``exp``, ``log``, ``sin``, ``cos``,
``sqrt`` and ``concat``: NumPy's (``NP``), TensorFlow's or ``jax.numpy``'s, so that one text
gives the NumPy model, the TensorFlow model and the exact Jacobian that judges both.
``zoo()`` lists the problems (data, truth, start, sigma, bounds, loss, outliers), ``far_starts``
the same from starts 2× and 10× off, ``data`` their seeded data and ``whitener`` the weighting
of the residuals by sigma (1-D or a covariance).
"""

from __future__ import annotations

import types
from typing import Callable, NamedTuple

import numpy as np

NP = types.SimpleNamespace(exp=np.exp, log=np.log, sin=np.sin, cos=np.cos, sqrt=np.sqrt,
                           concat=lambda a: np.concatenate(a, 0))

# physical constants (SI)
KB, H, R, C = 1.380649e-23, 6.62607015e-34, 8.314462618, 2.99792458e8


# ---- the models, f(m, x, *p) -------------------------------------------------------------

def hill4(m, x, bottom, top, ec50, n):
    return bottom + (top - bottom) / (1.0 + (x / ec50) ** n)


def hill5(m, x, bottom, top, ec50, n, s):
    return bottom + (top - bottom) / (1.0 + (x / ec50) ** n) ** s


def mm_inhibition(m, s, vmax, km, ki):
    return vmax * s / (km + s + s * s / ki)


def gompertz(m, t, a, b, c):
    return a * m.exp(-b * m.exp(-c * t))


def richards(m, t, a, k, tm, nu):
    return a / (1.0 + nu * m.exp(-k * (t - tm))) ** (1.0 / nu)


def logistic(m, t, k, r, t0):
    return k / (1.0 + m.exp(-r * (t - t0)))


def lorentz3_slope(m, x, a1, c1, w1, a2, c2, w2, a3, c3, w3, b0, b1):
    def lor(a, c, w):
        return a * w * w / ((x - c) ** 2 + w * w)
    return lor(a1, c1, w1) + lor(a2, c2, w2) + lor(a3, c3, w3) + b0 + b1 * x


def gauss2(m, x, a1, c1, s1, a2, c2, s2, b):
    return (a1 * m.exp(-0.5 * ((x - c1) / s1) ** 2) + a2 * m.exp(-0.5 * ((x - c2) / s2) ** 2)
            + b)


def pvoigt2(m, x, a1, c1, w1, e1, a2, c2, w2, e2, b0, b1):
    def pv(a, c, w, e):
        u = (x - c) / w
        return a * (e / (1.0 + u * u) + (1.0 - e) * m.exp(-np.log(2.0) * u * u))
    return pv(a1, c1, w1, e1) + pv(a2, c2, w2, e2) + b0 + b1 * x


def damped_sine(m, t, a, tau, f, phi, c):
    return a * m.exp(-t / tau) * m.sin(2.0 * np.pi * f * t + phi) + c


def arrhenius(m, temp, a, ea):
    return a * m.exp(-ea / (R * temp))


def eyring(m, temp, dh, ds):
    return KB * temp / H * m.exp(ds / R) * m.exp(-dh / (R * temp))


def biexp(m, t, a, alpha, b, beta):
    return a * m.exp(-alpha * t) + b * m.exp(-beta * t)


def kohlrausch(m, t, a, tau, beta, c):
    return a * m.exp(-((t / tau) ** beta)) + c


def power_offset(m, x, a, b, c):
    return a * x ** b + c


def planck(m, lam, s, temp):
    return s * 2.0 * H * C * C / lam ** 5 / (m.exp(H * C / (lam * KB * temp)) - 1.0)


def debye(m, w, eps_inf, deps, tau):
    """ε(ω) = ε∞ + Δε/(1 + iωτ), stacked (real, −imaginary)."""
    wt = w * tau
    den = 1.0 + wt * wt
    return m.concat([eps_inf + deps / den, deps * wt / den])


def exp3(m, t, a1, k1, a2, k2, a3, k3):
    return a1 * m.exp(-k1 * t) + a2 * m.exp(-k2 * t) + a3 * m.exp(-k3 * t)


def monod(m, s, mumax, ks):
    return mumax * s / (ks + s)


def rational(m, x, a, b, c, d):
    return (a + b * x) / (1.0 + c * x + d * x * x)


def exp_offset(m, t, a, k, c):
    return a * m.exp(-k * t) + c


def gauss1(m, x, a, c, s):
    return a * m.exp(-0.5 * ((x - c) / s) ** 2)


def langmuir(m, p, qmax, kd):
    return qmax * kd * p / (1.0 + kd * p)


def exp_line(m, t, a, k, b0, b1):
    return a * m.exp(-k * t) + b0 + b1 * t


def gauss2d(m, xy, a, x0, y0, sx, sy, b):
    return a * m.exp(-0.5 * (((xy[0] - x0) / sx) ** 2 + ((xy[1] - y0) / sy) ** 2)) + b


def gauss_baseline(m, x, a, c, s, b):
    return a * m.exp(-0.5 * ((x - c) / s) ** 2) + b


def sine(m, t, a, f, phi, c):
    return a * m.sin(2.0 * np.pi * f * t + phi) + c


# ---- the problems --------------------------------------------------------------------------

class Problem(NamedTuple):
    name: str
    model: Callable  # model(m, x, *p)
    x: np.ndarray
    p_true: tuple
    p0: tuple
    noise: float  # Gaussian noise: noise · (|y| if rel else 1)
    rel: bool = False  # relative noise
    sigma: str | None = None  # None, "abs" (absolute_sigma=True) or "rel" (False)
    bounds: tuple = (-np.inf, np.inf)
    loss: str = "linear"
    f_scale: float = 1.0
    outliers: tuple = ()  # (index, offset) pairs
    tf: bool = False  # also fit the TensorFlow model
    corr: float = 0.0  # AR(1) correlation of the noise: sigma given as its (m, m) covariance
    dtype: str = "float64"  # of xdata and ydata as the user passes them
    nans: tuple = ()  # indices of ydata set to NaN, fitted with nan_policy='omit'


def zoo() -> list[Problem]:
    dose = np.repeat(np.logspace(-3, 2, 11), 3)
    t_grow = np.linspace(0, 20, 41)
    lam = np.linspace(300e-9, 2500e-9, 60)
    return [
        Problem("hill4", hill4, dose, (0.05, 1.0, 0.8, 1.3), (0.0, 1.0, 1.0, 1.0), 0.03,
                tf=True),
        Problem("hill4_far10", hill4, dose, (0.05, 1.0, 0.8, 1.3), (0.0, 1.0, 8.0, 1.0), 0.03),
        Problem("hill5", hill5, dose, (0.05, 1.0, 0.8, 1.3, 0.6), (0.0, 1.0, 1.0, 1.0, 1.0),
                0.02),
        Problem("mm_inhibition", mm_inhibition, np.linspace(0.2, 50, 25), (10.0, 2.0, 20.0),
                (5.0, 1.0, 100.0), 0.03, rel=True, sigma="rel", tf=True),
        Problem("gompertz", gompertz, t_grow, (5.0, 8.0, 0.4), (4.0, 4.0, 0.2), 0.05, tf=True),
        Problem("gompertz_bounds", gompertz, t_grow, (5.0, 8.0, 0.4), (2.0, 1.0, 1.0), 0.05,
                bounds=([0, 0, 0], [10, 50, 2])),
        Problem("richards", richards, t_grow, (5.0, 0.6, 8.0, 0.5), (4.0, 1.0, 10.0, 1.0), 0.05),
        Problem("logistic_bound_active", logistic, t_grow, (5.0, 1.0, 8.0), (4.0, 0.5, 10.0),
                0.05, bounds=([0, 0, 0], [np.inf, 0.8, np.inf])),
        Problem("logistic_far2", logistic, t_grow, (5.0, 1.0, 8.0), (10.0, 2.0, 4.0), 0.05,
                tf=True),
        Problem("lorentz3_slope", lorentz3_slope, np.linspace(0, 10, 200),
                (3.0, 3.0, 0.4, 2.0, 4.0, 0.6, 1.5, 6.5, 0.5, 0.5, 0.05),
                (2.5, 3.2, 0.5, 2.5, 4.2, 0.5, 1.0, 6.3, 0.4, 0.3, 0.0), 0.05),
        Problem("gauss2_overlap", gauss2, np.linspace(-5, 5, 120),
                (2.0, -0.6, 0.8, 1.5, 0.9, 1.0, 0.1), (1.5, -1.0, 1.0, 1.5, 1.5, 1.0, 0.0),
                0.03, tf=True),
        Problem("pvoigt2_bounds", pvoigt2, np.linspace(0, 10, 150),
                (3.0, 4.0, 0.5, 0.3, 2.0, 5.2, 0.6, 0.8, 0.2, 0.02),
                (2.0, 3.8, 0.7, 0.5, 2.0, 5.5, 0.5, 0.5, 0.0, 0.0), 0.03,
                bounds=([0, 0, 0.01, 0, 0, 0, 0.01, 0, -np.inf, -np.inf],
                        [np.inf, 10, 5, 1, np.inf, 10, 5, 1, np.inf, np.inf])),
        Problem("damped_sine_f15", damped_sine, np.linspace(0, 10, 200),
                (2.0, 4.0, 1.3, 0.4, 0.1), (2.0, 4.0, 1.3 * 1.15, 0.0, 0.0), 0.1, tf=True),
        Problem("damped_sine_f10", damped_sine, np.linspace(0, 10, 200),
                (2.0, 4.0, 1.3, 0.4, 0.1), (1.0, 2.0, 1.3 * 0.9, 0.0, 0.0), 0.1),
        Problem("arrhenius", arrhenius, np.linspace(300, 400, 21), (1e13, 8e4), (1e12, 7e4),
                0.02, rel=True, sigma="rel", tf=True),
        Problem("eyring", eyring, np.linspace(280, 360, 17), (6e4, -50.0), (5e4, 0.0), 0.03,
                rel=True, sigma="abs"),
        Problem("pk_biexp_abs", biexp, np.array([0.25, 0.5, 1, 1.5, 2, 3, 4, 6, 8, 12, 24.]),
                (8.0, 1.2, 2.0, 0.1), (5.0, 1.0, 1.0, 0.05), 0.05, rel=True, sigma="abs",
                tf=True),
        Problem("pk_biexp_rel", biexp, np.array([0.25, 0.5, 1, 1.5, 2, 3, 4, 6, 8, 12, 24.]),
                (8.0, 1.2, 2.0, 0.1), (16.0, 2.4, 4.0, 0.2), 0.05, rel=True, sigma="rel"),
        Problem("kohlrausch", kohlrausch, np.logspace(-2, 2, 50), (1.0, 3.0, 0.6, 0.02),
                (1.0, 1.0, 1.0, 0.0), 0.01, tf=True),
        Problem("power_offset", power_offset, np.linspace(1, 100, 40), (2.0, 0.7, 5.0),
                (1.0, 1.0, 0.0), 0.3),
        Problem("planck", planck, lam, (1e-6, 5500.0), (1e-6, 3000.0), 0.01, rel=True,
                sigma="rel"),
        Problem("debye", debye, np.logspace(2, 9, 30), (3.0, 75.0, 8e-6), (1.0, 50.0, 1e-5),
                0.2, tf=True),
        Problem("exp3", exp3, np.linspace(0, 20, 100), (3.0, 5.0, 2.0, 1.0, 1.0, 0.2),
                (2.0, 3.0, 2.0, 0.8, 2.0, 0.1), 0.005),
        Problem("monod_far10", monod, np.array([0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50.]),
                (0.8, 2.0), (0.08, 20.0), 0.02),
        Problem("rational", rational, np.linspace(0, 5, 40), (1.0, 2.0, 0.5, 0.3),
                (1.0, 1.0, 0.0, 0.0), 0.01),
        Problem("exp_offset_bound_active", exp_offset, np.linspace(0, 5, 30),
                (2.0, 1.0, -0.05), (1.0, 0.5, 0.5), 0.02, bounds=([0, 0, 0], np.inf)),
        Problem("gauss_exact", gauss1, np.linspace(-4, 4, 41), (2.0, 0.3, 0.9), (1.0, 0.0, 1.5),
                0.0, tf=True),
        Problem("langmuir_nonident", langmuir, np.linspace(0.05, 4.0, 20), (100.0, 0.05),
                (50.0, 0.1), 0.02),
        Problem("exp_soft_l1", exp_offset, np.linspace(0, 5, 40), (2.0, 1.3, 0.5),
                (1.0, 0.5, 0.0), 0.02, loss="soft_l1", f_scale=0.05,
                outliers=((5, 1.5), (22, -1.0)), tf=True),
        Problem("gauss_huber", gauss1, np.linspace(-4, 4, 60), (3.0, 0.5, 0.8),
                (2.0, 0.0, 1.5), 0.05, loss="huber", f_scale=0.1,
                outliers=((10, 2.0), (30, -3.0), (45, 2.5))),
        Problem("mm_cauchy_sigma", monod, np.linspace(0.1, 10, 25), (2.5, 0.7), (1.0, 1.0),
                0.03, rel=True, sigma="rel", loss="cauchy", f_scale=2.0,
                outliers=((12, 1.0),)),
        Problem("exp_line_huber_bounds", exp_line, np.linspace(0, 8, 50),
                (3.0, 0.8, 0.2, 0.05), (1.0, 2.0, 0.0, 0.0), 0.02, loss="huber",
                f_scale=0.05, bounds=([0, 0, -1, -1], [10, 5, 1, 1]), outliers=((3, 2.0),),
                tf=True),
        Problem("gauss2d", gauss2d,
                np.stack([g.ravel() for g in np.meshgrid(np.linspace(-3, 3, 15),
                                                         np.linspace(-2, 2, 15))]),
                (4.0, 0.4, -0.3, 1.1, 0.7, 0.2), (3.0, 0.0, 0.0, 1.0, 1.0, 0.0), 0.1,
                tf=True),
        Problem("exp_fullcov", exp_offset, np.linspace(0, 5, 40), (2.0, 1.3, 0.5),
                (1.0, 0.5, 0.0), 0.02, sigma="abs", corr=0.6),
        Problem("logistic_float32", logistic, t_grow, (5.0, 1.0, 8.0), (4.0, 0.5, 10.0), 0.05,
                dtype="float32"),
        Problem("counts_baseline", gauss_baseline, np.linspace(-3, 3, 80),
                (5000.0, 0.3, 0.5, 1e6), (3000.0, 0.0, 1.0, 0.99e6), 1000.0),
        Problem("p0_on_bound", exp_offset, np.linspace(0, 5, 30), (2.0, 1.0, 0.3),
                (1.0, 0.5, 0.0), 0.02, bounds=([0, 0, 0], np.inf)),
        Problem("monod_nan_omit", monod, np.linspace(0.1, 10, 25), (2.5, 0.7), (1.0, 1.0),
                0.02, nans=(3, 17)),
        Problem("sine_unix_time", sine, 1.7e9 + np.linspace(0, 3 * 86400, 200),
                (1.0, 1 / 86400, 0.3, 0.2), (1.0, (1 + 2e-6) / 86400, 0.0, 0.0), 0.1),
        Problem("ns_decay", exp_offset, np.linspace(0, 50e-9, 60), (1.0, 1e8, 0.05),
                (1.0, 5e7, 0.0), 0.01),
    ]


def far_starts(prob: Problem, factors=(2.0, 10.0)) -> list[Problem]:
    """The problem from starts k× off the truth: parameters multiplied by k and 1/k in turn
    (p₀ = p_true · (k, 1/k, k, ...)), moved 1% inside a finite bound they would pass."""
    out = []
    n = len(prob.p_true)
    lb = np.broadcast_to(np.asarray(prob.bounds[0], float), (n,))
    ub = np.broadcast_to(np.asarray(prob.bounds[1], float), (n,))
    for k in factors:
        p0 = np.asarray(prob.p_true, float) * np.where(np.arange(n) % 2 == 0, k, 1.0 / k)
        span = np.where(np.isfinite(ub - lb), ub - lb, 1.0)
        p0 = np.clip(p0, lb + 0.01 * span, ub - 0.01 * span)
        out.append(prob._replace(name=f"{prob.name}@x{k:g}", p0=tuple(p0), tf=False))
    return out


def data(prob: Problem, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(y, sigma): the model at p_true with seeded noise and the outliers; sigma where used."""
    rng = np.random.default_rng(seed)
    clean = np.asarray(prob.model(NP, prob.x, *prob.p_true), float)
    scale = np.abs(clean) if prob.rel else np.ones_like(clean)
    e = rng.standard_normal(clean.size)
    if prob.corr:  # AR(1): e_i = c e_{i-1} + sqrt(1 - c^2) z_i, unit variance
        for i in range(1, e.size):
            e[i] = prob.corr * e[i - 1] + np.sqrt(1.0 - prob.corr ** 2) * e[i]
    y = clean + prob.noise * scale * e
    for i, off in prob.outliers:
        y[i] += off
    y[list(prob.nans)] = np.nan
    sigma = prob.noise * scale if prob.sigma else None
    if prob.corr:
        lag = np.abs(np.subtract.outer(np.arange(y.size), np.arange(y.size)))
        sigma = np.outer(sigma, sigma) * prob.corr ** lag
    return y.astype(prob.dtype), sigma


def whitener(sigma, keep) -> Callable:
    """v ↦ the weighted residuals of the points kept: v/σ, L⁻¹v for a covariance LLᵀ, v."""
    if sigma is None:
        return lambda v: v
    if np.ndim(sigma) == 1:
        s = sigma[keep]
        return lambda v: v / s
    inv = np.linalg.inv(np.linalg.cholesky(sigma[np.ix_(keep, keep)]))
    return lambda v: inv @ v
