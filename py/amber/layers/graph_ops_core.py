"""Operations of ``keras.src.ops.core`` recorded as nodes of a Functional graph.

Keras saves ``ops.cast`` and ``ops.convert_to_tensor`` called on symbolic tensors under this
module (``Attention`` passes its query mask on through ``convert_to_tensor``), apart from the
``keras.src.ops.numpy`` operations of ``graph_ops``; amber keeps the same split so each class
is written and resolved under Keras's module.
"""

from amber import ops
from amber.backend.config import standardize_dtype
from amber.layers.graph_ops import GraphOp
from amber.layers.keras_tensor import KerasTensor

# The Keras module these classes are saved under (and resolved from).
KERAS_MODULE = "keras.src.ops.core"


class Cast(GraphOp):
    def __init__(self, dtype, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.target_dtype = standardize_dtype(dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.target_dtype}

    def call(self, x):
        return ops.cast(x, self.target_dtype)

    def compute_output_spec(self, x):
        return KerasTensor(x.shape, dtype=self.target_dtype)


class ConvertToTensor(GraphOp):
    def __init__(self, dtype=None, sparse=None, ragged=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.target_dtype = None if dtype is None else standardize_dtype(dtype)
        if sparse or ragged:
            raise ValueError(f"ConvertToTensor '{self.name}': amber has no sparse or ragged tensors "
                             f"(got sparse={sparse!r}, ragged={ragged!r})")
        self.sparse, self.ragged = sparse, ragged

    def get_config(self):
        return {"name": self.name, "dtype": self.target_dtype, "sparse": self.sparse, "ragged": self.ragged}

    def call(self, x):
        return ops.convert_to_tensor(x, dtype=self.target_dtype)

    def compute_output_spec(self, x):
        return KerasTensor(x.shape, dtype=self.target_dtype or x.dtype)


__all__ = ["Cast", "ConvertToTensor"]
