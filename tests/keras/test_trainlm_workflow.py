"""``marquardt.keras.fitnet``: MATLAB fitnet + trainlm's division, normalisation and stopping."""

import subprocess
import sys

import numpy as np
import pytest

import marquardt.keras as mk
from marquardt.keras._trainlm import MATLAB_DEFAULTS

RNG = np.random.default_rng(0)
X = RNG.uniform([-3, 10], [5, 50], size=(200, 2)).astype("float32")
Y = (np.sin(X[:, :1]) * 4 + X[:, 1:] / 10 + 0.05 * RNG.normal(size=(200, 1))).astype("float32")


def test_dividerand_is_matlabs_70_15_15_random_division():
    parts = mk.dividerand(200, seed=0)
    assert [parts[k].size for k in ("train", "validation", "test")] == [140, 30, 30]
    every = np.concatenate(list(parts.values()))
    np.testing.assert_array_equal(np.sort(every), np.arange(200))  # disjoint, complete
    assert not np.array_equal(parts["validation"], np.arange(140, 170))  # not the last rows
    # MATLAB: numValidate = round(0.15 Q), numTest = round(0.15 Q), the rest trains
    sizes = {q: [v.size for v in mk.dividerand(q, seed=1).values()] for q in (101, 7, 10)}
    assert sizes == {101: [71, 15, 15], 7: [5, 1, 1], 10: [6, 2, 2]}
    with pytest.raises(ValueError, match="leave no training row"):
        mk.dividerand(1, 0.0, 0.5, 0.5)


def test_mapminmax_maps_each_column_to_minus_one_one_and_back():
    layer = mk.mapminmax(X)
    out = np.asarray(layer(X))
    np.testing.assert_allclose(out.min(axis=0), [-1, -1], atol=1e-6)
    np.testing.assert_allclose(out.max(axis=0), [1, 1], atol=1e-6)
    back = np.asarray(mk.mapminmax(X, invert=True)(out))
    np.testing.assert_allclose(back, X, rtol=1e-5, atol=1e-4)
    constant = np.column_stack([X[:, 0], np.full(200, 3.0)])
    np.testing.assert_allclose(np.asarray(mk.mapminmax(constant)(constant))[:, 1], 3.0)


def test_fitnet_has_matlabs_defaults_and_the_saved_model_loads_without_marquardt(tmp_path):
    assert mk.fitnet.__kwdefaults__["epochs"] == 1000
    assert MATLAB_DEFAULTS["max_fail"] == 6 and mk.fitnet.__kwdefaults__["max_fail"] is None
    assert MATLAB_DEFAULTS["division"] == (0.70, 0.15, 0.15)
    assert mk.fitnet.__kwdefaults__["division"] is None  # the method's: trainlm's here
    assert mk.fitnet.__kwdefaults__["options"] == mk.TRAINLM
    result = mk.fitnet(X, Y, seed=0, epochs=60)
    net, history = result.model, result.history
    assert [result.division[k].size for k in ("train", "validation", "test")] == [140, 30, 30]
    assert {"loss", "val_loss", "test_loss", "mu"} <= set(history.history)
    assert history.history["mu"] == history.history["lam"]
    # the layers: mapminmax, tansig hidden 10, purelin, inverse mapminmax
    assert [type(l).__name__ for l in net.layers] == [
        "Normalization", "Dense", "Dense", "Normalization"]
    assert net.layers[1].units == 10 and net.layers[1].activation.__name__ == "tanh"
    scaled = np.asarray(net.layers[0](X))
    np.testing.assert_allclose([scaled.min(), scaled.max()], [-1, 1], atol=1e-6)
    va = result.division["validation"]
    assert float(np.mean((np.asarray(net(X[va])) - Y[va]) ** 2)) < 0.05 * np.var(Y)

    path = tmp_path / "fitnet.keras"
    net.save(path)
    np.save(tmp_path / "x.npy", X)
    code = ("import sys, numpy as np, keras; m = keras.saving.load_model(sys.argv[1]); "
            "assert not [k for k in sys.modules if k.startswith('marquardt')]; "
            "np.save(sys.argv[2], m.predict(np.load(sys.argv[3]), verbose=0))")
    subprocess.run([sys.executable, "-c", code, str(path), str(tmp_path / "p.npy"),
                    str(tmp_path / "x.npy")], check=True, capture_output=True)
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), np.asarray(net(X)), rtol=1e-5,
                               atol=1e-5)


def test_fitnet_stops_after_max_fail_validation_failures_with_the_best_weights():
    """Noisy data and 20 neurons: validation MSE turns up early; trainlm's max_fail = 6."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(60, 1)).astype("float32")
    y = (np.sin(3 * x) + 0.5 * rng.normal(size=(60, 1))).astype("float32")
    result = mk.fitnet(x, y, hidden=(20,), seed=0, epochs=200)
    val = np.asarray(result.history.history["val_loss"])
    assert "EarlyStopping" in result.history.stop_reason and "max_fail" in (
        result.history.stop_reason)
    assert len(val) - 1 - int(np.argmin(val)) == 6
    va = result.division["validation"]
    best = float(np.mean((np.asarray(result.model(x[va])) - y[va]) ** 2))
    assert best == pytest.approx(val.min(), rel=1e-4)


@pytest.mark.slow
def test_fitnet_with_trainbr_has_no_validation_stop_as_matlabs_trainbr():
    """MATLAB's trainbr has max_fail 0: fitnet(..., options=TRAINBR) trains every epoch (it
    used to stop by trainlm's EarlyStopping, at epoch 8 on these data, with trainlm's
    validation rows held out). Its default division gives those rows to training."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(60, 1)).astype("float32")
    y = (np.sin(3 * x) + 0.5 * rng.normal(size=(60, 1))).astype("float32")
    with pytest.raises(ValueError, match=r"`max_fail` must be None with Bayesian.*"
                                         r"Received: max_fail=6"):
        mk.fitnet(x, y, options=mk.TRAINBR, max_fail=6)
    assert [v.size for v in mk.dividerand(60, *MATLAB_DEFAULTS["trainbr_division"],
                                          seed=0).values()] == [51, 0, 9]
    result = mk.fitnet(x, y, hidden=(20,), seed=0, epochs=12, options=mk.TRAINBR,
                       division=(0.7, 0.15, 0.15))  # validation rows: reported only
    assert len(result.history.history["val_loss"]) == 12
    assert "maximum number of epochs" in result.history.stop_reason
    assert len(result.history.history["gamma"]) == 12


@pytest.mark.parametrize("division", [(0.8, 0.2), 0.7, (0.7, 0.1, 0.1, 0.1)])
def test_fitnet_division_is_three_ratios(division):
    # (0.8, 0.2) trained on 0.8/1.15 of the rows, dividerand's default test ratio 0.15 added
    with pytest.raises(ValueError, match=r"`division` must be three ratios.*Received: "
                                         r"division="):
        mk.fitnet(X, Y, division=division, epochs=1)


def test_initnw_sets_bounded_dense_layers_by_the_nguyen_widrow_rule():
    import keras

    inner = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, "sigmoid", name="deep")])
    net = keras.Sequential([keras.Input((3,)), keras.layers.Dense(6, "tanh", name="first"),
                            keras.layers.Dense(5, "relu", name="rectified"), inner,
                            keras.layers.Dense(1, name="out")])
    untouched = {n: [np.array(w) for w in net.get_layer(n).get_weights()]
                 for n in ("rectified", "out")}
    assert mk.initnw(net, seed=3) == ["first", "deep"]
    for layer, fan_in, units in ((net.get_layer("first"), 3, 6), (inner.get_layer("deep"), 5, 4)):
        beta = 0.7 * units ** (1.0 / fan_in)  # Nguyen & Widrow (1990), MATLAB's initnw
        kernel, bias = (np.asarray(w, dtype=float) for w in layer.get_weights())
        np.testing.assert_allclose(np.linalg.norm(kernel, axis=0), beta, rtol=1e-6)
        assert np.all(np.abs(bias) <= beta) and np.ptp(bias) > 0
    # the draws: layer by layer in model order, each kernel before its bias, from default_rng(seed)
    rng = np.random.default_rng(3)
    first = rng.uniform(-1, 1, (3, 6))
    first *= 0.7 * 6 ** (1 / 3) / np.linalg.norm(first, axis=0)
    np.testing.assert_allclose(net.get_layer("first").kernel, first, rtol=1e-6)
    for name, weights in untouched.items():
        for before, after in zip(weights, net.get_layer(name).get_weights()):
            np.testing.assert_array_equal(before, after)
    # fitnet starts from this rule: its hidden layer equals initnw of the same seed
    fitted = mk.fitnet(X, Y, seed=5, epochs=0).model
    copy = keras.models.clone_model(fitted)
    mk.initnw(copy, seed=5)
    np.testing.assert_allclose(fitted.get_layer("hidden_1").kernel,
                               copy.get_layer("hidden_1").kernel)
    linear = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="initnw: expected a model with a built Dense layer "
                                         "whose activation is tanh or sigmoid"):
        mk.initnw(linear)
