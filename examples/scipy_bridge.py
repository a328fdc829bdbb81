"""The linear fit y = 2x + 3 + noise, three ways, each against the closed-form solution.

1. ``marquardt.least_squares`` — our LM; ``residuals`` is plain arithmetic, so it is called with
   NumPy arrays and its Jacobian comes from 2-point differences, as in SciPy (about 1e-8 from
   the closed form; a TensorFlow residual would get the exact autodiff Jacobian);
2. ``scipy.optimize.least_squares`` through the bridge (``marquardt.scipy.residual_functions``):
   the residual *vector* and its exact Jacobian;
3. a Keras ``Dense(1)`` model fitted by ``marquardt.scipy.fit_model``.

Then the classic mistake — giving SciPy the gradient of the loss instead of the residuals —
on this fit and on a nonlinear toy where it converges to a maximum of the loss, and what
``marquardt.scipy.check_residuals`` says about it.

    python examples/scipy_bridge.py
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# marquardt first: it imports TensorFlow with its start-up messages quieted
import marquardt  # noqa: E402, I001
from marquardt.scipy import check_residuals, fit_model, residual_functions  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import scipy.optimize  # noqa: E402
import tensorflow as tf  # noqa: E402

rng = np.random.default_rng(0)
x = np.linspace(0.0, 10.0, 50)
y = 2.0 * x + 3.0 + rng.normal(scale=0.5, size=x.size)

# The closed form: the least-squares solution of [x 1] p = y.
exact, *_ = np.linalg.lstsq(np.c_[x, np.ones_like(x)], y, rcond=None)


def residuals(p, x, y):
    """One residual per observation; least squares minimises ½Σr²."""
    return p[0] * x + p[1] - y


def report(name, p):
    print(f"{name:<34} slope {p[0]:.12f}  intercept {p[1]:.12f}  "
          f"max |p - closed form| {np.max(np.abs(np.asarray(p) - exact)):.1e}")


report("closed form (numpy.linalg.lstsq)", exact)

# 1. Our least_squares.
ours = marquardt.least_squares(residuals, [0.0, 0.0], args=(x, y))
report("1. marquardt.least_squares", ours.x)

# 2. SciPy, with residuals and the exact Jacobian from the bridge.
f, jac = residual_functions(residuals, [0.0, 0.0], args=(x, y))
res = scipy.optimize.least_squares(f, [0.0, 0.0], jac=jac, xtol=1e-15, ftol=1e-15, gtol=1e-15)
report("2. SciPy least_squares + bridge", res.x)

# 3. A Keras Dense(1) model, in float64, fitted by SciPy through fit_model.
model = keras.Sequential([keras.Input((1,), dtype="float64"),
                          keras.layers.Dense(1, dtype="float64")])
fit = fit_model(model, x[:, None], y[:, None], loss="mse", method="lm",
                xtol=1e-15, ftol=1e-15, gtol=1e-15)
kernel, bias = model.get_weights()
report("3. Keras Dense(1) via fit_model", [kernel[0, 0], bias[0]])
print(f"   fit_model's cost ½Σr² is the Keras loss: {fit.cost:.10f} = mse "
      f"{np.mean((x * kernel[0, 0] + bias[0] - y) ** 2):.10f}")

# The pitfall: the gradient of the loss where SciPy expects residuals.
def loss(p, x, y):
    return tf.reduce_sum(residuals(p, x, y) ** 2)


def gradient(p, x, y):  # what tf.GradientTape gives: ∇L, n = 2 values
    with tf.GradientTape() as tape:
        tape.watch(p)
        value = loss(p, x, y)
    return tape.gradient(value, p)


g, g_jac = residual_functions(gradient, [0.0, 0.0], args=(x, y))
wrong = scipy.optimize.least_squares(g, [0.0, 0.0], jac=g_jac)
print(f"\nGradient given as residuals: SciPy stops at {np.round(wrong.x, 6)}; its 'cost' is "
      f"½‖∇L‖² = {wrong.cost:.2g}, not the loss. Here ∇L = 0 happens to be the minimum.")

# On a nonlinear problem the stationary point it finds may be a maximum. One residual,
# r(p) = p² − 1, so L = r² has minima at p = ±1 and a maximum at p = 0 (∇L = 4p(p² − 1)).
def toy_residual(p):
    return tf.stack([p[0] ** 2 - 1.0])


def toy_gradient(p):
    return tf.stack([4.0 * p[0] * (p[0] ** 2 - 1.0)])


def toy_loss(p):
    return (p[0] ** 2 - 1.0) ** 2


for name, fun in (("residual", toy_residual), ("gradient", toy_gradient)):
    f_toy, jac_toy = residual_functions(fun, [0.3])
    p = scipy.optimize.least_squares(f_toy, [0.3], jac=jac_toy).x
    print(f"r(p) = p² − 1 from p = 0.3, given the {name:<8}: p = {p[0]: .6f}, "
          f"L = {float(toy_loss(p)):.3g}")

print("\nThe check:")
print(" ", check_residuals(gradient, [0.0, 0.0], loss, args=(x, y)).message[:200] + "...")
print(" ", check_residuals(residuals, [0.0, 0.0], loss, args=(x, y)).message)
