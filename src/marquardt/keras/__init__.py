"""Levenberg-Marquardt training for Keras 3 models (TensorFlow or JAX backend).

``LMModel`` wraps a Keras model so that Keras' own ``fit`` does one LM iteration per step;
``fit`` is the one-call form. See ``docs/keras.md``.
"""

try:
    from marquardt.keras._fit import fit
except ModuleNotFoundError as _missing:  # Keras 3 cannot start without its backend
    if _missing.name not in ("tensorflow", "jax", "keras"):
        raise
    from marquardt._install import install_command as _install_command

    raise ImportError(
        f"marquardt.keras needs Keras 3 and a Keras backend, and {_missing.name!r} is not "
        "installed. Install TensorFlow (Keras' default backend) or JAX (then set "
        "KERAS_BACKEND=jax before Keras is imported):\n"
        f"    {_install_command('cpu')}      # tensorflow-cpu: CPU only, smaller\n"
        f"    {_install_command('tensorflow')}      # the full TensorFlow build (GPU on Linux)\n"
        f"    {_install_command('jax')}      # JAX, with KERAS_BACKEND=jax"
    ) from _missing
from marquardt.keras._initnw import initnw
from marquardt.keras._memory import MemoryPlan, plan_memory
from marquardt.keras._model import LMModel
from marquardt.keras._options import TRAINBR, TRAINLM, LMOptions
from marquardt.keras._residuals import SUPPORTED_LOSSES, LossResiduals, residuals_for_loss
from marquardt.keras._trainlm import FitnetResult, dividerand, fitnet, mapminmax

__all__ = [
    "LMModel",
    "fit",
    "LMOptions",
    "TRAINLM",
    "TRAINBR",
    "fitnet",
    "FitnetResult",
    "dividerand",
    "mapminmax",
    "initnw",
    "SUPPORTED_LOSSES",
    "LossResiduals",
    "residuals_for_loss",
    "MemoryPlan",
    "plan_memory",
]
