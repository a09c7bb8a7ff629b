"""The Keras-made convolutional models of the shared interop corpus (cnn_small,
mobilenetv2_small): rebuilt from their config.json, weights read from model.weights.h5 with
h5py, predictions equal to the Keras-computed expected.npy. Also through amber's own
load_model when the native archive reader is part of the build."""

import io
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

import amber

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "interop" / "fixtures"
MODELS = ["cnn_small", "mobilenetv2_small"]


def _fixture(name, suffix):
    path = FIXTURES / f"{name}{suffix}"
    if not FIXTURES.is_dir():
        pytest.skip(f"the shared interop corpus is absent ({FIXTURES} not found)")
    assert path.is_file(), f"the interop corpus has no {path.name}"
    return path


def _keras_snake_case(name):
    # Keras's object naming for the weights file: "Conv2D" -> "conv2d",
    # "BatchNormalization" -> "batch_normalization".
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _build_from_archive(name):
    h5py = pytest.importorskip("h5py", reason="h5py is the independent reader of the weights file")
    with zipfile.ZipFile(_fixture(name, ".keras")) as archive:
        config = json.loads(archive.read("config.json"))
        weights_file = archive.read("model.weights.h5")
    from amber.saving import deserialize_keras_object

    model = deserialize_keras_object(config)
    counts = {}
    with h5py.File(io.BytesIO(weights_file), "r") as weights:
        saved = set(weights["layers"].keys())
        for layer in model.layers:
            # Keras keys each layer of a Functional model by its class name, numbered in order.
            base = _keras_snake_case(type(layer).__name__)
            count = counts.get(base, 0)
            counts[base] = count + 1
            key = base if count == 0 else f"{base}_{count}"
            assert key in saved, f"layer {layer.name} ({key}) has no entry in the weights file"
            group = weights["layers"][key]["vars"]
            values = [group[str(i)][()] for i in range(len(group))]
            assert len(values) == len(layer.weights), layer.name
            if values:
                layer.set_weights(values)
    return model, config


@pytest.mark.parametrize("name", MODELS)
def test_model_from_config_and_h5py_weights_matches_keras_prediction(name):
    model, config = _build_from_archive(name)
    x = np.load(_fixture(name, ".input.npy"))
    expected = np.load(_fixture(name, ".expected.npy"))
    got = np.asarray(model(x))
    assert got.shape == expected.shape and got.dtype == expected.dtype
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    # the layer classes of the file are the ones rebuilt
    assert [type(layer).__name__ for layer in model.layers] == [
        layer["class_name"] for layer in config["config"]["layers"]]


def test_mobilenet_has_the_layers_it_is_meant_to_exercise():
    model, _ = _build_from_archive("mobilenetv2_small")
    kinds = {type(layer).__name__ for layer in model.layers}
    assert {"DepthwiseConv2D", "ZeroPadding2D", "ReLU", "BatchNormalization", "Add",
            "GlobalAveragePooling2D", "Conv2D", "Dense"} <= kinds


@pytest.mark.parametrize("name", MODELS)
def test_load_model_matches_keras_prediction(name):
    path = _fixture(name, ".keras")
    model = amber.models.load_model(path)
    x = np.load(_fixture(name, ".input.npy"))
    np.testing.assert_allclose(np.asarray(model(x)), np.load(_fixture(name, ".expected.npy")),
                               rtol=1e-4, atol=1e-5)
