"""amber's own files: round trips, and layouts read back with the reference libraries (h5py,
zipfile, json, the safetensors package)."""

import json
import os
import zipfile

import numpy as np
import pytest


h5py = pytest.importorskip("h5py")


def _mlp(keras, name="mlp", compiled=True):
    inputs = keras.Input(shape=(6,), name="x")
    h = keras.layers.Dense(5, activation="relu", name="hidden")(inputs)
    h = keras.layers.BatchNormalization(name="bn")(h)
    outputs = keras.layers.Dense(2, name="out")(h)
    model = keras.Model(inputs, outputs, name=name)
    if compiled:
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="mean_squared_error")
        rng = np.random.default_rng(0)
        model.fit(rng.random((16, 6), dtype=np.float32), rng.random((16, 2), dtype=np.float32), epochs=1,
                  verbose=0)
    return model


def _x(n=4):
    return np.random.default_rng(1).random((n, 6), dtype=np.float32)


def _same_weights(a, b):
    wa, wb = a.get_weights(), b.get_weights()
    assert len(wa) == len(wb)
    for x, y in zip(wa, wb):
        np.testing.assert_array_equal(x, y)


# ------------------------------------------------------------------ .keras


@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "directory"])
def test_keras_roundtrip_restores_weights_and_optimizer(tmp_path, native_io, zipped):
    import amber as keras

    model = _mlp(keras)
    path = tmp_path / ("m.keras" if zipped else "m_dir")
    keras.saving.save_model(model, str(path), zipped=zipped)
    if zipped:
        with zipfile.ZipFile(path) as z:
            assert z.namelist() == ["metadata.json", "config.json", "model.weights.h5"]
            meta = json.loads(z.read("metadata.json"))
    else:
        assert sorted(os.listdir(path)) == ["config.json", "metadata.json", "model.weights.h5"]
        meta = json.loads((path / "metadata.json").read_text())
    assert meta["keras_version"].startswith("3.")
    loaded = keras.models.load_model(str(path))
    _same_weights(model, loaded)
    np.testing.assert_allclose(model.predict(_x(), verbose=0), loaded.predict(_x(), verbose=0), rtol=1e-6)
    assert loaded.optimizer is not None
    for a, b in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(a.numpy()), np.asarray(b.numpy()))


def test_weights_layout_read_with_h5py(tmp_path, native_io):
    import amber as keras

    model = _mlp(keras)
    path = tmp_path / "m.keras"
    model.save(str(path))
    with zipfile.ZipFile(path) as z:
        data = z.read("model.weights.h5")
    (tmp_path / "w.h5").write_bytes(data)
    with h5py.File(tmp_path / "w.h5", "r") as f:
        names = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f["layers/dense/vars"].attrs.items()}
        assert names == {"name": "hidden"}
        np.testing.assert_array_equal(f["layers/dense/vars/0"][()], model.get_layer("hidden").kernel.numpy())
        np.testing.assert_array_equal(f["layers/dense_1/vars/1"][()], model.get_layer("out").bias.numpy())
        assert [f[f"layers/batch_normalization/vars/{i}"].shape for i in range(4)] == [(5,)] * 4
        assert "layers/input_layer/vars" in f and len(f["layers/input_layer/vars"]) == 0
        assert f["vars"].attrs["name"] in ("mlp", b"mlp")
        assert f["optimizer/vars/0"].shape == () and f["optimizer/vars/0"][()] == 1
        assert len(f["optimizer/vars"]) == len(model.optimizer.variables)


def test_loaded_weights_are_read_only_views_and_mmap_false_copies(tmp_path, native_io):
    import amber as keras

    model = _mlp(keras, compiled=False)
    path = tmp_path / "m.keras"
    model.save(str(path))
    mapped = keras.saving.load_model(str(path))
    copied = keras.saving.load_model(str(path), mmap=False)
    kernel = mapped.get_layer("hidden").kernel
    assert not np.asarray(kernel.value).flags.writeable
    assert np.asarray(copied.get_layer("hidden").kernel.value).flags.writeable
    # Copy-on-write: training a mapped model never writes into the file's bytes.
    kernel.assign(np.zeros(kernel.shape, dtype="float32"))
    again = keras.saving.load_model(str(path))
    np.testing.assert_array_equal(again.get_layer("hidden").kernel.numpy(), model.get_layer("hidden").kernel.numpy())


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path, native_io):
    import amber as keras

    model = _mlp(keras, compiled=False)
    path = tmp_path / "m.keras"
    model.save(str(path))
    model.save(str(path))
    assert os.listdir(tmp_path) == ["m.keras"]


def test_wrong_shapes_and_counts_are_clear_errors(tmp_path, native_io):
    import amber as keras

    model = _mlp(keras, compiled=False)
    model.save_weights(str(tmp_path / "m.weights.h5"))
    inputs = keras.Input(shape=(6,), name="x")
    h = keras.layers.Dense(7, activation="relu", name="hidden")(inputs)
    h = keras.layers.BatchNormalization(name="bn")(h)
    other = keras.Model(inputs, keras.layers.Dense(2, name="out")(h))
    with pytest.raises(ValueError) as info:
        other.load_weights(str(tmp_path / "m.weights.h5"))
    message = str(info.value)
    assert "hidden" in message and "(6, 7)" in message and "(6, 5)" in message
    smaller = keras.Model(inputs := keras.Input(shape=(6,)), keras.layers.Dense(2)(inputs))
    with pytest.raises(ValueError, match=r"has shape \(6, 2\) but the file stores shape \(6, 5\)"):
        smaller.load_weights(str(tmp_path / "m.weights.h5"))


def test_skip_mismatch_loads_what_fits(tmp_path, native_io):
    import amber as keras

    model = _mlp(keras, compiled=False)
    model.save_weights(str(tmp_path / "m.weights.h5"))
    inputs = keras.Input(shape=(6,), name="x")
    h = keras.layers.Dense(5, activation="relu", name="hidden")(inputs)
    h = keras.layers.BatchNormalization(name="bn")(h)
    other = keras.Model(inputs, keras.layers.Dense(3, name="out")(h))
    with pytest.warns(UserWarning):
        other.load_weights(str(tmp_path / "m.weights.h5"), skip_mismatch=True)
    np.testing.assert_array_equal(other.get_layer("hidden").kernel.numpy(), model.get_layer("hidden").kernel.numpy())


def test_missing_file_and_unknown_extension(tmp_path):
    import amber as keras

    with pytest.raises(ValueError, match="not found"):
        keras.models.load_model(str(tmp_path / "nope.keras"))
    (tmp_path / "m.pkl").write_bytes(b"\x80\x04")
    with pytest.raises(ValueError, match="not supported"):
        keras.models.load_model(str(tmp_path / "m.pkl"))


# ------------------------------------------------------------------ sharded


def test_sharded_roundtrip_and_index_format(tmp_path, native_io):
    import amber as keras

    model = _mlp(keras)
    index = tmp_path / "w.weights.json"
    model.save_weights(str(index), max_shard_size=400 / 1024 ** 3)
    data = json.loads(index.read_text())
    assert set(data) == {"metadata", "weight_map"}
    shards = sorted(p.name for p in tmp_path.glob("w_*.weights.h5"))
    assert len(shards) > 1 and shards[0] == "w_00000.weights.h5"
    assert set(data["weight_map"]["/layers/dense/vars"]) <= set(shards)
    total = 0
    for name in shards:
        with h5py.File(tmp_path / name, "r") as f:
            f.visititems(lambda n, o: None)
            def add(n, o):
                nonlocal total
                if isinstance(o, h5py.Dataset):
                    total += o.nbytes
            f.visititems(add)
    assert data["metadata"]["total_size"] == total
    other = _mlp(keras, compiled=False)
    other.load_weights(str(index))
    _same_weights(model, other)


# ------------------------------------------------------------------ safetensors


def test_safetensors_weights_and_plain_tensors(tmp_path, native_io):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    import amber as keras

    model = _mlp(keras, compiled=False)
    path = tmp_path / "m.safetensors"
    model.save_weights(str(path))
    reference = safetensors_numpy.load_file(str(path))
    assert set(reference) == {v.path for v in model.weights}
    for v in model.weights:
        np.testing.assert_array_equal(reference[v.path], v.numpy())
    other = _mlp(keras, compiled=False)
    other.load_weights(str(path))
    _same_weights(model, other)

    tensors = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([1, 2], dtype=np.int64)}
    keras.saving.save_safetensors(tensors, str(tmp_path / "t.safetensors"), metadata={"k": "v"})
    back = safetensors_numpy.load_file(str(tmp_path / "t.safetensors"))
    assert set(back) == {"a", "b"} and back["a"].tolist() == tensors["a"].tolist()
    ours = keras.saving.load_safetensors(str(tmp_path / "t.safetensors"))
    np.testing.assert_array_equal(ours["b"], tensors["b"])


# ------------------------------------------------------------------ legacy .h5


def test_legacy_h5_layout_and_roundtrip(tmp_path, native_io):
    import amber as keras

    model = _mlp(keras)
    path = tmp_path / "m.h5"
    model.save(str(path))
    with h5py.File(path, "r") as f:
        config = json.loads(f.attrs["model_config"])
        assert config["class_name"] == "Functional"
        training = json.loads(f.attrs["training_config"])
        assert training["optimizer_config"]["class_name"] == "Adam" and training["loss"] == "mean_squared_error"
        layer_names = [n.decode() if isinstance(n, bytes) else n for n in f["model_weights"].attrs["layer_names"]]
        assert layer_names == [layer.name for layer in model.layers]
        names = [n.decode() if isinstance(n, bytes) else n for n in f["model_weights/bn"].attrs["weight_names"]]
        bn = model.get_layer("bn")
        assert names == [v.path for v in list(bn.trainable_weights) + list(bn.non_trainable_weights)]
        np.testing.assert_array_equal(f["model_weights/hidden/hidden/kernel"][()],
                                      model.get_layer("hidden").kernel.numpy())
        assert len(f["optimizer_weights"].attrs["weight_names"]) == len(model.optimizer.variables)
    loaded = keras.models.load_model(str(path))
    _same_weights(model, loaded)
    for a, b in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(a.numpy()), np.asarray(b.numpy()))


def test_legacy_weights_topological_and_by_name(tmp_path, native_io):
    import amber as keras

    model = _mlp(keras, compiled=False)
    path = tmp_path / "w.h5"
    model.save_weights(str(path))
    with h5py.File(path, "r") as f:
        assert "layer_names" in f.attrs and "hidden" in f
    other = _mlp(keras, compiled=False)
    other.load_weights(str(path))
    _same_weights(model, other)
    # by_name: layers are matched by name, whatever their order; unknown names are ignored.
    inputs = keras.Input(shape=(6,))
    x = keras.layers.Dense(5, name="hidden")(inputs)
    partial = keras.Model(inputs, keras.layers.Dense(9, name="unrelated")(x))
    partial.load_weights(str(path), by_name=True)
    np.testing.assert_array_equal(partial.get_layer("hidden").kernel.numpy(), model.get_layer("hidden").kernel.numpy())


# ------------------------------------------------------------------ checkpoints


def test_checkpoint_objects_reader_and_status(tmp_path, native_io):
    import amber as keras

    model = _mlp(keras, compiled=False)
    hidden, out = model.get_layer("hidden"), model.get_layer("out")
    saved = keras.saving.Checkpoint(dense=hidden, kernel=out.kernel).save(str(tmp_path / "ckpt"))
    assert saved.endswith("ckpt-1")
    reader = keras.saving.load_checkpoint(saved)
    shapes = reader.get_variable_to_shape_map()
    assert shapes["dense/kernel/.ATTRIBUTES/VARIABLE_VALUE"] == [6, 5]
    assert shapes["kernel/.ATTRIBUTES/VARIABLE_VALUE"] == [5, 2]
    np.testing.assert_array_equal(reader.get_tensor("kernel/.ATTRIBUTES/VARIABLE_VALUE"), out.kernel.numpy())
    # The file is plain safetensors: the reference reader agrees.
    from safetensors.numpy import load_file

    assert set(load_file(saved)) == set(shapes)

    fresh = keras.layers.Dense(5)
    fresh.build((None, 6))
    kernel = keras.Variable(np.zeros((5, 2), dtype="float32")) if hasattr(keras, "Variable") else \
        keras.backend.Variable(np.zeros((5, 2), dtype="float32"))
    status = keras.saving.Checkpoint(dense=fresh, kernel=kernel).restore(saved)
    status.assert_consumed()
    np.testing.assert_array_equal(fresh.kernel.numpy(), hidden.kernel.numpy())
    np.testing.assert_array_equal(kernel.numpy(), out.kernel.numpy())
    lone = keras.layers.Dense(5)
    lone.build((None, 6))
    status = keras.saving.Checkpoint(dense=lone).restore(saved)
    status.assert_existing_objects_matched()
    with pytest.raises(AssertionError, match="not fully consumed"):
        status.assert_consumed()
    status.expect_partial()


def test_save_weights_without_extension_is_a_checkpoint(tmp_path, native_io):
    import amber as keras

    model = _mlp(keras, compiled=False)
    model.save_weights(str(tmp_path / "ckpt"))
    other = _mlp(keras, compiled=False)
    status = other.load_weights(str(tmp_path / "ckpt"))
    status.assert_consumed()
    _same_weights(model, other)


def test_archives_without_in_place_hdf5_support(tmp_path, native_io, monkeypatch):
    """Builds whose archive cannot stream or map HDF5 entries go through bounded copies."""
    import types

    import amber as keras
    from amber.saving import h5_io

    class CopyOnlyArchive:
        def __init__(self, inner):
            self._inner = inner
            self.path = inner.path

        @staticmethod
        def open(path):
            return CopyOnlyArchive(native_io.Archive.open(path))

        def entries(self):
            return self._inner.entries()

        def names(self):
            return self._inner.names()

        def read(self, name, limit=None):
            return self._inner.read(name, limit)

    class BytesOnlyWriter:
        def __init__(self, path):
            self._inner = native_io.ArchiveWriter(path)
            self.add_bytes, self.finish, self.abort = self._inner.add_bytes, self._inner.finish, self._inner.abort

    limited = types.SimpleNamespace(**{**vars(native_io), "Archive": CopyOnlyArchive, "ArchiveWriter": BytesOnlyWriter})
    monkeypatch.setattr(h5_io, "_native", lambda: limited)
    model = _mlp(keras)
    model.save(str(tmp_path / "m.keras"))
    loaded = keras.saving.load_model(str(tmp_path / "m.keras"))
    _same_weights(model, loaded)


# ------------------------------------------------------------------ saved traces


def _custom_model_class(keras):
    class CustomModel(keras.Model):
        def __init__(self, hidden_units):
            super().__init__()
            self.hidden_units = hidden_units
            self.dense_layers = [keras.layers.Dense(u) for u in hidden_units]

        def call(self, inputs):
            x = inputs
            for layer in self.dense_layers:
                x = layer(x)
            return x

        def get_config(self):
            return {"hidden_units": self.hidden_units}

    return CustomModel


@pytest.mark.parametrize("name", ["my_model", "my_model.keras"])
def test_subclassed_model_reloads_from_trace_without_its_class(tmp_path, native_io, name):
    import amber as keras

    model = _custom_model_class(keras)([16, 16, 10])
    x = np.random.default_rng(2).random((3, 5), dtype=np.float32)
    expected = np.asarray(model(x))
    path = str(tmp_path / name)
    model.save(path)
    with_class = keras.models.load_model(path, custom_objects={"CustomModel": type(model)})
    assert type(with_class) is type(model)
    np.testing.assert_allclose(np.asarray(with_class(x)), expected, rtol=1e-6)
    with pytest.warns(UserWarning, match="saved trace"):
        revived = keras.models.load_model(path)
    np.testing.assert_allclose(np.asarray(revived(x)), expected, rtol=1e-6)


def test_trace_is_resolved_closed_world(tmp_path, native_io):
    import amber as keras

    model = _custom_model_class(keras)([4])
    model(np.ones((1, 3), dtype=np.float32))
    path = tmp_path / "m"
    model.save(str(path))
    trace = json.loads((path / "amber_trace.json").read_text())
    dense = [l for l in trace["model"]["config"]["layers"] if l["class_name"] == "Dense"][0]
    dense.update({"module": "os", "class_name": "system"})
    (path / "amber_trace.json").write_text(json.dumps(trace))
    with pytest.raises(ValueError, match="Could not locate class 'system'"):
        keras.models.load_model(str(path))
    (path / "amber_trace.json").unlink()
    with pytest.raises(ValueError, match="CustomModel"):
        keras.models.load_model(str(path))


def test_lambda_layer_loads_only_when_the_caller_opts_out_of_safe_mode(tmp_path, native_io):
    import amber as keras

    inputs = keras.Input(shape=(3,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2 + 1)(inputs))
    path = str(tmp_path / "lam.keras")
    model.save(path)
    with pytest.raises(ValueError, match="safe_mode=False"):
        keras.saving.load_model(path)
    loaded = keras.saving.load_model(path, safe_mode=False)
    np.testing.assert_allclose(loaded.predict(np.ones((1, 3), "float32"), verbose=0), [[3.0, 3.0, 3.0]])
    with pytest.raises(ValueError, match="lambda"):
        keras.saving.load_model(path)  # the opt-out applied to that call only
