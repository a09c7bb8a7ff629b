"""The ``amber`` command line.

- ``amber demo``: build the Keras guide's MLP, train it, save it as ``.keras``, load it back
  memory-mapped, check predictions and continued training, and write/read weights files.
- ``amber inspect FILE``: what a ``.keras``, ``.h5``, ``.weights.h5`` or ``.safetensors`` file
  holds (entries, datasets, shapes, dtypes).
- ``amber diff A B``: compare the tensors of two model or weights files (names, shapes, dtypes,
  largest absolute difference).
- ``amber convert SRC DST``: load a whole model (``.keras`` or legacy ``.h5``) and save it as
  ``.keras``, legacy ``.h5``, ``.weights.h5``, ``.safetensors`` or sharded ``.weights.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time


def _demo(args: argparse.Namespace) -> int:
    import numpy as np

    import amber as keras

    out = args.dir or tempfile.mkdtemp(prefix="amber-demo-")
    os.makedirs(out, exist_ok=True)
    print(f"amber {keras.__version__}: writing into {out}")

    # The guide's 784-64-64-10 MLP on a synthetic, learnable task.
    rng = np.random.default_rng(0)
    x = rng.random((2048, 784), dtype=np.float32)
    y = (x[:, :10].argmax(axis=1)).astype("int64")
    inputs = keras.Input(shape=(784,), name="digits")
    h = keras.layers.Dense(64, activation="relu", name="dense_1")(inputs)
    h = keras.layers.Dense(64, activation="relu", name="dense_2")(h)
    outputs = keras.layers.Dense(10, name="predictions")(h)
    model = keras.Model(inputs, outputs, name="3_layer_mlp")
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.summary()
    t0 = time.perf_counter()
    history = model.fit(x, y, batch_size=32, epochs=3, verbose=2)
    steps = 3 * len(x) // 32
    print(f"trained {steps} steps in {time.perf_counter() - t0:.2f} s; "
          f"loss {history.history['loss'][0]:.3f} -> {history.history['loss'][-1]:.3f}")

    path = os.path.join(out, "mlp.keras")
    t0 = time.perf_counter()
    model.save(path)
    print(f"\nsaved {path} ({os.path.getsize(path):,} bytes) in {(time.perf_counter() - t0) * 1e3:.1f} ms")
    _inspect(path, limit=12)

    t0 = time.perf_counter()
    loaded = keras.models.load_model(path)
    ms = (time.perf_counter() - t0) * 1e3
    kernel = loaded.get_layer("dense_1").kernel.value
    print(f"\nloaded in {ms:.1f} ms; dense_1 kernel is a read-only view of the file: "
          f"{not kernel.flags.writeable and not kernel.flags.owndata}")
    same = np.array_equal(model.predict(x[:256], verbose=0), loaded.predict(x[:256], verbose=0))
    print(f"predictions equal to the original model's: {same}")
    h1 = model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0).history["loss"][0]
    h2 = loaded.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0).history["loss"][0]
    print(f"one more epoch, original vs reloaded (optimizer state restored): {h1:.6f} vs {h2:.6f}")

    for name in ("mlp.weights.h5", "mlp.safetensors"):
        wpath = os.path.join(out, name)
        loaded.save_weights(wpath)
        fresh = keras.models.clone_model(loaded)
        fresh.load_weights(wpath)
        ok = all(np.array_equal(a, b) for a, b in zip(fresh.get_weights(), loaded.get_weights()))
        print(f"{name}: {os.path.getsize(wpath):,} bytes, weights read back equal: {ok}")
    tensors = keras.saving.load_safetensors(os.path.join(out, "mlp.safetensors"))
    print(f"safetensors names: {sorted(tensors)[:3]} ...")
    return 0 if same else 1


def _inspect(path: str, limit: int | None = None) -> None:
    from amber import _native

    def show_h5(h5, indent="  "):
        rows = [(p, k) for p, k in h5.visit() if k == "dataset"]
        for p, _ in rows[:limit] if limit else rows:
            print(f"{indent}{p:48s} {h5.dtype(p):8s} {tuple(h5.shape(p))}")
        if limit and len(rows) > limit:
            print(f"{indent}... {len(rows) - limit} more datasets")

    if path.endswith(".safetensors"):
        tensors, metadata = _native.safetensors_load(path)
        for name, arr in list(tensors.items())[:limit] if limit else tensors.items():
            print(f"  {name:48s} {arr.dtype.name:8s} {arr.shape}")
        print(f"  metadata: {metadata}")
        return
    try:
        archive = _native.Archive.open(path)
    except ValueError:
        archive = None
    if archive is not None and path.endswith(".keras"):
        for e in archive.entries():
            print(f"  entry {e['name']:20s} {e['method']:8s} {e['size']:>12,} bytes at offset {e['data_offset']}")
        if "model.weights.h5" in archive.names():
            show_h5(archive.open_h5("model.weights.h5"), "    ")
        return
    h5 = _native.H5File.open(path)
    for key, value in h5.attrs("/").items():
        text = str(value)
        print(f"  @{key}: {text[:70]}{'...' if len(text) > 70 else ''}")
    show_h5(h5)


def _tensors(path: str) -> dict:
    """Every stored tensor of a model or weights file, by its path in the file (mapped)."""
    from amber import _native

    if path.endswith(".safetensors"):
        return dict(_native.safetensors_load(path)[0])
    if path.endswith(".keras"):
        h5 = _native.Archive.open(path).open_h5("model.weights.h5")
    else:
        h5 = _native.H5File.open(path)
    return {p: h5.read(p) for p, kind in h5.visit() if kind == "dataset"}


def _diff(args: argparse.Namespace) -> int:
    import numpy as np

    a, b = _tensors(args.a), _tensors(args.b)
    differ = 0
    for name in sorted(set(a) | set(b)):
        if name not in b or name not in a:
            print(f"  only in {'A' if name in a else 'B'}: {name}")
            differ += 1
        elif a[name].shape != b[name].shape or a[name].dtype != b[name].dtype:
            print(f"  {name}: {a[name].dtype}{a[name].shape} vs {b[name].dtype}{b[name].shape}")
            differ += 1
        elif a[name].size:
            gap = float(np.max(np.abs(a[name].astype("float64") - b[name].astype("float64"))))
            if gap > args.atol:
                print(f"  {name}: max |A-B| = {gap:.3g}")
                differ += 1
    print(f"{len(set(a) | set(b))} tensors compared, {differ} differ")
    return 1 if differ else 0


def _convert(args: argparse.Namespace) -> int:
    import amber as keras

    model = keras.models.load_model(args.src, compile=not args.no_compile)
    dst = args.dst
    if dst.endswith((".keras", ".h5")) and not dst.endswith(".weights.h5"):
        model.save(dst)
    else:
        model.save_weights(dst)
    print(f"{args.src} -> {dst}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="amber", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="train, save, load (mapped), resume, write weights files")
    demo.add_argument("--dir", help="folder for the files (default: a new temporary folder)")
    demo.set_defaults(func=_demo)
    insp = sub.add_parser("inspect", help="list what a model or weights file holds")
    insp.add_argument("path")
    insp.set_defaults(func=lambda a: _inspect(a.path) or 0)
    diff = sub.add_parser("diff", help="compare the tensors of two model or weights files")
    diff.add_argument("a")
    diff.add_argument("b")
    diff.add_argument("--atol", type=float, default=0.0, help="ignore differences up to this")
    diff.set_defaults(func=_diff)
    conv = sub.add_parser("convert", help="re-save a model in another format")
    conv.add_argument("src")
    conv.add_argument("dst")
    conv.add_argument("--no-compile", action="store_true", help="drop the training configuration")
    conv.set_defaults(func=_convert)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # output piped into `head` and the like
        return 0
    except (ValueError, OSError, KeyError) as e:
        print(f"amber: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
