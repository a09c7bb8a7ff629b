"""SpatialDropout1D/2D/3D: dropout of whole feature maps (one draw per sample and channel,
shared across the spatial axes), identity at inference."""

import numpy as np

from amber import ops
from amber.layers.convolutional.base_conv import standardize_data_format
from amber.layers.layer import InputSpec, Layer
from amber.layers.regularization.noise import check_rate, draw, dtype_of, layer_generator


class BaseSpatialDropout(Layer):
    rank = None

    def __init__(self, rate, data_format=None, seed=None, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.rate = check_rate(rate)
        self.seed = seed
        self.data_format = "channels_last" if self.rank == 1 else standardize_data_format(data_format)
        self._generator = layer_generator(seed)
        self.supports_masking = True
        self.input_spec = InputSpec(ndim=self.rank + 2)

    def _noise_shape(self, shape):
        if self.data_format == "channels_first":
            return shape[:2] + (1,) * self.rank
        return (shape[0],) + (1,) * self.rank + (shape[-1],)

    def call(self, inputs, training=False):
        if not training or self.rate == 0:
            return inputs
        dtype = dtype_of(inputs)
        noise_shape = self._noise_shape(tuple(inputs.shape))
        if self.rate >= 1:
            return ops.multiply(inputs, np.zeros(noise_shape, dtype))
        keep = draw(self).random(noise_shape) >= self.rate
        return ops.multiply(inputs, (keep / (1.0 - self.rate)).astype(dtype))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        # Keras 3 writes these keys only (no "trainable"), and the dtype as a plain name.
        config = {"rate": self.rate, "seed": self.seed, "name": self.name, "dtype": self.dtype}
        if self.rank > 1:
            config["data_format"] = self.data_format
        return config


class SpatialDropout1D(BaseSpatialDropout):
    rank = 1

    def __init__(self, rate, seed=None, name=None, dtype=None):
        super().__init__(rate, seed=seed, name=name, dtype=dtype)


class SpatialDropout2D(BaseSpatialDropout):
    rank = 2

    def __init__(self, rate, data_format=None, seed=None, name=None, dtype=None):
        super().__init__(rate, data_format=data_format, seed=seed, name=name, dtype=dtype)


class SpatialDropout3D(BaseSpatialDropout):
    rank = 3

    def __init__(self, rate, data_format=None, seed=None, name=None, dtype=None):
        super().__init__(rate, data_format=data_format, seed=seed, name=name, dtype=dtype)
