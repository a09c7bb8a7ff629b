"""Backward passes of the convolution and pooling ops (and of the layers built on them)
against central finite differences in float64."""

import numpy as np
import pytest

from amber import backend, layers, ops
from test_math_gradients import check_gradients

RNG = np.random.default_rng(7)


def normal(*shape):
    return RNG.normal(size=shape)


CONV_CASES = [
    # (input shape, kernel shape, kwargs)
    ((2, 7, 3), (3, 3, 4), {"padding": "causal", "dilation_rate": 2}),
    ((2, 7, 4), (3, 2, 6), {"strides": 2, "padding": "same"}),  # groups=2
    ((1, 6, 5, 3), (3, 2, 3, 4), {"strides": (2, 1), "padding": "same"}),
    ((1, 6, 6, 4), (3, 3, 1, 8), {"padding": "same"}),  # one group per channel (depthwise path)
    ((1, 4, 7, 6), (2, 3, 2, 6), {"strides": 2, "data_format": "channels_first"}),  # groups=2
    ((1, 7, 6, 2), (3, 3, 2, 3), {"dilation_rate": 2, "padding": "same"}),
    ((1, 5, 5, 3), (1, 1, 3, 4), {"strides": 2}),
    ((1, 4, 5, 4, 2), (2, 2, 2, 2, 3), {"padding": "same", "strides": (1, 2, 1)}),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_conv_gradients(case):
    x_shape, k_shape, kwargs = case
    check_gradients(lambda x, k: ops.conv(x, k, **kwargs), [normal(*x_shape), normal(*k_shape)])


@pytest.mark.parametrize("kwargs", [
    {},
    {"strides": 2, "padding": "same"},
    {"dilation_rate": 2},
    {"padding": "same", "data_format": "channels_first"},
], ids=str)
def test_depthwise_conv_gradients_with_a_multiplier(kwargs):
    x = normal(1, 3, 6, 7) if kwargs.get("data_format") == "channels_first" else normal(1, 6, 7, 3)
    check_gradients(lambda x, k: ops.depthwise_conv(x, k, **kwargs), [x, normal(3, 2, 3, 2)])


def test_depthwise_conv_1d_and_separable_conv_gradients():
    check_gradients(lambda x, k: ops.depthwise_conv(x, k, strides=2, padding="same"),
                    [normal(2, 9, 3), normal(3, 3, 2)])
    check_gradients(lambda x, d, p: ops.separable_conv(x, d, p, padding="same", dilation_rate=2),
                    [normal(1, 6, 5, 3), normal(3, 3, 3, 2), normal(1, 1, 6, 4)])


TRANSPOSE_CASES = [
    ((2, 5, 3), (3, 4, 3), {"strides": 2}),
    ((2, 5, 3), (4, 2, 3), {"strides": 3, "padding": "same", "output_padding": 1}),
    ((1, 4, 3, 2), (3, 3, 3, 2), {"strides": 2, "padding": "same"}),
    ((1, 4, 3, 2), (3, 2, 3, 2), {"strides": (2, 3), "output_padding": (1, 2)}),
    ((1, 2, 4, 3), (3, 3, 3, 2), {"dilation_rate": 2, "data_format": "channels_first"}),
    ((1, 3, 2, 3, 2), (2, 2, 2, 3, 2), {"strides": 2}),
]


@pytest.mark.parametrize("case", TRANSPOSE_CASES, ids=str)
def test_conv_transpose_gradients(case):
    x_shape, k_shape, kwargs = case
    check_gradients(lambda x, k: ops.conv_transpose(x, k, **kwargs), [normal(*x_shape), normal(*k_shape)])


POOL_CASES = [
    ((2, 9, 3), 3, {"strides": 2, "padding": "same"}),
    ((1, 7, 6, 2), (2, 3), {"strides": (2, 1)}),
    ((1, 7, 6, 2), 3, {"strides": 2, "padding": "same"}),
    ((1, 2, 7, 6), 2, {"strides": 1, "padding": "same", "data_format": "channels_first"}),
    ((1, 4, 5, 4, 2), 2, {"padding": "same"}),
]


@pytest.mark.parametrize("case", POOL_CASES, ids=str)
@pytest.mark.parametrize("kind", ["max", "average"])
def test_pool_gradients(case, kind):
    shape, pool, kwargs = case
    # distinct values keep every window's maximum unique, away from finite-difference ties
    x = RNG.permutation(np.arange(np.prod(shape), dtype=np.float64)).reshape(shape) / 10
    op = ops.max_pool if kind == "max" else ops.average_pool
    check_gradients(lambda x: op(x, pool, **kwargs), [x])


def test_max_pool_gives_a_tied_window_gradient_to_one_input_only():
    x = np.zeros((1, 4, 4, 1))
    v = backend.Variable(x, dtype="float64")
    with backend.GradientTape() as tape:
        y = ops.sum(ops.max_pool(v, 2))
    grad = tape.gradient(y, v)
    # one unit of gradient per window, not one per tied element
    assert grad.sum() == 4
    assert grad.max() == 1


@pytest.mark.parametrize("make", [
    lambda: layers.Conv2D(3, 3, strides=2, padding="same", activation="tanh", dtype="float64"),
    lambda: layers.Conv1D(4, 2, groups=2, padding="causal", dtype="float64"),
    lambda: layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", dtype="float64"),
    lambda: layers.SeparableConv1D(3, 3, dtype="float64"),
    lambda: layers.Conv2DTranspose(2, 3, strides=2, data_format="channels_first", dtype="float64"),
    lambda: layers.Conv3D(2, 2, dtype="float64"),
], ids=["Conv2D", "Conv1D-groups", "DepthwiseConv2D", "SeparableConv1D", "Conv2DTranspose", "Conv3D"])
def test_layer_weight_gradients_match_finite_differences(make):
    layer = make()
    rank = layer.rank
    shape = (2, 4) + (5,) * rank if layer.data_format == "channels_first" else (2,) + (5,) * rank + (4,)
    x = normal(*shape)
    layer(x)
    probe = normal(*np.shape(layer(x)))

    def loss():
        return float(np.sum(np.asarray(layer(x)) * probe))

    with backend.GradientTape() as tape:
        target = ops.sum(ops.multiply(layer(x), probe))
    grads = tape.gradient(target, layer.trainable_weights)
    assert len(grads) == len(layer.trainable_weights) > 0
    for variable, grad in zip(layer.trainable_weights, grads):
        value = variable.numpy().copy()
        expected = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            for sign in (1, -1):
                bumped = value.copy()
                bumped[index] += sign * 1e-6
                variable.assign(bumped)
                expected[index] += sign * loss() / 2e-6
        variable.assign(value)
        np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-6, err_msg=variable.path)


def test_reshaping_layer_gradients():
    f64 = {"dtype": "float64"}
    for layer, shape in [(layers.ZeroPadding2D(((1, 2), (0, 1)), **f64), (1, 3, 4, 2)),
                         (layers.Cropping3D(((1, 0), (0, 1), (1, 1)), **f64), (1, 3, 3, 4, 2)),
                         (layers.UpSampling2D((2, 3), interpolation="bilinear", **f64), (1, 3, 4, 2)),
                         (layers.UpSampling1D(3, **f64), (2, 4, 2)),
                         (layers.GlobalAveragePooling2D(keepdims=True, **f64), (2, 3, 4, 2)),
                         (layers.GlobalMaxPooling1D(**f64), (2, 5, 3))]:
        check_gradients(lambda x, layer=layer: layer(x), [normal(*shape)])


def test_a_small_cnn_learns_a_spatial_rule_with_fit():
    import amber

    amber.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 12, 12, 1)).astype("float32")
    # label: is the top half brighter than the bottom half
    y = (x[:, :6].mean(axis=(1, 2, 3)) > x[:, 6:].mean(axis=(1, 2, 3))).astype("int32")
    model = amber.Sequential([
        amber.Input((12, 12, 1)),
        layers.Conv2D(4, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(),
        layers.DepthwiseConv2D(3, depth_multiplier=2),
        layers.SeparableConv2D(4, 2),
        layers.GlobalAveragePooling2D(),
        layers.Dense(2, activation="softmax"),
    ])
    model.compile(optimizer=amber.optimizers.Adam(0.02), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x, y, epochs=40, batch_size=16, verbose=0).history
    assert history["loss"][-1] < 0.1 * history["loss"][0]
    assert history["accuracy"][-1] > 0.95
