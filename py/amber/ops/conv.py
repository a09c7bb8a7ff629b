"""Convolution and pooling over N spatial dimensions (Keras's ``ops.conv``,
``depthwise_conv``, ``separable_conv``, ``max_pool``, ``average_pool``).

One primitive does the spatial work: ``_patches`` gathers every kernel window into a
(batch, *out, *kernel, channels) array (im2col); its backward scatter-adds window
gradients back. Convolutions are then a matrix product and pooling a reduction, so their
gradients come from ``matmul``, ``einsum``, ``max`` and ``sum``.
"""

import math

import numpy as np
from numpy.lib.stride_tricks import as_strided

from amber.backend.config import image_data_format
from amber.ops.core import primitive, unwrap


def _tuple(value, n, name):
    if isinstance(value, int):
        return (value,) * n
    value = tuple(int(v) for v in value)
    if len(value) != n:
        raise ValueError(f"{name} must have {n} values for {n} spatial dimensions, got {value}")
    return value


def _padding(padding, sizes, kernel, strides, dilation):
    """(before, after) padding per spatial axis and the output sizes, as Keras/TF define
    ``valid``, ``same`` and ``causal`` (left padding, 1-D)."""
    padding = padding.lower()
    pads, outs = [], []
    for n, k, s, d in zip(sizes, kernel, strides, dilation):
        span = (k - 1) * d + 1
        if padding == "valid":
            pads.append((0, 0))
            outs.append((n - span) // s + 1 if n >= span else 0)
        elif padding == "same":
            out = math.ceil(n / s)
            total = max((out - 1) * s + span - n, 0)
            pads.append((total // 2, total - total // 2))
            outs.append(out)
        elif padding == "causal":
            pads.append((span - 1, 0))
            outs.append((n - 1) // s + 1)
        else:
            raise ValueError(f"padding must be 'valid', 'same' or 'causal', got {padding!r}")
    if any(o <= 0 for o in outs):
        raise ValueError(
            f"the window (kernel {kernel}, dilation {dilation}) is larger than the input "
            f"{tuple(sizes)} with padding={padding!r}")
    return pads, outs


@primitive()
def _patches(x, kernel, strides, dilation, pads, outs, pad_value=0.0):
    """Windows of channels-last ``x`` as a (batch, *outs, *kernel, channels) array."""
    n = len(kernel)
    width = [(0, 0)] + list(pads) + [(0, 0)]
    padded = np.pad(x, width, constant_values=pad_value) if any(p != (0, 0) for p in pads) else x
    st = padded.strides
    view = as_strided(
        padded,
        shape=(padded.shape[0],) + tuple(outs) + tuple(kernel) + (padded.shape[-1],),
        strides=(st[0],) + tuple(st[1 + i] * strides[i] for i in range(n))
        + tuple(st[1 + i] * dilation[i] for i in range(n)) + (st[-1],),
        writeable=False,
    )
    windows = np.ascontiguousarray(view)

    def backward(g, need):
        grad = np.zeros(padded.shape, dtype=g.dtype)
        for offset in np.ndindex(*kernel):
            target = tuple(slice(offset[i] * dilation[i], offset[i] * dilation[i] + (outs[i] - 1) * strides[i] + 1,
                                 strides[i]) for i in range(n))
            grad[(slice(None),) + target] += g[(slice(None),) * (1 + n) + offset]
        crop = tuple(slice(lo, lo + size) for (lo, _), size in zip(pads, x.shape[1:-1]))
        return (grad[(slice(None),) + crop],)

    return windows, backward


def _channels_last(inputs, data_format):
    from amber.ops.shape_ops import transpose

    data_format = data_format or image_data_format()
    if data_format == "channels_first":
        nd = np.ndim(unwrap(inputs))
        return transpose(inputs, (0,) + tuple(range(2, nd)) + (1,)), True
    return inputs, False


def _restore(outputs, moved):
    from amber.ops.shape_ops import transpose

    if not moved:
        return outputs
    nd = np.ndim(unwrap(outputs))
    return transpose(outputs, (0, nd - 1) + tuple(range(1, nd - 1)))


def _windows(x, kernel_shape, strides, padding, dilation_rate, pad_value=0.0):
    shape = np.shape(unwrap(x))
    n = len(shape) - 2
    kernel_shape = _tuple(kernel_shape, n, "kernel size")
    strides = _tuple(strides, n, "strides")
    dilation = _tuple(dilation_rate, n, "dilation_rate")
    pads, outs = _padding(padding, shape[1:-1], kernel_shape, strides, dilation)
    return _patches(x, kernel_shape, strides, dilation, tuple(pads), tuple(outs), pad_value), outs


def conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
    """N-D convolution; ``kernel`` is (*kernel_size, in_channels / groups, out_channels)."""
    from amber.ops.math_ops import matmul
    from amber.ops.shape_ops import reshape

    x, moved = _channels_last(inputs, data_format)
    k_shape = np.shape(unwrap(kernel))
    spatial = k_shape[:-2]
    windows, outs = _windows(x, spatial, strides, padding, dilation_rate)
    batch = np.shape(unwrap(x))[0]
    in_channels = np.shape(unwrap(x))[-1]
    if k_shape[-2] != in_channels:
        raise ValueError(f"conv: kernel expects {k_shape[-2]} input channels, inputs have {in_channels}")
    columns = reshape(windows, (-1, int(np.prod(spatial)) * in_channels))
    y = matmul(columns, reshape(kernel, (-1, k_shape[-1])))
    return _restore(reshape(y, (batch,) + tuple(outs) + (k_shape[-1],)), moved)


def depthwise_conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
    """Per-channel convolution; ``kernel`` is (*kernel_size, channels, multiplier)."""
    from amber.ops.math_ops import einsum
    from amber.ops.shape_ops import reshape

    x, moved = _channels_last(inputs, data_format)
    k_shape = np.shape(unwrap(kernel))
    spatial = k_shape[:-2]
    windows, outs = _windows(x, spatial, strides, padding, dilation_rate)
    batch, channels = np.shape(unwrap(x))[0], np.shape(unwrap(x))[-1]
    flat = reshape(windows, (-1, int(np.prod(spatial)), channels))
    y = einsum("nkc,kcm->ncm", flat, reshape(kernel, (-1, channels, k_shape[-1])), optimize=True)
    return _restore(reshape(y, (batch,) + tuple(outs) + (channels * k_shape[-1],)), moved)


def separable_conv(inputs, depthwise_kernel, pointwise_kernel, strides=1, padding="valid",
                   data_format=None, dilation_rate=1):
    data_format = data_format or image_data_format()
    y = depthwise_conv(inputs, depthwise_kernel, strides, padding, data_format, dilation_rate)
    return conv(y, pointwise_kernel, 1, "valid", data_format)


def _pool_args(inputs, pool_size, strides, data_format):
    x, moved = _channels_last(inputs, data_format)
    n = np.ndim(unwrap(x)) - 2
    pool_size = _tuple(pool_size, n, "pool_size")
    strides = pool_size if strides is None else _tuple(strides, n, "strides")
    return x, moved, pool_size, strides


def max_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    from amber.ops.reductions import max as reduce_max

    x, moved, pool_size, strides = _pool_args(inputs, pool_size, strides, data_format)
    n = len(pool_size)
    windows, _ = _windows(x, pool_size, strides, padding, 1, pad_value=-np.inf)
    return _restore(reduce_max(windows, axis=tuple(range(1 + n, 1 + 2 * n))), moved)


def average_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    """Window means; with ``same`` padding the padded positions are not counted (as Keras)."""
    from amber.ops.math_ops import divide
    from amber.ops.reductions import sum as reduce_sum

    x, moved, pool_size, strides = _pool_args(inputs, pool_size, strides, data_format)
    n = len(pool_size)
    axes = tuple(range(1 + n, 1 + 2 * n))
    windows, _ = _windows(x, pool_size, strides, padding, 1)
    totals = reduce_sum(windows, axis=axes)
    ones = np.ones((1,) + np.shape(unwrap(x))[1:-1] + (1,), dtype=np.asarray(unwrap(x)).dtype)
    counts_windows, _ = _windows(ones, pool_size, strides, padding, 1)
    counts = np.sum(unwrap(counts_windows), axis=axes)
    return _restore(divide(totals, counts), moved)
