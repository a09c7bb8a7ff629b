"""Symbolic tensors and the nodes that connect layers into a Functional graph.

A ``KerasTensor`` carries only a shape and dtype. Calling a layer on KerasTensors records a
``Node`` (layer + the arguments it was called with + the tensors it produced); a Functional
model is the set of nodes between its inputs and its outputs.
"""

import numpy as np

from amber.layers import tree


class KerasTensor:
    """A symbolic placeholder: shape (``None`` for unknown dimensions) and dtype, no value."""

    def __init__(self, shape, dtype="float32", sparse=False, ragged=False, name=None):
        self.shape = tuple(None if d is None else int(d) for d in shape)
        self.dtype = np.dtype(dtype).name if dtype is not None else "float32"
        self.sparse = bool(sparse)
        self.ragged = bool(ragged)
        self.name = name
        # (layer, node_index, tensor_index): where this tensor was produced.
        self._keras_history = None
        # The symbolic mask a layer gave this tensor (``Embedding(mask_zero=True)``), fed to the
        # mask arguments of the layers it is passed to, as in Keras.
        self._keras_mask = None

    @property
    def ndim(self):
        return len(self.shape)

    def __repr__(self):
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, name={self.name}>"

    def __array__(self, dtype=None, copy=None):
        raise TypeError(
            "A KerasTensor is symbolic: it has no value. Build a Model from it and call the "
            "model on real data instead of converting it to a numpy array."
        )

    def __bool__(self):
        raise TypeError("A symbolic KerasTensor cannot be used as a Python bool.")

    # Arithmetic on symbolic tensors records an operation node, as Keras does (its
    # applications write ``x * (1.0 / 6.0)`` between layers).
    def _op(self, name, *operands):
        from amber.layers import graph_ops

        return graph_ops.record(getattr(graph_ops, name), *operands)

    def __add__(self, other):
        return self._op("Add", self, other)

    def __radd__(self, other):
        return self._op("Add", other, self)

    def __sub__(self, other):
        return self._op("Subtract", self, other)

    def __rsub__(self, other):
        return self._op("Subtract", other, self)

    def __mul__(self, other):
        return self._op("Multiply", self, other)

    def __rmul__(self, other):
        return self._op("Multiply", other, self)

    def __truediv__(self, other):
        return self._op("TrueDivide", self, other)

    def __rtruediv__(self, other):
        return self._op("TrueDivide", other, self)

    def __pow__(self, other):
        return self._op("Power", self, other)

    def __rpow__(self, other):
        return self._op("Power", other, self)

    def __neg__(self):
        return self._op("Negative", self)

    # Keras's functional configs spell a tensor reference this way.
    def _config_ref(self, node_index_of):
        layer, node_index, tensor_index = self._keras_history
        return {
            "class_name": "__keras_tensor__",
            "config": {
                "shape": list(self.shape),
                "dtype": self.dtype,
                "keras_history": [layer.name, node_index_of(layer, node_index), tensor_index],
            },
        }


def is_keras_tensor(x):
    return isinstance(x, KerasTensor)


def any_symbolic(args, kwargs):
    for leaf in tree.flatten(list(args)):
        if isinstance(leaf, KerasTensor):
            return True
    for leaf in tree.flatten(kwargs):
        if isinstance(leaf, KerasTensor):
            return True
    return False


class Node:
    """One call of a layer on symbolic inputs."""

    def __init__(self, layer, call_args, call_kwargs, outputs):
        self.layer = layer
        self.call_args = tuple(call_args)
        self.call_kwargs = dict(call_kwargs)
        self.outputs = outputs
        self.input_tensors = [
            x for x in tree.flatten([list(self.call_args), self.call_kwargs]) if isinstance(x, KerasTensor)
        ]
        self.output_tensors = [x for x in tree.flatten(outputs) if isinstance(x, KerasTensor)]
        node_index = len(layer._inbound_nodes)
        layer._inbound_nodes.append(self)
        for tensor_index, tensor in enumerate(self.output_tensors):
            tensor._keras_history = (layer, node_index, tensor_index)

    @property
    def is_input(self):
        return not self.input_tensors

    @property
    def parent_nodes(self):
        parents = []
        for tensor in self.input_tensors:
            layer, node_index, _ = tensor._keras_history
            parents.append(layer._inbound_nodes[node_index])
        return parents
