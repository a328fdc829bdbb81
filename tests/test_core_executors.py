"""The one LM core run by its two executors: the host (NumPy, Python loop) and the compiled
TensorFlow loop take the same steps; NumPy models never import TensorFlow."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from marquardt._backend.numpy import xp as npx
from marquardt._backend.tensorflow import xp as tfx
from marquardt._backend.tensorflow.solve_loop import run_loop
from marquardt._core import host
from marquardt._core.functions import Evaluator
from marquardt._core.records import HISTORY_FIELDS, LoopConfig
from marquardt._damping import Nielsen, TrainLM, TrustRegion
from marquardt._solvers import CholeskySolver, SVDSolver
from marquardt._status import Status

T = np.linspace(0.0, 4.0, 30)
Y = 2.5 * np.exp(-1.3 * T) + 0.5 + 0.05 * np.sin(7.0 * T)


def residual_np(x):  # (1, 3) -> (1, 30)
    a, b, c = x[0]
    return (a * np.exp(-b * T) + c - Y)[None]


def jacobian_np(x):
    a, b, c = x[0]
    e = np.exp(-b * T)
    return np.stack([e, -a * T * e, np.ones_like(T)], axis=1)[None]


def residual_tf(x):
    return x[:, :1] * tf.exp(-x[:, 1:2] * T) + x[:, 2:3] - Y


def jacobian_tf(x):
    e = tf.exp(-x[:, 1:2] * T)
    return tf.stack([e, -x[:, :1] * T * e, tf.ones_like(e)], axis=-1)


CONFIGS = {
    "nielsen-svd-marquardt": LoopConfig(Nielsen(), SVDSolver(), "marquardt", "linear", 1.0,
                                        1e-10, 1e-10, 1e-10, 500, False, record_history=True),
    "trainlm-cholesky-identity": LoopConfig(TrainLM(), CholeskySolver(), "identity", "linear",
                                            1.0, 1e-10, 1e-10, 1e-10, 500, False,
                                            record_history=True),
    "cauchy-bounded": LoopConfig(Nielsen(), SVDSolver(), "marquardt", "cauchy", 0.1, 1e-10,
                                 1e-10, 1e-10, 500, True, record_history=True),
    "trust-region-svd": LoopConfig(TrustRegion(), SVDSolver(), "marquardt", "linear", 1.0,
                                   1e-10, 1e-10, 1e-10, 500, False, record_history=True),
    "trust-region-cholesky-cauchy": LoopConfig(TrustRegion(), CholeskySolver(), "marquardt",
                                               "cauchy", 0.1, 1e-10, 1e-10, 1e-10, 500, False,
                                               record_history=True),
}


#: the trust radius's λ from LAPACK's and TensorFlow's eigen-decompositions, the step from
#: their Cholesky factors: ρ agrees to 1.3e-9 where the cost change is 1e-6 of the cost
RTOL = {"trust-region-cholesky-cauchy": 1e-8}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_host_and_compiled_executors_take_the_same_steps(name):
    """Tolerances above rounding level (1e-10): every accept/reject decision is then decided
    by the core, not by the last bits of the two backends' kernels."""
    cfg, rtol = CONFIGS[name], RTOL.get(name, 1e-9)
    x0 = np.array([[1.0, 1.0, 0.0]])
    lb = np.array([[-np.inf, 0.0, -np.inf]]) if cfg.bounded else np.full((1, 3), -np.inf)
    ub = np.array([[np.inf, 1.2, np.inf]]) if cfg.bounded else np.full((1, 3), np.inf)
    d_fixed = np.ones((1, 3))
    evaluator = Evaluator(residual=lambda x, problems: residual_np(x),
                          residual_and_jacobian=lambda x, problems: (residual_np(x),
                                                                      jacobian_np(x)))
    state_h, rows_h = host.run(cfg, evaluator, x0, lb, ub, d_fixed)
    state_t, (table, count) = run_loop(
        cfg, residual_tf, lambda x: (residual_tf(x), jacobian_tf(x)), tf.constant(x0),
        tf.constant(lb), tf.constant(ub), tf.constant(d_fixed))
    rows_t = table.numpy()[: int(count) + 1]
    assert rows_h.shape == rows_t.shape and rows_h.shape[1] == len(HISTORY_FIELDS)
    col = HISTORY_FIELDS.index
    for name in ("iteration", "accepted", "attempts", "nfev"):
        np.testing.assert_array_equal(rows_h[:, col(name)], rows_t[:, col(name)], err_msg=name)
    np.testing.assert_allclose(rows_h[:, col("cost")], rows_t[:, col("cost")], rtol=1e-9)
    # ρ and λ follow the measured reduction, which near the minimum is at rounding level:
    # every field agrees tightly while the cost still falls by more than 1e-6 relative.
    falling = rows_t[:, col("cost_change")] > 1e-6 * rows_t[:, col("cost")]
    assert falling.sum() >= 3
    np.testing.assert_allclose(rows_h[falling], rows_t[falling], rtol=rtol, atol=1e-14)
    assert int(state_h.status[0]) == int(state_t.status.numpy()[0])
    assert Status(int(state_h.status[0])).success
    np.testing.assert_allclose(state_h.x, state_t.x.numpy(), rtol=1e-10)


@pytest.mark.parametrize("config", ["nielsen-svd-marquardt", "trust-region-svd"])
def test_host_executor_solves_many_problems_as_it_solves_one(config):
    """The host executor on K problems (compacting the running ones each iteration) gives
    every problem exactly what it gives that problem alone: same x, cost, nfev, status."""
    rng = np.random.default_rng(4)
    k = 7
    ys = Y + 0.3 * rng.standard_normal((k, T.size))
    ys[3] = np.nan  # a problem that is not finite at its start: NON_FINITE, the rest go on
    x0 = np.tile([1.0, 1.0, 0.0], (k, 1)) * rng.uniform(0.5, 2.0, (k, 3))

    def evaluator_for(rows_of):
        def residual(x, problems):
            a, b, c = (x[:, i:i + 1] for i in range(3))
            return a * np.exp(-b * T) + c - ys[rows_of(problems)]

        def residual_and_jacobian(x, problems):
            a, b = x[:, :1], x[:, 1:2]
            e = np.exp(-b * T)
            return residual(x, problems), np.stack([e, -a * T * e, np.ones_like(e)], axis=-1)

        return Evaluator(residual=residual, residual_and_jacobian=residual_and_jacobian)

    cfg = CONFIGS[config]._replace(record_history=False)
    inf = np.full((k, 3), np.inf)
    together, _ = host.run(cfg, evaluator_for(lambda p: p), x0, -inf, inf, np.ones((k, 3)))
    assert int(together.status[3]) == int(Status.NON_FINITE)
    for i in range(k):
        alone, _ = host.run(cfg, evaluator_for(lambda p, i=i: np.full(len(p), i)), x0[i:i + 1],
                            -inf[:1], inf[:1], np.ones((1, 3)))
        for name in ("x", "cost", "nfev", "njev", "nit", "status", "lam"):
            np.testing.assert_array_equal(getattr(together, name)[i], getattr(alone, name)[0],
                                          err_msg=f"{name} of problem {i}")


def test_namespaces_offer_the_same_names():
    public = lambda mod: {k for k in vars(mod) if not k.startswith("_") and k not in  # noqa: E731
                          ("annotations", "np", "tf", "name")}
    assert public(npx) - {"lapack"} == public(tfx) - {"lapack"}


def test_numpy_models_never_import_tensorflow():
    """least_squares, curve_fit and curve_fit_batch with NumPy models, in a fresh process."""
    code = """
import sys, json
import numpy as np
import marquardt
t = np.linspace(0, 4, 50); y = 2.5 * np.exp(-1.3 * t) + 0.5
def model(t, a, b, c): return a * np.exp(-b * t) + c
def jac(t, a, b, c):
    e = np.exp(-b * t); return np.stack([e, -a * t * e, np.ones_like(t)], axis=1)
p1, _ = marquardt.curve_fit(model, t, y, p0=[1, 1, 0], jac='2-point')
p2, _ = marquardt.curve_fit(model, t, y, p0=[1, 1, 0], jac=jac)
r = marquardt.least_squares(lambda p: model(t, *p) - y, [1.0, 1.0, 0.0], loss='soft_l1')
b = marquardt.curve_fit_batch(model, t, np.stack([y, y]), [1.0, 1.0, 0.0])
print(json.dumps({"tf": "tensorflow" in sys.modules, "keras": "keras" in sys.modules,
                  "x": [list(p1), list(p2), list(r.x), list(b.x[0]), list(b.x[1])]}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["tf"] is False and info["keras"] is False
    np.testing.assert_allclose(np.array(info["x"]), [[2.5, 1.3, 0.5]] * 5, rtol=1e-7)


#: A far start: the first iteration rejects six steps, then 14 iterations each lower the cost
#: by more than 1e-3 relative (after that the decisions are at rounding level).
P0 = [0.1, 6.0, -1.0]


class DecayLayer(__import__("keras").layers.Layer):
    """y = a·exp(−b·t) + c as a Keras layer: the three weights are the parameters."""

    def build(self, input_shape):
        init = __import__("keras").initializers.Constant
        self.a = self.add_weight(shape=(), initializer=init(P0[0]), dtype="float64", name="a")
        self.b = self.add_weight(shape=(), initializer=init(P0[1]), dtype="float64", name="b")
        self.c = self.add_weight(shape=(), initializer=init(P0[2]), dtype="float64", name="c")

    def call(self, t):
        return self.a * tf.exp(-self.b * t) + self.c


def test_least_squares_and_the_keras_step_take_the_same_steps():
    """The same problem through ``least_squares`` (host executor, J and its normal matrix)
    and through the Keras train step (full batch, normal equations in chunks, its own
    while_loop): the same accept/reject sequence, attempts, λ and cost, iteration by
    iteration. Tolerances are off on both sides (but gtol 1e-15, SciPy's rule needing one
    above ε, which no step here comes near), so only the core decides. Both run Nielsen's
    rule, the Keras default; ``least_squares``' default is the trust radius."""
    import keras
    import marquardt
    import marquardt.keras as mk

    iterations = 14
    t = T[:, None]
    ls = marquardt.least_squares(lambda p: p[0] * np.exp(-p[1] * T) + p[2] - Y,
                                 P0, jac=lambda p: jacobian_np(p[None])[0],
                                 solver="cholesky", damping="nielsen", ftol=None,
                                 xtol=None, gtol=1e-15,
                                 max_nfev=10_000, callback=lambda intermediate_result:
                                 intermediate_result.iteration >= iterations)
    rows = ls.history[1:iterations + 1]
    assert len(rows) == iterations

    floatx = keras.config.floatx()
    keras.config.set_floatx("float64")  # so that Keras' data adapter keeps t and y in float64
    try:
        inputs = keras.Input((1,), dtype="float64")
        net = keras.Model(inputs, DecayLayer(dtype="float64")(inputs))
        net.set_weights([np.float64(v) for v in P0])  # Constant() rounds through float32
        history = mk.fit(net, t, Y[:, None], epochs=iterations, verbose=0, scaling="marquardt",
                         residual=lambda model_fn, x, y: tf.reshape(model_fn(x) - y, [-1]))
    finally:
        keras.config.set_floatx(floatx)
    logs = history.history
    assert [r.attempts for r in rows] == logs["attempts"]
    assert rows[0].attempts == 7 and all(r.accepted for r in rows)
    assert min(r.cost_change / r.cost for r in rows) > 1e-3
    np.testing.assert_allclose([r.cost for r in rows], logs["loss"], rtol=1e-9)
    np.testing.assert_allclose([r.damping for r in rows], logs["lam"], rtol=1e-9)
    weights = np.concatenate([np.ravel(w) for w in net.get_weights()])
    np.testing.assert_allclose(weights, ls.x, rtol=1e-9)


@pytest.mark.parametrize("shape", [(3, 60, 4), (3, 8, 4)])
def test_tensorflow_svd_of_tall_and_square_matrices(shape):
    """``tfx.svd`` (through QR for a tall matrix, directly otherwise) is a thin SVD: NumPy's
    singular values, orthonormal columns, and U Σ Vᴴ = A, in and out of XLA."""
    a = np.random.default_rng(5).standard_normal(shape) * np.array([1.0, 1e3, 1e-3, 10.0])
    for run in (lambda f: f(), tf.function(lambda f: f(), jit_compile=True)):
        u, s, vh = (t.numpy() for t in run(lambda: tfx.svd(tf.constant(a))))
        np.testing.assert_allclose(s, np.linalg.svd(a, compute_uv=False), rtol=1e-12)
        eye = np.broadcast_to(np.eye(4), (3, 4, 4))
        np.testing.assert_allclose(np.swapaxes(u, 1, 2) @ u, eye, atol=1e-13)
        np.testing.assert_allclose((u * s[:, None, :]) @ vh, a, rtol=0,
                                   atol=1e-12 * np.abs(a).max())
