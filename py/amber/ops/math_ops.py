"""Arithmetic, matrix products and elementwise math, each with its backward beside it."""

import math

import numpy as np

from amber.backend import blas, linalg
from amber.backend.config import division_dtype
from amber.ops.core import primitive, unwrap

# ---------------------------------------------------------------- arithmetic


@primitive(arity=2)
def add(x1, x2):
    return np.add(x1, x2), lambda g, need: (g, g)


@primitive(arity=2)
def subtract(x1, x2):
    return np.subtract(x1, x2), lambda g, need: (g, -g if need[1] else None)


@primitive(arity=2)
def multiply(x1, x2):
    return np.multiply(x1, x2), lambda g, need: (
        g * x2 if need[0] else None,
        g * x1 if need[1] else None,
    )


_FLOAT32, _FLOAT16 = np.dtype("float32"), np.dtype("float16")


def _division_operands(x1, x2):
    """``x1, x2`` cast to Keras's division dtype (`config.division_dtype`: integers give
    floatx where numpy would give float64; Python ints and floats are weak types). Operands
    numpy already divides as Keras does (float32 or float16 against the same dtype or a Python
    scalar, the common case) pass through untouched."""
    if type(x1) is np.ndarray and (x1.dtype == _FLOAT32 or x1.dtype == _FLOAT16):
        t2 = type(x2)
        if t2 is float or t2 is int or t2 is np.ndarray and x2.dtype == x1.dtype:
            return x1, x2
    dtype = division_dtype(None if isinstance(x1, (int, float)) else x1.dtype,
                           None if isinstance(x2, (int, float)) else x2.dtype)
    return np.asarray(x1, dtype), np.asarray(x2, dtype)


def _quotient(x1, x2):
    y = np.true_divide(x1, x2)
    return y, lambda g, need: (
        g / x2 if need[0] else None,
        -g * y / x2 if need[1] else None,
    )


@primitive(arity=2)
def divide(x1, x2):
    return _quotient(*_division_operands(x1, x2))


@primitive(arity=2)
def true_divide(x1, x2):
    """`divide` under Keras's other name; on symbolic tensors it records TrueDivide."""
    return _quotient(*_division_operands(x1, x2))


@primitive(arity=2)
def power(x1, x2):
    y = np.power(x1, x2)

    def backward(g, need):
        g1 = g2 = None
        if need[0]:
            g1 = g * x2 * np.power(x1, np.subtract(x2, 1))
        if need[1]:
            # d/dx2 x1**x2 = y log(x1); defined as 0 where x1 == 0 (the limit for x2 > 0)
            safe = np.where(x1 > 0, x1, 1)
            g2 = g * y * np.log(safe)
        return g1, g2

    return y, backward


@primitive()
def negative(x):
    return np.negative(x), lambda g, need: (-g,)


@primitive(arity=2)
def mod(x1, x2):
    # x1 mod x2 = x1 - floor(x1 / x2) * x2, piecewise linear in both arguments
    return np.mod(x1, x2), lambda g, need: (
        g if need[0] else None,
        -g * np.floor_divide(x1, x2) if need[1] else None,
    )


def floor_divide(x1, x2):
    """Piecewise constant, so not differentiable: always a plain array."""
    return np.floor_divide(unwrap(x1), unwrap(x2))


# ---------------------------------------------------------------- matrix products


def _as_matrix_grads(g, a, b, need):
    """Gradients of numpy matmul, including its 1-D promotion rules."""
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    g2 = g
    # restore the axes numpy dropped: b's column axis first, then a's row axis
    if b.ndim == 1:
        g2 = np.expand_dims(g2, -1)
    if a.ndim == 1:
        g2 = np.expand_dims(g2, -2)
    ga = gb = None
    if need[0]:
        ga = linalg.matmul(g2, np.swapaxes(b2, -1, -2))
        if a.ndim == 1:
            ga = ga.reshape(ga.shape[:-2] + ga.shape[-1:]) if ga.ndim > 2 else ga.reshape(-1)
    if need[1]:
        gb = linalg.matmul(np.swapaxes(a2, -1, -2), g2)
        if b.ndim == 1:
            gb = gb[..., 0]
    return ga, gb


@primitive(arity=2)
def matmul(x1, x2):
    a = np.asarray(x1)
    b = np.asarray(x2)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: operands must be at least 1-D, got shapes {a.shape} and {b.shape}")
    return linalg.matmul(a, b), lambda g, need: _as_matrix_grads(g, a, b, need)


# einsum: subscripts are expanded to explicit single letters (ellipses included) so the
# backward of operand i is itself an einsum: the output gradient contracted with the other
# operands, summed over the letters only operand i has, then broadcast back.


def _parse_einsum(subscripts, shapes):
    spec = subscripts.replace(" ", "")
    if "->" in spec:
        lhs, out = spec.split("->")
    else:
        lhs, out = spec, None
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise ValueError(f"einsum: {subscripts!r} names {len(terms)} operands, got {len(shapes)}")
    used = set(c for c in spec if c.isalpha())
    spare = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" if c not in used]
    ell_dims = [len(shape) - len(t.replace("...", "")) for t, shape in zip(terms, shapes)]
    n_ell = max([d for d, t in zip(ell_dims, terms) if "..." in t], default=0)
    ell = "".join(spare[:n_ell])
    expanded = [t.replace("...", ell[n_ell - d:] if d else "") for t, d in zip(terms, ell_dims)]
    if out is None:
        counts = {}
        for t in expanded:
            for c in t:
                counts[c] = counts.get(c, 0) + 1
        out = ell + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in ell))
    else:
        out = out.replace("...", ell)
    return expanded, out


# Contractions below this many multiply-adds run on one BLAS thread (see backend.blas).
_EINSUM_SINGLE_THREAD_MAX_FLOPS = 1 << 24


def _contract(subscripts, *arrays, **kwargs):
    """np.einsum with a contraction order (greedy: pairwise products go to BLAS instead of
    numpy's nested loops; 10-30x faster for attention-shaped products) and, for small
    contractions, one BLAS thread."""
    kwargs.setdefault("optimize", "greedy")
    terms, out = _parse_einsum(subscripts, [a.shape for a in arrays])
    sizes = {}
    for term, a in zip(terms, arrays):
        for c, n in zip(term, a.shape):
            sizes[c] = max(sizes.get(c, 1), n)
    flops = 1
    for n in sizes.values():
        flops *= n
    if flops < _EINSUM_SINGLE_THREAD_MAX_FLOPS:
        with blas.single_threaded():
            return np.einsum(subscripts, *arrays, **kwargs)
    return np.einsum(subscripts, *arrays, **kwargs)


def einsum(subscripts, *operands, **kwargs):
    return _einsum(list(operands), subscripts, **kwargs)


@primitive(sequence=True, name="einsum")
def _einsum(raws, subscripts, **kwargs):
    arrays = [np.asarray(r) for r in raws]
    y = _contract(subscripts, *arrays, **kwargs)

    def backward(g, need):
        terms, out = _parse_einsum(subscripts, [a.shape for a in arrays])
        grads = []
        for i, (term, a) in enumerate(zip(terms, arrays)):
            if not need[i]:
                grads.append(None)
                continue
            if len(set(term)) != len(term):
                raise NotImplementedError(
                    f"einsum gradient: operand {i} repeats an index in {subscripts!r}")
            sizes = {}
            for t, arr in zip(terms, arrays):
                for c, n in zip(t, arr.shape):
                    sizes[c] = max(sizes.get(c, 1), n)
            # letters operand i broadcasts (size 1 where others have more) are summed out
            own = "".join(c if a.shape[k] == sizes[c] else "_" for k, c in enumerate(term))
            others = [(t, arr) for j, (t, arr) in enumerate(zip(terms, arrays)) if j != i]
            present = set(out).union(*[set(t) for t, _ in others])
            keep = "".join(c for c in own if c != "_" and c in present)
            expr = ",".join([out] + [t for t, _ in others]) + "->" + keep
            partial = _contract(expr, g, *[arr for _, arr in others])
            # re-insert the summed-out letters as length-1 axes, then broadcast
            shape = [a.shape[k] if c in keep else 1 for k, c in enumerate(own)]
            grads.append(np.broadcast_to(partial.reshape(shape), a.shape))
        return grads

    return y, backward


def tensordot(x1, x2, axes=2):
    """numpy.tensordot, expressed as an einsum (which carries the gradient)."""
    a_nd = np.ndim(unwrap(x1))
    b_nd = np.ndim(unwrap(x2))
    if isinstance(axes, int):
        a_axes = list(range(a_nd - axes, a_nd))
        b_axes = list(range(axes))
    else:
        a_axes, b_axes = axes
        a_axes = [a_axes] if isinstance(a_axes, int) else list(a_axes)
        b_axes = [b_axes] if isinstance(b_axes, int) else list(b_axes)
    a_axes = [ax % a_nd for ax in a_axes]
    b_axes = [ax % b_nd for ax in b_axes]
    letters = iter("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    a_sub = [next(letters) for _ in range(a_nd)]
    b_sub = [next(letters) for _ in range(b_nd)]
    for ia, ib in zip(a_axes, b_axes):
        b_sub[ib] = a_sub[ia]
    out = [c for k, c in enumerate(a_sub) if k not in a_axes]
    out += [c for k, c in enumerate(b_sub) if k not in b_axes]
    return einsum(f"{''.join(a_sub)},{''.join(b_sub)}->{''.join(out)}", x1, x2)


def dot(x1, x2):
    """numpy.dot: a product over the last axis of x1 and the second-to-last of x2."""
    a_nd = np.ndim(unwrap(x1))
    b_nd = np.ndim(unwrap(x2))
    if a_nd == 0 or b_nd == 0:
        return multiply(x1, x2)
    if a_nd <= 2 and b_nd <= 2:
        return matmul(x1, x2)
    return tensordot(x1, x2, axes=([a_nd - 1], [max(b_nd - 2, 0)]))


def _flat(x, shape=(-1,)):
    from amber.ops.shape_ops import reshape

    return reshape(x, shape)


def vdot(x1, x2):
    """Dot product of the flattened inputs."""
    from amber.ops.reductions import sum as reduce_sum

    return reduce_sum(multiply(_flat(x1), _flat(x2)))


def inner(x1, x2):
    """Product summed over the last axis of both inputs (a plain product for scalars)."""
    if np.ndim(unwrap(x1)) == 0 or np.ndim(unwrap(x2)) == 0:
        return multiply(x1, x2)
    return tensordot(x1, x2, axes=([-1], [-1]))


def outer(x1, x2):
    return multiply(_flat(x1, (-1, 1)), _flat(x2))


# ---------------------------------------------------------------- elementwise math


@primitive()
def exp(x):
    y = np.exp(x)
    return y, lambda g, need: (g * y,)


@primitive()
def expm1(x):
    y = np.expm1(x)
    return y, lambda g, need: (g * (y + 1),)


@primitive()
def log(x):
    return np.log(x), lambda g, need: (g / x,)


@primitive()
def log1p(x):
    return np.log1p(x), lambda g, need: (g / (1 + x),)


@primitive()
def log2(x):
    return np.log2(x), lambda g, need: (g / (x * np.log(2).astype(x.dtype)),)


@primitive()
def log10(x):
    return np.log10(x), lambda g, need: (g / (x * np.log(10).astype(x.dtype)),)


@primitive()
def sqrt(x):
    y = np.sqrt(x)
    return y, lambda g, need: (g * 0.5 / y,)


@primitive()
def rsqrt(x):
    y = 1 / np.sqrt(x)
    return y, lambda g, need: (g * -0.5 * y / x,)


@primitive()
def square(x):
    return np.square(x), lambda g, need: (g * 2 * x,)


@primitive()
def abs(x):
    return np.abs(x), lambda g, need: (g * np.sign(x),)


absolute = abs


@primitive()
def reciprocal(x):
    y = np.reciprocal(x)
    return y, lambda g, need: (-g * y * y,)


def sign(x):
    """Piecewise constant: a plain array."""
    return np.sign(unwrap(x))


def floor(x):
    return np.floor(unwrap(x))


def ceil(x):
    return np.ceil(unwrap(x))


def round(x, decimals=0):
    return np.round(unwrap(x), decimals)


@primitive()
def tanh(x):
    y = np.tanh(x)
    return y, lambda g, need: (g * (1 - y * y),)


@primitive()
def sinh(x):
    return np.sinh(x), lambda g, need: (g * np.cosh(x),)


@primitive()
def cosh(x):
    return np.cosh(x), lambda g, need: (g * np.sinh(x),)


@primitive()
def sin(x):
    return np.sin(x), lambda g, need: (g * np.cos(x),)


@primitive()
def cos(x):
    return np.cos(x), lambda g, need: (-g * np.sin(x),)


@primitive()
def tan(x):
    y = np.tan(x)
    return y, lambda g, need: (g * (1 + y * y),)


@primitive()
def arctan(x):
    return np.arctan(x), lambda g, need: (g / (1 + x * x),)


@primitive()
def arcsin(x):
    return np.arcsin(x), lambda g, need: (g / np.sqrt(1 - x * x),)


@primitive()
def arccos(x):
    return np.arccos(x), lambda g, need: (-g / np.sqrt(1 - x * x),)


_vector_erf = np.vectorize(math.erf, otypes=[np.float64])


def erf_values(x):
    """erf for numpy arrays. float64 uses the C library's erf per element (exact); smaller
    floats use Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7, under float32's
    resolution) evaluated in float64, which is vectorized and fast."""
    x = np.asarray(x)
    if x.dtype == np.float64 or not np.issubdtype(x.dtype, np.floating):
        return _vector_erf(x) if x.size else np.zeros(x.shape)
    z = np.abs(x.astype(np.float64))
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    y = 1.0 - poly * np.exp(-z * z)
    return (np.sign(x) * y).astype(x.dtype)


@primitive()
def erf(x):
    y = erf_values(x)
    scale = 2.0 / math.sqrt(math.pi)
    return y, lambda g, need: (g * (scale * np.exp(-x * x)).astype(y.dtype),)
