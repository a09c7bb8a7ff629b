"""DepthwiseConv2D forward on MobileNetV2's feature-map shapes: amber's native float32 kernel
against the per-tap numpy loop it replaced and against Keras 3 with the JAX backend.

- `amber`: `amber.ops.depthwise_conv` (3x3, 'same', float32, NHWC).
- `numpy loop`: the previous amber implementation, restated here: `np.pad`, then one
  broadcast multiply-add over the whole strided output per kernel tap.
- `keras/jax`: `keras.ops.depthwise_conv` on JAX arrays (`block_until_ready`), eager and
  under `jax.jit`, run in a subprocess with `KERAS_BACKEND=jax` (the backend is chosen at
  import); XLA may use both cores.

Every amber output is checked against the numpy loop before its time counts. Times are
medians (see `timing.py`): wall milliseconds per call, and CPU milliseconds of the whole
process for amber (threads included).

Usage: python benches/bench_depthwise.py [--batches 1 8] [--json out.json]
"""

import argparse
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import median_seconds, median_timing  # noqa: E402

# (height = width, channels, stride) of MobileNetV2's depthwise layers at 224x224 input
SHAPES = [(112, 32, 1), (112, 96, 2), (56, 144, 1), (56, 144, 2), (28, 192, 1), (14, 384, 1), (14, 576, 2),
          (7, 960, 1)]


def arrays(size, channels, batch):
    rng = np.random.default_rng(size + channels)
    x = rng.normal(size=(batch, size, size, channels)).astype("float32")
    k = rng.normal(size=(3, 3, channels, 1)).astype("float32")
    return x, k


def numpy_loop(x, k, stride):
    """The per-tap numpy rule ('same' padding, TensorFlow's split)."""
    size = x.shape[1]
    out = -(-size // stride)
    total = max((out - 1) * stride + 3 - size, 0)
    pad = (total // 2, total - total // 2)
    xp = np.pad(x, ((0, 0), pad, pad, (0, 0)))
    y = np.zeros((x.shape[0], out, out, x.shape[-1], 1), np.float32)
    for i, j in itertools.product(range(3), range(3)):
        taps = (slice(None), slice(i, i + stride * (out - 1) + 1, stride), slice(j, j + stride * (out - 1) + 1, stride))
        y += xp[taps + (slice(None), None)] * k[i, j]
    return y.reshape(y.shape[:3] + (-1,))


def keras_jax_times(batches):
    """Run in the subprocess: {"size,channels,stride,batch": (eager seconds, jitted seconds)}."""
    import jax
    import keras

    times = {}
    for (size, channels, stride), batch in itertools.product(SHAPES, batches):
        x, k = (jax.numpy.asarray(a) for a in arrays(size, channels, batch))
        run = lambda: keras.ops.depthwise_conv(x, k, stride, "same").block_until_ready()  # noqa: E731
        jitted = jax.jit(lambda x, k, stride=stride: keras.ops.depthwise_conv(x, k, stride, "same"))
        run_jitted = lambda: jitted(x, k).block_until_ready()  # noqa: E731
        times[f"{size},{channels},{stride},{batch}"] = (median_seconds(run), median_seconds(run_jitted))
    return times


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--json")
    parser.add_argument("--keras-jax", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.keras_jax:
        print(json.dumps(keras_jax_times(args.batches)))
        return
    env = dict(os.environ, KERAS_BACKEND="jax")
    done = subprocess.run([sys.executable, __file__, "--keras-jax", "--batches", *map(str, args.batches)],
                          env=env, capture_output=True, text=True)
    keras_times = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else {}
    if done.returncode:
        print(f"keras/jax failed: {done.stderr.strip()[-300:]}")
    import amber

    rows = []
    for (size, channels, stride), batch in itertools.product(SHAPES, args.batches):
        x, k = arrays(size, channels, batch)
        key, nan = f"{size},{channels},{stride},{batch}", (float("nan"),) * 2
        np.testing.assert_allclose(amber.ops.depthwise_conv(x, k, stride, "same"), numpy_loop(x, k, stride),
                                   rtol=1e-6, atol=1e-6)
        amber_wall, amber_cpu = median_timing(lambda: amber.ops.depthwise_conv(x, k, stride, "same"))
        loop = median_seconds(lambda: numpy_loop(x, k, stride))
        rows.append({"shape": f"{batch}x{size}x{size}x{channels}/s{stride}", "amber_ms": amber_wall * 1e3,
                     "amber_cpu_ms": amber_cpu * 1e3, "numpy_loop_ms": loop * 1e3,
                     "keras_jax_ms": keras_times.get(key, nan)[0] * 1e3, "keras_jax_jit_ms": keras_times.get(key, nan)[1] * 1e3})
    print(f"depthwise 3x3 'same' float32, median wall ms, load average {os.getloadavg()[0]:.1f}")
    print(f"{'input/stride':24} {'amber':>8} {'(cpu)':>8} {'numpy loop':>11} {'jax eager':>10} {'jax jit':>8} "
          f"{'vs loop':>8} {'vs jit':>7}")
    for r in rows:
        print(f"{r['shape']:24} {r['amber_ms']:8.3f} {r['amber_cpu_ms']:8.3f} {r['numpy_loop_ms']:11.3f} "
              f"{r['keras_jax_ms']:10.3f} {r['keras_jax_jit_ms']:8.3f} {r['numpy_loop_ms'] / r['amber_ms']:7.1f}x "
              f"{r['keras_jax_jit_ms'] / r['amber_ms']:6.1f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
