"""The feed-forward network of ``marquardt train`` and ``marquardt demo``, MATLAB ``fitnet`` style.

The saved model takes raw inputs and returns outputs in the units of the targets: like MATLAB's
``mapminmax`` processing, a fixed ``Normalization`` layer maps each input column from its
[min, max] on the training rows to [-1, 1], and an inverted one maps the linear output layer back
from [-1, 1] to each target's [min, max]. Both are plain Keras layers, so the file loads with
``keras.saving.load_model`` and no marquardt import. A column that is constant on the training
rows is passed through unscaled (as ``mapminmax`` does).

Hidden layers with a bounded activation (tanh, sigmoid) can be initialised by the rule of Nguyen
and Widrow (1990), which MATLAB's ``initnw`` uses (``marquardt._initnw``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from marquardt._initnw import BOUNDED

__all__ = ["Scaling", "build_network", "ACTIVATIONS", "BOUNDED"]

ACTIVATIONS = ("tanh", "sigmoid", "relu", "elu", "softplus", "linear")
"""Hidden-layer activations offered on the command line (Keras names)."""


class Scaling(NamedTuple):
    """Per-column affine maps to [-1, 1], from the training rows: centre and half range."""

    centre: np.ndarray
    half_range: np.ndarray

    @classmethod
    def from_data(cls, data: np.ndarray) -> "Scaling":
        low, high = data.min(axis=0), data.max(axis=0)
        half = (high - low) / 2.0
        constant = ~(half > 0)
        return cls(centre=np.where(constant, 0.0, (high + low) / 2.0), half_range=np.where(constant, 1.0, half))


def build_network(*, inputs: Scaling, outputs: Scaling, hidden: tuple[int, ...], activation: str,
                  init: str, seed: int, dtype: str = "float32") -> Any:
    """The network raw inputs → [-1, 1] → hidden layers → linear layer → target units.

    Args:
        inputs: Scaling of the input columns (from the training rows).
        outputs: Scaling of the target columns (from the training rows).
        hidden: Hidden layer sizes; empty for a linear model.
        activation: Keras activation of the hidden layers.
        init: ``"nguyen-widrow"`` (hidden layers with a bounded activation) or ``"glorot"`` (Keras'
            default, Glorot-uniform kernels and zero biases).
        seed: Seeds Keras' initialisers and the Nguyen-Widrow draws.
        dtype: The layers' dtype.

    Returns:
        A built ``keras.Sequential``.
    """
    import keras

    keras.utils.set_random_seed(seed)
    layers: list[Any] = [
        keras.Input((inputs.centre.size,), dtype=dtype, name="inputs"),
        keras.layers.Normalization(mean=inputs.centre, variance=inputs.half_range**2, dtype=dtype,
                                   name="scale_inputs"),
    ]
    for i, units in enumerate(hidden):
        layers.append(keras.layers.Dense(units, activation=activation, dtype=dtype, name=f"hidden_{i + 1}"))
    layers.append(keras.layers.Dense(outputs.centre.size, dtype=dtype, name="linear_output"))
    layers.append(keras.layers.Normalization(mean=outputs.centre, variance=outputs.half_range**2, invert=True,
                                             dtype=dtype, name="unscale_outputs"))
    model = keras.Sequential(layers, name="fitnet")
    if init == "nguyen-widrow" and activation in BOUNDED and hidden:
        from marquardt.keras._initnw import initnw

        initnw(model, seed)
    return model
