"""Damping policies alone: exact accept/reject sequences and the exact λ after each step."""

import math

import numpy as np
import pytest

from marquardt import Nielsen, TrainLM, TrustRegion
from marquardt._damping import DampingState, StepMeasure, get_damping
from marquardt._solvers import (CholeskySolver, EigenSolver, KernelSolver, Spectrum, SVDSolver,
                                UnrolledCholeskySolver)


def run(policy, scale, rhos):
    state = policy.init(np.float64(scale))
    out = [(None, float(state.lam))]
    for rho in rhos:
        accepted = bool(policy.accept(np.float64(rho)))
        state = policy.update(state, np.float64(rho))
        out.append((accepted, float(state.lam)))
    return out, state


def test_nielsen_exact_sequence():
    # λ0 = τ·scale = 1e-3·10; then the cubic rule on acceptance and ν-doubling on rejection.
    seq, state = run(Nielsen(), 10.0, [0.9, -1.0, float("nan"), 0.5, 1.0, 5e-4, 0.75])
    lam = 0.01
    expected = [(None, lam)]
    lam *= 1 - 0.8**3  # ρ = 0.9 → factor 0.488
    expected.append((True, lam))
    lam *= 2  # reject, ν = 2 → 4
    expected.append((False, lam))
    lam *= 4  # NaN counts as a failure, ν = 4 → 8
    expected.append((False, lam))
    expected.append((True, lam))  # ρ = ½: factor max(1/3, 1 − 0) = 1, ν reset to 2
    lam /= 3  # ρ = 1: factor 1/3
    expected.append((True, lam))
    lam *= 2  # ρ = 5e-4 < min_rho = 1e-3: rejected
    expected.append((False, lam))
    lam *= 1 - 0.5**3  # ρ = 0.75, after ν had grown to 4
    expected.append((True, lam))
    assert [a for a, _ in seq] == [a for a, _ in expected]
    np.testing.assert_allclose([v for _, v in seq], [v for _, v in expected], rtol=1e-15)
    assert float(state.nu) == 2.0


def test_nielsen_nu_doubles_on_repeated_failure():
    seq, state = run(Nielsen(tau=1.0), 1.0, [-1.0] * 4)
    assert [v for _, v in seq] == [1.0, 2.0, 8.0, 64.0, 1024.0]
    assert float(state.nu) == 32.0


def test_nielsen_exhausted_and_floor():
    p = Nielsen(lam_max=100.0, lam_min=1e-3)
    state = DampingState(np.float64(90.0), np.float64(2.0))
    assert not bool(p.exhausted(state))
    state = p.update(state, np.float64(-1.0))
    assert float(state.lam) == 180.0 and bool(p.exhausted(state))
    state = p.update(DampingState(np.float64(2e-3), np.float64(2.0)), np.float64(1.0))
    assert float(state.lam) == 1e-3  # 2e-3 / 3 floored at lam_min


def test_trainlm_exact_sequence():
    # MATLAB trainlm: mu = 1e-3, ×0.1 on a decrease, ×10 otherwise; initial λ ignores the scale.
    seq, _ = run(TrainLM(), 1e6, [0.3, -2.0, 0.0, 1e-12, 0.9])
    assert [a for a, _ in seq] == [None, True, False, False, True, True]
    np.testing.assert_allclose([v for _, v in seq], [1e-3, 1e-4, 1e-3, 1e-2, 1e-3, 1e-4],
                               rtol=1e-15)


def test_trainlm_limits():
    p = TrainLM()
    s = DampingState(np.float64(1e10), np.float64(1.0))
    assert not bool(p.exhausted(s))
    s = p.update(s, np.float64(-1.0))
    assert float(s.lam) == pytest.approx(1e11) and bool(p.exhausted(s))
    s = p.update(DampingState(np.float64(1e-20), np.float64(1.0)), np.float64(0.5))
    assert float(s.lam) == 1e-20  # trainlm's floor


def test_policies_are_batched():
    p = Nielsen()
    state = p.init(np.array([1.0, 100.0]))
    state = p.update(state, np.array([1.0, -1.0]))
    np.testing.assert_allclose(np.asarray(state.lam), [1e-3 / 3, 0.2], rtol=1e-15)
    np.testing.assert_array_equal(np.asarray(state.nu), [2.0, 4.0])


def test_get_damping():
    assert isinstance(get_damping("nielsen"), Nielsen)
    assert isinstance(get_damping("TrainLM"), TrainLM)
    custom = Nielsen(tau=1e-6)
    assert get_damping(custom) is custom
    with pytest.raises(ValueError, match=r"`damping` must be one of .*Received: damping='fast'"):
        get_damping("fast")
    assert math.isclose(Nielsen().tau, 1e-3)


# --- TrustRegion: λ from a radius Δ (secular equation on the solver's spectrum) ---------------

def _random_system(rng, k=3, m=20, n=5):
    return (rng.standard_normal((k, m, n)) * np.logspace(0, 3, n), rng.standard_normal((k, m)),
            rng.uniform(0.5, 3.0, (k, n)))


@pytest.mark.parametrize("solver", [SVDSolver(), EigenSolver(), CholeskySolver(),
                                    UnrolledCholeskySolver()], ids=lambda s: s.name)
def test_trust_region_lambda_gives_the_radius(solver):
    """The λ of ``fit`` gives a step of scaled length Δ to 1e-10, for three problems at once,
    with the solver's own solve; and λ_min where the Gauss-Newton step fits."""
    rng = np.random.default_rng(7)
    j, r, d = _random_system(rng)
    fac = solver.factor(j, r, d)
    policy = TrustRegion()
    gn = np.linalg.norm(np.sqrt(d) * solver.solve(fac, np.full(3, policy.lam_min)), axis=-1)
    delta = gn * np.array([1e-4, 0.3, 0.999])
    state = policy.fit(DampingState(np.zeros(3), delta), solver.spectrum(fac))
    assert np.all(state.lam > policy.lam_min) and np.array_equal(state.nu, delta)
    length = np.linalg.norm(np.sqrt(d) * solver.solve(fac, state.lam), axis=-1)
    np.testing.assert_allclose(length, delta, rtol=1e-10)
    state = policy.fit(DampingState(np.zeros(3), 1.5 * gn), solver.spectrum(fac))
    assert np.all(state.lam == policy.lam_min)


def test_trust_region_lambda_in_the_kernel_form():
    rng = np.random.default_rng(8)
    j, r, d = _random_system(rng, k=2, m=4, n=7)  # m < n
    solver = KernelSolver()
    fac = solver.factor(j, r, d)
    gn = np.linalg.norm(np.sqrt(d) * solver.solve(fac, np.full(2, 1e-30)), axis=-1)
    delta = gn * np.array([0.01, 0.5])
    state = TrustRegion().fit(DampingState(np.zeros(2), delta), solver.spectrum(fac))
    length = np.linalg.norm(np.sqrt(d) * solver.solve(fac, state.lam), axis=-1)
    np.testing.assert_allclose(length, delta, rtol=1e-10)


def test_trust_region_lambda_in_a_graph():
    """The same λ from TensorFlow tensors (the compiled executors' namespace)."""
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(9)
    j, r, d = _random_system(rng)
    solver = SVDSolver()
    delta = np.array([1e-3, 1e-2, 1e-1])
    host = TrustRegion().fit(DampingState(np.zeros(3), delta),
                             solver.spectrum(solver.factor(j, r, d)))
    graph = tf.function(lambda j, r, d, delta: TrustRegion().fit(
        DampingState(tf.zeros_like(delta), delta),
        solver.spectrum(solver.factor(j, r, d))).lam)
    lam = graph(tf.constant(j), tf.constant(r), tf.constant(d), tf.constant(delta)).numpy()
    np.testing.assert_allclose(lam, host.lam, rtol=1e-8)


def test_trust_region_exact_sequence():
    """One component, w = 4, b = 3: ‖√D δ(λ)‖ = 3 / (4 + λ), so the λ of a radius Δ is
    3/Δ − 4 exactly; the radius after each step follows the rule of the docstring."""
    policy = TrustRegion()  # factor 1, τ = 0.1
    spectrum = Spectrum(w=np.array([[4.0]]), b=np.array([[3.0]]))
    state = policy.init(np.array([10.0]), x_norm=np.array([2.0]))
    assert state.lam.item() == 1.0 and state.nu.item() == -2.0  # λ₀ = τ·scale, −Δ₀ unsettled
    state = policy.fit(state, spectrum)
    # Δ₀ = max(1 · 2, 3 / (4 + 1)) = 2 ≥ the Gauss-Newton length 3/4: λ = λ_min
    assert state.nu.item() == 2.0 and state.lam.item() == policy.lam_min
    steps = [  # (ρ, ‖√D p‖) → (accepted, Δ, λ)
        ((0.9, 0.75), (True, 1.5, policy.lam_min)),   # Gauss-Newton step: Δ ← 2‖p‖
        ((0.1, 0.75), (True, 0.1875, 3 / 0.1875 - 4)),  # ρ < ¼: Δ ← ¼ min(Δ, ‖p‖)
        ((0.5, 0.1875), (True, 0.1875, 12.0)),          # ¼ ≤ ρ ≤ ¾, λ > λ_min: unchanged
        ((0.8, 0.1875), (True, 0.375, 4.0)),            # ρ > ¾: Δ ← 2‖p‖
        ((5e-5, 0.375), (False, 0.09375, 3 / 0.09375 - 4)),  # rejected (ρ ≤ 1e-4)
        ((-math.inf, 0.09375), (False, 0.0234375, 3 / 0.0234375 - 4)),
        ((float("nan"), math.nan), (False, 0.00234375, 3 / 0.00234375 - 4)),  # NaN: Δ/10
    ]
    for (rho, norm), (accepted, delta, lam) in steps:
        assert bool(policy.accept(np.array([rho]))) is accepted
        state = policy.update(state, np.array([rho]), step=StepMeasure(np.array([norm])))
        state = policy.fit(state, spectrum)
        np.testing.assert_allclose(state.nu.item(), delta, rtol=1e-15)
        np.testing.assert_allclose(state.lam.item(), lam, rtol=1e-12)
    assert not bool(policy.exhausted(state))
    assert bool(policy.exhausted(DampingState(np.array([1e33]), np.array([1e-40]))))


def test_trust_region_by_name():
    assert isinstance(get_damping("trust-region"), TrustRegion)
    assert get_damping(TrustRegion(factor=100.0)).factor == 100.0
    with pytest.raises(ValueError, match="TrustRegion"):
        get_damping("more")


@pytest.mark.parametrize(("changes", "pattern"), [
    ({"mu": 0.0}, r"`mu` must be a finite number > 0. Received: mu=0.0"),
    ({"mu": -1.0}, r"`mu` must be a finite number > 0. Received: mu=-1.0"),
    ({"mu": float("nan")}, r"`mu` must be .*Received: mu=nan"),
    ({"mu_dec": 1.5}, r"`mu_dec` must be a number in \[0, 1\]. Received: mu_dec=1.5"),
    ({"mu_inc": 0.5}, r"`mu_inc` must be a finite number > 1. Received: mu_inc=0.5"),
    ({"mu": 1e12}, r"`mu_max` must be a number >= mu = 1000000000000.0. Received: mu_max=10000000000.0"),
    ({"mu_max": -1.0}, r"`mu_max` must be .*Received: mu_max=-1.0"),
    ({"mu_min": 0.0}, r"`mu_min` must be a finite number > 0. Received: mu_min=0.0"),
])
def test_trainlm_refuses_what_matlabs_trainlm_refuses(changes, pattern):
    # accepted, mu <= 0 or mu_max < mu trained nothing and reported the damping limit ("a
    # minimum to working precision"), least_squares an xtol success at x0; mu_inc < 1 ran
    # every epoch at the start point
    with pytest.raises(ValueError, match=pattern):
        TrainLM(**changes)


def test_trainlm_takes_matlabs_limits_and_numpy_numbers():
    assert TrainLM(mu=np.float32(0.005), mu_dec=0.0, mu_inc=1.5, mu_max=math.inf).mu_dec == 0.0
    assert TrainLM(mu=1e10).mu == TrainLM().mu_max  # mu = mu_max is allowed, as in MATLAB
