"""The SciPy bridge: TensorFlow residuals and exact Jacobians for ``scipy.optimize``.

* ``residual_functions(fun, x0, args=...)`` — ``(f, jac)`` for ``least_squares`` or
  ``curve_fit``: NumPy in, float64 NumPy out, compiled once, J exact by autodiff (or a
  matrix-free ``LinearOperator`` for ``tr_solver="lsmr"``).
* ``model_functions(model, x, y, loss=...)`` — the same for a Keras model's loss, in its
  flattened trainable weights; ``fit_model`` fits them with ``least_squares``.
* ``check_residuals(fun, x0, loss_fn)`` — does ½Σr² reproduce your loss? Catches the gradient
  passed where residuals are expected.

SciPy is imported only where it is needed (``fit_model``, the ``LinearOperator``):
``import marquardt`` never imports it. See ``docs/scipy_bridge.md``.
"""

from marquardt.scipy._functions import JacobianFunction, ResidualFunction, residual_functions

#: Names whose modules import TensorFlow (and Keras) at import: loaded on first use, so that
#: ``residual_functions`` for a JAX function runs where TensorFlow is not installed.
_LAZY = {"check_residuals": "_check", "ResidualCheck": "_check", "model_functions": "_model",
         "fit_model": "_model", "ModelFunctions": "_model"}


def __getattr__(name):
    if name in _LAZY:
        import importlib
        value = getattr(importlib.import_module(f"marquardt.scipy.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'marquardt.scipy' has no attribute {name!r}")

__all__ = [
    "residual_functions",
    "model_functions",
    "fit_model",
    "check_residuals",
    "ResidualFunction",
    "JacobianFunction",
    "ModelFunctions",
    "ResidualCheck",
]
