"""Keras masks reaching multi-input layers inside Functional models, against real Keras 3
(numpy backend): the same small models built in both, Keras's weights copied into amber,
padded token batches compared; then each model saved by one library and loaded by the other.

The padded batches differ from their unpadded counterparts only through masking, so a mask
that fails to arrive (or arrives wrong) changes the outputs and the comparison fails."""

import numpy as np
import pytest

import amber
from _keras_roundtrip import keras_numpy

VOCAB, SEQ, DIM = 12, 6, 8


@pytest.fixture(scope="module")
def keras():
    return keras_numpy()


def _tokens(seed=0, batch=4):
    """Token ids with a different amount of trailing (and one leading) zero padding per row."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(1, VOCAB, size=(batch, SEQ)).astype("int32")
    for row in range(batch):
        tokens[row, SEQ - row:] = 0
    tokens[-1, 0] = 0
    return tokens


def _mha_block(lib, mask_zero=True):
    """Embedding(mask_zero) -> self-attention MHA -> Add -> LayerNormalization -> GAP1D."""
    L = lib.layers
    tokens = lib.Input(shape=(SEQ,), dtype="int32", name="tokens")
    x = L.Embedding(VOCAB, DIM, mask_zero=mask_zero, name="embed")(tokens)
    attended = L.MultiHeadAttention(num_heads=2, key_dim=4, name="mha")(x, x)
    x = L.Add(name="residual")([x, attended])
    x = L.LayerNormalization(name="norm")(x)
    x = L.GlobalAveragePooling1D(name="pool")(x)
    out = L.Dense(3, name="head")(x)
    return lib.Model(tokens, out, name="mha_block")


def _concat_mixed(lib, mask_zero=True):
    """A masked Embedding branch concatenated with an unmasked Dense branch, then an LSTM that
    sees the merged mask, and a second model output straight from the Concatenate."""
    L = lib.layers
    tokens = lib.Input(shape=(SEQ,), dtype="int32", name="tokens")
    features = lib.Input(shape=(SEQ, 3), name="features")
    embedded = L.Embedding(VOCAB, DIM, mask_zero=mask_zero, name="embed")(tokens)
    dense = L.Dense(4, name="proj")(features)
    merged = L.Concatenate(name="concat")([embedded, dense])
    seq_joined = L.Concatenate(axis=1, name="concat_time")([embedded, embedded])
    pooled = L.GlobalAveragePooling1D(name="pool_time")(seq_joined)
    summary = L.LSTM(5, name="lstm")(merged)
    out = L.Concatenate(name="joined")([summary, pooled])
    return lib.Model([tokens, features], out, name="concat_mixed")


def _dot_attention(lib, mask_zero=True):
    """Attention and AdditiveAttention over two differently masked inputs, each result
    pooled with the query's mask the attention layer passes on."""
    L = lib.layers
    queries = lib.Input(shape=(SEQ,), dtype="int32", name="queries")
    values = lib.Input(shape=(SEQ,), dtype="int32", name="values")
    q = L.Embedding(VOCAB, DIM, mask_zero=mask_zero, name="embed_q")(queries)
    v = L.Embedding(VOCAB, DIM, mask_zero=mask_zero, name="embed_v")(values)
    dot = L.Attention(name="dot")([q, v])
    additive = L.AdditiveAttention(name="additive")([q, v, v])
    merged = L.Average(name="avg")([dot, additive])
    out = L.GlobalAveragePooling1D(name="pool")(merged)
    return lib.Model([queries, values], out, name="dot_attention")


def _inputs_for(builder):
    if builder is _mha_block:
        return _tokens(1)
    if builder is _concat_mixed:
        return [_tokens(2), np.random.default_rng(3).normal(size=(4, SEQ, 3)).astype("float32")]
    values = _tokens(5)
    values[0, :] = 0  # a row whose values are all masked
    return [_tokens(4), values]


BUILDERS = [_mha_block, _concat_mixed, _dot_attention]


def _pair(keras, builder):
    """The model built in both libraries, amber holding Keras's (random) weights."""
    keras.utils.set_random_seed(7)
    reference = builder(keras)
    ours = builder(amber)
    ours.set_weights(reference.get_weights())
    return reference, ours


def _mask_free_twin(lib, builder):
    """The same model with mask_zero off everywhere: what a lost mask would compute."""
    model = builder(lib)
    twin = builder(lib, mask_zero=False)
    twin.set_weights(model.get_weights())
    return model, twin


@pytest.mark.parametrize("builder", BUILDERS, ids=lambda b: b.__name__.strip("_"))
def test_outputs_match_keras(keras, builder):
    reference, ours = _pair(keras, builder)
    x = _inputs_for(builder)
    expected = np.asarray(reference.predict(x, verbose=0))
    np.testing.assert_allclose(ours.predict(x), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(ours(x)), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("builder", BUILDERS, ids=lambda b: b.__name__.strip("_"))
def test_masks_change_the_outputs(keras, builder):
    # Guards the comparison above: with these inputs the masks matter in Keras itself.
    keras.utils.set_random_seed(7)
    masked, unmasked = _mask_free_twin(keras, builder)
    x = _inputs_for(builder)
    assert not np.allclose(masked.predict(x, verbose=0), unmasked.predict(x, verbose=0), rtol=1e-3)


def test_merge_masks_match_keras(keras):
    rng = np.random.default_rng(0)
    inputs = [rng.normal(size=(2, 4, 3)).astype("float32") for _ in range(2)]
    a, b = rng.random((2, 4)) > 0.5, rng.random((2, 4)) > 0.5
    for name in ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"]:
        for masks in ([a, b], [a, None], None):
            expected = getattr(keras.layers, name)().compute_mask(inputs, masks)
            got = getattr(amber.layers, name)().compute_mask(inputs, masks)
            if expected is None:
                assert got is None, (name, masks)
            else:
                np.testing.assert_array_equal(got, np.asarray(expected), err_msg=name)
    wide = [inputs[0], rng.normal(size=(2, 4, 5)).astype("float32")]
    for axis in (-1, 1):
        pair = wide if axis == -1 else inputs
        for masks in ([a, b], [a, None], [None, b], [None, None]):
            expected = keras.layers.Concatenate(axis=axis).compute_mask(pair, masks)
            got = amber.layers.Concatenate(axis=axis).compute_mask(pair, masks)
            if expected is None:
                assert got is None, (axis, masks)
            else:
                np.testing.assert_array_equal(got, np.asarray(expected), err_msg=f"axis={axis}")
    with pytest.raises(ValueError, match="mask"):
        amber.layers.Add().compute_mask(inputs, [a])


# Keras records the masks its single-input layers receive as explicit `mask=` arguments fed by
# mask operation nodes (NotEqual, LogicalOr, ...); amber records and writes the same, so Keras
# loading amber's file sees the masks its own graph would (test_saving_masked_keras.py checks
# the configs key by key).
@pytest.mark.parametrize("builder", BUILDERS, ids=lambda b: b.__name__.strip("_"))
def test_amber_save_loads_in_keras(keras, builder, tmp_path):
    reference, ours = _pair(keras, builder)
    x = _inputs_for(builder)
    path = tmp_path / "amber_saved.keras"
    ours.save(str(path))
    loaded = keras.models.load_model(str(path))
    np.testing.assert_allclose(np.asarray(loaded.predict(x, verbose=0)),
                               np.asarray(reference.predict(x, verbose=0)), rtol=1e-5, atol=1e-6)
    reloaded = amber.models.load_model(str(path))
    np.testing.assert_allclose(reloaded.predict(x), np.asarray(reference.predict(x, verbose=0)),
                               rtol=1e-5, atol=1e-6)
