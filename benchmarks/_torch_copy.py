"""A Keras Dense/tanh network copied into PyTorch with the same initial weights, so that
torch-levenberg-marquardt starts where marquardt starts (``sinc.py``, ``small_nets.py``)."""

from __future__ import annotations

import numpy as np


def torch_copy(keras_net):
    """``torch.nn.Sequential`` of Linear layers with tanh between them (none after the last),
    holding ``keras_net``'s kernels (transposed) and biases."""
    import torch

    layers = []
    for dense in keras_net.layers:
        kernel, bias = (np.asarray(w) for w in dense.get_weights())
        lin = torch.nn.Linear(kernel.shape[0], kernel.shape[1])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(kernel.T.copy()))
            lin.bias.copy_(torch.from_numpy(bias.copy()))
        layers += [lin, torch.nn.Tanh()]
    return torch.nn.Sequential(*layers[:-1])
