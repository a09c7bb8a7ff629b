"""ActivityRegularization: identity that adds ``l1 * sum|x| + l2 * sum(x^2)`` of its output
to the layer's losses (the base Layer applies the activity regularizer on every call)."""

from amber.layers.layer import Layer


class ActivityRegularization(Layer):
    def __init__(self, l1=0.0, l2=0.0, **kwargs):
        from amber.regularizers import L1L2

        super().__init__(activity_regularizer=L1L2(l1=l1, l2=l2), **kwargs)
        self.l1 = l1
        self.l2 = l2
        self.supports_masking = True

    def call(self, inputs):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"l1": self.l1, "l2": self.l2})
        return config
