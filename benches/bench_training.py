"""Training and inference speed of the guide's MNIST-style MLP: amber against real Keras 3.

The model is the one from the Keras "Serialization and saving" / training guides: a Functional
784-64-64-10 MLP (relu, logits out), compiled with RMSprop (or `--optimizer adam`) and sparse categorical crossentropy
from logits. Both libraries start from the SAME initial weights (drawn here with numpy and
handed to the Keras process through an .npz), train on the same random data with
`shuffle=False`, so the loss after the first epoch must agree: that check proves both sides
did the same work before their speeds are compared.

Measured, each as a median (of timed epochs, or of timed loops for the small calls):
- `fit` steps per second at batch 32 (one warm-up epoch, then `--epochs` timed epochs over
  `--samples` random samples; Keras's first epoch also pays the JIT compile), in wall time and
  per CPU-second of the process (all threads: JAX uses both cores, amber's loop one);
- latency at batch 1 of `model.predict(x, verbose=0)`, `model.predict_on_batch(x)` and `model(x)`;
- throughput of `model.predict(X, batch_size=1024, verbose=0)` in samples per second.

Keras runs on JAX (fit and predict) and on its numpy backend (predict only: that backend cannot
train). Each Keras backend runs in its own subprocess (the backend is chosen at import) that
prints its results as JSON; amber runs in this process. Keras and JAX are benchmark-only
references, never amber dependencies.

Usage: python benches/bench_training.py [--samples 60000] [--epochs 3] [--optimizer rmsprop|adam]
                                       [--json out.json]
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

import numpy as np

from timing import median_seconds

BATCH_TRAIN = 32
BATCH_PREDICT = 1024
# Relative agreement expected between the two libraries' first-epoch losses: float32 sums in
# different orders drift a little over ~2000 RMSprop steps, a different update rule would not.
LOSS_RTOL = 1e-3


def build_mlp(keras):
    """The guide's model, written once against the Keras API both libraries expose."""
    inputs = keras.Input(shape=(784,), name="digits")
    x = keras.layers.Dense(64, activation="relu", name="dense_1")(inputs)
    x = keras.layers.Dense(64, activation="relu", name="dense_2")(x)
    outputs = keras.layers.Dense(10, name="predictions")(x)
    model = keras.Model(inputs=inputs, outputs=outputs)
    return model


def make_data(samples):
    rng = np.random.default_rng(0)
    x = rng.random((samples, 784), dtype=np.float32)
    y = rng.integers(0, 10, size=samples).astype(np.int64)
    weights = [
        rng.standard_normal((784, 64), dtype=np.float32) * np.float32(0.05),
        np.zeros(64, np.float32),
        rng.standard_normal((64, 64), dtype=np.float32) * np.float32(0.15),
        np.zeros(64, np.float32),
        rng.standard_normal((64, 10), dtype=np.float32) * np.float32(0.15),
        np.zeros(10, np.float32),
    ]
    return x, y, weights


OPTIMIZERS = {"rmsprop": "RMSprop", "adam": "Adam"}


def measure(keras, x, y, weights, epochs, train, optimizer="rmsprop"):
    """Every measurement for one library; `keras` is the imported module (amber or Keras)."""
    results = {}
    model = build_mlp(keras)
    model.set_weights(weights)
    # Taken before training, so every library (even one that cannot train) must agree on it.
    results["predict_checksum"] = float(np.abs(np.asarray(model.predict(x[:64], verbose=0))).sum(dtype=np.float64))
    if train:
        model.compile(
            optimizer=getattr(keras.optimizers, OPTIMIZERS[optimizer])(learning_rate=1e-3),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        steps = -(-len(x) // BATCH_TRAIN)
        epoch_times, epoch_cpu = [], []
        first_loss = None
        for epoch in range(epochs + 1):
            start, cpu_start = time.perf_counter(), time.process_time()
            history = model.fit(x, y, batch_size=BATCH_TRAIN, epochs=1, shuffle=False, verbose=0)
            elapsed = time.perf_counter() - start
            cpu = time.process_time() - cpu_start
            if epoch == 0:
                first_loss = float(history.history["loss"][-1])
                results["fit_first_epoch_s"] = elapsed
            else:
                epoch_times.append(elapsed)
                epoch_cpu.append(cpu)
        results["first_epoch_loss"] = first_loss
        results["fit_steps_per_s"] = steps / statistics.median(epoch_times)
        results["fit_epoch_times_s"] = epoch_times
        # CPU seconds of the whole process (all threads): on a shared machine this shows the
        # work done, while wall time also counts waiting for a core.
        results["fit_steps_per_cpu_s"] = steps / statistics.median(epoch_cpu)
    one = x[:1]
    results["predict_b1_s"] = median_seconds(lambda: model.predict(one, verbose=0))
    results["predict_on_batch_b1_s"] = median_seconds(lambda: model.predict_on_batch(one))
    results["call_b1_s"] = median_seconds(lambda: np.asarray(model(one)))
    big = x[: 16 * BATCH_PREDICT]
    t = median_seconds(lambda: model.predict(big, batch_size=BATCH_PREDICT, verbose=0), repeats=5)
    results["predict_b1024_samples_per_s"] = len(big) / t
    return results


def keras_worker(data_path, epochs, train, optimizer):
    """Runs inside a subprocess whose KERAS_BACKEND is already set; prints one JSON line."""
    import keras

    data = np.load(data_path)
    weights = [data[f"w{i}"] for i in range(6)]
    results = measure(keras, data["x"], data["y"], weights, epochs, train, optimizer)
    results["backend"] = keras.backend.backend()
    results["keras_version"] = keras.__version__
    if keras.backend.backend() == "jax":
        import jax

        results["jax_version"] = jax.__version__
    print(json.dumps(results))


def run_keras(backend, data_path, epochs, train, optimizer):
    env = dict(os.environ, KERAS_BACKEND=backend)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    args = [sys.executable, __file__, "--worker", data_path, "--epochs", str(epochs),
            "--optimizer", optimizer]
    if not train:
        args.append("--no-train")
    proc = subprocess.run(args, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"Keras ({backend}) worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=60000)
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs after one warm-up epoch")
    ap.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="rmsprop")
    ap.add_argument("--json", help="also write all results here")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--no-train", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        keras_worker(args.worker, args.epochs, train=not args.no_train, optimizer=args.optimizer)
        return

    x, y, weights = make_data(args.samples)
    print(f"MLP 784-64-64-10, {OPTIMIZERS[args.optimizer]}, {args.samples} samples, batch {BATCH_TRAIN}, "
          f"1 warm-up + {args.epochs} timed epochs; load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="amber-bench-") as tmp:
        data_path = os.path.join(tmp, "data.npz")
        np.savez(data_path, x=x, y=y, **{f"w{i}": w for i, w in enumerate(weights)})
        import amber

        results = {"amber": measure(amber, x, y, weights, args.epochs, True, args.optimizer)}
        results["keras_jax"] = run_keras("jax", data_path, args.epochs, True, args.optimizer)
        results["keras_numpy"] = run_keras("numpy", data_path, args.epochs, False, args.optimizer)
    results["load_average"] = os.getloadavg()

    a, j, n = results["amber"], results["keras_jax"], results["keras_numpy"]
    loss_gap = abs(a["first_epoch_loss"] - j["first_epoch_loss"]) / abs(j["first_epoch_loss"])
    sum_gap = abs(a["predict_checksum"] - n["predict_checksum"]) / n["predict_checksum"]
    print(f"first-epoch loss: amber {a['first_epoch_loss']:.6f}, Keras/JAX {j['first_epoch_loss']:.6f} "
          f"(relative gap {loss_gap:.1e}); untrained predict checksums: amber vs Keras/numpy gap {sum_gap:.1e}")
    print(f"Keras {j['keras_version']}, JAX {j.get('jax_version')}; first epoch (incl. warm-up/JIT): "
          f"amber {a['fit_first_epoch_s']:.2f} s, Keras/JAX {j['fit_first_epoch_s']:.2f} s\n")

    rows = [
        ("fit steps/s, batch 32", "fit_steps_per_s", True, "{:10.0f}"),
        ("fit steps per CPU-second (all threads)", "fit_steps_per_cpu_s", True, "{:10.0f}"),
        ("predict(x) latency, batch 1 (ms)", "predict_b1_s", False, "{:10.3f}"),
        ("predict_on_batch(x) latency, batch 1 (ms)", "predict_on_batch_b1_s", False, "{:10.3f}"),
        ("model(x) latency, batch 1 (ms)", "call_b1_s", False, "{:10.3f}"),
        ("predict throughput, batch 1024 (samples/s)", "predict_b1024_samples_per_s", True, "{:10.0f}"),
    ]
    print(f"{'':44s} {'amber':>10s} {'Keras/JAX':>10s} {'Keras/np':>10s} {'vs JAX':>8s} {'vs np':>8s}")
    for label, key, higher_better, fmt in rows:
        scale = 1.0 if higher_better else 1e3
        cells = []
        for res in (a, j, n):
            cells.append(fmt.format(res[key] * scale) if key in res else f"{'-':>10s}")
        ratios = []
        for res in (j, n):
            if key not in res:
                ratios.append(f"{'-':>8s}")
            else:
                r = a[key] / res[key] if higher_better else res[key] / a[key]
                ratios.append(f"{r:7.1f}x")
        print(f"{label:44s} {' '.join(cells)} {' '.join(ratios)}")
    print("(ratios: how many times faster amber is)")
    print(f"load average after the run: {results['load_average'][0]:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    if loss_gap > LOSS_RTOL:
        sys.exit(f"amber and Keras disagree on the first-epoch loss (gap {loss_gap:.2e} > {LOSS_RTOL})")
    if sum_gap > 1e-5:
        sys.exit(f"amber and Keras disagree on untrained predictions (gap {sum_gap:.2e})")


if __name__ == "__main__":
    main()
