"""InputLayer and ``Input``: the entry points of a Functional graph."""

import numpy as np

from amber.layers.keras_tensor import KerasTensor, Node
from amber.layers.layer import Layer, dtype_policy_name


def _checked_shape(shape, name):
    """Dimensions must be non-negative integers or None (configs from files are untrusted)."""
    if not isinstance(shape, (list, tuple)):
        raise ValueError(f"Input '{name}': shape must be a list or tuple, got {shape!r:.100}")
    dims = []
    for d in shape:
        if d is None:
            dims.append(None)
        elif isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0:
            dims.append(int(d))
        else:
            raise ValueError(f"Input '{name}': every dimension must be a non-negative integer or None, "
                             f"got {d!r:.50} in shape {tuple(shape)!r:.200}")
    return tuple(dims)


class InputLayer(Layer):
    def __init__(self, shape=None, batch_size=None, dtype=None, sparse=None, batch_shape=None,
                 input_tensor=None, optional=False, name=None, **kwargs):
        # Keras 2 configs spell it batch_input_shape; Keras 3 accepts input_shape too.
        if "batch_input_shape" in kwargs:
            batch_shape = kwargs.pop("batch_input_shape")
        if "input_shape" in kwargs:
            shape = kwargs.pop("input_shape")
        ragged = kwargs.pop("ragged", False)
        kwargs.pop("trainable", None)
        super().__init__(name=name, dtype=None, **kwargs)
        if shape is not None and batch_shape is not None:
            raise ValueError("You cannot pass both `shape` and `batch_shape` at the same time.")
        if batch_size is not None and batch_shape is not None:
            raise ValueError("You cannot pass both `batch_size` and `batch_shape` at the same time.")
        if input_tensor is not None:
            batch_shape = input_tensor.shape
        if shape is None and batch_shape is None:
            raise ValueError("You must pass a `shape` argument.")
        if shape is not None:
            shape = (shape,) if isinstance(shape, int) else tuple(shape)
            batch_shape = (batch_size,) + shape
        self._batch_shape = _checked_shape(batch_shape, self.name)
        self._input_dtype = np.dtype(dtype_policy_name(dtype)).name
        self._dtype_name = self._input_dtype
        self.sparse = bool(sparse)
        self.ragged = bool(ragged)
        self.optional = bool(optional)
        self.built = True
        tensor = input_tensor if input_tensor is not None else KerasTensor(
            self._batch_shape, dtype=self._input_dtype, sparse=self.sparse, ragged=self.ragged, name=self.name)
        Node(self, (), {}, tensor)
        self._input_tensor = tensor

    @property
    def batch_shape(self):
        return self._batch_shape

    @property
    def dtype(self):
        return self._input_dtype

    def call(self):
        return None

    def get_config(self):
        return {"batch_shape": list(self._batch_shape), "dtype": self._input_dtype, "sparse": self.sparse,
                "ragged": self.ragged, "name": self.name, "optional": self.optional}


def Input(shape=None, batch_size=None, dtype=None, sparse=None, batch_shape=None, name=None, tensor=None,
          optional=False):
    """A symbolic input tensor for building a Functional model."""
    layer = InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, sparse=sparse, batch_shape=batch_shape,
                       input_tensor=tensor, optional=optional, name=name)
    return layer.output
