"""UpSampling1D/2D/3D: repeat each step / pixel / voxel ``size`` times per spatial axis
(UpSampling2D can also interpolate bilinearly)."""

import numpy as np

from amber import ops
from amber.layers.convolutional.base_conv import check_rank, standardize_data_format, standardize_tuple
from amber.layers.layer import InputSpec, Layer
from amber.layers.reshaping.spatial import spatial_axes


def _bilinear_axis(x, axis, scale):
    """Linear interpolation along one axis at half-pixel centres (the resize Keras uses;
    antialiasing changes nothing when enlarging)."""
    n = x.shape[axis]
    target = np.arange(n * scale, dtype=np.float64)
    source = np.clip((target + 0.5) / scale - 0.5, 0, n - 1)
    low = np.floor(source).astype(np.int64)
    high = np.minimum(low + 1, n - 1)
    frac_shape = [1] * len(x.shape)
    frac_shape[axis] = -1
    frac = (source - low).reshape(frac_shape).astype(x.dtype)
    below, above = ops.take(x, low, axis=axis), ops.take(x, high, axis=axis)
    return ops.add(ops.multiply(below, 1 - frac), ops.multiply(above, frac))


class BaseUpSampling(Layer):
    rank = None

    def __init__(self, size, data_format=None, interpolation="nearest", **kwargs):
        super().__init__(**kwargs)
        self.size = standardize_tuple(size, self.rank, "size")
        self.data_format = "channels_last" if self.rank == 1 else standardize_data_format(data_format)
        self.interpolation = str(interpolation).lower()
        if self.interpolation not in ("nearest", "bilinear"):
            raise ValueError(f"Layer '{self.name}': interpolation {interpolation!r} is not supported; amber "
                             f"implements 'nearest' and 'bilinear'.")
        self.input_spec = InputSpec(ndim=self.rank + 2)

    def call(self, inputs):
        check_rank(self, inputs)
        outputs = inputs
        for axis, factor in zip(spatial_axes(self.rank, self.data_format), self.size):
            if factor == 1:
                continue
            if self.interpolation == "bilinear":
                outputs = _bilinear_axis(outputs, axis, factor)
            else:
                outputs = ops.repeat(outputs, factor, axis=axis)
        return outputs

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        for axis, factor in zip(spatial_axes(self.rank, self.data_format), self.size):
            if shape[axis] is not None:
                shape[axis] = shape[axis] * factor
        return tuple(shape)


class UpSampling1D(BaseUpSampling):
    rank = 1

    def __init__(self, size=2, **kwargs):
        super().__init__(size, **kwargs)

    def get_config(self):
        config = super().get_config()
        config["size"] = self.size[0]
        return config


class UpSampling2D(BaseUpSampling):
    rank = 2

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", **kwargs):
        super().__init__(size, data_format=data_format, interpolation=interpolation, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.update({"size": self.size, "data_format": self.data_format, "interpolation": self.interpolation})
        return config


class UpSampling3D(BaseUpSampling):
    rank = 3

    def __init__(self, size=(2, 2, 2), data_format=None, **kwargs):
        super().__init__(size, data_format=data_format, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.update({"size": self.size, "data_format": self.data_format})
        return config
