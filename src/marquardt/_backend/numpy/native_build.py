"""A minimal C build for the native executor's pieces: compile once, cache on disk, load.

A stand-in for the native executor's loader (branch ``cstep``): the source is compiled with
the system's C compiler (``$CC``, else ``cc``, ``gcc``, ``clang``) into a shared library named
by the hash of the source and the flags, kept in a cache folder (``$MARQUARDT_NATIVE_CACHE``,
else ``~/.cache/marquardt/native``), and loaded with ``ctypes``. Without a compiler
``compiler()`` is None and the callers keep their Python paths.

Flags: ``-O0 -ffp-contract=off``. Contraction would fuse a·b + c into one rounding; and at
``-O1`` and above GCC may swap the operands of a commutative sum, which changes which of two
NaNs an IEEE sum returns (x86 returns the first operand's), so the sign and payload of a NaN
would differ from NumPy's elementwise result (docs/benchmarks.md, the native executor's first
block). The code built here is small loops around callbacks into Python: optimisation buys
nothing measurable.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile

__all__ = ["FLAGS", "compiler", "load"]

FLAGS = ("-O0", "-ffp-contract=off", "-fPIC", "-shared")

_LOADED: dict = {}


def compiler() -> str | None:
    """The C compiler's path, or None."""
    cc = os.environ.get("CC")
    if cc:
        return shutil.which(cc)
    for name in ("cc", "gcc", "clang"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _cache_dir() -> str:
    where = os.environ.get("MARQUARDT_NATIVE_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "marquardt", "native")
    os.makedirs(where, exist_ok=True)
    return where


def load(source: str, name: str, flags: tuple[str, ...] = FLAGS) -> ctypes.CDLL:
    """The shared library built from ``source`` (compiled at the first call on this machine,
    then loaded from the cache; once per process).

    Raises:
        RuntimeError: no C compiler, or the compiler failed (its message included).
    """
    cc = compiler()
    if cc is None:
        raise RuntimeError("the native executor needs a C compiler (cc, gcc or clang) on the "
                           "PATH, or `CC`. Received: none found")
    key = hashlib.sha256("\0".join((cc, *flags, source)).encode()).hexdigest()[:20]
    lib = _LOADED.get(key)
    if lib is not None:
        return lib
    where = _cache_dir()
    path = os.path.join(where, f"{name}-{key}.so")
    if not os.path.exists(path):
        with tempfile.TemporaryDirectory(dir=where) as tmp:
            c_file = os.path.join(tmp, name + ".c")
            with open(c_file, "w") as fh:
                fh.write(source)
            built = os.path.join(tmp, name + ".so")
            done = subprocess.run([cc, *flags, "-o", built, c_file], capture_output=True,
                                  text=True)
            if done.returncode != 0:
                raise RuntimeError(f"`{cc}` could not compile {name}.c: {done.stderr.strip()}")
            os.replace(built, path)  # atomic: another process may build the same
    lib = _LOADED[key] = ctypes.CDLL(path)
    return lib
