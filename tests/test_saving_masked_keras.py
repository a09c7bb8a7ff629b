"""Masked Functional models across Keras 3 and amber, against real Keras 3 (numpy backend).

While Keras builds a model, the masks layers compute (``Embedding(mask_zero=True)``,
``Masking``, merges, ``Attention``) and the ``keras.ops`` calls of user code on symbolic
tensors become operation nodes of the saved graph (``NotEqual``, ``Any``, ``LogicalOr``,
``ExpandDims``, ``ZerosLike``, ``OnesLike``, ops ``Concatenate``, ``Cast``,
``ConvertToTensor``) feeding the next layers' ``mask=`` arguments. Here Keras writes each model
at test time; amber must load it and predict as Keras does on padded batches (where the masks
change the outputs), and keep training it; and the same model code run by amber must give
Keras's config, key for key, and a file Keras loads and predicts with as from its own."""

import json
import zipfile

import numpy as np
import pytest

import amber
from _keras_roundtrip import keras_numpy

VOCAB, SEQ, DIM = 12, 6, 4
OP_MODULES = ("keras.src.ops.numpy", "keras.src.ops.core")


@pytest.fixture(scope="module")
def keras():
    return keras_numpy()


# ---------------------------------------------------------------- the models (same code, either library)


def embedding_lstm(lib, masked=True):
    L = lib.layers
    tokens = lib.Input(shape=(SEQ,), dtype="int32", name="tokens")
    x = L.Embedding(VOCAB, DIM, mask_zero=masked, name="embed")(tokens)
    x = L.LSTM(5, name="lstm")(x)
    return lib.Model(tokens, L.Dense(2, name="head")(x), name="embedding_lstm")


def masking_gru(lib, masked=True):
    L = lib.layers
    features = lib.Input(shape=(SEQ, 3), name="features")
    x = L.Masking(name="masking")(features) if masked else features
    return lib.Model(features, L.GRU(4, name="gru")(x), name="masking_gru")


def embedding_pooling(lib, masked=True):
    L = lib.layers
    tokens = lib.Input(shape=(SEQ,), dtype="int32", name="tokens")
    x = L.Embedding(VOCAB, DIM, mask_zero=masked, name="embed")(tokens)
    x = L.GlobalAveragePooling1D(name="pool")(x)
    return lib.Model(tokens, L.Dense(3, name="head")(x), name="embedding_pooling")


def embedding_self_attention(lib, masked=True):
    """MultiHeadAttention self-attention, a residual Add (whose mask is a LogicalOr node) and
    masked pooling."""
    L = lib.layers
    tokens = lib.Input(shape=(SEQ,), dtype="int32", name="tokens")
    x = L.Embedding(VOCAB, DIM, mask_zero=masked, name="embed")(tokens)
    attended = L.MultiHeadAttention(num_heads=2, key_dim=3, name="mha")(x, x)
    x = L.Add(name="residual")([x, attended])
    x = L.GlobalAveragePooling1D(name="pool")(x)
    return lib.Model(tokens, L.Dense(2, name="head")(x), name="embedding_self_attention")


def user_mask_ops(lib, masked=True):
    """User code computing a mask with ops on symbolic tensors."""
    L, ops = lib.layers, lib.ops
    tokens = lib.Input(shape=(SEQ,), dtype="int32", name="tokens")
    x = L.Embedding(VOCAB, DIM, name="embed")(tokens)
    if masked:
        keep = ops.not_equal(tokens, 0)
        x = x * ops.cast(ops.expand_dims(keep, -1), "float32")
        any_kept = ops.cast(ops.any(keep, axis=-1, keepdims=True), "float32")
    x = L.GlobalAveragePooling1D(name="pool")(x)
    out = L.Dense(2, name="head")(x)
    if masked:
        out = out * any_kept
    return lib.Model(tokens, out, name="user_mask_ops")


def attention_concatenate(lib, masked=True):
    """Attention (its output mask a ConvertToTensor node) and a Concatenate of a masked
    sequence with an unmasked one (ExpandDims, ZerosLike, LogicalOr, OnesLike, ops Concatenate,
    Any) feeding an LSTM."""
    L = lib.layers
    tokens = lib.Input(shape=(SEQ,), dtype="int32", name="tokens")
    features = lib.Input(shape=(SEQ, 3), name="features")
    x = L.Embedding(VOCAB, DIM, mask_zero=masked, name="embed")(tokens)
    attended = L.Attention(name="attention")([x, x])
    merged = L.Concatenate(name="concat")([attended, features])
    return lib.Model([tokens, features], L.LSTM(3, name="lstm")(merged), name="attention_concatenate")


# The operation classes Keras records for each model: the tests check the reference really
# holds them, so each model exercises the op nodes it is here for.
EXPECTED_OPS = {
    embedding_lstm: {"NotEqual"},
    masking_gru: {"NotEqual", "Any"},
    embedding_pooling: {"NotEqual"},
    embedding_self_attention: {"NotEqual", "LogicalOr"},
    user_mask_ops: {"NotEqual", "ExpandDims", "Cast", "Multiply", "Any"},
    attention_concatenate: {"NotEqual", "ConvertToTensor", "ExpandDims", "ZerosLike", "LogicalOr",
                            "OnesLike", "Concatenate", "Any"},
}
BUILDERS = list(EXPECTED_OPS)
ids = [b.__name__ for b in BUILDERS]


def _tokens(seed):
    """Token ids with a different amount of trailing (and one leading) zero padding per row."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(1, VOCAB, size=(4, SEQ)).astype("int32")
    for row in range(4):
        tokens[row, SEQ - row:] = 0
    tokens[-1, 0] = 0
    return tokens


def _inputs_for(builder):
    rng = np.random.default_rng(11)
    if builder is masking_gru:
        features = rng.normal(size=(4, SEQ, 3)).astype("float32")
        for row in range(4):
            features[row, SEQ - row:] = 0.0
        features[1, 1] = 0.0
        return features
    if builder is attention_concatenate:
        return [_tokens(2), rng.normal(size=(4, SEQ, 3)).astype("float32")]
    return _tokens(1)


def _outputs(values):
    return [np.asarray(v, dtype="float64") for v in (values if isinstance(values, list) else [values])]


def _assert_close(got, expected):
    got, expected = _outputs(got), _outputs(expected)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)


def _keras_file(keras, builder, directory):
    """The model built and saved by Keras: (the Keras model, the file)."""
    keras.utils.set_random_seed(5)
    model = builder(keras)
    path = directory / f"{builder.__name__}_keras.keras"
    model.save(str(path))
    return model, path


def _saved_config(path):
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("config.json"))["config"]


def _op_classes(config):
    return {entry["class_name"] for entry in config["layers"] if entry.get("module") in OP_MODULES}


# ---------------------------------------------------------------- Keras writes, amber reads


@pytest.mark.parametrize("builder", BUILDERS, ids=ids)
def test_keras_saved_masked_model_predicts_in_amber(keras, builder, tmp_path):
    reference, path = _keras_file(keras, builder, tmp_path)
    assert _op_classes(_saved_config(path)) >= EXPECTED_OPS[builder]
    x = _inputs_for(builder)
    expected = reference.predict(x, verbose=0)
    model = amber.saving.load_model(str(path))
    _assert_close(model.predict(x), expected)
    _assert_close(model(x), expected)
    # The graph amber rebuilt writes back the op nodes it read, under Keras's names.
    assert _op_classes(model.get_config()) == _op_classes(_saved_config(path))


@pytest.mark.parametrize("builder", BUILDERS, ids=ids)
def test_masks_change_the_outputs(keras, builder):
    # Guards the comparisons: with these padded inputs the masks matter in Keras itself.
    keras.utils.set_random_seed(5)
    masked, unmasked = builder(keras), builder(keras, masked=False)
    unmasked.set_weights(masked.get_weights())
    x = _inputs_for(builder)
    got, lost = _outputs(masked.predict(x, verbose=0)), _outputs(unmasked.predict(x, verbose=0))
    assert not all(np.allclose(a, b, rtol=1e-3) for a, b in zip(got, lost))


@pytest.mark.parametrize("builder", BUILDERS, ids=ids)
def test_keras_saved_masked_model_keeps_training_in_amber(keras, builder, tmp_path):
    _, path = _keras_file(keras, builder, tmp_path)
    model = amber.saving.load_model(str(path))
    x = _inputs_for(builder)
    y = np.random.default_rng(3).normal(size=np.shape(model.predict(x))).astype("float32")
    before = [w.copy() for w in model.get_weights()]
    model.compile(optimizer=amber.optimizers.SGD(0.1), loss="mse")
    history = model.fit(x, y, epochs=1, batch_size=4, shuffle=False, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    after = model.get_weights()
    assert any(not np.array_equal(b, a) for b, a in zip(before, after))
    if builder is not masking_gru:
        # Padding token 0 is masked everywhere it occurs, so its embedding gets no gradient
        # (a mask lost in training would move it), while the tokens in use do move.
        table_before, table_after = before[0], after[0]
        assert table_before.shape == (VOCAB, DIM)
        np.testing.assert_array_equal(table_after[0], table_before[0])
        used = np.unique(np.asarray(x[0] if isinstance(x, list) else x))
        assert not np.array_equal(table_after[used[used > 0]], table_before[used[used > 0]])


# ---------------------------------------------------------------- amber writes, Keras reads


def _canonical(config):
    """A Functional config as JSON sees it, with the auto-generated operation names (whose
    counters differ between the two libraries) replaced by their order of appearance."""
    config = json.loads(json.dumps(config))
    renamed = {}
    for entry in config["layers"]:
        if entry.get("module") in OP_MODULES:
            renamed[entry["name"]] = f"<op {len(renamed)}>"

    def walk(value):
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return renamed.get(value, value) if isinstance(value, str) else value

    return walk(config)


def _assert_same_config(expected, got, where="config"):
    """Key by key, naming the first place the two differ."""
    if isinstance(expected, dict) and isinstance(got, dict):
        assert sorted(got) == sorted(expected), f"{where}: keys {sorted(got)} != Keras's {sorted(expected)}"
        for key in expected:
            _assert_same_config(expected[key], got[key], f"{where}.{key}")
    elif isinstance(expected, list) and isinstance(got, list):
        assert len(got) == len(expected), f"{where}: {len(got)} entries, Keras has {len(expected)}"
        for index, (e, g) in enumerate(zip(expected, got)):
            label = e.get("name", index) if isinstance(e, dict) else index
            _assert_same_config(e, g, f"{where}[{label}]")
    else:
        assert got == expected, f"{where}: {got!r} != Keras's {expected!r}"


@pytest.mark.parametrize("builder", BUILDERS, ids=ids)
def test_amber_builds_keras_config(keras, builder):
    keras.utils.set_random_seed(5)
    expected = _canonical(builder(keras).get_config())
    got = _canonical(builder(amber).get_config())
    _assert_same_config(expected, got)


@pytest.mark.parametrize("builder", BUILDERS, ids=ids)
def test_amber_saved_masked_model_predicts_in_keras(keras, builder, tmp_path):
    keras.utils.set_random_seed(5)
    reference = builder(keras)
    model = builder(amber)
    model.set_weights(reference.get_weights())
    x = _inputs_for(builder)
    expected = reference.predict(x, verbose=0)
    _assert_close(model.predict(x), expected)
    path = tmp_path / f"{builder.__name__}_amber.keras"
    model.save(str(path))
    assert _op_classes(_saved_config(path)) >= EXPECTED_OPS[builder]
    loaded = keras.models.load_model(str(path))
    _assert_close(loaded.predict(x, verbose=0), expected)


# ---------------------------------------------------------------- the operations themselves


def test_symbolic_ops_record_keras_operations(keras):
    """Each op amber records on symbolic tensors: Keras's class, module and config, and the
    graph computes what numpy does."""
    cases = [
        ("not_equal", lambda ops, t, f: ops.not_equal(t, 0)),
        ("equal", lambda ops, t, f: ops.equal(t, 3)),
        ("greater", lambda ops, t, f: ops.greater(f, 0.0)),
        ("logical_and", lambda ops, t, f: ops.logical_and(ops.greater(t, 2), ops.less(t, 8))),
        ("logical_not", lambda ops, t, f: ops.logical_not(ops.less_equal(t, 4))),
        ("all", lambda ops, t, f: ops.all(ops.greater_equal(f, -1.0), axis=(1, 2))),
        ("squeeze", lambda ops, t, f: ops.squeeze(ops.expand_dims(t, axis=1), axis=1)),
        ("ones_like", lambda ops, t, f: ops.ones_like(f)),
        ("concatenate", lambda ops, t, f: ops.concatenate([f, f], axis=1)),
        ("where", lambda ops, t, f: ops.where(ops.greater(f, 0.0), f, 0.0)),
        ("convert_to_tensor", lambda ops, t, f: ops.convert_to_tensor(t, dtype="float32")),
        ("divide", lambda ops, t, f: ops.divide(f, 2.0)),
        ("subtract", lambda ops, t, f: ops.subtract(ops.negative(f), ops.power(f, 2.0))),
    ]
    rng = np.random.default_rng(0)
    t_value = rng.integers(0, 10, size=(3, SEQ)).astype("int32")
    f_value = rng.normal(size=(3, SEQ, 2)).astype("float32")
    for label, fn in cases:
        built = {}
        for lib in (keras, amber):
            t = lib.Input(shape=(SEQ,), dtype="int32", name="t")
            f = lib.Input(shape=(SEQ, 2), name="f")
            built[lib] = lib.Model([t, f], fn(lib.ops, t, f), name="ops")
        expected = _canonical(built[keras].get_config())
        got = _canonical(built[amber].get_config())
        _assert_same_config(expected, got, label)
        reference = np.asarray(built[keras].predict([t_value, f_value], verbose=0))
        result = built[amber].predict([t_value, f_value])
        assert result.dtype == reference.dtype, label
        np.testing.assert_allclose(result, reference, rtol=1e-6, err_msg=label)


def test_symbolic_op_errors_name_the_problem():
    tokens = amber.Input(shape=(SEQ,), dtype="int32")
    # an op without a graph operation refuses the symbolic tensor, saying what it is
    with pytest.raises(TypeError, match="KerasTensor is symbolic"):
        amber.ops.argsort(tokens)
    with pytest.raises(ValueError, match="axis 5"):
        amber.ops.any(tokens, axis=5)
    with pytest.raises(ValueError, match="cannot squeeze axis 1 of size 6"):
        amber.ops.squeeze(tokens, axis=1)
    with pytest.raises(ValueError, match="needs both x1 and x2"):
        amber.ops.where(tokens)
    with pytest.raises(TypeError, match="ops.expand_dims on a symbolic tensor"):
        amber.ops.expand_dims(tokens)
