"""The rest of Keras's ops namespace: losses-style ops, normalizations, attention, more
numpy functions, linear algebra (values) and Python-level control flow. Differentiable ones
are compositions of primitives, so the tape differentiates them without new backward code."""

import numpy as np

from amber.backend.config import epsilon as _default_epsilon, floatx, standardize_dtype
from amber.ops import math_ops as m
from amber.ops import nn
from amber.ops import reductions as r
from amber.ops import shape_ops as s
from amber.ops.core import primitive, unwrap


def _raw(x):
    return np.asarray(unwrap(x))


# ---------------------------------------------------------------- cross-entropies


def _same_shape(target, output, name):
    if np.shape(_raw(target)) != np.shape(_raw(output)):
        raise ValueError(f"{name}: target and output must have the same shape, got "
                         f"target.shape={np.shape(_raw(target))}, output.shape={np.shape(_raw(output))}")


def binary_crossentropy(target, output, from_logits=False):
    """Elementwise binary cross-entropy; probabilities are clipped to [eps, 1 - eps], logits
    use the overflow-free form max(x, 0) - x z + log(1 + exp(-|x|))."""
    _same_shape(target, output, "binary_crossentropy")
    if from_logits:
        return m.add(m.subtract(nn.relu(output), m.multiply(output, target)),
                     m.log1p(m.exp(m.negative(m.abs(output)))))
    eps = _default_epsilon()
    p = nn.clip(output, eps, 1.0 - eps)
    return m.negative(m.add(m.multiply(target, m.log(p)),
                            m.multiply(m.subtract(1.0, target), m.log(m.subtract(1.0, p)))))


def _log_probabilities(output, from_logits, axis):
    if from_logits:
        return nn.log_softmax(output, axis=axis)
    eps = _default_epsilon()
    p = m.divide(output, r.sum(output, axis=axis, keepdims=True))
    return m.log(nn.clip(p, eps, 1.0 - eps))


def categorical_crossentropy(target, output, from_logits=False, axis=-1):
    _same_shape(target, output, "categorical_crossentropy")
    if np.ndim(_raw(target)) < 1:
        raise ValueError("categorical_crossentropy: target and output must be at least rank 1")
    return m.negative(r.sum(m.multiply(target, _log_probabilities(output, from_logits, axis)), axis=axis))


def sparse_categorical_crossentropy(target, output, from_logits=False, axis=-1):
    labels = _raw(target).astype(np.int32)
    out_shape = np.shape(_raw(output))
    if labels.ndim == len(out_shape) and labels.shape[-1] == 1:
        labels = np.squeeze(labels, axis=-1)
    if len(out_shape) < 1 or labels.shape != out_shape[:-1]:
        raise ValueError("sparse_categorical_crossentropy: target must have the output's shape without "
                         f"its last axis, got target.shape={labels.shape}, output.shape={out_shape}")
    hot = s.one_hot(labels, out_shape[axis], axis=axis, dtype=_raw(output).dtype)
    return m.negative(r.sum(m.multiply(hot, _log_probabilities(output, from_logits, axis)), axis=axis))


# ---------------------------------------------------------------- normalization, attention


def _broadcast_params(v, ndims, axes, shape):
    if v is None:
        return None
    if np.ndim(_raw(v)) != ndims and axes != [ndims - 1]:
        target = [1] * ndims
        for a in axes:
            target[a] = shape[a]
        return s.reshape(v, target)
    return v


def layer_normalization(x, gamma=None, beta=None, axis=-1, epsilon=None, **kwargs):
    shape = np.shape(_raw(x))
    nd = len(shape)
    axes = sorted(a % nd for a in ([axis] if isinstance(axis, int) else axis))
    eps = _default_epsilon() if epsilon is None else epsilon
    if kwargs.get("rms_scaling"):
        variance = r.var(x, axis=tuple(axes), keepdims=True)
        y = m.multiply(x, m.rsqrt(m.add(variance, eps)))
        g = _broadcast_params(gamma, nd, axes, shape)
        return y if g is None else m.multiply(y, g)
    mean, variance = nn.moments(x, axes=tuple(axes), keepdims=True)
    y = m.multiply(m.subtract(x, mean), m.rsqrt(m.add(variance, eps)))
    g = _broadcast_params(gamma, nd, axes, shape)
    b = _broadcast_params(beta, nd, axes, shape)
    if g is not None:
        y = m.multiply(y, g)
    if b is not None:
        y = m.add(y, b)
    return y


def rms_normalization(x, scale=None, axis=-1, epsilon=None):
    eps = _default_epsilon() if epsilon is None else epsilon
    y = m.multiply(x, m.rsqrt(m.add(r.mean(m.square(x), axis=axis, keepdims=True), eps)))
    return y if scale is None else m.multiply(y, scale)


def dot_product_attention(query, key, value, bias=None, mask=None, scale=None, is_causal=False,
                          flash_attention=None, attn_logits_soft_cap=None):
    """softmax(q k^T * scale + bias, masked) v for (batch, length, heads, head_dim) inputs."""
    head_dim = np.shape(_raw(query))[-1]
    scale = 1.0 / np.sqrt(head_dim) if scale is None else scale
    logits = m.multiply(m.einsum("btnh,bsnh->bnts", query, key), float(scale))
    if attn_logits_soft_cap is not None:
        logits = m.multiply(m.tanh(m.divide(logits, attn_logits_soft_cap)), attn_logits_soft_cap)
    if bias is not None:
        logits = m.add(logits, bias)
    keep = None
    if mask is not None:
        keep = _raw(mask).astype(bool)
    if is_causal:
        t, src = np.shape(_raw(logits))[-2:]
        causal = np.tril(np.ones((t, src), dtype=bool))
        keep = causal if keep is None else (keep & causal)
    if keep is not None:
        lowest = np.finfo(_raw(logits).dtype).min
        logits = s.where(np.broadcast_to(keep, np.shape(_raw(logits))), logits, lowest)
    weights = nn.softmax(logits, axis=-1)
    return m.einsum("bnts,bsnh->btnh", weights, value)


# ---------------------------------------------------------------- more numpy


def ravel(x):
    return s.reshape(x, (-1,))


def unstack(x, num=None, axis=0):
    n = np.shape(_raw(x))[axis]
    return [s.squeeze(piece, axis=axis) for piece in s.split(x, n, axis=axis)]


def roll(x, shift, axis=None):
    size = np.size(_raw(x)) if axis is None else None
    if axis is None:
        flat = ravel(x)
        index = (np.arange(size) - shift) % size
        return s.reshape(s.take(flat, index), np.shape(_raw(x)))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    shifts = (shift,) * len(axes) if isinstance(shift, int) else tuple(shift)
    y = x
    for a, k in zip(axes, shifts):
        n = np.shape(_raw(x))[a]
        y = s.take(y, (np.arange(n) - k) % n, axis=a)
    return y


def diagonal(x, offset=0, axis1=0, axis2=1):
    raw = _raw(x)
    moved = s.moveaxis(x, (axis1, axis2), (-2, -1))
    rows, cols = np.shape(raw)[axis1], np.shape(raw)[axis2]
    i = np.arange(max(0, -offset), min(rows, cols - offset))
    return s.get_item(moved, (Ellipsis, i, i + offset))


@primitive()
def _diag_from_vector(x, k):
    return np.diag(x, k), lambda g, need: (np.diagonal(g, k),)


def diag(x, k=0):
    """A matrix with ``x`` on diagonal ``k`` (1-D input), or diagonal ``k`` of a matrix."""
    if np.ndim(_raw(x)) == 1:
        return _diag_from_vector(x, k)
    return diagonal(x, offset=k)


def trace(x, offset=0, axis1=0, axis2=1):
    return r.sum(diagonal(x, offset, axis1, axis2), axis=-1)


def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0):
    return np.linspace(_raw(start), _raw(stop), num, endpoint=endpoint, retstep=retstep,
                       dtype=standardize_dtype(dtype), axis=axis)


@primitive(arity=2)
def logaddexp(x1, x2):
    y = np.logaddexp(x1, x2)
    return y, lambda g, need: (g * np.exp(x1 - y) if need[0] else None, g * np.exp(x2 - y) if need[1] else None)


@primitive(arity=2)
def arctan2(x1, x2):
    d = x1 * x1 + x2 * x2
    return np.arctan2(x1, x2), lambda g, need: (g * x2 / d if need[0] else None, -g * x1 / d if need[1] else None)


@primitive()
def cbrt(x):
    y = np.cbrt(x)
    return y, lambda g, need: (g / (3 * y * y),)


def divide_no_nan(x1, x2):
    """x1 / x2, and 0 where x2 == 0."""
    zero = _raw(x2) == 0
    safe = s.where(zero, 1.0, x2)
    return s.where(zero, 0.0, m.divide(x1, safe))


def nan_to_num(x, nan=0.0, posinf=None, neginf=None):
    return np.nan_to_num(_raw(x), nan=nan, posinf=posinf, neginf=neginf)


def trunc(x):
    return np.trunc(_raw(x))


def isclose(x1, x2, rtol=1e-05, atol=1e-08, equal_nan=False):
    return np.isclose(_raw(x1), _raw(x2), rtol=rtol, atol=atol, equal_nan=equal_nan)


def allclose(x1, x2, rtol=1e-05, atol=1e-08, equal_nan=False):
    return np.asarray(np.allclose(_raw(x1), _raw(x2), rtol=rtol, atol=atol, equal_nan=equal_nan))


def copy(x):
    return np.array(_raw(x), copy=True)


def array(x, dtype=None):
    return np.array(_raw(x), dtype=None if dtype is None else standardize_dtype(dtype))


def empty(shape, dtype=None):
    return np.empty(shape, dtype=standardize_dtype(dtype))


def meshgrid(*x, indexing="xy"):
    return np.meshgrid(*[_raw(v) for v in x], indexing=indexing)


def nonzero(x):
    return np.nonzero(_raw(x))


def searchsorted(sorted_sequence, values, side="left"):
    return np.searchsorted(_raw(sorted_sequence), _raw(values), side=side).astype(np.int32)


def bincount(x, weights=None, minlength=0, sparse=False):
    raw = _raw(x)
    w = None if weights is None else _raw(weights)
    if raw.ndim == 2:
        return np.stack([np.bincount(row, None if w is None else w[i], minlength) for i, row in enumerate(raw)])
    return np.bincount(raw, w, minlength)


def median(x, axis=None, keepdims=False):
    return np.asarray(np.median(_raw(x), axis=axis, keepdims=keepdims))


def quantile(x, q, axis=None, method="linear", keepdims=False):
    raw = _raw(x)
    result = np.asarray(np.quantile(raw, _raw(q), axis=axis, method=method, keepdims=keepdims))
    return result.astype(raw.dtype if raw.dtype.kind == "f" else floatx())


def select(condlist, choicelist, default=0):
    """The first matching choice per element (differentiable in the choices)."""
    y = default
    for cond, choice in reversed(list(zip(condlist, choicelist))):
        y = s.where(_raw(cond), choice, y)
    return y


def multi_hot(inputs, num_classes=None, axis=-1, dtype=None, sparse=False, **kwargs):
    num_classes = kwargs.pop("num_tokens", num_classes)
    labels = _raw(inputs).astype(np.int64)
    if labels.ndim == 0:
        labels = labels[None]
    hot = s.one_hot(labels, num_classes, axis=-1, dtype=dtype)
    result = np.max(hot, axis=-2) if labels.ndim > 1 else np.max(hot, axis=0)
    return np.moveaxis(result, -1, axis) if axis != -1 else result


def in_top_k(targets, predictions, k):
    preds = _raw(predictions)
    t = _raw(targets).astype(np.int64)
    target_scores = np.take_along_axis(preds, t[:, None], axis=-1)
    return np.sum(preds > target_scores, axis=-1) < k


def segment_sum(data, segment_ids, num_segments=None, sorted=False):
    ids = _raw(segment_ids).astype(np.int64)
    n = int(ids.max()) + 1 if num_segments is None else int(num_segments)
    hot = (ids[None, :] == np.arange(n)[:, None]).astype(_raw(data).dtype)
    return m.tensordot(hot, data, axes=1)


def segment_max(data, segment_ids, num_segments=None, sorted=False):
    raw = _raw(data)
    ids = _raw(segment_ids).astype(np.int64)
    n = int(ids.max()) + 1 if num_segments is None else int(num_segments)
    out = np.full((n,) + raw.shape[1:], -np.inf if raw.dtype.kind == "f" else np.iinfo(raw.dtype).min, raw.dtype)
    np.maximum.at(out, ids, raw)
    return out


def scatter(indices, values, shape):
    out = np.zeros(shape, dtype=_raw(values).dtype)
    idx = _raw(indices)
    np.add.at(out, tuple(np.moveaxis(idx, -1, 0)), _raw(values))
    return out


def scatter_update(inputs, indices, updates, reduction=None):
    out = np.array(_raw(inputs), copy=True)
    idx = tuple(np.moveaxis(_raw(indices), -1, 0))
    if reduction in (None, "none"):
        out[idx] = _raw(updates)
    elif reduction == "add":
        np.add.at(out, idx, _raw(updates))
    else:
        getattr(np, reduction).at(out, idx, _raw(updates))
    return out


def slice_update(inputs, start_indices, updates):
    out = np.array(_raw(inputs), copy=True)
    upd = _raw(updates)
    window = tuple(slice(int(st), int(st) + n) for st, n in zip(start_indices, upd.shape))
    out[window] = upd
    return out


def saturate_cast(x, dtype):
    dtype = np.dtype(standardize_dtype(dtype))
    raw = _raw(x)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        raw = np.clip(raw, info.min, info.max)
    return raw.astype(dtype)


def erfinv(x):
    """Inverse error function by Newton steps on erf (values only)."""
    raw = _raw(x).astype(np.float64)
    y = np.zeros_like(raw)
    inside = np.abs(raw) < 1
    y[~inside] = np.sign(raw[~inside]) * np.inf
    z = raw[inside]
    # Giles' single-precision approximation as the start, then Newton on erf(y) = z
    w = -np.log((1.0 - z) * (1.0 + z))
    guess = np.where(w < 5.0, _giles_small(w - 2.5), _giles_large(np.sqrt(w) - 3.0)) * z
    for _ in range(3):
        err = m.erf_values(guess) - z
        guess = guess - err / (2.0 / np.sqrt(np.pi) * np.exp(-guess * guess))
    y[inside] = guess
    return y.astype(_raw(x).dtype if _raw(x).dtype.kind == "f" else floatx())


def _giles_small(w):
    p = 2.81022636e-08
    for c in (3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087, -0.00125372503,
              -0.00417768164, 0.246640727, 1.50140941):
        p = c + p * w
    return p


def _giles_large(w):
    p = -0.000200214257
    for c in (0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773, -0.0076224613,
              0.00943887047, 1.00167406, 2.83297682):
        p = c + p * w
    return p


# ---------------------------------------------------------------- linear algebra (values)


def inv(x):
    return np.linalg.inv(_raw(x))


def det(x):
    return np.asarray(np.linalg.det(_raw(x)))


def logdet(x):
    return np.asarray(np.linalg.slogdet(_raw(x))[1])


def solve(a, b):
    return np.linalg.solve(_raw(a), _raw(b))


def qr(x, mode="reduced"):
    return np.linalg.qr(_raw(x), mode=mode)


def svd(x, full_matrices=True, compute_uv=True):
    return np.linalg.svd(_raw(x), full_matrices=full_matrices, compute_uv=compute_uv)


def cholesky(x, upper=False):
    low = np.linalg.cholesky(_raw(x))
    return np.swapaxes(low, -1, -2) if upper else low


# ---------------------------------------------------------------- control flow (eager Python)


def cond(pred, true_fn, false_fn):
    return true_fn() if bool(_raw(pred)) else false_fn()


def switch(index, branches, *operands):
    i = int(np.clip(int(_raw(index)), 0, len(branches) - 1))
    return branches[i](*operands)


def fori_loop(lower, upper, body_fun, init_val):
    val = init_val
    for i in range(int(_raw(lower)), int(_raw(upper))):
        val = body_fun(i, val)
    return val


def while_loop(cond, body, loop_vars, maximum_iterations=None):
    is_tuple = isinstance(loop_vars, (list, tuple))
    state = tuple(loop_vars) if is_tuple else (loop_vars,)
    steps = 0
    while (maximum_iterations is None or steps < maximum_iterations) and bool(_raw(cond(*state))):
        state = body(*state)
        state = tuple(state) if isinstance(state, (list, tuple)) else (state,)
        steps += 1
    return state if is_tuple else state[0]


def map(f, xs):
    return s.stack([f(x) for x in xs])


def vectorized_map(function, elements):
    return map(function, elements)


def scan(f, init, xs=None, length=None, reverse=False, unroll=1):
    n = length if xs is None else np.shape(_raw(xs))[0]
    order = range(n - 1, -1, -1) if reverse else range(n)
    carry, outputs = init, []
    for i in order:
        carry, y = f(carry, None if xs is None else xs[i])
        outputs.append(y)
    if reverse:
        outputs.reverse()
    return carry, (s.stack(outputs) if outputs and outputs[0] is not None else None)


def custom_gradient(f):
    """Decorator: ``f(*args)`` returns ``(value, grad_fn)``; under a tape, ``grad_fn(upstream)``
    gives the gradient for each argument (a single value for one argument)."""
    import functools

    from amber.ops.core import _record

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        # f sees plain values: its own ops must not record, the pair (value, grad_fn) is the op
        raws = [unwrap(a) for a in args]
        value, grad_fn = f(*raws, **kwargs)
        value = np.asarray(unwrap(value))

        def backward(g, need):
            grads = grad_fn(g)
            grads = grads if isinstance(grads, (list, tuple)) else (grads,)
            if len(grads) != len(args):
                raise ValueError(f"custom_gradient: {f.__name__} takes {len(args)} arguments but its "
                                 f"gradient function returned {len(grads)} gradients")
            return [None if gr is None else np.asarray(unwrap(gr)) for gr in grads]

        return _record(value, args, backward)

    return wrapper
