"""ActivityRegularization: identity that adds ``(l1 * sum|x| + l2 * sum(x^2)) / batch_size``
of its input to the layer's losses, as Keras 3 does for activity penalties."""

import numpy as np

from amber import ops
from amber.layers.layer import Layer


class ActivityRegularization(Layer):
    def __init__(self, l1=0.0, l2=0.0, **kwargs):
        from amber.regularizers import L1L2

        kwargs.pop("activity_regularizer", None)
        super().__init__(**kwargs)
        # Applied here rather than through the base class's activity_regularizer so the
        # per-sample scaling is this layer's own and cannot be applied twice.
        self._penalty = L1L2(l1=l1, l2=l2)
        self.l1 = l1
        self.l2 = l2
        self.supports_masking = True

    def call(self, inputs):
        shape = tuple(inputs.shape)
        batch = shape[0] if shape else 1
        dtype = np.dtype(getattr(inputs, "dtype", "float32"))
        self.add_loss(ops.divide(self._penalty(inputs), np.asarray(max(batch, 1), dtype)))
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"l1": self.l1, "l2": self.l2})
        return config
