"""Archive-engine benchmark: amber vs h5py, safetensors and dd on a 537 MB model's weights.

The weights are eight 4096x4096 float32 kernels (plus their biases), laid out as Keras 3 lays
out `model.weights.h5` (`layers/dense[_N]/vars/{0,1}`). One run measures, with medians of
`--repeat` runs (page cache warm: every reader reads bytes the OS already holds, so the numbers
compare parsing and copying, not the disk):

- open + index a `.keras` file and create a view of every weight (amber), against opening the
  same entry with h5py and reading each dataset;
- summing every weight through amber's views, h5py reads, `safetensors.numpy.load_file` and
  `safe_open(...).get_tensor`;
- writing the arrays as `.weights.h5` (amber `H5Writer` vs h5py) and as `.safetensors` (amber vs
  the `safetensors` package), against `dd` writing a new file of the same size.

Usage: python benches/bench_archive.py [--dir DIR] [--repeat N] [--layers 8] [--size 4096]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import zipfile

import numpy as np


def median_time(fn, repeat):
    times = []
    result = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def make_weights(layers, size):
    rng = np.random.default_rng(0)
    weights = {}
    for i in range(layers):
        key = "dense" if i == 0 else f"dense_{i}"
        weights[f"layers/{key}/vars/0"] = rng.standard_normal((size, size), dtype=np.float32)
        weights[f"layers/{key}/vars/1"] = rng.standard_normal((size,), dtype=np.float32)
    return weights


def write_h5py(path, weights):
    import h5py

    with h5py.File(path, "w") as f:
        for name, arr in weights.items():
            f.create_dataset(name, data=arr)
        for name in weights:
            f[name.rsplit("/", 1)[0]].attrs["name"] = name.split("/")[1]


def write_amber_h5(path, weights):
    from amber import _native

    w = _native.H5Writer()
    for name, arr in weights.items():
        w.create_dataset(name, arr)
    for name in weights:
        w.set_attr(name.rsplit("/", 1)[0], "name", name.split("/")[1])
    w.write(path)


def make_keras_file(path, h5_path):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
        z.writestr("config.json", json.dumps({"class_name": "Sequential", "config": {}}))
        z.write(h5_path, "model.weights.h5")


def dd_write(path, nbytes, sync):
    blocks = max(1, nbytes // (16 << 20))
    args = ["dd", "if=/dev/zero", f"of={path}", "bs=16M", f"count={blocks}", "status=none"]
    if sync:
        args.append("conv=fsync")
    subprocess.run(args, check=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default=None)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--size", type=int, default=4096)
    args = ap.parse_args()

    import h5py
    import safetensors.numpy as stnp
    from safetensors import safe_open

    from amber import _native

    tmp = args.dir or tempfile.mkdtemp(prefix="amber-bench-")
    os.makedirs(tmp, exist_ok=True)
    weights = make_weights(args.layers, args.size)
    nbytes = sum(a.nbytes for a in weights.values())
    mb = nbytes / 1e6
    print(f"weights: {len(weights)} arrays, {mb:.0f} MB; repeat={args.repeat} (medians)")
    expected_sum = sum(float(a.sum(dtype=np.float64)) for a in weights.values())

    rows = []

    def report(label, seconds, ref=None, size=None):
        extra = f"  {size / seconds / 1e9:6.2f} GB/s" if size else ""
        ratio = f"  ({ref / seconds:6.1f}x vs reference)" if ref else ""
        rows.append((label, seconds))
        print(f"{label:58s} {seconds * 1e3:10.2f} ms{extra}{ratio}")

    h5_ref = os.path.join(tmp, "ref.weights.h5")
    h5_amb = os.path.join(tmp, "amber.weights.h5")
    st_ref = os.path.join(tmp, "ref.safetensors")
    st_amb = os.path.join(tmp, "amber.safetensors")
    keras_path = os.path.join(tmp, "model.keras")
    dd_path = os.path.join(tmp, "dd.bin")
    flat = {k.replace("/", "."): v for k, v in weights.items()}

    print("\n-- writing --")
    t_dd, _ = median_time(lambda: dd_write(dd_path, nbytes, sync=False), args.repeat)
    report("dd (new file, no fsync)", t_dd, size=nbytes)
    t_dds, _ = median_time(lambda: dd_write(dd_path, nbytes, sync=True), args.repeat)
    report("dd (new file, conv=fsync)", t_dds, size=nbytes)
    os.remove(dd_path)
    t_h5py_w, _ = median_time(lambda: write_h5py(h5_ref, weights), args.repeat)
    report("h5py write .weights.h5", t_h5py_w, size=nbytes)
    t_amb_w, _ = median_time(lambda: write_amber_h5(h5_amb, weights), args.repeat)
    report("amber H5Writer.write .weights.h5", t_amb_w, ref=t_h5py_w, size=nbytes)
    t_st_w, _ = median_time(lambda: stnp.save_file(flat, st_ref), args.repeat)
    report("safetensors.numpy.save_file", t_st_w, size=nbytes)
    t_ast_w, _ = median_time(lambda: _native.safetensors_save(st_amb, flat, None), args.repeat)
    report("amber safetensors_save", t_ast_w, ref=t_st_w, size=nbytes)

    make_keras_file(keras_path, h5_ref)

    print("\n-- open + index + a view of every weight --")

    def amber_open_views():
        arc = _native.Archive.open(keras_path)
        h5 = arc.open_h5("model.weights.h5")
        return [h5.read(name) for name in weights]

    def h5py_open_read():
        z = zipfile.ZipFile(keras_path)
        buf = io.BytesIO(z.read("model.weights.h5"))
        with h5py.File(buf, "r") as f:
            return [f[name][()] for name in weights]

    t_h5py_open, _ = median_time(h5py_open_read, args.repeat)
    report("h5py: read entry from zip + read every dataset", t_h5py_open)
    t_amb_open, views = median_time(amber_open_views, args.repeat)
    report("amber: map .keras + index + view every weight", t_amb_open, ref=t_h5py_open)
    assert all(not v.flags.writeable for v in views), "views must be read-only"

    print("\n-- sum every weight --")

    def amber_sum():
        return sum(float(v.sum(dtype=np.float64)) for v in amber_open_views())

    def h5py_sum():
        with h5py.File(h5_ref, "r") as f:
            return sum(float(f[n][()].sum(dtype=np.float64)) for n in weights)

    def st_load_sum():
        return sum(float(a.sum(dtype=np.float64)) for a in stnp.load_file(st_ref).values())

    def st_open_sum():
        with safe_open(st_ref, framework="numpy") as f:
            return sum(float(f.get_tensor(k).sum(dtype=np.float64)) for k in f.keys())

    t_h5py_sum, s1 = median_time(h5py_sum, args.repeat)
    report("h5py .weights.h5 read + sum", t_h5py_sum)
    t_stl, s2 = median_time(st_load_sum, args.repeat)
    report("safetensors load_file + sum", t_stl)
    t_sto, s3 = median_time(st_open_sum, args.repeat)
    report("safetensors safe_open/get_tensor + sum", t_sto)
    t_amb_sum, s4 = median_time(amber_sum, args.repeat)
    report("amber .keras views + sum", t_amb_sum, ref=t_h5py_sum)
    for s in (s1, s2, s3, s4):
        assert abs(s - expected_sum) <= 1e-6 * max(1.0, abs(expected_sum)), (s, expected_sum)
    print(f"\nsums agree ({expected_sum:.3f}); files in {tmp}")
    if not args.dir:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
