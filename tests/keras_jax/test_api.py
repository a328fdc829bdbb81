"""``marquardt.keras`` on Keras' JAX backend: the backend-neutral cases of ``tests/keras``.

Run by ``tests/keras/test_keras_on_jax.py`` in a process with ``KERAS_BACKEND=jax`` (and
``jax_enable_x64``, set by this folder's conftest). Weights come from NumPy generators or
seeded initialisers: ``keras.utils.set_random_seed`` would import TensorFlow to seed it too
(and so does Keras' own saving code): that no TensorFlow is imported by training on JAX is
checked in a fresh process (``tests/keras/test_keras_on_jax.py``).
"""

import keras
import numpy as np
import pytest

import marquardt.keras as mk
from marquardt._status import Status
from bayes_cases import GAMMA_CASES, out_of_range_trace

RNG = np.random.default_rng(0)
X = np.linspace(-1.0, 1.0, 200, dtype="float32")[:, None]
Y = np.sin(3.0 * X).astype("float32")


def mlp(width=8, dtype="float32", activation="tanh", seed=0):
    init = keras.initializers.GlorotUniform(seed=seed)
    return keras.Sequential([
        keras.Input((1,), dtype=dtype),
        keras.layers.Dense(width, activation, dtype=dtype, kernel_initializer=init),
        keras.layers.Dense(1, dtype=dtype, kernel_initializer=init)])


@pytest.fixture
def float64():
    old, old_policy = keras.backend.floatx(), keras.config.dtype_policy()
    keras.backend.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    yield
    keras.backend.set_floatx(old)
    keras.config.set_dtype_policy(old_policy)


def test_backend_is_jax_and_x64_is_on():
    import jax

    assert keras.backend.backend() == "jax"
    assert jax.config.jax_enable_x64


def test_failed_cholesky_factorisations_are_counted():
    """As on TensorFlow (``tests/keras/test_cholesky_failures.py``): two equal Jacobian
    columns give A = [[1, 1], [1, 1]] exactly, λ = 1e-20 makes every attempt's factorisation
    fail; four batches of one attempt each per epoch."""
    from marquardt._damping import TrainLM

    inp = keras.Input((1,))
    out = keras.layers.Add()([
        keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")(inp),
        keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")(inp)])
    lm = mk.LMModel(keras.Model(inp, out), damping=TrainLM(mu=1e-20))
    lm.compile(loss="mse")
    history = lm.fit(np.ones((16, 1), "float32"), np.arange(16, dtype="float32")[:, None],
                     epochs=3, batch_size=4, shuffle=False, verbose=0).history
    assert history["cholesky_failures"] == [4, 4, 4]
    assert history["attempts"] == [1, 1, 1]


def test_linear_model_equals_lstsq_in_float64(float64):
    x = RNG.normal(size=(60, 3))
    y = x @ np.array([[1.0], [-2.0], [0.5]]) + 0.3 + 0.1 * RNG.normal(size=(60, 1))
    net = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    history = mk.fit(net, x, y, loss="mse", epochs=5, verbose=0)
    coef, *_ = np.linalg.lstsq(np.hstack([x, np.ones((60, 1))]), y, rcond=None)
    np.testing.assert_allclose(np.concatenate([w.ravel() for w in net.get_weights()]),
                               coef.ravel(), rtol=1e-10, atol=1e-12)
    assert history.history["attempts"][0] == 1


def test_fit_logs_history_and_loss_is_the_keras_loss():
    net = mlp()
    lm = mk.LMModel(net)
    lm.compile(loss="mse", metrics=["mae"])
    history = lm.fit(X, Y, epochs=15, verbose=0)
    assert {"loss", "mae", "lam", "attempts", "grad_norm", "step_norm",
            "lm_status", "cholesky_failures"} <= set(history.history)
    assert history.history["loss"][-1] < 1e-3 < history.history["loss"][0]
    assert history.history["lm_status"] == [Status.RUNNING] * 15
    assert "maximum number of epochs (15)" in history.stop_reason
    net.compile(loss="mse", metrics=["mae"])
    loss, mae = net.evaluate(X, Y, verbose=0)
    assert history.history["loss"][-1] == pytest.approx(loss, rel=1e-4)
    assert history.history["mae"][-1] == pytest.approx(mae, rel=1e-4)


def test_callbacks_see_each_epoch_and_validation_is_logged():
    seen = []
    callback = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: seen.append((epoch, logs["lam"], logs["val_loss"])))
    history = mk.fit(mlp(), X, Y, loss="mse", epochs=4, verbose=0, callbacks=[callback],
                     validation_split=0.25)
    assert [e for e, _, _ in seen] == [0, 1, 2, 3]
    assert [lam for _, lam, _ in seen] == pytest.approx(history.history["lam"])
    assert len(history.history["val_loss"]) == 4


@pytest.mark.slow
def test_goal_min_grad_and_max_time_stop_with_a_reason():
    history = mk.fit(mlp(), X, Y, loss="mse", epochs=50, verbose=0, goal=0.05)
    assert "goal" in history.stop_reason and history.lm_status == Status.GOAL
    history = mk.fit(mlp(), X, Y, loss="mse", epochs=50, verbose=0, min_grad=1e3)
    assert "min_grad" in history.stop_reason and len(history.epoch) == 1
    history = mk.fit(mlp(), X, Y, loss="mse", epochs=50, verbose=0, max_time=1e-6)
    assert "max_time" in history.stop_reason


@pytest.mark.slow
def test_early_stopping_max_fail_restores_the_best_weights():
    stop = keras.callbacks.EarlyStopping(patience=2, restore_best_weights=True)
    x_val, y_val = X[::7] + 0.01, np.cos(3.0 * X[::7])  # a different function: val rises
    net = mlp()
    history = mk.fit(net, X, Y, loss="mse", epochs=40, verbose=0, callbacks=[stop],
                     validation_data=(x_val, y_val))
    assert "EarlyStopping" in history.stop_reason
    net.compile(loss="mse")
    best = min(history.history["val_loss"])
    assert net.evaluate(x_val, y_val, verbose=0) == pytest.approx(best, rel=1e-4)


@pytest.mark.slow
def test_trainlm_preset_mu_is_powers_of_ten_and_multi_output_losses_are_logged():
    inp = keras.Input((2,))
    hidden = keras.layers.Dense(6, "tanh", kernel_initializer=keras.initializers.GlorotUniform(1))(inp)
    net = keras.Model(inp, [keras.layers.Dense(1, name="a")(hidden),
                            keras.layers.Dense(1, name="b")(hidden)])
    x = RNG.normal(size=(64, 2)).astype("float32")
    ys = [x[:, :1] * x[:, 1:], np.tanh(x[:, :1])]
    lm = mk.LMModel(net, options=mk.TRAINLM)
    lm.compile(loss={"a": "mse", "b": "huber"}, loss_weights={"a": 1.0, "b": 0.5})
    history = lm.fit(x, ys, epochs=5, verbose=0)
    assert {"a_loss", "b_loss"} <= set(history.history)
    net.compile(loss={"a": "mse", "b": "huber"}, loss_weights={"a": 1.0, "b": 0.5})
    assert history.history["loss"][-1] == pytest.approx(net.evaluate(x, ys, verbose=0)[0],
                                                        rel=1e-4)
    exponents = np.log10(history.history["lam"])  # μ = 1e-3 × powers of 10 (trainlm)
    np.testing.assert_allclose(exponents, np.round(exponents), atol=1e-6)


@pytest.mark.slow
def test_kernel_form_and_full_jacobian_equal_the_per_sample_normal_form(float64):
    x, y = X[:30].astype("float64"), Y[:30].astype("float64")

    def run(**options):
        net = mlp(width=4, dtype="float64")
        mk.fit(net, x, y, loss="mse", epochs=6, verbose=0, **options)
        return np.concatenate([w.ravel() for w in net.get_weights()])

    reference = run()
    np.testing.assert_allclose(run(kernel=True), reference, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(run(jacobian="full"), reference, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(run(memory_limit=9300), reference, rtol=1e-9, atol=1e-11)


@pytest.mark.slow
def test_custom_residual_fits_an_ode(float64):
    # u' = -u, u(0) = 1 on [0, 1]: collocation by forward differences of the network
    t = np.linspace(0.0, 1.0, 40)[:, None]
    h = 1e-4

    def residual(model_fn, x, y):
        u = model_fn(x)
        du = (model_fn(x + h) - u) / h
        u0 = model_fn(keras.ops.zeros((1, 1), dtype="float64"))
        return keras.ops.concatenate([keras.ops.reshape(du + u, (-1,)),
                                      keras.ops.reshape(10.0 * (u0 - 1.0), (-1,))])

    net = mlp(width=6, dtype="float64")
    lm = mk.LMModel(net, residual=residual)
    lm.compile()
    lm.fit(t, epochs=40, verbose=0)
    np.testing.assert_allclose(np.asarray(net(t)), np.exp(-t), atol=2e-3)


@pytest.mark.slow
def test_minibatch_logs_the_full_loss():
    net = mlp(width=4)
    history = mk.fit(net, X, Y, loss="mse", epochs=3, batch_size=100, verbose=0)
    net.compile(loss="mse")
    assert history.history["full_loss"][-1] == pytest.approx(
        net.evaluate(X, Y, verbose=0), rel=1e-4)


@pytest.mark.slow
def test_saved_wrapper_loads_and_continues_with_its_damping(tmp_path):
    net = mlp()
    lm = mk.LMModel(net, options=mk.TRAINLM)
    lm.compile(loss="mse")
    lm.fit(X, Y, epochs=5, verbose=0)
    path = tmp_path / "lm.keras"
    lm.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(np.asarray(loaded.network(X)), np.asarray(net(X)))
    assert float(loaded.lm_lambda.value) == float(lm.lm_lambda.value) > 0
    loaded.compile(loss="mse")
    history = loaded.fit(X, Y, epochs=2, verbose=0)
    assert history.history["loss"][-1] <= float(net.compile(loss="mse") or
                                                net.evaluate(X, Y, verbose=0))
    net.save(tmp_path / "net.keras")
    plain = keras.saving.load_model(tmp_path / "net.keras")
    np.testing.assert_array_equal(np.asarray(plain(X)), np.asarray(net(X)))


def test_bayesian_one_update_equals_the_formulas(float64):
    """As on TensorFlow (``tests/keras/test_trainbr.py``): after one update γ, α and β equal
    the formulas computed in NumPy from J (by ``jax.jacfwd`` of the network's own forward
    pass), the weights and the errors, to 1e-10; samples of weight 0 are not errors."""
    import jax

    rng = np.random.default_rng(5)
    n = 30
    x = rng.uniform(-1, 1, size=(n, 2))
    y = np.sin(2 * x[:, :1]) * x[:, 1:] + 0.05 * rng.normal(size=(n, 1))
    sw = rng.uniform(0.5, 2.0, size=n)
    sw[:3] = 0.0  # N = 27
    init = keras.initializers.GlorotUniform(seed=1)
    # sigmoid, not tanh: Keras' tanh on JAX (CPU, float64) differed from NumPy's by 1e-7 here
    # and its jacfwd from its jacrev by as much, which no 1e-10 comparison survives
    net = keras.Sequential([keras.Input((2,)), keras.layers.Dense(5, "sigmoid",
                                                                  kernel_initializer=init),
                            keras.layers.Dense(1, kernel_initializer=init)])
    lm = mk.LMModel(net, options=mk.TRAINBR)
    lm.compile(loss="mse")
    alpha0, beta0 = 0.02, 40.0
    lm.lm_alpha.assign(alpha0)
    lm.lm_beta.assign(beta0)
    w0 = [np.asarray(v) for v in net.trainable_variables]

    def predict(flat):
        parts, start = [], 0
        for w in w0:
            parts.append(flat[start:start + w.size].reshape(w.shape))
            start += w.size
        return net.stateless_call(parts, [], x)[0][:, 0]

    jac = np.asarray(jax.jacfwd(predict)(np.concatenate([w.ravel() for w in w0])))
    je = np.sqrt(sw)[:, None] * jac

    h = lm.fit(x, y, sample_weight=sw, epochs=1, verbose=0).history
    w1 = np.concatenate([np.ravel(v) for v in net.trainable_variables])
    assert not np.allclose(w1, np.concatenate([w.ravel() for w in w0]))  # a step was taken
    p = w1.size
    gamma = p - alpha0 * np.trace(np.linalg.inv(beta0 * je.T @ je + alpha0 * np.eye(p)))
    e1 = np.asarray(net(x))[:, 0] - y[:, 0]
    e_d, e_w = float(np.sum(sw * e1 ** 2)), float(w1 @ w1)
    np.testing.assert_allclose(h["gamma"][-1], gamma, rtol=1e-10)
    np.testing.assert_allclose(h["alpha"][-1], gamma / (2 * e_w), rtol=1e-10)
    np.testing.assert_allclose(h["beta"][-1], (27 - gamma) / (2 * e_d), rtol=1e-10)
    np.testing.assert_allclose([h["e_d"][-1], h["e_w"][-1]], [e_d, e_w], rtol=1e-10)
    np.testing.assert_allclose(h["loss"][-1], e_d / n, rtol=1e-10)  # the data part only
    assert h["cholesky_failures"] == [0]
    # α, β, γ live in the trainer's state: the wrapper's variables hold the logged values
    np.testing.assert_allclose([float(lm.lm_alpha), float(lm.lm_beta), float(lm.lm_gamma)],
                               [h["alpha"][-1], h["beta"][-1], h["gamma"][-1]], rtol=0)


@pytest.mark.parametrize("case", GAMMA_CASES, ids=lambda c: c.name)
def test_bayesian_effective_parameters_in_closed_form(case):
    """γ = Σ sᵢ/(sᵢ + ρ) on JAX, the cases of ``tests/bayes_cases.py`` that TensorFlow meets
    too (``tests/keras/test_trainbr.py``): by the Cholesky route, or, where the factor of
    A + ρI does not exist, by the eigenvalue fallback (reported), the analytic γ = 1 for two
    duplicated columns."""
    import jax.numpy as jnp

    from marquardt._backend.jax.keras_bayes import effective_parameters

    gamma, fallback = effective_parameters(jnp.asarray(case.m), jnp.asarray(case.rho),
                                           len(case.a))
    assert int(fallback) == case.fallback
    np.testing.assert_allclose(float(gamma), case.gamma, rtol=1e-13)


def test_bayesian_trace_out_of_range_takes_the_eigenvalue_route():
    """A Cholesky route reporting success with tr(m⁻¹) > P/ρ is discarded for the
    eigenvalues, inside ``jax.jit`` too (the predicate is traced)."""
    import jax
    import jax.numpy as jnp

    from marquardt.keras import _evidence
    from marquardt._backend.jax import xp as jxp

    case = GAMMA_CASES[1]

    @jax.jit
    def run(m, rho):
        return _evidence.effective_parameters(jxp, out_of_range_trace, jnp.linalg.eigvalsh, m,
                                              rho, jnp.asarray(2.0, m.dtype), 2.2e-16)

    gamma, fallback = run(jnp.asarray(case.m), jnp.asarray(case.rho))
    assert int(fallback) == 1
    np.testing.assert_allclose(float(gamma), case.gamma, rtol=1e-14)


def test_bayesian_failed_trace_factorisation_is_counted(float64):
    """Two equal Jacobian columns make A = a·[[1, 1], [1, 1]]; with α = 1e-30, ρ is below
    rounding and A + ρI's Cholesky fails in the trace (the step's A + λI does not): one
    fallback in the epoch's ``gamma_fallback`` (no LM attempt failed: ``cholesky_failures``
    0), γ the analytic 2a/(2a + ρ) = 1."""
    inp = keras.Input((1,))
    out = keras.layers.Add()([
        keras.layers.Dense(1, use_bias=False, kernel_initializer="ones")(inp),
        keras.layers.Dense(1, use_bias=False, kernel_initializer="ones")(inp)])
    lm = mk.LMModel(keras.Model(inp, out), options=mk.TRAINBR)
    lm.compile(loss="mse")
    lm.lm_alpha.assign(1e-30)
    h = lm.fit(np.ones((16, 1)), np.arange(16.0)[:, None], epochs=1, verbose=0).history
    assert h["attempts"] == [1] and h["gamma_fallback"] == [1] and h["cholesky_failures"] == [0]
    assert h["gamma"][0] == pytest.approx(1.0, rel=1e-13)


def test_bayesian_regularisation_refuses_mini_batches_on_jax():
    with pytest.raises(ValueError, match=r"`batch_size` must be None \(full batch\), \"auto\", \"full\" or at "
                                         r"least the number of samples \(\d+\).*"
                                         r"Received: batch_size=5"):
        mk.fit(mlp(), X[:20], Y[:20], loss="mse", batch_size=5, options=mk.TRAINBR,
               verbose=0)


def test_auto_batches_trim_the_leftover_rows_and_switch_to_full_batch(monkeypatch):
    """415 rows, P = 10: 20 equal batches of 20 (15 rows left out of the mini-batch passes, as
    Keras' array adapter would make a 15-row batch), then full batch once ``full_loss`` stops
    improving (noisy targets)."""
    from marquardt.keras import _batching

    monkeypatch.setattr(_batching, "MIN_BATCH_RESIDUALS", 1)  # small data: no 1,000-residual floor
    x = np.linspace(-1.0, 1.0, 415, dtype="float32")[:, None]
    y = (np.sin(3.0 * x) + 0.1 * RNG.normal(size=x.shape)).astype("float32")
    history = mk.fit(mlp(width=3), x, y, loss="mse", epochs=12, verbose=0)
    sizes = history.history["batch_size"]
    assert sizes[0] == 20 and sizes[-1] == 415
    switch = sizes.index(415) - 1
    full = history.history["full_loss"]
    assert full[switch] >= min(full[:switch]) and set(sizes[:switch + 1]) == {20}
