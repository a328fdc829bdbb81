"""Cost of one Levenberg-Marquardt iteration against the BLAS floor, and its peak memory.

For tanh MLPs of about 500 and 5,000 weights on 10,000 and 100,000 samples, the time of one
full-batch LM iteration (``batch_size="full"``) (Jacobian, JᵀJ, solve, candidate evaluation; the best of the epochs
after the first, which includes tracing, with the λ attempts that epoch made) is compared with
the floor set by BLAS on the same sizes in the same run: NumPy's ``J.T @ J`` (float32, a syrk)
plus SciPy's Cholesky of the P×P float64 matrix (best of 10 at ~500 weights, of 3 at ~5,000).
A second floor does the same work with the engine's own TensorFlow kernels (``TF floor``): the
chunked, blocked JᵀJ of a Keras iteration and its Cholesky, so that the table separates what
TensorFlow's kernels cost against BLAS (``TF/BLAS``) from what the iteration adds to them
(``iter/TF``: the Jacobian, Jᵀr, the candidate's forward pass, the LM logic and Keras' epoch).

Peak memory of a full-batch iteration with about 5,000 weights on 1,000,000 residuals (J
alone would take 20 GB in float32) is measured in a fresh child process as its peak resident set
size (Linux ``VmHWM``, which, unlike ``ru_maxrss``, is not inherited from the parent that forked
it), and separately the part the fit added on top of the peak after importing TensorFlow,
building the data and the model.

    python benchmarks/iteration_cost.py            # all four sizes + the 1,000,000-residual
                                                   # memory run (tens of minutes on 2 cores)
    python benchmarks/iteration_cost.py --quick    # ~500 weights on 10k and 100k samples, and
                                                   # the memory run on 20,000 residuals
    python benchmarks/iteration_cost.py --memory-only   # only the 1,000,000-residual run
    python benchmarks/iteration_cost.py --no-memory     # only the four timed sizes

Targets (issue): iteration within 1.5× of the BLAS floor; peak memory of the 1,000,000-residual
run under 2 GB.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np

# hidden widths giving ~500 and ~5,000 weights for 1 input and 1 output
NETWORKS = {"~500": (20, 20), "~5000": (70, 70)}


def _network(hidden):
    import keras

    keras.utils.set_random_seed(0)
    layers = [keras.Input((1,))] + [keras.layers.Dense(h, "tanh") for h in hidden]
    return keras.Sequential(layers + [keras.layers.Dense(1)])


def lm_iteration_time(hidden, n, epochs):
    import keras

    import marquardt.keras as mk

    x = np.linspace(-1, 1, n, dtype=np.float32)[:, None]
    y = np.sinc(10 * x).astype(np.float32)
    net = _network(hidden)
    times = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append((time.perf_counter() - self.t, logs.get("attempts", 1)))

    # batch_size="full": the default ("auto") would train these sizes in mini-batches
    mk.fit(net, x, y, loss="mse", epochs=epochs, verbose=0, callbacks=[Clock()],
           batch_size="full")
    p = net.count_params()
    steady = times[1:] or times
    # the best epoch after the first (which traces), as the floor is the best of its repeats:
    # on a shared machine noise only ever adds time (epochs of one run varied by 2x)
    return p, *min(steady)


def blas_floor(p, n, repeat=3):
    from scipy.linalg import cho_factor

    rng = np.random.default_rng(0)
    best = np.inf
    rows = min(n, 20_000)  # time a slab and scale: the product is linear in the rows
    j = rng.standard_normal((rows, p), dtype=np.float32)
    for _ in range(repeat):
        t0 = time.perf_counter()
        a = j.T @ j
        t1 = time.perf_counter()
        cho_factor(a.astype(np.float64) + p * np.eye(p))
        t2 = time.perf_counter()
        best = min(best, (t1 - t0) * n / rows + (t2 - t1))
    return best


def tensorflow_floor(p, n, repeat=3):
    """The BLAS floor's work, JᵀJ and one Cholesky, done by the engine's own TensorFlow kernels.

    A random float32 J (a slab of whole chunks, at most 20,000 rows, scaled like ``blas_floor``)
    goes through ``summed_normal_equations``, the chunked, blocked JᵀJ of a Keras iteration
    (without Jᵀr, which the BLAS floor does not form either), in the chunk size the engine plans
    for P and compiled as in a step; then A + P·I is factored and solved by the Cholesky kernel
    the step uses for P (TensorFlow's, or the host's LAPACK from P = 1,500). The iteration adds the
    Jacobian, Jᵀr, the candidate's forward pass and the LM logic to this: ``iter/TF`` is what
    those cost, and ``TF/BLAS`` is the gap between TensorFlow's kernels and NumPy's ``syrk`` plus
    SciPy's Cholesky on the same sizes.
    """
    import tensorflow as tf

    from marquardt._backend.tensorflow import linalg
    from marquardt._backend.tensorflow.keras_jacobian import summed_normal_equations
    from marquardt.keras._memory import plan_memory
    from marquardt.keras._options import default_memory_limit

    chunk = plan_memory(p, 1, default_memory_limit()).chunk_rows
    # a slab of whole chunks, so that scaling it does not repeat a partial chunk; the per-call
    # work (zeroing and assembling A: ~50 ms at P = 5,181) is scaled with it, ~1% of the time
    rows = min(n, max(chunk, 20_000 // chunk * chunk))
    rng = np.random.default_rng(0)
    data = tf.constant(rng.standard_normal((rows, p), dtype=np.float32))
    solve = (linalg.host_cholesky_solve if linalg.use_host_lapack(p, jit_compile=False)
             else linalg.cholesky_solve_or_nan)
    gram = tf.function(lambda d: summed_normal_equations(lambda c: (c, None), d, p, chunk,
                                                          tf.float64))
    factor = tf.function(lambda a: solve(a + p * tf.eye(p, dtype=a.dtype), a[0])[0])
    factor(gram(data)[0]).numpy()  # traces both
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        a = gram(data)[0]
        a.numpy()
        t1 = time.perf_counter()
        factor(a).numpy()
        t2 = time.perf_counter()
        best = min(best, (t1 - t0) * n / rows + (t2 - t1))
    return best


def _vm_kib(field: str) -> int:
    """A ``VmHWM``/``VmRSS`` line of /proc/self/status, in KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status (Linux only)")


def _memory_child(hidden, n):
    """Runs in a child: peak RSS of fitting 1 iteration, and the peak before fitting."""
    import marquardt.keras as mk

    x = np.linspace(-1, 1, n, dtype=np.float32)[:, None]
    y = np.sinc(10 * x).astype(np.float32)
    net = _network(hidden)
    base = _vm_kib("VmHWM")
    start = time.perf_counter()
    mk.fit(net, x, y, loss="mse", epochs=1, verbose=0, batch_size="full")  # one full batch
    seconds = time.perf_counter() - start
    print(json.dumps({"params": net.count_params(), "base_kib": base,
                      "peak_kib": _vm_kib("VmHWM"), "seconds": seconds}))


def peak_memory(hidden, n):
    out = subprocess.run([sys.executable, __file__, "--memory-child", json.dumps([hidden, n])],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--memory-only", action="store_true",
                        help="only the peak-memory run (1,000,000 residuals)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory run")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        hidden, n = json.loads(args.memory_child)
        _memory_child(tuple(hidden), n)
        return
    small = [("~500", 10_000), ("~500", 100_000)]
    sizes = small if args.quick else small + [("~5000", 10_000), ("~5000", 100_000)]
    if args.memory_only:
        sizes = []
    if sizes:
        print(f"{'network':>8s} {'P':>6s} {'samples':>8s} {'LM iter':>9s} {'attempts':>8s} "
              f"{'BLAS floor':>10s} {'ratio':>6s} {'TF floor':>9s} {'TF/BLAS':>7s} "
              f"{'iter/TF':>7s}")
    for name, n in sizes:
        hidden = NETWORKS[name]
        # the first epoch includes tracing: the best of the others; fewer at ~5000 weights
        p, t, attempts = lm_iteration_time(hidden, n, epochs=6 if name == "~500" else 4)
        # both floors the best of their repeats: more where each takes well under a second
        repeat = 10 if p < 1000 else 3
        floor = blas_floor(p, n, repeat)
        tf_floor = tensorflow_floor(p, n, repeat)
        print(f"{name:>8s} {p:6d} {n:8d} {t:8.3f}s {attempts:8.0f} {floor:9.3f}s "
              f"{t / floor:5.2f}x {tf_floor:8.3f}s {tf_floor / floor:6.2f}x "
              f"{t / tf_floor:6.2f}x", flush=True)
    if sizes:
        print("ratio: LM iteration time / BLAS floor (NumPy JᵀJ float32 + SciPy Cholesky "
              "float64). TF floor: the same JᵀJ and Cholesky by the engine's own "
              "TensorFlow kernels. A shared machine inflates all of them.")
    if args.no_memory:
        return
    n_mem = 20_000 if args.quick else 1_000_000
    mem = peak_memory(NETWORKS["~5000"], n_mem)
    gib = 1 / (1 << 20)
    print(f"\npeak memory, full batch, P={mem['params']}, {n_mem:,} residuals: "
          f"{mem['peak_kib'] * gib:.2f} GiB peak RSS (target < 2 GB); {mem['base_kib'] * gib:.2f} GiB "
          f"before the fit (TensorFlow, data, model), so the iteration added "
          f"{(mem['peak_kib'] - mem['base_kib']) * gib:.2f} GiB; J would be "
          f"{n_mem * mem['params'] * 4 / (1 << 30):.1f} GiB in float32; the one-epoch fit took "
          f"{mem['seconds']:.0f} s")


if __name__ == "__main__":
    main()
