"""amber.constraints: mirrors keras.constraints. ``c(w)`` returns the projected weights; the
optimizer assigns the result after each update."""

import numpy as np

from amber import ops
from amber._object_namespace import deserialize_object, resolve_identifier, serialize_object
from amber.backend.config import epsilon


class Constraint:
    def __call__(self, w):
        return w

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _norms(w, axis):
    return ops.sqrt(ops.sum(ops.square(w), axis=axis, keepdims=True))


def _axis(axis):
    return tuple(axis) if isinstance(axis, list) else axis


class MaxNorm(Constraint):
    def __init__(self, max_value=2, axis=0):
        self.max_value = max_value
        self.axis = axis

    def __call__(self, w):
        norms = _norms(w, _axis(self.axis))
        desired = ops.clip(norms, 0, self.max_value)
        return ops.multiply(w, ops.divide(desired, ops.add(norms, epsilon())))

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


class NonNeg(Constraint):
    def __call__(self, w):
        return ops.maximum(w, np.zeros((), dtype=np.asarray(ops.convert_to_numpy(w)).dtype))


class UnitNorm(Constraint):
    def __init__(self, axis=0):
        self.axis = axis

    def __call__(self, w):
        return ops.divide(w, ops.add(_norms(w, _axis(self.axis)), epsilon()))

    def get_config(self):
        return {"axis": self.axis}


class MinMaxNorm(Constraint):
    def __init__(self, min_value=0.0, max_value=1.0, rate=1.0, axis=0):
        self.min_value = min_value
        self.max_value = max_value
        self.rate = rate
        self.axis = axis

    def __call__(self, w):
        norms = _norms(w, _axis(self.axis))
        desired = ops.add(ops.multiply(self.rate, ops.clip(norms, self.min_value, self.max_value)),
                          ops.multiply(1 - self.rate, norms))
        return ops.multiply(w, ops.divide(desired, ops.add(norms, epsilon())))

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate,
                "axis": self.axis}


max_norm, min_max_norm, non_neg, unit_norm = MaxNorm, MinMaxNorm, NonNeg, UnitNorm

_BY_NAME = {
    "Constraint": Constraint, "MaxNorm": MaxNorm, "MinMaxNorm": MinMaxNorm, "NonNeg": NonNeg,
    "UnitNorm": UnitNorm, "constraint": Constraint, "max_norm": MaxNorm,
    "min_max_norm": MinMaxNorm, "non_neg": NonNeg, "unit_norm": UnitNorm,
}

__all__ = ["Constraint", "MaxNorm", "MinMaxNorm", "NonNeg", "UnitNorm", "max_norm",
           "min_max_norm", "non_neg", "unit_norm", "deserialize", "get", "serialize"]


def serialize(constraint):
    return serialize_object(constraint)


def deserialize(config, custom_objects=None):
    return deserialize_object(config, custom_objects, _BY_NAME)


def get(identifier):
    """A constraint from None, a name, a config dict, a class or a callable."""
    return resolve_identifier(identifier, "constraint", _BY_NAME.get, deserialize)
