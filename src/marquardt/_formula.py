"""Parsed formulas compiled to TensorFlow (and NumPy) operations.

``parse_formula`` checks the text against the whitelist grammar of ``marquardt._formula_syntax``
(never ``eval``: see that module's docstring for the grammar, the limits and why it is safe) and
returns a :class:`Formula`, which evaluates its tree with NumPy (with its exact Jacobian derived
symbolically, ``marquardt._formula_jacobian``), or builds TensorFlow operations
(``marquardt._backend.tensorflow.formula``) or ``jax.numpy`` ones from it, looking functions up
only in our own tables; TensorFlow is imported only to build its operations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from marquardt._formula_syntax import (
    CONSTANTS, FUNCTIONS, FormulaError, _Binary, _Node,
    _Number, _Symbol, _TreeBuilder, _Unary, _names_argument, _parse_checked)

__all__ = ["Formula", "FormulaError", "parse_formula", "FUNCTIONS", "CONSTANTS"]

@dataclass(frozen=True)
class Formula:
    """A parsed and checked formula; build one with :func:`parse_formula`.

    Attributes:
        text: The formula as given.
        variables: Data (independent variable) names used, in order of first appearance.
        parameters: Parameter names used, in order of first appearance.
    """

    text: str
    variables: tuple[str, ...]
    parameters: tuple[str, ...]
    _tree: _Node = field(repr=False)

    def to_tensorflow(self) -> Callable[[Mapping[str, Any], Mapping[str, Any]], Any]:
        """Compiles the formula to a function of TensorFlow tensors.

        The function is built from plain ``tf.math`` operations with no Python control flow on
        values, so it runs inside ``tf.function`` and is differentiable by ``tf.GradientTape``.

        Returns:
            ``fn(variables, params)`` taking two mappings from name to tensor (or array, or number)
            and returning the formula's value, broadcast over the inputs. The result dtype is the
            widest floating dtype among the tensor and array inputs (Python numbers do not count),
            or ``float32`` when there is none; every input is cast to it.

        Raises:
            ValueError: When called without a value for a name the formula uses.

        Examples:
            >>> import tensorflow as tf
            >>> fn = parse_formula("a*exp(-b*x)").to_tensorflow()
            >>> float(fn({"x": tf.constant(0.0, tf.float64)}, {"a": 2.0, "b": 1.0}))
            2.0
        """
        from marquardt._backend.tensorflow.formula import to_tensorflow

        return to_tensorflow(self)

    def evaluate_numpy(self, variables: Mapping[str, Any], params: Mapping[str, Any]) -> np.ndarray:
        """Evaluates the formula with NumPy in float64, as a reference for tests.

        Args:
            variables: Mapping from variable name to array or number.
            params: Mapping from parameter name to array or number.

        Returns:
            The value, broadcast over the inputs, as a float64 array. Invalid operations give NaN or
            inf without warnings.

        Raises:
            ValueError: When a name the formula uses has no value.

        Examples:
            >>> parse_formula("b1*(1-exp[-b2*x])").evaluate_numpy({"x": 0.0}, {"b1": 3, "b2": 1})
            array(0.)
        """
        raw = _collect_inputs(self.variables, self.parameters, variables, params)
        env = {name: np.asarray(value, dtype=np.float64) for name, value in raw.items()}
        with np.errstate(all="ignore"):
            return np.asarray(_evaluate_numpy(self._tree, env), dtype=np.float64)

    def as_model(
        self, variable_names: Iterable[str], parameter_names: Iterable[str]
    ) -> Callable[..., Any]:
        """Returns a ``curve_fit``-style model ``f(x, *params)`` built from TensorFlow operations.

        Args:
            variable_names: The variables, in the order of the rows of ``x``. Must include every
                variable the formula uses; unused ones are allowed (a data column the model ignores).
            parameter_names: The parameters, in the order ``f`` takes them. Must be exactly the
                parameters the formula uses, in any order (a parameter the formula does not use would
                make the fit singular, so it is refused).

        Returns:
            ``f(x, *params)``: ``x`` is a tensor of shape ``(m,)`` for one variable (``(1, m)`` is also
            accepted) or ``(k, m)`` for ``k`` variables, each ``params[i]`` a scalar tensor. The result
            has shape ``(m,)`` even when the formula does not depend on ``x``.

        Raises:
            FormulaError: When the names do not match the formula.

        Examples:
            >>> import tensorflow as tf
            >>> f = parse_formula("a*x + b").as_model(["x"], ["a", "b"])
            >>> f(tf.constant([1.0, 2.0], tf.float64), 2.0, 1.0).numpy()
            array([3., 5.])
        """
        from marquardt._backend.tensorflow.formula import as_model

        return as_model(self, *self._model_names(variable_names, parameter_names))


    def as_numpy_model(
        self, variable_names: Iterable[str], parameter_names: Iterable[str]
    ) -> Callable[..., np.ndarray]:
        """Returns a ``curve_fit``-style model ``f(x, *params)`` evaluated with NumPy in float64
        (no TensorFlow): pair it with ``as_numpy_jacobian`` for exact derivatives.

        Args and errors as ``as_model``; ``x`` as there, a NumPy array (or array-like). The
        result is a float64 array of shape ``(m,)``; invalid operations give NaN or inf without
        warnings.

        Examples:
            >>> import numpy as np
            >>> f = parse_formula("a*x + b").as_numpy_model(["x"], ["a", "b"])
            >>> f(np.array([1.0, 2.0]), 2.0, 1.0)
            array([3., 5.])
        """
        from marquardt._formula_jacobian import split_rows

        variable_names, parameter_names = self._model_names(variable_names, parameter_names)
        n_params = len(parameter_names)
        tree = self._tree

        def model(x: Any, *params: Any) -> np.ndarray:
            if len(params) != n_params:
                raise TypeError(f"model takes x and {n_params} parameters {parameter_names}, "
                                f"got {len(params)}")
            rows = split_rows(np.asarray(x, dtype=np.float64), variable_names)
            env = {**dict(zip(variable_names, rows)),
                   **{name: np.float64(p) for name, p in zip(parameter_names, params)}}
            with np.errstate(all="ignore"):
                value = _evaluate_numpy(tree, env)
            return np.array(np.broadcast_to(value, rows[0].shape), dtype=np.float64)

        return model

    def as_numpy_jacobian(
        self, variable_names: Iterable[str], parameter_names: Iterable[str]
    ) -> Callable[..., np.ndarray]:
        """Returns ``jac(x, *params)``, the exact Jacobian of ``as_numpy_model``'s model as an
        (m, n) float64 array, columns in ``parameter_names`` order: derived symbolically
        (``marquardt._formula_jacobian``, its docstring has the rules and the domain edges)
        and evaluated with NumPy, for ``curve_fit(..., jac=...)``.

        Args and errors as ``as_model``.

        Examples:
            >>> import numpy as np
            >>> jac = parse_formula("a*x + b").as_numpy_jacobian(["x"], ["a", "b"])
            >>> jac(np.array([1.0, 2.0]), 2.0, 1.0)
            array([[1., 1.],
                   [2., 1.]])
        """
        from marquardt._formula_jacobian import NumpyJacobian

        return NumpyJacobian(self._tree, *self._model_names(variable_names, parameter_names))

    def _model_names(self, variable_names, parameter_names) -> tuple:
        """The names checked against the formula (``as_model``, ``as_jax_model``)."""
        variable_names = _names_argument("variable_names", variable_names)
        parameter_names = _names_argument("parameter_names", parameter_names)
        if not variable_names:
            raise FormulaError(f"`variable_names` must name at least one variable. Received: {variable_names=}")
        missing = [name for name in self.variables if name not in variable_names]
        if missing:
            raise FormulaError(
                f"`variable_names` must include every variable of the formula; missing {missing}. "
                f"Received: {variable_names=}"
            )
        if sorted(parameter_names) != sorted(self.parameters):
            raise FormulaError(
                f"`parameter_names` must be the parameters of the formula {self.parameters}, in any "
                f"order. Received: {parameter_names=}"
            )
        return variable_names, parameter_names

    def as_jax_model(self, variable_names: Iterable[str],
                     parameter_names: Iterable[str]) -> Callable[..., Any]:
        """Returns a ``curve_fit``-style model ``f(x, *params)`` built from ``jax.numpy``
        operations (JAX imported here): differentiable by ``jax.jacfwd``, traceable by
        ``jax.jit``; ``x`` is made a JAX array first, so that the model returns one (and is
        fitted on the JAX backend, docs/jax.md) even for a formula of plain arithmetic.

        Args and errors as ``as_model``.

        Examples:
            >>> import numpy as np
            >>> f = parse_formula("a*exp(-b*x)").as_jax_model(["x"], ["a", "b"])
            >>> np.asarray(f(np.array([0.0]), 2.0, 1.0)).tolist()
            [2.0]
        """
        import jax.numpy as jnp

        variable_names, parameter_names = self._model_names(variable_names, parameter_names)
        n_params = len(parameter_names)

        def model(x: Any, *params: Any) -> Any:
            if len(params) != n_params:
                raise TypeError(f"model takes x and {n_params} parameters {parameter_names}, "
                                f"got {len(params)}")
            x = jnp.asarray(x)
            if len(variable_names) == 1:
                rows = [x[0] if x.ndim == 2 and x.shape[0] == 1 else x]
            else:
                if x.ndim != 2 or x.shape[0] != len(variable_names):
                    raise ValueError(
                        f"`x` must have shape ({len(variable_names)}, m), one row per variable "
                        f"{variable_names}. Received: x.shape={tuple(x.shape)}")
                rows = [x[i] for i in range(len(variable_names))]
            env = {**dict(zip(variable_names, rows)), **dict(zip(parameter_names, params))}
            return jnp.broadcast_to(_evaluate_with(jnp, self._tree, env), rows[0].shape)

        return model


def parse_formula(
    text: str, *, variables: Iterable[str] | None = None, parameters: Iterable[str] | None = None
) -> Formula:
    """Parses and checks a formula.

    Args:
        text: The formula, e.g. ``"a*exp(-b*x) + c"`` or NIST's ``"b1*(1-exp[-b2*x])"``.
        variables: The data names. ``None`` means ``("x",)``.
        parameters: The parameter names. ``None`` means every name that is neither a variable, a
            constant (``pi``, ``e``) nor a function is a parameter; with an explicit list, any other
            name is refused.

    Returns:
        The checked :class:`Formula`.

    Raises:
        FormulaError: When the text uses anything outside the grammar in this module's docstring, a
            name that is not allowed, or exceeds a size limit; also when a declared name is not a
            valid identifier, is reserved (a function or constant name), starts with ``_``, or is
            declared both as a variable and as a parameter.

    Examples:
        >>> f = parse_formula("a*exp(-b*x) + c")
        >>> f.variables, f.parameters
        (('x',), ('a', 'b', 'c'))
        >>> parse_formula("x.__class__")
        Traceback (most recent call last):
        ...
        marquardt._formula_syntax.FormulaError: Formula error at column 1: attribute access is not allowed (found 'x.__class__')
    """
    if not isinstance(text, str):
        raise FormulaError(f"`text` must be a string. Received: text={text!r:.80}")
    declared_variables = ("x",) if variables is None else _names_argument("variables", variables)
    declared_parameters = None if parameters is None else _names_argument("parameters", parameters)
    if declared_parameters is not None:
        overlap = sorted(set(declared_variables) & set(declared_parameters))
        if overlap:
            raise FormulaError(f"{overlap} declared both as variables and as parameters")

    tree = _parse_checked(text)
    builder = _TreeBuilder(text, declared_variables, declared_parameters)
    root = builder.convert(tree.body)
    return Formula(
        text=text,
        variables=tuple(builder.used_variables),
        parameters=tuple(builder.used_parameters),
        _tree=root,
    )


def _collect_inputs(
    variables: tuple[str, ...],
    parameters: tuple[str, ...],
    variables_values: Mapping[str, Any],
    params_values: Mapping[str, Any],
) -> dict[str, Any]:
    """Picks the values of the names the formula uses; extra entries are ignored."""
    raw: dict[str, Any] = {}
    for kind, names, values in (("variable", variables, variables_values), ("parameter", parameters, params_values)):
        for name in names:
            if name not in values:
                raise ValueError(f"no value given for {kind} {name!r}; the formula uses {kind}s {list(names)}")
            raw[name] = values[name]
    return raw


def _evaluate_numpy(node: _Node, env: Mapping[str, np.ndarray]) -> Any:
    if isinstance(node, _Number):
        return np.float64(node.value)
    if isinstance(node, _Symbol):
        return np.float64(CONSTANTS[node.name]) if node.kind == "constant" else env[node.name]
    if isinstance(node, _Unary):
        operand = _evaluate_numpy(node.operand, env)
        return -operand if node.op == "-" else +operand
    if isinstance(node, _Binary):
        return _NUMPY_BINARY[node.op](_evaluate_numpy(node.left, env), _evaluate_numpy(node.right, env))
    return FUNCTIONS[node.function].numpy(*(_evaluate_numpy(arg, env) for arg in node.args))


def _evaluate_with(ns: Any, node: _Node, env: Mapping[str, Any]) -> Any:
    """The tree evaluated with the array namespace ``ns`` (``jax.numpy``), whose function
    names are the canonical names of ``FUNCTIONS``."""
    if isinstance(node, _Number):
        return node.value
    if isinstance(node, _Symbol):
        return CONSTANTS[node.name] if node.kind == "constant" else env[node.name]
    if isinstance(node, _Unary):
        operand = _evaluate_with(ns, node.operand, env)
        return -operand if node.op == "-" else operand
    if isinstance(node, _Binary):
        left, right = _evaluate_with(ns, node.left, env), _evaluate_with(ns, node.right, env)
        return {"+": ns.add, "-": ns.subtract, "*": ns.multiply, "/": ns.true_divide,
                "**": ns.power}[node.op](left, right)
    return getattr(ns, node.function)(*(_evaluate_with(ns, arg, env) for arg in node.args))


_NUMPY_BINARY: Mapping[str, Callable[[Any, Any], Any]] = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "/": np.true_divide,
    "**": np.power,
}
