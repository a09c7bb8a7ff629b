"""Forward time of whole `keras.applications` architectures: amber against Keras 3 (numpy backend).

Real Keras builds each architecture (weights=None, small inputs, perturbed BatchNormalization
statistics; see `tests/applications_reference.py`) and saves it; amber loads the same file. Both
time `model(x)` at batch 1 and 8 (median of 3 after one warm-up call) on the same inputs; amber's
batch-8 output is checked against Keras's predictions for the first samples before its time
counts. Keras runs in a subprocess (the backend is chosen at import).

Usage: python benches/bench_applications.py [NAME ...] [--json out.json]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path.insert(0, str(TESTS))
from applications_reference import ARCHITECTURES, BATCH, forward_seconds, input_batch  # noqa: E402


def keras_step(step, directory, names):
    env = dict(os.environ, KERAS_BACKEND="numpy")
    subprocess.run([sys.executable, str(TESTS / "applications_reference.py"), step, str(directory), *names],
                   env=env, check=True)
    return json.loads((Path(directory) / f"{step}.json").read_text())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("names", nargs="*", default=list(ARCHITECTURES))
    parser.add_argument("--json")
    args = parser.parse_args()
    import amber

    rows = {}
    with tempfile.TemporaryDirectory() as directory:
        built = keras_step("build", directory, args.names)
        keras_times = keras_step("time", directory, args.names)
        for name in args.names:
            if built[name] != "ok" or not isinstance(keras_times[name], dict):
                rows[name] = {"error": built[name] if built[name] != "ok" else keras_times[name]}
                continue
            model = amber.models.load_model(Path(directory) / f"{name}.keras")
            expected = np.load(Path(directory) / f"{name}.npz")["y"]
            got = np.asarray(model(input_batch(name, batch=8)))[:BATCH]
            np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
            row = {"params": int(sum(np.prod(w.shape) for w in model.weights))}
            for batch in (1, 8):
                amber_s = forward_seconds(model, input_batch(name, batch=batch))
                keras_s = keras_times[name][str(batch)]
                row[f"amber_b{batch}_ms"] = amber_s * 1e3
                row[f"keras_b{batch}_ms"] = keras_s * 1e3
                row[f"speedup_b{batch}"] = keras_s / amber_s
            rows[name] = row

    load = os.getloadavg()[0]
    print(f"model(x) forward, median of 3, load average {load:.1f}")
    print(f"{'architecture':18} {'params':>10} {'amber b1':>10} {'keras b1':>10} {'x':>6} "
          f"{'amber b8':>10} {'keras b8':>10} {'x':>6}")
    for name, row in rows.items():
        if "error" in row:
            print(f"{name:18} error: {row['error'][:200]}")
            continue
        print(f"{name:18} {row['params']:>10,} {row['amber_b1_ms']:>8.1f}ms {row['keras_b1_ms']:>8.1f}ms "
              f"{row['speedup_b1']:>5.1f}x {row['amber_b8_ms']:>8.1f}ms {row['keras_b8_ms']:>8.1f}ms "
              f"{row['speedup_b8']:>5.1f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
