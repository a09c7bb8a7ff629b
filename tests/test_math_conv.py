"""Convolution and pooling against direct loop implementations of their definitions
(cross-correlation, TensorFlow/Keras ``same`` padding), plus gradients by finite differences."""

import math

import numpy as np
import pytest

from amber import ops
from test_math_gradients import check_gradients

RNG = np.random.default_rng(5)


def same_pads(size, k, s, d):
    span = (k - 1) * d + 1
    out = math.ceil(size / s)
    total = max((out - 1) * s + span - size, 0)
    return total // 2, total - total // 2


def reference_conv2d(x, w, strides, padding, dilation, depthwise=False):
    """Direct 2-D cross-correlation, one output element at a time (channels last)."""
    sh, sw = strides
    dh, dw = dilation
    kh, kw = w.shape[:2]
    if padding == "same":
        (pt, pb), (pl, pr) = same_pads(x.shape[1], kh, sh, dh), same_pads(x.shape[2], kw, sw, dw)
    else:
        pt = pb = pl = pr = 0
    xp = np.pad(x.astype(np.float64), ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    oh = (xp.shape[1] - (kh - 1) * dh - 1) // sh + 1
    ow = (xp.shape[2] - (kw - 1) * dw - 1) // sw + 1
    cout = w.shape[2] * w.shape[3] if depthwise else w.shape[3]
    out = np.zeros((x.shape[0], oh, ow, cout))
    for b in range(x.shape[0]):
        for i in range(oh):
            for j in range(ow):
                patch = xp[b, i * sh: i * sh + (kh - 1) * dh + 1: dh, j * sw: j * sw + (kw - 1) * dw + 1: dw, :]
                if depthwise:
                    out[b, i, j] = np.einsum("hwc,hwcm->cm", patch, w).reshape(-1)
                else:
                    out[b, i, j] = np.einsum("hwc,hwco->o", patch, w)
    return out


def reference_pool2d(x, pool, strides, padding, kind):
    ph, pw = pool
    sh, sw = strides
    if padding == "same":
        (pt, pb), (pl, pr) = same_pads(x.shape[1], ph, sh, 1), same_pads(x.shape[2], pw, sw, 1)
    else:
        pt = pb = pl = pr = 0
    xp = np.pad(x.astype(np.float64), ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=np.nan)
    oh = (xp.shape[1] - ph) // sh + 1
    ow = (xp.shape[2] - pw) // sw + 1
    out = np.zeros((x.shape[0], oh, ow, x.shape[3]))
    for i in range(oh):
        for j in range(ow):
            window = xp[:, i * sh: i * sh + ph, j * sw: j * sw + pw, :]
            out[:, i, j] = np.nanmax(window, axis=(1, 2)) if kind == "max" else np.nanmean(window, axis=(1, 2))
    return out


CONV_CASES = [dict(strides=(1, 1), padding="valid", dilation=(1, 1)),
              dict(strides=(2, 2), padding="valid", dilation=(1, 1)),
              dict(strides=(1, 1), padding="same", dilation=(1, 1)),
              dict(strides=(2, 3), padding="same", dilation=(1, 1)),
              dict(strides=(1, 1), padding="valid", dilation=(2, 2)),
              dict(strides=(1, 1), padding="same", dilation=(2, 1))]


@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_conv2d_matches_direct_definition(case):
    x = RNG.normal(size=(2, 9, 8, 3)).astype(np.float32)
    w = RNG.normal(size=(3, 2, 3, 5)).astype(np.float32)
    got = ops.conv(x, w, strides=case["strides"], padding=case["padding"], dilation_rate=case["dilation"])
    want = reference_conv2d(x, w, case["strides"], case["padding"], case["dilation"])
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_depthwise_conv2d_matches_direct_definition(case):
    x = RNG.normal(size=(2, 9, 8, 3)).astype(np.float32)
    w = RNG.normal(size=(3, 3, 3, 2)).astype(np.float32)
    got = ops.depthwise_conv(x, w, strides=case["strides"], padding=case["padding"], dilation_rate=case["dilation"])
    want = reference_conv2d(x, w, case["strides"], case["padding"], case["dilation"], depthwise=True)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_conv_channels_first_1d_causal_and_separable():
    x = RNG.normal(size=(2, 9, 8, 3)).astype(np.float32)
    w = RNG.normal(size=(3, 3, 3, 4)).astype(np.float32)
    first = ops.conv(np.transpose(x, (0, 3, 1, 2)), w, padding="same", data_format="channels_first")
    np.testing.assert_allclose(np.transpose(first, (0, 2, 3, 1)), reference_conv2d(x, w, (1, 1), "same", (1, 1)),
                               rtol=1e-4, atol=1e-4)
    # 1-D causal: output t sees inputs t - (k-1)*d ... t only
    x1 = RNG.normal(size=(1, 10, 2))
    w1 = RNG.normal(size=(3, 2, 1))
    got = ops.conv(x1, w1, padding="causal", dilation_rate=2)
    padded = np.pad(x1, ((0, 0), (4, 0), (0, 0)))
    want = np.stack([sum(padded[0, t + 2 * i] @ w1[i] for i in range(3)) for t in range(10)])
    np.testing.assert_allclose(got[0], want, rtol=1e-10)
    # separable = depthwise then 1x1
    dk = RNG.normal(size=(3, 3, 3, 2)).astype(np.float32)
    pk = RNG.normal(size=(1, 1, 6, 4)).astype(np.float32)
    np.testing.assert_allclose(ops.separable_conv(x, dk, pk, padding="same"),
                               np.einsum("bhwc,co->bhwo", reference_conv2d(x, dk, (1, 1), "same", (1, 1), True), pk[0, 0]),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kind", ["max", "average"])
@pytest.mark.parametrize("pool,strides,padding", [((2, 2), (2, 2), "valid"), ((3, 3), (2, 2), "same"),
                                                  ((2, 3), (1, 1), "same"), ((3, 2), (2, 1), "valid")])
def test_pooling_matches_direct_definition(kind, pool, strides, padding):
    x = RNG.normal(size=(2, 7, 8, 3)).astype(np.float32)
    fn = ops.max_pool if kind == "max" else ops.average_pool
    got = fn(x, pool, strides=strides, padding=padding)
    np.testing.assert_allclose(got, reference_pool2d(x, pool, strides, padding, kind), rtol=1e-5, atol=1e-6)
    assert got.dtype == np.float32


def test_bad_conv_arguments_are_refused():
    x = np.zeros((1, 3, 3, 2), np.float32)
    with pytest.raises(ValueError, match="larger than the input"):
        ops.conv(x, np.zeros((5, 5, 2, 1), np.float32))
    with pytest.raises(ValueError, match="input channels"):
        ops.conv(x, np.zeros((2, 2, 3, 1), np.float32))
    with pytest.raises(ValueError, match="padding"):
        ops.conv(x, np.zeros((2, 2, 2, 1), np.float32), padding="full")


@pytest.mark.parametrize("case", CONV_CASES[:4] + CONV_CASES[5:], ids=str)
def test_conv_gradients(case):
    kw = dict(strides=case["strides"], padding=case["padding"], dilation_rate=case["dilation"])
    check_gradients(lambda x, w: ops.conv(x, w, **kw), [RNG.normal(size=(1, 6, 5, 2)), RNG.normal(size=(3, 2, 2, 3))])
    check_gradients(lambda x, w: ops.depthwise_conv(x, w, **kw),
                    [RNG.normal(size=(1, 6, 5, 2)), RNG.normal(size=(2, 2, 2, 2))])


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_pool_gradients(padding):
    x = RNG.permutation(60).reshape(1, 6, 5, 2) / 7.0  # distinct values: max has no ties
    check_gradients(lambda x: ops.max_pool(x, 3, strides=2, padding=padding), [x])
    check_gradients(lambda x: ops.average_pool(x, (2, 3), strides=(2, 1), padding=padding), [x])


@pytest.mark.parametrize("strides,padding", [((1, 1), "valid"), ((2, 2), "valid"), ((2, 1), "same"), ((1, 1), "same")])
def test_conv_transpose_is_the_adjoint_of_conv(strides, padding):
    """<conv(x, k), y> == <x, conv_transpose(y, k)>: the defining property of the transpose."""
    # sizes for which the transposed output size is unambiguous (no output_padding needed)
    x = RNG.normal(size=(2, 7 if padding == "valid" else 8, 6, 3))
    k = RNG.normal(size=(3, 2, 3, 4))
    y = RNG.normal(size=ops.conv(x, k, strides=strides, padding=padding).shape)
    back = ops.conv_transpose(y, k, strides=strides, padding=padding)
    assert back.shape == x.shape
    np.testing.assert_allclose(np.sum(ops.conv(x, k, strides=strides, padding=padding) * y), np.sum(x * back),
                               rtol=1e-10)


def test_conv_transpose_gradients():
    check_gradients(lambda y, k: ops.conv_transpose(y, k, strides=2, padding="same"),
                    [RNG.normal(size=(1, 3, 2, 3)), RNG.normal(size=(3, 3, 2, 3))])
