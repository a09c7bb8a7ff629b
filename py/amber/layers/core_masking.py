"""Masking: marks timesteps whose features all equal ``mask_value`` as masked, and zeroes
them in the output."""

import numpy as np

from amber import ops
from amber.layers.layer import Layer


class Masking(Layer):
    def __init__(self, mask_value=0.0, **kwargs):
        super().__init__(**kwargs)
        self.mask_value = mask_value
        self.supports_masking = True

    def compute_mask(self, inputs, mask=None):
        return ops.any(ops.not_equal(inputs, self.mask_value), axis=-1)

    def call(self, inputs):
        keep = self.compute_mask(inputs)
        dtype = np.dtype(getattr(inputs, "dtype", "float32"))
        return ops.multiply(inputs, keep[..., None].astype(dtype))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["mask_value"] = self.mask_value
        return config
