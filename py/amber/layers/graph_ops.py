"""Operations recorded as nodes of a Functional graph.

Keras 3 records an op called on symbolic tensors as an operation object in the graph: plain
arithmetic (``x + 3.0``, as in MobileNetV3's hard-sigmoid), ``keras.ops`` calls in user code,
and the masks layers compute while a model is built (``Embedding(mask_zero=True)`` adds a
``NotEqual`` feeding the next layer's ``mask=``). These classes are amber's counterparts under
Keras's names and configs (``name`` plus the op's constructor arguments, defaults included):
the Functional graph runs them like layers, through ``amber.ops`` so gradients flow, but they
own no weights and, as in Keras, are not among ``model.layers``.
"""

import numpy as np

from amber import ops
from amber.backend.config import division_dtype, standardize_dtype
from amber.layers.keras_tensor import KerasTensor, any_symbolic
from amber.layers.layer import Layer

# The Keras module these classes are saved under (and resolved from).
KERAS_MODULE = "keras.src.ops.numpy"


def _shape_of(x):
    return x.shape if isinstance(x, KerasTensor) else np.shape(x)


def _broadcast(op, shapes):
    """numpy broadcasting of shapes that may hold unknown (None) dimensions."""
    rank = max((len(s) for s in shapes), default=0)
    out = []
    for dims in zip(*[(1,) * (rank - len(s)) + tuple(s) for s in shapes]):
        known = {d for d in dims if d is not None and d != 1}
        if len(known) > 1:
            raise ValueError(f"Operation '{op.name}': operands of shapes {shapes} cannot be broadcast together")
        if known:
            out.append(known.pop())
        else:
            out.append(None if None in dims else 1)
    return tuple(out)


def _operand_dtype(x):
    """The dtype of a non-symbolic operand, None for a Python int or float (a weak type)."""
    return None if isinstance(x, (int, float)) else np.asarray(x).dtype


def _result_dtype(operands):
    tensor_dtypes = [np.dtype(x.dtype) for x in operands if isinstance(x, KerasTensor)]
    dtype = np.result_type(*tensor_dtypes) if tensor_dtypes else np.dtype("float32")
    # A Python float against integer tensors gives Keras's default float.
    if dtype.kind in "biu" and any(isinstance(x, float) for x in operands):
        dtype = np.dtype("float32")
    return dtype.name


def _axes(op, axis, rank):
    """``axis`` (None, an int or a sequence) as sorted non-negative axes of a rank-``rank`` value."""
    if axis is None:
        return tuple(range(rank))
    axes = tuple(axis) if isinstance(axis, (list, tuple)) else (axis,)
    out = []
    for a in axes:
        if not isinstance(a, (int, np.integer)) or not -rank <= a < rank:
            raise ValueError(f"Operation '{op.name}': axis {axis!r} is out of range for a rank-{rank} input")
        out.append(int(a) % rank)
    return tuple(sorted(set(out)))


def _tuple_axis(axis):
    # configs read back from JSON hold axis tuples as lists
    return tuple(axis) if isinstance(axis, list) else axis


class GraphOp(Layer):
    """An operation in a Functional graph: no weights, no build; config = name (+ arguments)."""

    def __init__(self, name=None, **kwargs):
        super().__init__(name=name, **kwargs)

    def __call__(self, *args, **kwargs):
        # Layer.__call__ takes a call whose first argument is an array as a call on values; an
        # operation's later operands may be the symbolic ones (``ops.where(array, x, 0.0)``).
        if args and isinstance(args[0], np.ndarray) and any_symbolic(args[1:], kwargs):
            names, takes_training, _, training_default = self._call_params()
            return self._symbolic_call(args, kwargs, names, takes_training, training_default)
        return super().__call__(*args, **kwargs)

    def get_config(self):
        return {"name": self.name}

    def get_build_config(self):
        return None


class _Elementwise(GraphOp):
    """Arithmetic: the operands' broadcast shape, numpy's promoted dtype."""

    def compute_output_spec(self, *operands, **kwargs):
        return KerasTensor(_broadcast(self, [_shape_of(x) for x in operands]), dtype=_result_dtype(operands))


class _Boolean(GraphOp):
    """Comparisons and logic: the operands' broadcast shape, bool."""

    def compute_output_spec(self, *operands, **kwargs):
        return KerasTensor(_broadcast(self, [_shape_of(x) for x in operands]), dtype="bool")


class Add(_Elementwise):
    def call(self, x1, x2):
        return ops.add(x1, x2)


class Subtract(_Elementwise):
    def call(self, x1, x2):
        return ops.subtract(x1, x2)


class Multiply(_Elementwise):
    def call(self, x1, x2):
        return ops.multiply(x1, x2)


class Divide(_Elementwise):
    def call(self, x1, x2):
        return ops.divide(x1, x2)

    def compute_output_spec(self, x1, x2):
        spec = super().compute_output_spec(x1, x2)
        # Keras's division dtype: integers give floatx (see config.division_dtype).
        spec.dtype = division_dtype(*(x.dtype if isinstance(x, KerasTensor) else _operand_dtype(x)
                                      for x in (x1, x2)))
        return spec


class TrueDivide(Divide):
    def call(self, x1, x2):
        return ops.true_divide(x1, x2)


class Power(_Elementwise):
    def call(self, x1, x2):
        return ops.power(x1, x2)


class Negative(_Elementwise):
    def call(self, x):
        return ops.negative(x)


class Equal(_Boolean):
    def call(self, x1, x2):
        return ops.equal(x1, x2)


class NotEqual(_Boolean):
    def call(self, x1, x2):
        return ops.not_equal(x1, x2)


class Greater(_Boolean):
    def call(self, x1, x2):
        return ops.greater(x1, x2)


class GreaterEqual(_Boolean):
    def call(self, x1, x2):
        return ops.greater_equal(x1, x2)


class Less(_Boolean):
    def call(self, x1, x2):
        return ops.less(x1, x2)


class LessEqual(_Boolean):
    def call(self, x1, x2):
        return ops.less_equal(x1, x2)


class LogicalAnd(_Boolean):
    def call(self, x1, x2):
        return ops.logical_and(x1, x2)


class LogicalOr(_Boolean):
    def call(self, x1, x2):
        return ops.logical_or(x1, x2)


class LogicalXor(_Boolean):
    def call(self, x1, x2):
        return ops.logical_xor(x1, x2)


class LogicalNot(_Boolean):
    def call(self, x):
        return ops.logical_not(x)


class _Reduction(GraphOp):
    """A reduction over ``axis`` (all axes when None), the reduced axes kept as 1 if ``keepdims``."""

    def __init__(self, axis=None, keepdims=False, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.axis = _tuple_axis(axis)
        self.keepdims = bool(keepdims)

    def get_config(self):
        return {"name": self.name, "axis": self.axis, "keepdims": self.keepdims}

    def compute_output_spec(self, x):
        axes = _axes(self, self.axis, len(x.shape))
        if self.keepdims:
            shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
        else:
            shape = tuple(d for i, d in enumerate(x.shape) if i not in axes)
        return KerasTensor(shape, dtype="bool")


class Any(_Reduction):
    def call(self, x):
        return ops.any(x, axis=self.axis, keepdims=self.keepdims)


class All(_Reduction):
    def call(self, x):
        return ops.all(x, axis=self.axis, keepdims=self.keepdims)


class ExpandDims(GraphOp):
    def __init__(self, axis, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.axis = _tuple_axis(axis)

    def get_config(self):
        return {"name": self.name, "axis": self.axis}

    def call(self, x):
        return ops.expand_dims(x, self.axis)

    def compute_output_spec(self, x):
        count = len(self.axis) if isinstance(self.axis, tuple) else 1
        axes = _axes(self, self.axis, len(x.shape) + count)
        dims = iter(x.shape)
        shape = tuple(1 if i in axes else next(dims) for i in range(len(x.shape) + count))
        return KerasTensor(shape, dtype=x.dtype)


class Squeeze(GraphOp):
    def __init__(self, axis=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.axis = _tuple_axis(axis)

    def get_config(self):
        return {"name": self.name, "axis": self.axis}

    def call(self, x):
        return ops.squeeze(x, axis=self.axis)

    def compute_output_spec(self, x):
        if self.axis is None:
            return KerasTensor(tuple(d for d in x.shape if d != 1), dtype=x.dtype)
        axes = _axes(self, self.axis, len(x.shape))
        for a in axes:
            if x.shape[a] not in (1, None):
                raise ValueError(f"Operation '{self.name}': cannot squeeze axis {a} of size {x.shape[a]} "
                                 f"(input shape {x.shape}); only size-1 axes can be squeezed")
        return KerasTensor(tuple(d for i, d in enumerate(x.shape) if i not in axes), dtype=x.dtype)


class _FilledLike(GraphOp):
    """An array of the input's shape, in ``dtype`` (the input's dtype when None)."""

    def __init__(self, dtype=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.fill_dtype = None if dtype is None else standardize_dtype(dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.fill_dtype}

    def compute_output_spec(self, x):
        return KerasTensor(x.shape, dtype=self.fill_dtype or x.dtype)


class ZerosLike(_FilledLike):
    def call(self, x):
        return ops.zeros_like(x, dtype=self.fill_dtype)


class OnesLike(_FilledLike):
    def call(self, x):
        return ops.ones_like(x, dtype=self.fill_dtype)


class Concatenate(GraphOp):
    """``ops.concatenate(xs, axis)``: one list argument (unlike the ``Concatenate`` layer)."""

    def __init__(self, axis=0, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.axis = axis

    def get_config(self):
        return {"name": self.name, "axis": self.axis}

    def call(self, xs):
        return ops.concatenate(xs, axis=self.axis)

    def compute_output_spec(self, xs):
        shapes = [_shape_of(x) for x in xs]
        rank = len(shapes[0])
        if any(len(s) != rank for s in shapes) or self.axis is None:
            raise ValueError(f"Operation '{self.name}': cannot concatenate shapes {shapes} along axis {self.axis}")
        axis = _axes(self, self.axis, rank)[0]
        out = []
        for i, dims in enumerate(zip(*shapes)):
            if i == axis:
                out.append(None if None in dims else sum(dims))
                continue
            known = {d for d in dims if d is not None}
            if len(known) > 1:
                raise ValueError(f"Operation '{self.name}': shapes {shapes} differ outside axis {self.axis}")
            out.append(known.pop() if known else None)
        return KerasTensor(tuple(out), dtype=_result_dtype(list(xs)))


class Where(GraphOp):
    """``ops.where(condition, x1, x2)``: elementwise choice (the one-argument form has a
    data-dependent shape and cannot be part of a graph)."""

    def call(self, condition, x1=None, x2=None):
        return ops.where(condition, x1, x2)

    def compute_output_spec(self, condition, x1=None, x2=None):
        if x1 is None or x2 is None:
            raise ValueError(f"Operation '{self.name}': `where` on a symbolic tensor needs both x1 and x2 "
                             f"(the condition-only form has a data-dependent shape)")
        shape = _broadcast(self, [_shape_of(x) for x in (condition, x1, x2)])
        return KerasTensor(shape, dtype=_result_dtype([x1, x2]))


__all__ = [
    "Add", "Subtract", "Multiply", "Divide", "TrueDivide", "Power", "Negative",
    "Equal", "NotEqual", "Greater", "GreaterEqual", "Less", "LessEqual",
    "LogicalAnd", "LogicalOr", "LogicalXor", "LogicalNot", "Any", "All",
    "ExpandDims", "Squeeze", "ZerosLike", "OnesLike", "Concatenate", "Where",
]


def record(op_class, *operands):
    """Apply a fresh ``op_class`` to ``operands`` (at least one symbolic): a new graph node."""
    return op_class()(*operands)


def _binary(op_class):
    return lambda x1, x2: (op_class(), (x1, x2))


def _unary(op_class):
    return lambda x: (op_class(), (x,))


def _reduction(op_class):
    return lambda x, axis=None, keepdims=False: (op_class(axis=axis, keepdims=keepdims), (x,))


def _filled_like(op_class):
    return lambda x, dtype=None: (op_class(dtype=dtype), (x,))


def _cast(x, dtype):
    from amber.layers.graph_ops_core import Cast

    return Cast(dtype=dtype), (x,)


def _convert_to_tensor(x, dtype=None, sparse=None, ragged=None):
    from amber.layers.graph_ops_core import ConvertToTensor

    return ConvertToTensor(dtype=dtype, sparse=sparse, ragged=ragged), (x,)


# ``amber.ops`` function name -> (its arguments -> (a fresh op, the arguments its node records)),
# mirroring how each keras.ops function calls its operation on symbolic tensors.
_SYMBOLIC_CALLS = {
    "add": _binary(Add), "subtract": _binary(Subtract), "multiply": _binary(Multiply),
    "divide": _binary(Divide), "true_divide": _binary(TrueDivide), "power": _binary(Power),
    "negative": _unary(Negative),
    "equal": _binary(Equal), "not_equal": _binary(NotEqual), "greater": _binary(Greater),
    "greater_equal": _binary(GreaterEqual), "less": _binary(Less), "less_equal": _binary(LessEqual),
    "logical_and": _binary(LogicalAnd), "logical_or": _binary(LogicalOr),
    "logical_xor": _binary(LogicalXor), "logical_not": _unary(LogicalNot),
    "any": _reduction(Any), "all": _reduction(All),
    "expand_dims": lambda x, axis: (ExpandDims(axis=axis), (x,)),
    "squeeze": lambda x, axis=None: (Squeeze(axis=axis), (x,)),
    "zeros_like": _filled_like(ZerosLike), "ones_like": _filled_like(OnesLike),
    "concatenate": lambda xs, axis=0: (Concatenate(axis=axis), (list(xs),)),
    "where": lambda condition, x1=None, x2=None: (Where(), (condition, x1, x2)),
    "cast": _cast, "convert_to_tensor": _convert_to_tensor,
}

SYMBOLIC_OPS = frozenset(_SYMBOLIC_CALLS)


def record_call(op_name, args, kwargs):
    """``amber.ops.<op_name>(*args, **kwargs)`` with a symbolic argument: a new graph node, as
    Keras records it, and its symbolic output."""
    build = _SYMBOLIC_CALLS.get(op_name)
    if build is None:
        raise TypeError(f"ops.{op_name} cannot be applied to a symbolic KerasTensor (it has no graph "
                        f"operation in amber); wrap the computation in a Layer instead")
    try:
        op, call_args = build(*args, **kwargs)
    except TypeError as error:
        raise TypeError(f"ops.{op_name} on a symbolic tensor: {error}") from None
    return op(*call_args)
