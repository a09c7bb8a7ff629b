"""ConvNeXt's `LayerScale` (Keras module `keras.src.applications.convnext`)."""

from amber import initializers, ops
from amber.layers.layer import Layer


class LayerScale(Layer):
    """Multiplies its input by a learned per-channel scale `gamma` (initialised to
    `init_values`), as in "Going deeper with Image Transformers"."""

    def __init__(self, init_values, projection_dim, **kwargs):
        super().__init__(**kwargs)
        self.init_values = init_values
        self.projection_dim = projection_dim

    def build(self, input_shape):
        self.gamma = self.add_weight(shape=(self.projection_dim,),
                                     initializer=initializers.Constant(self.init_values), trainable=True)

    def call(self, x):
        return ops.multiply(x, self.gamma)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"init_values": self.init_values, "projection_dim": self.projection_dim})
        return config


__all__ = ["LayerScale"]
