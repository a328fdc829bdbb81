"""The JAX backend of ``least_squares``, ``curve_fit`` and ``curve_fit_batch``.

A function written with ``jax.numpy`` is recognised by the JAX array its first call returns;
its first fits run on the host executor with r and J jitted, later ones as one compiled solve
(the LM core in ``lax.while_loop`` under ``jax.jit``; ``marquardt._tiering`` says when), with
exact Jacobians, in float64 whatever ``jax_enable_x64`` says. NumPy and TensorFlow functions
are untouched (``tests/jax/test_imports.py`` checks that neither path imports the other
backend). Compilation costs seconds: the models are module-level, compiled once.
"""

import pathlib

import numpy as np
import pytest
import scipy.optimize

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

import marquardt  # noqa: E402
from marquardt import Status, _tiering, nist  # noqa: E402
from marquardt._backend.jax import compile as jc  # noqa: E402
from marquardt._errors import NoGradientError  # noqa: E402
from nist_models import jax_models  # noqa: E402

T = np.linspace(0.0, 4.0, 50)
Y = 2.5 * np.exp(-1.3 * T) + 0.5 + 0.01 * np.random.default_rng(0).standard_normal(50)
P0 = [1.0, 1.0, 0.0]


def exponential(t, a, b, c):
    return a * jnp.exp(-b * t) + c


def exponential_np(t, a, b, c):
    return a * np.exp(-b * t) + c


def exponential_jac(t, a, b, c):
    e = np.exp(-b * t)
    return np.stack([e, -a * t * e, np.ones_like(t)], axis=-1)


def residuals(p, t, y):
    return p[0] * jnp.exp(-p[1] * t) + p[2] - y


def test_curve_fit_matches_scipy_on_the_host_then_compiled(monkeypatch):
    """The first fit on the host executor, the next as one compiled solve (compiled at the
    second fit here: ``JAX_EVALUATIONS`` 0), traced once: both at SciPy's answer."""
    monkeypatch.setattr(_tiering, "JAX_EVALUATIONS", 0)

    def model(t, a, b, c):  # a model of its own: no host fits of it from other tests
        return a * jnp.exp(-b * t) + c

    ref, ref_cov = marquardt.curve_fit(exponential_np, T, Y, p0=P0, jac=exponential_jac)
    minpack, _ = scipy.optimize.curve_fit(exponential_np, T, Y, p0=P0, jac=exponential_jac)
    traces = [jc.trace_count()]
    for _ in range(2):
        popt, pcov = marquardt.curve_fit(model, T, Y, p0=P0)
        traces.append(jc.trace_count())
        np.testing.assert_allclose(popt, ref, rtol=1e-10)
        np.testing.assert_allclose(pcov, ref_cov, rtol=1e-8)
        np.testing.assert_allclose(popt, minpack, rtol=1e-7)
    y2 = Y + 0.1  # new data of the same shape: no new compilation
    popt2, _ = marquardt.curve_fit(model, T, y2, p0=P0)
    traces.append(jc.trace_count())
    assert np.diff(traces).tolist() == [0, 1, 0]  # host, compiled (traced), compiled
    np.testing.assert_allclose(popt2, ref + [0, 0, 0.1], atol=1e-6)


def test_the_solve_is_compiled_once_the_host_has_paid_for_it(monkeypatch):
    """The ski-rental rule (``marquardt._tiering``): host fits until the model's host
    functions have made ``JAX_EVALUATIONS`` evaluations (nfev per fit), then one trace."""
    monkeypatch.setattr(_tiering, "JAX_EVALUATIONS", 30)

    def decay(t, a, b, c):  # a model of its own: nothing cached from other tests
        return a * jnp.exp(-b * t) + c

    traces, nfev = jc.trace_count(), []
    while jc.trace_count() == traces:
        popt, _, info, _, _ = marquardt.curve_fit(decay, T, Y, p0=P0, full_output=True)
        nfev.append(info["nfev"])
    assert len(nfev) > 2 and sum(nfev[:-1]) >= 30 > sum(nfev[:-2])
    assert jc.trace_count() == traces + 1
    # counted per configuration: options that change from call to call compile nothing
    for i in range(3):
        marquardt.curve_fit(decay, T, Y, p0=P0, loss="soft_l1", f_scale=0.1 * (i + 1))
    assert jc.trace_count() == traces + 1


def test_least_squares_result_fields_and_history():
    res = marquardt.least_squares(residuals, P0, args=(T, Y))
    assert res.status in (Status.FTOL, Status.XTOL, Status.FTOL_XTOL, Status.GTOL)
    assert res.njev == res.nit + 1 and len(res.history) == res.nit + 1
    assert res.history[0].cost == pytest.approx(0.5 * np.sum(residuals(np.array(P0), T, Y) ** 2))
    j_exact = exponential_jac(T, *res.x)
    np.testing.assert_allclose(res.jac, j_exact, rtol=1e-12, atol=1e-14)
    assert isinstance(res.x, np.ndarray) and res.x.dtype == np.float64
    assert res.nfev == 1 + sum(h.attempts for h in res.history[1:])


def test_callback_runs_on_the_host_with_the_same_steps():
    seen = []
    res = marquardt.least_squares(residuals, P0, args=(T, Y),
                                  callback=lambda intermediate_result: seen.append(
                                      intermediate_result.cost))
    plain = marquardt.least_squares(residuals, P0, args=(T, Y))
    assert len(seen) == res.nit == plain.nit
    np.testing.assert_allclose(res.x, plain.x, rtol=1e-12)
    stop = marquardt.least_squares(residuals, P0, args=(T, Y), callback=lambda intermediate_result: True)
    assert stop.status == Status.CALLBACK and stop.nit == 1


@pytest.mark.slow
def test_bounds_match_the_numpy_path():
    bounds = ([0.0, 1.5, 0.0], [10.0, 10.0, 10.0])
    p0 = [1.0, 2.0, 0.0]
    res = marquardt.least_squares(residuals, p0, args=(T, Y), bounds=bounds, x_scale=1.0)
    ref = marquardt.least_squares(lambda p: exponential_np(T, *p) - Y, p0, bounds=bounds,
                                  x_scale=1.0, jac=lambda p: exponential_jac(T, *p))
    assert res.x[1] == 1.5 and res.active_mask.tolist() == [0, -1, 0]
    np.testing.assert_allclose(res.x, ref.x, rtol=1e-9)
    assert res.nit == ref.nit and res.status == ref.status


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["soft_l1", "huber", "cauchy", "arctan"])
def test_robust_loss_matches_the_numpy_path(loss):
    y = Y.copy()
    y[::10] += 1.0  # outliers
    res = marquardt.least_squares(residuals, P0, args=(T, y), loss=loss, f_scale=0.05)
    ref = marquardt.least_squares(lambda p: exponential_np(T, *p) - y, P0, loss=loss,
                                  f_scale=0.05, jac=lambda p: exponential_jac(T, *p))
    np.testing.assert_allclose(res.x, ref.x, rtol=1e-8)
    np.testing.assert_allclose(res.cost, ref.cost, rtol=1e-10)
    # the last step is an ftol decision at the rounding of the cost (XLA's and LAPACK's last
    # bits): with the trust-radius default one path takes one more rounding-level step on
    # cauchy and arctan (the same x and cost); Nielsen's rule happened to agree on all four
    assert abs(res.nit - ref.nit) <= 1


def test_float64_without_jax_enable_x64():
    with jax.enable_x64(False):  # JAX's default (another test module may set it globally)
        assert jnp.ones(1).dtype == jnp.float32
        res = marquardt.least_squares(residuals, P0, args=(T, Y))
        # float32 would leave the gradient at ~1e-6; float64 reaches rounding
        assert res.optimality < 1e-10
        assert jnp.ones(1).dtype == jnp.float32  # the setting is left as it was


def test_finite_differences_and_callable_jac_run_the_jax_function_on_the_host():
    res = marquardt.least_squares(residuals, P0, args=(T, Y), jac="3-point")
    ref = marquardt.least_squares(lambda p: exponential_np(T, *p) - Y, P0, jac="3-point")
    np.testing.assert_allclose(res.x, ref.x, rtol=1e-10)
    assert res.nfev >= 1 + 6 * res.njev  # 2n calls per Jacobian, counted as in SciPy


# --- curve_fit_batch ----------------------------------------------------------------------

RATES = np.array([0.5, 1.0, 2.0, 0.7, 1.5, 3.0])
TB = np.linspace(0, 4, 30)
YB = (2.0 * np.exp(-RATES[:, None] * TB)
      + 0.01 * np.random.default_rng(1).standard_normal((RATES.size, TB.size)))


def decay(t, a, k):
    return a * jnp.exp(-k * t)


def decay_np(t, a, k):
    return a * np.exp(-k * t)


def decay_jac(t, a, k):
    e = np.exp(-k * t)
    return np.stack([e, -a * t * e], axis=-1)


def test_batch_equals_the_numpy_host_path_and_does_not_retrace():
    res = marquardt.curve_fit_batch(decay, TB, YB, p0=[1.0, 1.0])
    ref = marquardt.curve_fit_batch(decay_np, TB, YB, p0=[1.0, 1.0], jac=decay_jac)
    np.testing.assert_allclose(res.x, ref.x, rtol=1e-9)
    np.testing.assert_allclose(res.cov, ref.cov, rtol=1e-7)
    assert (res.success == ref.success).all()
    before = jc.trace_count()
    for k in (3, 5, 8):  # K rounded up to 8 slots: one compilation for all three
        part = marquardt.curve_fit_batch(decay, TB, YB[:k], p0=[1.0, 1.0])
        np.testing.assert_allclose(part.x, res.x[:k], rtol=1e-12)
    assert jc.trace_count() == before


def _decays(k, seed):
    rng = np.random.default_rng(seed)
    a, rate = rng.uniform(1.0, 3.0, (2, k, 1))
    return a * np.exp(-rate * TB) + 0.01 * rng.standard_normal((k, TB.size))


def test_a_differenced_batch_compiles_its_model_once_per_padded_shape(monkeypatch):
    """``jac='2-point'`` runs a JAX model on the host, on the problems still running: their
    number changes from one iteration to the next, and called eagerly every ``jax.numpy`` op
    was compiled anew for each new number (a warm call of 300 fits with new data spent 1.0 s
    of 1.3 s compiling). The model is jitted once per power-of-two row count: a call with new
    data compiles nothing, and for a model that XLA computes to the same bits eager and
    jitted (no multiply-add, which jit contracts into one FMA) the answers are the eager
    calls', bit for bit."""
    marquardt.curve_fit_batch(decay, TB, _decays(12, 1), p0=[1.0, 1.0], jac="2-point")
    compiles = []

    def listener(name, secs, **kwargs):
        if name == "/jax/core/compile/backend_compile_duration":
            compiles.append(secs)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        res = marquardt.curve_fit_batch(decay, TB, _decays(11, 2), p0=[1.0, 1.0], jac="2-point")
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert compiles == [] and res.success.all()
    from marquardt._backend.jax import host_model
    monkeypatch.setattr(host_model, "batch_model", lambda *args: None)  # the eager calls
    eager = marquardt.curve_fit_batch(decay, TB, _decays(11, 2), p0=[1.0, 1.0], jac="2-point")
    for field in ("x", "cost", "nfev", "status"):
        np.testing.assert_array_equal(res[field], eager[field])


def test_batch_refills_slots_with_waiting_problems():
    """K = 40 through 8 slots: finished problems leave their slots to waiting ones between
    rounds (``marquardt._core.stream``). One problem, started far off (k = 40), takes the
    most evaluations in one slot while the others stream past it; every problem gets the answer and the steps it
    gets with all 40 in 64 slots at once (no refill), the NumPy host path's answer, and
    another K above 8 compiles nothing."""
    rng = np.random.default_rng(7)
    rates = np.linspace(0.3, 3.0, 40)
    y = 2.0 * np.exp(-rates[:, None] * TB) + 0.01 * rng.standard_normal((40, TB.size))
    p0 = np.ones((40, 2))
    p0[5] = [1.0, 40.0]  # the slow one
    kw = dict(p0=p0, max_nfev=200)
    with np.errstate(over="ignore"):  # exp(-k t) of the far start's trial steps
        host = marquardt.curve_fit_batch(decay_np, TB, y, jac=decay_jac, **kw)
    whole = marquardt.curve_fit_batch(decay, TB, y, **kw)
    res = marquardt.curve_fit_batch(decay, TB, y, chunk_size=8, **kw)
    np.testing.assert_array_equal(res.status, whole.status)
    np.testing.assert_array_equal(res.nfev, whole.nfev)
    np.testing.assert_allclose(res.x, whole.x, rtol=1e-12)
    np.testing.assert_allclose(res.x, host.x, rtol=1e-9)
    assert res.success.all() and host.success.all() and res.nfev.argmax() == 5
    before = jc.trace_count()
    part = marquardt.curve_fit_batch(decay, TB, y[:23], chunk_size=8, p0=p0[:23], max_nfev=200)
    np.testing.assert_allclose(part.x, res.x[:23], rtol=1e-12)
    assert jc.trace_count() == before


@pytest.mark.slow
def test_batch_with_sigma_nan_and_bounds():
    y = YB.copy()
    y[0, 3] = np.nan
    sigma = np.linspace(0.5, 2.0, TB.size)
    bounds = ([0.0, 0.0], [10.0, 1.0])
    res = marquardt.curve_fit_batch(decay, TB, y, p0=[1.0, 0.5], sigma=sigma,
                                    nan_policy="omit", bounds=bounds)
    ref = marquardt.curve_fit_batch(decay_np, TB, y, p0=[1.0, 0.5], sigma=sigma,
                                    nan_policy="omit", bounds=bounds, jac=decay_jac)
    np.testing.assert_allclose(res.x, ref.x, rtol=1e-8)
    assert (res.x[:, 1] <= 1.0).all() and res.x[2, 1] == 1.0
    assert res.npoints[0] == TB.size - 1


# --- NIST StRD on the JAX backend ---------------------------------------------------------

DATA = pathlib.Path(__file__).parent / "data" / "nist"


@pytest.fixture(scope="module")
def nist_results():
    models = jax_models()
    out = {}
    for path in sorted(DATA.glob("*.dat")):
        problem = nist.load(path)
        for start in (0, 1):
            popt, pcov = marquardt.curve_fit(models[problem.name], problem.x, problem.target(),
                                             p0=problem.starts[start])
            out[problem.name, start] = nist.lre(popt, problem.certified).min()
    return out


@pytest.mark.slow
def test_nist_certified_digits_on_jax(nist_results):
    assert len(nist_results) == 38
    low = {k: v for k, v in nist_results.items() if v < 6.0}
    assert not low, low
    assert np.mean(list(nist_results.values())) >= 9.5


@pytest.mark.parametrize("path", sorted(DATA.glob("*.dat")), ids=lambda p: p.stem)
def test_formula_jax_model_matches_hand_transcription(path):
    problem = nist.load(path)
    parsed = problem.formula.as_jax_model(problem.variable_names, problem.parameter_names)
    with jax.enable_x64(True):
        got = np.asarray(parsed(problem.x, *problem.certified))
        want = np.asarray(jax_models()[problem.name](problem.x, *problem.certified))
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=1e-13)


@pytest.mark.slow
def test_batch_executor_in_float32_with_float32_tolerances():
    from marquardt._backend.jax import batch as jax_batch
    from marquardt._batch import _loop_config

    k, n = YB.shape[0], 2
    cfg, d_fixed, _, _ = _loop_config(dict(ftol=1e-6, xtol=1e-6, gtol=1e-6), n, False)
    out = {"x": np.full((k, n), np.nan), "status": np.zeros(k, int)}
    p0 = np.ones((k, n))
    lb, ub = np.full((k, n), -np.inf), np.full((k, n), np.inf)

    def store(idx, s):
        assert s.x.dtype == np.float64  # stored as float64, computed in float32
        out["x"][idx], out["status"][idx] = s.x, s.status

    jax_batch.solve(decay, "auto", True, cfg, np.arange(k), 1024,
                    (TB, YB, np.ones(YB.shape, bool), None, p0, lb, ub, d_fixed),
                    store, dtype=np.float32)
    ref = marquardt.curve_fit_batch(decay, TB, YB, p0=[1.0, 1.0])
    assert (out["status"] > 0).all()
    np.testing.assert_allclose(out["x"], ref.x, rtol=2e-4)


def test_a_function_jax_cannot_trace_is_named():
    def branching(p, t, y):
        if p[0] > 0:  # Python control flow on a parameter
            return p[0] * jnp.exp(-p[1] * t) - y
        return -y

    with pytest.raises(NoGradientError, match="cannot be differentiated by JAX"):
        marquardt.least_squares(branching, [1.0, 1.0], args=(T, Y))
    res = marquardt.least_squares(branching, [1.0, 1.0], args=(T, Y), jac="2-point")
    assert res.success


def test_a_batch_model_jax_cannot_trace_is_named():
    """As for one fit: the batch raised JAX's own TracerBoolConversionError."""
    def branching(t, a, k):
        if k > 0:  # Python control flow on a parameter
            return a * jnp.exp(-k * t)
        return a + 0 * t

    with pytest.raises(NoGradientError, match=r"^`f` cannot be differentiated by JAX: .*"
                       r"\(TracerBoolConversionError\)\. Write it with jax\.numpy"):
        marquardt.curve_fit_batch(branching, TB, YB, p0=[1.0, 1.0])
    res = marquardt.curve_fit_batch(branching, TB, YB, p0=[1.0, 1.0], jac="2-point")
    assert res.success.all()


# --- SciPy-parity cases of tests/test_scipy_compat.py with a JAX model ------------------------

def test_curve_fit_full_output_and_sigma_with_a_jax_model():
    sigma = np.linspace(0.5, 1.5, T.size)
    popt, pcov, info, mesg, ier = marquardt.curve_fit(exponential, T, Y, p0=P0, sigma=sigma,
                                                      full_output=True)
    ref, ref_cov = marquardt.curve_fit(exponential_np, T, Y, p0=P0, sigma=sigma,
                                       jac=exponential_jac)
    np.testing.assert_allclose(popt, ref, rtol=1e-10)
    np.testing.assert_allclose(pcov, ref_cov, rtol=1e-8)
    assert isinstance(mesg, str) and ier in (1, 2, 3, 4)
    np.testing.assert_allclose(info["fvec"], (exponential_np(T, *popt) - Y) / sigma,
                               atol=1e-13)


@pytest.mark.slow
def test_curve_fit_not_converged_and_nan_policy_with_a_jax_model():
    with pytest.raises(RuntimeError, match=r"Optimal parameters not found: .*max_nfev"):
        marquardt.curve_fit(exponential, T, Y, p0=P0, maxfev=3)
    y = Y.copy()
    y[[3, 7]] = np.nan
    keep = np.isfinite(y)
    a, _ = marquardt.curve_fit(exponential, T, y, p0=P0, nan_policy="omit")
    b, _ = marquardt.curve_fit(exponential, T[keep], y[keep], p0=P0)
    np.testing.assert_array_equal(a, b)
