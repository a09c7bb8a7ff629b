"""Write throughput of amber's HDF5 writer against h5py (libhdf5) and against `dd` writing a
file of the same size: eight 4096x4096 float32 arrays (537 MB), median of N runs each. Then the
metadata-heavy case: a Keras-like tree of 20,000 small datasets (2,000 `vars` groups with a
`name` attribute each), amber vs h5py.

amber's `write` flushes the file to disk (fsync) before renaming it into place, so each
alternative is timed both without and with a flush to disk.

Run: `maturin develop --release && python benches/bench_h5_write.py [--runs 3] [--dir DIR]`.
"""

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from amber._native import H5Writer

COUNT, SIDE = 8, 4096


def timed_round_robin(cases, runs, cleanup):
    """Median seconds per case; the cases take turns so background load hits them alike."""
    times = {name: [] for name in cases}
    for _ in range(runs):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
            cleanup()
    return {name: statistics.median(t) for name, t in times.items()}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", default=None, help="folder for the output files (default: a temp folder)")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((SIDE, SIDE), dtype=np.float32) for _ in range(COUNT)]
    total = sum(a.nbytes for a in arrays)
    out_dir = Path(args.dir or tempfile.mkdtemp(prefix="amber-bench-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "bench.weights.h5"

    def cleanup():
        target.unlink(missing_ok=True)

    def amber_write():
        w = H5Writer()
        for i, a in enumerate(arrays):
            w.create_dataset(f"layers/dense_{i}/vars/0", a)
        w.write(str(target))

    def h5py_write(fsync):
        def run():
            with h5py.File(target, "w") as f:
                for i, a in enumerate(arrays):
                    f.create_dataset(f"layers/dense_{i}/vars/0", data=a)
            if fsync:
                fd = os.open(target, os.O_RDONLY)
                os.fsync(fd)
                os.close(fd)

        return run

    def dd_write(fsync):
        count = total // (4 << 20)
        cmd = ["dd", "if=/dev/zero", f"of={target}", "bs=4M", f"count={count}", "status=none"]
        if fsync:
            cmd.append("conv=fsync")
        return lambda: subprocess.run(cmd, check=True)

    cases = {
        "amber H5Writer.write (fsync + rename)": amber_write,
        "h5py (no fsync)": h5py_write(False),
        "h5py + fsync": h5py_write(True),
        "dd bs=4M (no fsync)": dd_write(False),
        "dd bs=4M conv=fsync": dd_write(True),
    }
    results = timed_round_robin(cases, args.runs, cleanup)
    print(f"{COUNT} x {SIDE}x{SIDE} float32 = {total / 1e6:.0f} MB, median of {args.runs}")
    for name, secs in results.items():
        print(f"  {name:40s} {secs:7.3f} s  {total / secs / 1e9:6.2f} GB/s")

    small = np.ones(16, np.float32)

    def amber_many():
        w = H5Writer()
        for i in range(20_000):
            w.create_dataset(f"layers/l{i // 10}/vars/{i % 10}", small)
            if i % 10 == 0:
                w.set_attr(f"layers/l{i // 10}/vars", "name", f"layer_{i // 10}")
        w.write(str(target))

    def h5py_many():
        with h5py.File(target, "w") as f:
            for i in range(20_000):
                f.create_dataset(f"layers/l{i // 10}/vars/{i % 10}", data=small)
                if i % 10 == 0:
                    f[f"layers/l{i // 10}/vars"].attrs["name"] = f"layer_{i // 10}"

    many = timed_round_robin({"amber H5Writer.write": amber_many, "h5py": h5py_many}, args.runs, cleanup)
    print(f"20,000 datasets of 16 float32 in 2,000 named groups, median of {args.runs}")
    for name, secs in many.items():
        print(f"  {name:40s} {secs:7.3f} s")
    if not args.dir:
        out_dir.rmdir()


if __name__ == "__main__":
    main()
