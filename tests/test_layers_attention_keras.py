"""Attention layers, EinsumDense and the extra normalization layers against real Keras 3
(numpy backend): forward outputs with the same weights over a grid of configs and masks,
configs key by key, variable paths, gradients against finite differences (float64), and the
interop case transformer_block loaded by amber and amber's re-save loaded by Keras."""

import io
import json
import zipfile

import numpy as np
import pytest

import amber
from amber import layers
from _keras_roundtrip import (assert_amber_loads_corpus_model, assert_keras_loads_amber_resave, keras_numpy,
                              plain_config as _plain)


@pytest.fixture(scope="module")
def keras():
    return keras_numpy()


def _rand(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _outputs(out):
    return [np.asarray(o) for o in out] if isinstance(out, (list, tuple)) else [np.asarray(out)]


def _suffixes(variables):
    return [v.path.split("/", 1)[1] for v in variables]


# --------------------------------------------------------------------- MultiHeadAttention

# (constructor kwargs, query shape, value shape, key shape or None, call kwargs builder)
MHA_CASES = [
    ({"num_heads": 2, "key_dim": 4}, (2, 5, 6), (2, 5, 6), None, {}),
    ({"num_heads": 3, "key_dim": 2, "value_dim": 5}, (2, 4, 6), (2, 7, 3), None, {}),
    ({"num_heads": 2, "key_dim": 3}, (2, 4, 6), (2, 7, 3), (2, 7, 5), {}),
    ({"num_heads": 2, "key_dim": 4, "output_shape": 9, "use_bias": False}, (2, 5, 6), (2, 5, 6), None, {}),
    ({"num_heads": 2, "key_dim": 4, "output_shape": (3, 2)}, (2, 5, 6), (2, 5, 6), None, {}),
    ({"num_heads": 2, "key_dim": 4}, (2, 5, 6), (2, 5, 6), None, {"use_causal_mask": True}),
    ({"num_heads": 2, "key_dim": 4}, (2, 5, 6), (2, 5, 6), None, {"return_attention_scores": True}),
    ({"num_heads": 2, "key_dim": 4}, (2, 5, 6), (2, 5, 6), None,
     {"use_causal_mask": True, "return_attention_scores": True}),
    ({"num_heads": 2, "key_dim": 4}, (2, 4, 6), (2, 6, 6), None, {"attention_mask": "random"}),
    ({"num_heads": 2, "key_dim": 4}, (2, 4, 6), (2, 6, 6), None,
     {"attention_mask": "random", "return_attention_scores": True}),
    ({"num_heads": 2, "key_dim": 4}, (2, 4, 6), (2, 6, 6), None, {"value_mask": "v"}),
    ({"num_heads": 2, "key_dim": 4}, (2, 4, 6), (2, 6, 6), (2, 6, 3), {"value_mask": "v", "key_mask": "v"}),
    ({"num_heads": 2, "key_dim": 3, "attention_axes": (1, 2)}, (2, 3, 4, 5), (2, 3, 4, 5), None, {}),
    ({"num_heads": 2, "key_dim": 3, "attention_axes": 2}, (2, 3, 4, 5), (2, 3, 4, 5), None,
     {"return_attention_scores": True}),
    ({"num_heads": 2, "key_dim": 3, "use_gate": True}, (2, 4, 6), (2, 4, 6), None, {}),
    ({"num_heads": 1, "key_dim": 8, "sliding_window": 2}, (2, 6, 4), (2, 6, 4), None, {}),
]


def _call_kwargs(spec, q_shape, v_shape):
    rng = np.random.default_rng(42)
    kwargs = dict(spec)
    if kwargs.get("attention_mask") == "random":
        mask = rng.random((q_shape[0], q_shape[1], v_shape[1])) > 0.3
        mask[0, 1, :] = False  # a fully masked query row
        kwargs["attention_mask"] = mask
    if kwargs.get("query_mask") == "q":
        kwargs["query_mask"] = np.array([[1, 1, 1, 0], [1, 1, 1, 1]], dtype=bool)
    for name in ("value_mask", "key_mask"):
        if kwargs.get(name) == "v":
            kwargs[name] = np.array([[1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 0]], dtype=bool)
    return kwargs


@pytest.mark.parametrize("init,q_shape,v_shape,k_shape,spec", MHA_CASES)
def test_multi_head_attention_matches_keras(keras, init, q_shape, v_shape, k_shape, spec):
    query, value = _rand(q_shape, 1), _rand(v_shape, 2)
    key = None if k_shape is None else _rand(k_shape, 3)
    kwargs = _call_kwargs(spec, q_shape, v_shape)
    if key is not None:
        kwargs["key"] = key
    reference = keras.layers.MultiHeadAttention(**init)
    ours = layers.MultiHeadAttention(**init)
    expected = _outputs(reference(query, value, **kwargs))
    ours(query, value, **kwargs)
    assert len(ours.weights) == len(reference.weights)
    ours.set_weights(reference.get_weights())
    actual = _outputs(ours(query, value, **kwargs))
    assert len(actual) == len(expected)
    for e, a in zip(expected, actual):
        assert a.shape == e.shape
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-5)
    assert _suffixes(ours.weights) == _suffixes(reference.weights)
    assert _plain(ours.get_config()) == _plain(reference.get_config())
    assert json.loads(json.dumps(ours.get_build_config())) == json.loads(json.dumps(reference.get_build_config()))


def test_multi_head_attention_query_mask_equals_keras_merged_mask(keras):
    """Keras reads the query mask only from a tensor's attached mask (numpy arrays cannot carry
    one); amber takes it as ``query_mask``. Keras merges it as query[:, :, None] & value[:, None, :],
    so the same result must come from Keras given that merged ``attention_mask``."""
    query, value = _rand((2, 4, 6), 1), _rand((2, 6, 6), 2)
    q_mask = np.array([[1, 1, 1, 0], [1, 1, 1, 1]], dtype=bool)
    v_mask = np.array([[1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 0]], dtype=bool)
    reference, ours = keras.layers.MultiHeadAttention(2, 4), layers.MultiHeadAttention(2, 4)
    merged = q_mask[:, :, None] & v_mask[:, None, :]
    expected = np.asarray(reference(query, value, attention_mask=merged))
    ours(query, value)
    ours.set_weights(reference.get_weights())
    np.testing.assert_allclose(ours(query, value, query_mask=q_mask, value_mask=v_mask), expected,
                               rtol=1e-5, atol=1e-5)


def test_multi_head_attention_conformance_calls():
    """What the export-archive guide workflow does: two positional tensors, then call()."""
    layer = layers.MultiHeadAttention(2, 2)
    x1, x2 = _rand((1, 3, 4), 5), _rand((1, 5, 4), 6)
    out = layer(x1, x2)
    assert out.shape == (1, 3, 4)
    assert len(layer.weights) == 8
    np.testing.assert_allclose(layer.call(query=x1, value=x2), out, rtol=1e-6)
    # a float64 value is computed in the layer's float32, as Keras casts every input
    assert layer(x1, x2.astype("float64")).dtype == np.float32


def test_multi_head_attention_in_functional_model_and_saving_layout(keras, tmp_path):
    inputs = amber.Input((5, 6))
    context = amber.Input((7, 6))
    outputs = layers.MultiHeadAttention(2, 3, name="mha")(inputs, context)
    model = amber.Model([inputs, context], outputs)
    q, v = _rand((2, 5, 6), 7), _rand((2, 7, 6), 8)
    expected = model.predict([q, v])
    path = tmp_path / "mha.keras"
    model.save(str(path))
    reloaded = keras.models.load_model(str(path))
    np.testing.assert_allclose(np.asarray(reloaded.predict([q, v], verbose=0)), expected, rtol=1e-5, atol=1e-6)
    import h5py

    with zipfile.ZipFile(path) as archive:
        with h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as weights:
            for sub, shape in (("query_dense", (6, 2, 3)), ("key_dense", (6, 2, 3)), ("value_dense", (6, 2, 3)),
                               ("output_dense", (2, 3, 6))):
                assert weights[f"layers/multi_head_attention/{sub}/vars/0"].shape == shape


def test_multi_head_attention_refuses_bad_arguments():
    with pytest.raises(ValueError, match="num_heads"):
        layers.MultiHeadAttention(0, 2)
    with pytest.raises(ValueError, match="key_dim"):
        layers.MultiHeadAttention(2, "4")
    layer = layers.MultiHeadAttention(2, 2)
    with pytest.raises(ValueError, match="key"):
        layer(_rand((1, 3, 4)), _rand((1, 5, 4)), key=_rand((1, 4, 4)))


# --------------------------------------------------------------------- Attention layers

ATTENTION_CASES = [
    ("Attention", {}, {}),
    ("Attention", {"use_scale": True}, {"return_attention_scores": True}),
    ("Attention", {"score_mode": "concat"}, {}),
    ("Attention", {"score_mode": "concat", "use_scale": True}, {"use_causal_mask": True}),
    ("Attention", {}, {"mask": "both"}),
    ("Attention", {}, {"mask": "both", "use_causal_mask": True, "return_attention_scores": True}),
    ("AdditiveAttention", {}, {}),
    ("AdditiveAttention", {"use_scale": False}, {"return_attention_scores": True}),
    ("AdditiveAttention", {}, {"mask": "both", "use_causal_mask": True}),
]


@pytest.mark.parametrize("with_key", [False, True])
@pytest.mark.parametrize("name,init,spec", ATTENTION_CASES)
def test_attention_layers_match_keras(keras, name, init, spec, with_key):
    query, value, key = _rand((2, 4, 3), 1), _rand((2, 5, 3), 2), _rand((2, 5, 3), 3)
    inputs = [query, value, key] if with_key else [query, value]
    kwargs = dict(spec)
    if kwargs.get("mask") == "both":
        kwargs["mask"] = [np.array([[1, 1, 1, 0], [1, 1, 1, 1]], dtype=bool),
                          np.array([[1, 1, 0, 0, 0], [1, 1, 1, 1, 0]], dtype=bool)]
    reference = getattr(keras.layers, name)(**init)
    ours = getattr(layers, name)(**init)
    expected = _outputs(reference(inputs, **kwargs))
    ours(inputs, **kwargs)
    ours.set_weights(reference.get_weights())
    actual = _outputs(ours(inputs, **kwargs))
    for e, a in zip(expected, actual):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-6)
    assert _plain(ours.get_config()) == _plain(reference.get_config())
    assert _suffixes(ours.weights) == _suffixes(reference.weights)


def test_attention_refuses_bad_inputs():
    with pytest.raises(ValueError, match="list of inputs"):
        layers.Attention()(_rand((2, 3, 4)))
    with pytest.raises(ValueError, match="score_mode"):
        layers.Attention(score_mode="cosine")


# --------------------------------------------------------------------- EinsumDense

EINSUM_CASES = [
    ("ab,bc->ac", 4, None, (3, 5)),
    ("ab,bc->ac", 4, "c", (3, 5)),
    ("abc,cd->abd", (None, 6), "d", (2, 3, 5)),
    ("abc,cde->abde", (None, 2, 3), "de", (2, 4, 5)),
    ("abc,cde->abde", (None, 2, 3), "e", (2, 4, 5)),
    ("abcd,cde->abe", (None, 7), "e", (2, 4, 3, 2)),
    ("...b,bc->...c", 4, "c", (2, 3, 5)),
    ("ab...,bc->ac...", (4, 3), "c", (2, 5, 3)),
]


@pytest.mark.parametrize("equation,output_shape,bias_axes,input_shape", EINSUM_CASES)
def test_einsum_dense_matches_keras(keras, equation, output_shape, bias_axes, input_shape):
    x = _rand(input_shape, 4)
    reference = keras.layers.EinsumDense(equation, output_shape, bias_axes=bias_axes, activation="relu")
    ours = layers.EinsumDense(equation, output_shape, bias_axes=bias_axes, activation="relu")
    expected = np.asarray(reference(x))
    ours(x)
    assert [tuple(v.shape) for v in ours.weights] == [tuple(v.shape) for v in reference.weights]
    for variable in reference.weights:  # non-zero bias so its broadcasting is checked
        variable.assign(np.random.default_rng(5).normal(size=tuple(variable.shape)).astype("float32"))
    expected = np.asarray(reference(x))
    ours.set_weights(reference.get_weights())
    np.testing.assert_allclose(ours(x), expected, rtol=1e-5, atol=1e-5)
    assert tuple(ours.compute_output_shape(input_shape)) == tuple(reference.compute_output_shape(input_shape))
    assert _plain(ours.get_config()) == _plain(reference.get_config())


def test_einsum_dense_refuses_bad_equations():
    with pytest.raises(ValueError, match="Invalid einsum equation"):
        layers.EinsumDense("ab->b", 3)(_rand((2, 3)))
    with pytest.raises(ValueError, match="Bias dimension"):
        layers.EinsumDense("ab,bc->ac", 3, bias_axes="x")(_rand((2, 3)))


# --------------------------------------------------------------------- normalization


@pytest.mark.parametrize("init,shape", [
    ({"groups": 2}, (2, 5, 4)),
    ({"groups": 4, "epsilon": 1e-5}, (2, 3, 3, 8)),
    ({"groups": -1, "center": False}, (3, 6)),
    ({"groups": 3, "axis": 1, "scale": False}, (2, 6, 5)),
])
def test_group_normalization_matches_keras(keras, init, shape):
    x = _rand(shape, 6) * 3 + 1
    reference = keras.layers.GroupNormalization(**init)
    ours = layers.GroupNormalization(**init)
    reference(x)
    for variable in reference.weights:
        variable.assign(np.random.default_rng(7).normal(size=tuple(variable.shape)).astype("float32"))
    ours(x)
    ours.set_weights(reference.get_weights())
    np.testing.assert_allclose(ours(x), np.asarray(reference(x)), rtol=1e-5, atol=1e-5)
    assert _plain(ours.get_config()) == _plain(reference.get_config())
    assert _suffixes(ours.weights) == _suffixes(reference.weights)


def test_group_normalization_refuses_indivisible_channels():
    with pytest.raises(ValueError, match="multiple"):
        layers.GroupNormalization(groups=3)(_rand((2, 4)))


@pytest.mark.parametrize("axis", [-1, 1, [1, 2]])
def test_unit_normalization_matches_keras(keras, axis):
    x = _rand((2, 3, 4), 8)
    x[0, 0] = 0.0  # a zero vector stays finite
    reference, ours = keras.layers.UnitNormalization(axis=axis), layers.UnitNormalization(axis=axis)
    np.testing.assert_allclose(ours(x), np.asarray(reference(x)), rtol=1e-6, atol=1e-7)
    assert _plain(ours.get_config()) == _plain(reference.get_config())


@pytest.mark.parametrize("init", [{}, {"axis": None}, {"axis": (1, 2)}, {"invert": True}])
def test_normalization_adapt_matches_keras(keras, init):
    data = _rand((20, 3, 4), 9) * 5 + 2
    reference, ours = keras.layers.Normalization(**init), layers.Normalization(**init)
    reference.adapt(data)
    ours.adapt(data)
    x = _rand((2, 3, 4), 10)
    np.testing.assert_allclose(ours(x), np.asarray(reference(x)), rtol=1e-5, atol=1e-5)
    assert [(s, tuple(v.shape), v.dtype) for s, v in zip(_suffixes(ours.weights), ours.weights)] == \
        [(s, tuple(v.shape), v.dtype) for s, v in zip(_suffixes(reference.weights), reference.weights)]
    assert _plain(ours.get_config()) == _plain(reference.get_config())


def test_normalization_adapt_over_batches_matches_numpy():
    """Keras adapts iterables only through tf.data; the pooled statistics must equal numpy's
    over the concatenated batches."""
    batches = [_rand((7, 5), 11 + i) * (i + 1) + i for i in range(3)]
    ours = layers.Normalization()
    ours.adapt(iter(batches))
    everything = np.concatenate(batches).astype(np.float64)
    x = _rand((3, 5), 20)
    expected = (x - everything.mean(axis=0)) / np.sqrt(everything.var(axis=0))
    np.testing.assert_allclose(ours(x), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours.adapt_mean.numpy(), everything.mean(axis=0), rtol=1e-5, atol=1e-6)


def test_normalization_with_given_statistics_matches_keras(keras):
    init = {"axis": -1, "mean": [1.0, 2.0, 3.0], "variance": [4.0, 0.0, 9.0]}
    reference, ours = keras.layers.Normalization(**init), layers.Normalization(**init)
    x = _rand((4, 3), 12)
    np.testing.assert_allclose(ours(x), np.asarray(reference(x)), rtol=1e-5, atol=1e-5)
    assert ours.weights == []
    assert _plain(ours.get_config()) == _plain(reference.get_config())
    with pytest.raises(ValueError, match="both"):
        layers.Normalization(mean=1.0)


def test_adapted_normalization_saves_state_keras_reads(keras, tmp_path):
    data = _rand((50, 4), 13) * 3 - 1
    norm = layers.Normalization()
    norm.adapt(data)
    model = amber.Sequential([amber.Input((4,)), norm, layers.Dense(2)])
    x = _rand((5, 4), 14)
    expected = model.predict(x)
    path = tmp_path / "norm.keras"
    model.save(str(path))
    reloaded = keras.models.load_model(str(path))
    np.testing.assert_allclose(np.asarray(reloaded.predict(x, verbose=0)), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(reloaded.layers[0].adapt_mean), data.mean(axis=0), rtol=1e-5, atol=1e-6)
    back = amber.models.load_model(str(path))
    np.testing.assert_allclose(back.predict(x), expected, rtol=1e-6, atol=1e-6)


# --------------------------------------------------------------------- gradients


def _check_gradients(forward, params, inputs, seed=0, samples=5, eps=1e-6):
    rng = np.random.default_rng(seed)
    r = rng.normal(size=np.shape(np.asarray(forward())))
    with amber.backend.GradientTape() as tape:
        for array in inputs:
            tape.watch(array)
        loss = amber.ops.sum(amber.ops.multiply(forward(), r))
    sources = list(params) + list(inputs)
    grads = tape.gradient(loss, sources)
    for source, grad in zip(sources, grads):
        assert grad is not None
        is_array = isinstance(source, np.ndarray)
        base = source if is_array else source.numpy().copy()
        for index in rng.choice(base.size, size=min(samples, base.size), replace=False):
            index = np.unravel_index(index, base.shape)
            values = []
            for delta in (eps, -eps):
                if is_array:
                    original = source[index]
                    source[index] = original + delta
                    values.append(float(np.sum(np.asarray(forward()) * r)))
                    source[index] = original
                else:
                    moved = base.copy()
                    moved[index] += delta
                    source.assign(moved)
                    values.append(float(np.sum(np.asarray(forward()) * r)))
                    source.assign(base)
            numeric = (values[0] - values[1]) / (2 * eps)
            np.testing.assert_allclose(np.asarray(grad)[index], numeric, rtol=1e-5, atol=1e-7)


def test_multi_head_attention_gradients_match_finite_differences():
    layer = layers.MultiHeadAttention(2, 3, dtype="float64")
    q = np.random.default_rng(1).normal(size=(2, 3, 4))
    v = np.random.default_rng(2).normal(size=(2, 4, 4))
    mask = np.array([[[1, 1, 0, 1]] * 3, [[1, 0, 0, 0]] * 3], dtype=bool)
    layer(q, v)
    for variable in layer.weights:
        variable.assign(np.random.default_rng(3).normal(scale=0.5, size=tuple(variable.shape)))
    _check_gradients(lambda: layer(q, v, attention_mask=mask), layer.trainable_weights, [q, v])


@pytest.mark.parametrize("make", [
    lambda: layers.Attention(use_scale=True, score_mode="concat", dtype="float64"),
    lambda: layers.AdditiveAttention(dtype="float64"),
])
def test_attention_gradients_match_finite_differences(make):
    layer = make()
    q = np.random.default_rng(4).normal(size=(2, 3, 4))
    v = np.random.default_rng(5).normal(size=(2, 5, 4))
    layer([q, v])
    for variable in layer.weights:
        variable.assign(np.random.default_rng(6).normal(size=tuple(variable.shape)))
    _check_gradients(lambda: layer([q, v], use_causal_mask=True), layer.trainable_weights, [q, v])


def test_group_and_unit_normalization_gradients_match_finite_differences():
    group = layers.GroupNormalization(2, dtype="float64")
    unit = layers.UnitNormalization(dtype="float64")
    x = np.random.default_rng(7).normal(size=(2, 3, 4))
    group(x)
    for variable in group.weights:
        variable.assign(np.random.default_rng(8).normal(size=tuple(variable.shape)))
    _check_gradients(lambda: unit(group(x)), group.trainable_weights, [x])


# --------------------------------------------------------------------- interop corpus


def test_transformer_block_loads_and_matches_keras_expected():
    assert_amber_loads_corpus_model("transformer_block")


def test_transformer_block_resaved_by_amber_loads_in_keras(keras, tmp_path):
    path = assert_keras_loads_amber_resave(keras, "transformer_block", tmp_path)
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
    mha = next(layer for layer in config["config"]["layers"] if layer["class_name"] == "MultiHeadAttention")
    assert mha["build_config"] == {"shapes_dict": {"query_shape": [None, 10, 16], "value_shape": [None, 10, 16]}}


def _mixed_model(L, Model, Input):
    inputs = Input((6, 8))
    context = Input((5, 8))
    attended = L.Attention(use_scale=True, score_mode="concat")([inputs, context])
    added = L.AdditiveAttention()([inputs, context, context])
    mixed = L.Concatenate()([attended, added])
    projected = L.EinsumDense("abc,cd->abd", (None, 4), bias_axes="d", activation="tanh")(mixed)
    grouped = L.GroupNormalization(groups=2)(projected)
    normal = L.UnitNormalization()(grouped)
    head = L.MultiHeadAttention(2, 2, value_dim=3, output_shape=5, use_bias=False)(normal, normal)
    return Model([inputs, context], head)


def test_keras_saved_attention_and_normalization_model_loads_in_amber_and_back(keras, tmp_path):
    reference = _mixed_model(keras.layers, keras.Model, keras.Input)
    rng = np.random.default_rng(0)
    for variable in reference.weights:
        variable.assign(rng.normal(scale=0.5, size=tuple(variable.shape)).astype("float32"))
    x = [_rand((3, 6, 8), 30), _rand((3, 5, 8), 31)]
    expected = np.asarray(reference.predict(x, verbose=0))
    keras_path = tmp_path / "mixed_keras.keras"
    reference.save(str(keras_path))
    ours = amber.models.load_model(str(keras_path))
    np.testing.assert_allclose(ours.predict(x), expected, rtol=1e-5, atol=1e-5)
    amber_path = tmp_path / "mixed_amber.keras"
    ours.save(str(amber_path))
    np.testing.assert_allclose(np.asarray(keras.models.load_model(str(amber_path)).predict(x, verbose=0)), expected,
                               rtol=1e-5, atol=1e-5)


def test_keras_adapted_normalization_loads_in_amber(keras, tmp_path):
    data = _rand((40, 3), 32) * 4 + 1
    inputs = keras.Input((3,))
    norm = keras.layers.Normalization()
    norm.adapt(data)
    reference = keras.Model(inputs, norm(inputs))
    path = tmp_path / "norm_keras.keras"
    reference.save(str(path))
    x = _rand((5, 3), 33)
    ours = amber.models.load_model(str(path))
    np.testing.assert_allclose(ours.predict(x), (x - data.mean(0)) / np.sqrt(data.var(0)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours.predict(x), np.asarray(reference.predict(x, verbose=0)), rtol=1e-6, atol=1e-6)
