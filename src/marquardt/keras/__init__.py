"""Levenberg-Marquardt training for Keras 3 models (TensorFlow or JAX backend).

``LMModel`` wraps a Keras model so that Keras' own ``fit`` does one LM iteration per step;
``fit`` is the one-call form. See ``docs/keras.md``.
"""

from marquardt.keras._fit import fit
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
    "SUPPORTED_LOSSES",
    "LossResiduals",
    "residuals_for_loss",
    "MemoryPlan",
    "plan_memory",
]
