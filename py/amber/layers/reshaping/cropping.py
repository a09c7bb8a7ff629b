"""Cropping1D/2D/3D: drop entries at the start and end of each spatial axis."""

from amber import ops
from amber.layers.convolutional.base_conv import check_rank, standardize_data_format
from amber.layers.layer import InputSpec, Layer
from amber.layers.reshaping.spatial import pairs, spatial_axes


class BaseCropping(Layer):
    rank = None

    def __init__(self, cropping, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.cropping = pairs(cropping, self.rank, "cropping")
        self.data_format = "channels_last" if self.rank == 1 else standardize_data_format(data_format)
        self.input_spec = InputSpec(ndim=self.rank + 2)

    def _check(self, shape):
        for axis, (before, after) in zip(spatial_axes(self.rank, self.data_format), self.cropping):
            if shape[axis] is not None and before + after >= shape[axis]:
                raise ValueError(
                    f"Layer '{self.name}': cropping {(before, after)} leaves nothing of axis {axis} of size "
                    f"{shape[axis]} (input shape {tuple(shape)}).")

    def call(self, inputs):
        check_rank(self, inputs)
        shape = tuple(inputs.shape)
        self._check(shape)
        key = [slice(None)] * len(shape)
        for axis, (before, after) in zip(spatial_axes(self.rank, self.data_format), self.cropping):
            key[axis] = slice(before, shape[axis] - after)
        return ops.get_item(inputs, tuple(key))

    def compute_output_shape(self, input_shape):
        self._check(tuple(input_shape))
        shape = list(input_shape)
        for axis, (before, after) in zip(spatial_axes(self.rank, self.data_format), self.cropping):
            if shape[axis] is not None:
                shape[axis] = shape[axis] - before - after
        return tuple(shape)

    def get_config(self):
        config = super().get_config()
        if self.rank == 1:
            config["cropping"] = self.cropping[0]
        else:
            config["cropping"] = self.cropping
            config["data_format"] = self.data_format
        return config


class Cropping1D(BaseCropping):
    rank = 1

    def __init__(self, cropping=(1, 1), **kwargs):
        super().__init__(cropping, **kwargs)


class Cropping2D(BaseCropping):
    rank = 2

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, **kwargs):
        super().__init__(cropping, data_format=data_format, **kwargs)


class Cropping3D(BaseCropping):
    rank = 3

    def __init__(self, cropping=((1, 1), (1, 1), (1, 1)), data_format=None, **kwargs):
        super().__init__(cropping, data_format=data_format, **kwargs)
