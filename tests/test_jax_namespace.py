"""The JAX array namespace gives the NumPy namespace's results, eagerly and under ``jax.jit``."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402

from marquardt._backend.jax import xp as jxp  # noqa: E402
from marquardt._backend.numpy import xp as nxp  # noqa: E402
from marquardt._xp import array_namespace  # noqa: E402

RNG = np.random.default_rng(7)
A = RNG.normal(size=(3, 6, 4))
SPD = np.einsum("kmi,kmj->kij", A, A) + 1e-3 * np.eye(4)
B = RNG.normal(size=(3, 4))


def test_array_namespace_finds_jax_arrays_and_tracers():
    assert array_namespace(np.ones(2), jnp.ones(2)) is jxp
    seen = []
    jax.jit(lambda a: seen.append(array_namespace(a)) or a)(jnp.ones(2))
    assert seen == [jxp]
    assert array_namespace(np.ones(2), 1.0) is nxp


@pytest.mark.parametrize("name, args", [
    ("matvec", (A, RNG.normal(size=(3, 4)))),
    ("diagonal", (SPD,)),
    ("norm", (A,)),
])
def test_elementary_operations_match_numpy(name, args):
    want = getattr(nxp, name)(*args)
    got = getattr(jxp, name)(*(jnp.asarray(a) for a in args))
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("a, b", [
    (np.swapaxes(A, 1, 2), A),  # JᵀJ of 3 Jacobians 6 × 4: formed elementwise
    (RNG.normal(size=(2, 16, 16)), RNG.normal(size=(2, 16, 16))),  # 16³ > 1024: the dot
    (RNG.normal(size=(5, 3)), RNG.normal(size=(3, 2))),  # unbatched: the dot
])
def test_matmul_matches_numpy_elementwise_or_not(a, b):
    got = jax.jit(jxp.matmul)(jnp.asarray(a), jnp.asarray(b))
    np.testing.assert_allclose(np.asarray(got), np.matmul(a, b), rtol=1e-13, atol=1e-13)


def test_transposed_matvec_and_expand_dims_match_numpy():
    v = RNG.normal(size=(3, 6))
    np.testing.assert_allclose(np.asarray(jxp.matvec(jnp.asarray(A), jnp.asarray(v), transpose_a=True)),
                               nxp.matvec(A, v, transpose_a=True), rtol=1e-12, atol=1e-12)
    for axis in (-1, -2, (-1, -2), 0):
        assert jxp.expand_dims(jnp.asarray(B), axis).shape == nxp.expand_dims(B, axis).shape


def test_cholesky_solve_reports_failure_per_system_under_jit():
    m = SPD.copy()
    m[1] = -np.eye(4)  # not positive definite
    want_x, want_ok = nxp.cholesky_solve_or_nan(m, B)
    got_x, got_ok = jax.jit(jxp.cholesky_solve_or_nan)(jnp.asarray(m), jnp.asarray(B))
    np.testing.assert_array_equal(np.asarray(got_ok), want_ok)
    assert want_ok.tolist() == [True, False, True]
    np.testing.assert_allclose(np.asarray(got_x)[want_ok], want_x[want_ok], rtol=1e-10)
    assert np.all(np.isnan(np.asarray(got_x)[1]))


def test_cond_branches_eagerly_and_when_traced():
    def f(p):
        return jxp.cond(p > 0, lambda: p * 2.0, lambda: p - 1.0)
    assert float(f(jnp.asarray(3.0))) == 6.0
    assert float(jax.jit(f)(jnp.asarray(3.0))) == 6.0
    assert float(jax.jit(f)(jnp.asarray(-3.0))) == -4.0
