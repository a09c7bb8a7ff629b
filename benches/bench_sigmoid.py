"""float32 sigmoid and silu: amber's native one-pass kernels (`ops.sigmoid`, `ops.silu`)
against the numpy stable form they replaced (`exp(-|x|)`, one division of the chosen
numerator, and for silu the product with `x`), on EfficientNet's largest silu shape and a
1M-element vector.

Each native output is checked against the float64 reference before its time counts. Times
are medians (see `timing.py`): wall milliseconds per call, and CPU milliseconds of the whole
process (threads included).

Usage: python benches/bench_sigmoid.py [--threads 1 2]
"""

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import median_timing  # noqa: E402

SHAPES = [(8, 48, 48, 96), (1_000_000,)]


def numpy_sigmoid(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1, e) / (1 + e)


def numpy_silu(x):
    return x * numpy_sigmoid(x)


def run_here():
    from amber import ops

    rng = np.random.default_rng(0)
    for shape in SHAPES:
        x = rng.normal(scale=4.0, size=shape).astype(np.float32)
        want = 1.0 / (1.0 + np.exp(-x.astype(np.float64)))
        for name, native, old, ref in [("sigmoid", ops.sigmoid, numpy_sigmoid, want),
                                       ("silu", ops.silu, numpy_silu, x * want)]:
            np.testing.assert_allclose(native(x), ref, rtol=4e-7)
            old_wall, old_cpu = median_timing(lambda: old(x))
            new_wall, new_cpu = median_timing(lambda: native(x))
            print(f"| {name} | {'x'.join(map(str, shape))} | {old_wall * 1e3:.2f} ms | "
                  f"{new_wall * 1e3:.2f} ms ({new_cpu * 1e3:.2f} CPU) | {old_wall / new_wall:.1f}x |",
                  flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=None,
                        help="AMBER_NUM_THREADS values to run (one subprocess each)")
    args = parser.parse_args()
    if not args.threads:
        run_here()
        return
    for threads in args.threads:
        print(f"AMBER_NUM_THREADS={threads}", flush=True)
        env = dict(os.environ, AMBER_NUM_THREADS=str(threads))
        subprocess.run([sys.executable, __file__], env=env, check=True)


if __name__ == "__main__":
    main()
