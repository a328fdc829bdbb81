"""Cases of Bayesian regularisation's effective number of parameters, shared by the TensorFlow
(``tests/keras/test_trainbr.py``) and JAX (``tests/keras_jax/test_api.py``) tests, so that both
backends are held to the same numbers.

Each case is m = A + ρI with A = JᵀJ (J of the step's residuals) and the closed form of

    γ = P − ρ·tr((A + ρI)⁻¹) = Σ sᵢ/(sᵢ + ρ),     sᵢ the eigenvalues of A,

and whether the backend must reach it by the eigenvalue fallback (``fallback`` 1: the Cholesky
factor of m does not exist in floating point, or its γ lies outside [0, P]).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class GammaCase(NamedTuple):
    name: str
    a: np.ndarray  # A = JᵀJ, float64
    rho: float  # ρ
    gamma: float  # γ in closed form
    fallback: int  # 1 where the eigenvalue route must be taken

    @property
    def m(self) -> np.ndarray:
        return self.a + self.rho * np.eye(len(self.a))


_SPD = np.array([[4.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 2.0]])

#: Two equal columns of J (16 rows of ones each): A = 16·[[1, 1], [1, 1]], eigenvalues 32 and 0,
#: so γ = 32/(32 + ρ) + 0/(0 + ρ): one well-determined parameter (their sum), one determined by
#: the prior alone (their difference).
_DUPLICATED = 16.0 * np.ones((2, 2))

GAMMA_CASES = (
    GammaCase("positive definite", _SPD, 0.5,
              float(np.sum(np.linalg.eigvalsh(_SPD) / (np.linalg.eigvalsh(_SPD) + 0.5))), 0),
    # ρ well above rounding: the factor exists, γ = 32/32.5 by P − ρ·tr(m⁻¹)
    GammaCase("duplicated columns, ρ = 0.5", _DUPLICATED, 0.5, 32.0 / 32.5, 0),
    # ρ below rounding: m = A exactly, its second Cholesky pivot is 0; γ = 32/(32 + 1e-30) = 1,
    # where the old floored trace gave γ ≈ 2 in float64 and 0 (clipped) in float32
    GammaCase("duplicated columns, ρ = 1e-30", _DUPLICATED, 1e-30, 1.0, 1),
)


def out_of_range_trace(m):
    """A Cholesky route that 'succeeds' with a trace beyond P/ρ (what a float32 factor of a
    matrix singular at the scale of ρ can give): the shared logic must discard it."""
    return 1e40 * (0.0 * m[0, 0] + 1.0), True  # inf in float32
