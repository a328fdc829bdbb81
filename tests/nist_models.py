"""The 19 NIST StRD models written by hand, with TensorFlow ops (``MODELS``) or ``jax.numpy``
(``jax_models()``).

An independent transcription from the model lines of the ``.dat`` files, used to cross-check the
formula parser (``marquardt.nist``) and to test ``curve_fit`` without depending on it.
Each takes ``x`` ((m,) or (2, m) for Nelson) and the parameters b1..bn as scalars.
"""

import math
import types

PI = math.pi


def models(ops):
    """The models written with ``ops.exp``, ``ops.cos``, ``ops.sin``, ``ops.atan``."""
    scope = dict(globals(), exp=ops.exp, tf=ops)
    return {name: types.FunctionType(fn.__code__, scope, fn.__name__, fn.__defaults__,
                                     fn.__closure__)
            for name, fn in _TEMPLATES.items()}


def jax_models():
    """The models in ``jax.numpy`` (JAX imported here). x becomes a JAX array first, as the
    formula models make it a tensor: a model of plain arithmetic (Hahn1, DanWood) would
    otherwise return NumPy for NumPy input and be fitted as a NumPy function."""
    import jax.numpy as jnp
    plain = models(types.SimpleNamespace(exp=jnp.exp, cos=jnp.cos, sin=jnp.sin,
                                         atan=jnp.arctan))
    return {name: (lambda fn: lambda x, *b: fn(jnp.asarray(x), *b))(fn)
            for name, fn in plain.items()}


def numpy_problem(name: str):
    """``(problem, f)``: the NIST problem shipped with marquardt and its model as a NumPy
    function ``f(x, *b)``, the formula evaluated by ``marquardt.nist``'s parser (the tests of
    NumPy models' finite differences; the hand-written models here are TensorFlow or JAX)."""
    import numpy as np
    from marquardt import nist
    (path,) = [f for f in nist.files() if f.stem == name]
    problem = nist.load(path)
    names, params = problem.variable_names, problem.parameter_names

    def f(x, *b):
        return problem.formula.evaluate_numpy(dict(zip(names, np.atleast_2d(x))),
                                              dict(zip(params, b)))
    return problem, f


def _gauss(x, b1, b2, b3, b4, b5, b6, b7, b8):
    return (b1 * exp(-b2 * x) + b3 * exp(-((x - b4) ** 2) / b5**2)
            + b6 * exp(-((x - b7) ** 2) / b8**2))


def _lanczos(x, b1, b2, b3, b4, b5, b6):
    return b1 * exp(-b2 * x) + b3 * exp(-b4 * x) + b5 * exp(-b6 * x)


def _chwirut(x, b1, b2, b3):
    return exp(-b1 * x) / (b2 + b3 * x)


def _enso(x, b1, b2, b3, b4, b5, b6, b7, b8, b9):
    w = 2 * PI * x
    return (b1 + b2 * tf.cos(w / 12) + b3 * tf.sin(w / 12) + b5 * tf.cos(w / b4)
            + b6 * tf.sin(w / b4) + b8 * tf.cos(w / b7) + b9 * tf.sin(w / b7))


_TEMPLATES = {
    "Chwirut1": _chwirut,
    "Chwirut2": _chwirut,
    "DanWood": lambda x, b1, b2: b1 * x**b2,
    "ENSO": _enso,
    "Gauss1": _gauss,
    "Gauss2": _gauss,
    "Gauss3": _gauss,
    "Hahn1": lambda x, b1, b2, b3, b4, b5, b6, b7: (
        (b1 + b2 * x + b3 * x**2 + b4 * x**3) / (1 + b5 * x + b6 * x**2 + b7 * x**3)),
    "Lanczos2": _lanczos,
    "Lanczos3": _lanczos,
    "MGH17": lambda x, b1, b2, b3, b4, b5: b1 + b2 * exp(-x * b4) + b3 * exp(-x * b5),
    "Misra1a": lambda x, b1, b2: b1 * (1 - exp(-b2 * x)),
    "Misra1b": lambda x, b1, b2: b1 * (1 - (1 + b2 * x / 2) ** (-2)),
    "Misra1c": lambda x, b1, b2: b1 * (1 - (1 + 2 * b2 * x) ** (-0.5)),
    "Misra1d": lambda x, b1, b2: b1 * b2 * x * ((1 + b2 * x) ** (-1)),
    "Nelson": lambda x, b1, b2, b3: b1 - b2 * x[0] * exp(-b3 * x[1]),  # fits log(y)
    "Rat42": lambda x, b1, b2, b3: b1 / (1 + exp(b2 - b3 * x)),
    "Rat43": lambda x, b1, b2, b3, b4: b1 / ((1 + exp(b2 - b3 * x)) ** (1 / b4)),
    "Roszman1": lambda x, b1, b2, b3, b4: b1 - b2 * x - tf.atan(b3 / (x - b4)) / PI,
}


def __getattr__(name):
    if name == "MODELS":  # TensorFlow imported on first use
        import tensorflow as tf
        globals()["MODELS"] = value = models(tf)
        return value
    raise AttributeError(name)
