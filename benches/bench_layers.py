"""Forward-pass time of real Keras models from the interop corpus: amber against Keras 3 + JAX.

Both libraries load the same Keras-written `.keras` files from the shared interop corpus
(`../shared/interop/fixtures` beside the repository, or `--fixtures`):

- `mobilenetv2_small` (Conv2D, DepthwiseConv2D, BatchNormalization, ReLU, Add, pooling; 96x96x3
  images) at batch 1 and batch 32;
- `text_lstm` (Embedding, LSTM, Dense; 12 token ids) at batch 32.

Each input batch is the corpus's recorded input repeated to the batch size, so every output
can be checked against the outputs Keras recorded with the file (within the corpus tolerance)
before its time counts. For each model and batch, three ways of running forward are timed
(median of several timed loops; wall time, and CPU time of the whole process over all
threads, which on a shared machine shows the work done apart from waiting for a core): `model.predict(x, verbose=0)`, `model.predict_on_batch(x)`
(Keras/JAX: a jitted function) and `model(x)` (Keras/JAX: eager, op by op).

Keras runs in a subprocess with `KERAS_BACKEND=jax` (the backend is chosen at import) that
prints its results as JSON; amber runs in this process. A model that does not load or does
not match in one library is reported as such, with the error, and the others still run.

Usage: python benches/bench_layers.py [--fixtures DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from timing import median_timing

# (case, batch sizes); tolerances come from the corpus MANIFEST.
CASES = [("mobilenetv2_small", (1, 32)), ("text_lstm", (32,))]
METHODS = [
    ("predict", lambda m, x: m.predict(x, verbose=0)),
    ("predict_on_batch", lambda m, x: m.predict_on_batch(x)),
    ("call", lambda m, x: m(x)),
]


def default_fixtures():
    return Path(__file__).resolve().parents[1].parent / "shared" / "interop" / "fixtures"


def tolerances(fixtures):
    manifest = json.loads((fixtures / "MANIFEST.json").read_text())
    return {c["name"]: c["tolerance"] for c in manifest["cases"]}


def repeat_to(array, batch):
    reps = -(-batch // len(array))
    return np.concatenate([array] * reps)[:batch]


def measure(keras, fixtures):
    """Every case for one library; `keras` is the imported module (amber or Keras)."""
    tol = tolerances(fixtures)
    results = {}
    for case, batches in CASES:
        entry = results[case] = {}
        try:
            start = time.perf_counter()
            model = keras.models.load_model(str(fixtures / f"{case}.keras"))
            entry["load_s"] = time.perf_counter() - start
        except Exception as exc:  # reported, not hidden: the table says the model did not load
            entry["error"] = f"load_model failed: {type(exc).__name__}: {exc}"[:500]
            continue
        x0 = np.load(fixtures / f"{case}.input.npy")
        expected0 = np.load(fixtures / f"{case}.expected.npy")
        for batch in batches:
            x = repeat_to(x0, batch)
            expected = repeat_to(expected0, batch)
            row = entry[str(batch)] = {}
            for name, run in METHODS:
                try:
                    out = np.asarray(run(model, x))
                except Exception as exc:
                    row[name] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
                    continue
                gap = float(np.abs(out - expected).max())
                ok = bool(np.allclose(out, expected, rtol=tol[case]["rtol"], atol=tol[case]["atol"]))
                cell = {"max_abs_vs_recorded": gap, "matches_recorded": ok}
                if ok:
                    cell["seconds"], cell["cpu_seconds"] = median_timing(lambda: np.asarray(run(model, x)), min_time=0.5,
                                                                      repeats=5, max_loops=1 << 12)
                row[name] = cell
    return results


def keras_worker(fixtures):
    import jax
    import keras

    results = measure(keras, fixtures)
    results["versions"] = {"keras": keras.__version__, "jax": jax.__version__,
                           "backend": keras.backend.backend()}
    print(json.dumps(results))


def run_keras(fixtures):
    env = dict(os.environ, KERAS_BACKEND="jax")
    proc = subprocess.run([sys.executable, __file__, "--worker", "--fixtures", str(fixtures)],
                          env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"Keras (jax) worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def cell_text(cell):
    if cell is None:
        return f"{'-':>21s}"
    if "error" in cell:
        return f"{'error':>21s}"
    if not cell["matches_recorded"]:
        return f"{'WRONG':>21s}"
    return f"{cell['seconds'] * 1e3:8.2f}ms {cell['cpu_seconds'] * 1e3:8.2f}ms"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures", type=Path, default=None)
    ap.add_argument("--json", help="also write all results here")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    fixtures = args.fixtures or default_fixtures()
    if not (fixtures / "MANIFEST.json").is_file():
        sys.exit(f"interop corpus not found at {fixtures} (pass --fixtures)")
    if args.worker:
        keras_worker(fixtures)
        return

    import amber

    print(f"load average {os.getloadavg()[0]:.2f}")
    results = {"load_average_start": os.getloadavg(), "amber": measure(amber, fixtures)}
    results["keras_jax"] = run_keras(fixtures)
    results["load_average_end"] = os.getloadavg()
    a, k = results["amber"], results["keras_jax"]
    print(f"Keras {k['versions']['keras']} on JAX {k['versions']['jax']}; times are medians, "
          "outputs checked against the corpus's recorded outputs first\n")
    print(f"{'':43s} {'amber':>21s} {'Keras/JAX':>21s}")
    print(f"{'model':18s} {'batch':>5s} {'method':18s} {'wall':>10s} {'CPU':>10s} {'wall':>10s} {'CPU':>10s} "
          f"{'amber faster (wall)':>20s}")
    failed = []
    for case, batches in CASES:
        for lib, res in (("amber", a), ("Keras/JAX", k)):
            if "error" in res[case]:
                print(f"{case:18s} {lib}: {res[case]['error']}")
                failed.append((lib, case))
        for batch in batches:
            for name, _ in METHODS:
                ca = a[case].get(str(batch), {}).get(name)
                ck = k[case].get(str(batch), {}).get(name)
                ratio = ""
                if ca and ck and "seconds" in ca and "seconds" in ck:
                    ratio = f"{ck['seconds'] / ca['seconds']:19.2f}x"
                print(f"{case:18s} {batch:5d} {name:18s} {cell_text(ca)} {cell_text(ck)} {ratio:>20s}")
                for lib, cell in (("amber", ca), ("Keras/JAX", ck)):
                    if cell and ("error" in cell or not cell["matches_recorded"]):
                        print(f"    {lib}: {cell.get('error') or 'max |out - recorded| = %.3g' % cell['max_abs_vs_recorded']}")
                        failed.append((lib, case, batch, name))
    print(f"\nload average: start {results['load_average_start'][0]:.2f}, end {results['load_average_end'][0]:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    if failed:
        sys.exit(f"not measured (failed to load or wrong outputs): {failed}")


if __name__ == "__main__":
    main()
