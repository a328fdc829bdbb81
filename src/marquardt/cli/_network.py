"""The feed-forward network of ``marquardt train`` and ``marquardt demo``, MATLAB ``fitnet`` style.

The saved model takes raw inputs and returns outputs in the units of the targets: like MATLAB's
``mapminmax`` processing, a fixed ``Normalization`` layer maps each input column from its
[min, max] on the training rows to [-1, 1], and an inverted one maps the linear output layer back
from [-1, 1] to each target's [min, max]. Both are plain Keras layers, so the file loads with
``keras.saving.load_model`` and no marquardt import. A column that is constant on the training
rows is passed through unscaled (as ``mapminmax`` does).

Hidden layers with a bounded activation (tanh, sigmoid) can be initialised by the rule of Nguyen
and Widrow (1990), which MATLAB's ``initnw`` uses: each neuron's weight vector gets the length
β = 0.7·H^(1/N) for a layer of H neurons with N inputs in [-1, 1], in a uniformly random
direction, and its bias is uniform in [-β, β], so that the neurons' active regions are spread over
the input range instead of overlapping at the origin.

References:
    D. Nguyen and B. Widrow, "Improving the learning speed of 2-layer neural networks by choosing
    initial values of the adaptive weights", IJCNN 1990, vol. 3, pp. 21-26.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

__all__ = ["Scaling", "build_network", "nguyen_widrow", "ACTIVATIONS", "BOUNDED"]

ACTIVATIONS = ("tanh", "sigmoid", "relu", "elu", "softplus", "linear")
"""Hidden-layer activations offered on the command line (Keras names)."""
BOUNDED = ("tanh", "sigmoid")
"""Activations for which the Nguyen-Widrow rule is meant (a bounded, sigmoid-shaped response)."""

NGUYEN_WIDROW_FACTOR = 0.7
"""β = 0.7·H^(1/N): the constant of Nguyen and Widrow (1990)."""


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


def nguyen_widrow(fan_in: int, units: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Kernel ``(fan_in, units)`` and bias ``(units,)`` by the Nguyen-Widrow rule (module docstring)."""
    beta = NGUYEN_WIDROW_FACTOR * units ** (1.0 / fan_in)
    kernel = rng.uniform(-1.0, 1.0, size=(fan_in, units))
    norms = np.linalg.norm(kernel, axis=0)
    kernel *= beta / np.where(norms > 0, norms, 1.0)
    bias = rng.uniform(-beta, beta, size=units)
    return kernel, bias


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
    if init == "nguyen-widrow" and activation in BOUNDED:
        rng = np.random.default_rng(seed)
        fan_in = inputs.centre.size
        for i, units in enumerate(hidden):
            kernel, bias = nguyen_widrow(fan_in, units, rng)
            model.get_layer(f"hidden_{i + 1}").set_weights([kernel.astype(dtype), bias.astype(dtype)])
            fan_in = units
    return model
