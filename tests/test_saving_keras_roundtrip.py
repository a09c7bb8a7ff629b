"""Files amber writes load in real Keras 3 (numpy backend, in a subprocess) with the same
predictions, and Keras writes back the same config.json."""

import json
import os
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest


KERAS_SCRIPT = textwrap.dedent(
    """
    import os, sys, json
    os.environ["KERAS_BACKEND"] = "numpy"
    import numpy as np
    import keras

    mode, path, x_path, out_path, extra = sys.argv[1:6]
    x = np.load(x_path)
    if mode == "load_model":
        model = keras.saving.load_model(path)
        model.save(extra)
    else:
        with open(extra) as f:
            model = keras.saving.deserialize_keras_object(json.load(f))
        model.load_weights(path)
    np.save(out_path, model.predict(x, verbose=0))
    print("compiled", getattr(model, "optimizer", None) is not None)
    """
)


def _keras_available():
    try:
        out = subprocess.run([sys.executable, "-c", "import os; os.environ['KERAS_BACKEND']='numpy'; import keras"],
                             capture_output=True, timeout=120)
        return out.returncode == 0
    except Exception:
        return False


needs_keras = pytest.mark.skipif(not _keras_available(), reason="real Keras 3 with its numpy backend is not importable")


def _run_keras(tmp_path, mode, path, x, extra):
    x_path = tmp_path / "x.npy"
    out_path = tmp_path / "keras_out.npy"
    np.save(x_path, x)
    proc = subprocess.run([sys.executable, "-c", KERAS_SCRIPT, mode, str(path), str(x_path), str(out_path), str(extra)],
                          capture_output=True, text=True, timeout=300, env=dict(os.environ, KERAS_BACKEND="numpy"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return np.load(out_path), proc.stdout


def _functional_model(keras):
    inputs = keras.Input(shape=(32,), name="features")
    x = keras.layers.Dense(16, activation="relu", name="hidden")(inputs)
    x = keras.layers.BatchNormalization(name="norm")(x)
    x = keras.layers.Dropout(0.25, name="drop")(x)
    outputs = keras.layers.Dense(1, name="out")(x)
    model = keras.Model(inputs, outputs, name="roundtrip_mlp")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="mean_squared_error")
    rng = np.random.default_rng(7)
    model.fit(rng.random((32, 32), dtype=np.float32), rng.random((32, 1), dtype=np.float32), epochs=2, verbose=0)
    return model


def _sequential_model(keras):
    model = keras.Sequential([
        keras.Input(shape=(8,)),
        keras.layers.Dense(4, activation="tanh", name="a"),
        keras.layers.Dense(2, name="b"),
    ], name="roundtrip_seq")
    return model


def _strip(value):
    """Drop what legitimately differs between writers: shared-object ids."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k != "shared_object_id"}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _diff(a, b, path=""):
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                out.append(f"{path}/{key}: only in {'keras' if key in b else 'amber'}")
            else:
                out.extend(_diff(a[key], b[key], f"{path}/{key}"))
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _diff(x, y, f"{path}/{i}")]
    if isinstance(a, float) and isinstance(b, float):
        return [] if np.isclose(a, b, rtol=1e-6) else [f"{path}: {a!r} != {b!r}"]
    return [] if a == b else [f"{path}: amber {a!r} != keras {b!r}"]


@needs_keras
@pytest.mark.parametrize("build", [_functional_model, _sequential_model], ids=["functional", "sequential"])
def test_keras_loads_amber_keras_file(build, tmp_path, native_io):
    import amber as keras

    model = build(keras)
    path = tmp_path / "m.keras"
    model.save(str(path))
    with zipfile.ZipFile(path) as z:
        assert z.namelist() == ["metadata.json", "config.json", "model.weights.h5"]
        assert all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist())
        ours = json.loads(z.read("config.json"))
    x = np.random.default_rng(3).random((5, model.inputs[0].shape[-1]), dtype=np.float32)
    resaved = tmp_path / "keras_resaved.keras"
    theirs_out, stdout = _run_keras(tmp_path, "load_model", path, x, resaved)
    np.testing.assert_allclose(model.predict(x, verbose=0), theirs_out, rtol=1e-5, atol=1e-6)
    if getattr(model, "optimizer", None) is not None:
        assert "compiled True" in stdout
    with zipfile.ZipFile(resaved) as z:
        theirs = json.loads(z.read("config.json"))
    # Every layer config, key by key, is what Keras writes for the same model.
    differences = _diff(_strip(ours["config"]), _strip(theirs["config"]))
    assert not differences, "\n".join(differences[:40])


# The top level comes from Model.get_build_config/get_compile_config (the framework part):
# Keras writes build_config {"input_shape": null} for Functional models, compile_config {} when
# not compiled, and a compile_config without auto_scale_loss whose jit_compile is resolved.
@needs_keras
@pytest.mark.parametrize("build", [_functional_model, _sequential_model], ids=["functional", "sequential"])
def test_config_json_top_level_equals_keras(build, tmp_path, native_io):
    import amber as keras

    model = build(keras)
    path = tmp_path / "m.keras"
    model.save(str(path))
    with zipfile.ZipFile(path) as z:
        ours = json.loads(z.read("config.json"))
    x = np.random.default_rng(3).random((2, model.inputs[0].shape[-1]), dtype=np.float32)
    resaved = tmp_path / "keras_resaved.keras"
    _run_keras(tmp_path, "load_model", path, x, resaved)
    with zipfile.ZipFile(resaved) as z:
        theirs = json.loads(z.read("config.json"))
    differences = _diff(_strip(ours), _strip(theirs))
    assert not differences, "\n".join(differences[:40])


@needs_keras
def test_keras_loads_amber_weights_file(tmp_path, native_io):
    import amber as keras
    from amber.saving import serialize_keras_object

    model = _functional_model(keras)
    weights = tmp_path / "m.weights.h5"
    model.save_weights(str(weights))
    config = tmp_path / "config.json"
    config.write_text(json.dumps(serialize_keras_object(model)))
    x = np.random.default_rng(4).random((6, 32), dtype=np.float32)
    theirs, _ = _run_keras(tmp_path, "load_weights", weights, x, config)
    np.testing.assert_allclose(model.predict(x, verbose=0), theirs, rtol=1e-5, atol=1e-6)


@needs_keras
def test_keras_loads_amber_legacy_h5(tmp_path, native_io):
    import amber as keras

    model = _functional_model(keras)
    path = tmp_path / "m.h5"
    model.save(str(path))
    x = np.random.default_rng(5).random((4, 32), dtype=np.float32)
    theirs, _ = _run_keras(tmp_path, "load_model", path, x, tmp_path / "again.keras")
    np.testing.assert_allclose(model.predict(x, verbose=0), theirs, rtol=1e-5, atol=1e-6)


CORPUS = __import__("pathlib").Path(__file__).resolve().parents[1].parent / "shared" / "interop" / "fixtures"
RESAVED = ["seed_dense", "mlp_3layer", "seq_bn_dropout", "multi_io", "nested_pretrained", "opt_nadam",
           "sharded_weights", "cnn_small", "mobilenetv2_small"]

KERAS_BATCH_SCRIPT = textwrap.dedent(
    """
    import os, sys, json
    os.environ["KERAS_BACKEND"] = "numpy"
    import numpy as np
    import keras

    jobs = json.loads(sys.argv[1])
    for path, x_path, out_path in jobs:
        x = np.load(x_path, allow_pickle=False)
        inputs = {k: x[k] for k in x.files} if hasattr(x, "files") else x
        outputs = keras.saving.load_model(path).predict(inputs, verbose=0)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        np.savez(out_path, *[np.asarray(o) for o in outputs])
    """
)

# Keys the framework part writes differently from Keras (model-level build/compile configs);
# everything else must match.
FRAMEWORK_OWNED = ("/build_config", "/compile_config")


@needs_keras
@pytest.mark.skipif(not CORPUS.is_dir(), reason="shared interop corpus (../shared/interop) is absent")
@pytest.mark.parametrize("name", RESAVED)
def test_corpus_models_resaved_by_amber_load_in_keras(name, tmp_path, native_io):
    import amber as keras

    jobs = []
    model = keras.saving.load_model(str(CORPUS / f"{name}.keras"))
    path = tmp_path / f"{name}.keras"
    model.save(str(path))
    with zipfile.ZipFile(path) as z:
        ours = json.loads(z.read("config.json"))
    with zipfile.ZipFile(CORPUS / f"{name}.keras") as z:
        theirs = json.loads(z.read("config.json"))
    differences = [d for d in _diff(_strip(ours), _strip(theirs))
                   if not any(key in d.split(":")[0] for key in FRAMEWORK_OWNED)]
    assert not differences, f"{name}:\n" + "\n".join(differences[:20])
    suffix = ".npz" if (CORPUS / f"{name}.input.npz").exists() else ".npy"
    jobs.append([str(path), str(CORPUS / f"{name}.input{suffix}"), str(tmp_path / f"{name}.out.npz")])
    proc = subprocess.run([sys.executable, "-c", KERAS_BATCH_SCRIPT, json.dumps(jobs)], capture_output=True,
                          text=True, timeout=600, env=dict(os.environ, KERAS_BACKEND="numpy"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(tmp_path / f"{name}.out.npz") as got:
        outputs = [got[f"arr_{i}"] for i in range(len(got.files))]
    reference = CORPUS / f"{name}.expected{suffix}"
    if suffix == ".npz":
        with np.load(reference) as data:
            wanted = [data[k] for k in data.files]
    else:
        wanted = [np.load(reference)]
    tol = 1e-4 if name == "mobilenetv2_small" else 1e-5
    assert len(outputs) == len(wanted), name
    for a, b in zip(outputs, wanted):
        np.testing.assert_allclose(a, b, rtol=tol, atol=1e-5, err_msg=name)
