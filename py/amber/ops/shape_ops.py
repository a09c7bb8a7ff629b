"""Reshaping, joining, slicing and gathering; backward routes gradients back to the places
the values came from (scatter-add for gathers)."""

import builtins

import numpy as np

from amber.ops.core import from_python, normalize_axis, primitive, record_multi, unwrap
from amber.ops.symbolic import record_or_raise

# this module defines ``slice`` (Keras's op); the built-in stays reachable under this name
_py_slice = builtins.slice


@primitive()
def reshape(x, newshape):
    newshape = (newshape,) if isinstance(newshape, int) else tuple(-1 if d is None else d for d in newshape)
    return np.reshape(x, newshape), lambda g, need: (np.reshape(g, np.shape(x)),)


@primitive()
def transpose(x, axes=None):
    y = np.transpose(x, axes)
    inverse = None if axes is None else tuple(np.argsort([a % np.ndim(x) for a in axes]))
    return y, lambda g, need: (np.transpose(g, inverse),)


@primitive()
def swapaxes(x, axis1, axis2):
    return np.swapaxes(x, axis1, axis2), lambda g, need: (np.swapaxes(g, axis1, axis2),)


@primitive()
def moveaxis(x, source, destination):
    return np.moveaxis(x, source, destination), lambda g, need: (np.moveaxis(g, destination, source),)


@primitive()
def expand_dims(x, axis):
    axis = tuple(axis) if isinstance(axis, list) else axis
    return np.expand_dims(x, axis), lambda g, need: (np.reshape(g, np.shape(x)),)


@primitive()
def squeeze(x, axis=None):
    axis = tuple(axis) if isinstance(axis, list) else axis
    return np.squeeze(x, axis=axis), lambda g, need: (np.reshape(g, np.shape(x)),)


@primitive()
def broadcast_to(x, shape):
    # the gradient walk sums the broadcast axes back down to x's shape
    return np.broadcast_to(x, tuple(shape)), lambda g, need: (g,)


@primitive()
def flip(x, axis=None):
    return np.flip(x, axis), lambda g, need: (np.flip(g, axis),)


@primitive()
def tile(x, repeats):
    x = np.asarray(x)
    reps = (repeats,) if isinstance(repeats, int) else tuple(repeats)
    y = np.tile(x, reps)

    def backward(g, need):
        # np.tile prepends axes to whichever of x and reps is shorter
        nd = max(x.ndim, len(reps))
        full_reps = (1,) * (nd - len(reps)) + reps
        in_shape = (1,) * (nd - x.ndim) + x.shape
        split = []
        for r, n in zip(full_reps, in_shape):
            split += [r, n]
        summed = g.reshape(split).sum(axis=tuple(range(0, 2 * nd, 2)))
        return (summed.reshape(x.shape),)

    return y, backward


@primitive()
def repeat(x, repeats, axis=None):
    x = np.asarray(x)
    y = np.repeat(x, repeats, axis=axis)

    def backward(g, need):
        if axis is None:
            flat_len = x.size
            source = np.repeat(np.arange(flat_len), repeats)
            out = np.zeros(flat_len, dtype=g.dtype)
            np.add.at(out, source, g)
            return (out.reshape(x.shape),)
        ax = axis % x.ndim
        source = np.repeat(np.arange(x.shape[ax]), repeats)
        out = np.zeros(x.shape, dtype=g.dtype)
        index = [_py_slice(None)] * x.ndim
        index[ax] = source
        np.add.at(out, tuple(index), g)
        return (out,)

    return y, backward


@primitive(sequence=True)
def concatenate(xs, axis=0):
    arrays = [np.asarray(x) for x in xs]
    y = np.concatenate(arrays, axis=axis)

    def backward(g, need):
        bounds = np.cumsum([a.shape[axis] for a in arrays])[:-1]
        return np.split(g, bounds, axis=axis)

    return y, backward


@primitive(sequence=True)
def stack(xs, axis=0):
    arrays = [np.asarray(x) for x in xs]
    y = np.stack(arrays, axis=axis)
    return y, lambda g, need: [np.take(g, k, axis=axis) for k in range(len(arrays))]


def hstack(xs):
    return concatenate(xs, axis=1 if np.ndim(unwrap(xs[0])) > 1 else 0)


def vstack(xs):
    return concatenate([reshape(x, (1, -1)) if np.ndim(unwrap(x)) == 1 else x for x in xs], axis=0)


def split(x, indices_or_sections, axis=0):
    """numpy.split; each piece is differentiable on its own."""
    raw = unwrap(x)
    pieces = np.split(raw, indices_or_sections, axis=axis)
    shape = np.shape(raw)
    ax = axis % len(shape)
    starts = np.cumsum([0] + [p.shape[ax] for p in pieces])

    def backward_for(k):
        def backward(g, need):
            out = np.zeros(shape, dtype=g.dtype)
            index = [_py_slice(None)] * len(shape)
            index[ax] = _py_slice(int(starts[k]), int(starts[k + 1]))
            out[tuple(index)] = g
            return (out,)

        return backward

    return record_multi(pieces, (x,), backward_for)


def _scatter_add(shape, dtype, index, g):
    out = np.zeros(shape, dtype=dtype)
    np.add.at(out, index, g)
    return out


def _plain_key(key):
    """Indexing keys with Tensors/Variables inside become numpy keys."""
    if isinstance(key, tuple):
        return tuple(_plain_key(k) for k in key)
    if isinstance(key, (_py_slice, int, type(None), type(Ellipsis))):
        return key
    return np.asarray(unwrap(key))


@primitive()
def get_item(x, key):
    key = _plain_key(key)
    y = x[key]
    if type(y) is not np.ndarray:
        y = np.asarray(y)
    return y, lambda g, need: (_scatter_add(np.shape(x), g.dtype, key, g),)


def slice(x, start_indices, shape):
    """Keras's ops.slice: a static window starting at ``start_indices`` of size ``shape``."""
    key = tuple(_py_slice(int(s), int(s) + int(n)) for s, n in zip(start_indices, shape))
    return get_item(x, key)


@primitive()
def take(x, indices, axis=None):
    idx = np.asarray(unwrap(indices))
    if axis is None:
        flat = np.reshape(x, -1)
        idx = np.where(idx < 0, idx + flat.size, idx)
        y = np.take(flat, idx)
        return y, lambda g, need: (_scatter_add(flat.shape, g.dtype, idx, g).reshape(np.shape(x)),)
    ax = axis % np.ndim(x)
    idx = np.where(idx < 0, idx + np.shape(x)[ax], idx)
    y = np.take(x, idx, axis=ax)

    def backward(g, need):
        # move the gathered axes to the front so add.at can scatter along one axis
        moved = np.moveaxis(np.zeros(np.shape(x), dtype=g.dtype), ax, 0)
        g_moved = np.moveaxis(g, tuple(range(ax, ax + idx.ndim)), tuple(range(idx.ndim)))
        np.add.at(moved, idx, g_moved)
        return (np.moveaxis(moved, 0, ax),)

    return y, backward


@primitive()
def take_along_axis(x, indices, axis=None):
    idx = np.asarray(unwrap(indices))
    if axis is None:
        flat = np.reshape(x, -1)
        y = np.take_along_axis(flat, idx.reshape(-1), axis=0)
        return y, lambda g, need: (_scatter_add(flat.shape, g.dtype, idx.reshape(-1), g).reshape(np.shape(x)),)
    ax = axis % np.ndim(x)
    y = np.take_along_axis(x, idx, axis=ax)

    def backward(g, need):
        shape = np.broadcast_shapes(
            tuple(n if k != ax else 1 for k, n in enumerate(np.shape(x))),
            tuple(n if k != ax else 1 for k, n in enumerate(idx.shape)),
        )
        full_idx = np.broadcast_to(idx, shape[:ax] + (idx.shape[ax],) + shape[ax + 1:])
        grid = list(np.ix_(*[np.arange(n) for n in full_idx.shape]))
        grid[ax] = full_idx
        grid = [np.broadcast_to(gi, full_idx.shape) for gi in grid]
        return (_scatter_add(np.shape(x), g.dtype, tuple(grid), np.broadcast_to(g, full_idx.shape)),)

    return y, backward


@primitive()
def pad(x, pad_width, mode="constant", constant_values=None):
    widths = np.broadcast_to(np.asarray(pad_width, dtype=np.int64).reshape(-1, 2)
                             if np.ndim(pad_width) else np.asarray([[pad_width, pad_width]]),
                             (np.ndim(x), 2))
    kwargs = {}
    if mode == "constant" and constant_values is not None:
        kwargs["constant_values"] = constant_values
    y = np.pad(x, [tuple(w) for w in widths.tolist()], mode=mode, **kwargs)

    def backward(g, need):
        if mode != "constant":
            raise NotImplementedError(f"pad gradient is implemented for mode='constant', not {mode!r}")
        window = tuple(_py_slice(int(lo), int(lo) + n) for (lo, _), n in zip(widths, np.shape(x)))
        return (g[window],)

    return y, backward


@primitive()
def sort(x, axis=-1):
    order = np.argsort(x, axis=axis, kind="stable")
    y = np.take_along_axis(x, order, axis=axis)

    def backward(g, need):
        out = np.zeros(np.shape(x), dtype=g.dtype)
        np.put_along_axis(out, order, g, axis=axis)
        return (out,)

    return y, backward


def top_k(x, k, sorted=True):
    """The ``k`` largest values along the last axis (differentiable) and their indices."""
    raw = np.asarray(unwrap(x))
    order = np.argsort(-raw, axis=-1, kind="stable")[..., :k]
    return take_along_axis(x, order, axis=-1), order


def where(condition, x1=None, x2=None):
    try:
        cond = np.asarray(unwrap(condition))
        if x1 is None and x2 is None:
            return np.nonzero(cond)
        if x1 is None or x2 is None:
            raise ValueError("where: give both x1 and x2, or neither")
        return _select(x1, x2, cond)
    except TypeError:
        return record_or_raise("where", condition, x1, x2)


# A symbolic x1/x2 reaches `where`'s handler, which records the graph operation with Keras's
# argument order.
@primitive(arity=2, name="where", symbolic=False)
def _select(x1, x2, cond):
    cond = cond.astype(bool)
    return np.where(cond, x1, x2), lambda g, need: (
        np.where(cond, g, 0) if need[0] else None,
        np.where(cond, 0, g) if need[1] else None,
    )


def shape(x):
    return tuple(np.shape(unwrap(x)))


def ndim(x):
    return np.ndim(unwrap(x))


def size(x):
    return int(np.size(unwrap(x)))


def one_hot(x, num_classes, axis=-1, dtype=None, sparse=False):
    """Class indices to one-hot vectors; negative or out-of-range indices give all zeros."""
    from amber.backend.config import standardize_dtype

    idx = np.asarray(unwrap(x)).astype(np.int64)
    hot = (idx[..., None] == np.arange(num_classes)).astype(standardize_dtype(dtype))
    if axis != -1:
        hot = np.moveaxis(hot, -1, axis)
    return hot


def zeros(shape, dtype=None):
    from amber.backend.config import standardize_dtype

    return np.zeros(shape, dtype=standardize_dtype(dtype))


def ones(shape, dtype=None):
    from amber.backend.config import standardize_dtype

    return np.ones(shape, dtype=standardize_dtype(dtype))


def full(shape, fill_value, dtype=None):
    value = from_python(unwrap(fill_value), dtype)
    return np.full(shape, value, dtype=value.dtype)


def zeros_like(x, dtype=None):
    try:
        return np.zeros_like(unwrap(x), dtype=dtype)
    except TypeError:
        return record_or_raise("zeros_like", x, dtype=dtype)


def ones_like(x, dtype=None):
    try:
        return np.ones_like(unwrap(x), dtype=dtype)
    except TypeError:
        return record_or_raise("ones_like", x, dtype=dtype)


def full_like(x, fill_value, dtype=None):
    return np.full_like(unwrap(x), unwrap(fill_value), dtype=dtype)


def arange(start, stop=None, step=None, dtype=None):
    if step is None:
        step = 1
    if dtype is None:
        is_float = any(isinstance(v, float) for v in (start, stop, step))
        from amber.backend.config import floatx

        dtype = floatx() if is_float else "int32"
    if stop is None:
        return np.arange(start, step=step, dtype=dtype)
    return np.arange(start, stop, step, dtype=dtype)


def eye(N, M=None, k=0, dtype=None):
    from amber.backend.config import standardize_dtype

    return np.eye(N, M, k, dtype=standardize_dtype(dtype))


def identity(n, dtype=None):
    return eye(n, dtype=dtype)


def tril(x, k=0):
    mask = np.tri(*np.shape(unwrap(x))[-2:], k=k, dtype=bool)
    return _select(x, 0.0, np.broadcast_to(mask, np.shape(unwrap(x))))


def triu(x, k=0):
    mask = ~np.tri(*np.shape(unwrap(x))[-2:], k=k - 1, dtype=bool)
    return _select(x, 0.0, np.broadcast_to(mask, np.shape(unwrap(x))))


_ = normalize_axis
