"""Bayesian regularisation (``regularization="bayesian"``, ``TRAINBR``): the evidence updates
against independent NumPy computations, and the front-door errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import marquardt.keras as mk
from bayes_cases import GAMMA_CASES, out_of_range_trace


def _mackay_linear(phi, t, iters=100_000, tol=1e-15):
    """Evidence maximisation for Bayesian linear regression, F = βΣe² + αΣw², by MacKay's
    fixed-point equations on the exact eigenvalues μ of ΦᵀΦ (Bishop, PRML §3.5.2, with
    Bishop's α, β = 2α, 2β here): γ = Σ μ/(μ + α/β), α = γ/(2Σw²), β = (N − γ)/(2Σe²)."""
    n, p = phi.shape
    mu = np.linalg.eigvalsh(phi.T @ phi)
    alpha, beta = 1e-3, 1.0
    for _ in range(iters):
        w = np.linalg.solve(phi.T @ phi + (alpha / beta) * np.eye(p), phi.T @ t)
        gamma = float(np.sum(mu / (mu + alpha / beta)))
        e = phi @ w - t
        new_alpha = gamma / (2.0 * w @ w)
        new_beta = (n - gamma) / (2.0 * e @ e)
        done = abs(new_alpha / alpha - 1) < tol and abs(new_beta / beta - 1) < tol
        alpha, beta = new_alpha, new_beta
        if done:
            break
    w = np.linalg.solve(phi.T @ phi + (alpha / beta) * np.eye(p), phi.T @ t)
    return w, alpha, beta, float(np.sum(mu / (mu + alpha / beta)))


@pytest.mark.parametrize("duplicated", [False, True], ids=["distinct", "duplicated"])
def test_linear_model_reaches_the_evidence_maximum(float64, duplicated):
    """The fixed point of the updates is the evidence maximum; with the third input a copy of
    the second (J of rank 3 for P = 4, one eigenvalue of ΦᵀΦ zero) that parameter direction
    counts nothing in γ, in the network as in the closed form."""
    rng = np.random.default_rng(3)
    n, d = 20, 3
    x = rng.normal(size=(n, d))
    if duplicated:
        x[:, 2] = x[:, 1]
    y = x @ np.array([0.3, -0.2, 0.05]) + 0.1 + rng.normal(size=n)
    net = keras.Sequential([keras.Input((d,)), keras.layers.Dense(1)])
    history = mk.fit(net, x, y[:, None], loss="mse", epochs=100, options=mk.TRAINBR,
                     min_grad=0.0, verbose=0)
    kernel, bias = (np.asarray(v, dtype=np.float64) for v in net.get_weights())
    w_net = np.concatenate([kernel[:, 0], bias])
    phi = np.hstack([x, np.ones((n, 1))])
    w, alpha, beta, gamma = _mackay_linear(phi, y)
    h = history.history
    np.testing.assert_allclose(w_net, w, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose([h["gamma"][-1], h["alpha"][-1], h["beta"][-1]],
                               [gamma, alpha, beta], rtol=1e-8)
    assert 0.5 < gamma < d  # the prior matters: γ well below P = 4
    if duplicated:
        assert gamma < d - 1  # the copy adds no effective parameter


def test_one_update_equals_the_formulas(float64):
    rng = np.random.default_rng(5)
    n = 30
    x = rng.uniform(-1, 1, size=(n, 2))
    y = np.sin(2 * x[:, :1]) * x[:, 1:] + 0.05 * rng.normal(size=(n, 1))
    sw = rng.uniform(0.5, 2.0, size=n)
    sw[:3] = 0.0  # samples with weight 0 are not errors: N = 27
    net = keras.Sequential([keras.Input((2,)), keras.layers.Dense(5, "tanh"),
                            keras.layers.Dense(1)])
    lm = mk.LMModel(net, options=mk.TRAINBR)
    lm.compile(loss="mse")
    alpha0, beta0 = 0.02, 40.0
    lm.lm_alpha.assign(alpha0)
    lm.lm_beta.assign(beta0)
    w0 = [np.asarray(v) for v in net.trainable_variables]

    # J of the errors eᵢ = √wᵢ (ŷᵢ − yᵢ) at the start, by the tape, before training
    with tf.GradientTape(persistent=True) as tape:
        pred = net(x, training=False)
    jac = tape.jacobian(pred, net.trainable_variables)
    jac = np.concatenate([np.reshape(j, (n, -1)) for j in jac], axis=1)
    je = np.sqrt(sw)[:, None] * jac

    history = lm.fit(x, y, sample_weight=sw, epochs=1, verbose=0)
    w1 = np.concatenate([np.ravel(v) for v in net.trainable_variables])
    assert not np.allclose(w1, np.concatenate([np.ravel(v) for v in w0]))  # a step was taken
    p = w1.size
    gamma = p - alpha0 * np.trace(np.linalg.inv(beta0 * je.T @ je + alpha0 * np.eye(p)))
    e1 = np.asarray(net(x, training=False))[:, 0] - y[:, 0]
    e_d = float(np.sum(sw * e1 ** 2))
    e_w = float(w1 @ w1)
    h = history.history
    np.testing.assert_allclose(h["gamma"][-1], gamma, rtol=1e-10)
    np.testing.assert_allclose(h["alpha"][-1], gamma / (2 * e_w), rtol=1e-10)
    np.testing.assert_allclose(h["beta"][-1], (27 - gamma) / (2 * e_d), rtol=1e-10)
    np.testing.assert_allclose([h["e_d"][-1], h["e_w"][-1]], [e_d, e_w], rtol=1e-10)
    # the Keras loss is the data part only
    np.testing.assert_allclose(h["loss"][-1], e_d / n, rtol=1e-10)


def test_float32_gamma_does_not_alternate_between_p_and_zero():
    """The docs' sinc network in float32: from about epoch 14 ρ lies below the rounding level
    of A, the trace's Cholesky factor of A + ρI fails or gives γ < 0. γ used to be clipped
    to 0, so α = 0, so the next γ = P: γ alternated P, 0, P, ... for ever. The eigenvalue
    fallback keeps it in (0, P) and moving slowly, and is logged (``gamma_fallback``)."""
    x = np.linspace(-1, 1, 2000, dtype="float32")[:, None]
    y = np.sinc(10 * x)
    keras.utils.set_random_seed(0)
    net = keras.Sequential([keras.Input((1,)), keras.layers.Dense(20, "tanh"),
                            keras.layers.Dense(1)])
    h = mk.fit(net, x, y, loss="mse", epochs=24, options=mk.TRAINBR, verbose=0).history
    gamma = np.array(h["gamma"][1:])
    assert sum(h["gamma_fallback"]) > 0  # the fallback ran
    assert set(h["gamma_fallback"]) <= {0, 1}
    assert np.all((gamma > 1.0) & (gamma < 0.5 * net.count_params()))
    assert np.all(np.abs(np.diff(gamma)) < 0.35 * gamma[1:])  # as before the fallbacks


def test_history_logs_and_plain_keras_save(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(50, 1))
    y = np.sin(3 * x) + 0.1 * rng.normal(size=x.shape)
    net = keras.Sequential([keras.Input((1,)), keras.layers.Dense(8, "tanh"),
                            keras.layers.Dense(1)])
    history = mk.fit(net, x, y, loss="mse", epochs=30, options=mk.TRAINBR, verbose=0)
    h = history.history
    for key in ("alpha", "beta", "gamma", "e_d", "e_w", "gamma_fallback"):
        assert len(h[key]) == len(h["loss"]) and np.all(np.isfinite(h[key]))
    assert 0 < h["gamma"][-1] < net.count_params()
    assert sum(h["cholesky_failures"]) == 0  # float32: γ's fallbacks are not LM attempts
    path = tmp_path / "net.keras"
    net.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is keras.Sequential
    np.testing.assert_allclose(loaded.predict(x, verbose=0), net.predict(x, verbose=0))


def _small():
    x = np.linspace(-1, 1, 20)[:, None]
    net = keras.Sequential([keras.Input((1,)), keras.layers.Dense(3, "tanh"),
                            keras.layers.Dense(1)])
    return net, x, np.sin(x)


def test_mini_batches_are_refused():
    net, x, y = _small()
    with pytest.raises(ValueError, match=r"`batch_size` must be None \(full batch\), \"auto\", \"full\" or at "
                                         r"least the number of samples \(\d+\).*"
                                         r"whole training set.*Received: batch_size=5"):
        mk.fit(net, x, y, loss="mse", batch_size=5, options=mk.TRAINBR, verbose=0)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(5)
    with pytest.raises(ValueError, match=r"`x` must be a dataset of one batch.*"
                                         r"Received: a dataset of 4 batches"):
        mk.fit(net, data, loss="mse", options=mk.TRAINBR, verbose=0)


def test_one_batch_dataset_is_accepted():
    net, x, y = _small()
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(len(x))
    history = mk.fit(net, data, loss="mse", epochs=3, regularization="bayesian", verbose=0)
    assert len(history.history["gamma"]) == 3


@pytest.mark.parametrize("loss", ["mae", "huber", keras.losses.BinaryCrossentropy()])
def test_a_loss_that_is_not_a_sum_of_squares_is_refused(loss):
    net, x, y = _small()
    with pytest.raises(ValueError, match=r"`loss` must be a sum of squared errors.*"
                                         r"Received: loss="):
        mk.fit(net, x, y, loss=loss, options=mk.TRAINBR, verbose=0)


def test_unknown_regularization_is_refused():
    net, _, _ = _small()
    with pytest.raises(ValueError, match=r"`regularization` must be one of \[None, 'bayesian'\]"
                                         r"\. Received: regularization='l2'"):
        mk.LMModel(net, regularization="l2")


@pytest.mark.parametrize("case", GAMMA_CASES, ids=lambda c: c.name)
@pytest.mark.parametrize("host", [False, True], ids=["tensorflow", "host"])
def test_effective_parameters_in_closed_form(case, host):
    """γ = Σ sᵢ/(sᵢ + ρ) (``tests/bayes_cases.py``, the same cases as on JAX) by TensorFlow's
    Cholesky route and by the host's LAPACK; where the factor of A + ρI does not exist
    (duplicated columns, ρ below rounding) the eigenvalue fallback gives the analytic γ = 1
    and reports itself (the ``gamma_fallback`` log)."""
    from marquardt._backend.tensorflow.keras_bayes import effective_parameters

    m = tf.constant(case.m)
    gamma, fallback = effective_parameters(m, tf.constant(case.rho, tf.float64), len(case.a),
                                           host=host)
    assert int(fallback) == case.fallback
    np.testing.assert_allclose(float(gamma), case.gamma, rtol=1e-13)


def test_a_float32_models_gamma_from_float32_eigenvalues_on_both_routes():
    """A float32 model's A (from a float32 J, summed in float64) with ρ below its rounding
    level: the shared rule (``_evidence.effective_parameters``) hands the backend's eigenvalue
    kernel m in float32 (in float64 for a float64 model); TensorFlow's route and the host's
    (LAPACK ``syevd``, the route from ``HOST_TRACE_MIN_N_FLOAT32`` weights) both take the
    eigenvalues and agree with γ = Σ sᵢ/(sᵢ + ρ) over the eigenvalues above √P·ε₃₂·max,
    computed here in float64, to float32's resolution."""
    from marquardt._backend.numpy import trace_inverse
    from marquardt._backend.numpy import xp as npx
    from marquardt._backend.tensorflow.keras_bayes import effective_parameters
    from marquardt.keras import _evidence

    rng = np.random.default_rng(3)
    j = (rng.standard_normal((300, 40)) * np.logspace(0, -5, 40)).astype(np.float32)
    a = j.astype(np.float64).T @ j.astype(np.float64)
    rho = 1e-9 * np.trace(a)  # far below 100·P·ε₃₂·tr(A): the eigenvalue route
    m = a + rho * np.eye(40)
    eps = float(np.finfo(np.float32).eps)
    s = np.linalg.eigvalsh(a)
    s = np.where(s > np.sqrt(40) * eps * np.abs(s).max(), s, 0.0)
    want = np.sum(s / (s + rho))
    eps64 = float(np.finfo(np.float64).eps)
    # ρ below each model's rounding level (100·P·ε·tr), so both take the eigenvalue route
    for model_eps, r, dtype in ((eps, rho, np.float32), (eps64, 1e-14 * np.trace(a), np.float64)):
        seen = []

        def spy(a_):
            seen.append(a_.dtype)
            return trace_inverse.eigenvalues(a_)

        gamma, fallback = _evidence.effective_parameters(
            npx, trace_inverse.trace_inverse_or_nan, spy, a + r * np.eye(40), r,
            np.float64(40), model_eps)
        assert seen == [dtype] and int(fallback) == 1 and np.asarray(gamma).dtype == np.float64
    for host in (False, True):
        gamma, fallback = effective_parameters(tf.constant(m), tf.constant(rho), 40, eps,
                                               host=host)
        assert int(fallback) == 1
        assert abs(float(gamma) - want) < 1e-3 * 40, (host, float(gamma), want)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_trace_out_of_range_takes_the_eigenvalue_route(dtype):
    """A Cholesky route that reports success with tr(m⁻¹) > P/ρ (γ < 0) is discarded for the
    eigenvalues, not clipped to γ = 0 (the float32 alternation γ = P, 0, P, ...)."""
    from marquardt.keras import _evidence
    from marquardt._backend.tensorflow import xp as tfx

    case = GAMMA_CASES[1]
    m = tf.constant(case.m, dtype)
    eps = float(np.finfo(dtype).eps)
    gamma, fallback = _evidence.effective_parameters(
        tfx, out_of_range_trace, tf.linalg.eigvalsh, m, tf.constant(case.rho, dtype),
        tf.constant(2.0, dtype), eps)
    assert int(fallback) == 1
    np.testing.assert_allclose(float(gamma), case.gamma, rtol=10 * eps)


def test_one_update_with_the_trace_on_the_host(float64, monkeypatch):
    """The same update with tr((A + ρI)⁻¹) by the host's LAPACK (``potrf`` + ``trtri``, the
    route for P ≥ ``HOST_TRACE_MIN_N`` on a CPU), forced here on the small network: the same
    formulas to 1e-10, and the host kernel ran once per accepted iteration."""
    from marquardt._backend.tensorflow import linalg

    calls = []
    original = linalg._lapack_effective_parameters

    def counted(m, rho, eps):
        calls.append(m.shape)
        return original(m, rho, eps)

    monkeypatch.setattr(linalg, "use_host_trace", lambda n, jit_compile, float32: True)
    monkeypatch.setattr(linalg, "_lapack_effective_parameters", counted)
    test_one_update_equals_the_formulas(float64)
    assert calls == [(21, 21)]


def test_host_trace_threshold_is_lower_on_one_thread(monkeypatch):
    """The host's trace from ``HOST_TRACE_MIN_N`` on the default threads, from
    ``HOST_TRACE_MIN_N_ONE_THREAD`` where TensorFlow runs on one intra-op thread; never under
    XLA."""
    from marquardt._backend.tensorflow import linalg

    small, large = linalg.HOST_TRACE_MIN_N_ONE_THREAD, linalg.HOST_TRACE_MIN_N
    assert small < large
    monkeypatch.setattr(linalg, "_one_thread", lambda: False)
    assert not linalg.use_host_trace(small, jit_compile=False)
    assert linalg.use_host_trace(large, jit_compile=False)
    monkeypatch.setattr(linalg, "_one_thread", lambda: True)
    assert not linalg.use_host_trace(small - 1, jit_compile=False)
    assert linalg.use_host_trace(small, jit_compile=False)
    assert not linalg.use_host_trace(large, jit_compile=True)
    # a float32 model, whose γ mostly comes from eigenvalues: from HOST_TRACE_MIN_N_FLOAT32
    least = linalg.HOST_TRACE_MIN_N_FLOAT32
    assert least < small
    for one in (False, True):
        monkeypatch.setattr(linalg, "_one_thread", lambda one=one: one)
        assert not linalg.use_host_trace(least - 1, jit_compile=False, float32=True)
        assert linalg.use_host_trace(least, jit_compile=False, float32=True)
        assert not linalg.use_host_trace(large, jit_compile=True, float32=True)


def test_host_trace_inverse_equals_numpy_and_reports_failure():
    """``host_trace_inverse`` = tr(m⁻¹) where the Cholesky factor exists; NaN and ok False
    where it does not."""
    from marquardt._backend.tensorflow import linalg

    rng = np.random.default_rng(1)
    j = rng.normal(size=(60, 40))
    m = j.T @ j + 1e-3 * np.eye(40)
    trace, ok = tf.function(linalg.host_trace_inverse)(tf.constant(m))
    assert bool(ok) and trace.shape == ()
    np.testing.assert_allclose(float(trace), np.trace(np.linalg.inv(m)), rtol=1e-12)
    trace, ok = linalg.host_trace_inverse(tf.constant([[1.0, 1.0], [1.0, 1.0]], tf.float64))
    assert not bool(ok) and np.isnan(float(trace))


@pytest.mark.parametrize("host", [False, True], ids=["tensorflow", "host"])
def test_failed_trace_factorisation_is_counted(float64, host, monkeypatch):
    """As on JAX (``tests/keras_jax/test_api.py``): two equal Jacobian columns,
    A = a·[[1, 1], [1, 1]], and α = 1e-30, so the trace's Cholesky of A + ρI fails and the
    step's of A + λI does not: one fallback, and γ the analytic 2a/(2a + ρ) = 1 (one
    well-determined parameter, w₁ + w₂), on TensorFlow's route and on the host's."""
    from marquardt._backend.tensorflow import linalg

    monkeypatch.setattr(linalg, "use_host_trace", lambda n, jit_compile, float32: host)
    inp = keras.Input((1,))
    out = keras.layers.Add()([
        keras.layers.Dense(1, use_bias=False, kernel_initializer="ones")(inp),
        keras.layers.Dense(1, use_bias=False, kernel_initializer="ones")(inp)])
    lm = mk.LMModel(keras.Model(inp, out), options=mk.TRAINBR)
    lm.compile(loss="mse")
    lm.lm_alpha.assign(1e-30)
    h = lm.fit(np.ones((16, 1)), np.arange(16.0)[:, None], epochs=1, verbose=0).history
    # the trace's route is its own log: no LM attempt failed its factorisation
    assert h["attempts"] == [1] and h["gamma_fallback"] == [1] and h["cholesky_failures"] == [0]
    assert h["gamma"][0] == pytest.approx(1.0, rel=1e-13)
