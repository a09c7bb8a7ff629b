"""amber.ops convolution and pooling against keras.ops (real Keras 3, numpy backend) over a
grid of ranks, strides, paddings, dilations, output paddings, groups and data formats."""

import itertools

import numpy as np
import pytest

from amber import ops
from _keras_roundtrip import keras_numpy


@pytest.fixture(scope="module")
def keras():
    return keras_numpy(needs_jax=True)


def _first(x, data_format):
    return np.moveaxis(x, -1, 1) if data_format == "channels_first" else x


CONV_GRID = [
    (rank, padding, strides, dilation, groups, data_format)
    for rank, padding, strides, dilation, groups, data_format in itertools.product(
        (1, 2, 3), ("valid", "same", "causal"), (1, 2, 3), (1, 2), (1, 2), ("channels_last", "channels_first"))
    if not (padding == "causal" and rank != 1) and not (strides > 1 and dilation > 1)
    and not (padding == "causal" and data_format == "channels_first")
]


@pytest.mark.parametrize("case", CONV_GRID, ids=str)
def test_conv_matches_keras_ops(keras, case):
    rank, padding, strides, dilation, groups, data_format = case
    rng = np.random.default_rng(rank * 100 + strides * 10 + dilation)
    x = _first(rng.normal(size=(2,) + (7,) * rank + (4,)).astype("float32"), data_format)
    k = rng.normal(size=(3,) * rank + (4 // groups, 6)).astype("float32")
    if padding == "causal":
        # keras.ops.conv has no causal mode (its Conv1D pads the start itself): the reference
        # is a valid convolution of the input left-padded by the dilated kernel span - 1.
        padded = np.pad(x, ((0, 0), (2 * dilation, 0), (0, 0)))
        expected = np.asarray(keras.ops.conv(padded, k, strides, "valid", data_format, dilation))
    else:
        expected = np.asarray(keras.ops.conv(x, k, strides, padding, data_format, dilation))
    got = ops.conv(x, k, strides, padding, data_format, dilation)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("case", [
    (rank, padding, strides, dilation, multiplier)
    for rank, padding, strides, dilation, multiplier in itertools.product(
        (1, 2), ("valid", "same"), (1, 2), (1, 2), (1, 3)) if not (strides > 1 and dilation > 1)
], ids=str)
def test_depthwise_and_separable_conv_match_keras_ops(keras, case):
    rank, padding, strides, dilation, multiplier = case
    rng = np.random.default_rng(7)
    x = rng.normal(size=(2,) + (8,) * rank + (3,)).astype("float32")
    dk = rng.normal(size=(3,) * rank + (3, multiplier)).astype("float32")
    pk = rng.normal(size=(1,) * rank + (3 * multiplier, 5)).astype("float32")
    np.testing.assert_allclose(ops.depthwise_conv(x, dk, strides, padding, None, dilation),
                               np.asarray(keras.ops.depthwise_conv(x, dk, strides, padding, None, dilation)),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ops.separable_conv(x, dk, pk, strides, padding, None, dilation),
                               np.asarray(keras.ops.separable_conv(x, dk, pk, strides, padding, None, dilation)),
                               rtol=1e-4, atol=1e-4)


TRANSPOSE_GRID = [
    (rank, padding, strides, dilation, output_padding)
    for rank, padding, strides, dilation, output_padding in itertools.product(
        (1, 2, 3), ("valid", "same"), (1, 2, 3), (1, 2), (None, 0, 1))
    if not (strides > 1 and dilation > 1) and not (output_padding is not None and output_padding >= strides)
]


@pytest.mark.parametrize("case", TRANSPOSE_GRID, ids=str)
def test_conv_transpose_matches_keras_ops(keras, case):
    rank, padding, strides, dilation, output_padding = case
    rng = np.random.default_rng(rank + strides)
    x = rng.normal(size=(2,) + (5,) * rank + (3,)).astype("float32")
    k = rng.normal(size=(3,) * rank + (4, 3)).astype("float32")
    expected = np.asarray(keras.ops.conv_transpose(x, k, strides, padding, output_padding, "channels_last",
                                                   dilation))
    got = ops.conv_transpose(x, k, strides, padding, output_padding, "channels_last", dilation)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("case", [
    (rank, padding, pool, strides, data_format)
    for rank, padding, pool, strides, data_format in itertools.product(
        (1, 2, 3), ("valid", "same"), (2, 3), (None, 1, 2), ("channels_last", "channels_first"))
], ids=str)
def test_pooling_matches_keras_ops(keras, case):
    rank, padding, pool, strides, data_format = case
    rng = np.random.default_rng(pool * 10 + rank)
    x = _first(rng.normal(size=(2,) + (7,) * rank + (3,)).astype("float32"), data_format)
    for ours, theirs in ((ops.max_pool, keras.ops.max_pool), (ops.average_pool, keras.ops.average_pool)):
        # Keras's ops fail on an int pool_size with strides=None (a Keras bug); strides
        # default to the pool size, which is what Keras passes.
        expected = np.asarray(theirs(x, pool, pool if strides is None else strides, padding, data_format))
        got = ours(x, pool, strides, padding, data_format)
        assert got.shape == expected.shape and got.dtype == expected.dtype
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_empty_batches_give_keras_shapes(keras):
    x = np.zeros((0, 6, 5, 3), "float32")
    k = np.ones((3, 3, 3, 2), "float32")
    assert ops.conv(x, k, 2, "same").shape == tuple(keras.ops.conv(x, k, 2, "same").shape)
    assert ops.depthwise_conv(x, k, 1, "valid").shape == tuple(keras.ops.depthwise_conv(x, k, 1, "valid").shape)
    assert ops.max_pool(x, 2, 2).shape == tuple(keras.ops.max_pool(x, 2, 2).shape)


@pytest.mark.parametrize("call, message", [
    (lambda: ops.conv(np.zeros((1, 5, 5, 3), "float32"), np.zeros((3, 3, 3, 2), "float32"), strides=0),
     "strides"),
    (lambda: ops.conv(np.zeros((1, 5, 5, 3), "float32"), np.zeros((3, 3, 2), "float32")), "same rank"),
    (lambda: ops.conv(np.zeros((1, 5, 5, 4), "float32"), np.zeros((3, 3, 3, 2), "float32")), "multiple"),
    (lambda: ops.conv(np.zeros((1, 5, 5, 4), "float32"), np.zeros((3, 3, 2, 3), "float32")), "groups=2"),
    (lambda: ops.depthwise_conv(np.zeros((1, 5, 5, 3), "float32"), np.zeros((3, 3, 4, 1), "float32")),
     "channels=3"),
    (lambda: ops.conv_transpose(np.zeros((1, 5, 5, 3), "float32"), np.zeros((3, 3, 2, 4), "float32")),
     "3 channels"),
    (lambda: ops.max_pool(np.zeros((1, 3, 3, 1), "float32"), 4), "larger than the input"),
    (lambda: ops.average_pool(np.zeros((1, 3, 3, 1), "float32"), 2, padding="causal"), "padding"),
    (lambda: ops.conv(np.zeros((1, 5, 5, 3), "float32"), np.zeros((3, 3, 3, 2), "float32"),
                      data_format="channels_middle"), "data_format"),
])
def test_bad_arguments_raise_a_clear_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_integer_inputs_compute_in_floatx():
    x = np.arange(50, dtype="int32").reshape(1, 5, 5, 2)
    assert ops.conv(x, np.ones((3, 3, 2, 2), "float32")).dtype == np.float32
    mean = ops.average_pool(x, 2)
    assert mean.dtype == np.float32
    np.testing.assert_allclose(mean[0, 0, 0], x[0, :2, :2].reshape(-1, 2).mean(axis=0))
    assert ops.max_pool(x, 2, padding="same").dtype == np.int32
