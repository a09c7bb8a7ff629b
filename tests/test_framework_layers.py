"""Layers against real Keras 3 (numpy backend): configs key by key, forward outputs with the
same weights, weight order and variable paths, gradients against finite differences."""

import json

import numpy as np
import pytest

import amber
from amber import backend, layers, ops
from test_framework_reference import keras_reference


@pytest.fixture(scope="module")
def keras():
    return keras_reference()


# (constructor args, kwargs, input shape or None for "list of two (4, 6) inputs")
LAYER_CASES = [
    ("Dense", (5,), {"activation": "relu"}, (4, 6)),
    ("Dense", (3,), {"use_bias": False, "activation": "tanh"}, (2, 3, 6)),
    ("Dense", (2,), {"activation": "softmax", "kernel_initializer": "ones"}, (4, 6)),
    ("Activation", ("sigmoid",), {}, (4, 6)),
    ("Dropout", (0.3,), {"seed": 3}, (4, 6)),
    ("BatchNormalization", (), {}, (4, 6)),
    ("BatchNormalization", (), {"axis": 1, "momentum": 0.9, "epsilon": 1e-2, "center": False}, (4, 3, 5)),
    ("LayerNormalization", (), {}, (4, 6)),
    ("LayerNormalization", (), {"axis": [1, 2], "scale": False}, (4, 3, 5)),
    ("Flatten", (), {}, (4, 3, 2)),
    ("Reshape", ((3, 2),), {}, (4, 6)),
    ("Reshape", ((-1, 2),), {}, (4, 3, 4)),
    ("Permute", ((2, 1),), {}, (4, 3, 5)),
    ("RepeatVector", (3,), {}, (4, 6)),
    ("Rescaling", (1 / 255.0,), {"offset": -0.5}, (4, 6)),
    ("Softmax", (), {"axis": -1}, (4, 6)),
    ("ReLU", (), {}, (4, 6)),
    ("ReLU", (), {"max_value": 0.5, "negative_slope": 0.1, "threshold": 0.2}, (4, 6)),
    ("LeakyReLU", (), {"negative_slope": 0.2}, (4, 6)),
    ("Identity", (), {}, (4, 6)),
    ("Add", (), {}, None),
    ("Subtract", (), {}, None),
    ("Multiply", (), {}, None),
    ("Average", (), {}, None),
    ("Maximum", (), {}, None),
    ("Minimum", (), {}, None),
    ("Concatenate", (), {"axis": -1}, None),
    ("Concatenate", (), {"axis": 1}, None),
]


def _ids(case):
    return f"{case[0]}-{case[2]}"


def _inputs(shape, rng):
    if shape is None:
        return [rng.normal(size=(4, 6)).astype("float32"), rng.normal(size=(4, 6)).astype("float32")]
    return rng.normal(size=shape).astype("float32")


def _without_name(config):
    config = dict(config)
    config.pop("name", None)
    return config


@pytest.mark.parametrize("case", LAYER_CASES, ids=_ids)
def test_layer_config_matches_keras(keras, case):
    name, args, kwargs, _ = case
    ours = getattr(layers, name)(*args, **kwargs)
    theirs = getattr(keras.layers, name)(*args, **kwargs)
    ours_config = json.loads(json.dumps(_without_name(ours.get_config())))
    theirs_config = json.loads(json.dumps(_without_name(theirs.get_config())))
    assert list(ours_config) == list(theirs_config)
    assert ours_config == theirs_config
    # and the config rebuilds an equivalent layer
    again = getattr(layers, name).from_config(ours.get_config())
    assert again.get_config() == ours.get_config()


@pytest.mark.parametrize("case", LAYER_CASES, ids=_ids)
def test_layer_forward_matches_keras_with_same_weights(keras, case):
    name, args, kwargs, shape = case
    rng = np.random.default_rng(0)
    x = _inputs(shape, rng)
    theirs = getattr(keras.layers, name)(*args, **kwargs)
    expected = np.asarray(theirs(x))
    ours = getattr(layers, name)(*args, **kwargs)
    ours(x)
    weights = theirs.get_weights()
    if weights:
        # non-trivial statistics so BatchNormalization's inference path is really exercised
        weights = [w + rng.uniform(0.1, 0.5, size=w.shape).astype(w.dtype) for w in weights]
        theirs.set_weights(weights)
        expected = np.asarray(theirs(x))
    assert [tuple(w.shape) for w in ours.get_weights()] == [w.shape for w in weights]
    ours.set_weights(weights)
    np.testing.assert_allclose(np.asarray(ours(x)), expected, rtol=1e-5, atol=1e-6)
    assert np.asarray(ours(x)).dtype == expected.dtype


def test_batch_normalization_training_step_matches_keras(keras):
    rng = np.random.default_rng(1)
    x = rng.normal(2.0, 3.0, size=(8, 5)).astype("float32")
    theirs = keras.layers.BatchNormalization(momentum=0.8)
    ours = layers.BatchNormalization(momentum=0.8)
    theirs.build((None, 5))
    ours.build((None, 5))
    out_theirs = np.asarray(theirs(x, training=True))
    out_ours = np.asarray(ours(x, training=True))
    np.testing.assert_allclose(out_ours, out_theirs, rtol=1e-4, atol=1e-5)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # inference after the update uses the moved statistics
    np.testing.assert_allclose(np.asarray(ours(x)), np.asarray(theirs(x)), rtol=1e-5, atol=1e-5)


def test_embedding_matches_keras(keras):
    ids = np.array([[0, 3, 9], [1, 1, 2]], dtype="int32")
    theirs = keras.layers.Embedding(10, 4)
    expected = np.asarray(theirs(ids))
    ours = layers.Embedding(10, 4)
    ours.build(ids.shape)
    ours.set_weights(theirs.get_weights())
    np.testing.assert_allclose(np.asarray(ours(ids)), expected)
    assert _without_name(ours.get_config()) == _without_name(theirs.get_config())


def test_dropout_training_drops_and_rescales():
    x = np.ones((200, 50), dtype="float32")
    out = np.asarray(layers.Dropout(0.25, seed=1)(x, training=True))
    kept = out != 0
    assert 0.70 < kept.mean() < 0.80
    np.testing.assert_allclose(out[kept], 1 / 0.75, rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(layers.Dropout(0.25)(x)), x)


def test_auto_names_follow_keras_scheme():
    first = layers.Dense(1)
    second = layers.Dense(1)
    base = first.name
    assert base.startswith("dense")
    suffix = 0 if base == "dense" else int(base.rsplit("_", 1)[1])
    assert second.name == f"dense_{suffix + 1}"
    assert layers.BatchNormalization().name.startswith("batch_normalization")
    assert layers.Dense(1, name="given").name == "given"


def test_weight_order_and_paths_match_keras_for_nested_layers(keras):
    def nested_cls(lib):
        class Block(lib.layers.Layer):
            def __init__(self, **kwargs):
                super().__init__(**kwargs)
                self.norm = lib.layers.BatchNormalization(name="norm")
                self.inner = [lib.layers.Dense(3, name="d0"), lib.layers.Dense(2, name="d1")]
                self.scale = self.add_weight(shape=(2,), initializer="ones", name="scale")

            def call(self, x):
                return self.inner[1](self.inner[0](self.norm(x))) * self.scale

        return Block

    models = []
    for lib in (amber, keras):
        block = nested_cls(lib)(name="block")
        model = lib.Sequential([lib.Input((4,)), block], name="outer")
        models.append(model)
    ours, theirs = models
    assert [v.path for v in ours.weights] == [v.path for v in theirs.weights]
    assert [v.path for v in ours.trainable_weights] == [v.path for v in theirs.trainable_weights]
    assert [v.path for v in ours.non_trainable_weights] == [v.path for v in theirs.non_trainable_weights]
    ours.get_layer("block").inner[0].trainable = False
    theirs.get_layer("block").inner[0].trainable = False
    assert [v.path for v in ours.trainable_weights] == [v.path for v in theirs.trainable_weights]
    assert [v.path for v in ours.non_trainable_weights] == [v.path for v in theirs.non_trainable_weights]


def test_set_weights_errors_name_layer_and_shapes():
    layer = layers.Dense(3, name="probe")
    layer.build((None, 4))
    with pytest.raises(ValueError, match="probe.*length 1.*expecting 2"):
        layer.set_weights([np.zeros((4, 3))])
    with pytest.raises(ValueError, match=r"probe.*\(4, 3\).*\(5, 3\)"):
        layer.set_weights([np.zeros((5, 3)), np.zeros(3)])


def test_save_and_load_own_variables_contract():
    layer = layers.BatchNormalization(name="bn")
    layer.build((None, 3))
    store = {}
    layer.save_own_variables(store)
    assert list(store) == ["0", "1", "2", "3"]
    other = layers.BatchNormalization()
    other.build((None, 3))
    values = {k: np.full(v.shape, float(k) + 1, dtype="float32") for k, v in store.items()}
    other.load_own_variables(values)
    for i, v in enumerate(other.weights):
        np.testing.assert_array_equal(v.numpy(), values[str(i)])
    with pytest.raises(ValueError, match="bn.*expected 4 variables.*received 3"):
        layer.load_own_variables({k: values[k] for k in ("0", "1", "2")})
    bad = dict(values)
    bad["2"] = np.zeros((4,), dtype="float32")
    with pytest.raises(ValueError, match=r"moving_mean.*\(3,\).*\(4,\)"):
        other.load_own_variables(bad)


def test_losses_from_regularizers_and_add_loss():
    class Penalized(layers.Layer):
        def call(self, x):
            self.add_loss(ops.sum(x) * 0.0 + 2.0)
            return x

    dense = layers.Dense(2, kernel_initializer="ones", kernel_regularizer=amber.regularizers.L2(0.5))
    dense.build((None, 3))
    np.testing.assert_allclose(float(np.asarray(dense.losses[0])), 0.5 * 6.0, rtol=1e-6)
    model = amber.Sequential([amber.Input((3,)), Penalized(), dense])
    model(np.ones((1, 3), dtype="float32"))
    values = sorted(float(np.asarray(v)) for v in model.losses)
    np.testing.assert_allclose(values, [2.0, 3.0], rtol=1e-6)
    model(np.ones((1, 3), dtype="float32"))
    assert len(model.losses) == 2  # add_loss values are per call, not accumulated


def test_build_config_roundtrip():
    layer = layers.Dense(4)
    layer.build((None, 7))
    config = layer.get_build_config()
    assert config == {"input_shape": [None, 7]}
    other = layers.Dense(4)
    other.build_from_config(config)
    assert other.kernel.shape == (7, 4)


def test_keras_2_first_layer_kwargs_are_accepted():
    layer = layers.Dense(3, input_shape=(5,))
    model = amber.Sequential([layer])
    assert model.built and model.input_shape == (None, 5)
    with pytest.raises(ValueError, match="Unrecognized keyword arguments"):
        layers.Dense(3, bogus=1)


def _finite_difference_check(layer, x, training=False):
    """d sum(layer(x) * r) / d (x, weights) by the tape vs central differences (float64)."""
    rng = np.random.default_rng(5)
    out = np.asarray(layer(x, training=training))
    r = rng.normal(size=out.shape)
    xt = x.copy()
    variables = layer.trainable_weights
    with backend.GradientTape() as tape:
        tape.watch(xt)
        y = layer(xt, training=training)
        target = ops.sum(ops.multiply(y, r))
    grads = tape.gradient(target, [xt] + list(variables))

    def objective():
        return float(np.sum(np.asarray(layer(xt, training=training)) * r))

    eps = 1e-6
    for grad, holder in zip(grads, [None] + list(variables)):
        base = xt.copy() if holder is None else holder.numpy().copy()
        numeric = np.zeros(base.shape)
        flat_indices = list(np.ndindex(base.shape))[:12]
        for index in flat_indices:
            for sign in (1, -1):
                probe = base.copy()
                probe[index] += sign * eps
                if holder is None:
                    xt[...] = probe
                else:
                    holder.assign(probe)
                numeric[index] += sign * objective() / (2 * eps)
            if holder is None:
                xt[...] = base
            else:
                holder.assign(base)
        got = np.asarray(grad)
        for index in flat_indices:
            np.testing.assert_allclose(got[index], numeric[index], rtol=1e-4, atol=1e-6)


GRADIENT_CASES = [
    ("Dense", (3,), {"activation": "tanh"}, (4, 5)),
    ("Dense", (3,), {"activation": "relu"}, (4, 5)),
    ("BatchNormalization", (), {}, (4, 5)),
    ("LayerNormalization", (), {}, (4, 5)),
    ("Softmax", (), {}, (4, 5)),
    ("LeakyReLU", (), {"negative_slope": 0.2}, (4, 5)),
    ("Rescaling", (0.5,), {"offset": 1.0}, (4, 5)),
    ("Reshape", ((5, 1),), {}, (4, 5)),
    ("Permute", ((2, 1),), {}, (4, 5, 2)),
    ("RepeatVector", (2,), {}, (4, 5)),
    ("Flatten", (), {}, (4, 5, 2)),
]


@pytest.mark.parametrize("case", GRADIENT_CASES, ids=_ids)
def test_layer_gradients_match_finite_differences(case):
    name, args, kwargs, shape = case
    rng = np.random.default_rng(2)
    layer = getattr(layers, name)(*args, dtype="float64", **kwargs)
    x = rng.normal(size=shape)
    # keep relu/leaky kinks away from the probe points
    x = np.where(np.abs(x) < 0.05, 0.3, x)
    layer(x)
    if layer.weights:
        layer.set_weights([w + rng.uniform(0.2, 0.6, size=w.shape) for w in layer.get_weights()])
    _finite_difference_check(layer, x)
    if name == "BatchNormalization":
        _finite_difference_check(layers.BatchNormalization(dtype="float64", momentum=0.0), x, training=True)


def test_merge_gradients_match_finite_differences():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    for cls in (layers.Add, layers.Subtract, layers.Multiply, layers.Average, layers.Concatenate):
        layer = cls(dtype="float64")
        r = rng.normal(size=np.shape(layer([a, b])))
        with backend.GradientTape() as tape:
            tape.watch(a)
            target = ops.sum(ops.multiply(layer([a, b]), r))
        grad = np.asarray(tape.gradient(target, a))
        numeric = np.zeros_like(a)
        for index in np.ndindex(a.shape):
            for sign in (1, -1):
                probe = a.copy()
                probe[index] += sign * 1e-6
                numeric[index] += sign * float(np.sum(np.asarray(layer([probe, b])) * r)) / 2e-6
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-7)


def test_absurd_shapes_are_refused_before_allocating():
    with pytest.raises(ValueError, match="refusing to allocate"):
        layers.Dense(10**9).build((None, 10**6))
    with pytest.raises(ValueError, match="non-negative integer"):
        layers.InputLayer(batch_shape=[None, -3])
    with pytest.raises(ValueError, match="non-negative integer"):
        layers.InputLayer(batch_shape=[None, "7"])


def test_auto_config_of_subclass_without_get_config_matches_keras(keras):
    def make(lib):
        class Scale(lib.layers.Layer):
            def __init__(self, factor, offsets=(1, 2), label="s", **kwargs):
                super().__init__(**kwargs)
                self.factor = factor

            def call(self, x):
                return x * self.factor

        return Scale(2.5, offsets=[3, 4], name="scale")

    ours, theirs = make(amber), make(keras)
    assert json.loads(json.dumps(ours.get_config())) == json.loads(json.dumps(theirs.get_config()))
    again = type(ours).from_config(ours.get_config())
    assert again.factor == 2.5 and again.name == "scale"


def test_symbolic_shape_inference_by_running_call():
    class Doubler(layers.Layer):
        def call(self, x):
            return ops.concatenate([x, x], axis=-1)

    seq_in = amber.Input((None, 3))
    out = Doubler()(seq_in)
    assert out.shape == (None, None, 6)
    model = amber.Model(seq_in, out)
    np.testing.assert_array_equal(model.predict(np.ones((2, 5, 3), "float32"), verbose=0), np.ones((2, 5, 6)))


def test_call_errors_name_the_layer_and_shapes():
    model = amber.Sequential([amber.Input((4,)), layers.Dense(3, name="first"), layers.Dense(2, name="second")])
    with pytest.raises(ValueError, match=r"calling layer 'first' \(Dense\) on inputs of shape \(2, 5\)"):
        model(np.ones((2, 5), dtype="float32"))
