"""A parsed formula (``marquardt._formula.Formula``) built into TensorFlow operations: plain
``tf.math`` operations with no Python control flow on values, so that the function runs inside
``tf.function`` and is differentiable by ``tf.GradientTape``. Functions are looked up in our own
table (``_tf_function``), never from the user's text."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

import numpy as np
import tensorflow as tf

from marquardt._formula import _collect_inputs
from marquardt._formula_syntax import CONSTANTS, FUNCTIONS, _Binary, _Node, _Number, _Symbol, _Unary

__all__ = ["to_tensorflow", "as_model"]


def to_tensorflow(formula: Any) -> Callable[[Mapping[str, Any], Mapping[str, Any]], tf.Tensor]:
    """``Formula.to_tensorflow``: ``fn(variables, params)``, the dtype from the inputs."""

    def fn(variables: Mapping[str, Any], params: Mapping[str, Any]) -> tf.Tensor:
        return _call_tf(formula, variables, params, dtype=None)

    return fn


def as_model(formula: Any, variable_names: tuple, parameter_names: tuple) -> Callable[..., tf.Tensor]:
    """``Formula.as_model`` with its names checked: ``model(x, *params)``."""
    n_params = len(parameter_names)

    def model(x: Any, *params: Any) -> tf.Tensor:
        if len(params) != n_params:
            raise TypeError(f"model takes x and {n_params} parameters {parameter_names}, got {len(params)}")
        x = tf.convert_to_tensor(x)
        if len(variable_names) == 1:
            rows = [x[0] if x.shape.rank == 2 and x.shape[0] == 1 else x]
        else:
            if x.shape.rank is not None and (x.shape.rank != 2 or x.shape[0] not in (None, len(variable_names))):
                raise ValueError(
                    f"`x` must have shape ({len(variable_names)}, m), one row per variable "
                    f"{variable_names}. Received: x.shape={tuple(x.shape)}"
                )
            rows = [x[i] for i in range(len(variable_names))]
        # The dtype follows x and the parameters even when the formula uses none of them.
        dtype = _common_tf_dtype([x, *params])
        value = _call_tf(formula, dict(zip(variable_names, rows)), dict(zip(parameter_names, params)), dtype)
        return tf.broadcast_to(value, tf.shape(rows[0]))

    return model


def _call_tf(
    formula: Any, variables: Mapping[str, Any], params: Mapping[str, Any], dtype: Any
) -> Any:
    """Evaluates ``formula`` with TensorFlow; ``dtype=None`` picks it from the inputs the formula uses."""
    raw = _collect_inputs(formula.variables, formula.parameters, variables, params)
    if dtype is None:
        dtype = _common_tf_dtype(raw.values())
    env = {name: _to_tf(value, dtype) for name, value in raw.items()}
    return _evaluate_tf(formula._tree, env, dtype)


def _to_tf(value: Any, dtype: Any) -> Any:
    """Casts a tensor (differentiably) or converts a number/array without a float32 detour."""
    if isinstance(value, tf.Variable) or tf.is_tensor(value):
        return tf.cast(value, dtype)
    return tf.cast(tf.constant(np.asarray(value)), dtype)  # 0.1 stays 0.1 in float64


def _common_tf_dtype(values: Iterable[Any]) -> Any:
    """The widest floating dtype among tensor/array inputs; ``float32`` when there is none."""
    best = None
    for value in values:
        dtype = getattr(value, "dtype", None)
        if dtype is None:
            continue  # a Python number: takes the others' dtype
        dtype = tf.as_dtype(dtype)
        if dtype.is_floating and (best is None or dtype.size > best.size):
            best = dtype
    return tf.float32 if best is None else best


def _evaluate_tf(node: _Node, env: Mapping[str, Any], dtype: Any) -> Any:
    if isinstance(node, _Number):
        return tf.constant(node.value, dtype=dtype)
    if isinstance(node, _Symbol):
        if node.kind == "constant":
            return tf.constant(CONSTANTS[node.name], dtype=dtype)
        return env[node.name]
    if isinstance(node, _Unary):
        operand = _evaluate_tf(node.operand, env, dtype)
        return tf.math.negative(operand) if node.op == "-" else operand
    if isinstance(node, _Binary):
        left = _evaluate_tf(node.left, env, dtype)
        right = _evaluate_tf(node.right, env, dtype)
        if node.op == "+":
            return tf.math.add(left, right)
        if node.op == "-":
            return tf.math.subtract(left, right)
        if node.op == "*":
            return tf.math.multiply(left, right)
        if node.op == "/":
            return tf.math.truediv(left, right)
        return tf.math.pow(left, right)
    args = [_evaluate_tf(arg, env, dtype) for arg in node.args]
    return _tf_function(FUNCTIONS[node.function].tensorflow)(*args)


def _tf_function(name: str) -> Callable[..., Any]:
    """The TensorFlow operation for a name from the ``FUNCTIONS`` table (never from user text)."""
    if name == "log10":  # tf.math has no log10: log(x) / log(10)
        return lambda x: tf.math.log(x) / tf.math.log(tf.constant(10.0, dtype=x.dtype))
    table = {
        "exp": tf.math.exp,
        "log": tf.math.log,
        "sqrt": tf.math.sqrt,
        "sin": tf.math.sin,
        "cos": tf.math.cos,
        "tan": tf.math.tan,
        "asin": tf.math.asin,
        "acos": tf.math.acos,
        "atan": tf.math.atan,
        "sinh": tf.math.sinh,
        "cosh": tf.math.cosh,
        "tanh": tf.math.tanh,
        "abs": tf.math.abs,
        "atan2": tf.math.atan2,
    }
    return table[name]
