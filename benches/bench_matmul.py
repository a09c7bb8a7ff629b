"""Matmul and fused-Dense throughput of amber's kernels against numpy (its BLAS), and the
machine's measured FMA peak. One run; amber and numpy are timed in alternating rounds (each
round the median of several timed repeats, see `timing.py`), so a change in the machine's load
hits both alike; each number is the median over the rounds. The load average is printed
before and after.

    python benches/bench_matmul.py [--quick] [--rounds N] [--json out.json]

Build the extension with `maturin develop --release` first. For a single-core comparison run it with
AMBER_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1. The machine may be shared: the
peak is measured on 1 and on all threads, so contention shows up as a 2-thread peak below
twice the 1-thread one.
"""

import argparse
import json
import os
import statistics
import time

import numpy as np

from timing import median_seconds

import amber._native as native

ROUNDS = 3

# Pause after each library's round before timing the other. OpenBLAS's idle threads keep
# polling for a while after a call (OPENBLAS_THREAD_TIMEOUT sets how long), so a round
# started right after numpy's had the second core taken: amber's 256^3 product measured 80-95
# GFLOP/s in such rounds and 150-170 in the others. amber's own workers spin for 200 us.
SETTLE_SECONDS = 0.3


def paired_seconds(ours, theirs, rounds=None):
    """Median wall seconds per call of `ours` and `theirs`, timed in alternating rounds, each
    round started with the other library's threads idle (see SETTLE_SECONDS)."""
    mine, other = [], []
    for _ in range(rounds or ROUNDS):
        mine.append(median_seconds(ours, min_time=0.1))
        time.sleep(SETTLE_SECONDS)
        other.append(median_seconds(theirs, min_time=0.1))
        time.sleep(SETTLE_SECONDS)
    return statistics.median(mine), statistics.median(other)


def blas_name():
    try:
        config = np.show_config(mode="dicts")
        return config["Build Dependencies"]["blas"]["name"]
    except Exception:  # older numpy: no dict mode
        return "unknown"


def placed(values, offset):
    """A copy of ``values`` whose data starts ``offset`` bytes past a 64-byte boundary."""
    raw = np.empty(values.nbytes + 128, np.uint8)
    start = -raw.__array_interface__["data"][0] % 64 + offset
    array = raw[start:start + values.nbytes].view(values.dtype).reshape(values.shape)
    array[...] = values
    return array


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer sizes")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="alternating amber/numpy rounds per case")
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()
    rounds = args.rounds
    rng = np.random.default_rng(0)
    results = {
        "isa": native.kernel_isa(),
        "blas": blas_name(),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
        "threads": os.cpu_count(),
        "AMBER_NUM_THREADS": os.environ.get("AMBER_NUM_THREADS"),
        "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
        "load_average_before": os.getloadavg(),
    }
    print(f"kernel ISA {results['isa']}, numpy BLAS {results['blas']}, OPENBLAS_CORETYPE={results['OPENBLAS_CORETYPE']}")
    print("load average before: " + ", ".join(f"{v:.2f}" for v in results["load_average_before"]))

    peaks = {}
    for isa in [i for i in native.supported_isas() if i != "generic"]:
        for threads in sorted({1, os.cpu_count() or 1}):
            runs = [native.peak_f32_flops(isa, threads, 50_000_000) for _ in range(5)]
            peaks[f"{isa}x{threads}"] = statistics.median(runs) / 1e9
    results["peak_gflops"] = peaks
    print("FMA peak GFLOP/s:", ", ".join(f"{k} {v:.1f}" for k, v in peaks.items()))

    print(f"\n{'square':>8} {'dtype':>8} {'amber':>9} {'numpy':>9} {'ratio':>6}  (GFLOP/s)")
    sizes = [64, 256, 1024] if args.quick else [64, 128, 256, 512, 1024, 2048]
    squares = []
    for dtype in (np.float32, np.float64):
        for n in sizes:
            if dtype == np.float64 and n > 1024:
                continue
            a = rng.standard_normal((n, n)).astype(dtype)
            b = rng.standard_normal((n, n)).astype(dtype)
            out = np.empty((n, n), dtype)
            flops = 2.0 * n**3
            ours_s, theirs_s = paired_seconds(lambda: native.matmul(a, b, out=out), lambda: np.matmul(a, b, out=out), rounds)
            ours, theirs = flops / ours_s / 1e9, flops / theirs_s / 1e9
            squares.append({"n": n, "dtype": np.dtype(dtype).name, "amber": ours, "numpy": theirs})
            print(f"{n:>8} {np.dtype(dtype).name:>8} {ours:>9.1f} {theirs:>9.1f} {ours / theirs:>6.2f}")
    results["squares"] = squares

    # The kernel's placement decides how amber reads it: amber's own variables start on 64-byte
    # boundaries (`backend.allocator`); a plain numpy array, or one mapped from a file Keras
    # wrote, may start 16 bytes past one. Both are timed; numpy packs either the same way.
    print(f"\n{'batch':>6} {'shape':>8} {'amber dense':>12} {'w +16 B':>8} {'numpy 3 ops':>12} {'speedup':>8}"
          f" {'w +16 B':>8} {'amber mm':>9} {'numpy mm':>9}  (us)")
    dense = []
    for din, dout in [(784, 64), (64, 64), (64, 10), (4096, 4096)]:
        for batch in [1, 32, 256] if din == 4096 else [1, 32, 256, 1024]:
            x = rng.standard_normal((batch, din)).astype(np.float32)
            values = rng.standard_normal((din, dout)).astype(np.float32)
            w, w_off = placed(values, 0), placed(values, 16)
            bias = rng.standard_normal(dout).astype(np.float32)
            fused, three = paired_seconds(lambda: native.dense(x, w, bias, "relu"), lambda: np.maximum(x @ w + bias, 0), rounds)
            fused_off, _ = paired_seconds(lambda: native.dense(x, w_off, bias, "relu"), lambda: np.maximum(x @ w + bias, 0), rounds)
            mm_ours, mm_numpy = paired_seconds(lambda: native.matmul(x, w), lambda: x @ w, rounds)
            dense.append({"batch": batch, "in": din, "out": dout, "amber_dense_us": fused * 1e6,
                          "amber_dense_kernel_16_bytes_off_us": fused_off * 1e6,
                          "numpy_three_ops_us": three * 1e6, "amber_matmul_us": mm_ours * 1e6,
                          "numpy_matmul_us": mm_numpy * 1e6})
            print(f"{batch:>6} {f'{din}->{dout}':>8} {fused * 1e6:>12.1f} {fused_off * 1e6:>8.1f} {three * 1e6:>12.1f}"
                  f" {three / fused:>8.2f} {three / fused_off:>8.2f} {mm_ours * 1e6:>9.1f} {mm_numpy * 1e6:>9.1f}")
            del w, w_off
    results["dense_relu_f32"] = dense
    results["load_average_after"] = os.getloadavg()
    print("\nload average after: " + ", ".join(f"{v:.2f}" for v in results["load_average_after"]))

    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
