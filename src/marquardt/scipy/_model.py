"""Keras models for SciPy: ``model_functions`` and ``fit_model``.

The residuals are those of ``marquardt.keras`` (``marquardt.keras._residuals``): for a model
compiled with a loss L of Keras' default reduction, r = (per-sample residuals) / √N, so that
SciPy's cost ½Σr² *is* the Keras loss value (``sum`` reduction: no 1/√N, ½Σr² is still the
loss). This module writes no loss→residual mapping of its own.

The parameters are the model's trainable weights, flattened in the order of
``model.trainable_variables``; SciPy works in float64, and each weight is cast to its
variable's dtype when the model is run (``stateless_call``, inference mode: no variable is
touched while SciPy explores).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import keras
import numpy as np

from marquardt import _checks
from marquardt._backend.tensorflow import bridge
from marquardt.keras import _validation
from marquardt.keras._residuals import loss_names, model_residuals
from marquardt.scipy._functions import (
    JacobianFunction, ResidualFunction, _check_choice, build_caller, check_options)

__all__ = ["model_functions", "fit_model", "ModelFunctions", "METHODS"]

#: ``scipy.optimize.least_squares`` methods.
METHODS = ("trf", "dogbox", "lm")

#: Arguments of ``least_squares`` that ``fit_model`` supplies itself.
_OWN = ("fun", "x0", "jac", "args", "kwargs")


class ModelFunctions(NamedTuple):
    """SciPy's view of a Keras model: ``fun(w) -> r``, ``jac(w) -> J`` and the weights.

    Attributes:
        fun: residuals at the flat weight vector w (a ``ResidualFunction``).
        jac: their exact Jacobian (m, n) or a ``LinearOperator`` (a ``JacobianFunction``).
        get_weights_vector: ``() -> w``, the model's trainable weights now, float64 (n,).
        set_weights_vector: ``(w) -> None``, assigns w to the model's trainable weights.
    """

    fun: ResidualFunction
    jac: JacobianFunction
    get_weights_vector: Callable[[], np.ndarray]
    set_weights_vector: Callable[[Any], None]


def _compiled_loss(model):
    """The loss and loss weights ``model`` was compiled with (``(None, None)`` if none)."""
    if not getattr(model, "compiled", False):
        return None, None
    config = model.get_compile_config() or {}
    weights = config.get("loss_weights")
    if weights is not None:
        weights = keras.saving.deserialize_keras_object(weights)
    return getattr(model, "loss", None), weights


def _leading(structure, name: str) -> int:
    sizes = set()
    for leaf in keras.tree.flatten(structure):
        arr = np.asarray(leaf.numpy() if hasattr(leaf, "numpy") else leaf)
        if arr.ndim == 0:
            raise ValueError(f"`{name}` must have a leading sample axis. Received: {name} with "
                             "a scalar entry")
        sizes.add(arr.shape[0])
    if len(sizes) != 1:
        raise ValueError(f"`{name}` entries must all have the same number of samples. "
                         f"Received: sizes {sorted(sizes)}")
    return sizes.pop()


def _as_numpy(structure):
    return keras.tree.map_structure(
        lambda a: np.asarray(a.numpy() if hasattr(a, "numpy") else a), structure)


def model_functions(model, x, y, *, loss=None, sample_weight=None, jac_form: str = "dense",
                    mode: str = "per_sample", jit_compile: bool = False) -> ModelFunctions:
    """Residuals of a Keras model's loss and their exact Jacobian in its flattened weights.

    ½Σr² of the residuals is the model's loss on ``(x, y)`` (Keras' value, with the default
    ``"sum_over_batch_size"`` reduction), so ``scipy.optimize.least_squares(fun, w0,
    jac=jac).cost`` is that loss at the solution.

    Args:
        model: a built ``keras.Model`` with trainable weights (TensorFlow backend).
        x, y: the data: arrays, or lists/dicts of arrays for several inputs/outputs, with a
            common leading sample axis N.
        loss: a loss with a least-squares form (``"mse"``, ``"mae"``, ``"huber"``, the
            cross-entropies, or their ``keras.losses`` objects); ``None`` takes the loss
            (and loss weights) ``model`` was compiled with.
        sample_weight: optional per-sample weights (N,).
        jac_form: ``"dense"`` or ``"operator"`` (a ``LinearOperator``; see
            ``residual_functions``).
        mode: how J is formed: ``"per_sample"`` (default; one vectorised gradient per sample,
            checked once to be valid), or ``"auto"``, ``"forward"``, ``"reverse"`` for models
            whose samples interact.
        jit_compile: compile with XLA.

    Returns:
        A ``ModelFunctions`` record ``(fun, jac, get_weights_vector, set_weights_vector)``.

    Raises:
        TypeError: ``model`` is not a Keras model.
        ValueError: the model has no trainable weights or is not built, no loss, a loss
            without a least-squares form, data with mismatched sample counts or non-finite
            values, ``y`` that does not match the model's outputs, or non-finite residuals at
            the current weights.

    Example:
        >>> net = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
        >>> fns = model_functions(net, x, y, loss="mse")
        >>> res = scipy.optimize.least_squares(fns.fun, fns.get_weights_vector(), jac=fns.jac)
        >>> fns.set_weights_vector(res.x)
    """
    if not isinstance(model, keras.Model):
        raise TypeError("`model` must be a keras.Model. "
                        f"Received: model={_checks.short_repr(model)}")
    if not model.built:
        raise ValueError("`model` must be built: give it a keras.Input or call it once on data. "
                         f"Received: an unbuilt model {model.name!r}")
    _validation.check_trainable(model)
    _validation.check_no_penalties(model)
    check_options(jac_form, mode, jit_compile)
    loss_weights = None
    if loss is None:
        loss, loss_weights = _compiled_loss(model)
        if loss is None:
            raise ValueError("`loss` must be given when `model` was not compiled with one. "
                             "Received: loss=None")
    if x is None or y is None:
        raise ValueError("`x` and `y` must both be given. "
                         f"Received: x={_checks.short_repr(x)}, y={_checks.short_repr(y)}")
    x, y = _as_numpy(x), _as_numpy(y)
    structure = (x, y)
    if sample_weight is not None:
        sample_weight = _checks.as_float_array(sample_weight, "sample_weight")
        structure = (x, y, sample_weight)
    _validation.check_arrays(x, y, sample_weight)
    n_samples = _leading(structure, "x, y and sample_weight")

    names = list(getattr(model, "output_names", None) or ["output"])
    residual_fn, per_batch_mean = model_residuals(loss, loss_weights, names)
    # y against the outputs, as marquardt.keras checks it: a y that only broadcasts against
    # them ((N, 2) for (N, 1)) would make ½Σr² a multiple of Keras' loss
    px, py, _ = _validation.first_batch(x, y, None)
    _validation.check_targets(py, model(px, training=False), loss_names(loss, names))
    scale = 1.0 / np.sqrt(n_samples) if per_batch_mean else 1.0
    residual, layout = bridge.model_residual(model, residual_fn, scale, structure)

    w0 = bridge.get_weights(model)
    caller = build_caller(residual, w0, layout, (w0.size,), who="model residuals", mode=mode,
                          jac_form=jac_form, jit_compile=jit_compile)
    n = w0.size

    def get_weights_vector() -> np.ndarray:
        return bridge.get_weights(model)

    def set_weights_vector(w) -> None:
        arr = _checks.as_float_array(w, "w", ndim=1)
        if arr.shape != (n,):
            raise ValueError(f"`w` must have shape ({n},), one entry per trainable weight. "
                             f"Received: w with shape {arr.shape}")
        _checks.check_finite(arr, "w")
        bridge.set_weights(model, arr)

    return ModelFunctions(ResidualFunction(caller), JacobianFunction(caller, jac_form),
                          get_weights_vector, set_weights_vector)


def fit_model(model, x, y, *, loss=None, method: str = "trf", sample_weight=None,
              robust_loss: str = "linear", jac_form: str = "dense", mode: str = "per_sample",
              jit_compile: bool = False, **least_squares_kwargs):
    """Fit a Keras model's weights with ``scipy.optimize.least_squares`` and exact Jacobians.

    The model's weights are the start; the solution is written back into the model (only at
    the end: if SciPy raises, the model is unchanged).

    Args:
        model, x, y, loss, sample_weight, jac_form, mode, jit_compile: as in
            ``model_functions``.
        method: ``"trf"`` (default), ``"dogbox"`` or ``"lm"`` (MINPACK; needs at least as
            many residuals as weights, no bounds, a dense Jacobian).
        robust_loss: SciPy's ``loss`` argument (``"linear"``, ``"soft_l1"``, ``"huber"``,
            ``"cauchy"``, ``"arctan"``; ``"trf"`` and ``"dogbox"`` only), renamed because
            ``loss`` is the Keras loss here.
        **least_squares_kwargs: any other argument of ``scipy.optimize.least_squares``
            (``bounds``, ``ftol``, ``xtol``, ``gtol``, ``x_scale``, ``f_scale``,
            ``max_nfev``, ``tr_solver``, ``verbose``, ``callback``...).

    Returns:
        SciPy's ``OptimizeResult``. With ``robust_loss="linear"``, ``result.cost`` is the
        Keras loss at ``result.x``.

    Raises:
        ValueError: as ``model_functions``; an unknown ``method``; ``method="lm"`` with fewer
            residuals than weights or with ``jac_form="operator"``.
        TypeError: one of ``fun``, ``x0``, ``jac``, ``args``, ``kwargs`` among the keyword
            arguments (``fit_model`` supplies them).

    Example:
        >>> net = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
        >>> res = fit_model(net, x, y, loss="mse", method="lm")
        >>> res.cost  # the model's mse / 2 ... here the Keras loss itself
    """
    from scipy.optimize import least_squares  # SciPy only when a fit is asked for

    _check_choice(method, "method", METHODS)
    own = sorted(set(least_squares_kwargs) & set(_OWN))
    if own:
        raise TypeError(f"fit_model() supplies {', '.join(own)} itself. Received: "
                        + ", ".join(f"{k}={_checks.short_repr(least_squares_kwargs[k])}"
                                    for k in own))
    if method == "lm" and jac_form == "operator":
        raise ValueError("`method='lm'` needs a dense Jacobian (MINPACK). Received: "
                         "jac_form='operator'; use method='trf' with tr_solver='lsmr'")
    fns = model_functions(model, x, y, loss=loss, sample_weight=sample_weight,
                          jac_form=jac_form, mode=mode, jit_compile=jit_compile)
    w0 = fns.get_weights_vector()
    if method == "lm" and fns.fun.m < fns.fun.n:
        raise ValueError(
            "`method='lm'` needs at least as many residuals as weights. Received: "
            f"m={fns.fun.m} residuals, n={fns.fun.n} weights; use method='trf'")
    result = least_squares(fns.fun, w0, jac=fns.jac, method=method, loss=robust_loss,
                           **least_squares_kwargs)
    fns.set_weights_vector(result.x)
    return result
