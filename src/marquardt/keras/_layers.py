"""Layers whose behaviour under Levenberg-Marquardt the user should hear about, once per ``fit``.

LM evaluates the network several times per iteration (the Jacobian, then one forward pass per
λ tried) and accepts a step by comparing those evaluations, so every forward pass must be the
same function of the weights. That decides what ``LMOptions.training`` does to some layers:

* Dropout-like layers (``Dropout``, ``SpatialDropout*``, ``GaussianDropout``,
  ``GaussianNoise``, ``AlphaDropout``): with ``training=False`` (the default) they are the
  identity, so they do not regularise at all; with ``training=True`` each forward pass draws a
  new mask, the gain ratio compares two different random networks, and λ climbs until the
  iteration gives up: training does not converge.
* ``BatchNormalization``: with ``training=False`` it normalises with its moving statistics,
  which are never updated (they stay at their initial or loaded values); with
  ``training=True`` the batch statistics couple the samples (full Jacobian, slower) and the
  moving statistics are written back after each accepted iteration.

``fit`` warns (``UserWarning``) naming the layers and the choice, where the user decides.
"""

from __future__ import annotations

import warnings

import keras

__all__ = ["coupled_layers", "warn_about_layers"]

_RANDOM = tuple(getattr(keras.layers, name) for name in (
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianDropout",
    "GaussianNoise", "AlphaDropout") if hasattr(keras.layers, name))


def _layers(net, kind):
    return [layer.name for layer in net._flatten_layers(include_self=False)
            if isinstance(layer, kind)]


def coupled_layers(net, training: bool):
    """Layers that mix samples in the forward pass used by the step."""
    return _layers(net, keras.layers.BatchNormalization) if training else []


def warn_about_layers(net, training: bool) -> None:
    """Warn about Dropout-like and batch-normalisation layers (see the module docstring)."""
    random = _layers(net, _RANDOM)
    if random and training:
        warnings.warn(
            f"Dropout-like layers {random} with `training=True`: each forward pass of the LM "
            "iteration draws new noise, so the gain ratio compares different networks and "
            "training will not converge. Remove them or keep `training=False` (they are then "
            "the identity).", UserWarning, stacklevel=3)
    elif random:
        warnings.warn(
            f"Dropout-like layers {random} are inert: Levenberg-Marquardt runs the network with "
            "`training=False` (the default), so they do not regularise. `training=True` would "
            "make every forward pass random and LM would not converge; regularise with "
            "`residual=` penalties or validation stopping instead.", UserWarning, stacklevel=3)
    norms = _layers(net, keras.layers.BatchNormalization)
    if norms and not training:
        warnings.warn(
            f"BatchNormalization layers {norms}: their moving statistics are not updated with "
            "`training=False` (the default); they normalise with the statistics they hold now. "
            "Pass `training=True` to update them (samples are then coupled: the full Jacobian "
            "is used, which is slower).", UserWarning, stacklevel=3)
