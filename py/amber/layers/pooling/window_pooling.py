"""MaxPooling1D/2D/3D and AveragePooling1D/2D/3D: reductions over sliding windows."""

from amber import ops
from amber.layers.convolutional.base_conv import (
    check_rank,
    spatial_shape,
    standardize_data_format,
    standardize_padding,
    standardize_tuple,
    with_channels,
)
from amber.layers.layer import InputSpec, Layer


class BasePooling(Layer):
    rank = None
    mode = None

    def __init__(self, pool_size, strides=None, padding="valid", data_format=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.pool_size = standardize_tuple(pool_size, self.rank, "pool_size")
        self.strides = self.pool_size if strides is None else standardize_tuple(strides, self.rank, "strides")
        self.padding = standardize_padding(padding)
        self.data_format = standardize_data_format(data_format)
        self.input_spec = InputSpec(ndim=self.rank + 2)

    def call(self, inputs):
        check_rank(self, inputs)
        pool = ops.max_pool if self.mode == "max" else ops.average_pool
        return pool(inputs, self.pool_size, strides=self.strides, padding=self.padding,
                    data_format=self.data_format)

    def compute_output_shape(self, input_shape):
        from amber.ops.conv import conv_output_length

        spatial = [conv_output_length(n, p, s, self.padding) for n, p, s in zip(
            spatial_shape(input_shape, self.data_format, self.rank), self.pool_size, self.strides)]
        channels = input_shape[1] if self.data_format == "channels_first" else input_shape[-1]
        return with_channels(input_shape[0], spatial, channels, self.data_format)

    def get_config(self):
        config = super().get_config()
        config.update({"pool_size": self.pool_size, "padding": self.padding, "strides": self.strides,
                       "data_format": self.data_format})
        return config


def _pooling_class(name, rank, mode, default_pool):
    def __init__(self, pool_size=default_pool, strides=None, padding="valid", data_format=None, name=None,
                 **kwargs):
        BasePooling.__init__(self, pool_size, strides=strides, padding=padding, data_format=data_format,
                             name=name, **kwargs)

    return type(name, (BasePooling,), {"rank": rank, "mode": mode, "__init__": __init__,
                                       "__module__": __name__, "__qualname__": name})


MaxPooling1D = _pooling_class("MaxPooling1D", 1, "max", 2)
MaxPooling2D = _pooling_class("MaxPooling2D", 2, "max", (2, 2))
MaxPooling3D = _pooling_class("MaxPooling3D", 3, "max", (2, 2, 2))
AveragePooling1D = _pooling_class("AveragePooling1D", 1, "average", 2)
AveragePooling2D = _pooling_class("AveragePooling2D", 2, "average", (2, 2))
AveragePooling3D = _pooling_class("AveragePooling3D", 3, "average", (2, 2, 2))
