"""GlobalMaxPooling1D/2D/3D and GlobalAveragePooling1D/2D/3D: reductions over all spatial
axes (``keepdims`` keeps them as size 1)."""

from amber import ops
from amber.layers.convolutional.base_conv import check_rank, standardize_data_format
from amber.layers.layer import InputSpec, Layer


class BaseGlobalPooling(Layer):
    rank = None
    mode = None

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.data_format = standardize_data_format(data_format)
        self.keepdims = bool(keepdims)
        self.input_spec = InputSpec(ndim=self.rank + 2)

    def _axes(self):
        start = 2 if self.data_format == "channels_first" else 1
        return tuple(range(start, start + self.rank))

    def call(self, inputs):
        check_rank(self, inputs)
        reduce = ops.max if self.mode == "max" else ops.mean
        return reduce(inputs, axis=self._axes(), keepdims=self.keepdims)

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        axes = self._axes()
        if self.keepdims:
            return tuple(1 if i in axes else d for i, d in enumerate(input_shape))
        return tuple(d for i, d in enumerate(input_shape) if i not in axes)

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self):
        config = super().get_config()
        config.update({"data_format": self.data_format, "keepdims": self.keepdims})
        return config


def _global_class(name, rank, mode):
    return type(name, (BaseGlobalPooling,), {"rank": rank, "mode": mode, "__module__": __name__,
                                             "__qualname__": name})


GlobalMaxPooling1D = _global_class("GlobalMaxPooling1D", 1, "max")
GlobalMaxPooling2D = _global_class("GlobalMaxPooling2D", 2, "max")
GlobalMaxPooling3D = _global_class("GlobalMaxPooling3D", 3, "max")
GlobalAveragePooling2D = _global_class("GlobalAveragePooling2D", 2, "average")
GlobalAveragePooling3D = _global_class("GlobalAveragePooling3D", 3, "average")


class GlobalAveragePooling1D(BaseGlobalPooling):
    """The one global pooling that takes a mask (as in Keras): masked steps are left out of
    the mean."""

    rank = 1
    mode = "average"

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(data_format=data_format, keepdims=keepdims, **kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is None:
            return super().call(inputs)
        check_rank(self, inputs)
        steps_axis = 2 if self.data_format == "channels_first" else 1
        # the mask is (batch, steps): give it a size-1 feature axis to broadcast over
        weights = ops.cast(ops.expand_dims(mask, axis=1 if steps_axis == 2 else -1),
                           getattr(inputs, "dtype", "float32"))
        total = ops.sum(ops.multiply(inputs, weights), axis=steps_axis, keepdims=self.keepdims)
        return ops.divide(total, ops.sum(weights, axis=steps_axis, keepdims=self.keepdims))
