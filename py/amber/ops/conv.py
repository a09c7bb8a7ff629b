"""Convolution and pooling ops (Keras's ``ops.conv``, ``ops.max_pool``, ...), forward and
backward side by side.

Every op works internally on channels-last arrays. Convolutions are im2col: a strided
window view of the padded input (``sliding_window_view``, no copy), one gather into a patch
matrix, and one product with the kernel through ``backend.linalg.matmul`` — the single matmul
call site, so the Rust GEMM serves convolutions too. Backward passes reuse the patch matrix
for the kernel gradient and scatter the patch gradient back with one strided add per kernel
tap (a handful of taps, never a loop over pixels). Depthwise convolutions (one group per
channel) have no matrix product to speak of and run as one multiply-add per tap instead.

Padding follows Keras 3 (TensorFlow's rule): ``same`` pads ``total // 2`` before and the
rest after, so odd totals put the extra element at the end.
"""

import itertools
import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from amber.ops.core import primitive


# ------------------------------------------------------------------ argument handling


def _tuple(value, rank, name):
    """An int or a sequence of ``rank`` positive ints, as a tuple."""
    if isinstance(value, (int, np.integer)):
        values = (int(value),) * rank
    else:
        values = tuple(int(v) for v in value)
        if len(values) == 1 and rank > 1:
            values = values * rank
    if len(values) != rank or any(v <= 0 for v in values):
        raise ValueError(f"`{name}` must be a positive int or a tuple of {rank} positive ints, got {value!r}")
    return values


def _data_format(data_format):
    if data_format is None:
        from amber.backend.config import image_data_format

        data_format = image_data_format()
    data_format = str(data_format).lower()
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(f"`data_format` must be 'channels_last' or 'channels_first', got {data_format!r}")
    return data_format


def _padding(padding, allowed=("valid", "same")):
    padding = str(padding).lower()
    if padding not in allowed:
        raise ValueError(f"`padding` must be one of {allowed}, got {padding!r}")
    return padding


def _to_last(x, data_format):
    return np.moveaxis(x, 1, -1) if data_format == "channels_first" else x


def _from_last(x, data_format):
    return np.moveaxis(x, -1, 1) if data_format == "channels_first" else x


def _same_pads(size, window, stride):
    """TensorFlow's ``same``: output ``ceil(size / stride)``, the odd element padded after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + window - size, 0)
    return (total // 2, total - total // 2)


def _pads(spatial, windows, strides, padding):
    if padding == "valid":
        return [(0, 0)] * len(spatial)
    if padding == "causal":
        return [(w - 1, 0) for w in windows]
    return [_same_pads(n, w, s) for n, w, s in zip(spatial, windows, strides)]


def _pad_spatial(x, pads, value=0):
    """Pad (positive) or crop (negative) the spatial axes of a channels-last array."""
    if all(a == 0 and b == 0 for a, b in pads):
        return x
    grow = [(0, 0)] + [(max(a, 0), max(b, 0)) for a, b in pads] + [(0, 0)]
    if any(a > 0 or b > 0 for a, b in pads):
        x = np.pad(x, grow, constant_values=value)
    crop = (slice(None),) + tuple(slice(max(-a, 0), x.shape[i + 1] - max(-b, 0))
                                  for i, (a, b) in enumerate(pads)) + (slice(None),)
    return x[crop]


def _unpad_spatial(grad, pads, original_spatial):
    """The adjoint of ``_pad_spatial``: drop padded cells, restore cropped ones as zeros."""
    crop = (slice(None),) + tuple(slice(max(a, 0), max(a, 0) + n) for (a, _), n in
                                  zip(pads, original_spatial)) + (slice(None),)
    if all(a >= 0 and b >= 0 for a, b in pads):
        return grad[crop]
    back = [(0, 0)] + [(max(-a, 0), max(-b, 0)) for a, b in pads] + [(0, 0)]
    grad = np.pad(grad, back)
    return grad[crop]


def _tap_slices(tap, steps, strides, out):
    """Where kernel tap ``tap`` reads the padded input for every output position."""
    return tuple(slice(t * d, t * d + s * (o - 1) + 1, s) for t, d, s, o in zip(tap, steps, strides, out))


def _matmul(a, b):
    from amber.backend import linalg

    return linalg.matmul(a, b)


# ------------------------------------------------------------------ the convolution core


def _patches(xp, window, strides, dilation):
    """The windows of the padded channels-last input ``xp`` as a (batch, *out, *window,
    channels) view, in the kernel's own (window, channel) order, and the output's spatial
    shape ``out``."""
    rank = xp.ndim - 2
    if all(k == 1 for k in window):
        # A 1x1 kernel reads each (strided) pixel once: the patches are the input itself.
        patches = xp[(slice(None),) + tuple(slice(None, None, s) for s in strides)]
        return patches, patches.shape[1:rank + 1]
    span = [(k - 1) * d + 1 for k, d in zip(window, dilation)]
    view = sliding_window_view(xp, span, axis=tuple(range(1, rank + 1)))
    view = view[(slice(None),) + tuple(slice(None, None, s) for s in strides) + (slice(None),)
                + tuple(slice(None, None, d) for d in dilation)]
    return np.moveaxis(view, rank + 1, -1), view.shape[1:rank + 1]


def _conv_core(x, kernel, strides, dilation, pads, groups):
    """Channels-last N-D grouped convolution by im2col.

    ``x``: (batch, *spatial, channels); ``kernel``: (*window, channels // groups, filters).
    Returns the output and ``backward(g, need_x, need_kernel) -> (dx, dkernel)``.
    """
    rank = x.ndim - 2
    window = kernel.shape[:rank]
    channels, filters = x.shape[-1], kernel.shape[-1]
    if kernel.shape[-2] * groups != channels:
        raise ValueError(
            f"conv: the input has {channels} channels but the kernel of shape {kernel.shape} expects "
            f"{kernel.shape[-2]} channels per group times groups={groups}")
    if filters % groups:
        raise ValueError(f"conv: {filters} filters cannot be split into groups={groups}")
    if groups > 1 and groups == channels:
        return _depthwise_core(x, kernel, strides, dilation, pads)
    xp = _pad_spatial(x, pads)
    span = [(k - 1) * d + 1 for k, d in zip(window, dilation)]
    if any(n < w for n, w in zip(xp.shape[1:-1], span)):
        raise ValueError(f"conv: the dilated kernel window {tuple(span)} is larger than the input of "
                         f"(padded) spatial shape {xp.shape[1:-1]}")
    patches, out = _patches(xp, window, strides, dilation)
    batch = x.shape[0]
    positions, taps = batch * math.prod(out), math.prod(window)
    per_group, out_per_group = channels // groups, filters // groups
    if groups == 1:
        cols = patches.reshape(positions, taps * channels)
        kmat = kernel.reshape(taps * channels, filters)
        y = _matmul(cols, kmat)
    else:
        cols = patches.reshape(positions, taps, groups, per_group).transpose(2, 0, 1, 3)
        cols = cols.reshape(groups, positions, taps * per_group)
        kmat = kernel.reshape(taps, per_group, groups, out_per_group).transpose(2, 0, 1, 3)
        kmat = kmat.reshape(groups, taps * per_group, out_per_group)
        y = _matmul(cols, kmat).transpose(1, 0, 2)
    y = y.reshape((batch,) + tuple(out) + (filters,))

    def backward(g, need_x, need_kernel):
        g = np.ascontiguousarray(g, dtype=y.dtype)
        dx = dkernel = None
        if groups == 1:
            gmat = g.reshape(positions, filters)
            if need_kernel:
                dkernel = _matmul(cols.T, gmat).reshape(kernel.shape)
            if need_x:
                dcols = _matmul(gmat, kmat.T)
        else:
            gmat = g.reshape(positions, groups, out_per_group).transpose(1, 0, 2)
            if need_kernel:
                dk = _matmul(cols.transpose(0, 2, 1), gmat)
                dk = dk.reshape(groups, taps, per_group, out_per_group).transpose(1, 2, 0, 3)
                dkernel = dk.reshape(kernel.shape)
            if need_x:
                dcols = _matmul(gmat, kmat.transpose(0, 2, 1))
                dcols = dcols.reshape(groups, positions, taps, per_group).transpose(1, 2, 0, 3)
        if need_x:
            dcols = dcols.reshape((batch,) + tuple(out) + tuple(window) + (channels,))
            dxp = np.zeros(xp.shape, dtype=dcols.dtype)
            lead = (slice(None),) * (rank + 1)
            for tap in itertools.product(*(range(k) for k in window)):
                target = (slice(None),) + _tap_slices(tap, dilation, strides, out) + (slice(None),)
                dxp[target] += dcols[lead + tap]
            dx = _unpad_spatial(dxp, pads, x.shape[1:-1])
        return dx, dkernel

    return y, backward


def _depthwise_core(x, kernel, strides, dilation, pads):
    """One group per channel: output channel ``c * multiplier + m`` is channel ``c`` convolved
    with its own filter ``m``. Each product has a single input channel, so there is no GEMM to
    feed (a batched matmul of (positions, taps) @ (taps, 1) runs about 10x slower than this).
    float32 1-D/2-D inputs run natively, forward and backward (``_native.depthwise_conv2d_f32``:
    one pass over the output reading the unpadded input; its backward scatters each output
    gradient along its taps); other dtypes and ranks run one broadcast multiply-add per
    kernel tap over the whole strided padded input, and the numpy backward below. Both
    forwards add the taps' float32 products in the same order: the same values."""
    rank = x.ndim - 2
    window = kernel.shape[:rank]
    channels = x.shape[-1]
    multiplier = kernel.shape[-1] // channels
    weights = kernel.reshape(tuple(window) + (channels, multiplier))
    span = [(k - 1) * d + 1 for k, d in zip(window, dilation)]
    padded, out = _window_output(x.shape[1:-1], pads, span, strides)
    if out is None:
        raise ValueError(f"conv: the dilated kernel window {tuple(span)} is larger than the input of "
                         f"(padded) spatial shape {tuple(padded)}")
    tap_list = list(itertools.product(*(range(k) for k in window)))

    def reads(tap):
        return (slice(None),) + _tap_slices(tap, dilation, strides, out) + (slice(None), None)

    native = (x.dtype == np.float32 and weights.dtype == np.float32 and rank in (1, 2)
              and all(a >= 0 and b >= 0 for a, b in pads))
    if native:
        native_args = _native_depthwise_args(x, weights, strides, dilation, pads)
        y = _depthwise_native(native_args, out)
        xp = None
    else:
        xp = _pad_spatial(x, pads)
        y = np.zeros((x.shape[0],) + out + (channels, multiplier), dtype=np.result_type(x, kernel))
        for tap in tap_list:
            y += xp[reads(tap)] * weights[tap]
        y = y.reshape((x.shape[0],) + out + (channels * multiplier,))

    def backward(g, need_x, need_kernel):
        if native:
            return _depthwise_native_backward(native_args, g, need_x, need_kernel, x.shape, kernel.shape)
        padded_x = xp
        g = np.asarray(g, dtype=y.dtype).reshape((x.shape[0],) + out + (channels, multiplier))
        dx = dkernel = None
        if need_kernel:
            flat_g = g.reshape(-1, channels, multiplier)
            dw = np.empty(weights.shape, dtype=y.dtype)
            for tap in tap_list:
                dw[tap] = np.einsum("pc,pcm->cm", padded_x[reads(tap)][..., 0].reshape(-1, channels), flat_g)
            dkernel = dw.reshape(kernel.shape)
        if need_x:
            dxp = np.zeros(padded_x.shape, dtype=y.dtype)
            for tap in tap_list:
                dxp[reads(tap)[:-1]] += (g * weights[tap]).sum(axis=-1)
            dx = _unpad_spatial(dxp, pads, x.shape[1:-1])
        return dx, dkernel

    return y, backward


def _native_depthwise_args(x, weights, strides, dilation, pads):
    """The native kernel's operands: aligned C-ordered 4-D arrays (a 1-D convolution runs as
    2-D of height 1), 2-D strides, dilation and pads."""
    if x.ndim == 3:
        x, weights = x[:, None], weights[None]
        strides, dilation, pads = (1,) + tuple(strides), (1,) + tuple(dilation), [(0, 0)] + list(pads)
    return (np.require(x, np.float32, ("C", "A")), np.require(weights, np.float32, ("C", "A")), tuple(strides),
            tuple(dilation), tuple(tuple(p) for p in pads))


def _window_output(spatial, pads, span, strides):
    """The padded spatial shape, and the output's (None when a dilated window ``span`` does
    not fit the padded input)."""
    padded = [n + a + b for n, (a, b) in zip(spatial, pads)]
    if any(n < w for n, w in zip(padded, span)):
        return padded, None
    return padded, tuple((n - w) // s + 1 for n, w, s in zip(padded, span, strides))


def _depthwise_native(args, out, bias=None, activation="linear", scale=None):
    """The native float32 depthwise forward, shaped (batch, *out, channels * multiplier), with
    ``activation(y * scale + bias)`` applied in the kernel when given (inference)."""
    from amber import _native

    x, weights, strides, dilation, pads = args
    channels, multiplier = weights.shape[-2:]
    y = np.empty((x.shape[0],) + tuple(out) + (channels * multiplier,), np.float32)
    bias, scale = (None if v is None else np.require(v, np.float32, ("C", "A")) for v in (bias, scale))
    _native.depthwise_conv2d_f32(x, weights, y if y.ndim == 4 else y[:, None], strides, dilation, pads,
                                 bias, activation, scale)
    return y


def _depthwise_native_backward(args, g, need_x, need_kernel, x_shape, kernel_shape):
    """The native float32 gradients of ``_depthwise_native``: ``(dx, dkernel)``."""
    from amber import _native

    x, weights, strides, dilation, pads = args
    grad = np.require(np.asarray(g, np.float32), np.float32, ("C", "A"))
    grad = grad if grad.ndim == 4 else grad[:, None]
    dx = np.empty(x.shape, np.float32) if need_x else None
    dkernel = np.empty(weights.shape, np.float32) if need_kernel else None
    _native.depthwise_conv2d_backward_f32(x, weights, grad, dx, dkernel, strides, dilation, pads)
    return (None if dx is None else dx.reshape(x_shape),
            None if dkernel is None else dkernel.reshape(kernel_shape))


def _common_float(x, kernel):
    """Both operands in one floating dtype: the wider float of the two, else floatx (as
    Keras promotes int32 with float32 to float32, where numpy would pick float64)."""
    if x.dtype == kernel.dtype and np.issubdtype(x.dtype, np.floating):
        return x, kernel
    floats = [a.dtype for a in (x, kernel) if np.issubdtype(a.dtype, np.floating)]
    if floats:
        dtype = np.result_type(*floats)
    else:
        from amber.backend.config import floatx

        dtype = np.dtype(floatx())
    return x.astype(dtype, copy=False), kernel.astype(dtype, copy=False)


def _check_ranks(x, kernel, op):
    if x.ndim < 3 or kernel.ndim != x.ndim:
        raise ValueError(f"{op}: expected an input of rank 3-5 and a kernel of the same rank, got input "
                         f"shape {x.shape} and kernel shape {kernel.shape}")


def conv_bias_activation(x, kernel, bias, activation, strides, padding, dilation_rate, depthwise=False,
                         zero_pads=None, scale=None):
    """Inference only: ``activation(conv(x, kernel) * scale + bias)`` on channels-last float32
    arrays, the scale, bias and activation applied as each block of the output is produced
    (the Rust GEMM's tile epilogue, the native depthwise kernel's row epilogue) instead of in
    extra passes over the whole feature map. ``kernel`` is a Conv kernel (*window, channels,
    filters) with one group, or with ``depthwise`` a DepthwiseConv kernel (*window, channels,
    multiplier); ``scale`` and ``bias`` float32 vectors (one value per output channel) or
    None; ``activation`` a fused-kernel name (linear, relu,
    relu6, sigmoid, tanh, silu). ``zero_pads`` ((before, after) per spatial axis) are zeros
    added around ``x`` first, as a ZeroPadding layer would; the depthwise kernel reads them
    without building the padded copy. Nothing is recorded for autodiff.

    Returns None when it does not apply (another dtype, grouped kernels, a depthwise rank
    without the native kernel); the caller then runs the recorded ops."""
    from amber.backend import linalg

    if (type(x) is not np.ndarray or x.dtype != np.float32 or type(kernel) is not np.ndarray
            or kernel.dtype != np.float32 or x.ndim != kernel.ndim):
        return None
    for vector in (bias, scale):
        if vector is not None and (type(vector) is not np.ndarray or vector.dtype != np.float32 or vector.ndim != 1):
            return None
    rank = x.ndim - 2
    window = kernel.shape[:rank]
    strides = _tuple(strides, rank, "strides")
    dilation = _tuple(dilation_rate, rank, "dilation_rate")
    span = [(k - 1) * d + 1 for k, d in zip(window, dilation)]
    if zero_pads is not None:
        spatial = [n + a + b for n, (a, b) in zip(x.shape[1:-1], zero_pads)]
        pads = [(a + c, b + d) for (a, b), (c, d) in
                zip(zero_pads, _pads(spatial, span, strides, _padding(padding, ("valid", "same", "causal"))))]
    else:
        pads = _pads(x.shape[1:-1], span, strides, _padding(padding, ("valid", "same", "causal")))
    channels = x.shape[-1]
    if kernel.shape[-2] != channels:
        return None
    if depthwise:
        if rank not in (1, 2) or any(a < 0 or b < 0 for a, b in pads):
            return None
        _, out = _window_output(x.shape[1:-1], pads, span, strides)
        if out is None:
            return None  # the recorded op raises the error
        return _depthwise_native(_native_depthwise_args(x, kernel, strides, dilation, pads), out, bias,
                                 activation, scale)
    xp = _pad_spatial(x, pads)
    if any(n < w for n, w in zip(xp.shape[1:-1], span)):
        return None
    patches, out = _patches(xp, window, strides, dilation)
    cols = patches.reshape(x.shape[0] * math.prod(out), math.prod(window) * channels)
    y = linalg.dense(cols, kernel.reshape(-1, kernel.shape[-1]), bias, activation, scale)
    return y.reshape((x.shape[0],) + tuple(out) + (kernel.shape[-1],))


@primitive(arity=2)
def conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
    """N-D convolution; ``kernel`` is (*window, in_channels // groups, filters) and groups
    is inferred from the channel counts, as in Keras."""
    _check_ranks(inputs, kernel, "conv")
    rank = inputs.ndim - 2
    data_format = _data_format(data_format)
    padding = _padding(padding, ("valid", "same", "causal"))
    strides = _tuple(strides, rank, "strides")
    dilation = _tuple(dilation_rate, rank, "dilation_rate")
    x = _to_last(inputs, data_format)
    channels = x.shape[-1]
    if kernel.shape[-2] == 0 or channels % kernel.shape[-2]:
        raise ValueError(f"conv: input channels {channels} are not a multiple of the kernel's "
                         f"{kernel.shape[-2]} input channels (kernel shape {kernel.shape})")
    groups = channels // kernel.shape[-2]
    span = [(k - 1) * d + 1 for k, d in zip(kernel.shape[:rank], dilation)]
    pads = _pads(x.shape[1:-1], span, strides, padding)
    x, kernel = _common_float(x, kernel)
    y, core_backward = _conv_core(x, kernel, strides, dilation, pads, groups)

    def backward(g, need):
        dx, dk = core_backward(_to_last(g, data_format), need[0], need[1])
        return (_from_last(dx, data_format) if dx is not None else None), dk

    return _from_last(y, data_format), backward


def depthwise_conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
    """Each input channel convolved with its own ``depth_multiplier`` filters; ``kernel`` is
    (*window, channels, depth_multiplier). Output channel ``c * multiplier + m``: a grouped
    convolution with one group per channel."""
    from amber.ops.core import unwrap
    from amber.ops.shape_ops import reshape

    shape = tuple(np.shape(unwrap(kernel)))
    channels = np.shape(unwrap(inputs))[1 if _data_format(data_format) == "channels_first" else -1]
    if len(shape) < 3 or shape[-2] != channels:
        raise ValueError(f"depthwise_conv: the kernel of shape {shape} should be (*kernel_size, channels, "
                         f"depth_multiplier) with channels={channels}, the input's channel count")
    grouped = reshape(kernel, shape[:-2] + (1, shape[-2] * shape[-1]))
    return conv(inputs, grouped, strides=strides, padding=padding, data_format=data_format,
                dilation_rate=dilation_rate)


def separable_conv(inputs, depthwise_kernel, pointwise_kernel, strides=1, padding="valid", data_format=None,
                   dilation_rate=1):
    """A depthwise convolution followed by a 1x1 (pointwise) convolution."""
    y = depthwise_conv(inputs, depthwise_kernel, strides=strides, padding=padding, data_format=data_format,
                       dilation_rate=dilation_rate)
    return conv(y, pointwise_kernel, strides=1, padding="valid", data_format=data_format, dilation_rate=1)


def conv_transpose_pads(window, stride, dilation, padding, output_padding):
    """Keras 3's (JAX's) padding of the stride-dilated input for a transposed convolution,
    as (before, after) for one spatial axis."""
    span = (window - 1) * dilation + 1
    if padding == "valid":
        extra = max(span, stride) - span if output_padding is None else output_padding
        return span - 1, span - 1 + extra
    if output_padding is None:
        total = stride + span - 2
    else:
        total = span + span % 2 - 2 + output_padding
    before = min(total // 2 + total % 2, span - 1)
    return before, total - before


@primitive(arity=2)
def conv_transpose(inputs, kernel, strides=1, padding="valid", output_padding=None, data_format=None,
                   dilation_rate=1):
    """The transpose (input gradient) of a convolution; ``kernel`` is
    (*window, filters, in_channels). Computed as a stride-1 convolution of the input spread
    out by ``strides`` (zeros between samples) with the spatially flipped kernel."""
    _check_ranks(inputs, kernel, "conv_transpose")
    rank = inputs.ndim - 2
    data_format = _data_format(data_format)
    padding = _padding(padding)
    strides = _tuple(strides, rank, "strides")
    dilation = _tuple(dilation_rate, rank, "dilation_rate")
    if output_padding is None:
        output_padding = (None,) * rank
    else:
        output_padding = tuple(int(p) for p in (
            (output_padding,) * rank if isinstance(output_padding, (int, np.integer)) else output_padding))
    x = _to_last(inputs, data_format)
    if kernel.shape[-1] != x.shape[-1]:
        raise ValueError(f"conv_transpose: the input has {x.shape[-1]} channels but the kernel of shape "
                         f"{kernel.shape} expects {kernel.shape[-1]}")
    x, kernel = _common_float(x, kernel)
    spread_shape = (x.shape[0],) + tuple((n - 1) * s + 1 for n, s in zip(x.shape[1:-1], strides)) + (x.shape[-1],)
    every = (slice(None),) + tuple(slice(None, None, s) for s in strides) + (slice(None),)
    spread = np.zeros(spread_shape, dtype=x.dtype)
    spread[every] = x
    pads = [conv_transpose_pads(k, s, d, padding, p)
            for k, s, d, p in zip(kernel.shape[:rank], strides, dilation, output_padding)]
    flip = tuple(slice(None, None, -1) for _ in range(rank))
    forward_kernel = np.swapaxes(kernel[flip], -1, -2)
    y, core_backward = _conv_core(spread, forward_kernel, (1,) * rank, dilation, pads, 1)

    def backward(g, need):
        dspread, dk = core_backward(_to_last(g, data_format), need[0], need[1])
        dx = _from_last(dspread[every], data_format) if dspread is not None else None
        if dk is not None:
            dk = np.swapaxes(dk, -1, -2)[flip]
        return dx, dk

    return _from_last(y, data_format), backward


# ------------------------------------------------------------------ pooling


def _pool_setup(inputs, pool_size, strides, padding, data_format):
    rank = inputs.ndim - 2
    if rank < 1:
        raise ValueError(f"pooling expects an input of rank 3-5, got shape {inputs.shape}")
    pool = _tuple(pool_size, rank, "pool_size")
    strides = pool if strides is None else _tuple(strides, rank, "strides")
    data_format = _data_format(data_format)
    padding = _padding(padding)
    x = _to_last(inputs, data_format)
    pads = _pads(x.shape[1:-1], pool, strides, padding)
    return rank, pool, strides, data_format, x, pads


def _windows(xp, pool, strides, rank):
    """(batch, *out, channels, *pool) strided view of the padded input."""
    if any(n < p for n, p in zip(xp.shape[1:-1], pool)):
        raise ValueError(f"pooling: the pool window {pool} is larger than the input of (padded) spatial "
                         f"shape {xp.shape[1:-1]}")
    view = sliding_window_view(xp, pool, axis=tuple(range(1, rank + 1)))
    return view[(slice(None),) + tuple(slice(None, None, s) for s in strides)]


def _scatter_taps(per_tap, xp_shape, pool, strides, out, dtype):
    """Sum each tap's gradient (batch, *out, channels) into the padded input's shape."""
    dxp = np.zeros(xp_shape, dtype=dtype)
    ones = (1,) * len(pool)
    for index, tap in enumerate(itertools.product(*(range(p) for p in pool))):
        target = (slice(None),) + _tap_slices(tap, ones, strides, out) + (slice(None),)
        dxp[target] += per_tap(index)
    return dxp


@primitive()
def max_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    rank, pool, strides, data_format, x, pads = _pool_setup(inputs, pool_size, strides, padding, data_format)
    fill = -np.inf if np.issubdtype(x.dtype, np.floating) else np.iinfo(x.dtype).min
    xp = _pad_spatial(x, pads, value=fill)
    view = _windows(xp, pool, strides, rank)
    y = view.max(axis=tuple(range(-rank, 0)))
    out = y.shape[1:-1]

    def backward(g, need):
        g = _to_last(g, data_format)
        # The gradient goes to the first maximum of each window, as TensorFlow's does.
        winner = view.reshape(y.shape + (-1,)).argmax(axis=-1)
        dxp = _scatter_taps(lambda t: np.where(winner == t, g, 0), xp.shape, pool, strides, out, g.dtype)
        return (_from_last(_unpad_spatial(dxp, pads, x.shape[1:-1]), data_format),)

    return _from_last(y, data_format), backward


@primitive()
def average_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    """Window means; with ``same`` padding the padded cells are left out of each mean."""
    if not np.issubdtype(inputs.dtype, np.floating):
        from amber.backend.config import floatx

        inputs = inputs.astype(floatx())  # a mean of integers is fractional
    rank, pool, strides, data_format, x, pads = _pool_setup(inputs, pool_size, strides, padding, data_format)
    xp = _pad_spatial(x, pads)
    view = _windows(xp, pool, strides, rank)
    total = view.sum(axis=tuple(range(-rank, 0)))
    if any(a or b for a, b in pads):
        mask = _pad_spatial(np.ones((1,) + x.shape[1:-1] + (1,), dtype=x.dtype), pads)
        count = _windows(mask, pool, strides, rank).sum(axis=tuple(range(-rank, 0)))
    else:
        count = np.asarray(math.prod(pool), dtype=x.dtype)
    y = (total / count).astype(x.dtype, copy=False)
    out = y.shape[1:-1]

    def backward(g, need):
        share = _to_last(g, data_format) / count
        dxp = _scatter_taps(lambda t: share, xp.shape, pool, strides, out, share.dtype)
        return (_from_last(_unpad_spatial(dxp, pads, x.shape[1:-1]), data_format),)

    return _from_last(y, data_format), backward


# ------------------------------------------------------------------ output shapes


def conv_output_length(length, window, stride, padding, dilation=1):
    """Spatial output size of a convolution or pooling (``None`` stays unknown)."""
    if length is None:
        return None
    span = (window - 1) * dilation + 1
    if padding in ("same", "causal"):
        return -(-length // stride)
    return max((length - span) // stride + 1, 0)


def conv_transpose_output_length(length, window, stride, padding, output_padding=None, dilation=1):
    if length is None:
        return None
    span = (window - 1) * dilation + 1
    before, after = conv_transpose_pads(window, stride, dilation, padding, output_padding)
    return (length - 1) * stride + 1 + before + after - span + 1
