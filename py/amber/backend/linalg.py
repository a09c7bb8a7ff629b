"""The one call site for matrix products. ``ops.matmul`` and the Dense layer come here, so
switching from numpy to amber's Rust kernels happens in this file only."""

import numpy as np

try:
    from amber import _native
except ImportError:  # pragma: no cover - the extension is part of the wheel
    _native = None

from amber.backend import blas
from amber.backend.logistic import stable_sigmoid

# direct handles: this runs for every product, a context manager would cost more than it saves
_blas_set, _blas_get = blas._set_threads, blas._get_threads
_blas_guard = _blas_set

_KERNEL_DTYPES = (np.dtype("float32"), np.dtype("float64"))
_native_matmul = getattr(_native, "matmul", None)
_native_dense = getattr(_native, "dense", None)
# Below this many multiply-adds numpy's call overhead is already smaller than a handoff.
_NATIVE_MIN_FLOPS = 1 << 15


def _kernel_fits(a, b):
    return (
        a.ndim == 2 and b.ndim == 2 and a.dtype == b.dtype and a.dtype in _KERNEL_DTYPES
        and a.shape[1] == b.shape[0] and a.shape[0] * a.shape[1] * b.shape[1] >= _NATIVE_MIN_FLOPS
    )


# Products below this many multiply-adds run on one BLAS thread (see ``blas``).
_SINGLE_THREAD_MAX_FLOPS = 1 << 22


def matmul(a, b):
    """``a @ b`` with numpy's semantics (batched, broadcast, 1-D promotion)."""
    if _native_matmul is not None and _kernel_fits(a, b):
        return _native_matmul(a, b)
    if _blas_guard is not None and a.ndim >= 2 and b.ndim >= 2:
        flops = a.size * b.shape[-1]  # m * k * n (times the batch of a)
        if flops < _SINGLE_THREAD_MAX_FLOPS:
            previous = _blas_get()
            if previous > 1:
                _blas_set(1)
                try:
                    return np.matmul(a, b)
                finally:
                    _blas_set(previous)
    return np.matmul(a, b)


_ACTIVATIONS = {
    "linear": lambda y: y,
    "relu": lambda y: np.maximum(y, 0, out=y),
    "relu6": lambda y: np.clip(y, 0, 6, out=y),
    "sigmoid": stable_sigmoid,
    "tanh": lambda y: np.tanh(y, out=y),
    "silu": lambda y: np.multiply(y, stable_sigmoid(y), out=y),
}


def dense(x, w, b=None, activation="linear", scale=None):
    """``activation(x @ w * scale + b)`` for a 2-D (or batched) ``x``; ``scale`` and ``b``
    are per-column vectors or None; ``activation`` is one of linear, relu, relu6, sigmoid,
    tanh, silu (others are applied by the caller)."""
    if activation not in _ACTIVATIONS:
        raise ValueError(f"dense: unsupported fused activation {activation!r}")
    if (_native_dense is not None and _kernel_fits(x, w)
            and all(v is None or (v.dtype == x.dtype and v.shape == (w.shape[1],)) for v in (b, scale))):
        if scale is None:
            return _native_dense(x, w, b, activation)
        return _native_dense(x, w, b, activation, None, scale)
    y = matmul(x, w)
    if scale is not None:
        y = y * scale
    if b is not None:
        y = y + b
    if not y.flags.writeable or y is x:
        y = np.array(y)
    return _ACTIVATIONS[activation](y)
