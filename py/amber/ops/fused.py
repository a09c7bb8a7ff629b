"""Fused primitives for the training hot path: one recorded node (one backward closure, no
intermediate Tensors) where the plain ops would record several.

Each computes what its chain of plain ops computes, rounding for rounding in float32, so
switching a caller to it changes speed, not results: the forward values and the gradients
are those the chain's backward closures would have produced (the tests compare the two).
They are internal building blocks of Dense and the crossentropy loss, not Keras ops, so they
are not in the ``ops`` namespace or its registry.
"""

import numpy as np

from amber import _native
from amber.backend import autodiff, linalg
from amber.backend.autodiff import Tensor, differentiable_input
from amber.ops.core import _record, unwrap

_recording = autodiff._recording

# Activations whose derivative the fused Dense backward computes from the output alone.
DENSE_ACTIVATIONS = ("linear", "relu")


def dense(x, kernel, bias, activation):
    """``activation(x @ kernel + bias)`` for a 2-D ``x``: the forward is one call to the fused
    kernel (``backend.linalg.dense``); ``bias`` may be None; ``activation`` is one of
    ``DENSE_ACTIVATIONS``.

    Same values as ``relu(add(matmul(x, kernel), bias))``: the kernel rounds the product to
    float32 and then adds the bias, as the two ops do, and relu's derivative ``z > 0`` equals
    ``y > 0`` for ``y = max(z, 0)``, so the backward needs only the output."""
    x_value = unwrap(x)
    kernel_value = unwrap(kernel)
    bias_value = None if bias is None else unwrap(bias)
    y = linalg.dense(x_value, kernel_value, bias_value, activation)
    if not _recording:
        return y
    relu = activation == "relu"

    def backward(g, need):
        dz = np.multiply(g, y > 0) if relu else g
        gx = linalg.matmul(dz, kernel_value.T) if need[0] else None
        gk = linalg.matmul(x_value.T, dz) if need[1] else None
        # add.reduce is what ndarray.sum runs, without the Python wrapper around it
        gb = np.add.reduce(dz, axis=0) if len(need) > 2 and need[2] else None
        return gx, gk, gb

    return _record(y, (x, kernel) if bias is None else (x, kernel, bias), backward)


def sparse_softmax_crossentropy(logits, labels):
    """Per-sample ``-log softmax(logits)[label]`` over the last axis; ``labels`` is an int
    array of ``logits.shape[:-1]`` already checked to be in range.

    The value of the chain ``-sum(one_hot * (shifted - log(sum(exp(shifted)))))`` with
    ``shifted = logits - max(logits)``, and its gradient ``g * softmax`` minus ``g`` at the
    label, as one recorded node (float32 in one native pass each way)."""
    z = unwrap(logits)
    classes = z.shape[-1]
    # Rows of classes; the label's entry of each row is picked by (row, label) indexing.
    rows2d = z.reshape(-1, classes)
    columns = labels.reshape(-1)
    losses, saved = sparse_softmax_crossentropy_rows(rows2d, columns)
    losses = losses.reshape(labels.shape)
    if not _recording:
        return losses

    def backward(g, need):
        grad = sparse_softmax_crossentropy_rows_grad(np.reshape(g, -1), saved, columns)
        return (grad.reshape(z.shape),)

    return _record(losses, (logits,), backward)


_native_xent = getattr(_native, "sparse_softmax_crossentropy", None)
_native_xent_grad = getattr(_native, "sparse_softmax_crossentropy_backward", None)


def sparse_softmax_crossentropy_rows(rows2d, columns):
    """The forward of ``sparse_softmax_crossentropy`` on a ``(rows, classes)`` array and one
    label per row, unrecorded: ``(losses, saved)``, ``saved`` being what the gradient needs.
    Shared with the compiled training step, which must round exactly as this op. float32
    runs in amber-core (``train::sparse_softmax_crossentropy``); other dtypes in numpy."""
    if rows2d.dtype == np.float32 and _native_xent is not None:
        losses, probabilities = _native_xent(rows2d, np.ascontiguousarray(columns, np.int64))
        return losses, probabilities
    shifted = rows2d - rows2d.max(axis=-1, keepdims=True)
    exps = np.exp(shifted)
    total = exps.sum(axis=-1, keepdims=True)
    losses = np.log(total[:, 0]) - shifted[np.arange(rows2d.shape[0]), columns]
    return losses, np.divide(exps, total)


def sparse_softmax_crossentropy_rows_grad(g, saved, columns):
    """The gradient at the logits of ``sparse_softmax_crossentropy_rows`` for the per-row
    output gradient ``g``: ``g * softmax``, minus ``g`` at each row's label."""
    if saved.dtype == np.float32 and _native_xent_grad is not None:
        return _native_xent_grad(saved, np.ascontiguousarray(columns, np.int64),
                                 np.ascontiguousarray(g, np.float32))
    g_rows = np.reshape(g, (-1, 1))
    grad = np.multiply(g_rows, saved)
    grad[np.arange(saved.shape[0]), columns] -= g_rows[:, 0]
    return grad


def sum_divided(values, divisor):
    """``sum(values) / divisor`` over all axes (``divisor`` a non-zero 0-d array): the
    mean-type loss reductions as one node instead of ``sum`` then ``divide``.

    Same value and type as ``ops.sum(values) / divisor``: a numpy scalar when nothing is
    recorded, else a Tensor of a 0-d array whose gradient is ``g / divisor`` broadcast to
    ``values``' shape, as the two ops' backward closures produce it."""
    plain = unwrap(values)
    quotient = np.true_divide(np.asarray(np.sum(plain)), divisor)
    if not _recording or differentiable_input(values) is None:
        return quotient
    shape = plain.shape

    def backward(g):
        # A filled array rather than a broadcast view: same values, a fraction of the cost.
        return (np.full(shape, np.true_divide(g, divisor)),)

    return Tensor(np.asarray(quotient), ((0, values),), backward)


def channel_scale_shift(x, scale, shift):
    """``x * scale + shift`` with one ``scale`` and ``shift`` value per channel of the last
    axis (1-D arrays), for inference: one native float32 pass (``_native.scale_shift_f32``)
    instead of numpy's multiply pass, add pass and temporary. Same values as
    ``add(multiply(x, scale), shift)``: each product and sum rounded to float32.

    Returns None when it does not apply (a recording tape, a symbolic or non-float32
    operand, other shapes); the caller then runs the plain ops."""
    if _recording or type(x) is not np.ndarray or x.dtype != np.float32 or x.ndim == 0:
        return None
    scale, shift = unwrap(scale), unwrap(shift)
    if type(scale) is not np.ndarray or type(shift) is not np.ndarray:
        return None
    if (scale.dtype != np.float32 or shift.dtype != np.float32 or scale.ndim != 1
            or scale.shape != shift.shape or scale.shape[0] != x.shape[-1]):
        return None
    x = np.require(x, np.float32, ("C", "A"))
    out = np.empty(x.shape, np.float32)
    _native.scale_shift_f32(x, np.require(scale, requirements=("C", "A")),
                            np.require(shift, requirements=("C", "A")), out)
    return out


def clipped_relu(x, max_value):
    """``minimum(relu(x), max_value)`` (``max_value`` a 0-d array of x's dtype) as one
    ``np.clip`` pass instead of two passes and a temporary. Same values, and under a tape the
    chain's gradient: ``g`` where ``x > 0`` and ``relu(x) <= max_value`` (relu passes
    nothing at 0, minimum passes a tie), else 0."""
    try:
        value = unwrap(x)
    except TypeError:
        return None
    if type(value) is not np.ndarray or not np.issubdtype(value.dtype, np.floating):
        return None
    y = np.clip(value, value.dtype.type(0), max_value)
    if not _recording:
        return y

    def backward(g, need):
        return (g * ((value > 0) & (value <= max_value)),)

    return _record(y, (x,), backward)
