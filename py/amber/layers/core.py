"""Core layers: Dense, Activation, Dropout, Embedding, Identity, Lambda and the
shape / activation layers (Flatten, Reshape, Permute, RepeatVector, Rescaling, Softmax,
ReLU, LeakyReLU). Config keys and defaults are Keras 3's."""

import numpy as np

from amber import backend, ops
from amber.backend import linalg
from amber.ops import fused as _fused_ops
from amber.layers.layer import InputSpec, Layer


def _serialize(obj):
    if obj is None:
        return None
    from amber.saving import serialize_keras_object

    return serialize_keras_object(obj)


def _activation_get(identifier):
    from amber import activations

    return activations.get(identifier)


def _activation_name(fn):
    from amber import activations

    return activations.serialize(fn)


def _recording():
    return backend.is_recording()


class Dense(Layer):
    """``activation(inputs @ kernel + bias)`` over the last axis."""

    _FUSED = ("linear", "relu", "sigmoid", "tanh")

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None, lora_rank=None,
                 lora_alpha=None, quantization_config=None, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        from amber import constraints, initializers, regularizers

        if not isinstance(units, (int, np.integer)) or int(units) <= 0:
            raise ValueError(f"Received an invalid value for `units`, expected a positive integer. "
                             f"Received: units={units}")
        self.units = int(units)
        self.activation = _activation_get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.quantization_config = quantization_config
        self.input_spec = InputSpec(min_ndim=2)
        self.supports_masking = True
        self.kernel = None
        self.bias = None
        self._fused_name = None

    def build(self, input_shape):
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(f"Dense layer '{self.name}' needs a known last input dimension, got {input_shape}")
        self.kernel = self.add_weight(name="kernel", shape=(input_dim, self.units),
                                      initializer=self.kernel_initializer,
                                      regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(self.units,), initializer=self.bias_initializer,
                                        regularizer=self.bias_regularizer, constraint=self.bias_constraint)
        self.input_spec = InputSpec(min_ndim=2, axes={-1: input_dim})
        name = _activation_name(self.activation)
        self._fused_name = name if name in self._FUSED else None

    def call(self, inputs, training=None):
        # Inference on plain arrays takes the fused kernel path (one call, no graph).
        if self._fused_name is not None and isinstance(inputs, np.ndarray) and not _recording():
            bias = self.bias.value if self.bias is not None else None
            return _linalg_dense(inputs, self.kernel.value, bias, self._fused_name)
        if self._fused_name in _fused_ops.DENSE_ACTIVATIONS:
            # Training: one recorded node instead of matmul, add and activation.
            value = inputs.value if type(inputs) is backend.Tensor else inputs
            kernel = self.kernel.value
            if type(value) is np.ndarray and value.ndim == 2 and value.dtype == kernel.dtype:
                return _fused_ops.dense(inputs, self.kernel, self.bias, self._fused_name)
        x = ops.matmul(inputs, self.kernel)
        if self.bias is not None:
            x = ops.add(x, self.bias)
        return self.activation(x)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        from amber import constraints, initializers, regularizers

        config = super().get_config()
        config.update({
            "units": self.units,
            "activation": _activation_name(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer)
            if self.kernel_regularizer is not None else None,
            "bias_regularizer": regularizers.serialize(self.bias_regularizer)
            if self.bias_regularizer is not None else None,
            "kernel_constraint": constraints.serialize(self.kernel_constraint)
            if self.kernel_constraint is not None else None,
            "bias_constraint": constraints.serialize(self.bias_constraint)
            if self.bias_constraint is not None else None,
            "quantization_config": self.quantization_config,
        })
        return config


def _linalg_dense(x, kernel, bias, activation):
    if x.dtype != kernel.dtype:
        x = x.astype(kernel.dtype)
    return linalg.dense(x, kernel, bias, activation)


class Activation(Layer):
    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        self.activation = _activation_get(activation)

    def call(self, inputs):
        return self.activation(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["activation"] = _activation_name(self.activation)
        return config


class Dropout(Layer):
    """Zeroes a ``rate`` fraction of inputs while training (scaling the rest up); identity at
    inference."""

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= rate <= 1:
            raise ValueError(f"Invalid value received for argument `rate`. Expected a float value "
                             f"between 0 and 1. Received: rate={rate}")
        self.rate = rate
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)
        self.seed = seed
        self._generator = np.random.default_rng(seed) if seed is not None else None
        self.supports_masking = True

    def call(self, inputs, training=False):
        if not training or self.rate == 0:
            return inputs
        return ops.multiply(inputs, self._training_scale(inputs))

    def _training_scale(self, inputs):
        """The factor training multiplies ``inputs`` by: kept entries ``1 / (1 - rate)``, dropped
        ones 0 (shaped as ``noise_shape`` when given), drawn from the layer's generator or the
        global one. Also what the compiled training step multiplies by, in the same order."""
        shape = tuple(np.shape(inputs)) if self.noise_shape is None else tuple(
            d if d is not None else s for d, s in zip(self.noise_shape, np.shape(inputs)))
        generator = self._generator
        if generator is None:
            from amber.backend import random

            generator = random.generator()
        keep = generator.random(shape) >= self.rate
        dtype = np.dtype(getattr(inputs, "dtype", "float32"))
        return (keep / (1.0 - self.rate)).astype(dtype) if self.rate < 1 else np.zeros(shape, dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "seed": self.seed,
                       "noise_shape": list(self.noise_shape) if self.noise_shape is not None else None})
        return config


class Identity(Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape


class Flatten(Layer):
    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = "channels_last" if data_format is None else data_format
        self.input_spec = InputSpec(min_ndim=1)

    def call(self, inputs):
        if self.data_format == "channels_first" and len(np.shape(inputs)) > 2:
            rank = len(np.shape(inputs))
            inputs = ops.transpose(inputs, (0,) + tuple(range(2, rank)) + (1,))
        batch = np.shape(inputs)[0]
        return ops.reshape(inputs, (batch, -1))

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        size = None if any(d is None for d in rest) else int(np.prod(rest)) if rest else 1
        return (input_shape[0], size)

    def get_config(self):
        config = super().get_config()
        config["data_format"] = self.data_format
        return config


class Reshape(Layer):
    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        self.target_shape = tuple(target_shape)

    def call(self, inputs):
        return ops.reshape(inputs, (np.shape(inputs)[0],) + self.target_shape)

    def compute_output_shape(self, input_shape):
        target = list(self.target_shape)
        if -1 in target:
            known = input_shape[1:]
            if any(d is None for d in known):
                target[target.index(-1)] = None
            else:
                rest = int(np.prod([d for d in target if d != -1]))
                total = int(np.prod(known))
                if rest == 0 or total % rest:
                    raise ValueError(f"Reshape '{self.name}': cannot reshape {input_shape} to {self.target_shape}")
                target[target.index(-1)] = total // rest
        elif all(d is not None for d in input_shape[1:]):
            if int(np.prod(input_shape[1:])) != int(np.prod(target)):
                raise ValueError(f"Reshape '{self.name}': total size of the input {input_shape[1:]} does not "
                                 f"match the target shape {self.target_shape}")
        return (input_shape[0],) + tuple(target)

    def get_config(self):
        config = super().get_config()
        config["target_shape"] = list(self.target_shape)
        return config


class Permute(Layer):
    def __init__(self, dims, **kwargs):
        super().__init__(**kwargs)
        self.dims = tuple(dims)
        if sorted(self.dims) != list(range(1, len(self.dims) + 1)):
            raise ValueError(f"Invalid permutation argument `dims` for Permute Layer. The set of indices in "
                             f"`dims` must be consecutive and start from 1. Received dims={dims}")
        self.input_spec = InputSpec(ndim=len(self.dims) + 1)

    def call(self, inputs):
        return ops.transpose(inputs, (0,) + self.dims)

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + tuple(input_shape[d] for d in self.dims)

    def get_config(self):
        config = super().get_config()
        config["dims"] = list(self.dims)
        return config


class RepeatVector(Layer):
    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(n, int):
            raise TypeError(f"Expected an integer value for `n`, got {type(n)}.")
        self.n = n
        self.input_spec = InputSpec(ndim=2)

    def call(self, inputs):
        return ops.repeat(ops.expand_dims(inputs, 1), self.n, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n, input_shape[1])

    def get_config(self):
        config = super().get_config()
        config["n"] = self.n
        return config


class Embedding(Layer):
    """Rows of a trainable ``(input_dim, output_dim)`` table picked by integer inputs."""

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform", embeddings_regularizer=None,
                 embeddings_constraint=None, mask_zero=False, weights=None, lora_rank=None, lora_alpha=None,
                 quantization_config=None, **kwargs):
        activity_regularizer = kwargs.pop("activity_regularizer", None)
        kwargs.pop("input_length", None)
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        from amber import constraints, initializers, regularizers

        self.input_dim = int(input_dim)
        self.output_dim = int(output_dim)
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self.embeddings_regularizer = regularizers.get(embeddings_regularizer)
        self.embeddings_constraint = constraints.get(embeddings_constraint)
        self.mask_zero = bool(mask_zero)
        self.supports_masking = self.mask_zero
        self.quantization_config = quantization_config
        self.embeddings = None
        self._initial_weights = weights

    def build(self, input_shape=None):
        self.embeddings = self.add_weight(shape=(self.input_dim, self.output_dim),
                                          initializer=self.embeddings_initializer, name="embeddings",
                                          regularizer=self.embeddings_regularizer,
                                          constraint=self.embeddings_constraint)
        if self._initial_weights is not None:
            self.set_weights(self._initial_weights)
            self._initial_weights = None

    def call(self, inputs):
        indices = inputs
        if isinstance(indices, np.ndarray) and indices.dtype.kind != "i":
            indices = indices.astype("int32")
        return ops.take(self.embeddings, indices, axis=0)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def compute_output_spec(self, *args, **kwargs):
        from amber.layers.keras_tensor import KerasTensor

        inputs = args[0] if args else next(iter(kwargs.values()))
        return KerasTensor(self.compute_output_shape(inputs.shape), dtype=self.compute_dtype)

    def compute_mask(self, inputs, mask=None):
        if not self.mask_zero:
            return None
        return ops.not_equal(inputs, 0)

    def get_config(self):
        from amber import constraints, initializers, regularizers

        config = super().get_config()
        config.update({
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "embeddings_initializer": initializers.serialize(self.embeddings_initializer),
            "embeddings_regularizer": regularizers.serialize(self.embeddings_regularizer)
            if self.embeddings_regularizer is not None else None,
            "activity_regularizer": regularizers.serialize(self.activity_regularizer)
            if self.activity_regularizer is not None else None,
            "embeddings_constraint": constraints.serialize(self.embeddings_constraint)
            if self.embeddings_constraint is not None else None,
            "mask_zero": self.mask_zero,
            "quantization_config": self.quantization_config,
        })
        return config


class Rescaling(Layer):
    """``inputs * scale + offset``."""

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale
        self.offset = offset

    def call(self, inputs):
        dtype = self.compute_dtype
        scale = np.asarray(self.scale, dtype=dtype)
        offset = np.asarray(self.offset, dtype=dtype)
        return ops.add(ops.multiply(inputs, scale), offset)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"scale": _plain_number(self.scale), "offset": _plain_number(self.offset)})
        return config


def _plain_number(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


class Softmax(Layer):
    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is not None:
            inputs = ops.add(inputs, (1.0 - np.asarray(mask, dtype=self.compute_dtype)) * -1e9)
        return ops.softmax(inputs, axis=self.axis)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["axis"] = self.axis
        return config


class ReLU(Layer):
    """``max(x, 0)`` generalized: a cap (``max_value``), a slope below ``threshold``."""

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        if max_value is not None and max_value < 0.0:
            raise ValueError(f"max_value of a ReLU layer cannot be a negative value. Received: {max_value}")
        if negative_slope is None or negative_slope < 0.0:
            raise ValueError(f"negative_slope of a ReLU layer cannot be a negative value. Received: "
                             f"{negative_slope}")
        if threshold is None or threshold < 0.0:
            raise ValueError(f"threshold of a ReLU layer cannot be a negative value. Received: {threshold}")
        self.max_value = max_value
        self.negative_slope = negative_slope
        self.threshold = threshold
        self.supports_masking = True

    def call(self, inputs):
        dtype = self.compute_dtype
        threshold = np.asarray(self.threshold, dtype)
        if self.negative_slope == 0 and self.threshold == 0:
            if self.max_value is not None:
                clipped = _fused_ops.clipped_relu(inputs, np.asarray(self.max_value, dtype))
                if clipped is not None:
                    return clipped
            out = ops.relu(inputs)
        else:
            above = np.asarray(ops.convert_to_numpy(inputs) > threshold)
            shifted = ops.subtract(inputs, threshold)
            out = ops.add(ops.multiply(inputs, above.astype(dtype)),
                          ops.multiply(shifted, (~above).astype(dtype) * np.asarray(self.negative_slope, dtype)))
        if self.max_value is not None:
            out = ops.minimum(out, np.asarray(self.max_value, dtype))
        return out

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"max_value": self.max_value, "negative_slope": self.negative_slope,
                       "threshold": self.threshold})
        return config


class LeakyReLU(Layer):
    def __init__(self, negative_slope=0.3, **kwargs):
        if "alpha" in kwargs:
            negative_slope = kwargs.pop("alpha")
        super().__init__(**kwargs)
        if negative_slope is None or negative_slope < 0:
            raise ValueError(f"The negative_slope value of a Leaky ReLU layer cannot be None or negative. "
                             f"Received: negative_slope={negative_slope}")
        self.negative_slope = negative_slope
        self.supports_masking = True

    def call(self, inputs):
        return ops.leaky_relu(inputs, negative_slope=self.negative_slope)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["negative_slope"] = self.negative_slope
        return config


class Lambda(Layer):
    """Wraps a Python function as a layer. Its config carries the function: a registered
    function by name, a lambda as marshaled bytecode (loading that needs safe_mode=False)."""

    def __init__(self, function, output_shape=None, mask=None, arguments=None, **kwargs):
        super().__init__(**kwargs)
        self.function = function
        self._output_shape = output_shape
        self.mask = mask
        self.arguments = dict(arguments or {})
        self.supports_masking = True

    def call(self, inputs, mask=None, training=None):
        import inspect

        kwargs = dict(self.arguments)
        try:
            params = inspect.signature(self.function).parameters
        except (TypeError, ValueError):
            params = {}
        if "mask" in params:
            kwargs["mask"] = mask
        if "training" in params:
            kwargs["training"] = training
        return self.function(inputs, **kwargs)

    def compute_output_shape(self, input_shape):
        if self._output_shape is None:
            raise NotImplementedError
        if callable(self._output_shape):
            return self._output_shape(input_shape)
        return (input_shape[0],) + tuple(self._output_shape)

    def get_config(self):
        config = super().get_config()
        config["function"] = _serialize(self.function)
        if self._output_shape is not None:
            config["output_shape"] = _serialize(self._output_shape) if callable(self._output_shape) \
                else list(self._output_shape)
        if self.mask is not None:
            config["mask"] = _serialize(self.mask) if callable(self.mask) else self.mask
        config["arguments"] = self.arguments
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None, safe_mode=None):
        from amber.saving import deserialize_keras_object

        config = dict(config)
        kwargs = {} if safe_mode is None else {"safe_mode": safe_mode}
        for key in ("function", "output_shape", "mask"):
            value = config.get(key)
            if isinstance(value, dict):
                config[key] = deserialize_keras_object(value, custom_objects=custom_objects, **kwargs)
        return cls(**config)

