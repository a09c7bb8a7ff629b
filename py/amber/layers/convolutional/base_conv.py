"""What every convolution layer shares: argument checking with Keras 3's messages, the
channel axis, bias and activation, output shapes and the common config keys."""

import numpy as np

from amber import ops
from amber.layers.layer import InputSpec, Layer


def standardize_tuple(value, rank, name, allow_zero=False):
    """An int or a sequence of ``rank`` ints, as a tuple (Keras's rule and message)."""
    if isinstance(value, (int, np.integer)):
        values = (int(value),) * rank
    else:
        try:
            values = tuple(int(v) for v in value)
        except TypeError:
            raise ValueError(f"The `{name}` argument must be a tuple of {rank} integers. Received {name}={value}")
        if len(values) != rank:
            raise ValueError(f"The `{name}` argument must be a tuple of {rank} integers. Received {name}={value}")
    lowest = 0 if allow_zero else 1
    if any(v < lowest for v in values):
        raise ValueError(f"The `{name}` argument must be a tuple of {rank} integers >= {lowest}. "
                         f"Received {name}={value}")
    return values


def standardize_data_format(data_format):
    if data_format is None:
        from amber.backend.config import image_data_format

        return image_data_format()
    data_format = str(data_format).lower()
    if data_format not in ("channels_first", "channels_last"):
        raise ValueError(f"The `data_format` argument must be one of {{'channels_first', 'channels_last'}}. "
                         f"Received: data_format={data_format}")
    return data_format


def standardize_padding(padding, allow_causal=False):
    padding = str(padding).lower()
    allowed = ("valid", "same", "causal") if allow_causal else ("valid", "same")
    if padding not in allowed:
        raise ValueError(f"The `padding` argument must be a list/tuple or one of {allowed}. "
                         f"Received: {padding}")
    return padding


def serialize(obj):
    """Keras's config form of an initializer / regularizer / constraint (None stays None)."""
    if obj is None:
        return None
    from amber.saving import serialize_keras_object

    return serialize_keras_object(obj)


def spatial_shape(input_shape, data_format, rank):
    shape = tuple(input_shape)
    return shape[2:2 + rank] if data_format == "channels_first" else shape[1:1 + rank]


def with_channels(batch, spatial, channels, data_format):
    if data_format == "channels_first":
        return (batch, channels) + tuple(spatial)
    return (batch,) + tuple(spatial) + (channels,)


def check_rank(layer, inputs):
    """Layers that create no weights are never built, so their rank is checked per call."""
    ndim = len(inputs.shape)
    if ndim != layer.rank + 2:
        raise ValueError(f"Input 0 of layer '{layer.name}' is incompatible with the layer: expected "
                         f"ndim={layer.rank + 2}, found ndim={ndim}. Full shape received: {tuple(inputs.shape)}")


def add_bias(outputs, bias, data_format, rank):
    if data_format == "channels_first":
        bias = ops.reshape(bias, (1, -1) + (1,) * rank)
    return ops.add(outputs, bias)


class BaseConv(Layer):
    """Conv1D / Conv2D / Conv3D: ``activation(conv(inputs, kernel) + bias)`` with a kernel
    of shape (*kernel_size, input_channels // groups, filters)."""

    rank = None

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 groups=1, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        from amber import activations, constraints, initializers, regularizers

        rank = self.rank
        if filters is not None and (not isinstance(filters, (int, np.integer)) or filters <= 0):
            raise ValueError(f"Invalid value for argument `filters`. Expected a strictly positive value. "
                             f"Received filters={filters}.")
        self.filters = None if filters is None else int(filters)
        self.groups = int(groups) if groups is not None else 1
        if self.groups <= 0:
            raise ValueError(f"The number of groups must be a positive integer. Received: groups={groups}.")
        if self.filters is not None and self.filters % self.groups:
            raise ValueError(f"The number of filters must be evenly divisible by the number of groups. "
                             f"Received: groups={self.groups}, filters={self.filters}.")
        self.kernel_size = standardize_tuple(kernel_size, rank, "kernel_size")
        self.strides = standardize_tuple(strides, rank, "strides")
        self.dilation_rate = standardize_tuple(dilation_rate, rank, "dilation_rate")
        self.padding = standardize_padding(padding, allow_causal=rank == 1)
        self.data_format = standardize_data_format(data_format)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.input_spec = InputSpec(min_ndim=rank + 2)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(f"`strides > 1` not supported in conjunction with `dilation_rate > 1`. "
                             f"Received: strides={self.strides} and dilation_rate={self.dilation_rate}")
        self.kernel = None
        self.bias = None

    @property
    def channel_axis(self):
        return 1 if self.data_format == "channels_first" else -1

    def _input_channels(self, input_shape):
        channels = input_shape[self.channel_axis]
        if channels is None:
            raise ValueError(f"Layer '{self.name}' needs a known channel dimension, got input shape {input_shape}")
        return int(channels)

    def _fix_input_channels(self, input_shape):
        """At build: the input's channel count, which later inputs must then match."""
        channels = self._input_channels(input_shape)
        self.input_spec = InputSpec(min_ndim=self.rank + 2, axes={self.channel_axis: channels})
        return channels

    def _add_bias(self, size):
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(size,), initializer=self.bias_initializer,
                                        regularizer=self.bias_regularizer, constraint=self.bias_constraint)

    def _weight_options_config(self, kernels=(("kernel", "kernel"),)):
        """The initializer, regularizer and constraint config keys in Keras's order: per kind,
        each kernel's then the bias's (activity_regularizer after the regularizers).
        `kernels` pairs each kernel's config prefix with its attribute prefix here
        (depthwise layers configure the kernel as `depthwise_*`)."""
        config = {}
        for kind in ("initializer", "regularizer", "constraint"):
            for key, attribute in kernels + (("bias", "bias"),):
                config[f"{key}_{kind}"] = serialize(getattr(self, f"{attribute}_{kind}"))
            if kind == "regularizer":
                config["activity_regularizer"] = serialize(self.activity_regularizer)
        return config

    def build(self, input_shape):
        channels = self._input_channels(input_shape)
        if channels % self.groups:
            raise ValueError(
                f"The number of input channels must be evenly divisible by the number of groups. Received "
                f"groups={self.groups}, but the input has {channels} channels (full input shape is "
                f"{input_shape}).")
        self._fix_input_channels(input_shape)
        self.kernel = self.add_weight(
            name="kernel", shape=self.kernel_size + (channels // self.groups, self.filters),
            initializer=self.kernel_initializer, regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint)
        self._add_bias(self.filters)

    def convolve(self, inputs):
        return ops.conv(inputs, self.kernel, strides=self.strides, padding=self.padding,
                        data_format=self.data_format, dilation_rate=self.dilation_rate)

    def call(self, inputs):
        outputs = self.convolve(inputs)
        if self.use_bias:
            outputs = add_bias(outputs, self.bias, self.data_format, self.rank)
        return self.activation(outputs) if self.activation is not None else outputs

    def _output_channels(self, input_shape):
        return self.filters

    def compute_output_shape(self, input_shape):
        from amber.ops.conv import conv_output_length

        spatial = [conv_output_length(n, k, s, self.padding, d) for n, k, s, d in zip(
            spatial_shape(input_shape, self.data_format, self.rank), self.kernel_size, self.strides,
            self.dilation_rate)]
        return with_channels(input_shape[0], spatial, self._output_channels(input_shape), self.data_format)

    def get_config(self):
        from amber import activations

        config = super().get_config()
        config.update({
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": self.data_format,
            "dilation_rate": self.dilation_rate,
            "groups": self.groups,
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            **self._weight_options_config(),
        })
        return config


class Conv1D(BaseConv):
    rank = 1

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 groups=1, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(filters, kernel_size, strides=strides, padding=padding, data_format=data_format,
                         dilation_rate=dilation_rate, groups=groups, activation=activation, use_bias=use_bias,
                         kernel_initializer=kernel_initializer, bias_initializer=bias_initializer,
                         kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
                         activity_regularizer=activity_regularizer, kernel_constraint=kernel_constraint,
                         bias_constraint=bias_constraint, **kwargs)


class Conv2D(BaseConv):
    rank = 2

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None, bias_constraint=None,
                 **kwargs):
        super().__init__(filters, kernel_size, strides=strides, padding=padding, data_format=data_format,
                         dilation_rate=dilation_rate, groups=groups, activation=activation, use_bias=use_bias,
                         kernel_initializer=kernel_initializer, bias_initializer=bias_initializer,
                         kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
                         activity_regularizer=activity_regularizer, kernel_constraint=kernel_constraint,
                         bias_constraint=bias_constraint, **kwargs)


class Conv3D(BaseConv):
    rank = 3

    def __init__(self, filters, kernel_size, strides=(1, 1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1, 1), groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None, bias_constraint=None,
                 **kwargs):
        super().__init__(filters, kernel_size, strides=strides, padding=padding, data_format=data_format,
                         dilation_rate=dilation_rate, groups=groups, activation=activation, use_bias=use_bias,
                         kernel_initializer=kernel_initializer, bias_initializer=bias_initializer,
                         kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
                         activity_regularizer=activity_regularizer, kernel_constraint=kernel_constraint,
                         bias_constraint=bias_constraint, **kwargs)
