"""A zoo of users' curve fits: marquardt.curve_fit against SciPy's, side by side.

"Build for problems you were not shown": none of these models is in the NIST, MGH or robust
catalogues the tests use. Each problem is a realistic fit a scientist brings (dose-response,
enzyme kinetics, growth curves, overlapping peaks, damped oscillations, Arrhenius/Eyring,
pharmacokinetics, relaxation, blackbody, dielectric spectra, ...), with seeded noise, and some
with sigma (absolute or relative), bounds, robust losses, far starts, exact data or a nearly
non-identifiable parameter pair. Every model is written once against a small namespace ``m``
(``exp``, ``log``, ...) and so runs as NumPy (finite differences, ``jac`` default), as a
TensorFlow model (autodiff, for the problems marked ``tf``) and as ``jax.numpy`` (the exact
Jacobian used to judge every answer).

Each of the 40 problems is fitted from its listed start and from starts 2× and 10× off the
truth (``far_starts``; NumPy model only): 120 fits. Per fit, from the same start:

* ``ours``: ``marquardt.curve_fit`` at its defaults (NumPy model), and ``ours/tf`` (the
  TensorFlow model) where marked;
* ``cf``: SciPy ``curve_fit`` (``lm``; ``trf`` when there are bounds or a loss);
* ``trf``: SciPy ``least_squares(method='trf', ftol=xtol=gtol=1e-15)`` on the weighted residuals
  (r = (f − y)/σ), with the same bounds, loss and ``f_scale``.

Measured at each answer x, with the exact Jacobian J (JAX, float64): the cost
F = ½ Σ f_s² ρ((rᵢ/f_s)²) (½‖r‖² without a loss), the projected gradient g = Jᵀ(ρ′ r) (a
component zeroed where x sits on a bound and −g points out of the box), and its size relative to
the gradient at the start, ‖g‖∞ / ‖g(x₀)‖∞ (``g/g0``).

Flagged:

* ``cost``: ours' cost above the best SciPy cost by more than 1e-8 relative + 1e-14 absolute;
* ``false success``: ours reports success with ``g/g0`` above 1e-6 and the gradient cosine
  (MINPACK's scale-free gtol measure) above 1e-6;
* ``raises``: ours raises where SciPy's ``curve_fit`` returns;
* ``pcov``: ours' pcov and SciPy ``curve_fit``'s differ by more than 1e-4 relative
  (‖ΔC‖_max / ‖C‖_max) where the two x agree to 1e-7 relative;
* ``warning``: ours warns where SciPy does not (the text is printed, to be read).

Printed: one row per fit and solver (cost, g/g0, cosine, success, status, nfev), then how
often ours' cost is lower or higher than the best SciPy cost and than each SciPy run alone,
and the flagged cases. Findings of the first run: docs/benchmarks.md, "Users' curve fits".

Usage: PYTHONPATH=src python benchmarks/zoo.py [--no-tf] [--no-far] [--only NAME ...]
[--verbose] [--damping NAME] (26 s with TensorFlow on a busy 2-core machine, 2026-12-05;
exit status 1 when a case is flagged: some flags are the right answer, read them).
"""

from __future__ import annotations

import argparse
import sys
import time
import types
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import scipy.optimize

import marquardt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from zoo_problems import NP, Problem, data, far_starts, whitener, zoo  # noqa: E402

# ---- measuring an answer -------------------------------------------------------------------

def rho(loss: str, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ρ(z), ρ′(z)) of SciPy's losses."""
    if loss == "linear":
        return z, np.ones_like(z)
    if loss == "soft_l1":
        return 2.0 * (np.sqrt(1.0 + z) - 1.0), 1.0 / np.sqrt(1.0 + z)
    if loss == "huber":
        return (np.where(z <= 1.0, z, 2.0 * np.sqrt(np.maximum(z, 1.0)) - 1.0),
                np.where(z <= 1.0, 1.0, 1.0 / np.sqrt(np.maximum(z, 1.0))))
    if loss == "cauchy":
        return np.log1p(z), 1.0 / (1.0 + z)
    raise ValueError(loss)


class Judge:
    """Cost, projected gradient and gradient cosine at x with the exact (JAX) Jacobian."""

    def __init__(self, prob: Problem, y, sigma):
        import jax
        import jax.numpy as jnp
        jax.config.update("jax_enable_x64", True)
        ns = types.SimpleNamespace(exp=jnp.exp, log=jnp.log, sin=jnp.sin, cos=jnp.cos,
                                   sqrt=jnp.sqrt, concat=lambda a: jnp.concatenate(a, 0))
        keep = np.isfinite(y)
        xj, yj = jnp.asarray(prob.x, float), jnp.asarray(y[keep], float)
        white = whitener(sigma, keep)
        res = lambda p: white(prob.model(ns, xj, *p)[keep] - yj)  # noqa: E731
        self._res = jax.jit(res)
        self._jac = jax.jit(jax.jacfwd(res))
        self.prob = prob
        n = len(prob.p0)
        self.lb = np.broadcast_to(np.asarray(prob.bounds[0], float), (n,))
        self.ub = np.broadcast_to(np.asarray(prob.bounds[1], float), (n,))

    def __call__(self, x) -> dict:
        x = np.asarray(x, float)
        r = np.asarray(self._res(x))
        j = np.asarray(self._jac(x))
        fs = self.prob.f_scale
        z = (r / fs) ** 2
        rh, w = rho(self.prob.loss, z)
        cost = 0.5 * fs * fs * float(np.sum(rh))
        g = j.T @ (w * r)
        tol = 1e-10 * (1.0 + np.abs(x))
        out = ((np.abs(x - self.lb) <= tol) & (g > 0)) | ((np.abs(x - self.ub) <= tol) & (g < 0))
        g = np.where(out, 0.0, g)
        sw = np.sqrt(w)
        cols = np.linalg.norm(sw[:, None] * j, axis=0)
        rn = np.linalg.norm(sw * r)
        cos = float(np.max(np.abs(g) / np.where(cols * rn > 0, cols * rn, np.inf)))
        return dict(cost=cost, gmax=float(np.max(np.abs(g))), cos=cos)


# ---- the fits ------------------------------------------------------------------------------

def _call(fn: Callable) -> tuple[Any, list[str], str | None]:
    """(value, warning texts, error text) of fn()."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value, err = fn(), None
        except Exception as e:  # noqa: BLE001 - a benchmark records what a user would see
            value, err = None, f"{type(e).__name__}: {e}"
    texts = [f"{w.category.__name__}: {w.message}" for w in caught
             if not issubclass(w.category, DeprecationWarning)]
    return value, texts, err


def _tf_namespace():
    import tensorflow as tf
    return types.SimpleNamespace(exp=tf.exp, log=tf.math.log, sin=tf.sin, cos=tf.cos,
                                 sqrt=tf.sqrt, concat=lambda a: tf.concat(a, 0))


#: ours' options from the command line (``--damping``; None: curve_fit's default)
OPTIONS: dict[str, Any] = {"damping": None}


def fit_all(prob: Problem, seed: int, use_tf: bool) -> dict:
    y, sigma = data(prob, seed)
    judge = Judge(prob, y, sigma)
    p0 = np.asarray(prob.p0, float)
    f_np = lambda x, *p: prob.model(NP, x, *p)  # noqa: E731
    kw: dict[str, Any] = dict(p0=p0, sigma=sigma, absolute_sigma=prob.sigma == "abs",
                              bounds=prob.bounds)
    if prob.nans:
        kw["nan_policy"] = "omit"
    x = np.asarray(prob.x, prob.dtype)
    robust = dict(loss=prob.loss, f_scale=prob.f_scale) if prob.loss != "linear" else {}
    method = "trf" if robust or np.isfinite(np.r_[judge.lb, judge.ub]).any() else "lm"
    at0 = judge(p0)
    row: dict[str, Any] = dict(problem=prob.name, g0=at0["gmax"], f0=at0["cost"],
                               method=method)

    def ours(f):
        extra = {"damping": OPTIONS["damping"]} if OPTIONS["damping"] else {}
        popt, pcov, info, mesg, ier = marquardt.curve_fit(f, x, y, full_output=True,
                                                          **kw, **robust, **extra)
        res = info["result"]
        return dict(x=popt, pcov=pcov, success=bool(res.success), status=int(res.status),
                    nfev=int(res.nfev), message=str(mesg))

    def cf():
        popt, pcov, info, mesg, ier = scipy.optimize.curve_fit(
            f_np, x, y, method=method, full_output=True, **kw, **robust)
        return dict(x=popt, pcov=pcov, success=ier in (1, 2, 3, 4), status=int(ier),
                    nfev=int(info["nfev"]), message=str(mesg))

    def trf():
        keep = np.isfinite(y)
        white = whitener(sigma, keep)
        res = scipy.optimize.least_squares(
            lambda p: white(f_np(x, *p)[keep] - y[keep]), p0, bounds=prob.bounds, method="trf",
            ftol=1e-15, xtol=1e-15, gtol=1e-15, **robust)
        return dict(x=res.x, pcov=None, success=bool(res.success), status=int(res.status),
                    nfev=int(res.nfev), message=str(res.message))

    runs = {"ours": lambda: ours(f_np), "cf": cf, "trf": trf}
    if use_tf and prob.tf:
        tfm = _tf_namespace()
        f_tf = lambda x, *p: prob.model(tfm, x, *p)  # noqa: E731
        runs["ours/tf"] = lambda: ours(f_tf)
    for name, fn in runs.items():
        with np.errstate(all="ignore"):
            value, warns, err = _call(fn)
        if value is not None:
            value.update(judge(value["x"]))
        row[name] = dict(value=value, warnings=warns, error=err)
    return row


# ---- flags ---------------------------------------------------------------------------------

def flags(row: dict, solver: str) -> list[str]:
    """The flags of one of ours' runs (``ours`` or ``ours/tf``) against SciPy's."""
    me = row[solver]
    refs = [row[k]["value"] for k in ("cf", "trf") if row[k]["value"] is not None]
    out = []
    if me["value"] is None:
        if row["cf"]["value"] is not None:
            out.append(f"raises where SciPy returns: {me['error']}")
        return out
    v = me["value"]
    best = min((r["cost"] for r in refs), default=np.inf)
    if v["cost"] > best * (1 + 1e-8) + 1e-14:
        out.append(f"cost {v['cost']:.12g} > SciPy's {best:.12g} "
                   f"(+{(v['cost'] - best) / best:.1e} relative)")
    rel = v["gmax"] / row["g0"] if row["g0"] > 0 else 0.0
    if v["success"] and rel > 1e-6 and v["cos"] > 1e-6:
        out.append(f"success with g/g0 {rel:.1e}, cosine {v['cos']:.1e}: {v['message']}")
    c = row["cf"]["value"]
    if c is not None and v["pcov"] is not None and c["pcov"] is not None:
        same_x = np.max(np.abs(v["x"] - c["x"]) / np.maximum(np.abs(c["x"]), 1e-300)) < 1e-7
        pa, pb = np.asarray(v["pcov"]), np.asarray(c["pcov"])
        exact = v["cost"] <= 1e-20 * row["f0"]  # zero residual: pcov is rounding noise
        if same_x and not exact and np.all(np.isfinite(pa)) and np.all(np.isfinite(pb)):
            d = float(np.max(np.abs(pa - pb)) / np.max(np.abs(pb)))
            if d > 1e-4:
                out.append(f"pcov differs from SciPy's by {d:.1e} (x agree)")
        elif np.all(np.isfinite(pa)) != np.all(np.isfinite(pb)):
            out.append(f"pcov finite: ours {np.all(np.isfinite(pa))}, SciPy's "
                       f"{np.all(np.isfinite(pb))}")
    scipy_warns = {w.split(":")[0] for k in ("cf",) for w in row[k]["warnings"]}
    for w in me["warnings"]:
        if w.split(":")[0] not in scipy_warns:
            out.append(f"warns where SciPy does not: {w}")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-tf", action="store_true", help="NumPy models only")
    ap.add_argument("--only", nargs="*", help="problem names")
    ap.add_argument("--verbose", action="store_true", help="every solver's x and message")
    ap.add_argument("--no-far", action="store_true",
                    help="only the listed starts, not also 2x and 10x off the truth")
    ap.add_argument("--damping", default=None,
                    help="ours' damping policy (default: curve_fit's default)")
    args = ap.parse_args(argv)
    OPTIONS["damping"] = args.damping
    start = time.perf_counter()
    rows = []
    for seed, prob in enumerate(zoo()):
        for p in [prob] + ([] if args.no_far else far_starts(prob)):
            if args.only and p.name not in args.only and prob.name not in args.only:
                continue
            rows.append(fit_all(p, 100 + seed, not args.no_tf))
    elapsed = time.perf_counter() - start
    print(f"{'problem':<24} {'solver':<7} {'cost':>16} {'g/g0':>8} {'cosine':>8} "
          f"{'ok':>3} {'st':>3} {'nfev':>5}")
    flagged = []
    for row in rows:
        for name in ("ours", "ours/tf", "cf", "trf"):
            if name not in row:
                continue
            run = row[name]
            v = run["value"]
            label = name if name != "cf" else f"cf/{row['method']}"
            if v is None:
                print(f"{row['problem']:<24} {label:<7} raised {run['error'][:70]}")
            else:
                print(f"{row['problem']:<24} {label:<7} {v['cost']:>16.10g} "
                      f"{v['gmax'] / row['g0']:>8.1e} {v['cos']:>8.1e} "
                      f"{'y' if v['success'] else 'n':>3} {v['status']:>3} {v['nfev']:>5}")
                if args.verbose:
                    print(f"{'':<32} x={np.array2string(v['x'], precision=6)} {v['message']}")
            if name.startswith("ours"):
                flagged += [(row["problem"], name, f) for f in flags(row, name)]
    best = [min(r[k]["value"]["cost"] for k in ("cf", "trf") if r[k]["value"] is not None)
            for r in rows]
    mine = [r["ours"]["value"]["cost"] if r["ours"]["value"] is not None else np.inf
            for r in rows]
    lower = sum(a < b * (1 - 1e-8) - 1e-14 for a, b in zip(mine, best))
    higher = sum(a > b * (1 + 1e-8) + 1e-14 for a, b in zip(mine, best))
    print(f"\n{len(rows)} fits in {elapsed:.1f} s; ours (NumPy) against the best SciPy cost: "
          f"lower {lower}, equal {len(rows) - lower - higher}, higher {higher}")
    for ref in ("cf", "trf"):  # one SciPy run at a time: the best of two favours SciPy
        theirs = [r[ref]["value"]["cost"] if r[ref]["value"] is not None else np.inf
                  for r in rows]
        lo = sum(a < b * (1 - 1e-8) - 1e-14 for a, b in zip(mine, theirs))
        hi = sum(a > b * (1 + 1e-8) + 1e-14 for a, b in zip(mine, theirs))
        print(f"  against {ref} alone: lower {lo}, higher {hi} (a raise counts as infinite)")
    print(f"flagged: {len(flagged)}")
    for problem, name, f in flagged:
        print(f"  {problem} [{name}]: {f}")
    return 1 if flagged else 0


if __name__ == "__main__":
    sys.exit(main())
