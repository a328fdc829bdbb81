"""Generated C for the host: the system compiler, a disk cache keyed by the source, and the
BLAS/LAPACK that NumPy itself calls.

The native executor (``native_emit``, ``native_loop``) writes a fit's traced steps as C. This
module turns such a source into a loaded shared object:

* ``compiler()``: the C compiler, ``$CC`` or the first of ``cc``, ``gcc``, ``clang`` on the
  ``PATH`` (None: no compiler, and the caller keeps the Python trace);
* ``load(source)``: compiles ``source`` with ``FLAGS`` into ``cache_dir()`` under the SHA-256 of
  (source, compiler, flags), written atomically (a temporary name, then ``os.replace``, so
  that two processes compiling the same source never load half a file), and loads it with
  ``ctypes``; a second call, in this process or a later one, costs a dictionary look-up or a
  ``dlopen``. Raises ``NativeUnavailable`` where no compiler is found or compilation fails:
  callers fall back to the Python trace, the user never sees it;
* ``blas()``: the OpenBLAS that NumPy's wheel bundles (``numpy.libs``), the library NumPy's
  ``matmul`` and ``linalg`` call, and the addresses of its CBLAS ``dgemv`` and LAPACK
  ``dgesdd`` with their integer width (NumPy 2's wheels: ILP64, symbols ``scipy_cblas_dgemv64_``
  and ``scipy_dgesdd_64_``). Generated code calls these through function pointers that its
  ``init`` receives, so that a product or an SVD is the very kernel (the same CPU dispatch,
  the same summation order) that NumPy runs: the same bits.

Why ``-O1 -ffp-contract=off``: IEEE double arithmetic written in C, one operation per
expression, gives Python's float arithmetic bit for bit only if the compiler neither fuses a
multiply and an add (``-ffp-contract=off``; no ``-ffast-math``: no reassociation) nor changes
which NaN an operation keeps. An optimiser may put the operands of a commutative ``+`` or
``*`` either way round in the instruction (gcc 12 at ``-O1`` did, and x86 keeps the first
operand's NaN where both are NaN, so the NaN's sign flipped), and may fold ``x * 1.0`` to
``x`` (a signalling NaN left unquieted): the generated code therefore writes every float
addition and multiplication as ``mq_add``/``mq_mul`` (``native_prelude``: one instruction with
its operands in the source's order), which the optimiser can neither commute nor fold.
Checked by compiling each configuration of ``benchmarks/native_flags.py`` at ``-O0`` with plain
operators (the code the tests compare with the trace) and at these flags, and running every
step on buffers seeded with NaNs of both signs and many payloads, signalling ones, ±inf, ±0
and subnormals: 7,500 step calls, the same bytes at ``-O1`` and at ``-O2``. ``-O1`` over
``-O0``: ~9% fewer instructions a warm fit of the exponential (3.02 M -> 2.79 M), the
compilation ~2.1x longer (0.18 -> 0.38 s for its configuration, 2-core machine at load ~4);
``-O2`` saves 1% more for another 1.5x of compilation. (``mq_add``/``mq_mul`` are that one
instruction on x86-64 with gcc or clang; elsewhere they choose the first operand's NaN
explicitly.)

Example:
    >>> from marquardt._backend.numpy import native_load
    >>> lib = native_load.load("double twice(double x) { return 2.0 * x; }")  # doctest: +SKIP
    >>> import ctypes; lib.twice.restype = ctypes.c_double                     # doctest: +SKIP
    >>> lib.twice(ctypes.c_double(1.5))                                        # doctest: +SKIP
    3.0
"""

from __future__ import annotations

import ctypes
import functools
import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from typing import NamedTuple

__all__ = ["FLAGS", "NativeUnavailable", "NotCompiled", "Blas", "blas", "cache_dir", "compiler",
           "load"]

#: The compiler's flags: see the module docstring for why these.
FLAGS = ("-O1", "-ffp-contract=off", "-fPIC", "-shared")

_TIMEOUT_S = 120  # a compilation that takes longer is abandoned (the Python trace serves)


class NotCompiled(Exception):
    """``load(source, compile=False)``: the source's object is in neither this process nor
    the disk cache (compiling it was not asked for)."""


class NativeUnavailable(Exception):
    """No compiled code: no compiler, a failed compilation, or no BLAS to link against."""


def compiler() -> str | None:
    """The C compiler's path: ``$CC`` if it names an executable, else ``cc``, ``gcc`` or
    ``clang`` on the ``PATH``; None where there is none."""
    named = os.environ.get("CC")
    if named:
        path = shutil.which(named.split()[0])
        if path:
            return path
    for name in ("cc", "gcc", "clang"):
        path = shutil.which(name)
        if path:
            return path
    return None


def cache_dir() -> str:
    """Where compiled objects are kept: ``$MARQUARDT_NATIVE_CACHE``, else
    ``$XDG_CACHE_HOME/marquardt/native``, else ``~/.cache/marquardt/native``."""
    named = os.environ.get("MARQUARDT_NATIVE_CACHE")
    if named:
        return named
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "marquardt", "native")


_LOADED: dict[str, ctypes.CDLL] = {}
_LOCK = threading.Lock()


def source_key(source: str, cc: str, flags: tuple = FLAGS) -> str:
    """The cache key of ``source`` compiled by ``cc`` with ``flags``."""
    h = hashlib.sha256()
    for part in (source, cc, " ".join(flags), sys.platform):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:32]


def load(source: str, compile: bool = True,  # noqa: A002 - the verb
         flags: tuple = FLAGS) -> ctypes.CDLL:
    """The shared object of ``source``: from this process's memo, the disk cache, or compiled
    now (with ``compile``), with the compiler's ``flags`` (the batch kernel's are
    ``native_kernel.FLAGS``).

    Raises:
        NotCompiled: ``compile`` is false and the object is not on disk.
        NativeUnavailable: no compiler, or it failed (its message holds the compiler's
            output).
    """
    cc = compiler()
    if cc is None:
        raise NativeUnavailable("no C compiler found (tried $CC, cc, gcc, clang)")
    key = source_key(source, cc, flags)
    lib = _LOADED.get(key)
    if lib is not None:
        return lib
    with _LOCK:
        lib = _LOADED.get(key)
        if lib is None:
            path = os.path.join(cache_dir(), key + ".so")
            if not os.path.exists(path):
                if not compile:
                    raise NotCompiled(path)
                _compile(cc, source, path, flags)
            try:
                lib = ctypes.CDLL(path)
            except OSError as e:  # a damaged file in the cache: build it again, once
                _compile(cc, source, path, flags)
                try:
                    lib = ctypes.CDLL(path)
                except OSError:
                    raise NativeUnavailable(f"cannot load {path}: {e}") from e
            _LOADED[key] = lib
    return lib


def _compile(cc: str, source: str, path: str, flags: tuple = FLAGS) -> None:
    """``source`` compiled to ``path``: in a temporary directory beside it, then renamed."""
    where = os.path.dirname(path)
    try:
        os.makedirs(where, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=where, prefix=".build-") as tmp:
            c_file = os.path.join(tmp, "step.c")
            so_file = os.path.join(tmp, "step.so")
            with open(c_file, "w") as fh:
                fh.write(source)
            done = subprocess.run([cc, *flags, "-o", so_file, c_file, "-lm"],
                                  capture_output=True, text=True, timeout=_TIMEOUT_S)
            if done.returncode != 0:
                raise NativeUnavailable(f"{cc} failed ({done.returncode}): "
                                        f"{done.stderr.strip()[-2000:]}")
            os.replace(so_file, path)
    except (OSError, subprocess.SubprocessError) as e:
        raise NativeUnavailable(f"cannot compile with {cc}: {e}") from e


class Blas(NamedTuple):
    """NumPy's BLAS/LAPACK: the library's path, whether its integers are 64-bit (ILP64),
    and the addresses of ``dgemv``, ``dsyrk``, ``dgemm`` (CBLAS) and ``dgesdd``, ``dsyevd``
    (LAPACK, Fortran convention)."""

    path: str
    ilp64: bool
    dgemv: int
    dgesdd: int
    dsyrk: int = 0
    dgemm: int = 0
    dsyevd: int = 0


# the symbol names to try, most likely first: (CBLAS prefix, suffix, LAPACK prefix, suffix,
# ILP64); a name is prefix + the routine + suffix (scipy_cblas_dgemv64_, scipy_dgesdd_64_)
_SYMBOLS = (("scipy_cblas_", "64_", "scipy_", "_64_", True),
            ("cblas_", "64_", "", "_64_", True),
            ("scipy_cblas_", "", "scipy_", "_", False),
            ("cblas_", "", "", "_", False))

#: the routines the generated code calls, CBLAS then LAPACK
_CBLAS = ("dgemv", "dsyrk", "dgemm")
_LAPACK = ("dgesdd", "dsyevd")


def _candidates() -> list[str]:
    """Library files that may be NumPy's OpenBLAS: those this process has mapped (Linux),
    then those bundled beside NumPy (``numpy.libs``, ``numpy/.dylibs``)."""
    found = []
    try:
        with open("/proc/self/maps") as fh:
            for line in fh:
                path = line.rsplit(" ", 1)[-1].strip()
                if "openblas" in os.path.basename(path).lower() and path not in found:
                    found.append(path)
    except OSError:
        pass
    import numpy

    root = os.path.dirname(numpy.__file__)
    for pattern in (os.path.join(os.path.dirname(root), "numpy.libs", "*openblas*"),
                    os.path.join(root, ".dylibs", "*openblas*")):
        found.extend(p for p in sorted(glob.glob(pattern)) if p not in found)
    # NumPy's own first: a library under NumPy's directory tree before SciPy's or another
    numpy_dir = os.path.dirname(root)
    return sorted(found, key=lambda p: not (p.startswith(os.path.join(numpy_dir, "numpy"))))


@functools.lru_cache(maxsize=1)
def blas() -> Blas:
    """NumPy's OpenBLAS and the symbols the generated code calls.

    Raises:
        NativeUnavailable: no such library or symbols (a NumPy built against another BLAS).
    """
    import numpy  # noqa: F401 — maps the library into the process first

    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)  # already loaded by NumPy: the same handle
        except OSError:
            continue
        for c_pre, c_suf, l_pre, l_suf, ilp64 in _SYMBOLS:
            try:
                found = {name: getattr(lib, c_pre + name + c_suf) for name in _CBLAS}
                found.update({name: getattr(lib, l_pre + name + l_suf) for name in _LAPACK})
            except AttributeError:
                continue
            address = {k: ctypes.cast(f, ctypes.c_void_p).value for k, f in found.items()}
            return Blas(path, ilp64, **address)
    raise NativeUnavailable("NumPy's OpenBLAS not found (no numpy.libs/*openblas* with "
                            "cblas_dgemv and dgesdd)")
