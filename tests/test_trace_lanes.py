"""The trace's lanes (``marquardt._backend.numpy.trace_lanes``): a short per-problem vector is
written as one NumPy scalar per element, and the compiled code must still give the eager
one-problem namespace's results bit for bit, NaN, infinities and signed zeros included."""

import numpy as np
import pytest

from marquardt._backend.numpy import single, trace, trace_lanes


@pytest.mark.parametrize("n", range(1, 21))
def test_add_order_is_numpy_pairwise_summation(n):
    rng = np.random.default_rng(n)
    names = [f"a[0, {i}]" for i in range(n)]
    expression = compile(trace_lanes.add_order(names), "<sum>", "eval")
    for _ in range(300):  # terms over 16 decades: another order differs in the last bits
        a = rng.standard_normal((1, n)) * 10.0 ** rng.integers(-8, 8, size=(1, n))
        got = eval(expression, {}, {"a": a})  # noqa: S307 — our own expression
        assert got.tobytes() == np.add.reduce(a, axis=-1)[0].tobytes()


def _steps(ns, x, d, lam):
    """A little of everything the core does to n-vectors: arithmetic with scalars, where,
    maximum (NaN wins), sqrt below 0, division by 0, the reductions and a keepdims max."""
    g = x * d - lam
    s = ns.sqrt(ns.maximum(g, 0.5 * x))
    q = ns.where(ns.greater(s, 1.0), s / (x - 1.0), -x)
    big = ns.max(ns.abs(q), axis=-1, keepdims=True)
    small = ns.less_equal(ns.abs(q), 1e-3 * big)
    total = ns.sum(q * q, axis=-1) + ns.norm(g, axis=-1)
    return (total, ns.max(s, axis=-1), ns.any(small, axis=-1), ns.all(ns.isfinite(q), axis=-1),
            q, ns.logical_and(small, ns.less(x, 2.0)))


CASES = [
    (np.array([[1.5, -2.0, 3.0]]), np.array([[2.0, 0.5, 1.0]]), np.float64(0.25)),
    (np.array([[1.0, np.nan, 0.0]]), np.array([[1.0, 1.0, -0.0]]), np.float64(-0.0)),
    (np.array([[np.inf, -np.inf, 1e308]]), np.array([[0.0, 2.0, 10.0]]), np.float64(1e-300)),
    (np.array([[-0.0, 1.0, 1e-320]]), np.array([[-1.0, 0.0, 3.0]]), np.float64(np.nan)),
]


def _bits(tree):
    """Types and bits, every NaN written as one (which of several NaNs a reduction keeps, and
    its sign, is not specified by NumPy: its SIMD loops and the lanes may keep another)."""
    out = []
    for v in tree:
        a = np.asarray(v)
        if a.dtype.kind == "f":
            a = np.where(np.isnan(a), np.nan, a)
        out.append(a.tobytes() + str(type(v)).encode())
    return out


def test_lane_code_gives_the_eager_results_bit_for_bit():
    x, d, lam = CASES[0]
    with np.errstate(all="ignore"):
        compiled, first = trace.compile_function(_steps, (x, d, lam))
        assert _bits(first) == _bits(_steps(single, x, d, lam))
    # the vectors became lanes: no NumPy call on them is left in the code
    for call in ("_ns_where", "_ns_maximum", "_ns_sqrt", "_ns_less_equal", "_add_reduce",
                 "_ns_max", "_ns_any", "_ns_all", "_ns_isfinite"):
        assert call not in compiled.source, call
    assert ".tolist()" in compiled.source and "_np_array" in compiled.source
    for case in CASES:
        with np.errstate(all="ignore"):
            got, want = compiled.fn(*case), _steps(single, *case)
        assert _bits(got) == _bits(want)


def test_vectors_longer_than_the_lanes_stay_arrays():
    n = trace_lanes.MAX_LANES + 1
    x = np.linspace(1.0, 2.0, n)[None]
    with np.errstate(all="ignore"):
        compiled, _ = trace.compile_function(_steps, (x, x, np.float64(0.5)))
    for call in ("_ns_maximum", "_ns_sqrt", "_ns_where", "_ns_isfinite"):
        assert call in compiled.source, call
