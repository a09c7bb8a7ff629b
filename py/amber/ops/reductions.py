"""Reductions over axes, with ``keepdims``; their backward broadcasts back to the input."""

import builtins

import numpy as np

from amber.ops.core import expand_reduced, normalize_axis, primitive, unwrap
from amber.ops.symbolic import record_or_raise


def _axis(axis):
    return tuple(axis) if isinstance(axis, list) else axis


def _count(shape, axis):
    axes = normalize_axis(axis, len(shape))
    n = 1
    for a in axes:
        n *= shape[a]
    return n


@primitive()
def sum(x, axis=None, keepdims=False):
    axis = _axis(axis)
    return np.sum(x, axis=axis, keepdims=keepdims), lambda g, need: (
        expand_reduced(g, x.shape, axis, keepdims),
    )


@primitive()
def mean(x, axis=None, keepdims=False):
    axis = _axis(axis)
    y = np.mean(x, axis=axis, keepdims=keepdims)
    if np.issubdtype(np.asarray(x).dtype, np.integer):
        from amber.backend.config import floatx

        y = np.asarray(y, dtype=floatx())
    return y, lambda g, need: (
        expand_reduced(g / _count(x.shape, axis), x.shape, axis, keepdims),
    )


def _extreme(reduce):
    def body(x, axis=None, keepdims=False, initial=None):
        axis = _axis(axis)
        kwargs = {} if initial is None else {"initial": initial}
        y = reduce(x, axis=axis, keepdims=keepdims, **kwargs)

        def backward(g, need):
            # ties share the gradient equally
            y_full = expand_reduced(y, x.shape, axis, keepdims)
            hit = (x == y_full).astype(g.dtype)
            ties = expand_reduced(np.sum(hit, axis=axis, keepdims=keepdims), x.shape, axis, keepdims)
            return (expand_reduced(g, x.shape, axis, keepdims) * hit / ties,)

        return y, backward

    return body


max = primitive(name="max")(_extreme(np.max))
min = primitive(name="min")(_extreme(np.min))
max.__name__, min.__name__ = "max", "min"
amax, amin = max, min


@primitive()
def prod(x, axis=None, keepdims=False, dtype=None):
    axis = _axis(axis)
    y = np.prod(x, axis=axis, keepdims=keepdims, dtype=dtype)

    def backward(g, need):
        # product of all the other elements; computed without dividing so zeros are exact
        axes = normalize_axis(axis, x.ndim)
        moved = np.moveaxis(x, axes, tuple(range(-len(axes), 0)))
        flat = moved.reshape(moved.shape[:moved.ndim - len(axes)] + (-1,))
        ones = np.ones_like(flat[..., :1])
        before = np.cumprod(np.concatenate([ones, flat[..., :-1]], axis=-1), axis=-1)
        after = np.flip(np.cumprod(np.concatenate([ones, np.flip(flat, -1)[..., :-1]], axis=-1), axis=-1), -1)
        others = np.moveaxis((before * after).reshape(moved.shape), tuple(range(-len(axes), 0)), axes)
        return (expand_reduced(g, x.shape, axis, keepdims) * others,)

    return y, backward


@primitive()
def var(x, axis=None, keepdims=False):
    axis = _axis(axis)
    centered = x - np.mean(x, axis=axis, keepdims=True)
    y = np.mean(np.square(centered), axis=axis, keepdims=keepdims)
    return y, lambda g, need: (
        expand_reduced(g, x.shape, axis, keepdims) * centered * (2.0 / _count(x.shape, axis)),
    )


@primitive()
def std(x, axis=None, keepdims=False):
    axis = _axis(axis)
    centered = x - np.mean(x, axis=axis, keepdims=True)
    y = np.sqrt(np.mean(np.square(centered), axis=axis, keepdims=keepdims))
    return y, lambda g, need: (
        expand_reduced(g / y, x.shape, axis, keepdims) * centered / _count(x.shape, axis),
    )


@primitive()
def logsumexp(x, axis=None, keepdims=False):
    axis = _axis(axis)
    peak = np.max(x, axis=axis, keepdims=True)
    peak = np.where(np.isfinite(peak), peak, 0)
    shifted = np.exp(x - peak)
    total = np.sum(shifted, axis=axis, keepdims=True)
    y_keep = np.log(total) + peak
    y = y_keep if keepdims else np.squeeze(y_keep, axis=normalize_axis(axis, x.ndim))
    return y, lambda g, need: (
        expand_reduced(g, x.shape, axis, keepdims) * (shifted / total),
    )


@primitive()
def cumsum(x, axis=None, dtype=None):
    if axis is None:
        flat = np.reshape(x, -1)
        return np.cumsum(flat, dtype=dtype), lambda g, need: (
            np.flip(np.cumsum(np.flip(g)), 0).reshape(x.shape),
        )
    return np.cumsum(x, axis=axis, dtype=dtype), lambda g, need: (
        np.flip(np.cumsum(np.flip(g, axis), axis=axis), axis),
    )


def cumprod(x, axis=None, dtype=None):
    return np.cumprod(unwrap(x), axis=axis, dtype=dtype)


def average(x, axis=None, weights=None):
    if weights is None:
        return mean(x, axis=axis)
    from amber.ops.math_ops import divide, multiply
    from amber.ops.shape_ops import reshape

    w = weights
    x_nd = np.ndim(unwrap(x))
    if np.ndim(unwrap(w)) == 1 and x_nd > 1 and axis is not None:
        shape = [1] * x_nd
        shape[axis % x_nd] = -1
        w = reshape(w, shape)
    w_full = multiply(w, np.ones(np.shape(unwrap(x)), dtype=np.asarray(unwrap(x)).dtype))
    return divide(sum(multiply(x, w_full), axis=axis), sum(w_full, axis=axis))


def argmax(x, axis=None, keepdims=False):
    return np.asarray(np.argmax(unwrap(x), axis=axis, keepdims=keepdims)).astype(np.int32)


def argmin(x, axis=None, keepdims=False):
    return np.asarray(np.argmin(unwrap(x), axis=axis, keepdims=keepdims)).astype(np.int32)


def argsort(x, axis=-1):
    return np.argsort(unwrap(x), axis=axis).astype(np.int32)


def all(x, axis=None, keepdims=False):
    try:
        return np.asarray(np.all(unwrap(x), axis=_axis(axis), keepdims=keepdims))
    except TypeError:
        return record_or_raise("all", x, axis=axis, keepdims=keepdims)


def any(x, axis=None, keepdims=False):
    try:
        return np.asarray(np.any(unwrap(x), axis=_axis(axis), keepdims=keepdims))
    except TypeError:
        return record_or_raise("any", x, axis=axis, keepdims=keepdims)


def count_nonzero(x, axis=None):
    return np.asarray(np.count_nonzero(unwrap(x), axis=_axis(axis))).astype(np.int32)


def norm(x, ord=None, axis=None, keepdims=False):
    """Vector and matrix norms as numpy.linalg.norm defines them, built from ops."""
    from amber.ops.math_ops import abs as absolute, power, sqrt, square

    nd = np.ndim(unwrap(x))
    if axis is None:
        if ord is None:
            return sqrt(sum(square(x), axis=None, keepdims=keepdims))
        axis = tuple(range(nd))
    axes = normalize_axis(axis, nd)
    if len(axes) == 1:
        if ord is None or ord == 2:
            return sqrt(sum(square(x), axis=axes, keepdims=keepdims))
        if ord == 1:
            return sum(absolute(x), axis=axes, keepdims=keepdims)
        if ord == np.inf:
            return max(absolute(x), axis=axes, keepdims=keepdims)
        if ord == -np.inf:
            return min(absolute(x), axis=axes, keepdims=keepdims)
        if ord == 0:
            return sum(np.asarray(unwrap(x) != 0, dtype=np.asarray(unwrap(x)).dtype), axis=axes,
                       keepdims=keepdims)
        return power(sum(power(absolute(x), ord), axis=axes, keepdims=keepdims), 1.0 / ord)
    if len(axes) == 2:
        if ord in (None, "fro"):
            return sqrt(sum(square(x), axis=axes, keepdims=keepdims))
        if ord == 1:
            return max(sum(absolute(x), axis=axes[0], keepdims=True), axis=axes, keepdims=keepdims)
        if ord == np.inf:
            return max(sum(absolute(x), axis=axes[1], keepdims=True), axis=axes, keepdims=keepdims)
        # spectral and nuclear norms: values only
        return np.asarray(np.linalg.norm(unwrap(x), ord=ord, axis=axes, keepdims=keepdims))
    raise ValueError(f"norm: axis must name one or two axes, got {axis!r}")


_ = builtins  # reductions shadow builtins sum/max/min/any/all inside this module
