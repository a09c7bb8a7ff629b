"""The recurrent cells: SimpleRNNCell, LSTMCell and GRUCell (Keras 3's variables, gate
order, config keys and numerics).

Each cell computes one time step, ``call(inputs, states) -> (output, new_states)``. The
built-in cells also split that step in two so ``RNN`` can project every time step's input
with ONE matrix product before the loop (``project_inputs``) and keep only the recurrent
product inside it (``recurrent_step``): the per-step Python work is then a handful of ops.
"""

import numpy as np

from amber import ops
from amber.backend.autodiff import is_recording
from amber.layers.layer import Layer


def serialize_or_none(namespace, obj):
    return namespace.serialize(obj) if obj is not None else None


def _activation_get(identifier):
    from amber import activations

    return activations.get(identifier)


def _activation_name(fn):
    from amber import activations

    return activations.serialize(fn)


def _check_units(units):
    if not isinstance(units, (int, np.integer)) or isinstance(units, bool) or int(units) <= 0:
        raise ValueError(f"Received an invalid value for argument `units`, expected a positive integer, "
                         f"got {units}.")
    return int(units)


def _check_rate(name, rate):
    rate = float(rate)
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"`{name}` must be a float between 0 and 1, got {rate}")
    return rate


class DropoutRNNCell:
    """Dropout masks drawn once per sequence (the same mask at every time step, as Keras
    does), kept until the RNN layer resets them after the loop."""

    def _init_dropout(self, dropout, recurrent_dropout, seed):
        self.dropout = _check_rate("dropout", dropout)
        self.recurrent_dropout = _check_rate("recurrent_dropout", recurrent_dropout)
        self.seed = seed
        object.__setattr__(self, "_dropout_mask", None)
        object.__setattr__(self, "_recurrent_dropout_mask", None)

    def _mask_like(self, x, rate):
        from amber.backend import random

        # A seeded cell owns a generator that advances, so masks differ between calls.
        rng = self.__dict__.get("_dropout_rng")
        if rng is None:
            rng = random.generator() if self.seed is None else np.random.default_rng(self.seed)
            if self.seed is not None:
                object.__setattr__(self, "_dropout_rng", rng)
        raw = np.asarray(ops.convert_to_numpy(x))
        keep = rng.random(raw.shape) >= rate
        return (keep / (1.0 - rate)).astype(raw.dtype)

    def get_dropout_mask(self, step_input):
        if self._dropout_mask is None and 0.0 < self.dropout < 1.0:
            object.__setattr__(self, "_dropout_mask", self._mask_like(step_input, self.dropout))
        return self._dropout_mask

    def get_recurrent_dropout_mask(self, step_state):
        if self._recurrent_dropout_mask is None and 0.0 < self.recurrent_dropout < 1.0:
            object.__setattr__(self, "_recurrent_dropout_mask",
                               self._mask_like(step_state, self.recurrent_dropout))
        return self._recurrent_dropout_mask

    def reset_dropout_mask(self):
        object.__setattr__(self, "_dropout_mask", None)

    def reset_recurrent_dropout_mask(self):
        object.__setattr__(self, "_recurrent_dropout_mask", None)


class _GatedCell(DropoutRNNCell, Layer):
    """What the three built-in cells share: kernel / recurrent_kernel / bias, their
    initializers, regularizers and constraints, and the config keys Keras writes for them."""

    _gates = 1
    _has_recurrent_activation = True

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, kernel_constraint=None, recurrent_constraint=None,
                 bias_constraint=None, dropout=0.0, recurrent_dropout=0.0, seed=None, **kwargs):
        kwargs.pop("implementation", None)
        super().__init__(**kwargs)
        from amber import constraints, initializers, regularizers

        self.units = _check_units(units)
        self.activation = _activation_get(activation)
        self.recurrent_activation = _activation_get(recurrent_activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.recurrent_constraint = constraints.get(recurrent_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self._init_dropout(dropout, recurrent_dropout, seed)
        self.kernel = None
        self.recurrent_kernel = None
        self.bias = None

    @property
    def state_size(self):
        return self.units

    @property
    def output_size(self):
        return self.units

    def _bias_shape(self):
        return (self._gates * self.units,)

    def _bias_initializer_for_build(self):
        return self.bias_initializer

    def build(self, input_shape):
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(f"{type(self).__name__} '{self.name}' needs a known input feature size, "
                             f"got input shape {input_shape}")
        width = self._gates * self.units
        self.kernel = self.add_weight(shape=(input_dim, width), name="kernel",
                                      initializer=self.kernel_initializer,
                                      regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
        self.recurrent_kernel = self.add_weight(shape=(self.units, width), name="recurrent_kernel",
                                                initializer=self.recurrent_initializer,
                                                regularizer=self.recurrent_regularizer,
                                                constraint=self.recurrent_constraint)
        if self.use_bias:
            self.bias = self.add_weight(shape=self._bias_shape(), name="bias",
                                        initializer=self._bias_initializer_for_build(),
                                        regularizer=self.bias_regularizer, constraint=self.bias_constraint)

    # -------------------------------------------------------------- one step, split in two

    def _input_bias(self):
        return self.bias

    def project_inputs(self, inputs, training=False):
        """``inputs @ kernel + input bias`` for any number of leading axes (all time steps at
        once); the input dropout mask multiplies first, as in the per-step form."""
        if training and 0.0 < self.dropout < 1.0:
            step = inputs[:, 0] if np.ndim(ops.convert_to_numpy(inputs)) == 3 else inputs
            mask = self.get_dropout_mask(step)
            if np.ndim(ops.convert_to_numpy(inputs)) == 3:
                mask = mask[:, None, :]
            inputs = ops.multiply(inputs, mask)
        projected = ops.matmul(inputs, self.kernel)
        bias = self._input_bias()
        if bias is not None:
            projected = ops.add(projected, bias)
        return projected

    def _recurrent_input(self, h, training):
        if training and 0.0 < self.recurrent_dropout < 1.0:
            return ops.multiply(h, self.get_recurrent_dropout_mask(h))
        return h

    def call(self, inputs, states, training=False):
        return self.recurrent_step(self.project_inputs(inputs, training), states, training)

    # -------------------------------------------------------------- config

    def get_config(self):
        from amber import constraints, initializers, regularizers

        config = super().get_config()
        config["units"] = self.units
        config["activation"] = _activation_name(self.activation)
        if self._has_recurrent_activation:
            config["recurrent_activation"] = _activation_name(self.recurrent_activation)
        config["use_bias"] = self.use_bias
        config.update(self._extra_config_after_use_bias())
        config.update({
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": serialize_or_none(regularizers, self.kernel_regularizer),
            "recurrent_regularizer": serialize_or_none(regularizers, self.recurrent_regularizer),
            "bias_regularizer": serialize_or_none(regularizers, self.bias_regularizer),
            "kernel_constraint": serialize_or_none(constraints, self.kernel_constraint),
            "recurrent_constraint": serialize_or_none(constraints, self.recurrent_constraint),
            "bias_constraint": serialize_or_none(constraints, self.bias_constraint),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
        })
        config.update(self._extra_config_at_end())
        config["seed"] = self.seed
        return config

    def _extra_config_after_use_bias(self):
        return {}

    def _extra_config_at_end(self):
        return {}


class SimpleRNNCell(_GatedCell):
    """h = activation(x @ kernel + bias + h_prev @ recurrent_kernel)."""

    _has_recurrent_activation = False

    def __init__(self, units, activation="tanh", use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros", kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0, recurrent_dropout=0.0,
                 seed=None, **kwargs):
        super().__init__(units, activation=activation, recurrent_activation=None, use_bias=use_bias,
                         kernel_initializer=kernel_initializer, recurrent_initializer=recurrent_initializer,
                         bias_initializer=bias_initializer, kernel_regularizer=kernel_regularizer,
                         recurrent_regularizer=recurrent_regularizer, bias_regularizer=bias_regularizer,
                         kernel_constraint=kernel_constraint, recurrent_constraint=recurrent_constraint,
                         bias_constraint=bias_constraint, dropout=dropout,
                         recurrent_dropout=recurrent_dropout, seed=seed, **kwargs)

    def recurrent_step(self, projected, states, training=False):
        h_prev = states[0] if isinstance(states, (list, tuple)) else states
        h = self.activation(ops.add(projected,
                                    ops.matmul(self._recurrent_input(h_prev, training), self.recurrent_kernel)))
        return h, [h]


class LSTMCell(_GatedCell):
    """Long short-term memory; kernel columns hold the gates in the order i, f, c, o."""

    _gates = 4

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", unit_forget_bias=True, kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0, recurrent_dropout=0.0,
                 seed=None, **kwargs):
        super().__init__(units, activation=activation, recurrent_activation=recurrent_activation,
                         use_bias=use_bias, kernel_initializer=kernel_initializer,
                         recurrent_initializer=recurrent_initializer, bias_initializer=bias_initializer,
                         kernel_regularizer=kernel_regularizer, recurrent_regularizer=recurrent_regularizer,
                         bias_regularizer=bias_regularizer, kernel_constraint=kernel_constraint,
                         recurrent_constraint=recurrent_constraint, bias_constraint=bias_constraint,
                         dropout=dropout, recurrent_dropout=recurrent_dropout, seed=seed, **kwargs)
        self.unit_forget_bias = bool(unit_forget_bias)

    @property
    def state_size(self):
        return [self.units, self.units]

    def _bias_initializer_for_build(self):
        if not self.unit_forget_bias:
            return self.bias_initializer
        base, units = self.bias_initializer, self.units

        # The forget gate starts open (bias 1), so early training does not forget everything.
        def forget_bias_one(shape, dtype=None):
            return np.concatenate([
                np.asarray(base((units,), dtype=dtype)),
                np.ones((units,), dtype=dtype or "float32"),
                np.asarray(base((2 * units,), dtype=dtype)),
            ])

        return forget_bias_one

    def recurrent_step(self, projected, states, training=False):
        h_prev, c_prev = states[0], states[1]
        z = ops.add(projected, ops.matmul(self._recurrent_input(h_prev, training), self.recurrent_kernel))
        u = self.units
        if not is_recording():
            # Inference: one activation call over all gates, then views (no split, no graph).
            gates = self.recurrent_activation(z)
            c = gates[:, u:2 * u] * c_prev + gates[:, :u] * self.activation(z[:, 2 * u:3 * u])
            h = gates[:, 3 * u:] * self.activation(c)
            return h, [h, c]
        z_i, z_f, z_c, z_o = ops.split(z, 4, axis=-1)
        i = self.recurrent_activation(z_i)
        f = self.recurrent_activation(z_f)
        c = ops.add(ops.multiply(f, c_prev), ops.multiply(i, self.activation(z_c)))
        o = self.recurrent_activation(z_o)
        h = ops.multiply(o, self.activation(c))
        return h, [h, c]

    def _extra_config_after_use_bias(self):
        return {"unit_forget_bias": self.unit_forget_bias}

    def get_initial_state(self, batch_size=None):
        return [np.zeros((batch_size, self.units), dtype=self.compute_dtype) for _ in range(2)]


class GRUCell(_GatedCell):
    """Gated recurrent unit; kernel columns hold the gates in the order z (update), r (reset),
    h (candidate). With ``reset_after`` (Keras's default) the bias is ``(2, 3 * units)``: an
    input bias and a recurrent bias, and the reset gate multiplies the recurrent product."""

    _gates = 3

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, kernel_constraint=None, recurrent_constraint=None,
                 bias_constraint=None, dropout=0.0, recurrent_dropout=0.0, reset_after=True, seed=None,
                 **kwargs):
        super().__init__(units, activation=activation, recurrent_activation=recurrent_activation,
                         use_bias=use_bias, kernel_initializer=kernel_initializer,
                         recurrent_initializer=recurrent_initializer, bias_initializer=bias_initializer,
                         kernel_regularizer=kernel_regularizer, recurrent_regularizer=recurrent_regularizer,
                         bias_regularizer=bias_regularizer, kernel_constraint=kernel_constraint,
                         recurrent_constraint=recurrent_constraint, bias_constraint=bias_constraint,
                         dropout=dropout, recurrent_dropout=recurrent_dropout, seed=seed, **kwargs)
        self.reset_after = bool(reset_after)

    def _bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def _input_bias(self):
        if self.bias is None:
            return None
        return ops.get_item(self.bias, 0) if self.reset_after else self.bias

    def recurrent_step(self, projected, states, training=False):
        h_prev = states[0] if isinstance(states, (list, tuple)) else states
        h_in = self._recurrent_input(h_prev, training)
        u = self.units
        if self.reset_after and not is_recording():
            # Inference: the update and reset gates share one activation call, slices are views.
            inner = ops.matmul(h_in, self.recurrent_kernel)
            if self.bias is not None:
                inner = inner + self.bias.value[1]
            zr = self.recurrent_activation(projected[:, :2 * u] + inner[:, :2 * u])
            z = zr[:, :u]
            hh = self.activation(projected[:, 2 * u:] + zr[:, u:] * inner[:, 2 * u:])
            h = z * h_prev + (1 - z) * hh
            return h, [h]
        if not is_recording():
            kernel = self.recurrent_kernel.value
            zr = self.recurrent_activation(projected[:, :2 * u] + ops.matmul(h_in, kernel[:, :2 * u]))
            z = zr[:, :u]
            hh = self.activation(projected[:, 2 * u:] + ops.matmul(zr[:, u:] * h_in, kernel[:, 2 * u:]))
            h = z * h_prev + (1 - z) * hh
            return h, [h]
        x_z, x_r, x_h = ops.split(projected, 3, axis=-1)
        if self.reset_after:
            inner = ops.matmul(h_in, self.recurrent_kernel)
            if self.bias is not None:
                inner = ops.add(inner, ops.get_item(self.bias, 1))
            r_z, r_r, r_h = ops.split(inner, 3, axis=-1)
            z = self.recurrent_activation(ops.add(x_z, r_z))
            r = self.recurrent_activation(ops.add(x_r, r_r))
            hh = self.activation(ops.add(x_h, ops.multiply(r, r_h)))
        else:
            kernel_zr = ops.get_item(self.recurrent_kernel, (slice(None), slice(0, 2 * u)))
            kernel_h = ops.get_item(self.recurrent_kernel, (slice(None), slice(2 * u, None)))
            r_z, r_r = ops.split(ops.matmul(h_in, kernel_zr), 2, axis=-1)
            z = self.recurrent_activation(ops.add(x_z, r_z))
            r = self.recurrent_activation(ops.add(x_r, r_r))
            hh = self.activation(ops.add(x_h, ops.matmul(ops.multiply(r, h_in), kernel_h)))
        # h = z * h_prev + (1 - z) * hh
        h = ops.add(ops.multiply(z, h_prev), ops.multiply(ops.subtract(1.0, z), hh))
        return h, [h]

    def _extra_config_at_end(self):
        return {"reset_after": self.reset_after}
