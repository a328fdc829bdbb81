"""Damped linear solvers for the LM step, with a factor/solve split.

Each iteration solves, for one or more values of λ (a rejected step only changes λ),

    (JᵀJ + λD) δ = −Jᵀr,        D = diag(d) > 0.

Substituting the scaled variable z = S δ with S = diag(√d) gives the equivalent standard form

    (ĴᵀĴ + λI) z = −Ĵᵀr,        Ĵ = J S⁻¹,

which every solver below uses. The *factor* step does the O(mn²) or O(n³) work once per
iteration; the *solve* step for a new λ is then cheap where the method allows it.

* ``SVDSolver`` (accurate; the default for ``least_squares``): thin SVD Ĵ = UΣVᵀ, c = Uᵀr, then
  z = −V (σ c / (σ² + λ)). It never forms JᵀJ, so it loses no digits to squaring the condition
  number (the NIST problems Lanczos and MGH17 need this), handles rank deficiency and m < n
  (thin SVD with min(m, n) singular values), and each λ costs O(n·min(m, n)).
* ``EigenSolver``: eigen-decomposition of ĴᵀĴ = QΛQᵀ, z = −Q (Qᵀĝ / (Λ₊ + λ)); every λ costs
  O(n²). Robust for singular JᵀJ; used as the Cholesky fallback.
* ``CholeskySolver``: Cholesky of ĴᵀĴ + λI per λ (n³/3 flops, the fastest for large n); when
  the factor is not finite (the matrix is not numerically positive definite) the eigen route
  takes over, inside the graph.
* ``UnrolledCholeskySolver``: the same Cholesky route with the factorisation written out entry
  by entry for small n; elementwise work on a batch of problems, which XLA fuses (the default
  of ``curve_fit_batch``).
* ``KernelSolver``: for m < n, δ = −D⁻¹Jᵀ (J D⁻¹ Jᵀ + λI)⁻¹ r (the push-through identity), an
  m×m system instead of n×n.

For a trust-region control of λ (``marquardt._damping.TrustRegion``) each solver also gives the
*spectrum* of its system, ``spectrum(fac) -> Spectrum(w, b)``, such that the scaled step length
is the explicit rational function

    ‖√D δ(λ)‖² = ‖z(λ)‖² = Σᵢ bᵢ² / (wᵢ + λ)²,

so that the λ of a given length is found without another factorisation or evaluation: from
the SVD, w = σ², b = σ c; from the eigen-decomposition, w = Λ, b = Qᵀĝ; the Cholesky solvers
eigen-decompose the scaled normal matrix once per iteration (O(n³), like one more factor);
the kernel form eigen-decomposes K = J D⁻¹ Jᵀ = QΛQᵀ, b = √Λ Qᵀr.

Each solver's ``solve_checked(fac, lam)`` gives the step and, per system, whether its Cholesky
factorisation failed so that the eigen route gave the step (always False for the SVD and
eigen solvers); the Keras executors count these attempts (the ``cholesky_failures`` log).

All functions accept batched leading dimensions (one system per problem), and run on NumPy
arrays on the host or on tensors in a compiled graph: each takes the array namespace ``xp``
(``marquardt._xp``), found from its arguments when not given.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

from marquardt._xp import array_namespace

__all__ = [
    "SVDSolver",
    "EigenSolver",
    "CholeskySolver",
    "UnrolledCholeskySolver",
    "KernelSolver",
    "solve_normal",
    "solve_normal_checked",
    "solve_kernel",
    "get_solver",
    "Spectrum",
]


class Spectrum(NamedTuple):
    """‖√D δ(λ)‖² = Σᵢ bᵢ² / (wᵢ + λ)² (module docstring), batched over leading dims."""

    w: Any  # (…, k) eigenvalues of the scaled normal matrix, ≥ 0
    b: Any  # (…, k)


def _matvec(a, x, xp):
    return xp.matvec(a, x)


def _rmatvec(a, y, xp):
    """Aᵀ y for batched A (…, m, n) and y (…, m)."""
    return xp.matvec(a, y, transpose_a=True)


class SVDFactor(NamedTuple):
    s: Any  # (…, k) singular values of Ĵ
    c: Any  # (…, k) Uᵀ r
    v: Any  # (…, n, k) right singular vectors
    inv_sqrt_d: Any  # (…, n)


@dataclasses.dataclass(frozen=True)
class SVDSolver:
    """Thin SVD of the scaled Jacobian; accurate for ill-conditioned J."""

    name: str = "svd"

    def factor(self, j, r, d, xp=None) -> SVDFactor:
        xp = xp or array_namespace(j, r, d)
        inv_sqrt_d = 1.0 / xp.sqrt(d)
        js = j * xp.expand_dims(inv_sqrt_d, -2)
        u, s, vh = xp.svd(js)
        c = _rmatvec(u, r, xp)
        return SVDFactor(s=s, c=c, v=xp.swapaxes(vh, -1, -2), inv_sqrt_d=inv_sqrt_d)

    def solve(self, fac: SVDFactor, lam, xp=None):
        xp = xp or array_namespace(fac.s, lam)
        lam = xp.expand_dims(lam, -1)
        # formed here, not once in ``factor``: in a TensorFlow graph the precomputed form
        # changed the last bits of the steps (NIST ENSO from start 1: LRE 6.6 became 6.4)
        z = -fac.s * fac.c / (fac.s * fac.s + lam)
        return fac.inv_sqrt_d * _matvec(fac.v, z, xp)

    def solve_checked(self, fac: SVDFactor, lam, xp=None):
        """``(δ, failed)`` as ``CholeskySolver.solve_checked``; an SVD never fails."""
        xp = xp or array_namespace(fac.s, lam)
        return self.solve(fac, lam, xp), _never_failed(lam, xp)

    def spectrum(self, fac: SVDFactor, xp=None) -> Spectrum:
        return Spectrum(w=fac.s * fac.s, b=fac.s * fac.c)


class EigenFactor(NamedTuple):
    w: Any  # (…, n) eigenvalues of ĴᵀĴ, clipped at 0
    q: Any  # (…, n, n) eigenvectors
    qg: Any  # (…, n) Qᵀ ĝ
    inv_sqrt_d: Any


def _eigen_factor_normal(a, g, d, xp) -> EigenFactor:
    inv_sqrt_d = 1.0 / xp.sqrt(d)
    a_s = a * xp.expand_dims(inv_sqrt_d, -1) * xp.expand_dims(inv_sqrt_d, -2)
    a_s = 0.5 * (a_s + xp.swapaxes(a_s, -1, -2))
    w, q = xp.eigh(a_s)
    qg = _rmatvec(q, g * inv_sqrt_d, xp)
    return EigenFactor(w=xp.maximum(w, 0.0), q=q, qg=qg, inv_sqrt_d=inv_sqrt_d)


def _eigen_solve(fac: EigenFactor, lam, xp):
    # Eigenvalues at rounding level (relative to the largest) count as zero; with λ = 0 the
    # step is then the minimum-norm (pseudo-inverse) Gauss-Newton step instead of Inf/NaN.
    denom = fac.w + xp.expand_dims(lam, -1)
    n = fac.w.shape[-1] if fac.w.shape[-1] is not None else xp.cast(xp.shape(fac.w)[-1],
                                                                      fac.w.dtype)
    cutoff = 2.220446049250313e-16 * n * xp.max(fac.w, axis=-1, keepdims=True)
    ok = xp.greater(denom, cutoff)
    coef = xp.where(ok, fac.qg / xp.where(ok, denom, xp.ones_like(denom)), 0.0)
    return -fac.inv_sqrt_d * _matvec(fac.q, coef, xp)


class NormalFactor(NamedTuple):
    a: Any  # (…, n, n) JᵀJ
    g: Any  # (…, n) Jᵀr
    d: Any  # (…, n)


def _normal_from_jacobian(j, r, d, xp) -> NormalFactor:
    a = xp.matmul(xp.swapaxes(j, -1, -2), j)
    return NormalFactor(a=a, g=_rmatvec(j, r, xp), d=d)


@dataclasses.dataclass(frozen=True)
class EigenSolver:
    """Eigen-decomposition of the scaled normal matrix; each new λ costs O(n²)."""

    name: str = "eigen"

    def factor(self, j, r, d, xp=None) -> EigenFactor:
        xp = xp or array_namespace(j, r, d)
        nf = _normal_from_jacobian(j, r, d, xp)
        return _eigen_factor_normal(nf.a, nf.g, d, xp)

    def factor_normal(self, a, g, d, xp=None) -> EigenFactor:
        return _eigen_factor_normal(a, g, d, xp or array_namespace(a, g, d))

    def solve(self, fac: EigenFactor, lam, xp=None):
        return _eigen_solve(fac, lam, xp or array_namespace(fac.w, lam))

    def solve_checked(self, fac: EigenFactor, lam, xp=None):
        """``(δ, failed)`` as ``CholeskySolver.solve_checked``; never failed."""
        xp = xp or array_namespace(fac.w, lam)
        return _eigen_solve(fac, lam, xp), _never_failed(lam, xp)

    def spectrum(self, fac: EigenFactor, xp=None) -> Spectrum:
        return Spectrum(w=fac.w, b=fac.qg)


def solve_normal(a, g, lam, d, *, cholesky_solve=None, xp=None):
    """δ solving (A + λ diag(d)) δ = −g by Cholesky, falling back to eigen-decomposition.

    The fallback runs when the Cholesky factor is not finite, which happens when A + λD is not
    numerically positive definite (λ tiny against a singular A, or a NaN in A). With a batch of
    systems the fallback is chosen per system: a system whose factor is finite keeps its
    Cholesky step whatever the others do, so a batched solve equals the one-at-a-time solve.

    ``cholesky_solve(m, b) -> (x, ok)`` is the Cholesky kernel, ok per system: the namespace's
    (``xp.cholesky_solve_or_nan``) by default; ``UnrolledCholeskySolver`` and the Keras step
    (host LAPACK for large systems on a CPU) pass their own.
    """
    return solve_normal_checked(a, g, lam, d, cholesky_solve=cholesky_solve, xp=xp)[0]


def solve_normal_checked(a, g, lam, d, *, cholesky_solve=None, xp=None):
    """``(δ, failed)``: ``solve_normal``'s step and, per system (…,), whether its Cholesky
    factorisation failed so that the eigen route gave the step (the executors count these:
    the Keras logs' ``cholesky_failures``)."""
    xp = xp or array_namespace(a, g, lam, d)
    cholesky_solve = cholesky_solve or xp.cholesky_solve_or_nan
    inv_sqrt_d = 1.0 / xp.sqrt(d)
    a_s = a * xp.expand_dims(inv_sqrt_d, -1) * xp.expand_dims(inv_sqrt_d, -2)
    n = a.shape[-1] if a.shape[-1] is not None else xp.shape(a)[-1]
    m = a_s + xp.expand_dims(lam, (-1, -2)) * xp.eye(n, dtype=a.dtype)
    g_s = g * inv_sqrt_d
    z, ok = cholesky_solve(m, g_s)
    step = -z * inv_sqrt_d

    def by_cholesky():
        return step

    def per_system():
        eigen = _eigen_solve(_eigen_factor_normal(a, g, d, xp), lam, xp)
        return xp.where(xp.expand_dims(ok, -1), step, eigen)

    return xp.cond(xp.all(ok), by_cholesky, per_system), xp.logical_not(ok)


def _never_failed(lam, xp):
    """(…,) False: a solver without a Cholesky factorisation never falls back."""
    return xp.less(lam, float("-inf"))


#: Largest n for which ``UnrolledCholeskySolver`` writes the factorisation out entry by entry
#: (its graph grows as n³/6); larger systems use the Cholesky kernel.
UNROLL_MAX_N = 12


def _unrolled_cholesky_solve(m, b, xp=None):
    """(x, ok): m x = b for symmetric positive definite m (…, n, n), n static and small.

    The Cholesky factor m = L Lᵀ (row by row, Cholesky-Banachiewicz:
    Lᵢₖ = (mᵢₖ − Σ_{q<k} LᵢqLₖq) / Lₖₖ,  Lᵢᵢ = √(mᵢᵢ − Σ_{q<i} Lᵢq²)), then L y = b and
    Lᵀ x = y, all written as elementwise operations on the batch: n³/6 multiply-adds, no
    per-matrix kernel call. ``ok`` is False for a system with a non-positive or non-finite
    pivot (the matrix is not numerically positive definite), as for LAPACK's ``potrf``.
    """
    xp = xp or array_namespace(m, b)
    n = m.shape[-1]
    if n is None or n > UNROLL_MAX_N:
        return xp.cholesky_solve_or_nan(m, b)
    low = [[None] * n for _ in range(n)]
    pivots = []
    for i in range(n):
        for k in range(i + 1):
            acc = m[..., i, k]
            for q in range(k):
                acc = acc - low[i][q] * low[k][q]
            if i == k:
                pivots.append(acc)
                low[i][i] = xp.sqrt(acc)
            else:
                low[i][k] = acc / low[k][k]
    y = []
    for i in range(n):
        acc = b[..., i]
        for q in range(i):
            acc = acc - low[i][q] * y[q]
        y.append(acc / low[i][i])
    x = [None] * n
    for i in reversed(range(n)):
        acc = y[i]
        for q in range(i + 1, n):
            acc = acc - low[q][i] * x[q]
        x[i] = acc / low[i][i]
    x = xp.stack(x, axis=-1)
    piv = xp.stack(pivots, axis=-1)
    ok = xp.logical_and(xp.all(xp.greater(piv, 0.0), axis=-1),
                        xp.all(xp.isfinite(x), axis=-1))
    return x, ok


@dataclasses.dataclass(frozen=True)
class CholeskySolver:
    """Cholesky of the normal equations per λ (fastest for many parameters).

    Args:
        kernel: the Cholesky kernel ``(m, b) -> (x, ok)``; None: the array namespace's
            (``xp.cholesky_solve_or_nan``). The Keras step passes the host's LAPACK for large
            systems on a CPU (``_backend/tensorflow/linalg.host_cholesky_solve``).
    """

    name: str = "cholesky"
    kernel: Any = None

    def factor(self, j, r, d, xp=None) -> NormalFactor:
        return _normal_from_jacobian(j, r, d, xp or array_namespace(j, r, d))

    def factor_normal(self, a, g, d, xp=None) -> NormalFactor:
        return NormalFactor(a=a, g=g, d=d)

    def solve(self, fac: NormalFactor, lam, xp=None):
        return self.solve_checked(fac, lam, xp)[0]

    def solve_checked(self, fac: NormalFactor, lam, xp=None):
        """``(δ, failed)``: the step, and per system whether the Cholesky factor of
        A + λD was not finite (the eigen-decomposition then gave the step)."""
        xp = xp or array_namespace(fac.a, lam)
        return solve_normal_checked(fac.a, fac.g, lam, fac.d, xp=xp,
                                    cholesky_solve=lambda m, b: self.cholesky_solve(m, b, xp))

    def spectrum(self, fac: NormalFactor, xp=None) -> Spectrum:
        xp = xp or array_namespace(fac.a, fac.g)
        eig = _eigen_factor_normal(fac.a, fac.g, fac.d, xp)
        return Spectrum(w=eig.w, b=eig.qg)

    def cholesky_solve(self, m, b, xp=None):
        """(x, ok) of m x = b: ``kernel``, or the namespace's Cholesky kernel."""
        if self.kernel is not None:
            return self.kernel(m, b)
        return (xp or array_namespace(m, b)).cholesky_solve_or_nan(m, b)


@dataclasses.dataclass(frozen=True)
class UnrolledCholeskySolver(CholeskySolver):
    """Cholesky of the normal equations per λ, written out entry by entry (n ≤ 12).

    The same method as ``CholeskySolver``, for batches of small systems: the factorisation is
    elementwise arithmetic on the batch, which XLA fuses into one loop, where the batched
    LAPACK-style kernels pay a per-matrix call that dominates for a few parameters (measured
    for ``curve_fit_batch`` of 10,000 2-D Gaussians, n = 5: 1.4 times the fits per second of
    ``CholeskySolver`` under XLA, docs/batch.md).
    ``curve_fit_batch`` uses it by default.
    """

    name: str = "cholesky_unrolled"

    def cholesky_solve(self, m, b, xp=None):
        """(x, ok) of m x = b, unrolled for small static n (the kernel beyond)."""
        return _unrolled_cholesky_solve(m, b, xp)


class KernelFactor(NamedTuple):
    k: Any  # (…, m, m) J D⁻¹ Jᵀ
    j: Any
    r: Any
    inv_d: Any


def solve_kernel(j, r, lam, d, xp=None):
    """δ = −D⁻¹Jᵀ (J D⁻¹ Jᵀ + λI)⁻¹ r, the m×m form for fewer residuals than parameters.

    Equal to the normal-equation step by the push-through identity
    (JᵀJ + λD)⁻¹ Jᵀ = D⁻¹Jᵀ (J D⁻¹ Jᵀ + λI)⁻¹.
    """
    xp = xp or array_namespace(j, r, lam, d)
    return KernelSolver().solve(KernelSolver().factor(j, r, d, xp), lam, xp)


@dataclasses.dataclass(frozen=True)
class KernelSolver:
    """The m×m kernel form for m < n."""

    name: str = "kernel"

    def factor(self, j, r, d, xp=None) -> KernelFactor:
        xp = xp or array_namespace(j, r, d)
        inv_d = 1.0 / d
        k = xp.matmul(j * xp.expand_dims(inv_d, -2), xp.swapaxes(j, -1, -2))
        return KernelFactor(k=k, j=j, r=r, inv_d=inv_d)

    def solve(self, fac: KernelFactor, lam, xp=None):
        return self.solve_checked(fac, lam, xp)[0]

    def solve_checked(self, fac: KernelFactor, lam, xp=None):
        """``(δ, failed)``: the step, and per system whether the Cholesky factor of K + λI
        was not finite (the eigen-decomposition then gave y)."""
        xp = xp or array_namespace(fac.k, lam)
        ones = xp.ones_like(fac.r)
        y, failed = solve_normal_checked(fac.k, -fac.r, lam, ones, xp=xp)  # (K + λI) y = r
        return -fac.inv_d * _rmatvec(fac.j, y, xp), failed

    def spectrum(self, fac: KernelFactor, xp=None) -> Spectrum:
        # ‖√D δ‖² = yᵀ K y with y = (K + λI)⁻¹ r
        xp = xp or array_namespace(fac.k, fac.r)
        k = 0.5 * (fac.k + xp.swapaxes(fac.k, -1, -2))
        w, q = xp.eigh(k)
        w = xp.maximum(w, 0.0)
        return Spectrum(w=w, b=xp.sqrt(w) * _rmatvec(q, fac.r, xp))


_SOLVERS = {"svd": SVDSolver, "eigen": EigenSolver, "cholesky": CholeskySolver,
            "cholesky_unrolled": UnrolledCholeskySolver, "kernel": KernelSolver}


def get_solver(solver: str | Any):
    """Resolve a solver given by name (a key of ``_SOLVERS``) or a solver object."""
    if isinstance(solver, tuple(_SOLVERS.values())):
        return solver
    if isinstance(solver, str) and solver.lower() in _SOLVERS:
        return _SOLVERS[solver.lower()]()
    raise ValueError(
        f"`solver` must be one of {sorted(_SOLVERS)} or a solver object. Received: solver={solver!r}"
    )
