"""Sequential / Functional / subclassed models against real Keras 3 and the shared corpus:
configs, rebuilding Keras's own configs (Keras 3 and Keras 2 forms), predictions with
weights read by h5py, graph order, sub-models, summary numbers."""

import io
import json
import zipfile

import h5py
import numpy as np
import pytest

import amber
from amber.layers.layer import to_snake_case
from test_framework_reference import keras_reference, require_fixtures


@pytest.fixture(scope="module")
def keras():
    return keras_reference()


def _strip_names(config):
    """Configs compared apart from auto-generated names."""
    text = json.dumps(config)
    return json.loads(text)


def _build_mlp(lib):
    inputs = lib.Input(shape=(784,), name="digits")
    x = lib.layers.Dense(64, activation="relu", name="dense_1")(inputs)
    x = lib.layers.BatchNormalization(name="bn")(x)
    x = lib.layers.Dropout(0.5, name="drop")(x)
    outputs = lib.layers.Dense(10, name="predictions")(x)
    return lib.Model(inputs=inputs, outputs=outputs, name="mlp")


def _build_multi_io(lib):
    a = lib.Input((8,), name="a")
    b = lib.Input((4,), name="b")
    pa = lib.layers.Dense(6, name="proj_a")(a)
    pb = lib.layers.Dense(6, name="proj_b")(b)
    shared = lib.layers.Dense(6, activation="tanh", name="shared")
    merged = lib.layers.Concatenate(name="cat")([shared(pa), shared(pb)])
    reg = lib.layers.Dense(1, name="reg")(merged)
    cls = lib.layers.Dense(3, activation="softmax", name="cls")(merged)
    added = lib.layers.Add(name="add")([pa, pb])
    return lib.Model({"a": a, "b": b}, {"reg": reg, "cls": cls, "sum": added}, name="multi")


def _build_sequential(lib):
    return lib.Sequential([lib.Input((16,), name="inp"), lib.layers.Dense(8, activation="relu", name="d0"),
                           lib.layers.BatchNormalization(name="bn"), lib.layers.Dense(1, name="d1")],
                          name="seq")


@pytest.mark.parametrize("builder", [_build_mlp, _build_multi_io, _build_sequential])
def test_model_config_matches_keras(keras, builder):
    ours, theirs = builder(amber), builder(keras)
    ours_config = json.loads(json.dumps(ours.get_config()))
    theirs_config = json.loads(json.dumps(theirs.get_config()))
    assert ours_config == theirs_config
    assert [l.name for l in ours.layers] == [l.name for l in theirs.layers]
    assert [w.path for w in ours.weights] == [w.path for w in theirs.weights]
    assert ours.count_params() == theirs.count_params()


@pytest.mark.parametrize("builder", [_build_mlp, _build_multi_io, _build_sequential])
def test_keras_config_rebuilds_same_predictions(keras, builder):
    theirs = builder(keras)
    config = json.loads(json.dumps(keras.saving.serialize_keras_object(theirs)))
    cls = amber.Sequential if config["class_name"] == "Sequential" else amber.Model
    ours = cls.from_config(config["config"])
    assert [l.name for l in ours.layers] == [l.name for l in theirs.layers]
    ours.set_weights(theirs.get_weights())
    rng = np.random.default_rng(0)
    inputs = theirs.inputs
    if not isinstance(theirs, keras.Sequential) and isinstance(theirs.input, dict):
        x = {k: rng.normal(size=(5,) + tuple(t.shape[1:])).astype("float32") for k, t in theirs.input.items()}
    else:
        x = rng.normal(size=(5,) + tuple(inputs[0].shape[1:])).astype("float32")
    expected = theirs.predict(x, verbose=0)
    got = ours.predict(x, verbose=0)
    if isinstance(expected, dict):
        assert set(got) == set(expected)
        for key in expected:
            np.testing.assert_allclose(got[key], expected[key], rtol=1e-5, atol=1e-5)
    else:
        # float32 sums of 784 terms differ by ~1e-6 between kernels' summation orders
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    # our config of the rebuilt model is Keras's config again
    assert json.loads(json.dumps(ours.get_config())) == json.loads(json.dumps(theirs.get_config()))


# ------------------------------------------------------------------ shared corpus


def _read_keras_zip(name):
    fixtures = require_fixtures()
    with zipfile.ZipFile(fixtures / f"{name}.keras") as archive:
        config = json.loads(archive.read("config.json"))
        weights = h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r")
    return config, weights


def _assign_from_h5(layer, group):
    """Keras 3's weights layout: own variables under vars/, sublayers of a model under
    layers/<snake_case class name, uniquified in order>."""
    if "vars" in group and len(group["vars"]):
        store = {key: group["vars"][key][()] for key in group["vars"]}
        layer.load_own_variables(store)
    if "layers" not in group:
        return
    counts = {}
    for sub in layer.layers if isinstance(layer, amber.Model) else layer._layers:
        base = to_snake_case(type(sub).__name__)
        seen = counts.get(base, 0)
        counts[base] = seen + 1
        key = base if seen == 0 else f"{base}_{seen}"
        if key in group["layers"]:
            _assign_from_h5(sub, group["layers"][key])


def _model_from_keras_file(name):
    from amber.saving import deserialize_keras_object

    config, weights = _read_keras_zip(name)
    model = deserialize_keras_object({k: v for k, v in config.items() if k != "compile_config"})
    _assign_from_h5(model, weights)
    return model, config, weights


def _load_array(path):
    data = np.load(path)
    if isinstance(data, np.lib.npyio.NpzFile):
        return {k: data[k] for k in data.files}
    return data


@pytest.mark.parametrize("case", ["seed_dense", "mlp_3layer", "seq_bn_dropout", "multi_io", "nested_pretrained"])
def test_corpus_architectures_predict_like_keras(case):
    fixtures = require_fixtures()
    model, _, _ = _model_from_keras_file(case)
    suffix = "npz" if case == "multi_io" else "npy"
    x = _load_array(fixtures / f"{case}.input.{suffix}")
    expected = _load_array(fixtures / f"{case}.expected.{suffix}")
    got = model.predict(x, verbose=0)
    if isinstance(expected, dict):
        names = list(expected)
        got_list = [got[n] for n in names] if isinstance(got, dict) else list(got)
        for name, value in zip(names, got_list):
            np.testing.assert_allclose(value, expected[name], rtol=1e-5, atol=1e-5)
    else:
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_corpus_multi_io_graph_order_and_names():
    require_fixtures()
    manifest = json.loads((require_fixtures() / "MANIFEST.json").read_text())
    case = next(c for c in manifest["cases"] if c["name"] == "multi_io")
    model, _, _ = _model_from_keras_file("multi_io")
    assert [[v.path, list(v.shape)] for v in model.weights] == case["model"]["variables"]
    assert model.count_params() == case["model"]["params"]
    assert model.output_names == case["model"]["output_names"]


def test_keras2_json_architecture_with_legacy_weights():
    fixtures = require_fixtures()
    text = (fixtures / "keras2_functional_json.json").read_text()
    from amber.saving import deserialize_keras_object

    model = deserialize_keras_object(json.loads(text))
    assert isinstance(model, amber.Model)
    with h5py.File(fixtures / "keras2_functional_json_weights.h5", "r") as f:
        for layer in model.layers:
            group = f[layer.name]
            names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs["weight_names"]]
            layer.set_weights([group[n][()] for n in names])
    x = np.load(fixtures / "keras2_functional_json.input.npy")
    np.testing.assert_allclose(model.predict(x, verbose=0),
                               np.load(fixtures / "keras2_functional_json.expected.npy"), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ structure


def test_layer_input_output_and_submodel_cut(keras):
    for lib in (amber, keras):
        model = _build_mlp(lib)
        cut = lib.Model(model.inputs, model.layers[-1].input, name="cut")
        assert cut.output_shape == (None, 64)
        assert [l.name for l in cut.layers] == ["digits", "dense_1", "bn", "drop"]
        assert model.get_layer("dense_1").output.shape == (None, 64)
        assert model.get_layer("dense_1").input.shape == (None, 784)
    ours, theirs = _build_mlp(amber), _build_mlp(keras)
    ours.set_weights(theirs.get_weights())
    x = np.random.default_rng(1).normal(size=(3, 784)).astype("float32")
    cut_ours = amber.Model(ours.inputs, ours.layers[-1].input)
    cut_theirs = keras.Model(theirs.inputs, theirs.layers[-1].input)
    np.testing.assert_allclose(cut_ours.predict(x, verbose=0), cut_theirs.predict(x, verbose=0), rtol=1e-5,
                               atol=1e-5)


def test_graph_disconnected_is_a_clear_error():
    a = amber.Input((3,), name="left")
    b = amber.Input((3,), name="right")
    out = amber.layers.Add()([a, b])
    with pytest.raises(ValueError, match="Graph disconnected"):
        amber.Model(a, out)


def test_nested_models_and_shared_layers():
    inner_in = amber.Input((4,))
    inner = amber.Model(inner_in, amber.layers.Dense(3, name="inner_dense")(inner_in), name="inner")
    outer_in = amber.Input((4,))
    shared = amber.layers.Dense(4, name="shared_dense")
    y = inner(shared(shared(outer_in)))
    outer = amber.Model(outer_in, y)
    x = np.random.default_rng(2).normal(size=(2, 4)).astype("float32")
    k, b = shared.kernel.numpy(), shared.bias.numpy()
    h = (x @ k + b) @ k + b
    expected = h @ inner.get_layer("inner_dense").kernel.numpy() + inner.get_layer("inner_dense").bias.numpy()
    np.testing.assert_allclose(outer.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    again = amber.Model.from_config(outer.get_config())
    again.set_weights(outer.get_weights())
    np.testing.assert_allclose(again.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)


def test_sequential_deferred_build_add_pop(keras):
    for lib in (amber, keras):
        model = lib.Sequential(name="deferred")
        model.add(lib.layers.Dense(4, name="a"))
        model.add(lib.layers.Dense(2, name="b"))
        assert not model.built
        model(np.ones((3, 5), dtype="float32"))
        assert model.built
        assert [w.path for w in model.weights] == ["deferred/a/kernel", "deferred/a/bias", "deferred/b/kernel",
                                                   "deferred/b/bias"]
        assert [l.name for l in model.layers] == ["a", "b"]
        model.pop()
        assert [l.name for l in model.layers] == ["a"]


def test_subclassed_model_tracks_attributes_in_order(keras):
    def make(lib):
        class Net(lib.Model):
            def __init__(self):
                super().__init__(name="net")
                self.blocks = [lib.layers.Dense(3, name="b0")]
                self.blocks.append(lib.layers.Dense(3, name="b1"))
                self.head = {"out": lib.layers.Dense(1, name="out")}
                self.norm = lib.layers.LayerNormalization(name="norm")

            def call(self, x, training=None):
                for block in self.blocks:
                    x = block(x)
                return self.head["out"](self.norm(x))

        model = Net()
        model(np.ones((2, 5), dtype="float32"))
        return model

    ours, theirs = make(amber), make(keras)
    assert [w.path for w in ours.weights] == [w.path for w in theirs.weights]
    ours.set_weights(theirs.get_weights())
    x = np.random.default_rng(3).normal(size=(4, 5)).astype("float32")
    np.testing.assert_allclose(np.asarray(ours(x)), np.asarray(theirs(x)), rtol=1e-5, atol=1e-6)


def test_training_flag_reaches_nested_layers():
    seen = []

    class Probe(amber.layers.Layer):
        def call(self, x, training=None):
            seen.append(training)
            return x

    inner = amber.Sequential([amber.Input((2,)), Probe()])
    outer = amber.Sequential([amber.Input((2,)), inner])
    seen.clear()
    outer(np.ones((1, 2), dtype="float32"), training=True)
    outer(np.ones((1, 2), dtype="float32"))
    assert seen == [True, None]


def _summary_totals(lines):
    return [line.strip() for line in lines if "params:" in line]


def test_summary_numbers_match_keras(keras):
    for builder in (_build_mlp, _build_multi_io, _build_sequential):
        ours_lines, theirs_lines = [], []
        builder(amber).summary(print_fn=lambda line, **_: ours_lines.append(line))
        builder(keras).summary(print_fn=lambda line, **_: theirs_lines.extend(line.splitlines()))
        assert _summary_totals(ours_lines) == _summary_totals(theirs_lines)
        text = "\n".join(ours_lines)
        for layer in builder(keras).layers:
            assert f"{layer.name} " in text or layer.name in text


def test_guide_transfer_learning_summary(capsys):
    inputs = amber.Input(shape=(784,), name="digits")
    x = amber.layers.Dense(64, activation="relu", name="dense_1")(inputs)
    x = amber.layers.Dense(64, activation="relu", name="dense_2")(x)
    outputs = amber.layers.Dense(10, name="predictions")(x)
    model = amber.Model(inputs, outputs)
    extracted = model.layers[:-1]
    extracted.append(amber.layers.Dense(5, name="dense_3"))
    seq = amber.Sequential(extracted)
    seq.summary()
    out = capsys.readouterr().out
    for number in ("50,240", "4,160", "325", "Total params: 54,725"):
        assert number in out
    assert seq.count_params() == 54725


def test_keras2_sequential_config_from_legacy_h5():
    fixtures = require_fixtures()
    from amber.saving import deserialize_keras_object

    with h5py.File(fixtures / "keras2_mlp_adam.h5", "r") as f:
        config = json.loads(f.attrs["model_config"])
        model = deserialize_keras_object(config)
        assert isinstance(model, amber.Sequential) and model.built
        assert [l.name for l in model.layers] == ["hidden_1", "hidden_2", "logits"]
        for layer in model.layers:
            group = f["model_weights"][layer.name]
            names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs["weight_names"]]
            layer.set_weights([group[n][()] for n in names])
    x = np.load(fixtures / "keras2_mlp_adam.input.npy")
    np.testing.assert_allclose(model.predict(x, verbose=0), np.load(fixtures / "keras2_mlp_adam.expected.npy"),
                               rtol=1e-5, atol=1e-5)


def test_lambda_layer_config_and_forward_match_keras(keras):
    from amber.saving import deserialize_keras_object

    ours = amber.layers.Lambda(lambda x, k: x * k + 1.0, arguments={"k": 3.0}, name="lam")
    theirs = keras.layers.Lambda(lambda x, k: x * k + 1.0, arguments={"k": 3.0}, name="lam")
    x = np.arange(6, dtype="float32").reshape(2, 3)
    np.testing.assert_allclose(np.asarray(ours(x)), np.asarray(theirs(x)))
    ours_config, theirs_config = ours.get_config(), theirs.get_config()
    assert list(ours_config) == list(theirs_config)
    assert ours_config["function"]["class_name"] == theirs_config["function"]["class_name"] == "__lambda__"
    inputs = amber.Input((3,))
    model = amber.Model(inputs, ours(inputs))
    assert model.output_shape == (None, 3)
    config = amber.saving.serialize_keras_object(model)
    with pytest.raises(Exception, match="(?i)lambda|safe"):
        deserialize_keras_object(config)
    rebuilt = deserialize_keras_object(config, safe_mode=False)
    np.testing.assert_allclose(rebuilt.predict(x, verbose=0), x * 3.0 + 1.0)


def test_subclass_of_model_with_functional_constructor():
    class Wrapped(amber.Model):
        def __init__(self, units=3, **kwargs):
            inputs = amber.Input((4,), name="w_in")
            outputs = amber.layers.Dense(units, name="w_dense")(inputs)
            super().__init__(inputs, outputs, **kwargs)
            self.units = units

    model = Wrapped(units=2, name="wrapped")
    assert isinstance(model, Wrapped) and model.name == "wrapped"
    assert [l.name for l in model.layers] == ["w_in", "w_dense"]
    x = np.ones((2, 4), dtype="float32")
    layer = model.get_layer("w_dense")
    np.testing.assert_allclose(model.predict(x, verbose=0), x @ layer.kernel.numpy() + layer.bias.numpy(),
                               rtol=1e-6)


def test_concurrent_predict_threads_keep_their_own_call_state():
    import threading

    model = _build_mlp(amber)
    x = np.random.default_rng(5).normal(size=(4, 784)).astype("float32")
    expected = model.predict(x, verbose=0)
    errors = []

    def worker():
        try:
            for _ in range(30):
                np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-6)
        except Exception as error:  # collected and re-raised in the main thread
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    layer = amber.layers.Dense(2, name="after_threads")
    layer.build((None, 3))
    assert layer.kernel.path == "after_threads/kernel"


def test_summary_counts_built_optimizer_params_like_keras(keras):
    lines = {}
    for lib in (amber, keras):
        model = _build_mlp(lib)
        model.compile(optimizer=lib.optimizers.Adam(), loss="mse")
        model.optimizer.build(model.trainable_variables)
        out = []
        model.summary(print_fn=lambda line, **_: out.extend(line.splitlines()))
        lines[lib.__name__] = _summary_totals(out)
    assert lines["amber"] == lines["keras"]
    assert any(line.startswith("Optimizer params:") for line in lines["amber"])


def test_embedding_mask_propagates_like_keras(keras):
    ids = np.array([[3, 5, 0, 0], [7, 0, 0, 0], [1, 2, 3, 4]], dtype="int32")
    outputs = {}
    weights = None
    for lib in (keras, amber):
        inputs = lib.Input((4,), dtype="int32")
        x = lib.layers.Embedding(10, 3, mask_zero=True)(inputs)
        x = lib.layers.GlobalAveragePooling1D()(x)
        functional = lib.Model(inputs, lib.layers.Dense(2)(x))
        sequential = lib.Sequential([lib.Input((4,), dtype="int32"), lib.layers.Embedding(10, 3, mask_zero=True),
                                     lib.layers.GlobalAveragePooling1D(), lib.layers.Dense(2)])
        if weights is None:
            weights = functional.get_weights()
        functional.set_weights(weights)
        sequential.set_weights(weights)
        outputs[lib.__name__] = (functional.predict(ids, verbose=0), sequential.predict(ids, verbose=0))
    expected = outputs["keras"][0]
    # the mask matters: an unmasked mean differs
    table, kernel, bias = weights
    unmasked = table[ids].mean(axis=1) @ kernel + bias
    assert not np.allclose(expected, unmasked)
    np.testing.assert_allclose(outputs["amber"][0], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(outputs["amber"][1], outputs["keras"][1], rtol=1e-5, atol=1e-6)
