"""MATLAB's ``fitnet`` + ``trainlm`` workflow in Keras terms: ``fitnet``.

What MATLAB does without being asked when a function-fitting network is trained with
``trainlm`` (MathWorks documentation of ``fitnet``, ``dividerand``, ``mapminmax``,
``trainlm``), and what ``fitnet`` does for it here:

============================  ==============================  ================================
MATLAB                        default                         here
============================  ==============================  ================================
``net.divideFcn``             ``dividerand``, 0.70/0.15/0.15  ``dividerand``: a random
                                                              permutation; round(0.15·Q)
                                                              validation and test rows
``processFcns``               ``mapminmax`` to [-1, 1]        a fixed ``keras.layers.
                                                              Normalization`` on the inputs,
                                                              an inverted one on the outputs:
                                                              saved in the ``.keras`` file
``hiddenSizes``, transfer     10, ``tansig``; ``purelin``     ``Dense(10, "tanh")``, linear
``initFcn``                   ``initnw`` (Nguyen-Widrow)      the same rule
``trainParam.epochs``         1000                            ``epochs=1000``
``trainParam.max_fail``       6                               ``EarlyStopping(patience=6,
                                                              restore_best_weights=True)``
μ, μ_dec, μ_inc, μ_max,       1e-3, 0.1, 10, 1e10, 1e-7       ``TRAINLM``
``min_grad``
μ in the training record      ``tr.mu``                       ``history.history["mu"]``
============================  ==============================  ================================

MATLAB configures ``mapminmax`` on all the data given to ``train`` (``configure``), before the
division; so does ``fitnet``. A row (feature) that is constant is passed through, as
``mapminmax`` does. The performance is the MSE in the targets' units (MATLAB's
``performParam.normalization = 'none'``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import keras
import numpy as np

from marquardt.keras._fit import fit
from marquardt.keras._initnw import initnw
from marquardt.keras._options import TRAINLM, resolve_options

__all__ = ["fitnet", "FitnetResult", "dividerand", "mapminmax", "MATLAB_DEFAULTS"]

#: ``fitnet``/``trainlm`` defaults (MathWorks documentation), as used by ``fitnet``.
#: ``trainbr_division``: ``fitnet`` with Bayesian regularisation, which has no validation stop
#: (trainbr's ``max_fail`` 0), gives trainlm's validation rows to training (as ``marquardt train
#: --method trainbr``).
MATLAB_DEFAULTS = {"division": (0.70, 0.15, 0.15), "hidden": (10,), "epochs": 1000,
                   "max_fail": 6, "range": (-1.0, 1.0), "trainbr_division": (0.85, 0.0, 0.15)}


class FitnetResult(NamedTuple):
    """What ``fitnet`` returns: the trained model, Keras' History, and the division
    (``{"train": ..., "validation": ..., "test": ...}``, sorted row indices)."""

    model: Any
    history: Any
    division: dict


def dividerand(q: int, train: float = 0.70, validation: float = 0.15, test: float = 0.15,
               seed=None) -> dict:
    """MATLAB's ``dividerand``: a random division of ``q`` rows.

    The ratios are normalised to sum to 1; round(validation·q) and round(test·q) rows go to
    validation and test, the rest to training, drawn by one random permutation.

    Returns:
        ``{"train": idx, "validation": idx, "test": idx}``, each sorted.

    Raises:
        ValueError: a negative ratio, a zero total, or no training row left.
    """
    ratios = np.array([train, validation, test], dtype=float)
    if np.any(ratios < 0) or not ratios.sum() > 0:
        raise ValueError("`train`, `validation`, `test` must be >= 0 with a positive sum. "
                         f"Received: train={train}, validation={validation}, test={test}")
    ratios = ratios / ratios.sum()
    n_val, n_test = (int(np.floor(r * q + 0.5)) for r in ratios[1:])  # MATLAB's round
    n_train = q - n_val - n_test
    if n_train < 1:
        raise ValueError(f"`q` rows ({q}) leave no training row. Received: q={q}")
    order = np.random.default_rng(seed).permutation(q)
    bounds = np.cumsum([0, n_train, n_val, n_test])
    return {name: np.sort(order[bounds[i]:bounds[i + 1]])
            for i, name in enumerate(("train", "validation", "test"))}


def mapminmax(data, *, invert: bool = False, name: str | None = None):
    """MATLAB's ``mapminmax`` as a fixed ``keras.layers.Normalization``.

    Maps each column of ``data`` (samples × features) from [min, max] to [-1, 1]:
    x' = (x − c)/h with c = (max + min)/2, h = (max − min)/2, which is Normalization with
    mean c and variance h²; ``invert=True`` gives the map back (for the outputs). A constant
    column is passed through (c = 0, h = 1).
    """
    data = np.asarray(data, dtype=np.float64).reshape(len(data), -1)
    low, high = data.min(axis=0), data.max(axis=0)
    half = (high - low) / 2.0
    constant = ~(half > 0)
    centre = np.where(constant, 0.0, (high + low) / 2.0)
    half = np.where(constant, 1.0, half)
    return keras.layers.Normalization(mean=centre, variance=half**2, invert=invert, name=name)


class _MuLog(keras.callbacks.Callback):
    """``mu`` in the logs: trainlm's name for λ (the value for the next iteration)."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and "lam" in logs:
            logs["mu"] = logs["lam"]


def fitnet(x, y, hidden=(10,), *, division=None, epochs: int = 1000,
           max_fail: int | None = None, seed=None, callbacks=None, verbose=0, options=TRAINLM,
           **lm_options) -> FitnetResult:
    """Build and train a function-fitting network as MATLAB's ``fitnet`` + ``train`` does.

    Args:
        x: inputs, samples × features (MATLAB's are features × samples).
        y: targets, samples × outputs.
        hidden: hidden layer sizes (``tanh``), MATLAB's ``hiddenSizes`` (10).
        division: training, validation and test ratios for ``dividerand`` (default
            0.70/0.15/0.15; with Bayesian regularisation 0.85/0/0.15, as it has no
            validation stop).
        epochs: most LM iterations (1000).
        max_fail: validation failures before stopping (default 6, trainlm's); the best
            validation weights are kept. Without validation rows there is no validation
            stopping, nor with Bayesian regularisation (``TRAINBR``: MATLAB's ``trainbr``
            has ``max_fail`` 0; validation rows are then only reported, as ``val_loss``).
        seed: seeds the division and the initial weights.
        callbacks, verbose: as in ``keras.Model.fit``.
        options, **lm_options: LM options (``TRAINLM`` by default; ``TRAINBR`` for MATLAB's
            ``fitnet(hiddenSizes, 'trainbr')``).

    Raises:
        ValueError: ``max_fail`` with Bayesian regularisation, which has no validation stop;
            a ``division`` that is not three ratios.

    Returns:
        ``FitnetResult(model, history, division)``. ``model`` takes raw inputs and returns
        outputs in the targets' units; it saves and loads as a plain Keras model.
        ``history.history`` has ``loss`` (training MSE), ``val_loss``, ``test_loss`` and ``mu``.

    Example:
        >>> result = marquardt.keras.fitnet(x, y, seed=0)
        >>> result.model.save("net.keras")        # loads without marquardt
    """
    bayesian = resolve_options(options, **lm_options).regularization == "bayesian"
    if bayesian and max_fail is not None:
        raise ValueError(
            "`max_fail` must be None with Bayesian regularisation: MATLAB's trainbr has no "
            f"validation stop (max_fail 0). Received: max_fail={max_fail!r}")
    if division is None:
        division = MATLAB_DEFAULTS["trainbr_division" if bayesian else "division"]
    if not isinstance(division, (tuple, list)) or len(division) != 3:
        # (0.8, 0.2) used to become (0.8, 0.2, 0.15) through dividerand's default test ratio
        raise ValueError(
            "`division` must be three ratios (train, validation, test), e.g. (0.7, 0.15, "
            f"0.15) or (0.8, 0.2, 0) for no test rows. Received: division={division!r}")
    if max_fail is None:
        max_fail = MATLAB_DEFAULTS["max_fail"]
    x = np.asarray(x, dtype="float32")
    y = np.asarray(y, dtype="float32")
    x = x.reshape(len(x), -1)
    y = y.reshape(len(y), -1)
    parts = dividerand(len(x), *division, seed=seed)
    if seed is not None:
        keras.utils.set_random_seed(seed)
    layers = [keras.Input((x.shape[1],)), mapminmax(x, name="mapminmax_inputs")]
    layers += [keras.layers.Dense(units, "tanh", name=f"hidden_{i + 1}")
               for i, units in enumerate(hidden)]
    layers += [keras.layers.Dense(y.shape[1], name="purelin"),
               mapminmax(y, invert=True, name="mapminmax_outputs")]
    model = keras.Sequential(layers, name="fitnet")
    if hidden:
        initnw(model, seed)
    tr, va, te = parts["train"], parts["validation"], parts["test"]
    extra = [_MuLog()]
    if te.size:
        extra.append(keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: logs.update(
            test_loss=float(np.mean((np.asarray(model(x[te])) - y[te]) ** 2)))))
    if va.size and not bayesian:
        extra.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=max_fail,
                                                   restore_best_weights=True))
    history = fit(model, x[tr], y[tr], loss="mse", epochs=epochs, verbose=verbose,
                  validation_data=(x[va], y[va]) if va.size else None,
                  callbacks=extra + list(callbacks or []), options=options, **lm_options)
    return FitnetResult(model=model, history=history, division=parts)
