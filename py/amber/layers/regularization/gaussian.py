"""GaussianNoise (additive, standard deviation ``stddev``) and GaussianDropout
(multiplicative, mean 1, standard deviation sqrt(rate / (1 - rate))); both only while
training."""

import math

from amber import ops
from amber.layers.layer import Layer
from amber.layers.regularization.noise import check_rate, draw, dtype_of, layer_generator


class GaussianNoise(Layer):
    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= stddev <= 1:
            raise ValueError(f"Invalid value received for argument `stddev`. Expected a float value between 0 "
                             f"and 1. Received: stddev={stddev}")
        self.stddev = stddev
        self.seed = seed
        self._generator = layer_generator(seed)
        self.supports_masking = True

    def call(self, inputs, training=False):
        if not training or self.stddev == 0:
            return inputs
        noise = draw(self).normal(0.0, self.stddev, size=tuple(inputs.shape)).astype(dtype_of(inputs))
        return ops.add(inputs, noise)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"stddev": self.stddev, "seed": self.seed})
        return config


class GaussianDropout(Layer):
    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = check_rate(rate)
        self.seed = seed
        self._generator = layer_generator(seed)
        self.supports_masking = True

    def call(self, inputs, training=False):
        if not training or not 0 < self.rate < 1:
            return inputs
        spread = math.sqrt(self.rate / (1.0 - self.rate))
        noise = draw(self).normal(1.0, spread, size=tuple(inputs.shape)).astype(dtype_of(inputs))
        return ops.multiply(inputs, noise)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "seed": self.seed})
        return config
