"""The Moré-Garbow-Hillstrom nonlinear least-squares problems 1-19, with analytic Jacobians.

The 19 fixed-dimension problems of Moré, Garbow & Hillstrom (1981), all with m ≥ n, written
from the paper's definitions: residuals fᵢ(x), the Jacobian, the paper's start x0 and the
global minimum f* of f(x) = Σ fᵢ(x)² (given to more digits than the paper prints where they are
known; note SciPy's ``cost`` is f/2). Where the paper lets m vary, m is the value of MINPACK's
test driver (Jennrich-Sampson 10, Box 3-D 10, Brown-Dennis 20, Biggs EXP6 13) and 99 for Gulf
research. Shared by ``tests/test_mgh.py`` and ``benchmarks/mgh.py``.

Reference:
    J. J. Moré, B. S. Garbow, K. E. Hillstrom, "Testing unconstrained optimization software",
    ACM Transactions on Mathematical Software 7(1), 17-41 (1981).
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as np

__all__ = ["Problem", "PROBLEMS", "BY_NAME"]


class Problem(NamedTuple):
    """One MGH problem: residuals r(x) (m,), Jacobian J(x) (m, n), start x0, minimum f*."""

    name: str
    fun: Callable
    jac: Callable
    x0: tuple
    fstar: float


def _rosenbrock():
    def f(x):
        return np.array([10.0 * (x[1] - x[0] ** 2), 1.0 - x[0]])

    def j(x):
        return np.array([[-20.0 * x[0], 10.0], [-1.0, 0.0]])
    return Problem("rosenbrock", f, j, (-1.2, 1.0), 0.0)


def _freudenstein_roth():
    def f(x):
        a, b = x
        return np.array([-13.0 + a + ((5.0 - b) * b - 2.0) * b,
                         -29.0 + a + ((b + 1.0) * b - 14.0) * b])

    def j(x):
        b = x[1]
        return np.array([[1.0, -3.0 * b ** 2 + 10.0 * b - 2.0],
                         [1.0, 3.0 * b ** 2 + 2.0 * b - 14.0]])
    return Problem("freudenstein_roth", f, j, (0.5, -2.0), 0.0)


def _powell_badly_scaled():
    def f(x):
        return np.array([1e4 * x[0] * x[1] - 1.0, np.exp(-x[0]) + np.exp(-x[1]) - 1.0001])

    def j(x):
        return np.array([[1e4 * x[1], 1e4 * x[0]], [-np.exp(-x[0]), -np.exp(-x[1])]])
    return Problem("powell_badly_scaled", f, j, (0.0, 1.0), 0.0)


def _brown_badly_scaled():
    def f(x):
        return np.array([x[0] - 1e6, x[1] - 2e-6, x[0] * x[1] - 2.0])

    def j(x):
        return np.array([[1.0, 0.0], [0.0, 1.0], [x[1], x[0]]])
    return Problem("brown_badly_scaled", f, j, (1.0, 1.0), 0.0)


def _beale():
    y = np.array([1.5, 2.25, 2.625])
    i = np.arange(1, 4)

    def f(x):
        return y - x[0] * (1.0 - x[1] ** i)

    def j(x):
        return np.stack([-(1.0 - x[1] ** i), x[0] * i * x[1] ** (i - 1)], axis=1)
    return Problem("beale", f, j, (1.0, 1.0), 0.0)


def _jennrich_sampson(m=10):
    i = np.arange(1, m + 1, dtype=float)

    def f(x):
        return 2.0 + 2.0 * i - (np.exp(i * x[0]) + np.exp(i * x[1]))

    def j(x):
        return np.stack([-i * np.exp(i * x[0]), -i * np.exp(i * x[1])], axis=1)
    return Problem("jennrich_sampson", f, j, (0.3, 0.4), 124.362182355)


def _helical_valley():
    def theta(x):
        if x[0] == 0.0:
            return 0.25 * math.copysign(1.0, x[1])
        t = math.atan(x[1] / x[0]) / (2.0 * math.pi)
        return t + 0.5 if x[0] < 0.0 else t

    def f(x):
        return np.array([10.0 * (x[2] - 10.0 * theta(x)),
                         10.0 * (math.hypot(x[0], x[1]) - 1.0), x[2]])

    def j(x):
        s = x[0] ** 2 + x[1] ** 2
        rad = math.sqrt(s)
        c = 100.0 / (2.0 * math.pi * s) if s > 0 else 0.0
        dr = (x[0] / rad, x[1] / rad) if rad > 0 else (0.0, 0.0)
        return np.array([[c * x[1], -c * x[0], 10.0],
                         [10.0 * dr[0], 10.0 * dr[1], 0.0],
                         [0.0, 0.0, 1.0]])
    return Problem("helical_valley", f, j, (-1.0, 0.0, 0.0), 0.0)


def _bard():
    y = np.array([0.14, 0.18, 0.22, 0.25, 0.29, 0.32, 0.35, 0.39, 0.37, 0.58, 0.73, 0.96, 1.34,
                  2.10, 4.39])
    u = np.arange(1, 16, dtype=float)
    v = 16.0 - u
    w = np.minimum(u, v)

    def f(x):
        return y - (x[0] + u / (v * x[1] + w * x[2]))

    def j(x):
        den = (v * x[1] + w * x[2]) ** 2
        return np.stack([-np.ones_like(u), u * v / den, u * w / den], axis=1)
    return Problem("bard", f, j, (1.0, 1.0, 1.0), 8.21487730657e-3)


def _gaussian():
    y = np.array([0.0009, 0.0044, 0.0175, 0.0540, 0.1295, 0.2420, 0.3521, 0.3989, 0.3521,
                  0.2420, 0.1295, 0.0540, 0.0175, 0.0044, 0.0009])
    t = (8.0 - np.arange(1, 16)) / 2.0

    def f(x):
        return x[0] * np.exp(-x[1] * (t - x[2]) ** 2 / 2.0) - y

    def j(x):
        e = np.exp(-x[1] * (t - x[2]) ** 2 / 2.0)
        return np.stack([e, -x[0] * e * (t - x[2]) ** 2 / 2.0,
                         x[0] * e * x[1] * (t - x[2])], axis=1)
    return Problem("gaussian", f, j, (0.4, 1.0, 0.0), 1.12793276961e-8)


def _meyer():
    y = np.array([34780.0, 28610.0, 23650.0, 19630.0, 16370.0, 13720.0, 11540.0, 9744.0,
                  8261.0, 7030.0, 6005.0, 5147.0, 4427.0, 3820.0, 3307.0, 2872.0])
    t = 45.0 + 5.0 * np.arange(1, 17)

    def f(x):
        return x[0] * np.exp(x[1] / (t + x[2])) - y

    def j(x):
        e = np.exp(x[1] / (t + x[2]))
        return np.stack([e, x[0] * e / (t + x[2]), -x[0] * e * x[1] / (t + x[2]) ** 2], axis=1)
    return Problem("meyer", f, j, (0.02, 4000.0, 250.0), 87.9458551718)


def _gulf(m=99):
    t = np.arange(1, m + 1) / 100.0
    y = 25.0 + (-50.0 * np.log(t)) ** (2.0 / 3.0)

    def f(x):
        return np.exp(-np.abs(y - x[1]) ** x[2] / x[0]) - t

    def j(x):
        a = np.abs(y - x[1])
        p = a ** x[2]
        e = np.exp(-p / x[0])
        with np.errstate(divide="ignore", invalid="ignore"):
            la = np.where(a > 0, np.log(np.where(a > 0, a, 1.0)), 0.0)
            dp2 = np.where(a > 0, x[2] * p / np.where(a > 0, a, 1.0), 0.0) * -np.sign(y - x[1])
        return np.stack([e * p / x[0] ** 2, -e * dp2 / x[0], -e * p * la / x[0]], axis=1)
    return Problem("gulf", f, j, (5.0, 2.5, 0.15), 0.0)


def _box3d(m=10):
    t = 0.1 * np.arange(1, m + 1)

    def f(x):
        return (np.exp(-t * x[0]) - np.exp(-t * x[1])
                - x[2] * (np.exp(-t) - np.exp(-10.0 * t)))

    def j(x):
        return np.stack([-t * np.exp(-t * x[0]), t * np.exp(-t * x[1]),
                         -(np.exp(-t) - np.exp(-10.0 * t))], axis=1)
    return Problem("box3d", f, j, (0.0, 10.0, 20.0), 0.0)


def _powell_singular():
    s5, s10 = math.sqrt(5.0), math.sqrt(10.0)

    def f(x):
        return np.array([x[0] + 10.0 * x[1], s5 * (x[2] - x[3]), (x[1] - 2.0 * x[2]) ** 2,
                         s10 * (x[0] - x[3]) ** 2])

    def j(x):
        a, b = x[1] - 2.0 * x[2], x[0] - x[3]
        return np.array([[1.0, 10.0, 0.0, 0.0], [0.0, 0.0, s5, -s5],
                         [0.0, 2.0 * a, -4.0 * a, 0.0],
                         [2.0 * s10 * b, 0.0, 0.0, -2.0 * s10 * b]])
    return Problem("powell_singular", f, j, (3.0, -1.0, 0.0, 1.0), 0.0)


def _wood():
    s90, s10 = math.sqrt(90.0), math.sqrt(10.0)

    def f(x):
        return np.array([10.0 * (x[1] - x[0] ** 2), 1.0 - x[0], s90 * (x[3] - x[2] ** 2),
                         1.0 - x[2], s10 * (x[1] + x[3] - 2.0), (x[1] - x[3]) / s10])

    def j(x):
        return np.array([[-20.0 * x[0], 10.0, 0.0, 0.0], [-1.0, 0.0, 0.0, 0.0],
                         [0.0, 0.0, -2.0 * s90 * x[2], s90], [0.0, 0.0, -1.0, 0.0],
                         [0.0, s10, 0.0, s10], [0.0, 1.0 / s10, 0.0, -1.0 / s10]])
    return Problem("wood", f, j, (-3.0, -1.0, -3.0, -1.0), 0.0)


def _kowalik_osborne():
    y = np.array([0.1957, 0.1947, 0.1735, 0.1600, 0.0844, 0.0627, 0.0456, 0.0342, 0.0323,
                  0.0235, 0.0246])
    u = np.array([4.0, 2.0, 1.0, 0.5, 0.25, 0.167, 0.125, 0.1, 0.0833, 0.0714, 0.0625])

    def f(x):
        return y - x[0] * (u ** 2 + u * x[1]) / (u ** 2 + u * x[2] + x[3])

    def j(x):
        num = u ** 2 + u * x[1]
        den = u ** 2 + u * x[2] + x[3]
        return np.stack([-num / den, -x[0] * u / den, x[0] * num * u / den ** 2,
                         x[0] * num / den ** 2], axis=1)
    return Problem("kowalik_osborne", f, j, (0.25, 0.39, 0.415, 0.39), 3.07505603849e-4)


def _brown_dennis(m=20):
    t = np.arange(1, m + 1) / 5.0

    def f(x):
        return ((x[0] + t * x[1] - np.exp(t)) ** 2
                + (x[2] + x[3] * np.sin(t) - np.cos(t)) ** 2)

    def j(x):
        a = 2.0 * (x[0] + t * x[1] - np.exp(t))
        b = 2.0 * (x[2] + x[3] * np.sin(t) - np.cos(t))
        return np.stack([a, a * t, b, b * np.sin(t)], axis=1)
    return Problem("brown_dennis", f, j, (25.0, 5.0, -5.0, -1.0), 85822.2016263)


def _osborne1():
    y = np.array([0.844, 0.908, 0.932, 0.936, 0.925, 0.908, 0.881, 0.850, 0.818, 0.784, 0.751,
                  0.718, 0.685, 0.658, 0.628, 0.603, 0.580, 0.558, 0.538, 0.522, 0.506, 0.490,
                  0.478, 0.467, 0.457, 0.448, 0.438, 0.431, 0.424, 0.420, 0.414, 0.411, 0.406])
    t = 10.0 * np.arange(33)

    def f(x):
        return y - (x[0] + x[1] * np.exp(-t * x[3]) + x[2] * np.exp(-t * x[4]))

    def j(x):
        e4, e5 = np.exp(-t * x[3]), np.exp(-t * x[4])
        return np.stack([-np.ones_like(t), -e4, -e5, t * x[1] * e4, t * x[2] * e5], axis=1)
    return Problem("osborne1", f, j, (0.5, 1.5, -1.0, 0.01, 0.02), 5.46489469748e-5)


def _biggs_exp6(m=13):
    t = 0.1 * np.arange(1, m + 1)
    y = np.exp(-t) - 5.0 * np.exp(-10.0 * t) + 3.0 * np.exp(-4.0 * t)

    def f(x):
        return (x[2] * np.exp(-t * x[0]) - x[3] * np.exp(-t * x[1])
                + x[5] * np.exp(-t * x[4]) - y)

    def j(x):
        e1, e2, e5 = np.exp(-t * x[0]), np.exp(-t * x[1]), np.exp(-t * x[4])
        return np.stack([-t * x[2] * e1, t * x[3] * e2, e1, -e2, -t * x[5] * e5, e5], axis=1)
    return Problem("biggs_exp6", f, j, (1.0, 2.0, 1.0, 1.0, 1.0, 1.0), 0.0)


def _osborne2():
    y = np.array([1.366, 1.191, 1.112, 1.013, 0.991, 0.885, 0.831, 0.847, 0.786, 0.725, 0.746,
                  0.679, 0.608, 0.655, 0.616, 0.606, 0.602, 0.626, 0.651, 0.724, 0.649, 0.649,
                  0.694, 0.644, 0.624, 0.661, 0.612, 0.558, 0.533, 0.495, 0.500, 0.423, 0.395,
                  0.375, 0.372, 0.391, 0.396, 0.405, 0.428, 0.429, 0.523, 0.562, 0.607, 0.653,
                  0.672, 0.708, 0.633, 0.668, 0.645, 0.632, 0.591, 0.559, 0.597, 0.625, 0.739,
                  0.710, 0.729, 0.720, 0.636, 0.581, 0.428, 0.292, 0.162, 0.098, 0.054])
    t = np.arange(65) / 10.0

    def f(x):
        return y - (x[0] * np.exp(-t * x[4]) + x[1] * np.exp(-(t - x[8]) ** 2 * x[5])
                    + x[2] * np.exp(-(t - x[9]) ** 2 * x[6])
                    + x[3] * np.exp(-(t - x[10]) ** 2 * x[7]))

    def j(x):
        e5 = np.exp(-t * x[4])
        cols = [-e5, None, None, None, t * x[0] * e5]
        jac = np.zeros((65, 11))
        jac[:, 0], jac[:, 4] = cols[0], cols[4]
        for k in range(3):  # the three Gaussian bumps: amplitude k+1, width k+5, centre k+8
            d = t - x[8 + k]
            e = np.exp(-d ** 2 * x[5 + k])
            jac[:, 1 + k] = -e
            jac[:, 5 + k] = x[1 + k] * e * d ** 2
            jac[:, 8 + k] = -x[1 + k] * e * 2.0 * x[5 + k] * d
        return jac
    return Problem("osborne2", f, j, (1.3, 0.65, 0.65, 0.7, 0.6, 3.0, 5.0, 7.0, 2.0, 4.5, 5.5),
                   4.01377362935e-2)


PROBLEMS = [p() for p in (_rosenbrock, _freudenstein_roth, _powell_badly_scaled,
                          _brown_badly_scaled, _beale, _jennrich_sampson, _helical_valley,
                          _bard, _gaussian, _meyer, _gulf, _box3d, _powell_singular, _wood,
                          _kowalik_osborne, _brown_dennis, _osborne1, _biggs_exp6,
                          _osborne2)]
BY_NAME = {p.name: p for p in PROBLEMS}
