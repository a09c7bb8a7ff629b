"""Convolution, pooling, reshaping, regularization and masking layers against real Keras 3
(numpy backend): configs key by key, output shapes, and forward outputs with the same
weights over a grid of strides, paddings, dilations, groups and data formats."""

import json

import numpy as np
import pytest

from amber import layers
from _keras_roundtrip import keras_numpy


@pytest.fixture(scope="module")
def keras():
    return keras_numpy(needs_jax=True)


CF = {"data_format": "channels_first"}

# (class name, args, kwargs, input shape)
CASES = [
    ("Conv1D", (4, 3), {}, (2, 9, 3)),
    ("Conv1D", (4, 3), {"padding": "same", "strides": 2}, (2, 9, 3)),
    ("Conv1D", (4, 3), {"padding": "causal", "dilation_rate": 2}, (2, 9, 3)),
    ("Conv1D", (6, 2), {"groups": 3, "activation": "relu"}, (2, 8, 6)),
    ("Conv1D", (4, 3), {"padding": "same", "use_bias": False, **CF}, (2, 3, 10)),
    ("Conv2D", (5, 3), {}, (2, 8, 7, 3)),
    ("Conv2D", (5, (3, 2)), {"strides": (2, 1), "padding": "same"}, (2, 8, 7, 3)),
    ("Conv2D", (5, 3), {"strides": 2, "padding": "same"}, (2, 9, 8, 3)),
    ("Conv2D", (5, 3), {"dilation_rate": (2, 1), "padding": "same", "activation": "tanh"}, (2, 9, 8, 3)),
    ("Conv2D", (4, 3), {"groups": 2, "padding": "same"}, (2, 6, 6, 4)),
    ("Conv2D", (6, 2), {"groups": 3, "strides": 2, **CF}, (2, 6, 7, 5)),
    ("Conv2D", (5, 3), {"padding": "same", "dilation_rate": 2, **CF}, (2, 3, 9, 8)),
    ("Conv2D", (4, 1), {"strides": 2}, (2, 7, 7, 3)),
    ("Conv3D", (3, 2), {}, (2, 5, 4, 6, 2)),
    ("Conv3D", (3, (3, 2, 2)), {"strides": (1, 2, 2), "padding": "same"}, (2, 5, 4, 6, 2)),
    ("Conv3D", (4, 2), {"groups": 2, "dilation_rate": 2, **CF}, (2, 4, 5, 5, 5)),
    ("DepthwiseConv1D", (3,), {}, (2, 9, 4)),
    ("DepthwiseConv1D", (3,), {"depth_multiplier": 2, "padding": "same", "strides": 2}, (2, 9, 4)),
    ("DepthwiseConv1D", (3,), {"dilation_rate": 2, **CF}, (2, 4, 9)),
    ("DepthwiseConv2D", (3,), {}, (2, 7, 8, 3)),
    ("DepthwiseConv2D", (3,), {"strides": 2, "padding": "same", "depth_multiplier": 3}, (2, 7, 8, 3)),
    ("DepthwiseConv2D", ((2, 3),), {"dilation_rate": 2, "activation": "relu"}, (2, 8, 8, 3)),
    ("DepthwiseConv2D", (3,), {"padding": "same", "use_bias": False, "depth_multiplier": 2, **CF}, (2, 3, 7, 6)),
    ("SeparableConv1D", (5, 3), {}, (2, 9, 3)),
    ("SeparableConv1D", (5, 3), {"depth_multiplier": 2, "padding": "same", "strides": 2, **CF}, (2, 3, 9)),
    ("SeparableConv2D", (5, 3), {}, (2, 7, 8, 3)),
    ("SeparableConv2D", (5, 3), {"padding": "same", "dilation_rate": 2, "depth_multiplier": 2}, (2, 7, 8, 3)),
    ("SeparableConv2D", (4, (3, 2)), {"strides": 2, "use_bias": False, **CF}, (2, 3, 8, 7)),
    ("Conv1DTranspose", (4, 3), {}, (2, 6, 3)),
    ("Conv1DTranspose", (4, 3), {"strides": 2, "padding": "same"}, (2, 6, 3)),
    ("Conv1DTranspose", (4, 4), {"strides": 3, "output_padding": 1}, (2, 6, 3)),
    ("Conv1DTranspose", (4, 3), {"dilation_rate": 2, "padding": "same", **CF}, (2, 3, 6)),
    ("Conv2DTranspose", (4, 3), {}, (2, 5, 6, 3)),
    ("Conv2DTranspose", (4, 3), {"strides": 2, "padding": "same"}, (2, 5, 6, 3)),
    ("Conv2DTranspose", (4, (3, 2)), {"strides": (2, 3), "padding": "valid", "output_padding": (1, 2)},
     (2, 5, 6, 3)),
    ("Conv2DTranspose", (4, 2), {"strides": 2, "padding": "same", "output_padding": 0}, (2, 5, 6, 3)),
    ("Conv2DTranspose", (4, 3), {"strides": 2, "padding": "same", **CF}, (2, 3, 5, 6)),
    ("Conv2DTranspose", (4, 3), {"dilation_rate": 2, "activation": "relu"}, (2, 5, 6, 3)),
    ("Conv3DTranspose", (2, 2), {"strides": 2}, (2, 3, 4, 3, 2)),
    ("Conv3DTranspose", (2, 3), {"strides": (1, 2, 2), "padding": "same", **CF}, (2, 2, 3, 4, 3)),
    ("MaxPooling1D", (), {}, (2, 9, 3)),
    ("MaxPooling1D", (3,), {"strides": 2, "padding": "same"}, (2, 9, 3)),
    ("MaxPooling2D", (), {}, (2, 7, 8, 3)),
    ("MaxPooling2D", ((3, 2),), {"strides": (2, 1), "padding": "same"}, (2, 7, 8, 3)),
    ("MaxPooling2D", (3,), {"strides": 2, "padding": "same", **CF}, (2, 3, 7, 8)),
    ("MaxPooling3D", (), {}, (2, 5, 4, 6, 2)),
    ("MaxPooling3D", (2,), {"strides": 1, "padding": "same", **CF}, (2, 2, 5, 4, 3)),
    ("AveragePooling1D", (3,), {"strides": 2, "padding": "same"}, (2, 9, 3)),
    ("AveragePooling1D", (2,), {**CF}, (2, 3, 9)),
    ("AveragePooling2D", (2,), {}, (2, 7, 8, 3)),
    ("AveragePooling2D", (3,), {"strides": 2, "padding": "same"}, (2, 7, 8, 3)),
    ("AveragePooling2D", ((2, 3),), {"strides": 1, "padding": "same", **CF}, (2, 3, 5, 6)),
    ("AveragePooling3D", (2,), {"padding": "same"}, (2, 5, 4, 3, 2)),
    ("GlobalMaxPooling1D", (), {}, (2, 9, 3)),
    ("GlobalMaxPooling2D", (), {"keepdims": True, **CF}, (2, 3, 5, 6)),
    ("GlobalMaxPooling3D", (), {}, (2, 3, 4, 5, 2)),
    ("GlobalAveragePooling1D", (), {"keepdims": True}, (2, 9, 3)),
    ("GlobalAveragePooling2D", (), {}, (2, 5, 6, 3)),
    ("GlobalAveragePooling2D", (), {"keepdims": True, **CF}, (2, 3, 5, 6)),
    ("GlobalAveragePooling3D", (), {**CF}, (2, 2, 3, 4, 5)),
    ("ZeroPadding1D", (), {}, (2, 5, 3)),
    ("ZeroPadding1D", ((1, 3),), {}, (2, 5, 3)),
    ("ZeroPadding2D", (), {}, (2, 4, 5, 3)),
    ("ZeroPadding2D", (2,), {**CF}, (2, 3, 4, 5)),
    ("ZeroPadding2D", ((1, 2),), {}, (2, 4, 5, 3)),
    ("ZeroPadding2D", (((1, 0), (2, 3)),), {}, (2, 4, 5, 3)),
    ("ZeroPadding3D", (), {}, (2, 3, 4, 2, 2)),
    ("ZeroPadding3D", ((1, 0, 2),), {**CF}, (2, 2, 3, 4, 2)),
    ("Cropping1D", (), {}, (2, 6, 3)),
    ("Cropping1D", ((2, 0),), {}, (2, 6, 3)),
    ("Cropping2D", (), {}, (2, 6, 7, 3)),
    ("Cropping2D", (((1, 2), (0, 3)),), {}, (2, 6, 7, 3)),
    ("Cropping2D", ((1, 2),), {**CF}, (2, 3, 6, 7)),
    ("Cropping3D", (), {}, (2, 4, 5, 6, 2)),
    ("Cropping3D", ((1, 0, 2),), {**CF}, (2, 2, 4, 5, 6)),
    ("UpSampling1D", (), {}, (2, 5, 3)),
    ("UpSampling1D", (3,), {}, (2, 5, 3)),
    ("UpSampling2D", (), {}, (2, 4, 5, 3)),
    ("UpSampling2D", ((2, 3),), {**CF}, (2, 3, 4, 5)),
    ("UpSampling2D", ((2, 3),), {"interpolation": "bilinear"}, (2, 4, 5, 3)),
    ("UpSampling3D", (), {}, (2, 2, 3, 2, 2)),
    ("UpSampling3D", ((1, 2, 3),), {**CF}, (2, 2, 2, 3, 2)),
    ("SpatialDropout1D", (0.3,), {}, (2, 5, 3)),
    ("SpatialDropout2D", (0.3,), {**CF}, (2, 3, 4, 5)),
    ("SpatialDropout3D", (0.3,), {"seed": 4}, (2, 2, 3, 4, 2)),
    ("GaussianNoise", (0.2,), {"seed": 1}, (2, 5, 3)),
    ("GaussianDropout", (0.4,), {}, (2, 5, 3)),
    ("ActivityRegularization", (), {"l1": 0.1, "l2": 0.01}, (2, 5, 3)),
    ("Masking", (), {}, (2, 5, 3)),
    ("Masking", (), {"mask_value": 0.5}, (2, 5, 3)),
]


def _ids(case):
    name, args, kwargs, _ = case
    parts = [str(a) for a in args] + [f"{k}={v}" for k, v in kwargs.items()]
    return f"{name}({','.join(parts)})".replace(" ", "")


def _plain(config):
    """The config as Keras writes it into a file (tuples become lists), without the name."""
    config = json.loads(json.dumps(config))
    config.pop("name", None)
    return config


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_config_matches_keras_key_by_key(keras, case):
    name, args, kwargs, _ = case
    ours = getattr(layers, name)(*args, **kwargs).get_config()
    theirs = getattr(keras.layers, name)(*args, **kwargs).get_config()
    assert list(_plain(ours)) == list(_plain(theirs))
    for key in _plain(theirs):
        assert _plain(ours)[key] == _plain(theirs)[key], key
    # Keras's own config builds our layer and gives the same config back
    rebuilt = getattr(layers, name).from_config(theirs)
    assert _plain(rebuilt.get_config()) == _plain(theirs)


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_forward_matches_keras_with_same_weights(keras, case):
    name, args, kwargs, shape = case
    rng = np.random.default_rng(abs(hash(_ids(case))) % 2**32)
    x = rng.normal(size=shape).astype("float32")
    if name == "Masking":
        x[:, 1] = kwargs.get("mask_value", 0.0)  # a fully masked step
        x[0, 3, 0] = kwargs.get("mask_value", 0.0)  # a partly masked one stays
    theirs = getattr(keras.layers, name)(*args, **kwargs)
    theirs(x)
    weights = [rng.normal(size=w.shape).astype(w.dtype) for w in theirs.get_weights()]
    theirs.set_weights(weights)
    expected = np.asarray(theirs(x))

    ours = getattr(layers, name)(*args, **kwargs)
    got = ours(x)
    assert [tuple(w.shape) for w in ours.get_weights()] == [w.shape for w in weights]
    assert [w.path.split("/")[-1] for w in ours.weights] == [w.path.split("/")[-1] for w in theirs.weights]
    ours.set_weights(weights)
    got = np.asarray(ours(x))
    assert got.shape == expected.shape
    assert got.dtype == expected.dtype
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-5)
    assert tuple(ours.compute_output_shape(shape)) == tuple(theirs.compute_output_shape(shape))
    # symbolic shapes with an unknown batch agree too
    unknown = (None,) + tuple(shape[1:])
    assert tuple(ours.compute_output_shape(unknown)) == tuple(theirs.compute_output_shape(unknown))


def test_masking_mask_matches_keras(keras):
    x = np.random.default_rng(0).normal(size=(3, 6, 2)).astype("float32")
    x[:, 2] = 0
    x[1, 4] = 0
    x[2, 5, 1] = 0
    expected = np.asarray(keras.layers.Masking().compute_mask(x))
    np.testing.assert_array_equal(layers.Masking().compute_mask(x), expected)


def test_activity_regularization_loss_matches_keras(keras):
    x = np.random.default_rng(1).normal(size=(4, 5)).astype("float32")
    theirs = keras.layers.ActivityRegularization(l1=0.1, l2=0.02)
    theirs(x)
    ours = layers.ActivityRegularization(l1=0.1, l2=0.02)
    ours(x)
    assert len(ours.losses) == len(theirs.losses) == 1
    np.testing.assert_allclose(np.asarray(ours.losses[0]), np.asarray(theirs.losses[0]), rtol=1e-6)


def test_models_of_these_layers_match_keras_end_to_end(keras):
    """A Sequential stack built from Keras's serialized layer configs, same weights, same
    output."""
    stack = [
        keras.layers.Conv2D(6, 3, padding="same", activation="relu"),
        keras.layers.DepthwiseConv2D(3, strides=2, depth_multiplier=2),
        keras.layers.ZeroPadding2D(1),
        keras.layers.SeparableConv2D(5, 3),
        keras.layers.MaxPooling2D(padding="same"),
        keras.layers.Conv2DTranspose(4, 3, strides=2),
        keras.layers.Cropping2D(((1, 0), (0, 1))),
        keras.layers.UpSampling2D(),
        keras.layers.AveragePooling2D(3, strides=2, padding="same"),
        keras.layers.GlobalMaxPooling2D(),
    ]
    x = np.random.default_rng(2).normal(size=(3, 12, 11, 3)).astype("float32")
    theirs = keras.Sequential([keras.Input((12, 11, 3))] + stack)
    expected = np.asarray(theirs(x))

    import amber

    ours = amber.Sequential([amber.Input((12, 11, 3))] + [
        layers.deserialize(keras.layers.serialize(layer)) for layer in stack])
    ours.set_weights(theirs.get_weights())
    np.testing.assert_allclose(np.asarray(ours(x)), expected, rtol=1e-4, atol=1e-5)


def test_noise_layers_are_identity_at_inference_and_random_in_training():
    x = np.ones((64, 8, 8, 16), "float32")
    for layer in (layers.SpatialDropout2D(0.5, seed=1), layers.GaussianNoise(0.3, seed=2),
                  layers.GaussianDropout(0.5, seed=3)):
        np.testing.assert_array_equal(layer(x), x)
        assert not np.array_equal(layer(x, training=True), x)


def test_spatial_dropout_drops_whole_feature_maps():
    x = np.ones((200, 6, 5, 4), "float32")
    y = np.asarray(layers.SpatialDropout2D(0.25, seed=0)(x, training=True))
    # every (sample, channel) map is entirely kept (scaled by 1 / (1 - rate)) or entirely zero
    per_map = y.transpose(0, 3, 1, 2).reshape(200 * 4, -1)
    assert np.all(per_map.min(axis=1) == per_map.max(axis=1))
    assert set(np.unique(per_map)) <= {0.0, np.float32(1 / 0.75)}
    assert abs((per_map[:, 0] == 0).mean() - 0.25) < 0.06
    y = np.asarray(layers.SpatialDropout2D(0.25, data_format="channels_first", seed=0)(
        x.transpose(0, 3, 1, 2), training=True))
    per_map = y.reshape(200 * 4, -1)
    assert np.all(per_map.min(axis=1) == per_map.max(axis=1))


def test_gaussian_layers_have_the_documented_statistics():
    x = np.ones((400, 500), "float32")
    noisy = np.asarray(layers.GaussianNoise(0.2, seed=0)(x, training=True)) - 1
    assert abs(noisy.mean()) < 0.005 and abs(noisy.std() - 0.2) < 0.005
    scaled = np.asarray(layers.GaussianDropout(0.2, seed=0)(x, training=True))
    assert abs(scaled.mean() - 1) < 0.005 and abs(scaled.std() - np.sqrt(0.2 / 0.8)) < 0.005


@pytest.mark.parametrize("bad", [
    lambda: layers.Conv2D(0, 3),
    lambda: layers.Conv2D(4, 3, groups=3),
    lambda: layers.Conv2D(4, 3, padding="causal"),
    lambda: layers.Conv2D(4, 3, strides=2, dilation_rate=2),
    lambda: layers.Conv2D(4, (3, 3, 3)),
    lambda: layers.Conv2DTranspose(4, 3, strides=2, output_padding=2),
    lambda: layers.MaxPooling2D(padding="full"),
    lambda: layers.ZeroPadding2D(((1, 2, 3), (1, 2))),
    lambda: layers.UpSampling2D(interpolation="lanczos7"),
    lambda: layers.SpatialDropout1D(1.5),
])
def test_bad_arguments_are_refused_with_a_clear_error(bad):
    with pytest.raises(ValueError):
        bad()


def test_bad_inputs_are_refused_with_a_clear_error():
    with pytest.raises(ValueError, match="groups"):
        layers.Conv2D(4, 3, groups=2)(np.zeros((1, 5, 5, 3), "float32"))
    with pytest.raises(ValueError, match="larger than the input"):
        layers.Conv2D(4, 5)(np.zeros((1, 3, 3, 2), "float32"))
    with pytest.raises(ValueError, match="cropping"):
        layers.Cropping1D((3, 3))(np.zeros((1, 5, 2), "float32"))
    for layer in (layers.MaxPooling2D(), layers.GlobalAveragePooling2D(), layers.ZeroPadding2D(),
                  layers.Cropping2D(), layers.UpSampling2D()):
        with pytest.raises(ValueError, match="expected ndim=4, found ndim=3"):
            layer(np.zeros((1, 5, 2), "float32"))


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_masked_global_average_pooling_1d_matches_keras(keras, data_format):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 6, 4)).astype("float32")
    if data_format == "channels_first":
        x = x.transpose(0, 2, 1)
    mask = rng.random((3, 6)) > 0.4
    mask[:, 0] = True
    expected = np.asarray(keras.layers.GlobalAveragePooling1D(data_format=data_format)(x, mask=mask))
    got = layers.GlobalAveragePooling1D(data_format=data_format)(x, mask=mask)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-6, atol=1e-6)


def test_a_conv_model_saved_by_amber_loads_in_keras_and_back(keras, tmp_path):
    import amber

    model = amber.Sequential([
        amber.Input((12, 12, 3)),
        layers.Conv2D(4, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(),
        layers.DepthwiseConv2D(3, depth_multiplier=2),
        layers.SeparableConv2D(4, 2),
        layers.Conv2DTranspose(3, 3, strides=2),
        layers.ZeroPadding2D(1),
        layers.Cropping2D(1),
        layers.UpSampling2D(),
        layers.AveragePooling2D(),
        layers.SpatialDropout2D(0.2),
        layers.GlobalMaxPooling2D(),
        layers.Dense(2),
    ])
    x = np.random.default_rng(0).normal(size=(3, 12, 12, 3)).astype("float32")
    model.save(tmp_path / "amber.keras")
    theirs = keras.models.load_model(tmp_path / "amber.keras")
    expected = np.asarray(theirs(x))
    np.testing.assert_allclose(np.asarray(model(x)), expected, rtol=1e-5, atol=1e-6)
    theirs.save(tmp_path / "keras.keras")
    again = amber.models.load_model(tmp_path / "keras.keras")
    np.testing.assert_allclose(np.asarray(again(x)), expected, rtol=1e-5, atol=1e-6)


def test_functional_model_with_unknown_spatial_sizes_matches_keras(keras):
    import amber

    def build(library, namespace):
        inputs = library.Input((None, None, 3))
        h = namespace.Conv2D(4, 3, strides=2, padding="same")(inputs)
        h = namespace.Conv2DTranspose(2, 3, strides=2)(h)
        h = namespace.UpSampling2D()(h)
        h = namespace.ZeroPadding2D(1)(h)
        h = namespace.MaxPooling2D()(h)
        return library.Model(inputs, namespace.GlobalAveragePooling2D()(h)), tuple(h.shape)

    ours, our_shape = build(amber, layers)
    theirs, their_shape = build(keras, keras.layers)
    assert our_shape == their_shape == (None, None, None, 2)
    ours.set_weights(theirs.get_weights())
    for size in ((9, 7), (12, 16)):
        x = np.random.default_rng(size[0]).random((2,) + size + (3,)).astype("float32")
        np.testing.assert_allclose(np.asarray(ours(x)), np.asarray(theirs(x)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted({case[0] for case in CASES}))
def test_call_arguments_match_keras(keras, name):
    """The call signature decides which kwargs (training, mask) a saved graph records."""
    import inspect

    ours = list(inspect.signature(getattr(layers, name).call).parameters)
    theirs = list(inspect.signature(getattr(keras.layers, name).call).parameters)
    assert ours == theirs
