"""``curve_fit_batch`` on Dask: many small fits streamed from an array on disk, on a cluster.

The problem is ``benchmarks/batch.py``'s 2-D Gaussian (5 parameters, 5×5 pixels, TensorFlow
model, tolerances 1e-8), K problems written to ``y.npy`` and ``p0.npy`` (float64) in a work
folder, then:

1. **in memory**: ``curve_fit_batch`` on the first ``--in-memory`` problems loaded whole, in
   this process (warm: a first call compiles), fits per second;
2. **on Dask**: a ``distributed.LocalCluster`` of ``--workers`` processes (one thread each),
   each warmed by one small fit (XLA compilation, reported apart); ``ydata`` and ``p0`` read
   lazily from the ``.npy`` files (``np.load(mmap_mode='r')`` inside a small picklable
   reader given to ``da.from_array``: a ``np.memmap`` itself would be pickled into the graph
   with all its data), chunks of ``--chunk`` problems; ``x``, ``stderr`` and ``status``
   written block by block into ``.npy`` files by the workers (``da.store``), so that no
   process holds all K results. Fits per second of wall time, and the peak resident set
   size of each worker process (``psutil`` sampled every 50 ms in a thread on the worker),
   with its value after the warm-up for comparison;
   The in-memory run's peak (this process's ``ru_maxrss``) is printed for comparison.
3. the first ``--in-memory`` results of both runs compared (bit for bit expected: each block
   is one in-memory call, and the compiled step computes a problem alike in any batch).

    python benchmarks/dask_batch.py --problems 1000000             # about 1.2 GB on disk
    python benchmarks/dask_batch.py --problems 10000000 --in-memory 1000000

Memory per worker is bounded by the chunk, not by K: a block of c problems holds its data
(c × 25 floats), its inputs and the in-memory result's fields (about 1.4 kB per fit,
docs/batch.md), while the compiled step's slots are fixed (``chunk_size``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import batch  # noqa: E402  (benchmarks/batch.py: the 2-D Gaussian and its data)

TOL = batch.TOL
PIECE = 100_000  # problems generated and written at a time


class NpyRows:
    """A ``.npy`` file as a lazy array for ``da.from_array``: pickles as its path, opens the
    file as a memory map where a block is read, and returns the block's rows as an array."""

    def __init__(self, path: str):
        self.path = path
        header = np.load(path, mmap_mode="r")
        self.shape, self.dtype, self.ndim = header.shape, header.dtype, header.ndim

    def __getitem__(self, index):
        return np.array(np.load(self.path, mmap_mode="r")[index])


class NpyWriter:
    """A ``.npy`` file as a ``da.store`` target: pickles as its path; each block is written
    through a memory map opened for it."""

    def __init__(self, path: str):
        self.path = path

    def __setitem__(self, index, value):
        out = np.load(self.path, mmap_mode="r+")
        out[index] = value
        out.flush()


def write_problems(folder: str, k: int) -> float:
    """``y.npy`` (K, 25) and ``p0.npy`` (K, 5): the 2-D Gaussians of ``batch.gauss2d_data``,
    generated in pieces (seed = piece number). Returns the seconds taken."""
    from numpy.lib.format import open_memmap

    started = time.perf_counter()
    y = open_memmap(os.path.join(folder, "y.npy"), "w+", np.float64, (k, 25))
    p0 = open_memmap(os.path.join(folder, "p0.npy"), "w+", np.float64, (k, 5))
    for i, s in enumerate(range(0, k, PIECE)):
        _, y_piece, p_piece = batch.gauss2d_data(min(PIECE, k - s), seed=i)
        y[s:s + len(y_piece)], p0[s:s + len(y_piece)] = y_piece, p_piece
    y.flush()
    p0.flush()
    del y, p0
    return time.perf_counter() - started


def xy_grid() -> np.ndarray:
    return batch.gauss2d_data(1, seed=0)[0]


def in_memory(folder: str, k: int, chunk_size: int):
    """Warm fits/s of the in-memory call on the first k problems, and its result."""
    from marquardt import curve_fit_batch

    xy = xy_grid()
    y, p0 = (np.array(np.load(os.path.join(folder, name), mmap_mode="r")[:k])
             for name in ("y.npy", "p0.npy"))
    started = time.perf_counter()
    curve_fit_batch(batch.gauss2d, xy, y[:chunk_size], p0[:chunk_size], chunk_size=chunk_size,
                    **TOL)
    cold = time.perf_counter() - started
    started = time.perf_counter()
    res = curve_fit_batch(batch.gauss2d, xy, y, p0, chunk_size=chunk_size, **TOL)
    return cold, k / (time.perf_counter() - started), res


# --- on the workers ------------------------------------------------------------------------

def start_sampling(dask_worker, interval: float = 0.05) -> int:
    """Sample this worker process's RSS every ``interval`` s (a daemon thread); the peak is
    kept on the worker object (this function arrives pickled by value: its module globals
    would be a new copy at every call)."""
    import psutil

    process = psutil.Process()
    peak = dask_worker.marquardt_peak = {"rss": process.memory_info().rss, "running": True}

    def sample():
        while peak["running"]:
            peak["rss"] = max(peak["rss"], process.memory_info().rss)
            time.sleep(interval)

    threading.Thread(target=sample, daemon=True).start()
    return peak["rss"]


def stop_sampling(dask_worker) -> int:
    peak = dask_worker.marquardt_peak
    peak["running"] = False
    return peak["rss"]


def warm(model_key, f, xy, chunk_size: int) -> float:
    """One small fit, compiled under the model key the Dask tasks will use (``_same_model``):
    the blocks that follow reuse this compilation."""
    from marquardt import _dask
    from marquardt._batch import fit

    f, jac = _dask._same_model(model_key, f, "auto")
    _, y, p0 = batch.gauss2d_data(64, seed=99)
    started = time.perf_counter()
    fit(f, xy, y, p0, chunk_size=chunk_size, jac=jac, bounded=False, **TOL)
    return time.perf_counter() - started


def on_dask(folder: str, k: int, chunk: int, workers: int, chunk_size: int, memory_limit):
    import cloudpickle
    import dask.array as da
    import distributed

    from marquardt import _dask, curve_fit_batch

    cloudpickle.register_pickle_by_value(batch)  # sent as a user's script's functions are
    xy = xy_grid()
    with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                  memory_limit=memory_limit, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        key = _dask._model_key(batch.gauss2d, "auto")
        colds = client.run(warm, key, batch.gauss2d, xy, chunk_size)
        baseline = client.run(start_sampling)
        for name in ("x", "stderr", "status"):
            shape = (k, 5) if name != "status" else (k,)
            np.lib.format.open_memmap(os.path.join(folder, f"{name}.npy"), "w+",
                                      np.int32 if name == "status" else np.float64, shape)
        started = time.perf_counter()
        y = da.from_array(NpyRows(os.path.join(folder, "y.npy")), chunks=(chunk, 25))
        p0 = da.from_array(NpyRows(os.path.join(folder, "p0.npy")), chunks=(chunk, 5))
        res = curve_fit_batch(batch.gauss2d, xy, y, p0, chunk_size=chunk_size, **TOL)
        da.store([res.x, res.stderr, res.status],
                 [NpyWriter(os.path.join(folder, f"{name}.npy"))
                  for name in ("x", "stderr", "status")], lock=False)
        elapsed = time.perf_counter() - started
        peaks = client.run(stop_sampling)
    return colds, baseline, peaks, k / elapsed, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problems", type=int, default=1_000_000, help="K (default 10^6)")
    parser.add_argument("--chunk", type=int, default=100_000,
                        help="problems per Dask block (default 100,000)")
    parser.add_argument("--in-memory", type=int, default=None,
                        help="problems of the in-memory run (default min(K, 10^6))")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunk-size", type=int, default=1024,
                        help="curve_fit_batch's chunk_size (slots of the compiled step)")
    parser.add_argument("--memory-limit", default="4GiB",
                        help="each worker's memory limit (distributed's pausing/spilling)")
    parser.add_argument("--dir", default=None, help="work folder (default: a temporary one)")
    args = parser.parse_args()
    k, k_mem = args.problems, min(args.in_memory or 1_000_000, args.problems)
    folder = args.dir or tempfile.mkdtemp(prefix="marquardt-dask-")
    os.makedirs(folder, exist_ok=True)
    try:
        seconds = write_problems(folder, k)
        size = k * 30 * 8 / 1e9
        print(f"K = {k:,} 2-D Gaussians (5 parameters, 5x5 pixels) written in {seconds:.1f} s "
              f"({size:.2f} GB of y and p0) to {folder}")
        cold, rate_mem, ref = in_memory(folder, k_mem, args.chunk_size)
        import resource  # this process's peak RSS so far: the in-memory run (Linux: KiB)
        peak_mem = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
        print(f"in memory, K = {k_mem:,}: {rate_mem:,.0f} fits/s warm (first call {cold:.1f} s); "
              f"peak RSS of this process {peak_mem:,.0f} MiB")
        colds, baseline, peaks, rate, elapsed = on_dask(
            folder, k, args.chunk, args.workers, args.chunk_size, args.memory_limit)
        print(f"Dask, {args.workers} worker processes x 1 thread, blocks of {args.chunk:,} "
              f"problems: {rate:,.0f} fits/s ({elapsed:.1f} s for K = {k:,}; "
              f"{rate / rate_mem:.2f}x in memory); warm-up per worker "
              + ", ".join(f"{v:.1f} s" for v in colds.values()))
        for address in peaks:
            print(f"  worker {address}: peak RSS {peaks[address] / 2**20:,.0f} MiB "
                  f"(after warm-up {baseline[address] / 2**20:,.0f} MiB)")
        x = np.load(os.path.join(folder, "x.npy"), mmap_mode="r")[:k_mem]
        status = np.load(os.path.join(folder, "status.npy"), mmap_mode="r")
        same = np.array_equal(x, ref.x) and np.array_equal(status[:k_mem], ref.status)
        print(f"first {k_mem:,} results equal to the in-memory call bit for bit: {same} "
              f"(max |dx| {np.max(np.abs(x - ref.x)):.3g}); successes "
              f"{int((status > 0).sum()):,} / {k:,}")
    finally:
        if args.dir is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
