"""The native float32 depthwise convolution and the one-pass inference BatchNormalization /
clipped ReLU against real Keras 3 (numpy backend) and against the numpy rules they replace.

References: ``keras.ops.depthwise_conv`` and Keras's layers with the same weights (float32,
relative error 1e-5 and an absolute error that grows with the number of summed taps); a
per-tap numpy loop over an explicitly zero-padded input, which the native kernel must match
bit for bit (same products, same order of sums); amber's own float64 path, whose gradients
the finite-difference tests check, for the float32 gradients."""

import itertools

import numpy as np
import pytest

from amber import layers, ops
from amber import _native
from amber.backend import GradientTape, Variable
from _keras_roundtrip import keras_numpy


@pytest.fixture(scope="module")
def keras():
    return keras_numpy(needs_jax=True)


GRID = [
    (kernel, strides, dilation, padding, multiplier, batch)
    for kernel, strides, dilation, padding, multiplier, batch in itertools.product(
        (1, 3, 5), (1, 2), (1, 2), ("same", "valid"), (1, 2), (1, 3))
    if not (kernel == 1 and dilation == 2)  # a 1x1 kernel has no dilation to speak of
]


def _case_arrays(kernel, multiplier, batch, seed, channels=5):
    rng = np.random.default_rng(seed)
    # odd, unequal spatial sizes: the last row and column of a stride-2 'same' window pad
    x = rng.normal(size=(batch, 11, 9, channels)).astype("float32")
    k = rng.normal(size=(kernel, kernel, channels, multiplier)).astype("float32")
    return x, k


@pytest.mark.parametrize("case", GRID, ids=str)
def test_depthwise_conv_matches_keras_ops(keras, case):
    kernel, strides, dilation, padding, multiplier, batch = case
    x, k = _case_arrays(kernel, multiplier, batch, seed=kernel * 100 + strides * 10 + dilation)
    expected = np.asarray(keras.ops.depthwise_conv(x, k, strides, padding, None, dilation))
    got = ops.depthwise_conv(x, k, strides, padding, None, dilation)
    assert got.shape == expected.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6 * kernel * kernel)


def _per_tap_numpy(x, k, strides, dilation, pads):
    """The numpy rule the native kernel replaces: zero-pad, then add one float32 product
    per tap in row-major tap order."""
    xp = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    kh, kw, channels, multiplier = k.shape
    oh = (xp.shape[1] - (kh - 1) * dilation[0] - 1) // strides[0] + 1
    ow = (xp.shape[2] - (kw - 1) * dilation[1] - 1) // strides[1] + 1
    y = np.zeros((x.shape[0], oh, ow, channels, multiplier), np.float32)
    for i, j in itertools.product(range(kh), range(kw)):
        rows = slice(i * dilation[0], i * dilation[0] + strides[0] * (oh - 1) + 1, strides[0])
        cols = slice(j * dilation[1], j * dilation[1] + strides[1] * (ow - 1) + 1, strides[1])
        y += xp[:, rows, cols, :, None] * k[i, j]
    return y.reshape(x.shape[0], oh, ow, channels * multiplier)


@pytest.mark.parametrize("case", [
    ((3, 3), (1, 1), (1, 1), ((1, 1), (1, 1)), 1),
    ((5, 3), (2, 1), (1, 2), ((2, 2), (0, 3)), 3),
    ((3, 5), (1, 2), (2, 1), ((0, 0), (0, 0)), 2),
    ((1, 1), (2, 2), (1, 1), ((0, 0), (0, 0)), 1),
    ((3, 3), (2, 2), (1, 1), ((0, 1), (0, 1)), 1),  # MobileNet's stride-2 blocks
], ids=str)
def test_native_kernel_equals_the_per_tap_numpy_rule_bit_for_bit(case):
    window, strides, dilation, pads, multiplier = case
    rng = np.random.default_rng(3)
    channels = 37  # not a multiple of any vector width: the remainder loop runs too
    x = rng.normal(size=(2, 10, 9, channels)).astype("float32")
    k = rng.normal(size=window + (channels, multiplier)).astype("float32")
    expected = _per_tap_numpy(x, k, strides, dilation, pads)
    out = np.full(expected.shape, np.nan, np.float32)
    _native.depthwise_conv2d_f32(x, k, out, strides, dilation, pads)
    # + 0.0 turns -0.0 into 0.0: a skipped padded tap adds nothing where numpy adds 0 * w
    np.testing.assert_array_equal((out + 0.0).view(np.int32), (expected + 0.0).view(np.int32))


@pytest.mark.parametrize("activation", ["linear", "relu", "relu6", "silu"])
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("with_scale", [True, False])
def test_scale_bias_and_activation_epilogue(activation, with_bias, with_scale):
    rng = np.random.default_rng(21)
    channels, multiplier = 19, 2
    x = (rng.normal(size=(2, 12, 11, channels)) * 3).astype("float32")
    k = rng.normal(size=(3, 3, channels, multiplier)).astype("float32")
    bias = rng.normal(size=channels * multiplier).astype("float32") * 4 if with_bias else None
    scale = rng.uniform(0.25, 3.0, channels * multiplier).astype("float32") if with_scale else None
    strides, dilation, pads = (2, 1), (1, 1), ((1, 1), (0, 1))
    plain = _per_tap_numpy(x, k, strides, dilation, pads)
    z = plain * scale if with_scale else plain  # float32 products and sums, as the epilogue rounds
    z = z + bias if with_bias else z
    out = np.full(plain.shape, np.nan, np.float32)
    _native.depthwise_conv2d_f32(x, k, out, strides, dilation, pads, bias, activation, scale)
    if activation == "silu":
        z64 = z.astype(np.float64)
        np.testing.assert_allclose(out, z64 / (1 + np.exp(-z64)), rtol=1e-6, atol=1e-6)
    else:
        want = {"linear": z, "relu": np.maximum(z, 0), "relu6": np.clip(z, 0, 6)}[activation]
        if activation == "relu6":
            assert (z > 6).any() and (z < 0).any()
        np.testing.assert_array_equal((out + 0.0).view(np.int32), (want + 0.0).view(np.int32))


def test_epilogue_rejects_a_bias_of_the_wrong_length():
    x = np.zeros((1, 5, 5, 4), np.float32)
    k = np.zeros((3, 3, 4, 1), np.float32)
    out = np.zeros((1, 3, 3, 4), np.float32)
    with pytest.raises(ValueError, match="bias has 3 values, expected one per output channel"):
        _native.depthwise_conv2d_f32(x, k, out, (1, 1), (1, 1), ((0, 0), (0, 0)), np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="scale has 5 values, expected one per output channel"):
        _native.depthwise_conv2d_f32(x, k, out, (1, 1), (1, 1), ((0, 0), (0, 0)), None, "relu",
                                     np.zeros(5, np.float32))
    with pytest.raises(ValueError, match="unknown activation 'relu7'"):
        _native.depthwise_conv2d_f32(x, k, out, (1, 1), (1, 1), ((0, 0), (0, 0)), None, "relu7")


def test_large_feature_map_split_over_threads_matches_keras(keras):
    rng = np.random.default_rng(11)
    x = rng.normal(size=(4, 57, 57, 96)).astype("float32")
    k = rng.normal(size=(3, 3, 96, 1)).astype("float32")
    for strides in (1, 2):
        expected = np.asarray(keras.ops.depthwise_conv(x, k, strides, "same"))
        np.testing.assert_allclose(ops.depthwise_conv(x, k, strides, "same"), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_depthwise_layers_match_keras_layers(keras, data_format):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3, 9, 7, 4)).astype("float32")
    if data_format == "channels_first":
        x = np.ascontiguousarray(np.moveaxis(x, -1, 1))
    for kwargs in ({"kernel_size": 3, "strides": 2, "padding": "same", "depth_multiplier": 2},
                   {"kernel_size": 5, "dilation_rate": 2, "padding": "same"}):
        theirs = keras.layers.DepthwiseConv2D(data_format=data_format, **kwargs)
        ours = layers.DepthwiseConv2D(data_format=data_format, **kwargs)
        expected = np.asarray(theirs(x))
        ours.build(x.shape)
        ours.set_weights([np.asarray(w) for w in theirs.get_weights()])
        np.testing.assert_allclose(np.asarray(ours(x)), expected, rtol=1e-5, atol=2.5e-5)
    x1 = x[:, 0] if data_format == "channels_last" else x[:, :, 0]
    theirs = keras.layers.DepthwiseConv1D(3, strides=2, padding="same", depth_multiplier=3, data_format=data_format)
    ours = layers.DepthwiseConv1D(3, strides=2, padding="same", depth_multiplier=3, data_format=data_format)
    expected = np.asarray(theirs(x1))
    ours.build(x1.shape)
    ours.set_weights([np.asarray(w) for w in theirs.get_weights()])
    np.testing.assert_allclose(np.asarray(ours(x1)), expected, rtol=1e-5, atol=1e-5)


def test_misaligned_and_strided_operands_are_read_correctly(keras):
    """Weights mapped from a Keras file sit at addresses that are 2 mod 4; channels-first
    input reaches the kernel as a transposed view."""
    rng = np.random.default_rng(9)
    k = rng.normal(size=(3, 3, 6, 1)).astype("float32")
    raw = np.zeros(k.nbytes + 2, np.uint8)
    misaligned = raw[2:].view(np.float32).reshape(k.shape)
    misaligned[...] = k
    x = rng.normal(size=(2, 6, 8, 7)).astype("float32")
    view = np.moveaxis(x, 1, -1)  # (2, 8, 7, 6), not contiguous
    expected = np.asarray(keras.ops.depthwise_conv(np.ascontiguousarray(view), k, 1, "same"))
    np.testing.assert_allclose(ops.depthwise_conv(view, misaligned, 1, "same"), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("x_shape, k_shape, kwargs", [
    ((2, 9, 7, 3), (3, 3, 3, 2), {"strides": 2, "padding": "same"}),
    ((2, 9, 7, 3), (3, 3, 3, 2), {"dilation_rate": 2, "padding": "valid"}),
    ((3, 11, 10, 37), (3, 3, 37, 1), {"padding": "same"}),
    ((1, 8, 9, 5), (5, 3, 5, 1), {"strides": (2, 1), "padding": "same"}),
    ((2, 5, 8, 6), (3, 3, 5, 1), {"padding": "same", "data_format": "channels_first"}),
    ((2, 13, 4), (3, 4, 3), {"strides": 2, "padding": "same"}),
    ((2, 13, 4), (3, 4, 1), {"dilation_rate": 3}),
], ids=str)
def test_float32_gradients_of_the_native_kernels_equal_float64(x_shape, k_shape, kwargs):
    """float32 runs forward and backward natively; float64 runs the numpy path, whose
    gradients the finite-difference tests check (test_layers_conv_gradients.py)."""
    rng = np.random.default_rng(2)
    x64, k64 = rng.normal(size=x_shape), rng.normal(size=k_shape)
    weights = rng.normal(size=np.shape(ops.depthwise_conv(x64, k64, **kwargs)))
    grads = {}
    for dtype in ("float32", "float64"):
        variables = [Variable(x64.astype(dtype)), Variable(k64.astype(dtype))]
        with GradientTape() as tape:
            target = ops.sum(ops.multiply(ops.depthwise_conv(*variables, **kwargs), weights.astype(dtype)))
        grads[dtype] = tape.gradient(target, variables)
    for got, want in zip(grads["float32"], grads["float64"]):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_empty_batches_run_forward_and_backward():
    for x_shape, k_shape in (((0, 6, 5, 3), (3, 3, 3, 2)), ((0, 7, 3), (3, 3, 1))):
        x, k = Variable(np.zeros(x_shape, "float32")), Variable(np.ones(k_shape, "float32"))
        with GradientTape() as tape:
            total = ops.sum(ops.depthwise_conv(x, k, 1, "same"))
        dx, dk = tape.gradient(total, [x, k])
        assert dx.shape == x_shape and not dk.any()


@pytest.mark.parametrize("call, error, message", [
    (lambda: ops.depthwise_conv(np.zeros((1, 2, 2, 3), "float32"), np.zeros((3, 3, 3, 1), "float32")),
     ValueError, "larger than the input"),
    (lambda: ops.depthwise_conv(np.zeros((1, 5, 5, 3), "float32"), np.zeros((3, 3, 4, 1), "float32")),
     ValueError, "channels=3"),
    (lambda: _native.depthwise_conv2d_f32(np.zeros((1, 5, 5, 3), "float32"), np.zeros((3, 3, 3, 1), "float32"),
                                          np.zeros((1, 5, 5, 3), "float32"), (1, 1), (1, 1), ((0, 0), (0, 0))),
     ValueError, r"`out` has shape \[1, 5, 5, 3\], expected \[1, 3, 3, 3\]"),
    (lambda: _native.depthwise_conv2d_f32(np.zeros((1, 5, 5, 3), "float32"), np.zeros((3, 3, 2, 1), "float32"),
                                          np.zeros((1, 3, 3, 2), "float32"), (1, 1), (1, 1), ((0, 0), (0, 0))),
     ValueError, "should be"),
    (lambda: _native.depthwise_conv2d_f32(np.zeros((1, 5, 5, 3), "float32"), np.zeros((3, 3, 3, 1), "float32"),
                                          np.zeros((1, 3, 3, 3), "float32"), (0, 1), (1, 1), ((0, 0), (0, 0))),
     ValueError, "must be positive"),
    (lambda: _native.depthwise_conv2d_f32(np.zeros((1, 5, 3, 5), "float32").transpose(0, 1, 3, 2),
                                          np.zeros((3, 3, 3, 1), "float32"), np.zeros((1, 3, 3, 3), "float32"),
                                          (1, 1), (1, 1), ((0, 0), (0, 0))),
     ValueError, "C-contiguous"),
    (lambda: _native.depthwise_conv2d_f32(np.zeros((1, 5, 5, 3), "float64"), np.zeros((3, 3, 3, 1), "float32"),
                                          np.zeros((1, 3, 3, 3), "float32"), (1, 1), (1, 1), ((0, 0), (0, 0))),
     TypeError, "float64"),
])
def test_bad_input_raises_a_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()


# ------------------------------------------------------------------ BatchNormalization, ReLU


@pytest.mark.parametrize("axis, shape", [(-1, (3, 7, 5, 24)), (1, (2, 6, 5, 4)), (-1, (4, 10))], ids=str)
def test_inference_batch_normalization_matches_keras(keras, axis, shape):
    rng = np.random.default_rng(4)
    x = rng.normal(size=shape).astype("float32") * 3 + 1
    theirs = keras.layers.BatchNormalization(axis=axis)
    theirs.build(shape)
    channels = shape[axis]
    theirs.set_weights([rng.uniform(0.5, 2, channels).astype("float32"), rng.normal(size=channels).astype("float32"),
                        rng.normal(size=channels).astype("float32"), rng.uniform(0.2, 3, channels).astype("float32")])
    ours = layers.BatchNormalization(axis=axis)
    ours.build(shape)
    ours.set_weights(theirs.get_weights())
    got = np.asarray(ours(x, training=False))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, np.asarray(theirs(x, training=False)), rtol=1e-5, atol=1e-5)


def test_one_pass_scale_shift_equals_numpy_multiply_then_add_bit_for_bit():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(3, 5, 7, 33)).astype("float32")
    scale, shift = rng.normal(size=33).astype("float32"), rng.normal(size=33).astype("float32")
    out = np.empty_like(x)
    _native.scale_shift_f32(x, scale, shift, out)
    np.testing.assert_array_equal(out.view(np.int32), (x * scale + shift).view(np.int32))
    with pytest.raises(ValueError, match="last axis of 33"):
        _native.scale_shift_f32(x, scale, shift, np.empty((3, 5, 7, 32), np.float32))
    with pytest.raises(ValueError, match="last axis of 32"):
        _native.scale_shift_f32(x, scale[:32], shift[:32], out)


def test_batch_normalization_under_a_tape_still_trains_its_scale_and_offset():
    layer = layers.BatchNormalization()
    x = np.random.default_rng(1).normal(size=(4, 3)).astype("float32")
    layer.build(x.shape)
    with GradientTape() as tape:
        loss = ops.sum(ops.multiply(layer(x, training=False), np.arange(3, dtype="float32")))
    gamma_grad, beta_grad = tape.gradient(loss, [layer.gamma, layer.beta])
    inv = 1 / np.sqrt(1 + 1e-3)
    np.testing.assert_allclose(beta_grad, 4 * np.arange(3), rtol=1e-6)
    np.testing.assert_allclose(gamma_grad, (x * inv).sum(0) * np.arange(3), rtol=1e-5)


def test_relu6_layer_matches_keras_and_keeps_the_chain_gradient(keras):
    x = np.array([[-2.0, -0.0, 0.0, 0.5, 5.99, 6.0, 6.5, np.nan]], "float32")
    for max_value in (6.0, 1.0):
        expected = np.asarray(keras.layers.ReLU(max_value=max_value)(x))
        got = np.asarray(layers.ReLU(max_value=max_value)(x))
        np.testing.assert_array_equal(got, expected)
    # gradient of minimum(relu(x), 6): zero at x <= 0 (relu), one at the tie x == 6 (minimum)
    v = Variable(x[:, :7])
    with GradientTape() as tape:
        total = ops.sum(layers.ReLU(max_value=6.0)(v))
    np.testing.assert_array_equal(tape.gradient(total, v), [[0, 0, 0, 1, 1, 1, 0]])
