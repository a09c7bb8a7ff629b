"""Whole-model save/load of a 537 MB model: amber against Keras 3, safetensors and dd.

The model is a Sequential of Input(4096) and eight Dense(4096) (134 M float32 parameters,
537 MB). Real Keras 3 (numpy backend) builds it and saves it once per run into a temp dir;
every loader then reads that Keras-written `.keras` file. Measured, page cache warm (the
numbers compare parsing, copying and allocation, not the disk):

- `amber.models.load_model(path)` (weights memory-mapped, zero-copy) and
  `load_model(path, mmap=False)` (weights copied), against Keras 3's `load_model` and the
  `safetensors` package's `load_file` of the same tensors. amber and Keras each load both the
  Keras-written file and the file amber saved: Keras places float32 datasets at addresses that
  are not 4-byte aligned inside its zip (amber maps them as they are; its kernels read
  unaligned operands), while amber's own files put every dataset on a 64-byte boundary;
- peak memory of each load above the interpreter's baseline: every loader runs in a fresh
  subprocess that reads VmHWM from /proc/self/status right before and right after its first
  load (the high-water mark of resident memory, so a transient copy counts even if freed;
  mapped file pages count too, but only once something touches them);
- `model.save(path)` (amber fsyncs its archive before renaming it into place) against Keras 3's
  `model.save`, `safetensors.numpy.save_file` and `dd` writing a new file of the same size,
  with and without fsync.

Times are medians of `--repeat` runs inside each worker, after the first (cold-process) run,
which is reported separately. Every loader's weights are checked against h5py's read of the
file, and Keras loads the file amber saved, so the fast paths are also right paths.

Usage: python benches/bench_saving.py [--dir DIR] [--repeat 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

UNITS = 4096
LAYERS = 8
# Every load measured: label -> (loader, which file). Keras writes float32 datasets at
# addresses that are not 4-byte aligned inside its zip, amber writes them aligned; both are
# measured.
LOADS = {
    "amber load_model, mapped (Keras-written file)": ("amber", "keras"),
    "amber load_model, mapped (amber-written file)": ("amber", "amber"),
    "amber load_model(mmap=False) (Keras-written file)": ("amber_copy", "keras"),
    "amber load_model(mmap=False) (amber-written file)": ("amber_copy", "amber"),
    "Keras 3 load_model, numpy backend (Keras-written file)": ("keras", "keras"),
    "Keras 3 load_model, numpy backend (amber-written file)": ("keras", "amber"),
    "safetensors load_file (same tensors)": ("safetensors", "safetensors"),
}
KERAS_REFERENCE = "Keras 3 load_model, numpy backend (Keras-written file)"


def vm_hwm_bytes():
    """Resident-memory high-water mark of this process (Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def weight_sums(arrays):
    """One float64 sum per weight: a cheap fingerprint that reads every byte."""
    return [float(np.asarray(a).sum(dtype=np.float64)) for a in arrays]


def timed_runs(fn, repeat, cleanup=None):
    """First run (fresh process) and the median of `repeat` further runs, in seconds."""
    times = []
    for _ in range(repeat + 1):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
        if cleanup is not None:
            cleanup(result)
        del result
        gc.collect()
    return times[0], statistics.median(times[1:])


# ------------------------------------------------------------------ workers (subprocesses)


def worker_keras_create(tmp, repeat):
    """Keras 3 (numpy backend): build the model, save it (timed), write the safetensors copy."""
    import keras
    import safetensors.numpy as stnp

    layers = [keras.Input(shape=(UNITS,))] + [keras.layers.Dense(UNITS) for _ in range(LAYERS)]
    model = keras.Sequential(layers)
    path = os.path.join(tmp, "keras.keras")
    scratch = os.path.join(tmp, "keras_save.keras")
    first, med = timed_runs(lambda: model.save(scratch), repeat, cleanup=lambda _: os.remove(scratch))
    model.save(path)
    # Zero-padded indices keep model.weights order under safetensors' sorted keys.
    tensors = {f"{i:03d}": np.asarray(w.value) for i, w in enumerate(model.weights)}
    st_path = os.path.join(tmp, "weights.safetensors")
    st_scratch = os.path.join(tmp, "scratch.safetensors")
    st_first, st_med = timed_runs(lambda: stnp.save_file(tensors, st_scratch), repeat,
                                  cleanup=lambda _: os.remove(st_scratch))
    stnp.save_file(tensors, st_path)
    return {"keras_save": [first, med], "safetensors_save": [st_first, st_med],
            "nbytes": sum(a.nbytes for a in tensors.values()), "keras_version": keras.__version__}


def load_fn(kind, path):
    if kind in ("amber", "amber_copy"):
        import amber

        return lambda: amber.models.load_model(path, mmap=(kind == "amber"))
    if kind == "keras":
        import keras

        return lambda: keras.models.load_model(path)
    if kind == "safetensors":
        import safetensors.numpy as stnp

        return lambda: stnp.load_file(path)
    raise ValueError(kind)


def arrays_of(loaded):
    if isinstance(loaded, dict):
        return list(loaded.values())
    return [w.value if hasattr(w, "value") else w for w in loaded.weights]


def worker_load(kind, path, repeat):
    """Fresh process: memory of the first load above baseline, then timed reloads."""
    load = load_fn(kind, path)
    before = vm_hwm_bytes()
    start = time.perf_counter()
    loaded = load()
    first = time.perf_counter() - start
    peak = vm_hwm_bytes() - before
    sums = weight_sums(arrays_of(loaded))
    del loaded
    gc.collect()
    med = timed_runs(load, repeat)[1] if repeat > 0 else None
    return {"first_s": first, "median_s": med, "peak_above_baseline": peak, "sums": sums}


def worker_amber_save(src, tmp, repeat):
    """amber: load (mapped) the Keras file, then save it to a new file each time."""
    import amber

    model = amber.models.load_model(src)
    target = os.path.join(tmp, "amber_save.keras")
    first, med = timed_runs(lambda: model.save(target), repeat, cleanup=lambda _: os.remove(target))
    model.save(os.path.join(tmp, "amber.keras"))
    return {"amber_save": [first, med]}


def run_worker(args, backend=None):
    env = dict(os.environ)
    if backend:
        env["KERAS_BACKEND"] = backend
    proc = subprocess.run([sys.executable, __file__, "--worker", *args], env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ reference and report


def h5py_sums(keras_path):
    """The independent reference: every weight read by h5py from the archive's HDF5 entry."""
    import io
    import zipfile

    import h5py

    with zipfile.ZipFile(keras_path) as z:
        data = z.read("model.weights.h5")
    sums = []
    with h5py.File(io.BytesIO(data), "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                order.append(name)
        order = []
        f.visititems(visit)
        # Keras 3 order: layers in order (dense, dense_1, ...), vars/0 (kernel) then vars/1.
        def key(name):
            layer = name.split("/")[1]
            index = int(layer.rsplit("_", 1)[1]) if "_" in layer else 0
            return index, int(name.rsplit("/", 1)[1])
        for name in sorted((n for n in order if n.startswith("layers/")), key=key):
            sums.append(float(f[name][()].sum(dtype=np.float64)))
    return sums


def dd_write(path, nbytes, sync):
    args = ["dd", "if=/dev/zero", f"of={path}", "bs=1M", f"count={-(-nbytes // (1 << 20))}", "status=none"]
    if sync:
        args.append("conv=fsync")
    subprocess.run(args, check=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default=None, help="keep the files here (default: a temp dir, removed)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", help="also write all results here")
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        kind, *rest = args.worker
        if kind == "create":
            out = worker_keras_create(rest[0], args.repeat)
        elif kind == "load":
            out = worker_load(rest[0], rest[1], args.repeat)
        elif kind == "amber_save":
            out = worker_amber_save(rest[0], rest[1], args.repeat)
        else:
            raise SystemExit(f"unknown worker {kind}")
        print(json.dumps(out))
        return

    tmp = args.dir or tempfile.mkdtemp(prefix="amber-bench-saving-")
    os.makedirs(tmp, exist_ok=True)
    repeat = str(args.repeat)
    print(f"Sequential Input({UNITS}) + {LAYERS} x Dense({UNITS}); repeat={args.repeat} (medians); "
          f"load average {os.getloadavg()[0]:.2f}")
    results = {"load_average_start": os.getloadavg()}
    try:
        created = run_worker(["create", tmp, "--repeat", repeat], backend="numpy")
        results["create"] = created
        nbytes = created["nbytes"]
        keras_path = os.path.join(tmp, "keras.keras")
        st_path = os.path.join(tmp, "weights.safetensors")
        print(f"model file {os.path.getsize(keras_path) / 1e6:.0f} MB ({nbytes / 1e6:.0f} MB of weights), "
              f"written by Keras {created['keras_version']}")
        reference = h5py_sums(keras_path)

        saved = run_worker(["amber_save", keras_path, tmp, "--repeat", repeat])
        results["save"] = saved
        amber_path = os.path.join(tmp, "amber.keras")
        loads = {}
        for label, (kind, path) in LOADS.items():
            path = {"keras": keras_path, "amber": amber_path, "safetensors": st_path}[path]
            backend = "numpy" if kind == "keras" else None
            loads[label] = run_worker(["load", kind, path, "--repeat", repeat], backend=backend)
        results["load"] = loads

        dd_path = os.path.join(tmp, "dd.bin")
        dd = {}
        for sync in (False, True):
            times = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                dd_write(dd_path, nbytes, sync)
                times.append(time.perf_counter() - start)
                os.remove(dd_path)
            dd["fsync" if sync else "no_fsync"] = statistics.median(times)
        results["dd"] = dd
    finally:
        if not args.dir:
            shutil.rmtree(tmp, ignore_errors=True)
    results["load_average_end"] = os.getloadavg()

    def agree(sums):
        return len(sums) == len(reference) and np.allclose(sums, reference, rtol=1e-9, atol=1e-6)

    checks = {label: agree(loads[label]["sums"]) for label in loads}
    results["checks"] = checks

    mb = 1e6
    print(f"\n{'load (page cache warm)':58s} {'first':>9s} {'median':>9s} {'peak mem':>10s} {'Keras/x':>8s}")
    keras_med = loads[KERAS_REFERENCE]["median_s"]
    for label, r in loads.items():
        print(f"{label:58s} {r['first_s'] * 1e3:7.1f}ms {r['median_s'] * 1e3:7.1f}ms "
              f"{r['peak_above_baseline'] / mb:8.1f}MB {keras_med / r['median_s']:7.1f}x")
    print(f"\n{'save (new file each time)':58s} {'first':>9s} {'median':>9s} {'GB/s':>6s}")
    save_rows = [("amber model.save (fsync)", saved["amber_save"]),
                 ("Keras 3 model.save (numpy backend)", created["keras_save"]),
                 ("safetensors save_file", created["safetensors_save"]),
                 ("dd, no fsync", [None, dd["no_fsync"]]),
                 ("dd, conv=fsync", [None, dd["fsync"]])]
    for label, (first, med) in save_rows:
        first_cell = f"{first * 1e3:7.1f}ms" if first is not None else f"{'-':>9s}"
        print(f"{label:58s} {first_cell} {med * 1e3:7.1f}ms {nbytes / med / 1e9:6.2f}")
    print("\nweights equal h5py's read of the Keras file:")
    for label, ok in checks.items():
        print(f"  {label:56s} {'yes' if ok else 'NO'}")
    print(f"load average: start {results['load_average_start'][0]:.2f}, end {results['load_average_end'][0]:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    if not all(checks.values()):
        sys.exit("some loader returned weights that differ from h5py's read")


if __name__ == "__main__":
    main()
