"""amber.regularizers: mirrors keras.regularizers. ``reg(x)`` returns a scalar built from
``amber.ops``, so the penalty is differentiable under a GradientTape."""

import math

import numpy as np

from amber import ops
from amber._object_namespace import deserialize_object, resolve_identifier, serialize_object


def _non_negative(value, name):
    if isinstance(value, bool) or not isinstance(value, (float, int)) or math.isinf(value) \
            or math.isnan(value) or value < 0:
        raise ValueError(f"Invalid value for argument {name}: expected a non-negative float, got {name}={value!r}")
    return float(value)


def _as_float32(value):
    # Keras keeps these factors as float32 tensors and reports them back through float()
    return float(np.float32(value))


def _dtype_of(x):
    return np.asarray(ops.convert_to_numpy(x)).dtype


class Regularizer:
    def __call__(self, x):
        return 0.0

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def get_config(self):
        raise NotImplementedError(f"{type(self).__name__} does not implement get_config()")


class L1L2(Regularizer):
    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = _non_negative(0.0 if l1 is None else l1, "l1")
        self.l2 = _non_negative(0.0 if l2 is None else l2, "l2")

    def __call__(self, x):
        dtype = _dtype_of(x)
        total = np.zeros((), dtype=dtype)
        if self.l1:
            total = ops.add(total, ops.multiply(dtype.type(self.l1), ops.sum(ops.abs(x))))
        if self.l2:
            total = ops.add(total, ops.multiply(dtype.type(self.l2), ops.sum(ops.square(x))))
        return total

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(Regularizer):
    def __init__(self, l1=0.01):
        self.l1 = _as_float32(_non_negative(0.01 if l1 is None else l1, "l1"))

    def __call__(self, x):
        return ops.multiply(_dtype_of(x).type(self.l1), ops.sum(ops.abs(x)))

    def get_config(self):
        return {"l1": self.l1}


class L2(Regularizer):
    def __init__(self, l2=0.01):
        self.l2 = _non_negative(0.01 if l2 is None else l2, "l2")

    def __call__(self, x):
        return ops.multiply(_dtype_of(x).type(self.l2), ops.sum(ops.square(x)))

    def get_config(self):
        return {"l2": self.l2}


class OrthogonalRegularizer(Regularizer):
    """Penalizes non-orthogonality of a 2-D weight's rows (or columns): the mean absolute
    cosine similarity over distinct pairs, times ``factor``."""

    def __init__(self, factor=0.01, mode="rows"):
        self.factor = _as_float32(_non_negative(factor, "factor"))
        if mode not in ("rows", "columns"):
            raise ValueError(f"OrthogonalRegularizer: mode must be 'rows' or 'columns', got {mode!r}")
        self.mode = mode

    def __call__(self, inputs):
        shape = ops.shape(inputs)
        if len(shape) != 2:
            raise ValueError(f"Inputs to OrthogonalRegularizer must have rank 2, got shape={shape}")
        if self.mode == "rows":
            unit = ops.normalize(inputs, axis=1)
            product = ops.matmul(unit, ops.transpose(unit))
            size = shape[0]
        else:
            unit = ops.normalize(inputs, axis=0)
            product = ops.matmul(ops.transpose(unit), unit)
            size = shape[1]
        dtype = _dtype_of(inputs)
        off_diagonal = ops.multiply(product, (1.0 - np.eye(size)).astype(dtype))
        pairs = size * (size - 1.0) / 2.0
        return ops.multiply(dtype.type(self.factor * 0.5 / pairs), ops.sum(ops.abs(off_diagonal)))

    def get_config(self):
        return {"factor": self.factor, "mode": self.mode}


l1, l2, l1_l2, orthogonal_regularizer = L1, L2, L1L2, OrthogonalRegularizer

_BY_NAME = {
    "Regularizer": Regularizer, "L1": L1, "L2": L2, "L1L2": L1L2,
    "OrthogonalRegularizer": OrthogonalRegularizer,
    "regularizer": Regularizer, "l1": L1, "l2": L2, "l1l2": L1L2, "l1_l2": L1L2,
    "orthogonal_regularizer": OrthogonalRegularizer,
}

__all__ = ["L1", "L1L2", "L2", "OrthogonalRegularizer", "Regularizer", "l1", "l1_l2", "l2",
           "orthogonal_regularizer", "deserialize", "get", "serialize"]


def serialize(regularizer):
    return serialize_object(regularizer)


def deserialize(config, custom_objects=None):
    return deserialize_object(config, custom_objects, _BY_NAME)


def get(identifier):
    """A regularizer from None, a name, a config dict, a class or a callable."""
    return resolve_identifier(identifier, "regularizer", _BY_NAME.get, deserialize)
