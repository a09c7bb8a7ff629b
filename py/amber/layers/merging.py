"""Merging layers: combine a list of inputs elementwise (Add, Subtract, Multiply, Average,
Maximum, Minimum) or along an axis (Concatenate)."""

import numpy as np

from amber import ops
from amber.layers.layer import Layer


def _broadcast_shapes(layer, shapes):
    rank = max(len(s) for s in shapes)
    padded = [(None,) * 0 + (1,) * (rank - len(s)) + tuple(s) for s in shapes]
    out = []
    for dims in zip(*padded):
        known = {d for d in dims if d is not None and d != 1}
        if len(known) > 1:
            raise ValueError(f"Layer '{layer.name}': inputs with incompatible shapes {shapes}")
        if known:
            out.append(known.pop())
        elif any(d is None for d in dims):
            out.append(None)
        else:
            out.append(1)
    return tuple(out)


class Merge(Layer):
    """Base of the elementwise merges: a list of at least two inputs in, one tensor out."""

    min_inputs = 2

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def _check(self, inputs):
        if not isinstance(inputs, (list, tuple)) or len(inputs) < self.min_inputs:
            raise ValueError(f"A merge layer '{self.name}' should be called on a list of at least "
                             f"{self.min_inputs} inputs. Received: inputs={inputs!r}")

    def build(self, input_shape):
        self._check(input_shape)

    def call(self, inputs):
        self._check(inputs)
        return self._merge(list(inputs))

    def compute_output_shape(self, input_shape):
        return _broadcast_shapes(self, [tuple(s) for s in input_shape])

    def _check_masks(self, inputs, mask):
        if not isinstance(mask, (list, tuple)) or not isinstance(inputs, (list, tuple)) \
                or len(mask) != len(inputs):
            raise ValueError(f"Layer '{self.name}': `mask` should be a list with one entry per input "
                             f"({len(inputs) if isinstance(inputs, (list, tuple)) else 'not a list'} "
                             f"inputs). Received: mask={mask!r}")

    def compute_mask(self, inputs, mask=None):
        # As in Keras: a step stays if any input keeps it; one unmasked input drops the mask.
        if mask is None:
            return None
        self._check_masks(inputs, mask)
        if any(m is None for m in mask):
            return None
        # Through ops, so that on symbolic masks the OR becomes graph operations, as in Keras.
        out = mask[0]
        for m in mask[1:]:
            out = ops.logical_or(out, m)
        return out


class Add(Merge):
    def _merge(self, inputs):
        out = inputs[0]
        for x in inputs[1:]:
            out = ops.add(out, x)
        return out


class Subtract(Merge):
    def _check(self, inputs):
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            raise ValueError(f"A `Subtract` layer should be called on exactly 2 inputs. Received: "
                             f"inputs={inputs!r}")

    def _merge(self, inputs):
        return ops.subtract(inputs[0], inputs[1])


class Multiply(Merge):
    def _merge(self, inputs):
        out = inputs[0]
        for x in inputs[1:]:
            out = ops.multiply(out, x)
        return out


class Average(Merge):
    def _merge(self, inputs):
        out = inputs[0]
        for x in inputs[1:]:
            out = ops.add(out, x)
        return ops.divide(out, float(len(inputs)))


class Maximum(Merge):
    def _merge(self, inputs):
        out = inputs[0]
        for x in inputs[1:]:
            out = ops.maximum(out, x)
        return out


class Minimum(Merge):
    def _merge(self, inputs):
        out = inputs[0]
        for x in inputs[1:]:
            out = ops.minimum(out, x)
        return out


class Concatenate(Merge):
    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) < 1:
            raise ValueError(f"A `Concatenate` layer should be called on a list of inputs. Received: "
                             f"input_shape={input_shape}")
        self.compute_output_shape(input_shape)

    def _check(self, inputs):
        if not isinstance(inputs, (list, tuple)) or len(inputs) < 1:
            raise ValueError(f"A `Concatenate` layer should be called on a list of inputs. Received: {inputs!r}")

    def _merge(self, inputs):
        return ops.concatenate(inputs, axis=self.axis)

    def compute_mask(self, inputs, mask=None):
        # Keras's rule: each input's mask widened to the input's full shape (all True when the
        # input has none), joined along the axis, then a position is kept if any feature is.
        # The same ops as Keras, so that on symbolic masks the graph records the same nodes.
        if mask is None:
            return None
        self._check_masks(inputs, mask)
        if all(m is None for m in mask):
            return None
        full = []
        for x, m in zip(inputs, mask):
            if m is None:
                full.append(ops.ones_like(x, dtype="bool"))
            elif np.ndim(m) < np.ndim(x):
                full.append(ops.logical_or(ops.expand_dims(m, axis=-1), ops.zeros_like(x, dtype="bool")))
            else:
                full.append(m)
        return ops.any(ops.concatenate(full, axis=self.axis), axis=-1, keepdims=False)

    def compute_output_shape(self, input_shape):
        shapes = [list(s) for s in input_shape]
        rank = len(shapes[0])
        axis = self.axis if self.axis >= 0 else rank + self.axis
        out = list(shapes[0])
        for shape in shapes[1:]:
            if len(shape) != rank:
                raise ValueError(f"A `Concatenate` layer requires inputs with matching shapes except for "
                                 f"the concatenation axis. Received: input_shape={input_shape}")
            for i, d in enumerate(shape):
                if i == axis:
                    out[i] = None if out[i] is None or d is None else out[i] + d
                elif out[i] is None:
                    out[i] = d
                elif d is not None and d != out[i]:
                    raise ValueError(f"A `Concatenate` layer requires inputs with matching shapes except "
                                     f"for the concatenation axis. Received: input_shape={input_shape}")
        return tuple(out)

    def get_config(self):
        config = super().get_config()
        config["axis"] = self.axis
        return config


def add(inputs, **kwargs):
    return Add(**kwargs)(inputs)


def subtract(inputs, **kwargs):
    return Subtract(**kwargs)(inputs)


def multiply(inputs, **kwargs):
    return Multiply(**kwargs)(inputs)


def average(inputs, **kwargs):
    return Average(**kwargs)(inputs)


def maximum(inputs, **kwargs):
    return Maximum(**kwargs)(inputs)


def minimum(inputs, **kwargs):
    return Minimum(**kwargs)(inputs)


def concatenate(inputs, axis=-1, **kwargs):
    return Concatenate(axis=axis, **kwargs)(inputs)
