"""The results of 192 fits, dumped for a bit-for-bit comparison of two source trees.

A change meant to make the host executor faster without changing a single bit of its results
(``docs/benchmarks.md``, "The core traced into straight-line Python") is checked by running
the same fits on both trees and comparing every field of every result: ``least_squares`` over
every ``jac`` mode × damping × solver × loss × bounds, ``max_nfev``, callbacks, ``curve_fit``
with and without ``sigma``, and the 38 NIST runs with NumPy models
(``benchmarks/nist_numpy.py``'s models).

Usage::

    PYTHONPATH=<tree A>/src python benchmarks/same_results.py dump a.pkl
    PYTHONPATH=<tree B>/src python benchmarks/same_results.py dump b.pkl
    python benchmarks/same_results.py compare a.pkl b.pkl

(the pickles are this script's own output; load no others.)
"""

from __future__ import annotations

import pathlib
import pickle
import sys
import warnings

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

T = np.linspace(0.0, 4.0, 30)
Y = 2.5 * np.exp(-1.3 * T) + 0.5 + 0.05 * np.sin(7.0 * T)


def model(t, a, b, c):
    return a * np.exp(-b * t) + c


def jacm(t, a, b, c):
    e = np.exp(-b * t)
    return np.stack([e, -a * t * e, np.ones_like(t)], axis=1)


def fun(p):
    return model(T, *p) - Y


def jacf(p):
    return jacm(T, *p)


def dump(out_path: str) -> None:
    import marquardt
    from marquardt import nist

    out: dict = {}

    def rec(key, r):
        if isinstance(r, tuple):
            r = r[0] if not isinstance(r[0], np.ndarray) or len(r) < 3 else r
        d = {}
        if hasattr(r, "keys"):
            for k in r.keys():
                v = r[k]
                if isinstance(v, (np.ndarray, np.generic, float, int, bool, str)):
                    d[k] = v
                elif k == "history":
                    d[k] = np.asarray([tuple(h) for h in v])
        else:
            d = {"popt": r[0], "pcov": r[1]}
        out[key] = d

    warnings.simplefilter("ignore")
    for jac in ["2-point", "3-point", jacf, "cs"]:
        for damping in ["nielsen", "trainlm", "trust-region"]:
            for solver in ["svd", "cholesky", "eigen"]:
                for loss in ["linear", "cauchy"]:
                    for bounds in [(-np.inf, np.inf),
                                   ([-np.inf, 0.0, -np.inf], [np.inf, 1.2, np.inf])]:
                        kw = dict(jac=jac, damping=damping, solver=solver, loss=loss,
                                  bounds=bounds)
                        key = ("ls", getattr(jac, "__name__", jac), damping, solver, loss,
                               bool(np.isfinite(bounds[0]).any()))
                        try:
                            rec(key, marquardt.least_squares(fun, [1.0, 1.0, 0.0], **kw))
                        except Exception as e:  # noqa: BLE001 - the error is a result too
                            out[key] = repr(e)
    for mx in [1, 4, 9, 20]:
        rec(("ls-maxnfev", mx), marquardt.least_squares(fun, [1.0, 1.0, 0.0], max_nfev=mx))
    calls = []
    rec(("ls-callback",), marquardt.least_squares(fun, [1.0, 1.0, 0.0],
                                                  callback=lambda *a: calls.append(1)))
    rec(("ls-callback-stop",), marquardt.least_squares(
        fun, [1.0, 1.0, 0.0], callback=lambda *a: len(calls) > 3 or calls.append(1)))
    for jac in ["2-point", jacm]:
        name = getattr(jac, "__name__", jac)
        rec(("cf", name), marquardt.curve_fit(model, T, Y, p0=[1, 1, 0], jac=jac,
                                              full_output=True))
        rec(("cf-sigma", name), marquardt.curve_fit(model, T, Y, p0=[1, 1, 0], jac=jac,
                                                    sigma=0.1 + T))
    from nist_numpy import numpy_model
    for data in sorted((ROOT / "tests" / "data" / "nist").glob("*.dat")):
        p = nist.load(data)
        f, x, y = numpy_model(p), p.x, p.target()
        for s in (0, 1):
            try:
                rec(("nist", data.stem, s), marquardt.curve_fit(
                    f, x, y, p0=p.starts[s], jac="2-point", full_output=True))
            except Exception as e:  # noqa: BLE001 - the error is a result too
                out[("nist", data.stem, s)] = repr(e)
    with open(out_path, "wb") as f:
        pickle.dump(out, f)
    print(len(out), "fits")


def compare(path_a: str, path_b: str) -> int:
    with open(path_a, "rb") as f:
        a = pickle.load(f)  # noqa: S301 - this script's own output
    with open(path_b, "rb") as f:
        b = pickle.load(f)  # noqa: S301
    assert a.keys() == b.keys()
    bad = 0
    for k in a:
        u, v = a[k], b[k]
        if isinstance(u, str) or isinstance(v, str):
            if u != v:
                print("DIFF", k, u, v)
                bad += 1
            continue
        for field in u:
            x, y = np.asarray(u[field]), np.asarray(v.get(field))
            if x.shape != y.shape or x.tobytes() != y.tobytes():
                print("DIFF", k, field)
                bad += 1
                break
    print(len(a), "fits,", bad, "differ")
    return bad


if __name__ == "__main__":
    if sys.argv[1:2] == ["dump"]:
        dump(sys.argv[2])
    elif sys.argv[1:2] == ["compare"]:
        sys.exit(1 if compare(sys.argv[2], sys.argv[3]) else 0)
    else:
        sys.exit(__doc__)
