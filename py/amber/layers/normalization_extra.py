"""GroupNormalization, UnitNormalization and the Normalization preprocessing layer (with
``adapt`` and the ``mean`` / ``variance`` / ``count`` state Keras saves)."""

import math

import numpy as np

from amber import ops
from amber.layers.layer import InputSpec, Layer
from amber.layers.normalization import add_scale_offset_weights, init_scale_offset, scale_offset_config

# Keras's backend.epsilon(): the floor under the standard deviation in Normalization.
_EPSILON = 1e-7


class GroupNormalization(Layer):
    """Normalizes each group of ``channels / groups`` channels by its own mean and variance."""

    def __init__(self, groups=32, axis=-1, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                 gamma_constraint=None, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        self.groups = int(groups)
        self.axis = int(axis)
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        init_scale_offset(self, beta_initializer, gamma_initializer, beta_regularizer, gamma_regularizer,
                          beta_constraint, gamma_constraint)

    def build(self, input_shape):
        if not -len(input_shape) <= self.axis < len(input_shape):
            raise ValueError(f"GroupNormalization '{self.name}': axis {self.axis} is out of range for input shape "
                             f"{tuple(input_shape)}")
        dim = input_shape[self.axis]
        if dim is None:
            raise ValueError(f"Axis {self.axis} of input tensor should have a defined dimension but the layer "
                             f"received an input with shape {tuple(input_shape)}.")
        if self.groups == -1:
            self.groups = dim
        if self.groups <= 0:
            raise ValueError(f"GroupNormalization '{self.name}': groups must be positive or -1, got {self.groups}")
        if dim < self.groups:
            raise ValueError(f"Number of groups ({self.groups}) cannot be more than the number of channels ({dim}).")
        if dim % self.groups != 0:
            raise ValueError(f"Number of groups ({self.groups}) must be a multiple of the number of channels "
                             f"({dim}).")
        self.input_spec = InputSpec(ndim=len(input_shape), axes={self.axis: dim})
        add_scale_offset_weights(self, (dim,), self.scale, self.center)

    def call(self, inputs):
        shape = tuple(inputs.shape)
        rank = len(shape)
        axis = self.axis % rank
        # (..., channels, ...) -> (..., groups, channels / groups, ...)
        grouped_shape = list(shape)
        grouped_shape[0] = -1
        grouped_shape[axis] = shape[axis] // self.groups
        grouped_shape.insert(axis, self.groups)
        grouped = ops.reshape(inputs, grouped_shape)
        reduce_axes = [i for i in range(1, rank + 1) if i != axis]
        mean, variance = ops.moments(grouped, axes=reduce_axes, keepdims=True)
        inv = ops.rsqrt(ops.add(variance, self.epsilon))
        broadcast = [1] * rank
        broadcast[axis] = shape[axis] // self.groups
        broadcast.insert(axis, self.groups)
        if self.gamma is not None:
            inv = ops.multiply(inv, ops.reshape(self.gamma, broadcast))
        shift = ops.negative(ops.multiply(mean, inv))
        if self.beta is not None:
            shift = ops.add(shift, ops.reshape(self.beta, broadcast))
        normalized = ops.add(ops.multiply(grouped, inv), shift)
        return ops.reshape(normalized, shape if shape[0] is not None else (-1,) + shape[1:])

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({
            "groups": self.groups,
            "axis": self.axis,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            **scale_offset_config(self),
        })
        return config


class UnitNormalization(Layer):
    """Scales each vector along ``axis`` to unit L2 norm: x * min(1 / ||x||, 1e12)."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, (list, tuple)):
            self.axis = [int(a) for a in axis]
        elif isinstance(axis, (int, np.integer)):
            self.axis = int(axis)
        else:
            raise TypeError(f"Invalid value for `axis` argument: expected an int or a list/tuple of ints. "
                            f"Received: axis={axis}")
        self.supports_masking = True
        self.built = True

    def call(self, inputs):
        axis = tuple(self.axis) if isinstance(self.axis, list) else self.axis
        inv_norm = ops.rsqrt(ops.sum(ops.square(inputs), axis=axis, keepdims=True))
        return ops.multiply(inputs, ops.minimum(inv_norm, 1e12))

    def compute_output_shape(self, input_shape):
        for axis in self.axis if isinstance(self.axis, list) else [self.axis]:
            if axis >= len(input_shape) or axis < -len(input_shape):
                raise ValueError(f"Axis {self.axis} is out of bounds for input shape {input_shape}.")
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["axis"] = self.axis
        return config


class Normalization(Layer):
    """(x - mean) / max(sqrt(variance), 1e-7), with the statistics given or learned by
    ``adapt(data)``; ``invert=True`` maps back."""

    def __init__(self, axis=-1, mean=None, variance=None, invert=False, **kwargs):
        super().__init__(**kwargs)
        if axis is None:
            axis = ()
        elif isinstance(axis, (int, np.integer)):
            axis = (int(axis),)
        else:
            axis = tuple(int(a) for a in axis)
        self.axis = axis
        self.input_mean = mean
        self.input_variance = variance
        self.invert = bool(invert)
        self.supports_masking = True
        if (mean is not None) != (variance is not None):
            raise ValueError("When setting values directly, both `mean` and `variance` must be set. "
                             f"Received: mean={mean} and variance={variance}")
        if mean is not None:
            if np.shape(mean) != np.shape(variance):
                raise ValueError("When setting values directly, `mean` and `variance` must have the same shape. "
                                 f"Received: mean shape {np.shape(mean)} and variance shape {np.shape(variance)}")
            if len(np.shape(mean)) > len(self.axis):
                raise ValueError(f"The rank of `mean` must be less than or equal to the number of axes "
                                 f"({len(self.axis)}). Received: mean shape {np.shape(mean)} for axis {self.axis}")
        self._statistics = None  # (mean, variance) broadcastable to the input
        self._keep_axis = None

    def build(self, input_shape):
        if input_shape is None:
            return
        input_shape = tuple(input_shape)
        ndim = len(input_shape)
        if any(a < -ndim or a >= ndim for a in self.axis):
            raise ValueError(f"All `axis` values must be in the range [-ndim, ndim). Received inputs with "
                             f"ndim={ndim}, while axis={self.axis}")
        self._keep_axis = tuple(sorted(a % ndim for a in self.axis))
        for d in self._keep_axis:
            if input_shape[d] is None:
                raise ValueError(f"All `axis` values to be kept must have a known shape. Received axis={self.axis}, "
                                 f"inputs.shape={input_shape}, with unknown axis at index {d}")
        self._reduce_axis = tuple(d for d in range(ndim) if d not in self._keep_axis)
        self._broadcast_shape = [input_shape[d] if d in self._keep_axis else 1 for d in range(ndim)]
        self._stats_shape = tuple(input_shape[d] for d in self._keep_axis)
        if self.input_mean is None:
            self.adapt_mean = self.add_weight(name="mean", shape=self._stats_shape, initializer="zeros",
                                              trainable=False)
            self.adapt_variance = self.add_weight(name="variance", shape=self._stats_shape, initializer="ones",
                                                  trainable=False)
            # Keras saves this counter but never advances it; kept for file compatibility.
            self.count = self.add_weight(name="count", shape=(), dtype="int32", initializer="zeros",
                                         trainable=False)
            self.built = True
            self.finalize_state()
        else:
            mean = np.asarray(self.input_mean, dtype=self.compute_dtype)
            variance = np.asarray(self.input_variance, dtype=self.compute_dtype)
            if mean.ndim:
                expanded = [1] * ndim
                for i in range(1, mean.ndim + 1):
                    expanded[self._keep_axis[-i]] = mean.shape[-i]
                mean, variance = mean.reshape(expanded), variance.reshape(expanded)
            self._statistics = (np.broadcast_to(mean, self._broadcast_shape),
                                np.broadcast_to(variance, self._broadcast_shape))
            self.built = True

    def adapt(self, data):
        """Learn the mean and variance of ``data`` (an array, or an iterable of batches)."""
        batches = None
        if isinstance(data, np.ndarray) or hasattr(data, "numpy"):
            data = np.asarray(ops.convert_to_numpy(data))
            input_shape = data.shape
        elif hasattr(data, "__iter__"):
            batches = iter(data)
            first = next(batches, None)
            if first is None:
                raise ValueError("adapt() received an empty iterable (no batches). Expected at least one batch.")
            first = first[0] if isinstance(first, tuple) else first
            input_shape = np.shape(first)
            batches = _chain(first, batches)
        else:
            raise TypeError(f"Unsupported data type: {type(data)}. `adapt` supports `np.ndarray` and iterables "
                            "of batches.")
        if not self.built:
            self.build(input_shape)
        elif self._keep_axis is not None:
            for d in self._keep_axis:
                if input_shape[d] != self._build_input_shape[d]:
                    raise ValueError(f"The layer was built with input_shape={self._build_input_shape}, but adapt() "
                                     f"is being called with data with an incompatible shape, "
                                     f"data.shape={tuple(input_shape)}")
        if self.input_mean is not None:
            raise ValueError("Normalization was given `mean` and `variance`; it cannot be adapted.")
        if batches is None:
            total_mean = np.mean(data, axis=self._reduce_axis)
            total_var = np.var(data, axis=self._reduce_axis)
        else:
            # Pooled mean and variance, updated batch by batch.
            total_mean = np.zeros(self._stats_shape)
            total_var = np.zeros(self._stats_shape)
            total_count = 0
            for batch in batches:
                batch = batch[0] if isinstance(batch, tuple) else batch
                batch = np.asarray(ops.convert_to_numpy(batch), dtype=self.compute_dtype)
                for d in self._keep_axis:
                    if batch.shape[d] != self._build_input_shape[d]:
                        raise ValueError(f"adapt() yielded a batch with incompatible shape. Expected "
                                         f"{self._build_input_shape}, got {batch.shape}.")
                batch_mean = np.mean(batch, axis=self._reduce_axis)
                batch_var = np.var(batch, axis=self._reduce_axis)
                batch_count = math.prod(batch.shape[d] for d in self._reduce_axis) if self._reduce_axis else 1
                total_count += batch_count
                weight = batch_count / total_count
                new_mean = total_mean * (1 - weight) + batch_mean * weight
                total_var = ((total_var + (total_mean - new_mean) ** 2) * (1 - weight)
                             + (batch_var + (batch_mean - new_mean) ** 2) * weight)
                total_mean = new_mean
        dtype = self.adapt_mean.dtype
        self.adapt_mean.assign(np.asarray(total_mean, dtype=dtype).reshape(self._stats_shape))
        self.adapt_variance.assign(np.asarray(total_var, dtype=dtype).reshape(self._stats_shape))
        self.finalize_state()

    def finalize_state(self):
        if self.input_mean is not None or not self.built:
            return
        self._statistics = (np.reshape(self.adapt_mean.numpy(), self._broadcast_shape).astype(self.compute_dtype),
                            np.reshape(self.adapt_variance.numpy(), self._broadcast_shape).astype(self.compute_dtype))

    @property
    def mean(self):
        return None if self._statistics is None else self._statistics[0]

    @property
    def variance(self):
        return None if self._statistics is None else self._statistics[1]

    def load_own_variables(self, store):
        super().load_own_variables(store)
        self.finalize_state()

    def set_weights(self, weights):
        super().set_weights(weights)
        self.finalize_state()

    def call(self, inputs):
        if self._statistics is None:
            raise ValueError("You must call `.build(input_shape)` on the layer before using it.")
        mean, variance = self._statistics
        if not isinstance(inputs, np.ndarray) or inputs.dtype != self.compute_dtype:
            inputs = ops.cast(inputs, self.compute_dtype)
        std = np.maximum(np.sqrt(variance), _EPSILON)
        if self.invert:
            return ops.add(mean, ops.multiply(inputs, std))
        return ops.divide(ops.subtract(inputs, mean), std)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({
            "axis": list(self.axis),
            "invert": self.invert,
            "mean": np.array(self.input_mean).tolist() if self.input_mean is not None else None,
            "variance": np.array(self.input_variance).tolist() if self.input_variance is not None else None,
        })
        return config

    def get_build_config(self):
        if self._build_input_shape:
            return {"input_shape": list(self._build_input_shape)}
        return None

    def build_from_config(self, config):
        if config:
            self.build(tuple(config["input_shape"]))


def _chain(first, rest):
    yield first
    yield from rest
