"""BatchNormalization and LayerNormalization (Keras 3 semantics, variable order and config)."""

import numpy as np

from amber import ops
from amber.ops import fused
from amber.layers.layer import InputSpec, Layer


def _serialize_or_none(namespace, obj):
    return namespace.serialize(obj) if obj is not None else None


# The learned per-channel scale (gamma) and offset (beta) that BatchNormalization,
# LayerNormalization and GroupNormalization share: their options, weights and config keys.

def init_scale_offset(layer, beta_initializer, gamma_initializer, beta_regularizer, gamma_regularizer,
                      beta_constraint, gamma_constraint):
    from amber import constraints, initializers, regularizers

    layer.beta_initializer = initializers.get(beta_initializer)
    layer.gamma_initializer = initializers.get(gamma_initializer)
    layer.beta_regularizer = regularizers.get(beta_regularizer)
    layer.gamma_regularizer = regularizers.get(gamma_regularizer)
    layer.beta_constraint = constraints.get(beta_constraint)
    layer.gamma_constraint = constraints.get(gamma_constraint)
    layer.gamma = None
    layer.beta = None


def add_scale_offset_weights(layer, shape, scale, center):
    """Creates gamma (when `scale`) then beta (when `center`), Keras's variable order."""
    if scale:
        layer.gamma = layer.add_weight(shape=shape, name="gamma", initializer=layer.gamma_initializer,
                                       regularizer=layer.gamma_regularizer, constraint=layer.gamma_constraint)
    if center:
        layer.beta = layer.add_weight(shape=shape, name="beta", initializer=layer.beta_initializer,
                                      regularizer=layer.beta_regularizer, constraint=layer.beta_constraint)


def scale_offset_config(layer, **other_initializers):
    """The six config keys in Keras's order; `other_initializers` (BatchNormalization's moving
    statistics) go where Keras lists them, right after the two initializers."""
    from amber import constraints, initializers, regularizers

    return {
        "beta_initializer": initializers.serialize(layer.beta_initializer),
        "gamma_initializer": initializers.serialize(layer.gamma_initializer),
        **other_initializers,
        "beta_regularizer": _serialize_or_none(regularizers, layer.beta_regularizer),
        "gamma_regularizer": _serialize_or_none(regularizers, layer.gamma_regularizer),
        "beta_constraint": _serialize_or_none(constraints, layer.beta_constraint),
        "gamma_constraint": _serialize_or_none(constraints, layer.gamma_constraint),
    }


def _to_numpy(x):
    return np.asarray(ops.convert_to_numpy(x))


class BatchNormalization(Layer):
    """Normalizes with the batch's statistics while training (and moves ``moving_mean`` /
    ``moving_variance`` towards them by ``momentum``), with the moving statistics otherwise."""

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones", moving_mean_initializer="zeros",
                 moving_variance_initializer="ones", beta_regularizer=None, gamma_regularizer=None,
                 beta_constraint=None, gamma_constraint=None, synchronized=False, renorm=False,
                 renorm_clipping=None, renorm_momentum=0.99, **kwargs):
        super().__init__(**kwargs)
        from amber import initializers

        if renorm:
            raise ValueError("BatchNormalization(renorm=True) is not supported.")
        self.axis = int(axis)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        init_scale_offset(self, beta_initializer, gamma_initializer, beta_regularizer, gamma_regularizer,
                          beta_constraint, gamma_constraint)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self.synchronized = bool(synchronized)
        self.renorm = False
        self.renorm_clipping = renorm_clipping
        self.renorm_momentum = renorm_momentum
        self.supports_masking = True

    def build(self, input_shape):
        rank = len(input_shape)
        axis = self.axis if self.axis >= 0 else rank + self.axis
        if not 0 <= axis < rank or input_shape[axis] is None:
            raise ValueError(f"BatchNormalization '{self.name}': axis {self.axis} is not a known dimension "
                             f"of the input shape {input_shape}")
        shape = (input_shape[axis],)
        add_scale_offset_weights(self, shape, self.scale, self.center)
        self.moving_mean = self.add_weight(shape=shape, name="moving_mean",
                                           initializer=self.moving_mean_initializer, trainable=False)
        self.moving_variance = self.add_weight(shape=shape, name="moving_variance",
                                               initializer=self.moving_variance_initializer, trainable=False)
        self.input_spec = InputSpec(ndim=rank, axes={self.axis: input_shape[axis]})
        self._reduction_axes = tuple(i for i in range(rank) if i != axis)
        self._broadcast_shape = tuple(input_shape[i] if i == axis else 1 for i in range(rank))
        # Per-channel values broadcast by themselves when the channel axis is the last one.
        self._needs_reshape = axis != rank - 1

    def _broadcast(self, value):
        return ops.reshape(value, self._broadcast_shape) if self._needs_reshape else value

    def call(self, inputs, training=None, mask=None):
        if training and self.trainable:
            mean = ops.mean(inputs, axis=self._reduction_axes)
            variance = ops.var(inputs, axis=self._reduction_axes)
            m = self.momentum
            self.moving_mean.assign(self.moving_mean.numpy() * m + _to_numpy(mean) * (1.0 - m))
            self.moving_variance.assign(self.moving_variance.numpy() * m + _to_numpy(variance) * (1.0 - m))
        else:
            mean, variance = self.moving_mean, self.moving_variance
        inv = ops.rsqrt(ops.add(variance, np.asarray(self.epsilon, self.compute_dtype)))
        if self.gamma is not None:
            inv = ops.multiply(inv, self.gamma)
        shift = ops.negative(ops.multiply(mean, inv))
        if self.beta is not None:
            shift = ops.add(shift, self.beta)
        if not self._needs_reshape:
            folded = fused.channel_scale_shift(inputs, inv, shift)
            if folded is not None:
                return folded
        return ops.add(ops.multiply(inputs, self._broadcast(inv)), self._broadcast(shift))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        from amber import initializers

        config = super().get_config()
        config.update({
            "axis": self.axis, "momentum": self.momentum, "epsilon": self.epsilon, "center": self.center,
            "scale": self.scale,
            **scale_offset_config(
                self, moving_mean_initializer=initializers.serialize(self.moving_mean_initializer),
                moving_variance_initializer=initializers.serialize(self.moving_variance_initializer)),
            "synchronized": self.synchronized, "renorm": self.renorm,
            "renorm_clipping": self.renorm_clipping, "renorm_momentum": self.renorm_momentum,
        })
        return config


class LayerNormalization(Layer):
    """Normalizes each sample over ``axis`` (mean/variance, or RMS with ``rms_scaling``)."""

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, rms_scaling=False,
                 beta_initializer="zeros", gamma_initializer="ones", beta_regularizer=None,
                 gamma_regularizer=None, beta_constraint=None, gamma_constraint=None, **kwargs):
        super().__init__(**kwargs)
        self.axis = list(axis) if isinstance(axis, (list, tuple)) else int(axis)
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.rms_scaling = bool(rms_scaling)
        init_scale_offset(self, beta_initializer, gamma_initializer, beta_regularizer, gamma_regularizer,
                          beta_constraint, gamma_constraint)
        self.supports_masking = True

    def build(self, input_shape):
        rank = len(input_shape)
        # As Keras: once built, `axis` is a sorted list (so a built layer's config writes
        # `[-1]`, an unbuilt one `-1`).
        self.axis = sorted(self.axis) if isinstance(self.axis, list) else [self.axis]
        axes = sorted(a if a >= 0 else rank + a for a in self.axis)
        for a in axes:
            if not 0 <= a < rank or input_shape[a] is None:
                raise ValueError(f"LayerNormalization '{self.name}': axis {a} is not a known dimension of "
                                 f"the input shape {input_shape}")
        self._axes = tuple(axes)
        param_shape = tuple(input_shape[a] for a in axes)
        add_scale_offset_weights(self, param_shape, scale=self.scale or self.rms_scaling,
                                 center=self.center and not self.rms_scaling)
        self._broadcast_shape = tuple(input_shape[i] if i in axes else 1 for i in range(rank))
        self._needs_reshape = axes != list(range(rank - len(axes), rank))

    def _broadcast(self, value):
        return ops.reshape(value, self._broadcast_shape) if self._needs_reshape else value

    def call(self, inputs):
        eps = np.asarray(self.epsilon, self.compute_dtype)
        if self.rms_scaling:
            variance = ops.var(inputs, axis=self._axes, keepdims=True)
            out = ops.multiply(inputs, ops.rsqrt(ops.add(variance, eps)))
            return ops.multiply(out, self._broadcast(self.gamma))
        mean = ops.mean(inputs, axis=self._axes, keepdims=True)
        variance = ops.var(inputs, axis=self._axes, keepdims=True)
        out = ops.multiply(ops.subtract(inputs, mean), ops.rsqrt(ops.add(variance, eps)))
        if self.gamma is not None:
            out = ops.multiply(out, self._broadcast(self.gamma))
        if self.beta is not None:
            out = ops.add(out, self._broadcast(self.beta))
        return out

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({
            "axis": self.axis, "epsilon": self.epsilon, "center": self.center, "scale": self.scale,
            "rms_scaling": self.rms_scaling, **scale_offset_config(self),
        })
        return config
