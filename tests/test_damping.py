"""Damping policies alone: exact accept/reject sequences and the exact λ after each step."""

import math

import numpy as np
import pytest

from marquardt import Nielsen, TrainLM
from marquardt._damping import DampingState, get_damping


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
