"""The SciPy bridge: TensorFlow residuals and exact Jacobians for ``scipy.optimize``.

* ``residual_functions(fun, x0, args=...)`` — ``(f, jac)`` for ``least_squares`` or
  ``curve_fit``: NumPy in, float64 NumPy out, compiled once, J exact by autodiff (or a
  matrix-free ``LinearOperator`` for ``tr_solver="lsmr"``).
* ``check_residuals(fun, x0, loss_fn)`` — does ½Σr² reproduce your loss? Catches the gradient
  passed where residuals are expected.

SciPy is imported only where it is needed (the ``LinearOperator``):
``import marquardt`` never imports it. See ``docs/scipy_bridge.md``.
"""

from marquardt.scipy._check import ResidualCheck, check_residuals
from marquardt.scipy._functions import JacobianFunction, ResidualFunction, residual_functions

__all__ = [
    "residual_functions",
    "check_residuals",
    "ResidualFunction",
    "JacobianFunction",
    "ResidualCheck",
]
