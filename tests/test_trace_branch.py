"""A branch on a traced value (``_backend/numpy/trace_branch.py``): ``xp.cond`` traced on both
sides and written as an ``if``; the compiled function takes either side as the eager code
does, bit for bit, whichever side the trace's values took."""

from __future__ import annotations

import numpy as np
import pytest

from marquardt import _solvers
from marquardt._backend.numpy import single, trace
from marquardt._core import host
from marquardt._damping import Nielsen
from test_host_executor import FREE, assert_same, config
from test_host_overhead import _solve


def _system(definite: bool):
    rng = np.random.default_rng(3)
    j = rng.standard_normal((1, 7, 4))
    a = np.swapaxes(j, -1, -2) @ j
    if not definite:
        a[0, 3, :] = a[0, :, 3] = 0.0  # singular: λ = 0 makes the Cholesky pivot 0
    g = rng.standard_normal((1, 4))
    d = np.ones((1, 4))
    return a, g, d


def _solve_normal(ns, a, g, lam, d):
    return _solvers.solve_normal_checked(
        a, g, lam, d, xp=ns,
        cholesky_solve=lambda m, b: _solvers._unrolled_cholesky_solve(m, b, ns))


@pytest.mark.parametrize("traced_on", [True, False], ids=["traced-definite", "traced-singular"])
def test_either_side_bit_for_bit(traced_on):
    lam = np.float64(0.0)
    compiled, _ = trace.compile_function(_solve_normal, (*_system(traced_on)[:2], lam,
                                                         _system(traced_on)[2]))
    assert "\n    if " in compiled.source and "_ns_eigh" in compiled.source
    for definite in (True, False):
        a, g, d = _system(definite)
        with np.errstate(all="ignore"):
            eager = _solve_normal(single, a, g, lam, d)
        with np.errstate(all="ignore"):
            got = compiled.fn(a, g, lam, d)
        assert bool(got[1]) == (not definite)
        for u, v in zip(got, eager):
            assert type(u) is type(v)
            assert np.asarray(u).tobytes() == np.asarray(v).tobytes()


def test_a_side_with_a_branch_value_leaks_nothing():
    """A vector split into lanes inside one side is split again after the ``if`` (its lanes
    exist only where that side ran)."""
    def fn(ns, x, c):
        y = x * 2.0
        z = ns.cond(ns.greater(c, 0.0), lambda: y + 1.0, lambda: y * y)
        return z + y
    x = np.array([[1.0, 2.0, 3.0]])
    compiled, _ = trace.compile_function(fn, (x, np.float64(1.0)))
    for c in (1.0, -1.0):
        expected = fn(single, x, np.float64(c))
        assert compiled.fn(x, np.float64(c)).tobytes() == expected.tobytes()


@pytest.mark.parametrize("solver", [_solvers.UnrolledCholeskySolver(), _solvers.CholeskySolver()],
                         ids=["cholesky_unrolled", "cholesky"])
def test_cholesky_configurations_trace_bit_for_bit(solver, monkeypatch):
    cfg = config(Nielsen(), solver)
    host._STEPS.clear()
    traced = [_solve(cfg, FREE, False) for _ in range(2)]
    (steps,) = host._STEPS.values()
    assert not steps.attempt.eager and steps.attempt.compiled is not None
    monkeypatch.setattr(host, "_steps", lambda *a: None)
    eager = _solve(cfg, FREE, False)
    for state, rows in traced:
        assert_same(state, eager[0])
        np.testing.assert_array_equal(rows, eager[1], strict=True)
