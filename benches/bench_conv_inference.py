"""Forward time of convolution nets in amber with and without the native inference paths,
in one process on the same loaded models: the native float32 depthwise convolution, the
one-pass BatchNormalization scale/shift, the one-pass ReLU(max_value) and the one-pass float32
sigmoid/silu against the numpy paths they replaced (restored here by patching: the per-tap
depthwise loop over an `np.pad` copy, multiply-then-add, relu-then-minimum, numpy's stable
sigmoid), and with the Conv/BatchNormalization/activation folds of `models.inference_fold`
against running those layers one by one. `--restore sigmoid` restores only the numpy
sigmoid/silu, `--restore fold` only the layer-by-layer execution, to time one change alone.

Real Keras builds each `keras.applications` architecture (see `tests/applications_reference.py`)
and saves it; amber loads the file, and both variants' batch-8 outputs are checked against
Keras's predictions before their times count. `model(x)` wall time, median of `--repeats`
calls after one warm-up, the two variants interleaved so that load changes hit both alike.

Usage: python benches/bench_conv_inference.py [NAME ...] [--repeats 7] [--batches 1 8] [--side 96]
       [--restore all|sigmoid|fold]
"""

import argparse
import contextlib
import importlib
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path.insert(0, str(TESTS))
import applications_reference as reference  # noqa: E402

DEFAULT = ["MobileNetV2", "MobileNetV3Small", "MobileNetV3Large", "EfficientNetB0"]


@contextlib.contextmanager
def numpy_sigmoid():
    """numpy's stable sigmoid in place of the native float32 sigmoid/silu kernels."""
    nn = importlib.import_module("amber.ops.nn")
    saved = nn._native_f32
    nn._native_f32 = lambda kernel, x: None
    try:
        yield
    finally:
        nn._native_f32 = saved


@contextlib.contextmanager
def unfolded():
    """Each layer on its own: no Conv/BatchNormalization/activation folds."""
    fold = importlib.import_module("amber.models.inference_fold")
    saved = fold.is_inference
    fold.is_inference = lambda context: False
    try:
        yield
    finally:
        fold.is_inference = saved


@contextlib.contextmanager
def numpy_paths():
    """The previous numpy implementations in place of the native inference paths."""
    conv = importlib.import_module("amber.ops.conv")  # `amber.ops.conv` is also the op
    fused = importlib.import_module("amber.ops.fused")
    saved = conv._depthwise_native, fused.channel_scale_shift, fused.clipped_relu

    def per_tap(args, original_out, bias=None, activation="linear", scale=None):
        # The folds (which pass an epilogue) are off in this variant: a plain forward only.
        assert bias is None and scale is None and activation == "linear"
        x, weights, strides, dilation, pads = args  # 4-D: 1-D convolutions come as height 1
        out = (1,) * (x.ndim - 2 - len(original_out)) + tuple(original_out)
        xp = conv._pad_spatial(x, pads)
        y = np.zeros((x.shape[0],) + tuple(out) + weights.shape[-2:], np.float32)
        for tap in itertools.product(*(range(k) for k in weights.shape[:-2])):
            reads = (slice(None),) + conv._tap_slices(tap, dilation, strides, out) + (slice(None), None)
            y += xp[reads] * weights[tap]
        return y.reshape((x.shape[0],) + tuple(original_out) + (-1,))

    conv._depthwise_native = per_tap
    fused.channel_scale_shift = lambda *args: None
    fused.clipped_relu = lambda *args: None
    try:
        with numpy_sigmoid(), unfolded():
            yield
    finally:
        conv._depthwise_native, fused.channel_scale_shift, fused.clipped_relu = saved


def keras_build(directory, names, side):
    env = dict(os.environ, KERAS_BACKEND="numpy")
    code = (f"import sys; sys.path.insert(0, {str(TESTS)!r}); import applications_reference as r\n"
            f"for n in {names!r}: r.ARCHITECTURES[n] = (r.ARCHITECTURES[n][0], {side}) + r.ARCHITECTURES[n][2:]\n"
            f"r.main(['build', {str(directory)!r}, *{names!r}])")
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    return json.loads((Path(directory) / "build.json").read_text())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("names", nargs="*", default=DEFAULT)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--side", type=int, default=96, help="input height and width")
    parser.add_argument("--restore", choices=["all", "sigmoid", "fold"], default="all",
                        help="what the 'before' variant restores: every numpy path (and no folds), the "
                             "numpy sigmoid only, or layer-by-layer execution only (no "
                             "Conv/BatchNormalization/activation folds)")
    args = parser.parse_args()
    numpy_variant = {"all": numpy_paths, "sigmoid": numpy_sigmoid, "fold": unfolded}[args.restore]
    import amber

    for name in args.names:
        reference.ARCHITECTURES[name] = (reference.ARCHITECTURES[name][0], args.side) + reference.ARCHITECTURES[name][2:]
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        built = keras_build(directory, args.names, args.side)
        for name in args.names:
            if built[name] != "ok":
                print(f"{name}: Keras build failed: {built[name][:200]}")
                continue
            model = amber.models.load_model(Path(directory) / f"{name}.keras")
            expected = np.load(Path(directory) / f"{name}.npz")["y"]
            x8 = reference.input_batch(name, batch=8)
            for variant in (contextlib.nullcontext, numpy_variant):
                with variant():
                    got = np.asarray(model(x8))[:reference.BATCH]
                np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
            for batch in args.batches:
                x = reference.input_batch(name, batch=batch)
                times = {"native": [], "numpy": []}
                for variant in (contextlib.nullcontext, numpy_variant):
                    with variant():
                        model(x)
                for _ in range(args.repeats):
                    for label, variant in (("native", contextlib.nullcontext), ("numpy", numpy_variant)):
                        with variant():
                            start = time.perf_counter()
                            model(x)
                            times[label].append(time.perf_counter() - start)
                rows.append((name, batch, statistics.median(times["native"]), statistics.median(times["numpy"])))
    print(f"model(x) wall ms, {args.side}x{args.side} input, median of {args.repeats}, "
          f"load average {os.getloadavg()[0]:.1f}, numpy variant restores: {args.restore}")
    print(f"{'architecture':18} {'batch':>5} {'before':>12} {'native':>9} {'speedup':>8}")
    for name, batch, native, before in rows:
        print(f"{name:18} {batch:>5} {before * 1e3:10.1f}ms {native * 1e3:7.1f}ms {before / native:7.2f}x")


if __name__ == "__main__":
    main()
