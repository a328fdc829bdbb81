"""``initnw``: MATLAB's Nguyen-Widrow initialisation for the Dense layers of any Keras model."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from marquardt._initnw import BOUNDED, nguyen_widrow

__all__ = ["initnw"]


def _layers(model) -> list[Any]:
    """The model's layers in order, those of nested models and layers included."""
    found = []
    for layer in getattr(model, "layers", []):
        found.append(layer)
        found.extend(_layers(layer))
    return found


def initnw(model, seed: int | None = None) -> list[str]:
    """Set the weights of every ``Dense`` layer with a ``tanh`` or ``sigmoid`` activation by
    the Nguyen-Widrow rule, as MATLAB's ``initnw`` does for ``fitnet`` (the start of MATLAB's
    ``trainlm`` and ``trainbr``).

    For a layer of H neurons with N inputs, each neuron's weight vector gets the length
    β = 0.7·H^(1/N) in a uniformly random direction and its bias is uniform in [-β, β]
    (Nguyen & Widrow 1990): the neurons' active regions are spread over the input range. The
    rule assumes inputs scaled to [-1, 1] (MATLAB's ``mapminmax``; ``marquardt.keras.mapminmax``
    or ``fitnet`` do it inside the model). Other layers keep their weights (a linear output
    layer keeps Keras' Glorot start).

    Args:
        model: a built Keras model (its Dense layers have their kernels).
        seed: seeds the draws (layers in the order of ``model.layers``, nested models
            depth-first; each layer's kernel before its bias).

    Returns:
        The names of the layers set.

    Raises:
        ValueError: the model has no built ``Dense`` layer with a tanh or sigmoid activation.

    Example:
        >>> net = keras.Sequential([keras.Input((1,)), keras.layers.Dense(20, "tanh"),
        ...                         keras.layers.Dense(1)])
        >>> marquardt.keras.initnw(net, seed=0)
        ['dense']
    """
    rng = np.random.default_rng(seed)
    names = []
    for layer in _layers(model):
        activation = getattr(getattr(layer, "activation", None), "__name__", "")
        if not (isinstance(layer, keras.layers.Dense) and activation in BOUNDED):
            continue
        if not layer.built:
            continue
        fan_in, units = (int(d) for d in layer.kernel.shape)
        kernel, bias = nguyen_widrow(fan_in, units, rng)
        dtype = layer.kernel.dtype
        layer.kernel.assign(kernel.astype(dtype))
        if layer.use_bias:
            layer.bias.assign(bias.astype(dtype))
        names.append(layer.name)
    if not names:
        raise ValueError(
            "initnw: expected a model with a built Dense layer whose activation is tanh or "
            f"sigmoid (the Nguyen-Widrow rule is for bounded activations), received {model.name!r} "
            "with none")
    return names
