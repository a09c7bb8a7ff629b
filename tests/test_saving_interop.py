"""Files written by real Keras (the shared corpus) load in amber and reproduce Keras's outputs;
files amber writes have Keras's layout, read back with h5py/zipfile as the references."""

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest


SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FIXTURES = SHARED / "interop" / "fixtures"

pytestmark = pytest.mark.skipif(not FIXTURES.is_dir(), reason="shared interop corpus (../shared/interop) is absent")


def _manifest():
    if not FIXTURES.is_dir():
        return []
    return json.loads((FIXTURES / "MANIFEST.json").read_text())["cases"]


def _available_layers():
    import amber.layers
    import amber.models

    names = set(getattr(amber.layers, "__all__", None) or dir(amber.layers))
    names |= {"Functional"} if hasattr(amber.models, "Functional") or hasattr(amber, "Model") else set()
    names.add("CustomLayer")  # defined by the test below, as the corpus README describes it
    return names


def _core_cases():
    """(case, model file) for every case whose layers amber has."""
    try:
        available = _available_layers()
    except ImportError:
        return []
    out = []
    for case in _manifest():
        if set(case["model"]["layer_classes"]) <= available:
            for model_file in case["model_files"]:
                out.append(pytest.param(case, model_file, id=f"{case['name']}:{model_file['file']}"))
    return out


def _register_custom_objects():
    import amber as keras

    @keras.saving.register_keras_serializable(package="MyLayers")
    class CustomLayer(keras.layers.Layer):
        def __init__(self, factor):
            super().__init__()
            self.factor = factor

        def call(self, x):
            return x * self.factor

        def get_config(self):
            return {"factor": self.factor}

    @keras.saving.register_keras_serializable(package="my_package", name="custom_fn")
    def custom_fn(x):
        return x ** 2


@pytest.fixture(autouse=True)
def _registry():
    from amber import saving

    _register_custom_objects()
    yield
    saving.get_custom_objects().clear()


def _inputs(case):
    path = FIXTURES / case["input"]
    if path.suffix == ".npz":
        with np.load(path) as data:
            return {k: data[k] for k in data.files}
    return np.load(path)


def _expected(case):
    path = FIXTURES / case["expected"]
    if path.suffix == ".npz":
        with np.load(path) as data:
            return [data[k] for k in data.files]
    return [np.load(path)]


def _architecture(case, model_file):
    from amber import saving
    from amber.saving import keras2_config, keras_file, legacy_h5, h5_io

    arch = FIXTURES / model_file["architecture"]
    if arch.suffix == ".keras":
        with zipfile.ZipFile(arch) as z:
            config = json.loads(z.read("config.json"))
        return keras_file.model_from_config(config, compile=False)
    if arch.suffix == ".json":
        return saving.model_from_json(arch.read_text())
    reader = h5_io.H5Reader.open(str(arch))
    config = keras2_config.upgrade(legacy_h5._read_json_attr(reader, "model_config"))
    return keras_file.model_from_config(config, compile=False)


def _load(case, model_file):
    from amber import saving

    path = str(FIXTURES / model_file["file"])
    if model_file["load"] == "load_model":
        return saving.load_model(path)
    model = _architecture(case, model_file)
    model.load_weights(path)
    return model


def _check(actual, expected, tolerance):
    actual = actual if isinstance(actual, (list, tuple)) else [actual]
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(np.asarray(a), e, rtol=tolerance["rtol"], atol=tolerance["atol"])


@pytest.mark.parametrize("case,model_file", _core_cases())
def test_keras_file_loads_and_predicts(case, model_file, native_io):
    model = _load(case, model_file)
    # Keras puts datasets at odd offsets in its zips; the model computes on them in place.
    _check(model.predict(_inputs(case), verbose=0), _expected(case), case["tolerance"])


def _continuation_cases():
    out = []
    for param in _core_cases():
        case, model_file = param.values
        after = case.get("after_fit")
        if after and model_file["file"] in [after["from"], *after.get("also_from", [])]:
            out.append(param)
    return out


@pytest.mark.parametrize("case,model_file", _continuation_cases())
def test_training_continues_from_saved_optimizer_state(case, model_file, native_io):
    from amber import saving

    after = case["after_fit"]
    model = saving.load_model(str(FIXTURES / model_file["file"]))
    assert model.optimizer is not None
    x = np.load(FIXTURES / after["fit_x"])
    y = np.load(FIXTURES / after["fit_y"])
    model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
    _check(model.predict(_inputs(case), verbose=0), [np.load(FIXTURES / after["expected"])], after["tolerance"])


def test_weights_file_layout_matches_keras(tmp_path, native_io):
    """Build mlp_3layer from Keras's config, save its weights, compare with Keras's file."""
    h5py = pytest.importorskip("h5py")
    from amber.saving import keras_file

    with zipfile.ZipFile(FIXTURES / "mlp_3layer.keras") as z:
        config = json.loads(z.read("config.json"))
    model = keras_file.model_from_config(config, compile=False)
    model.load_weights(str(FIXTURES / "mlp_3layer.weights.h5"))
    out = tmp_path / "m.weights.h5"
    model.save_weights(str(out))

    def layout(path, skip_optimizer):
        items = {}
        with h5py.File(path, "r") as f:
            def visit(name, obj):
                if skip_optimizer and name.startswith("optimizer"):
                    return
                attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in obj.attrs.items()}
                items[name] = (obj.shape if isinstance(obj, h5py.Dataset) else "group", attrs)
            f.visititems(visit)
        return items

    ours = layout(out, False)
    keras = layout(FIXTURES / "mlp_3layer.weights.h5", True)
    assert ours == keras
    with h5py.File(out, "r") as a, h5py.File(FIXTURES / "mlp_3layer.weights.h5", "r") as b:
        for name, (kind, _) in keras.items():
            if kind != "group":
                np.testing.assert_array_equal(a[name][()], b[name][()])
