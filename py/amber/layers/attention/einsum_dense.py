"""EinsumDense: a dense layer whose product is an einsum equation, e.g. ``"abc,cde->abde"``
projects the last axis into (heads, head_dim). Kernel and bias shapes follow from the
equation, the input shape and the (partial) output shape, as in Keras 3."""

import re

from amber import ops
from amber.layers.layer import InputSpec, Layer

_PLAIN = re.compile(r"([a-zA-Z]+),([a-zA-Z]+)->([a-zA-Z]+)$")
_LEFT_ELIDED = re.compile(r"0([a-zA-Z]+),([a-zA-Z]+)->0([a-zA-Z]+)$")
_RIGHT_ELIDED = re.compile(r"([a-zA-Z]{2,})0,([a-zA-Z]+)->([a-zA-Z]+)0$")


def _serialize_or_none(namespace, obj):
    return namespace.serialize(obj) if obj is not None else None


def analyze_equation(equation, bias_axes, input_shape, output_shape):
    """(kernel_shape, bias_shape or None, full output shape, kernel input axes, kernel output
    axes) for ``equation`` applied to ``input_shape``."""
    text = equation.replace("...", "0")
    left_elided = False
    match = _PLAIN.match(text)
    if match is None:
        match = _LEFT_ELIDED.match(text)
        left_elided = match is not None
    if match is None:
        match = _RIGHT_ELIDED.match(text)
    if match is None:
        raise ValueError(f"Invalid einsum equation '{equation}'. Equations must be in the form "
                         "[X],[Y]->[Z], ...[X],[Y]->...[Z], or [X]...,[Y]->[Z]....")
    input_spec, weight_spec, output_spec = match.groups()
    input_shape = list(input_shape)
    elided = len(input_shape) - len(input_spec)
    output_shape = [output_shape] if isinstance(output_shape, int) else list(output_shape)
    output_shape.insert(0, input_shape[0])
    if elided > 0 and left_elided:
        for i in range(1, elided):
            output_shape.insert(1, input_shape[i])
    elif elided > 0:
        for i in range(len(input_shape) - elided, len(input_shape)):
            output_shape.append(input_shape[i])
    if left_elided:
        input_axis = {d: i + elided - len(input_shape) for i, d in enumerate(input_spec)}
        output_axis = {d: i + elided for i, d in enumerate(output_spec)}
    else:
        input_axis = {d: i for i, d in enumerate(input_spec)}
        output_axis = {d: i for i, d in enumerate(output_spec)}
    for d in input_spec:
        if d in output_axis:
            want, got = output_shape[output_axis[d]], input_shape[input_axis[d]]
            if want is not None and want != got:
                raise ValueError(f"Input shape and output shape do not match at shared dimension '{d}'. "
                                 f"Input shape is {got}, and output shape is {want}.")
    for d in output_spec:
        if d not in input_spec and d not in weight_spec:
            raise ValueError(f"Dimension '{d}' was specified in the output '{output_spec}' but has no "
                             f"corresponding dim in the input spec '{input_spec}' or weight spec '{weight_spec}'")
    kernel_shape, in_axes, out_axes = [], [], []
    for i, d in enumerate(weight_spec):
        if d in output_axis:
            kernel_shape.append(output_shape[output_axis[d]])
            out_axes.append(i)
        elif d in input_axis:
            kernel_shape.append(input_shape[input_axis[d]])
            in_axes.append(i)
        else:
            raise ValueError(f"Weight dimension '{d}' did not have a match in either the input spec "
                             f"'{input_spec}' or the output spec '{output_spec}'. For this layer, the weight "
                             "must be fully specified.")
    bias_shape = None
    if bias_axes is not None:
        offset = elided if left_elided else 0
        sizes = {d: output_shape[i + offset] for i, d in enumerate(output_spec)}
        for d in bias_axes:
            if d not in output_spec:
                raise ValueError(f"Bias dimension '{d}' was requested, but is not part of the output spec "
                                 f"'{output_spec}'")
        first = min(output_spec.find(d) for d in bias_axes)
        bias_shape = [sizes[d] if d in bias_axes else 1 for d in output_spec[first:]]
        if not left_elided:
            bias_shape.extend([1] * max(elided, 0))
    return kernel_shape, bias_shape, output_shape, in_axes, out_axes


class EinsumDense(Layer):
    def __init__(self, equation, output_shape, activation=None, bias_axes=None, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, lora_rank=None, lora_alpha=None, gptq_unpacked_column_size=None,
                 quantization_config=None, **kwargs):
        super().__init__(**kwargs)
        from amber import activations, constraints, initializers, regularizers

        self.equation = equation
        if isinstance(output_shape, int):
            self.partial_output_shape = (output_shape,)
        else:
            self.partial_output_shape = tuple(output_shape)
        self.bias_axes = bias_axes
        self.activation = activations.get(activation)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.quantization_config = quantization_config
        self.full_output_shape = None
        self._kernel = None
        self.bias = None

    @property
    def kernel(self):
        return self._kernel

    def build(self, input_shape):
        kernel_shape, bias_shape, full_output, in_axes, out_axes = analyze_equation(
            self.equation, self.bias_axes, input_shape, self.partial_output_shape)
        self.full_output_shape = tuple(full_output)
        self.input_spec = InputSpec(ndim=len(input_shape))
        self._kernel = self.add_weight(name="kernel", shape=tuple(kernel_shape),
                                       initializer=self._kernel_initializer_for(in_axes, out_axes),
                                       regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
        if bias_shape is not None:
            self.bias = self.add_weight(name="bias", shape=tuple(bias_shape), initializer=self.bias_initializer,
                                        regularizer=self.bias_regularizer, constraint=self.bias_constraint)

    def _kernel_initializer_for(self, in_axes, out_axes):
        """Variance-scaling initializers count fans over the equation's input and output axes
        (the kernel is not a plain matrix)."""
        from amber import initializers

        init = self.kernel_initializer
        if getattr(init, "input_axes", 0) is None or getattr(init, "output_axes", 0) is None:
            try:
                config = dict(init.get_config())
                config["input_axes"], config["output_axes"] = list(in_axes), list(out_axes)
                return type(init).from_config(config)
            except (AttributeError, TypeError, ValueError):
                return init
        return initializers.get(init)

    def compute_output_shape(self, input_shape):
        return tuple(analyze_equation(self.equation, self.bias_axes, input_shape, self.partial_output_shape)[2])

    def call(self, inputs, training=None):
        x = ops.einsum(self.equation, inputs, self._kernel)
        if self.bias is not None:
            x = ops.add(x, self.bias)
        if self.activation is not None:
            x = self.activation(x)
        return x

    def get_config(self):
        from amber import activations, constraints, initializers, regularizers

        config = super().get_config()
        config.update({
            "output_shape": list(self.partial_output_shape),
            "equation": self.equation,
            "activation": activations.serialize(self.activation),
            "bias_axes": self.bias_axes,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": _serialize_or_none(regularizers, self.kernel_regularizer),
            "bias_regularizer": _serialize_or_none(regularizers, self.bias_regularizer),
            "activity_regularizer": _serialize_or_none(regularizers, self.activity_regularizer),
            "kernel_constraint": _serialize_or_none(constraints, self.kernel_constraint),
            "bias_constraint": _serialize_or_none(constraints, self.bias_constraint),
            "quantization_config": self.quantization_config,
        })
        return config
