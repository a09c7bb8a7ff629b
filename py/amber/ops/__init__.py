"""amber.ops: mirrors keras.ops.

numpy semantics and broadcasting; arguments may be numpy arrays, Python scalars, Variables
or Tensors. Results are plain numpy arrays, except while a ``GradientTape`` records and an
input is watched: then differentiable ops return ``Tensor``s that remember how to send
gradients back.
"""

import numpy as np

from amber.backend.autodiff import Tensor
from amber.backend.config import standardize_dtype
from amber.backend.operand import Operand
from amber.ops.core import REGISTRY, from_python, primitive, unwrap
from amber.ops.symbolic import record_or_raise
from amber.ops.conv import (  # noqa: F401
    average_pool, conv, conv_transpose, depthwise_conv, max_pool, separable_conv,
)
from amber.ops.extra import (  # noqa: F401
    allclose, arctan2, array, bincount, binary_crossentropy, categorical_crossentropy, cbrt,
    cholesky, cond, copy, custom_gradient, det, diag, diagonal, divide_no_nan, dot_product_attention, empty,
    erfinv, fori_loop, in_top_k, inv, isclose, layer_normalization, linspace, logaddexp, logdet,
    map, median, meshgrid, multi_hot, nan_to_num, nonzero, qr, quantile, ravel, rms_normalization,
    roll, saturate_cast, scan, scatter, scatter_update, searchsorted, segment_max, segment_sum,
    select, slice_update, solve, sparse_categorical_crossentropy, svd, switch, trace, trunc,
    unstack, vectorized_map, while_loop,
)
from amber.ops.math_ops import (  # noqa: F401
    abs, absolute, add, arccos, arcsin, arctan, ceil, cos, cosh, divide, dot, einsum, erf,
    exp, expm1, floor, floor_divide, inner, log, log1p, log2, log10, matmul, mod, multiply,
    negative, outer, power, reciprocal, round, rsqrt, sign, sin, sinh, sqrt, square, subtract,
    tan, tanh, tensordot, true_divide, vdot,
)
from amber.ops.nn import (  # noqa: F401
    batch_normalization, celu, clip, dropout, elu, gelu, glu, hard_shrink, hard_sigmoid,
    hard_silu, hard_swish, hard_tanh, leaky_relu, log_sigmoid, log_softmax, maximum, minimum,
    mish, moments, normalize, relu, relu6, selu, sigmoid, silu, soft_shrink, softmax,
    softplus, softsign, sparse_plus, sparse_sigmoid, sparsemax, squareplus, swish, tanh_shrink,
    threshold,
)
from amber.ops.reductions import (  # noqa: F401
    all, amax, amin, any, argmax, argmin, argsort, average, count_nonzero, cumprod, cumsum,
    logsumexp, max, mean, min, norm, prod, std, sum, var,
)
from amber.ops.shape_ops import (  # noqa: F401
    arange, broadcast_to, concatenate, expand_dims, eye, flip, full, full_like, get_item,
    hstack, identity, moveaxis, ndim, one_hot, ones, ones_like, pad, repeat, reshape, shape,
    size, slice, sort, split, squeeze, stack, swapaxes, take, take_along_axis, tile, top_k,
    transpose, tril, triu, vstack, where, zeros, zeros_like,
)

# ---------------------------------------------------------------- comparisons and logic
# Boolean results carry no gradient: these return plain arrays. On symbolic tensors (while a
# model is built) the ops that have a graph operation record it instead (ops.symbolic).


def equal(x1, x2):
    try:
        return np.equal(unwrap(x1), unwrap(x2))
    except TypeError:
        return record_or_raise("equal", x1, x2)


def not_equal(x1, x2):
    try:
        return np.not_equal(unwrap(x1), unwrap(x2))
    except TypeError:
        return record_or_raise("not_equal", x1, x2)


def greater(x1, x2):
    try:
        return np.greater(unwrap(x1), unwrap(x2))
    except TypeError:
        return record_or_raise("greater", x1, x2)


def greater_equal(x1, x2):
    try:
        return np.greater_equal(unwrap(x1), unwrap(x2))
    except TypeError:
        return record_or_raise("greater_equal", x1, x2)


def less(x1, x2):
    try:
        return np.less(unwrap(x1), unwrap(x2))
    except TypeError:
        return record_or_raise("less", x1, x2)


def less_equal(x1, x2):
    try:
        return np.less_equal(unwrap(x1), unwrap(x2))
    except TypeError:
        return record_or_raise("less_equal", x1, x2)


def logical_and(x1, x2):
    try:
        return np.logical_and(unwrap(x1), unwrap(x2))
    except TypeError:
        return record_or_raise("logical_and", x1, x2)


def logical_or(x1, x2):
    try:
        return np.logical_or(unwrap(x1), unwrap(x2))
    except TypeError:
        return record_or_raise("logical_or", x1, x2)


def logical_xor(x1, x2):
    try:
        return np.logical_xor(unwrap(x1), unwrap(x2))
    except TypeError:
        return record_or_raise("logical_xor", x1, x2)


def logical_not(x):
    try:
        return np.logical_not(unwrap(x))
    except TypeError:
        return record_or_raise("logical_not", x)


def isnan(x):
    return np.isnan(unwrap(x))


def isinf(x):
    return np.isinf(unwrap(x))


def isfinite(x):
    return np.isfinite(unwrap(x))


# ---------------------------------------------------------------- conversion


@primitive(name="cast")
def _cast_float(x, dtype):
    return x.astype(dtype), lambda g, need: (g.astype(x.dtype),)


def cast(x, dtype):
    """Convert to ``dtype``; float-to-float casts pass gradients through, others cut them."""
    dtype = standardize_dtype(dtype)
    try:
        raw = unwrap(x)
    except TypeError:
        return record_or_raise("cast", x, dtype)
    if isinstance(raw, np.ndarray) and np.issubdtype(raw.dtype, np.floating) \
            and np.issubdtype(np.dtype(dtype), np.floating):
        if raw.dtype == dtype and type(x) is np.ndarray:
            return x
        return _cast_float(x, dtype)
    return np.asarray(raw).astype(dtype)


def convert_to_tensor(x, dtype=None, sparse=None, ragged=None):
    """The value as a numpy array (Tensors stay Tensors so recorded graphs keep flowing);
    Python floats become floatx."""
    if type(x) is Tensor:
        return x if dtype is None else cast(x, dtype)
    if isinstance(x, Operand):
        value = x.numpy()
        return value if dtype is None else value.astype(standardize_dtype(dtype))
    if isinstance(x, np.ndarray):
        return x if dtype is None else x.astype(standardize_dtype(dtype), copy=False)
    try:
        return from_python(x, dtype)
    except TypeError:
        return record_or_raise("convert_to_tensor", x, dtype=dtype, sparse=sparse, ragged=ragged)


def convert_to_numpy(x):
    if isinstance(x, Operand):
        return x.numpy()
    return np.asarray(x)


def stop_gradient(x):
    """The value with its recorded history dropped: no gradient flows through it."""
    return unwrap(x) if isinstance(x, Operand) else x


def dtype(x):
    return standardize_dtype(np.asarray(unwrap(x)).dtype)


def is_tensor(x):
    return isinstance(x, (np.ndarray, Operand))


# numpy ufuncs called on Variables/Tensors (``np.exp(v)``, ``ndarray + tensor``) dispatch here.
_UFUNC_OPS = {
    "add": add, "subtract": subtract, "multiply": multiply, "divide": divide,
    "true_divide": divide, "power": power, "negative": negative, "matmul": matmul,
    "exp": exp, "log": log, "log1p": log1p, "sqrt": sqrt, "square": square, "absolute": abs,
    "tanh": tanh, "sin": sin, "cos": cos, "maximum": maximum, "minimum": minimum,
    "equal": equal, "not_equal": not_equal, "greater": greater, "greater_equal": greater_equal,
    "less": less, "less_equal": less_equal, "floor_divide": floor_divide, "remainder": mod,
    "logical_and": logical_and, "logical_or": logical_or, "logical_not": logical_not,
}

__all__ = sorted(
    name for name, value in globals().items()
    if not name.startswith("_") and callable(value) and not isinstance(value, type)
    and name not in ("primitive", "unwrap", "from_python", "record_or_raise")
)
