"""Whole `keras.applications` architectures, built by real Keras 3 (numpy backend, weights=None,
non-trivial BatchNormalization/Normalization statistics), against amber both ways:

1. the `.keras` file Keras saved loads in amber and predicts what Keras predicted;
2. the `.keras` and `.weights.h5` files amber saves load in real Keras (a fresh model of the
   same architecture for the weights file) and predict the same;
3. the `config.json` amber writes equals Keras's key by key (only `shared_object_id`
   bookkeeping aside: names carry over from the loaded file).

Keras runs in subprocesses (`applications_reference.py`): its backend is fixed at import and
this process may already hold Keras state. The Keras side is built once per session.
"""

import importlib.util
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import amber

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from applications_reference import ARCHITECTURES  # noqa: E402

NAMES = list(ARCHITECTURES)
RTOL, ATOL = 1e-4, 1e-5


def _run_keras(step, directory, *names):
    for module in ("keras", "jax"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (test-only reference: real Keras 3 on its numpy backend)")
    env = dict(os.environ, KERAS_BACKEND="numpy")
    done = subprocess.run([sys.executable, str(HERE / "applications_reference.py"), step, str(directory), *names],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"Keras {step} step failed:\n{done.stderr[-4000:]}"
    return json.loads((Path(directory) / f"{step}.json").read_text())


def _require_ok(report, name, what):
    status = report.get(name)
    assert status == "ok", f"{what} failed for {name}:\n{status}"


@pytest.fixture(scope="session")
def keras_files(tmp_path_factory):
    """Directory with Keras's `NAME.keras` and `NAME.npz` (input batch, Keras predictions)."""
    directory = tmp_path_factory.mktemp("applications")
    return directory, _run_keras("build", directory)


@pytest.fixture(scope="session")
def amber_models(keras_files):
    """Each Keras file loaded by amber (or the error), kept for the whole session."""
    directory, report = keras_files
    models = {}
    for name in NAMES:
        if report.get(name) != "ok":
            continue
        try:
            models[name] = amber.models.load_model(directory / f"{name}.keras")
        except Exception as error:  # surfaced by the per-architecture tests
            models[name] = error
    return models


def _model(keras_files, amber_models, name):
    _require_ok(keras_files[1], name, "Keras build")
    model = amber_models[name]
    if isinstance(model, Exception):
        raise AssertionError(f"amber could not load Keras's {name}.keras") from model
    return model


@pytest.fixture(scope="session")
def keras_reloads(keras_files, amber_models):
    """amber saves `.keras` and `.weights.h5` of every loaded model; Keras loads them all."""
    directory, _ = keras_files
    for name, model in amber_models.items():
        if not isinstance(model, Exception):
            model.save(directory / f"{name}.amber.keras")
            model.save_weights(directory / f"{name}.amber.weights.h5")
    return directory, _run_keras("check", directory)


def _reference(directory, name):
    data = np.load(directory / f"{name}.npz")
    return data["x"], data["y"]


@pytest.mark.parametrize("name", NAMES)
def test_keras_file_predicts_in_amber(keras_files, amber_models, name):
    directory, _ = keras_files
    model = _model(keras_files, amber_models, name)
    x, expected = _reference(directory, name)
    got = np.asarray(model.predict(x, verbose=0))
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)
    # Called directly (not through predict) and one sample at a time: the same numbers.
    np.testing.assert_allclose(np.asarray(model(x[:1])), expected[:1], rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", NAMES)
def test_amber_files_predict_in_keras(keras_files, amber_models, keras_reloads, name):
    _model(keras_files, amber_models, name)
    directory, report = keras_reloads
    _require_ok(report, name, "Keras loading amber's files")
    _, expected = _reference(directory, name)
    reloaded = np.load(directory / f"{name}.check.npz")
    np.testing.assert_allclose(reloaded["keras_file"], expected, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(reloaded["weights_file"], expected, rtol=RTOL, atol=ATOL)


def _without_bookkeeping(value):
    """Drops `shared_object_id` (Keras numbers shared objects per save)."""
    if isinstance(value, dict):
        return {k: _without_bookkeeping(v) for k, v in value.items() if k != "shared_object_id"}
    if isinstance(value, list):
        return [_without_bookkeeping(v) for v in value]
    return value


def _differences(keras_value, amber_value, path="config"):
    if isinstance(keras_value, dict) and isinstance(amber_value, dict):
        found = [f"{path}: keys only in Keras {sorted(set(keras_value) - set(amber_value))}, only in amber "
                 f"{sorted(set(amber_value) - set(keras_value))}"] if set(keras_value) != set(amber_value) else []
        for key in keras_value.keys() & amber_value.keys():
            found += _differences(keras_value[key], amber_value[key], f"{path}.{key}")
        return found
    if isinstance(keras_value, list) and isinstance(amber_value, list) and len(keras_value) == len(amber_value):
        found = []
        for index, (k, a) in enumerate(zip(keras_value, amber_value)):
            label = k.get("name", index) if isinstance(k, dict) else index
            found += _differences(k, a, f"{path}[{label}]")
        return found
    if keras_value != amber_value or type(keras_value) is not type(amber_value):
        return [f"{path}: Keras {keras_value!r} != amber {amber_value!r}"]
    return []


@pytest.mark.parametrize("name", NAMES)
def test_config_equals_keras(keras_files, amber_models, tmp_path, name):
    directory, _ = keras_files
    model = _model(keras_files, amber_models, name)
    model.save(tmp_path / "saved.keras")

    def config_of(path):
        with zipfile.ZipFile(path) as archive:
            return _without_bookkeeping(json.loads(archive.read("config.json")))

    differences = _differences(config_of(directory / f"{name}.keras"), config_of(tmp_path / "saved.keras"))
    assert not differences, f"{len(differences)} config differences, first ones:\n" + "\n".join(differences[:15])


@pytest.mark.parametrize("name", NAMES)
def test_layers_and_weights_file_equal_keras(keras_files, amber_models, tmp_path, name):
    """`model.layers` leaves out operation nodes (`x * 0.5`) like Keras, and the weights file
    inside the `.keras` amber writes holds exactly Keras's datasets (paths and values, read
    with h5py from both archives)."""
    h5py = pytest.importorskip("h5py")
    directory, _ = keras_files
    model = _model(keras_files, amber_models, name)
    model.save(tmp_path / "saved.keras")

    def datasets(path):
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
            data = archive.read("model.weights.h5")
        found = {}
        with h5py.File(io.BytesIO(data), "r") as stored:
            stored.visititems(lambda key, item: found.__setitem__(key, item[()])
                              if isinstance(item, h5py.Dataset) else None)
        return config, found

    keras_config, keras_data = datasets(directory / f"{name}.keras")
    _, amber_data = datasets(tmp_path / "saved.keras")
    entries = keras_config["config"]["layers"]
    graph_ops = [e for e in entries if e["module"] == "keras.src.ops.numpy"]
    assert len(model.layers) == len(entries) - len(graph_ops)
    assert sorted(amber_data) == sorted(keras_data)
    for key, value in keras_data.items():
        assert amber_data[key].dtype == value.dtype, key
        np.testing.assert_array_equal(amber_data[key], value, err_msg=key)


def test_symbolic_arithmetic_records_keras_operations(keras_files, tmp_path):
    """`x * (1 / 6)`, `x + 3.0`, ... on amber's symbolic tensors become the graph operations
    Keras writes (MobileNetV3's hard-sigmoid): the same config entries as in Keras's file,
    absent from `model.layers`, computed like numpy, and loaded by real Keras."""
    directory, report = keras_files
    _require_ok(report, "MobileNetV3Small", "Keras build")
    inputs = amber.Input((4,))
    hidden = amber.layers.Dense(3, name="dense_in")(inputs)
    outputs = (-(amber.layers.ReLU(6.0)(hidden + 3.0) * (1.0 / 6.0)) - hidden / 2.0) ** 2.0
    model = amber.Model(inputs, outputs)
    assert [type(layer).__name__ for layer in model.layers] == ["InputLayer", "Dense", "ReLU"]

    x = np.random.default_rng(7).normal(size=(5, 4)).astype("float32")
    kernel, bias = (np.asarray(w) for w in model.get_weights())
    h = x @ kernel + bias
    expected = (-(np.clip(h + 3.0, 0.0, 6.0) * (1.0 / 6.0)) - h / 2.0) ** 2.0
    np.testing.assert_allclose(np.asarray(model.predict(x, verbose=0)), expected, rtol=1e-5, atol=1e-6)

    model.save(tmp_path / "ops.keras")
    with zipfile.ZipFile(tmp_path / "ops.keras") as archive:
        ours = json.loads(archive.read("config.json"))["config"]["layers"]
    with zipfile.ZipFile(directory / "MobileNetV3Small.keras") as archive:
        theirs = json.loads(archive.read("config.json"))["config"]["layers"]
    keras_multiply = next(e for e in theirs if e["module"] == "keras.src.ops.numpy" and e["class_name"] == "Multiply")
    our_multiply = next(e for e in ours if e["class_name"] == "Multiply")
    assert {k: v for k, v in our_multiply.items() if k not in ("name", "config", "inbound_nodes")} == \
        {k: v for k, v in keras_multiply.items() if k not in ("name", "config", "inbound_nodes")}
    assert set(our_multiply["config"]) == set(keras_multiply["config"]) == {"name"}
    assert our_multiply["inbound_nodes"][0]["args"][1] == 1.0 / 6.0
    assert sorted(e["class_name"] for e in ours if e["module"] == "keras.src.ops.numpy") == \
        ["Add", "Multiply", "Negative", "Power", "Subtract", "TrueDivide"]

    np.save(tmp_path / "ops.x.npy", x)
    _require_ok(_run_keras("predict", tmp_path, "ops"), "ops", "Keras loading amber's operation nodes")
    np.testing.assert_allclose(np.load(tmp_path / "ops.out.npy"), expected, rtol=1e-5, atol=1e-6)
