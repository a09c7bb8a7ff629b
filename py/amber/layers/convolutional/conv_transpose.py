"""Conv1DTranspose / Conv2DTranspose / Conv3DTranspose: the transpose of a convolution
(upsampling by ``strides``); kernel (*kernel_size, filters, input_channels)."""

from amber import ops
from amber.layers.convolutional.base_conv import BaseConv, standardize_tuple
from amber.layers.layer import Layer


class BaseConvTranspose(BaseConv):
    def __init__(self, filters, kernel_size, strides=1, padding="valid", output_padding=None, data_format=None,
                 dilation_rate=1, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(filters, kernel_size, strides=strides, padding=padding, data_format=data_format,
                         dilation_rate=dilation_rate, activation=activation, use_bias=use_bias,
                         kernel_initializer=kernel_initializer, bias_initializer=bias_initializer,
                         kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
                         activity_regularizer=activity_regularizer, kernel_constraint=kernel_constraint,
                         bias_constraint=bias_constraint, **kwargs)
        if self.padding == "causal":
            raise ValueError("`padding='causal'` is not supported by transposed convolutions.")
        if output_padding is None:
            self.output_padding = None
        else:
            self.output_padding = standardize_tuple(output_padding, self.rank, "output_padding", allow_zero=True)
            for stride, extra in zip(self.strides, self.output_padding):
                if extra >= stride:
                    raise ValueError(f"Strides {self.strides} must be greater than output padding "
                                     f"{self.output_padding}.")

    def build(self, input_shape):
        channels = self._fix_input_channels(input_shape)
        self.kernel = self.add_weight(
            name="kernel", shape=self.kernel_size + (self.filters, channels),
            initializer=self.kernel_initializer, regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint)
        self._add_bias(self.filters)

    def convolve(self, inputs):
        return ops.conv_transpose(inputs, self.kernel, strides=self.strides, padding=self.padding,
                                  output_padding=self.output_padding, data_format=self.data_format,
                                  dilation_rate=self.dilation_rate)

    def compute_output_shape(self, input_shape):
        from amber.layers.convolutional.base_conv import spatial_shape, with_channels
        from amber.ops.conv import conv_transpose_output_length

        extras = self.output_padding or (None,) * self.rank
        spatial = [conv_transpose_output_length(n, k, s, self.padding, p, d) for n, k, s, p, d in zip(
            spatial_shape(input_shape, self.data_format, self.rank), self.kernel_size, self.strides, extras,
            self.dilation_rate)]
        return with_channels(input_shape[0], spatial, self.filters, self.data_format)

    def get_config(self):
        from amber import activations

        config = Layer.get_config(self)
        config.update({
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "output_padding": self.output_padding,
            "data_format": self.data_format,
            "dilation_rate": self.dilation_rate,
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            **self._weight_options_config(),
        })
        return config


def _transpose_class(name, rank, default_strides, default_dilation):
    """The three public classes differ only in rank and their signature defaults."""

    def __init__(self, filters, kernel_size, strides=default_strides, padding="valid", output_padding=None,
                 data_format=None, dilation_rate=default_dilation, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None, bias_constraint=None,
                 **kwargs):
        BaseConvTranspose.__init__(
            self, filters, kernel_size, strides=strides, padding=padding, output_padding=output_padding,
            data_format=data_format, dilation_rate=dilation_rate, activation=activation, use_bias=use_bias,
            kernel_initializer=kernel_initializer, bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer, kernel_constraint=kernel_constraint,
            bias_constraint=bias_constraint, **kwargs)

    return type(name, (BaseConvTranspose,), {"rank": rank, "__init__": __init__,
                                             "__module__": __name__, "__qualname__": name})


Conv1DTranspose = _transpose_class("Conv1DTranspose", 1, 1, 1)
Conv2DTranspose = _transpose_class("Conv2DTranspose", 2, (1, 1), (1, 1))
Conv3DTranspose = _transpose_class("Conv3DTranspose", 3, (1, 1, 1), (1, 1, 1))
