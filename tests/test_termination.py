"""Termination tests with SciPy's meanings, and the status messages."""

import numpy as np

from marquardt._status import Status, status_message
from marquardt._termination import gradient_cosine, gradient_status, step_status

R = int(Status.RUNNING)


def codes(*args, ftol=1e-8, xtol=1e-8):
    return np.asarray(step_status(*(np.asarray(a, dtype=np.float64) for a in args), ftol, xtol)).tolist()


def test_ftol_needs_small_reduction_and_model_agreement():
    # dF < ftol·F and ρ > 0.25 → FTOL; the same dF with ρ = 0.1 is not enough.
    assert codes([1e-9], [1.0], [1.0], [1.0], [0.9]) == [int(Status.FTOL)]
    assert codes([1e-9], [1.0], [1.0], [1.0], [0.1]) == [R]
    assert codes([1e-7], [1.0], [1.0], [1.0], [0.9]) == [R]


def test_xtol_and_both():
    assert codes([1.0], [1.0], [1e-9], [1.0], [0.9]) == [int(Status.XTOL)]
    assert codes([1e-9], [1.0], [1e-9], [1.0], [0.9]) == [int(Status.FTOL_XTOL)]
    # xtol + ‖x‖ lets x = 0 terminate: ‖p‖ < xtol·(xtol + 0)
    assert codes([1.0], [1.0], [1e-17], [0.0], [0.9]) == [int(Status.XTOL)]


def test_gradient_cosine_and_status():
    g = np.array([[3.0, 0.0]])
    cos = float(np.asarray(gradient_cosine(g, np.array([2.0]), np.array([[3.0, 1.0]])))[0])
    assert cos == 0.5  # |3| / (2·3)
    assert np.asarray(gradient_status(g, np.array([2.0]), np.array([[3.0, 1.0]]), 0.6)).tolist() == [1]
    assert np.asarray(gradient_status(g, np.array([2.0]), np.array([[3.0, 1.0]]), 0.4)).tolist() == [R]
    # r = 0: converged whatever the gradient test says
    assert np.asarray(gradient_status(g * 0, np.array([0.0]), np.array([[3.0, 1.0]]), 0.0)).tolist() == [1]


def test_status_messages_carry_numbers():
    msg = status_message(Status.GTOL, "gradient cosine 3.1e-11 <= gtol 1e-10")
    assert msg == ("`gtol` termination condition is satisfied "
                   "(gradient cosine 3.1e-11 <= gtol 1e-10).")
    assert Status(2) is Status.FTOL and Status.FTOL.success and not Status.MAX_NFEV.success
    assert int(Status.MAX_NFEV) == 0 and int(Status.IMPROPER_INPUT) == -1
