"""ZeroPadding1D/2D/3D: zeros added before and after each spatial axis."""

from amber import ops
from amber.layers.convolutional.base_conv import check_rank, standardize_data_format
from amber.layers.layer import InputSpec, Layer
from amber.layers.reshaping.spatial import pairs, spatial_axes


class BaseZeroPadding(Layer):
    rank = None

    def __init__(self, padding, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.padding = pairs(padding, self.rank, "padding")
        self.data_format = standardize_data_format(data_format)
        self.input_spec = InputSpec(ndim=self.rank + 2)

    def _widths(self, ndim):
        widths = [(0, 0)] * ndim
        for axis, pair in zip(spatial_axes(self.rank, self.data_format), self.padding):
            widths[axis] = pair
        return widths

    def call(self, inputs):
        check_rank(self, inputs)
        return ops.pad(inputs, self._widths(len(inputs.shape)))

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        for axis, (before, after) in zip(spatial_axes(self.rank, self.data_format), self.padding):
            if shape[axis] is not None:
                shape[axis] = shape[axis] + before + after
        return tuple(shape)

    def get_config(self):
        config = super().get_config()
        config["padding"] = self.padding[0] if self.rank == 1 else self.padding
        config["data_format"] = self.data_format
        return config


class ZeroPadding1D(BaseZeroPadding):
    rank = 1

    def __init__(self, padding=1, data_format=None, **kwargs):
        super().__init__(padding, data_format=data_format, **kwargs)


class ZeroPadding2D(BaseZeroPadding):
    rank = 2

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(padding, data_format=data_format, **kwargs)


class ZeroPadding3D(BaseZeroPadding):
    rank = 3

    def __init__(self, padding=((1, 1), (1, 1), (1, 1)), data_format=None, **kwargs):
        super().__init__(padding, data_format=data_format, **kwargs)
