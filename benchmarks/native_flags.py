"""Do the native steps give the same bytes at ``native_load.FLAGS`` as at ``-O0``?

For ``--count`` configurations of ``native_same.py`` (loss, Jacobian, damping, bounds,
``x_scale``; solver 'svd'), each configuration's emitted C (``native_steps``) is compiled
twice: as the reference, at ``-O0 -ffp-contract=off`` with ``mq_add``/``mq_mul`` written as
plain ``a + b`` and ``a * b`` (the code the tests compare with the Python trace), and at the
flags under test (``native_load.FLAGS`` or ``--flags``). Every step is then run ``--trials``
times on both, each time on the buffers a fit left, with random entries replaced by NaNs of
both signs and random payloads (signalling ones too), ±inf, ±0, subnormals and huge values
(the matrices, an SVD's input, get finite values: LAPACK on NaN may not return), and the
order tags of the matrices drawn at random; the buffers and the return codes are compared
byte for byte. Prints the number of step calls and how many differed (each one named).

Usage: python benchmarks/native_flags.py [--count 10] [--trials 150] [--flags "-O2 -ffp-contract=off"]
"""

from __future__ import annotations

import argparse
import ctypes
import os
import random
import re
import subprocess
import sys
import tempfile

import numpy as np

import marquardt
from marquardt._backend.numpy import native_load, native_loop, native_prelude

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import native_same  # noqa: E402

_ORDERED = re.compile(r"#if defined\(__GNUC__\) && defined\(__x86_64__\).*?#endif\n", re.S)
_PLAIN = ("static double mq_add(double a, double b) { return a + b; }\n"
          "static double mq_mul(double a, double b) { return a * b; }\n")
_SPECIAL = np.array([np.inf, -np.inf, 0.0, -0.0, 1e308, -1e-310, 5e-324, 1.0]).view(np.uint64)


def build(source: str, flags: list, path: str) -> ctypes.CDLL:
    c_file = path + ".c"
    with open(c_file, "w") as fh:
        fh.write(source)
    subprocess.run([native_load.compiler(), *flags, "-fPIC", "-shared", "-o", path, c_file,
                    "-lm"], check=True)
    lib = ctypes.CDLL(path)
    blas = native_load.blas()
    native_prelude.init(lib, blas)
    return lib


def nan(rng: random.Random) -> int:
    """A NaN's bits: random sign and payload, quiet or (30%) signalling."""
    quiet = rng.random() < 0.7
    payload = rng.getrandbits(20) | (0 if quiet else 1)
    return (rng.getrandbits(1) << 63) | (0x7ff << 52) | (int(quiet) << 51) | payload


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--trials", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--flags", default=None, help="default: native_load.FLAGS")
    args = parser.parse_args()
    flags = (args.flags.split() if args.flags else
             [f for f in native_load.FLAGS if f not in ("-fPIC", "-shared")])
    rng = random.Random(args.seed)
    chosen = list(native_same.configurations(["svd"]))
    rng.shuffle(chosen)
    done = calls = differing = 0
    tmp = tempfile.mkdtemp(prefix="native-flags-")
    for options in chosen:
        if done >= args.count:
            break
        native_loop._BUILT.clear()
        native_loop._LOOPS.clear()
        with native_loop.enabled():
            for _ in range(2):
                marquardt.least_squares(native_same.fun, [1.0, 1.0, 0.0], **options)
        built = [v for v in native_loop._BUILT.values() if v is not None]
        if not built:
            continue
        nat = built[0]
        done += 1
        reference = _ORDERED.sub(_PLAIN, nat.source)
        if reference == nat.source:
            sys.exit("mq_add/mq_mul's definition not found in the emitted source")
        ref = build(reference, ["-O0", "-ffp-contract=off"], os.path.join(tmp, f"ref{done}.so"))
        lib = build(nat.source, flags, os.path.join(tmp, f"lib{done}.so"))
        f0, i0 = nat.f_buf.copy(), nat.i_buf.copy()
        finite, tags = set(), []
        for slot in nat.layout.slots.values():
            if slot.tag >= 0:
                tags.append(slot.tag)
                if slot.buffer == "F":
                    finite.update(range(slot.offset, slot.offset + int(np.prod(slot.shape))))
        for name in nat.emitted:
            fns = [getattr(lib_, f"step_{name}") for lib_ in (ref, lib)]
            for fn in fns:
                fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
                fn.restype = ctypes.c_int
            for _ in range(args.trials):
                f, i = f0.copy(), i0.copy()
                bits = f.view(np.uint64)
                k = rng.choice([1, 2, 3, 5, 10, len(f) // 4, len(f)])
                for idx in rng.sample(range(len(f)), min(k, len(f))):
                    r = rng.random()
                    if idx in finite:
                        f[idx] = rng.choice([-1, 1]) * 10 ** rng.uniform(-5, 5)
                    elif r < 0.5:
                        bits[idx] = nan(rng)
                    elif r < 0.8:
                        bits[idx] = _SPECIAL[rng.randrange(len(_SPECIAL))]
                    else:
                        f[idx] = rng.choice([-1, 1]) * 10 ** rng.uniform(-300, 300)
                for tag in tags:
                    i[tag] = rng.getrandbits(1)
                outs = []
                for fn in fns:
                    fc, ic = f.copy(), i.copy()
                    outs.append((fn(fc.ctypes.data, ic.ctypes.data), fc.tobytes(), ic.tobytes()))
                calls += 1
                if outs[0] != outs[1]:
                    differing += 1
                    if differing <= 10:
                        print(f"differs: step {name}, {options}")
    print(f"flags {' '.join(flags)}: {done} configurations, {calls} step calls, "
          f"{differing} differing from -O0")


if __name__ == "__main__":
    main()
