"""Operations recorded as nodes of a Functional graph.

Keras 3 lets plain arithmetic on symbolic tensors (``x + 3.0``, ``x * (1 / 6)``, as in
MobileNetV3's hard-sigmoid) become part of a model: each use is an operation object of
``keras.src.ops.numpy`` (``Add``, ``Multiply``, ...) whose config holds only its name. These
classes are amber's counterparts, under the same names: the Functional graph runs them like
layers, but they own no weights and, as in Keras, are not among ``model.layers``.
"""

import numpy as np

from amber import ops
from amber.layers.keras_tensor import KerasTensor
from amber.layers.layer import Layer

# The Keras module these classes are saved under (and resolved from).
KERAS_MODULE = "keras.src.ops.numpy"


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


def _result_dtype(operands):
    tensor_dtypes = [np.dtype(x.dtype) for x in operands if isinstance(x, KerasTensor)]
    dtype = np.result_type(*tensor_dtypes) if tensor_dtypes else np.dtype("float32")
    # A Python float against integer tensors gives Keras's default float.
    if dtype.kind in "biu" and any(isinstance(x, float) for x in operands):
        dtype = np.dtype("float32")
    return dtype.name


class GraphOp(Layer):
    """An elementwise operation in a Functional graph: no weights, no build, config = name."""

    def __init__(self, name=None, **kwargs):
        super().__init__(name=name, **kwargs)

    def get_config(self):
        return {"name": self.name}

    def get_build_config(self):
        return None

    def compute_output_spec(self, *operands, **kwargs):
        shapes = [x.shape if isinstance(x, KerasTensor) else np.shape(x) for x in operands]
        return KerasTensor(_broadcast(self, shapes), dtype=_result_dtype(operands))


class Add(GraphOp):
    def call(self, x1, x2):
        return ops.add(x1, x2)


class Subtract(GraphOp):
    def call(self, x1, x2):
        return ops.subtract(x1, x2)


class Multiply(GraphOp):
    def call(self, x1, x2):
        return ops.multiply(x1, x2)


class TrueDivide(GraphOp):
    def call(self, x1, x2):
        return ops.true_divide(x1, x2)


class Power(GraphOp):
    def call(self, x1, x2):
        return ops.power(x1, x2)


class Negative(GraphOp):
    def call(self, x):
        return ops.negative(x)


__all__ = ["Add", "Subtract", "Multiply", "TrueDivide", "Power", "Negative"]


def record(op_class, *operands):
    """Apply a fresh ``op_class`` to ``operands`` (at least one symbolic): a new graph node."""
    return op_class()(*operands)
