"""amber.export: an exported artifact serves the same outputs after reloading, and its
manifest cannot turn base-class utilities into endpoints."""

import json

import numpy as np
import pytest



def _model(keras):
    inputs = keras.Input(shape=(16,))
    x = keras.layers.Dense(8, activation="relu")(inputs)
    x = keras.layers.BatchNormalization()(x)
    outputs = keras.layers.Dense(1, activation="sigmoid")(x)
    return keras.Model(inputs, outputs)


def test_export_and_reload_serves_same_outputs(tmp_path, native_io):
    import amber as keras

    model = _model(keras)
    data = np.random.default_rng(0).random((8, 16), dtype=np.float32)
    expected = np.asarray(model(data))
    model.export(str(tmp_path / "exported"))
    reloaded = keras.export.load(str(tmp_path / "exported"))
    np.testing.assert_allclose(reloaded.serve(data), expected, rtol=1e-6, atol=1e-7)


def test_export_archive_endpoint_and_collection(tmp_path, native_io):
    import amber as keras

    layer = keras.layers.Dense(3)
    layer.build((None, 4))
    archive = keras.export.ExportArchive()
    archive.track(layer)
    archive.add_endpoint("call", layer.call, input_signature=[keras.InputSpec(shape=(None, 4), dtype="float32")])
    archive.add_variable_collection("my_vars", layer.weights)
    assert len(archive.my_vars) == 2
    archive.write_out(str(tmp_path / "art"))
    revived = keras.export.load(str(tmp_path / "art"))
    x = np.ones((2, 4), dtype=np.float32)
    np.testing.assert_allclose(revived.call(x), np.asarray(layer(x)), rtol=1e-6)
    assert [v.shape for v in revived.my_vars] == [(4, 3), (3,)]
    with pytest.raises(ValueError, match="track"):
        keras.export.ExportArchive().add_endpoint("f", layer.call)


def test_manifest_cannot_name_utility_methods(tmp_path, native_io):
    import amber as keras

    _model(keras).export(str(tmp_path / "exported"))
    manifest_path = tmp_path / "exported" / "endpoints.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["endpoints"]["serve"]["method"] = "save"
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="not an inference method"):
        keras.export.load(str(tmp_path / "exported"))
    manifest["endpoints"]["serve"]["method"] = "__class__"
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="malformed endpoint"):
        keras.export.load(str(tmp_path / "exported"))
