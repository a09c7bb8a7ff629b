"""The op machinery: turning arguments into numpy values, and ``primitive``, the decorator
that pairs an op's forward computation with its backward (vector-Jacobian product).

A primitive's body receives numpy values and returns ``(value, backward)``;
``backward(g, need)`` maps the output gradient ``g`` to one gradient per tensor input
(``need[i]`` says whether input ``i`` wants one, so expensive unused terms can be skipped).
Outside a recording tape the wrapper returns ``value`` and the closure is dropped.
"""

import functools

import numpy as np

from amber.backend import autodiff
from amber.backend.autodiff import Tensor, differentiable_input
from amber.backend.config import floatx, standardize_dtype
from amber.backend.operand import Operand
from amber.ops.symbolic import record_or_raise

# name -> op, for every differentiable primitive (the gradient tests iterate over it).
REGISTRY = {}

_recording = autodiff._recording
_PY_SCALARS = (float, int, bool)


def unwrap(x):
    """The numpy value of an op argument. Python scalars stay Python scalars so numpy's
    weak-scalar promotion keeps float32 arrays float32."""
    t = type(x)
    if t is np.ndarray or t is float or t is int:
        return x
    if t is Tensor:
        return x.value
    if isinstance(x, Operand):
        return x.numpy()
    if isinstance(x, (np.generic, bool)):
        return x
    if isinstance(x, (list, tuple)):
        return from_python(x)
    return np.asarray(x)


def from_python(x, dtype=None):
    """``np.asarray`` with Keras's typing of Python data: floats become floatx, ints int32."""
    array = np.asarray([unwrap(i) for i in x] if isinstance(x, (list, tuple)) else x)
    if dtype is not None:
        return array.astype(standardize_dtype(dtype), copy=False)
    if isinstance(x, (list, tuple, float, int)) and _all_python(x):
        if array.dtype == np.float64:
            return array.astype(floatx())
        if array.dtype == np.int64:
            return array.astype(np.int32)
    return array


def _all_python(x):
    if isinstance(x, (list, tuple)):
        return all(_all_python(i) for i in x)
    return isinstance(x, _PY_SCALARS)


def _finish(value, raws):
    """Ops return ndarrays (never numpy scalars); all-Python-scalar inputs give floatx."""
    if type(value) is np.ndarray:
        return value
    array = np.asarray(value)
    if array.dtype == np.float64 and all(isinstance(r, _PY_SCALARS) for r in raws):
        array = array.astype(floatx())
    return array


def _record(value, inputs, backward):
    if not _recording:
        return value
    parents = tuple((i, x) for i, x in enumerate(inputs) if differentiable_input(x) is not None)
    if not parents:
        return value
    need = [False] * len(inputs)
    for i, _ in parents:
        need[i] = True
    need = tuple(need)
    return Tensor(value, parents, lambda g: backward(g, need))


def primitive(arity=1, sequence=False, name=None, symbolic=True):
    """Declare a differentiable op. The first ``arity`` positional arguments are tensors (or,
    with ``sequence=True``, the first argument is a list of tensors); the rest are passed
    through unchanged. ``symbolic=False``: a helper whose public op records symbolic calls
    itself (its arguments are in another order)."""

    def decorate(body):
        op_name = name or body.__name__
        # A symbolic (KerasTensor) operand makes unwrap raise TypeError: the op then records a
        # graph operation, if it has one (symbolic.record_or_raise); the try costs nothing.
        graph_name = op_name if symbolic else None
        if sequence:
            def op(inputs, *args, **kwargs):
                inputs = list(inputs)
                try:
                    raws = [unwrap(x) for x in inputs]
                except TypeError:
                    return record_or_raise(graph_name, inputs, *args, **kwargs)
                value, backward = body(raws, *args, **kwargs)
                value = _finish(value, raws)
                if _recording:
                    return _record(value, inputs, backward)
                return value
        elif arity == 1:
            def op(x, *args, **kwargs):
                try:
                    raw = x if type(x) is np.ndarray else unwrap(x)
                except TypeError:
                    return record_or_raise(graph_name, x, *args, **kwargs)
                if type(raw) is float:
                    raw = np.asarray(raw, floatx())
                value, backward = body(raw, *args, **kwargs)
                if type(value) is not np.ndarray:
                    value = np.asarray(value)
                if _recording:
                    return _record(value, (x,), backward)
                return value
        elif arity == 2:
            # the common binary case, spelled out: this path runs for every +, -, * and @
            def op(x1, x2, *args, **kwargs):
                try:
                    r1 = x1 if type(x1) is np.ndarray else unwrap(x1)
                    r2 = x2 if type(x2) is np.ndarray else unwrap(x2)
                except TypeError:
                    return record_or_raise(graph_name, x1, x2, *args, **kwargs)
                value, backward = body(r1, r2, *args, **kwargs)
                if type(value) is not np.ndarray:
                    value = _finish(value, (r1, r2))
                if _recording:
                    return _record(value, (x1, x2), backward)
                return value
        else:
            def op(*args, **kwargs):
                inputs = args[:arity]
                if len(inputs) < arity:
                    raise TypeError(f"{body.__name__} expects {arity} tensor arguments")
                try:
                    raws = [unwrap(x) for x in inputs]
                except TypeError:
                    return record_or_raise(graph_name, *args, **kwargs)
                value, backward = body(*raws, *args[arity:], **kwargs)
                value = _finish(value, raws)
                if _recording:
                    return _record(value, inputs, backward)
                return value

        functools.update_wrapper(op, body)
        REGISTRY[op_name] = op
        return op

    return decorate


def record_multi(values, inputs, backward_for):
    """Several outputs from one op (``split``, ``top_k``): output ``k`` gets its own Tensor
    whose backward is ``backward_for(k)``."""
    if not _recording:
        return values
    return [_record(v, inputs, backward_for(k)) for k, v in enumerate(values)]


def normalize_axis(axis, ndim):
    """A tuple of non-negative axes (``None`` means all)."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (list, tuple)):
        return tuple(a % ndim if ndim else a for a in axis)
    return (axis % ndim if ndim else axis,)


def expand_reduced(g, shape, axis, keepdims):
    """Broadcast a reduction's gradient back to the input's shape."""
    if not keepdims and axis is not None:
        g = np.expand_dims(g, normalize_axis(axis, len(shape)))
    return np.broadcast_to(g, shape)
