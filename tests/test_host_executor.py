"""The host executor's shortcuts take exactly the steps of the core's general, masked path:
no masks where every problem takes part (``all_live``), and history rows formed at the end."""

import numpy as np
import pytest

from marquardt._backend.numpy import single, xp
from marquardt._core import host
from marquardt._core import iteration as core
from marquardt._core.functions import Evaluator
from marquardt._core.records import RUNNING, LoopConfig
from marquardt._damping import Nielsen, TrainLM, TrustRegion
from marquardt._solvers import CholeskySolver, EigenSolver, SVDSolver

T = np.linspace(0.0, 4.0, 30)
Y = 2.5 * np.exp(-1.3 * T) + 0.5 + 0.05 * np.sin(7.0 * T)


def residual(x):  # (1, 3) -> (1, 30)
    a, b, c = x[0]
    return (a * np.exp(-b * T) + c - Y)[None]


def jacobian(x):
    a, b, c = x[0]
    e = np.exp(-b * T)
    return np.stack([e, -a * T * e, np.ones_like(T)], axis=1)[None]


def config(damping, solver, loss="linear", bounded=False, **kw):
    return LoopConfig(damping, solver, "marquardt", loss, 0.1 if loss != "linear" else 1.0,
                      1e-12, 1e-12, 1e-12, 500, bounded, **kw)


CONFIGS = {
    "nielsen-svd": config(Nielsen(), SVDSolver()),
    "trainlm-eigen": config(TrainLM(), EigenSolver()),
    "trust-region-cholesky-cauchy-bounded": config(TrustRegion(), CholeskySolver(), "cauchy",
                                                   True),
    "nielsen-svd-max-nfev": config(Nielsen(), SVDSolver())._replace(max_nfev=9),
    "trust-region-svd": config(TrustRegion(), SVDSolver()),  # the default
}
BOUNDS = (np.array([[-np.inf, 0.0, -np.inf]]), np.array([[np.inf, 1.2, np.inf]]))
FREE = (np.full((1, 3), -np.inf), np.full((1, 3), np.inf))


def assert_same(a, b, path=""):
    """Records (nested NamedTuples of arrays) equal bit for bit, field by field."""
    assert type(a) is type(b), path
    for name, u, v in zip(a._fields, a, b):
        if isinstance(u, tuple):
            assert_same(u, v, f"{path}.{name}")
        else:
            assert (u is None) == (v is None), f"{path}.{name}"
            if u is not None:  # a (1,) array and the scalar of ``single``: the same value
                assert np.shape(u) == np.shape(v) or np.shape(u) == (1,) and np.ndim(v) == 0
            np.testing.assert_array_equal(u, v, err_msg=f"{path}.{name}", strict=False)


@pytest.mark.parametrize("ns", [xp, single], ids=["arrays", "scalars"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_unmasked_iteration_takes_the_masked_steps_exactly(name, ns):
    """prepare, propose, judge and finish with ``all_live=True`` give, bit for bit, what the
    masked forms give when every problem is running, through a whole solve; so does the
    one-problem namespace (per-problem values as NumPy scalars) that the host executor uses
    for a single fit."""
    cfg = CONFIGS[name]
    lb, ub = BOUNDS if cfg.bounded else FREE
    x0 = np.array([[0.5, 3.0, -0.5]])
    d_fixed = np.ones((1, 3))
    s = core.start(cfg, xp, x0, residual(x0), jacobian(x0), lb, ub, d_fixed)
    s_u = core.start(cfg, ns, x0, residual(x0), jacobian(x0), lb, ub, d_fixed)
    assert_same(s, s_u)
    iterations = attempts = 0
    with np.errstate(all="ignore"):
        while int(s.status[0]) == RUNNING:
            prep_m, c_m = core.prepare(cfg, xp, s, lb, ub, d_fixed)
            prep_u, c_u = core.prepare(cfg, ns, s_u, lb, ub, d_fixed, all_live=True)
            assert prep_u.active is None
            assert_same(c_m, c_u)
            assert_same(prep_m._replace(active=None), prep_u)
            while bool(core.live(xp, c_m)[0]):
                x_m = core.propose(cfg, xp, prep_m, s, c_m, lb, ub)
                x_u = core.propose(cfg, ns, prep_u, s_u, c_u, lb, ub, all_live=True)
                np.testing.assert_array_equal(x_m, x_u)
                f = residual(x_m)
                c_m = core.judge(cfg, xp, prep_m, s, c_m, x_m, f)
                c_u = core.judge(cfg, ns, prep_u, s_u, c_u, x_u, f, all_live=True)
                assert_same(c_m, c_u)
                attempts += 1
            new_m = core.finish(cfg, xp, s, prep_m, c_m, c_m.f_new, jacobian(c_m.x_new))
            new_u = core.finish(cfg, ns, s_u, prep_u, c_u, c_u.f_new, jacobian(c_u.x_new))
            assert_same(new_m, new_u)
            s, s_u = new_m, new_u
            iterations += 1
    assert iterations >= 3 and attempts > iterations  # some steps were rejected


@pytest.mark.parametrize("name", ["nielsen-svd", "trust-region-cholesky-cauchy-bounded"])
def test_history_formed_at_the_end_equals_rows_formed_per_iteration(name):
    """Without a callback the host executor forms its history table at the end, in one
    batched call; with one, row by row for the callback. Same table, same solve."""
    cfg = CONFIGS[name]._replace(record_history=True)
    lb, ub = BOUNDS if cfg.bounded else FREE
    evaluator = Evaluator(residual=lambda x, problems: residual(x),
                          residual_and_jacobian=lambda x, problems: (residual(x), jacobian(x)))
    x0 = np.array([[0.5, 3.0, -0.5]])
    seen = []
    at_end, table = host.run(cfg, evaluator, x0, lb, ub, np.ones((1, 3)))
    each, rows = host.run(cfg._replace(callback=lambda row, x, f: seen.append(row.copy())),
                          evaluator, x0, lb, ub, np.ones((1, 3)))
    assert table.shape == rows.shape and table.shape[0] >= 4
    np.testing.assert_array_equal(table, rows)
    np.testing.assert_array_equal(np.stack(seen), rows)
    assert_same(at_end, each)


def test_one_problem_namespace_offers_every_name_of_the_numpy_namespace():
    public = lambda mod: {k for k in vars(mod) if not k.startswith("_") and k not in  # noqa: E731
                          ("annotations", "np", "math")}
    assert public(xp) <= public(single)
    assert single.name == xp.name == "numpy"
