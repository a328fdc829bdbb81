"""The Nguyen-Widrow rule for the initial weights of a layer with a bounded activation.

MATLAB's ``initnw`` (the ``initFcn`` of ``fitnet``, and so the start of ``trainlm`` and
``trainbr`` there; Foresee & Hagan (1997) train from it): for a layer of H neurons with N
inputs in [-1, 1], each neuron's weight vector gets the length β = 0.7·H^(1/N) in a uniformly
random direction and its bias is uniform in [-β, β], so that the neurons' active regions
(where tanh or the logistic function is not saturated) are spread over the input range instead
of overlapping at the origin. NumPy only: the command line's ``--help`` needs no Keras.

References:
    D. Nguyen and B. Widrow, "Improving the learning speed of 2-layer neural networks by choosing
    initial values of the adaptive weights", IJCNN 1990, vol. 3, pp. 21-26.
"""

from __future__ import annotations

import numpy as np

__all__ = ["nguyen_widrow", "NGUYEN_WIDROW_FACTOR", "BOUNDED"]

NGUYEN_WIDROW_FACTOR = 0.7
"""β = 0.7·H^(1/N): the constant of Nguyen and Widrow (1990) and of MATLAB's ``initnw``."""

BOUNDED = ("tanh", "sigmoid")
"""Activations (Keras names) the rule is meant for: a bounded, sigmoid-shaped response."""


def nguyen_widrow(fan_in: int, units: int,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Kernel ``(fan_in, units)`` and bias ``(units,)`` by the Nguyen-Widrow rule.

    The kernel is drawn first (uniform on [-1, 1], each column scaled to length β), then the
    bias (uniform on [-β, β]), from ``rng``.
    """
    beta = NGUYEN_WIDROW_FACTOR * units ** (1.0 / fan_in)
    kernel = rng.uniform(-1.0, 1.0, size=(fan_in, units))
    norms = np.linalg.norm(kernel, axis=0)
    kernel *= beta / np.where(norms > 0, norms, 1.0)
    bias = rng.uniform(-beta, beta, size=units)
    return kernel, bias
