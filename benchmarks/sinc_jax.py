"""sinc(10x) to MSE 1e-4: marquardt on Keras' JAX backend, marquardt on TensorFlow and
torch-levenberg-marquardt 1.2.3, side by side in one run (issue #19, result 3).

The problem is ``benchmarks/sinc.py``'s: y = sinc(10x) on 20,000 points, a 1-20-20-1 tanh
network (P = 481), the training-set MSE measured after every epoch off the clock. marquardt
trains full batch (one LM iteration on all 20,000 points per epoch, A and g in float64:
``jax_enable_x64`` is set for the JAX run); torch-levenberg-marquardt at its defaults, batch
1000 reshuffled each epoch, 2 threads (``sinc.py``'s ``run_torchlm``). Every run starts from
the same weights (``sinc.py --numpy-init``: Glorot uniform from NumPy's generator per seed).

Keras fixes its backend when it is first imported, so every (method, seed) runs
``sinc.py --json`` in a fresh process of its own (``KERAS_BACKEND`` set in its environment:
``jax``, ``tensorflow``; torch-LM's process is ``sinc.py``'s usual one, on TensorFlow, where
Keras only builds the initial weights),
the order of the three rotated from seed to seed so that a slow spell of a shared machine does
not fall on one method. A run ends at MSE 1e-7 or after ``--budget`` seconds of training.

Reported per method, medians over seeds: time and epochs to MSE 1e-4 and 1e-7, the time per
epoch after the first, the first epoch's excess over it (for marquardt the tracing and XLA /
TensorFlow compilation of the train step), the process' peak RSS, and the process' wall time
(imports included); then the ratios: each reference's time to 1e-4 over marquardt-on-JAX's,
and JAX's epoch over TensorFlow's.

    python benchmarks/sinc_jax.py                             # 3 seeds, 60 s budget per run
    python benchmarks/sinc_jax.py --seeds 1 --budget 30       # short
    python benchmarks/sinc_jax.py --json sinc_jax.json        # every trace kept

With the defaults the whole run takes at most 9 x (budget + start-up) seconds: about 12
minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

#: (label, KERAS_BACKEND of its process, sinc.py's method name)
RUNS = (
    ("marquardt JAX", "jax", "marquardt (full batch)"),
    ("marquardt TF", "tensorflow", "marquardt (full batch)"),
    ("torch-LM", "tensorflow", "torch-levenberg-marquardt"),
)
TARGETS = (1e-4, 1e-7)


def run_one(label, backend, method, seed, args):
    """One method on one seed in a fresh process; its ``sinc.py --json`` record, with the
    process' wall time added (None and the output on failure)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "run.json")
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
        src = str(ROOT / "src")
        env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
        cmd = [sys.executable, str(HERE / "sinc.py"), "--seeds", "1", "--first-seed", str(seed),
               "--budget", str(args.budget), "--networks", args.network, "--methods", method,
               "--numpy-init", "--stop-mse", str(min(TARGETS)), "--json", out]
        start = time.perf_counter()
        try:
            done = subprocess.run(cmd, env=env, capture_output=True, text=True,
                                  timeout=args.budget + 300)
        except subprocess.TimeoutExpired:
            print(f"  {label}, seed {seed}: timed out", flush=True)
            return None
        wall = time.perf_counter() - start
        if done.returncode != 0 or not os.path.exists(out):
            print(f"  {label}, seed {seed}: failed\n{done.stdout[-2000:]}{done.stderr[-4000:]}",
                  flush=True)
            return None
        with open(out) as fh:
            record = json.load(fh)["runs"][0]
    record.update(label=label, keras_backend=backend, process_wall_s=wall)
    for target in TARGETS:
        hit = next(((t, i + 1) for i, (t, mse) in enumerate(record["trace"]) if mse <= target),
                   None)
        record[f"to_{target:g}"] = hit
    record["best_mse"] = min(mse for _, mse in record["trace"])
    return record


def median_hit(runs, target):
    """(seconds, epochs) medians over the runs that reached ``target``; None unless more than
    half of them did."""
    hits = [r[f"to_{target:g}"] for r in runs if r[f"to_{target:g}"] is not None]
    if 2 * len(hits) <= len(runs):
        return None
    return statistics.median(h[0] for h in hits), statistics.median(h[1] for h in hits)


def median_of(runs, key):
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def fmt(value, spec, none="-"):
    return none if value is None else format(value, spec)


def report(results, budget):
    print(f"\n{'method':14s} {'to 1e-4':>14s} {'to 1e-7':>14s} {'best MSE':>9s} "
          f"{'epoch':>8s} {'1st-epoch':>10s} {'peak RSS':>9s} {'process':>8s}")
    print(f"{'':14s} {'s / epochs':>14s} {'s / epochs':>14s} {'':>9s} "
          f"{'s':>8s} {'excess s':>10s} {'MB':>9s} {'wall s':>8s}")
    for label, runs in results.items():
        if not runs:
            print(f"{label:14s} no run completed")
            continue
        cells = []
        for target in TARGETS:
            hit = median_hit(runs, target)
            cells.append("-" if hit is None else f"{hit[0]:6.1f} / {hit[1]:<5g}")
        best = statistics.median(r["best_mse"] for r in runs)
        print(f"{label:14s} {cells[0]:>14s} {cells[1]:>14s} {best:9.2e} "
              f"{fmt(median_of(runs, 'epoch_s'), '8.3f'):>8s} "
              f"{fmt(median_of(runs, 'overhead_s'), '10.2f'):>10s} "
              f"{fmt(median_of(runs, 'peak_rss_mb'), '9.0f'):>9s} "
              f"{fmt(median_of(runs, 'process_wall_s'), '8.1f'):>8s}")
    jax_runs = results.get("marquardt JAX") or []
    mine = median_hit(jax_runs, 1e-4)
    parts = []
    for label, runs in results.items():
        if label == "marquardt JAX" or not runs:
            continue
        theirs = median_hit(runs, 1e-4)
        if mine is None:
            parts.append(f"{label}: - (JAX did not reach 1e-4)")
        elif theirs is None:
            parts.append(f"{label}: >{budget / mine[0]:.2f}x (did not reach 1e-4 in {budget:g} s)")
        else:
            parts.append(f"{label}: {theirs[0] / mine[0]:.2f}x ({theirs[0]:.1f} s against "
                         f"{mine[0]:.1f} s)")
    print("\ntime to MSE 1e-4, reference over marquardt JAX: " + "; ".join(parts))
    tf_epoch = median_of(results.get("marquardt TF") or [], "epoch_s")
    jax_epoch = median_of(jax_runs, "epoch_s")
    if tf_epoch and jax_epoch:
        print(f"epoch time, JAX over TensorFlow (full batch, one LM iteration): "
              f"{jax_epoch / tf_epoch:.2f}x ({jax_epoch:.3f} s against {tf_epoch:.3f} s)")
    print("Epochs differ in kind: a marquardt epoch is one LM iteration on 20,000 points, a "
          "torch-LM epoch 20 LM steps on batches of 1,000. '1st-epoch excess' is the first "
          "epoch's time less the median epoch. Peak RSS is the whole process' (imports "
          "included). Timings on a loaded machine are inflated and noisy; compare the rows of "
          "one run only.")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budget", type=float, default=60.0, help="seconds of training per run")
    parser.add_argument("--network", default="20-20", help="hidden widths (sinc.py's spelling)")
    parser.add_argument("--methods", default=",".join(label for label, _, _ in RUNS),
                        help="comma-separated labels of the runs to make (default: all three)")
    parser.add_argument("--json", metavar="PATH", help="write every run's record to PATH")
    args = parser.parse_args(argv)
    chosen = [run for run in RUNS if run[0] in args.methods.split(",")]
    print(f"sinc(10x), 20,000 points, 1-{args.network}-1 tanh, {args.seeds} seed(s), budget "
          f"{args.budget:g} s per run, one process per run, {os.cpu_count()} CPUs", flush=True)
    results = {label: [] for label, _, _ in chosen}
    start = time.perf_counter()
    for seed in range(args.seeds):
        shift = seed % len(chosen)
        for label, backend, method in chosen[shift:] + chosen[:shift]:
            record = run_one(label, backend, method, seed, args)
            if record is not None:
                results[label].append(record)
                hit = record["to_0.0001"]
                print(f"  seed {seed} {label:14s} to 1e-4: "
                      f"{'-' if hit is None else f'{hit[0]:.1f} s / {hit[1]} epochs'}, "
                      f"epoch {fmt(record['epoch_s'], '.3f')} s, first-epoch excess "
                      f"{fmt(record['overhead_s'], '.2f')} s, best {record['best_mse']:.2e}",
                      flush=True)
    report(results, args.budget)
    print(f"(whole benchmark: {time.perf_counter() - start:.0f} s)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"budget_s": args.budget, "network": args.network, "seeds": args.seeds,
                       "results": results}, fh)


if __name__ == "__main__":
    main()
