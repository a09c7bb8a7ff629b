"""Real Keras 3 side of the `keras.applications` tests, run as a subprocess (the backend is
chosen at import, and the test process may already hold Keras state).

    python applications_reference.py build DIR [NAME ...]   # Keras builds, perturbs, predicts, saves
    python applications_reference.py check DIR [NAME ...]   # Keras loads what amber saved, predicts
    python applications_reference.py time DIR [NAME ...]    # Keras forward time at batch 1 and 8
    python applications_reference.py predict DIR STEM ...   # Keras predicts with DIR/STEM.keras

`build` writes, per architecture, `NAME.keras` (saved by Keras) and `NAME.npz` (`x`: a fixed
random input batch, `y`: Keras's predictions on it). `check` reads `NAME.amber.keras` and
`NAME.amber.weights.h5` (saved by amber) and writes `NAME.check.npz` with Keras's predictions
from each. Every step records per-architecture errors in `DIR/<step>.json` instead of stopping.
"""

import json
import os
import sys
import time
import traceback
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "numpy")

import numpy as np  # noqa: E402

# name -> (constructor in keras.applications, input side, extra kwargs, raw pixel input?).
# Small inputs keep the run short; a few architectures have a larger minimum size. Models that
# rescale inside themselves (include_preprocessing) take pixels in [0, 255], as does VGG16
# (its caffe-style preprocessing is outside the model; [-1, 1] gives it ~1e-3 logits); others
# take [-1, 1].
ARCHITECTURES = {
    "MobileNetV2": ("MobileNetV2", 32, {}, False),
    "MobileNetV3Small": ("MobileNetV3Small", 32, {}, True),
    "MobileNetV3Large": ("MobileNetV3Large", 32, {}, True),
    "EfficientNetB0": ("EfficientNetB0", 32, {}, True),
    "EfficientNetV2B0": ("EfficientNetV2B0", 32, {}, True),
    "ResNet50": ("ResNet50", 32, {}, False),
    "ResNet50V2": ("ResNet50V2", 32, {}, False),
    "DenseNet121": ("DenseNet121", 32, {}, False),
    "NASNetMobile": ("NASNetMobile", 32, {}, False),
    "Xception": ("Xception", 71, {}, False),
    "InceptionV3": ("InceptionV3", 75, {}, False),
    "VGG16": ("VGG16", 32, {}, True),
    "ConvNeXtTiny": ("ConvNeXtTiny", 32, {}, True),
}
BATCH = 3
SEED = 1234


def build_model(keras, name):
    constructor, side, extra, _ = ARCHITECTURES[name]
    # Logits, not softmax: an untrained softmax is ~uniform and would hide differences.
    return getattr(keras.applications, constructor)(
        input_shape=(side, side, 3), weights=None, classes=10, classifier_activation=None, **extra)


def input_batch(name, batch=BATCH, seed=SEED):
    _, side, _, pixels = ARCHITECTURES[name]
    rng = np.random.default_rng(seed)
    low, high = (0.0, 255.0) if pixels else (-1.0, 1.0)
    return rng.uniform(low, high, (batch, side, side, 3)).astype("float32")


def perturb_statistics(keras, model, rng):
    """Non-trivial BatchNormalization statistics and affine terms, Normalization
    mean/variance and LayerScale scales, so inference really depends on them (fresh ones are
    0/1 or 1e-6)."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            for variable in layer.weights:
                shape = tuple(variable.shape)
                kind = variable.path.rsplit("/", 1)[-1]
                value = {
                    "gamma": lambda: rng.uniform(0.7, 1.3, shape),
                    "beta": lambda: rng.normal(0.0, 0.1, shape),
                    "moving_mean": lambda: rng.normal(0.0, 0.2, shape),
                    "moving_variance": lambda: rng.uniform(0.5, 2.0, shape),
                }[kind]()
                variable.assign(value.astype("float32"))
        elif type(layer).__name__ == "LayerScale":
            # Its 1e-6 initial scale would make ConvNeXt's residual branches invisible.
            layer.gamma.assign(rng.uniform(0.1, 0.5, tuple(layer.gamma.shape)).astype("float32"))
        elif isinstance(layer, keras.layers.Normalization) and hasattr(layer, "adapt_mean"):
            shape = tuple(layer.adapt_mean.shape)
            layer.adapt_mean.assign(rng.uniform(0.3, 0.6, shape).astype("float32"))
            layer.adapt_variance.assign(rng.uniform(0.04, 0.1, shape).astype("float32"))
            layer.finalize_state()


def _each(directory, step, names, work):
    report = {}
    for name in names:
        try:
            report[name] = work(name) or "ok"
        except Exception:  # reported per architecture; the test turns it into a failure
            report[name] = "error: " + traceback.format_exc(limit=-6)
    (Path(directory) / f"{step}.json").write_text(json.dumps(report, indent=1))


def build(keras, directory, names):
    def work(name):
        model = build_model(keras, name)
        perturb_statistics(keras, model, np.random.default_rng(SEED))
        x = input_batch(name)
        y = np.asarray(model.predict(x, verbose=0))
        if not np.all(np.isfinite(y)):
            raise ValueError(f"{name}: Keras predictions are not finite")
        model.save(Path(directory) / f"{name}.keras")
        np.savez(Path(directory) / f"{name}.npz", x=x, y=y)

    _each(directory, "build", names, work)


def check(keras, directory, names):
    def work(name):
        base = Path(directory)
        x = np.load(base / f"{name}.npz")["x"]
        from_keras_file = keras.saving.load_model(base / f"{name}.amber.keras")
        fresh = build_model(keras, name)
        fresh.load_weights(base / f"{name}.amber.weights.h5")
        np.savez(base / f"{name}.check.npz",
                 keras_file=np.asarray(from_keras_file.predict(x, verbose=0)),
                 weights_file=np.asarray(fresh.predict(x, verbose=0)))

    _each(directory, "check", names, work)


def predict_files(keras, directory, stems):
    """Keras loads `STEM.keras` and predicts on `STEM.x.npy` into `STEM.out.npy`."""
    def work(stem):
        base = Path(directory)
        model = keras.saving.load_model(base / f"{stem}.keras")
        np.save(base / f"{stem}.out.npy", np.asarray(model.predict(np.load(base / f"{stem}.x.npy"), verbose=0)))

    _each(directory, "predict", stems, work)


def forward_seconds(model, x, repeats=3):
    """Median wall seconds of `model(x)` after one warm-up call."""
    model(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(x)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def time_forward(keras, directory, names):
    def work(name):
        model = keras.saving.load_model(Path(directory) / f"{name}.keras")
        return {str(b): forward_seconds(model, input_batch(name, batch=b)) for b in (1, 8)}

    _each(directory, "time", names, work)


def main(argv):
    step, directory, *names = argv
    import keras

    if keras.backend.backend() != "numpy":
        raise SystemExit(f"expected Keras's numpy backend, got {keras.backend.backend()}")
    steps = {"build": build, "check": check, "time": time_forward, "predict": predict_files}
    steps[step](keras, directory, names or list(ARCHITECTURES))


if __name__ == "__main__":
    main(sys.argv[1:])
