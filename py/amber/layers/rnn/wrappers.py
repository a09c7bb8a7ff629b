"""Bidirectional (an RNN run forwards and backwards, outputs merged) and TimeDistributed
(a layer applied to every time step)."""

import copy

import numpy as np

from amber import ops
from amber.layers.layer import Layer

_MERGE_MODES = ("sum", "mul", "ave", "concat", None)


def _clone_with(layer, **overrides):
    """A fresh layer from ``layer``'s config with some keys replaced (Keras re-creates the
    wrapped layer the same way, so the copy owns new, unbuilt variables)."""
    from amber.saving import deserialize_keras_object, serialize_keras_object

    config = serialize_keras_object(layer)
    config = copy.deepcopy(config)
    config["config"].update(overrides)
    return deserialize_keras_object(config, safe_mode=False)


def _strip_prefix(name, prefix):
    return name[len(prefix):] if name.startswith(prefix) else name


class Bidirectional(Layer):
    def __init__(self, layer, merge_mode="concat", weights=None, backward_layer=None, **kwargs):
        if not isinstance(layer, Layer):
            raise ValueError("Please initialize `Bidirectional` layer with a `keras.layers.Layer` instance. "
                             f"Received: {layer}")
        if backward_layer is not None and not isinstance(backward_layer, Layer):
            raise ValueError(f"`backward_layer` need to be a `keras.layers.Layer` instance. "
                             f"Received: {backward_layer}")
        if merge_mode not in _MERGE_MODES:
            raise ValueError(f"Invalid merge mode. Received: {merge_mode}. Merge mode should be one of "
                             '{"sum", "mul", "ave", "concat", None}')
        for attribute in ("go_backwards", "return_sequences", "return_state", "stateful"):
            if not hasattr(layer, attribute):
                raise ValueError(f"Bidirectional needs a sequence layer with a `{attribute}` attribute (such as an "
                                 f"RNN); {type(layer).__name__} '{layer.name}' has none.")
        super().__init__(**kwargs)
        self.forward_layer = _clone_with(layer, name=f"forward_{_strip_prefix(layer.name, 'forward_')}")
        if backward_layer is None:
            self.backward_layer = _clone_with(layer, go_backwards=not layer.go_backwards,
                                              name=f"backward_{_strip_prefix(layer.name, 'backward_')}")
        else:
            self.backward_layer = backward_layer
        if self.forward_layer.go_backwards == self.backward_layer.go_backwards:
            raise ValueError("Forward layer and backward layer should have different `go_backwards` value. "
                             f"Received: forward_layer.go_backwards {self.forward_layer.go_backwards}, "
                             f"backward_layer.go_backwards={self.backward_layer.go_backwards}")
        for attribute in ("stateful", "return_sequences", "return_state"):
            forward, backward = getattr(self.forward_layer, attribute), getattr(self.backward_layer, attribute)
            if forward != backward:
                raise ValueError(f'Forward layer and backward layer are expected to have the same value for '
                                 f'attribute "{attribute}", got "{forward}" for forward layer and "{backward}" '
                                 f'for backward layer')
        # Keras zeroes masked outputs of both directions when sequences are returned, so the
        # reversed sequence lines up with the forward one.
        for inner in (self.forward_layer, self.backward_layer):
            if getattr(inner, "zero_output_for_mask", None) is not None:
                inner.zero_output_for_mask = inner.return_sequences
        self.merge_mode = merge_mode
        self.stateful = layer.stateful
        self.return_sequences = layer.return_sequences
        self.return_state = layer.return_state
        self.supports_masking = True
        self._initial_weights = list(weights) if weights else None

    def build(self, sequences_shape, initial_state_shape=None):
        for inner in (self.forward_layer, self.backward_layer):
            if not inner.built:
                inner.build(sequences_shape)
                inner.built = True
        if self._initial_weights:
            self.set_weights(self._initial_weights)
            self._initial_weights = None

    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        shape = self.forward_layer.compute_output_shape(sequences_shape)
        states = []
        if self.return_state:
            shape, states = shape[0], list(shape[1:])
        if self.merge_mode == "concat":
            shape = tuple(shape[:-1]) + (shape[-1] * 2,)
        outputs = [shape, shape] if self.merge_mode is None else [shape]
        if self.return_state:
            return outputs + states + states
        return outputs if self.merge_mode is None else shape

    def call(self, sequences, initial_state=None, mask=None, training=None):
        kwargs = {"training": training, "mask": mask}
        forward_state = backward_state = None
        if initial_state is not None:
            half = len(initial_state) // 2
            forward_state, backward_state = list(initial_state[:half]), list(initial_state[half:])
        y = self.forward_layer(sequences, initial_state=forward_state, **kwargs)
        y_rev = self.backward_layer(sequences, initial_state=backward_state, **kwargs)
        states = ()
        if self.return_state:
            states = tuple(y[1:]) + tuple(y_rev[1:])
            y, y_rev = y[0], y_rev[0]
        if self.return_sequences:
            y_rev = ops.flip(y_rev, axis=1)
        if self.merge_mode == "concat":
            output = ops.concatenate([y, y_rev], axis=-1)
        elif self.merge_mode == "sum":
            output = ops.add(y, y_rev)
        elif self.merge_mode == "ave":
            output = ops.divide(ops.add(y, y_rev), 2.0)
        elif self.merge_mode == "mul":
            output = ops.multiply(y, y_rev)
        else:
            output = (y, y_rev)
        if self.return_state:
            return (output + states) if self.merge_mode is None else ((output,) + states)
        return output

    def compute_mask(self, inputs, mask=None):
        if isinstance(mask, (list, tuple)):
            mask = mask[0] if mask else None
        output_mask = mask if self.return_sequences else None
        if self.merge_mode is None:
            output_mask = [output_mask, output_mask]
        elif not isinstance(output_mask, list):
            output_mask = [output_mask] if self.return_state else output_mask
        if self.return_state:
            count = 2 * len(getattr(self.forward_layer, "state_size", [None]))
            return list(output_mask) + [None] * count
        return output_mask

    def reset_state(self):
        for inner in (self.forward_layer, self.backward_layer):
            if hasattr(inner, "reset_state"):
                inner.reset_state()

    def reset_states(self):
        self.reset_state()

    def get_config(self):
        from amber.saving import serialize_keras_object

        config = super().get_config()
        config["merge_mode"] = self.merge_mode
        config["layer"] = serialize_keras_object(self.forward_layer)
        config["backward_layer"] = serialize_keras_object(self.backward_layer)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from amber.saving import deserialize_keras_object

        config = copy.deepcopy(dict(config))
        config["layer"] = deserialize_keras_object(config["layer"], custom_objects=custom_objects)
        backward = config.pop("backward_layer", None)
        if backward is not None:
            config["backward_layer"] = deserialize_keras_object(backward, custom_objects=custom_objects)
        return cls(**config)


class TimeDistributed(Layer):
    """Applies ``layer`` to every slice ``inputs[:, t]``. The time axis is folded into the
    batch, so the wrapped layer runs once over all steps (same numbers as one call per step for
    layers that treat batch rows independently)."""

    def __init__(self, layer, **kwargs):
        if not isinstance(layer, Layer):
            raise ValueError(f"Please initialize `TimeDistributed` layer with a `keras.layers.Layer` instance. "
                             f"Received: {layer}")
        super().__init__(**kwargs)
        self.layer = layer
        self.supports_masking = True

    @staticmethod
    def _child_shape(input_shape):
        if not isinstance(input_shape, (tuple, list)) or len(input_shape) < 3:
            raise ValueError("`TimeDistributed` Layer should be passed an `input_shape` with at least 3 "
                             f"dimensions, received: {input_shape}")
        return (input_shape[0],) + tuple(input_shape[2:])

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build(self._child_shape(input_shape))
            self.layer.built = True

    def compute_output_shape(self, input_shape):
        child = self.layer.compute_output_shape(self._child_shape(input_shape))
        return (child[0], input_shape[1]) + tuple(child[1:])

    def call(self, inputs, training=None, mask=None):
        shape = tuple(inputs.shape) if hasattr(inputs, "shape") else np.shape(inputs)
        if len(shape) < 3:
            raise ValueError(f"Layer '{self.name}' expects inputs of rank >= 3, got shape {shape}")
        batch, steps = shape[0], shape[1]
        if mask is not None:
            mask_shape = np.shape(ops.convert_to_numpy(mask))
            if len(mask_shape) < 2 or tuple(mask_shape[:2]) != (batch, steps):
                raise ValueError(f"The `mask` passed to the `TimeDistributed` layer has a shape {mask_shape} "
                                 f"that is incompatible with the input shape {shape}.")
        folded = ops.reshape(inputs, (batch * steps,) + tuple(shape[2:]))
        names, takes_training, takes_mask, _ = self.layer._call_params()
        kwargs = {}
        if takes_training:
            kwargs["training"] = training
        if takes_mask and mask is not None:
            kwargs["mask"] = np.reshape(ops.convert_to_numpy(mask), (batch * steps,) + tuple(mask_shape[2:]))
        outputs = self.layer.call(folded, **kwargs)
        out_shape = tuple(outputs.shape)
        return ops.reshape(outputs, (batch, steps) + out_shape[1:])

    def compute_mask(self, inputs, mask=None):
        return mask

    def get_config(self):
        from amber.saving import serialize_keras_object

        config = super().get_config()
        config["layer"] = serialize_keras_object(self.layer)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from amber.saving import deserialize_keras_object

        config = dict(config)
        config["layer"] = deserialize_keras_object(config.pop("layer"), custom_objects=custom_objects)
        return cls(**config)
