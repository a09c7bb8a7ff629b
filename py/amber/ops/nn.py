"""Neural-network ops (Keras's ``ops.nn``, also exposed at the top of ``amber.ops``)."""

import math

import numpy as np

from amber import _native
from amber.backend.logistic import native_f32 as _native_f32, stable_sigmoid as _stable_sigmoid
from amber.ops.core import primitive, unwrap
from amber.ops.math_ops import erf_values


@primitive()
def sigmoid(x):
    y = _stable_sigmoid(x)
    return y, lambda g, need: (g * y * (1 - y),)


@primitive()
def relu(x):
    return np.maximum(x, 0), lambda g, need: (g * (x > 0),)


@primitive()
def relu6(x):
    return np.clip(x, 0, 6), lambda g, need: (g * ((x > 0) & (x < 6)),)


@primitive()
def leaky_relu(x, negative_slope=0.2):
    y = np.where(x > 0, x, x * negative_slope)
    return y, lambda g, need: (np.where(x > 0, g, g * negative_slope),)


@primitive()
def elu(x, alpha=1.0):
    neg = np.expm1(np.minimum(x, 0))
    y = np.where(x > 0, x, alpha * neg)
    return y, lambda g, need: (np.where(x > 0, g, g * alpha * (neg + 1)),)


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


@primitive()
def selu(x):
    neg = np.expm1(np.minimum(x, 0))
    y = _SELU_SCALE * np.where(x > 0, x, _SELU_ALPHA * neg)
    return y.astype(x.dtype, copy=False), lambda g, need: (
        (g * _SELU_SCALE * np.where(x > 0, 1, _SELU_ALPHA * (neg + 1))).astype(g.dtype, copy=False),
    )


_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
_INV_SQRT_2 = 1 / math.sqrt(2)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)


@primitive()
def gelu(x, approximate=True):
    """Gaussian error linear unit; ``approximate`` selects the tanh form (Keras's ops default)."""
    if approximate:
        inner = _SQRT_2_OVER_PI * (x + 0.044715 * x ** 3)
        t = np.tanh(inner)
        y = 0.5 * x * (1 + t)

        def backward(g, need):
            d_inner = _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x)
            return (g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * d_inner),)

        return y, backward
    cdf = 0.5 * (1 + erf_values(x * _INV_SQRT_2))
    y = x * cdf
    return y, lambda g, need: (g * (cdf + x * _INV_SQRT_2PI * np.exp(-0.5 * x * x)),)


@primitive()
def silu(x):
    y = _native_f32(_native.silu_f32, x)
    if y is None:
        s = _stable_sigmoid(x)
        return x * s, lambda g, need: (g * s * (1 + x * (1 - s)),)

    # The native pass keeps no sigmoid; the backward recomputes it (the same kernel, so the
    # same values the forward multiplied by), and only when a gradient is asked for.
    def backward(g, need):
        s = _stable_sigmoid(x)
        return (g * s * (1 + x * (1 - s)),)

    return y, backward


swish = silu


@primitive()
def softplus(x):
    y = np.logaddexp(x, 0).astype(x.dtype, copy=False)
    return y, lambda g, need: (g * _stable_sigmoid(x),)


@primitive()
def softsign(x):
    d = 1 + np.abs(x)
    return x / d, lambda g, need: (g / (d * d),)


@primitive()
def hard_sigmoid(x):
    """relu6(x + 3) / 6, Keras 3's definition."""
    y = np.clip(x / 6 + 0.5, 0, 1)
    return y, lambda g, need: (g * (((x > -3) & (x < 3)) / 6).astype(g.dtype),)


@primitive()
def hard_silu(x):
    hs = np.clip(x / 6 + 0.5, 0, 1)
    inside = (x > -3) & (x < 3)
    return x * hs, lambda g, need: (g * (hs + np.where(inside, x / 6, 0)),)


hard_swish = hard_silu


@primitive()
def log_sigmoid(x):
    y = -np.logaddexp(-x, 0).astype(x.dtype, copy=False)
    return y, lambda g, need: (g * _stable_sigmoid(-x),)


@primitive()
def softmax(x, axis=-1):
    shifted = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(shifted)
    y = e / np.sum(e, axis=axis, keepdims=True)
    return y, lambda g, need: (y * (g - np.sum(g * y, axis=axis, keepdims=True)),)


@primitive()
def log_softmax(x, axis=-1):
    shifted = x - np.max(x, axis=axis, keepdims=True)
    y = shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))
    return y, lambda g, need: (g - np.exp(y) * np.sum(g, axis=axis, keepdims=True),)


@primitive(arity=3)
def clip(x, x_min, x_max):
    y = np.clip(x, x_min, x_max)
    return y, lambda g, need: (
        g * ((x >= x_min) & (x <= x_max)),
        g * (x < x_min) if need[1] else None,
        g * (x > x_max) if need[2] else None,
    )


@primitive(arity=2)
def maximum(x1, x2):
    y = np.maximum(x1, x2)
    return y, lambda g, need: (
        g * (x1 >= x2) if need[0] else None,
        g * (x1 < x2) if need[1] else None,
    )


@primitive(arity=2)
def minimum(x1, x2):
    y = np.minimum(x1, x2)
    return y, lambda g, need: (
        g * (x1 <= x2) if need[0] else None,
        g * (x1 > x2) if need[1] else None,
    )


def moments(x, axes, keepdims=False, synchronized=False):
    """Mean and variance over ``axes`` (differentiable)."""
    from amber.ops.reductions import mean, var

    return mean(x, axis=axes, keepdims=keepdims), var(x, axis=axes, keepdims=keepdims)


def batch_normalization(x, mean, variance, axis, offset=None, scale=None, epsilon=1e-3):
    """(x - mean) / sqrt(variance + epsilon) * scale + offset, with the 1-D statistics laid
    along ``axis`` of ``x``."""
    from amber.ops.math_ops import add, multiply, rsqrt, subtract
    from amber.ops.shape_ops import reshape

    nd = np.ndim(unwrap(x))
    shape = [1] * nd
    shape[axis % nd] = -1

    def along(v):
        return reshape(v, shape) if np.ndim(unwrap(v)) == 1 else v

    inv = rsqrt(add(along(variance), epsilon))
    if scale is not None:
        inv = multiply(inv, along(scale))
    y = multiply(subtract(x, along(mean)), inv)
    if offset is not None:
        y = add(y, along(offset))
    return y


def normalize(x, axis=-1, order=2, epsilon=None):
    from amber.ops.math_ops import divide
    from amber.ops.reductions import norm

    n = norm(x, ord=order, axis=axis, keepdims=True)
    return divide(x, maximum(n, 1e-12 if epsilon is None else epsilon))


def dropout(x, rate, noise_shape=None, seed=None):
    from amber.backend import random

    return random.dropout(x, rate, noise_shape=noise_shape, seed=seed)


# ---------------------------------------------------------------- composite activations
# Built from the primitives above, so their gradients come from the chain rule.


def _where(cond, a, b):
    from amber.ops.shape_ops import where

    return where(cond, a, b)


def celu(x, alpha=1.0):
    from amber.ops.math_ops import divide, expm1, multiply

    return _where(np.asarray(unwrap(x)) > 0, x, multiply(alpha, expm1(divide(x, alpha))))


def glu(x, axis=-1):
    from amber.ops.math_ops import multiply
    from amber.ops.shape_ops import split

    a, b = split(x, 2, axis=axis)
    return multiply(a, sigmoid(b))


def tanh_shrink(x):
    from amber.ops.math_ops import subtract, tanh

    return subtract(x, tanh(x))


def hard_tanh(x):
    return clip(x, -1.0, 1.0)


def hard_shrink(x, threshold=0.5):
    return _where(np.abs(np.asarray(unwrap(x))) > threshold, x, 0.0)


def soft_shrink(x, threshold=0.5):
    from amber.ops.math_ops import add, subtract

    raw = np.asarray(unwrap(x))
    return _where(raw > threshold, subtract(x, threshold),
                  _where(raw < -threshold, add(x, threshold), 0.0))


def threshold(x, threshold, default_value):
    return _where(np.asarray(unwrap(x)) > threshold, x, default_value)


def sparse_plus(x):
    from amber.ops.math_ops import add, multiply, square

    raw = np.asarray(unwrap(x))
    quadratic = multiply(square(add(x, 1.0)), 0.25)
    return _where(raw <= -1, 0.0, _where(raw >= 1, x, quadratic))


def sparse_sigmoid(x):
    from amber.ops.math_ops import add, multiply

    raw = np.asarray(unwrap(x))
    return _where(raw <= -1, 0.0, _where(raw >= 1, 1.0, multiply(add(x, 1.0), 0.5)))


def squareplus(x, b=4):
    from amber.ops.math_ops import add, multiply, sqrt, square

    return multiply(add(x, sqrt(add(square(x), float(b)))), 0.5)


def mish(x):
    from amber.ops.math_ops import multiply, tanh

    return multiply(x, tanh(softplus(x)))


def sparsemax(x, axis=-1):
    """Euclidean projection onto the probability simplex (Martins & Astudillo, 2016)."""
    from amber.ops.math_ops import divide, subtract
    from amber.ops.reductions import cumsum, sum as reduce_sum
    from amber.ops.shape_ops import flip, sort

    raw = np.asarray(unwrap(x))
    ax = axis % raw.ndim
    n = raw.shape[ax]
    ranks_shape = [1] * raw.ndim
    ranks_shape[ax] = n
    ranks = np.arange(1, n + 1, dtype=raw.dtype).reshape(ranks_shape)
    descending = flip(sort(x, axis=ax), axis=ax)
    totals = cumsum(descending, axis=ax)
    in_support = (1 + ranks * np.asarray(unwrap(descending))) > np.asarray(unwrap(totals))
    k = np.sum(in_support, axis=ax, keepdims=True).astype(raw.dtype)
    tau = divide(subtract(reduce_sum(descending * in_support.astype(raw.dtype), axis=ax, keepdims=True), 1.0), k)
    return relu(subtract(x, tau))
