"""Recurrent layers against real Keras 3 (numpy backend): forward outputs with the same
weights over a grid of configs, masks, initial states and wrappers; configs key by key;
variable paths; stateful carry-over; gradients against finite differences (float64); the
interop corpus case text_lstm loaded by amber and amber's re-save loaded by Keras."""

import json
import time

import numpy as np
import pytest

import amber
from amber import layers
from _keras_roundtrip import (FIXTURES, assert_amber_loads_corpus_model, assert_keras_loads_amber_resave,
                              corpus_case, keras_numpy, plain_config as _plain)


@pytest.fixture(scope="module")
def keras():
    return keras_numpy()


def _strip_names(value):
    """Nested configs name their sub-objects with session counters; drop those names."""
    if isinstance(value, dict):
        return {k: _strip_names(v) for k, v in value.items() if k not in ("name", "shared_object_id")}
    if isinstance(value, list):
        return [_strip_names(v) for v in value]
    return value


def _seq(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


RECURRENT = [
    ("SimpleRNN", {}),
    ("SimpleRNN", {"activation": "relu", "return_sequences": True}),
    ("SimpleRNN", {"use_bias": False, "go_backwards": True, "return_state": True}),
    ("LSTM", {}),
    ("LSTM", {"return_sequences": True, "return_state": True}),
    ("LSTM", {"go_backwards": True, "return_sequences": True}),
    ("LSTM", {"unit_forget_bias": False, "activation": "relu", "recurrent_activation": "hard_sigmoid"}),
    ("LSTM", {"use_bias": False, "unroll": True}),
    ("GRU", {}),
    ("GRU", {"reset_after": False, "return_sequences": True}),
    ("GRU", {"go_backwards": True, "return_state": True}),
    ("GRU", {"use_bias": False, "reset_after": False}),
    ("GRU", {"activation": "softsign", "recurrent_activation": "tanh", "return_sequences": True}),
]


def _pair(keras, name, units, kwargs, x, **call_kwargs):
    """Build the Keras layer, copy its weights into amber's, return both outputs as lists."""
    reference = getattr(keras.layers, name)(units, **kwargs)
    ours = getattr(layers, name)(units, **kwargs)
    expected = reference(x, **call_kwargs)
    ours(x, **call_kwargs)
    ours.set_weights(reference.get_weights())
    actual = ours(x, **call_kwargs)
    as_list = lambda out: [np.asarray(o) for o in out] if isinstance(out, (list, tuple)) else [np.asarray(out)]
    return reference, ours, as_list(expected), as_list(actual)


@pytest.mark.parametrize("name,kwargs", RECURRENT)
def test_recurrent_forward_matches_keras(keras, name, kwargs):
    x = _seq((3, 7, 5))
    reference, ours, expected, actual = _pair(keras, name, 4, kwargs, x)
    assert len(expected) == len(actual)
    for e, a in zip(expected, actual):
        assert a.shape == e.shape
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-6)
    assert [v.path for v in ours.weights] == [v.path.replace(reference.name, ours.name, 1)
                                             for v in reference.weights]
    assert _plain(ours.get_config()) == _plain(reference.get_config())


@pytest.mark.parametrize("name", ["SimpleRNN", "LSTM", "GRU"])
@pytest.mark.parametrize("zero_output", [False, True])
def test_masked_steps_carry_state_like_keras(keras, name, zero_output):
    x = _seq((4, 6, 3), seed=1)
    mask = np.ones((4, 6), dtype=bool)
    mask[0, 4:] = False      # trailing padding
    mask[1, :2] = False      # leading padding
    mask[2, 3] = False       # a hole
    kwargs = {"return_sequences": True, "return_state": True, "zero_output_for_mask": zero_output}
    _, _, expected, actual = _pair(keras, name, 5, kwargs, x, mask=mask)
    for e, a in zip(expected, actual):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,states", [("LSTM", 2), ("GRU", 1), ("SimpleRNN", 1)])
def test_initial_state_matches_keras(keras, name, states):
    x = _seq((2, 5, 3), seed=2)
    initial = [_seq((2, 4), seed=10 + i) for i in range(states)]
    _, _, expected, actual = _pair(keras, name, 4, {"return_state": True}, x, initial_state=initial)
    for e, a in zip(expected, actual):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["LSTM", "GRU"])
def test_stateful_carries_state_between_calls_like_keras(keras, name):
    x1, x2 = _seq((2, 4, 3), seed=3), _seq((2, 4, 3), seed=4)
    reference = getattr(keras.layers, name)(3, stateful=True)
    ours = getattr(layers, name)(3, stateful=True)
    reference.build((2, 4, 3))
    ours.build((2, 4, 3))
    ours.set_weights(reference.get_weights())
    assert len(ours.weights) == len(reference.weights) == 3  # carried state is not a weight
    for x in (x1, x2):
        np.testing.assert_allclose(ours(x), np.asarray(reference(x)), rtol=1e-5, atol=1e-6)
    reference.reset_state()
    ours.reset_state()
    np.testing.assert_allclose(ours(x1), np.asarray(reference(x1)), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="batch size"):
        ours(_seq((3, 4, 3)))


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "ave", "mul", None])
@pytest.mark.parametrize("inner,inner_kwargs", [("LSTM", {"return_sequences": True}), ("GRU", {}),
                                                ("SimpleRNN", {"return_sequences": True, "return_state": True})])
def test_bidirectional_matches_keras(keras, merge_mode, inner, inner_kwargs):
    x = _seq((3, 6, 4), seed=5)
    reference = keras.layers.Bidirectional(getattr(keras.layers, inner)(3, **inner_kwargs), merge_mode=merge_mode)
    ours = layers.Bidirectional(getattr(layers, inner)(3, **inner_kwargs), merge_mode=merge_mode)
    expected = reference(x)
    ours(x)
    ours.set_weights(reference.get_weights())
    actual = ours(x)
    expected = expected if isinstance(expected, (list, tuple)) else [expected]
    actual = actual if isinstance(actual, (list, tuple)) else [actual]
    assert len(actual) == len(expected)
    for e, a in zip(expected, actual):
        np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=1e-5, atol=1e-6)
    assert _strip_names(_plain(ours.get_config())) == _strip_names(_plain(reference.get_config()))
    assert [v.path.split("/", 1)[1] for v in ours.weights] == [v.path.split("/", 1)[1] for v in reference.weights]


def test_bidirectional_with_mask_matches_keras(keras):
    x = _seq((3, 5, 2), seed=6)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype=bool)
    reference = keras.layers.Bidirectional(keras.layers.LSTM(3, return_sequences=True))
    ours = layers.Bidirectional(layers.LSTM(3, return_sequences=True))
    expected = np.asarray(reference(x, mask=mask))
    ours(x)
    ours.set_weights(reference.get_weights())
    np.testing.assert_allclose(ours(x, mask=mask), expected, rtol=1e-5, atol=1e-6)


def test_time_distributed_matches_keras(keras):
    x = _seq((2, 5, 4, 3), seed=7)
    reference = keras.layers.TimeDistributed(keras.layers.Dense(6, activation="tanh"))
    ours = layers.TimeDistributed(layers.Dense(6, activation="tanh"))
    expected = np.asarray(reference(x))
    ours(x)
    ours.set_weights(reference.get_weights())
    np.testing.assert_allclose(ours(x), expected, rtol=1e-5, atol=1e-6)
    assert _strip_names(_plain(ours.get_config())) == _strip_names(_plain(reference.get_config()))
    assert ours.compute_output_shape((None, 5, 4, 3)) == tuple(reference.compute_output_shape((None, 5, 4, 3)))


def test_rnn_with_cells_and_stacked_cells_matches_keras(keras):
    x = _seq((2, 6, 3), seed=8)
    reference = keras.layers.RNN([keras.layers.LSTMCell(4), keras.layers.GRUCell(3), keras.layers.SimpleRNNCell(2)],
                                 return_sequences=True, return_state=True)
    ours = layers.RNN([layers.LSTMCell(4), layers.GRUCell(3), layers.SimpleRNNCell(2)],
                      return_sequences=True, return_state=True)
    expected = reference(x)
    ours(x)
    ours.set_weights(reference.get_weights())
    actual = ours(x)
    flat = lambda items: [np.asarray(i) for i in amber.layers.tree.flatten(list(items))]
    for e, a in zip(flat(expected), flat(actual)):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-6)
    assert len(flat(expected)) == len(flat(actual)) == 1 + 2 + 1 + 1
    assert _strip_names(_plain(ours.get_config())) == _strip_names(_plain(reference.get_config()))


@pytest.mark.parametrize("name", ["SimpleRNNCell", "LSTMCell", "GRUCell"])
def test_cell_configs_match_keras(keras, name):
    kwargs = {"dropout": 0.25, "recurrent_dropout": 0.5, "seed": 3}
    if name == "GRUCell":
        kwargs["reset_after"] = False
    assert _plain(getattr(layers, name)(7, **kwargs).get_config()) == \
        _plain(getattr(keras.layers, name)(7, **kwargs).get_config())


class ElmanCell(layers.Layer):
    """A user-written cell (no built-in fast path): h = tanh(x w + h_prev u)."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units), name="w")
        self.u = self.add_weight(shape=(self.units, self.units), name="u")

    def call(self, inputs, states):
        h = amber.ops.tanh(amber.ops.add(amber.ops.matmul(inputs, self.w), amber.ops.matmul(states[0], self.u)))
        return h, [h]

    def get_config(self):
        config = super().get_config()
        config["units"] = self.units
        return config


def _elman_steps(x, cell, reverse=False):
    """ElmanCell's states computed by a numpy loop, in the order the RNN visits the steps."""
    w, u = cell.w.numpy(), cell.u.numpy()
    h = np.zeros((x.shape[0], cell.units), dtype="float32")
    steps = []
    for t in (reversed(range(x.shape[1])) if reverse else range(x.shape[1])):
        h = np.tanh(x[:, t] @ w + h @ u)
        steps.append(h)
    return np.stack(steps, axis=1)


def test_custom_cell_runs_in_rnn_against_numpy():
    """A user-written cell through RNN, checked against a numpy loop."""
    x = _seq((3, 5, 2), seed=9)
    rnn = layers.RNN(ElmanCell(4), return_sequences=True, go_backwards=True)
    out = rnn(x)
    np.testing.assert_allclose(out, _elman_steps(x, rnn.cell, reverse=True), rtol=1e-5, atol=1e-6)
    assert [v.path for v in rnn.weights] == [f"{rnn.name}/elman_cell/w", f"{rnn.name}/elman_cell/u"]


def test_rnn_refuses_bad_inputs():
    with pytest.raises(ValueError, match="state_size"):
        layers.RNN(layers.Dense(3))
    lstm = layers.LSTM(2)
    with pytest.raises(ValueError, match="rank"):
        lstm(np.zeros((2, 3), dtype="float32"))
    with pytest.raises(ValueError, match="mask shape"):
        lstm(np.zeros((2, 3, 4), dtype="float32"), mask=np.ones((2, 5), dtype=bool))
    with pytest.raises(ValueError, match="units"):
        layers.GRU(0)
    with pytest.raises(ValueError, match="merge mode"):
        layers.Bidirectional(layers.LSTM(2), merge_mode="max")


# ----------------------------------------------------------------------- gradients


def _finite_difference_check(layer, x, seed=0, samples=6, eps=1e-6):
    """Tape gradients of sum(output * r) w.r.t. every weight and the input, against central
    differences at a few random entries of each."""
    rng = np.random.default_rng(seed)
    out = layer(x)
    out = out[0] if isinstance(out, (list, tuple)) else out
    r = rng.normal(size=np.shape(out))

    def loss_value():
        y = layer(x)
        y = y[0] if isinstance(y, (list, tuple)) else y
        return float(np.sum(np.asarray(y) * r))

    with amber.backend.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        y = y[0] if isinstance(y, (list, tuple)) else y
        loss = amber.ops.sum(amber.ops.multiply(y, r))
    sources = list(layer.trainable_weights) + [x]
    grads = tape.gradient(loss, sources)
    for source, grad in zip(sources, grads):
        assert grad is not None, f"no gradient for {getattr(source, 'path', 'input')}"
        array = source.numpy() if hasattr(source, "numpy") and not isinstance(source, np.ndarray) else source
        flat = np.asarray(array).reshape(-1)
        for index in rng.choice(flat.size, size=min(samples, flat.size), replace=False):
            original = flat[index]

            def at(value):
                new = np.asarray(array).copy().reshape(-1)
                new[index] = value
                new = new.reshape(np.shape(array))
                if source is x:
                    x[...] = new
                else:
                    source.assign(new)
                result = loss_value()
                return result

            plus, minus = at(original + eps), at(original - eps)
            at(original)
            numeric = (plus - minus) / (2 * eps)
            np.testing.assert_allclose(np.asarray(grad).reshape(-1)[index], numeric, rtol=1e-5, atol=1e-7,
                                       err_msg=f"gradient of {getattr(source, 'path', 'input')}[{index}]")


@pytest.mark.parametrize("make", [
    lambda: layers.SimpleRNN(3, return_sequences=True, dtype="float64"),
    lambda: layers.LSTM(3, dtype="float64"),
    lambda: layers.LSTM(3, go_backwards=True, return_sequences=True, dtype="float64"),
    lambda: layers.GRU(3, dtype="float64"),
    lambda: layers.GRU(3, reset_after=False, return_sequences=True, dtype="float64"),
    lambda: layers.Bidirectional(layers.LSTM(2, return_sequences=True, dtype="float64"), dtype="float64"),
    lambda: layers.RNN([layers.GRUCell(2, dtype="float64"), layers.LSTMCell(2, dtype="float64")],
                       dtype="float64"),
], ids=["simple_rnn", "lstm", "lstm_backwards", "gru", "gru_reset_before", "bidirectional", "stacked"])
def test_recurrent_gradients_match_finite_differences(make):
    layer = make()
    x = np.random.default_rng(1).normal(size=(2, 4, 3))
    layer(x)
    # Non-zero biases so every bias path is exercised.
    for variable in layer.weights:
        variable.assign(np.random.default_rng(2).normal(scale=0.5, size=tuple(variable.shape)))
    _finite_difference_check(layer, x)


def test_masked_lstm_gradients_match_finite_differences():
    layer = layers.LSTM(3, return_sequences=True, dtype="float64")
    x = np.random.default_rng(3).normal(size=(2, 5, 2))
    mask = np.array([[1, 1, 1, 0, 0], [1, 0, 1, 1, 1]], dtype=bool)

    class Masked:
        def __call__(self, inputs):
            return layer(inputs, mask=mask)

        @property
        def trainable_weights(self):
            return layer.trainable_weights

    layer(x)
    _finite_difference_check(Masked(), x)


# ----------------------------------------------------------------------- interop corpus


def test_text_lstm_loads_and_matches_keras_expected():
    assert_amber_loads_corpus_model("text_lstm")


def test_text_lstm_resaved_by_amber_loads_in_keras(keras, tmp_path):
    path = assert_keras_loads_amber_resave(keras, "text_lstm", tmp_path)
    import h5py
    import zipfile

    with zipfile.ZipFile(path) as archive, archive.open("model.weights.h5") as raw:
        import io

        with h5py.File(io.BytesIO(raw.read()), "r") as weights:
            assert [weights[f"layers/lstm/cell/vars/{i}"].shape for i in range(3)] == [(8, 64), (16, 64), (64,)]


def test_lstm_model_trains_with_fit():
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, 20, size=(64, 8)).astype("int32")
    labels = (tokens[:, -1] % 2).astype("int32")
    model = amber.Sequential([amber.Input((8,), dtype="int32"), layers.Embedding(20, 8), layers.LSTM(8),
                              layers.Dense(2)])
    model.compile(optimizer=amber.optimizers.Adam(0.02),
                  loss=amber.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = model.evaluate(tokens, labels, verbose=0)
    model.fit(tokens, labels, epochs=15, batch_size=32, verbose=0)
    after = model.evaluate(tokens, labels, verbose=0)
    before = before[0] if isinstance(before, (list, tuple)) else before
    after = after[0] if isinstance(after, (list, tuple)) else after
    assert after < 0.5 * before


def test_text_lstm_forward_time_batch_32():
    """Reports the forward time of text_lstm at batch 32 (and keeps it from regressing badly)."""
    _, x, _ = corpus_case("text_lstm")
    model = amber.models.load_model(str(FIXTURES / "text_lstm.keras"))
    batch = np.resize(x, (32,) + x.shape[1:])
    model(batch)
    runs = 30
    start = time.perf_counter()
    for _ in range(runs):
        model(batch)
    per_call = (time.perf_counter() - start) / runs
    print(f"text_lstm forward, batch 32: {per_call * 1e3:.3f} ms")
    assert per_call < 0.05


# ----------------------------------------------------------------------- inside models


def _token_models(L):
    return [
        [L.Input((6,), dtype="int32"), L.Embedding(12, 4, mask_zero=True), L.LSTM(3, return_sequences=True),
         L.GRU(2)],
        [L.Input((6,), dtype="int32"), L.Embedding(12, 4, mask_zero=True),
         L.Bidirectional(L.LSTM(3, return_sequences=True)), L.SimpleRNN(2)],
    ]


@pytest.mark.parametrize("index", [0, 1])
def test_embedding_mask_zero_reaches_recurrent_layers_like_keras(keras, index):
    tokens = np.array([[3, 4, 5, 0, 0, 0], [1, 2, 0, 0, 0, 0], [6, 7, 8, 9, 1, 2]], dtype="int32")
    reference = keras.Sequential(_token_models(keras.layers)[index])
    ours = amber.Sequential(_token_models(layers)[index])
    ours.set_weights(reference.get_weights())
    expected = np.asarray(reference.predict(tokens, verbose=0))
    np.testing.assert_allclose(ours.predict(tokens), expected, rtol=1e-5, atol=1e-6)
    # The padded rows really depend on the mask: without it the outputs differ.
    unmasked = amber.Sequential(_token_models(layers)[index])
    unmasked.layers[0].mask_zero = False
    unmasked.layers[0].supports_masking = False
    unmasked.set_weights(reference.get_weights())
    assert np.abs(unmasked.predict(tokens)[:2] - expected[:2]).max() > 1e-4


def _state_model(L, Model):
    inputs = L.Input((5, 3))
    sequence, h, c = L.LSTM(4, return_sequences=True, return_state=True)(inputs)
    both = L.Bidirectional(L.GRU(2, return_sequences=True))(sequence, initial_state=None)
    steps = L.TimeDistributed(L.Dense(3))(both)
    stacked = L.RNN([L.SimpleRNNCell(3), L.GRUCell(2, reset_after=False)])(steps)
    return Model(inputs, [L.Concatenate()([h, c]), stacked])


def test_recurrent_functional_model_saved_by_amber_loads_in_keras(keras, tmp_path):
    x = _seq((2, 5, 3), seed=30)
    reference = _state_model(keras.layers, keras.Model)
    ours = _state_model(layers, amber.Model)
    assert [w.shape for w in ours.weights] == [tuple(w.shape) for w in reference.weights]
    ours.set_weights(reference.get_weights())
    expected = [np.asarray(o) for o in reference.predict(x, verbose=0)]
    actual = ours.predict(x)
    for e, a in zip(expected, actual):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-6)
    path = tmp_path / "recurrent.keras"
    ours.save(str(path))
    reloaded = keras.models.load_model(str(path))
    for e, a in zip(expected, reloaded.predict(x, verbose=0)):
        np.testing.assert_allclose(np.asarray(a), e, rtol=1e-5, atol=1e-6)
    keras_path = tmp_path / "recurrent_keras.keras"
    reference.save(str(keras_path))
    back = amber.models.load_model(str(keras_path))
    for e, a in zip(expected, back.predict(x)):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,kwargs", RECURRENT)
def test_recorded_forward_equals_inference_forward(name, kwargs):
    """Inference takes a sliced numpy path, a recording tape the op-by-op path: same numbers."""
    layer = getattr(layers, name)(4, **kwargs)
    x = _seq((3, 6, 5), seed=40)
    plain = layer(x)
    with amber.backend.GradientTape():
        recorded = layer(x)
    plain = plain if isinstance(plain, (list, tuple)) else [plain]
    recorded = recorded if isinstance(recorded, (list, tuple)) else [recorded]
    for p, r in zip(plain, recorded):
        np.testing.assert_allclose(np.asarray(amber.ops.convert_to_numpy(r)), p, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", ["SimpleRNN", "LSTM", "GRU"])
def test_layer_configs_with_regularizers_constraints_and_dropout_match_keras(keras, name):
    kwargs = {"dropout": 0.2, "recurrent_dropout": 0.1, "seed": 5, "kernel_regularizer": "l2",
              "recurrent_regularizer": "l1", "activity_regularizer": "l1", "bias_constraint": "non_neg",
              "kernel_initializer": "he_normal", "return_sequences": True}
    ours, reference = getattr(layers, name)(3, **kwargs), getattr(keras.layers, name)(3, **kwargs)
    assert _strip_names(_plain(ours.get_config())) == _strip_names(_plain(reference.get_config()))
    rebuilt = getattr(layers, name).from_config(ours.get_config())
    assert _strip_names(_plain(rebuilt.get_config())) == _strip_names(_plain(reference.get_config()))


def test_recurrent_dropout_applies_only_in_training():
    layer = layers.LSTM(4, dropout=0.5, recurrent_dropout=0.5, return_sequences=True)
    x = _seq((3, 5, 2), seed=50)
    inference = layer(x)
    np.testing.assert_array_equal(layer(x, training=False), inference)
    trained = layer(x, training=True)
    assert np.abs(trained - inference).max() > 1e-3
    # masks are drawn per call: two training calls differ
    assert np.abs(layer(x, training=True) - trained).max() > 1e-6
    assert layer.losses == [] and layer.cell._dropout_mask is None


def test_registered_custom_cell_model_saves_and_loads(tmp_path):
    # Registered here, not at import: other tests may reset the registry.
    amber.saving.register_keras_serializable(package="RnnTests")(ElmanCell)
    model = amber.Sequential([amber.Input((4, 3)), layers.RNN(ElmanCell(5))])
    x = _seq((2, 4, 3), seed=60)
    h = _elman_steps(x, model.layers[0].cell)[:, -1]
    np.testing.assert_allclose(model.predict(x), h, rtol=1e-5, atol=1e-6)
    path = tmp_path / "elman.keras"
    model.save(str(path))
    np.testing.assert_allclose(amber.models.load_model(str(path)).predict(x), h, rtol=1e-5, atol=1e-6)


def _symbolic_shapes(L, Input):
    flat = amber.layers.tree.flatten
    inputs = Input((5, 3))
    makers = [
        lambda: L.LSTM(4, return_state=True),
        lambda: L.Bidirectional(L.LSTM(4, return_state=True, return_sequences=True)),
        lambda: L.Bidirectional(L.GRU(4, return_state=True), merge_mode=None),
        lambda: L.RNN([L.LSTMCell(2), L.GRUCell(3)], return_state=True),
        lambda: L.TimeDistributed(L.Dense(2)),
    ]
    result = []
    for make in makers:
        out = make()(inputs)
        nesting = [type(o).__name__ == "list" for o in out] if isinstance(out, (list, tuple)) else None
        result.append(([tuple(t.shape) for t in flat(list(out) if isinstance(out, (list, tuple)) else [out])],
                       nesting))
    return result


def test_symbolic_output_shapes_and_nesting_match_keras(keras):
    assert _symbolic_shapes(layers, amber.Input) == _symbolic_shapes(keras.layers, keras.Input)


def test_recurrent_layers_refuse_degenerate_inputs_and_configs():
    with pytest.raises(ValueError, match="no time steps"):
        layers.LSTM(2)(np.zeros((2, 0, 3), dtype="float32"))
    with pytest.raises(ValueError, match="no time steps"):
        layers.GRU(2, return_sequences=True)(np.zeros((2, 0, 3), dtype="float32"))
    with pytest.raises(ValueError, match="go_backwards"):
        layers.Bidirectional(layers.Dense(2))
    with pytest.raises(ValueError, match="refusing to allocate"):
        layers.LSTM(1 << 20)(np.zeros((1, 2, 1 << 14), dtype="float32"))
    with pytest.raises(ValueError, match="dropout"):
        layers.GRU(2, dropout=1.5)
    with pytest.raises(ValueError):
        layers.LSTM.from_config({"units": -3})


def test_recurrent_model_in_legacy_h5_and_weights_files_both_ways(keras, tmp_path):
    def build(L, Input, Model):
        inputs = Input((5, 3))
        x = L.Bidirectional(L.LSTM(4, return_sequences=True))(inputs)
        return Model(inputs, L.GRU(3)(x))

    reference = build(keras.layers, keras.Input, keras.Model)
    x = _seq((2, 5, 3), seed=70)
    expected = np.asarray(reference.predict(x, verbose=0))
    reference.save(str(tmp_path / "k.h5"))
    reference.save_weights(str(tmp_path / "k.weights.h5"))
    np.testing.assert_allclose(amber.models.load_model(str(tmp_path / "k.h5")).predict(x), expected,
                               rtol=1e-5, atol=1e-6)
    ours = build(layers, amber.Input, amber.Model)
    ours.load_weights(str(tmp_path / "k.weights.h5"))
    np.testing.assert_allclose(ours.predict(x), expected, rtol=1e-5, atol=1e-6)
    ours.save(str(tmp_path / "a.h5"))
    np.testing.assert_allclose(np.asarray(keras.models.load_model(str(tmp_path / "a.h5")).predict(x, verbose=0)),
                               expected, rtol=1e-5, atol=1e-6)


def test_keras2_style_lstm_config_deserializes():
    config = {"class_name": "LSTM", "config": {
        "name": "lstm_k2", "trainable": True, "dtype": "float32", "return_sequences": False, "return_state": False,
        "go_backwards": False, "stateful": False, "unroll": False, "time_major": False, "units": 3,
        "activation": "tanh", "recurrent_activation": "sigmoid", "use_bias": True, "unit_forget_bias": True,
        "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
        "recurrent_initializer": {"class_name": "Orthogonal", "config": {"gain": 1.0, "seed": None}},
        "bias_initializer": {"class_name": "Zeros", "config": {}}, "dropout": 0.0, "recurrent_dropout": 0.0,
        "implementation": 2}}
    layer = layers.deserialize(config)
    assert layer(np.zeros((1, 2, 4), dtype="float32")).shape == (1, 3)
    config["config"]["time_major"] = True
    with pytest.raises(ValueError, match="time_major"):
        layers.deserialize(config)


def test_time_step_op_gradient_matches_finite_differences():
    from amber.ops.rnn_attention_ops import time_step

    x = np.random.default_rng(80).normal(size=(2, 4, 3))
    r = np.random.default_rng(81).normal(size=(2, 3))
    with amber.backend.GradientTape() as tape:
        tape.watch(x)
        loss = amber.ops.sum(amber.ops.multiply(time_step(x, 2), r))
    grad = tape.gradient(loss, x)
    numeric = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        original = x[index]
        x[index] = original + 1e-6
        plus = np.sum(x[:, 2] * r)
        x[index] = original - 1e-6
        minus = np.sum(x[:, 2] * r)
        x[index] = original
        numeric[index] = (plus - minus) / 2e-6
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)
