"""amber.activations: mirrors keras.activations.

Activations are plain functions with Keras's names and signatures, built from ``amber.ops``
(so they are differentiable). ``serialize`` gives the Keras name string for built-ins.
"""

from amber import ops


def relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """max(x, 0) with Keras's options: a slope below ``threshold``, a cap at ``max_value``,
    and values below a nonzero ``threshold`` set to 0."""
    if negative_slope == 0.0 and max_value is None and threshold == 0.0:
        return ops.relu(x)
    if negative_slope != 0.0 and max_value is None and threshold == 0:
        return ops.leaky_relu(x, negative_slope=negative_slope)
    negative_part = None
    if negative_slope != 0.0:
        negative_part = ops.relu(ops.add(ops.negative(x), threshold) if threshold != 0 else ops.negative(x))
    if threshold != 0:
        y = ops.where(ops.greater(x, threshold), x, 0.0)
    else:
        y = ops.relu(x)
    if max_value is not None:
        y = ops.clip(y, 0.0, float(max_value))
    if negative_part is not None:
        y = ops.subtract(y, ops.multiply(negative_slope, negative_part))
    return y


def leaky_relu(x, negative_slope=0.2):
    return ops.leaky_relu(x, negative_slope=negative_slope)


def relu6(x):
    return ops.relu6(x)


def softmax(x, axis=-1):
    return ops.softmax(x, axis=axis)


def celu(x, alpha=1.0):
    return ops.celu(x, alpha=alpha)


def elu(x, alpha=1.0):
    return ops.elu(x, alpha=alpha)


def selu(x):
    return ops.selu(x)


def softplus(x):
    return ops.softplus(x)


def softsign(x):
    return ops.softsign(x)


def soft_shrink(x, threshold=0.5):
    return ops.soft_shrink(x, threshold=threshold)


def sparse_plus(x):
    return ops.sparse_plus(x)


def silu(x):
    return ops.silu(x)


def squareplus(x, b=4):
    return ops.squareplus(x, b=b)


def gelu(x, approximate=False):
    """Keras's activation defaults to the exact (erf) form; ``ops.gelu`` to the tanh form."""
    return ops.gelu(x, approximate=approximate)


def glu(x, axis=-1):
    return ops.glu(x, axis=axis)


def tanh(x):
    return ops.tanh(x)


def tanh_shrink(x):
    return ops.tanh_shrink(x)


def hard_tanh(x):
    return ops.hard_tanh(x)


def hard_shrink(x, threshold=0.5):
    return ops.hard_shrink(x, threshold=threshold)


def threshold(x, threshold, default_value):
    return ops.threshold(x, threshold, default_value)


def sigmoid(x):
    return ops.sigmoid(x)


def exponential(x):
    return ops.exp(x)


def hard_sigmoid(x):
    return ops.hard_sigmoid(x)


def log_sigmoid(x):
    return ops.log_sigmoid(x)


def sparse_sigmoid(x):
    return ops.sparse_sigmoid(x)


def hard_silu(x):
    return ops.hard_silu(x)


def linear(x):
    return x


def mish(x):
    return ops.mish(x)


def log_softmax(x, axis=-1):
    return ops.log_softmax(x, axis=axis)


def sparsemax(x, axis=-1):
    return ops.sparsemax(x, axis=axis)


swish = silu
hard_swish = hard_silu

# Keras name -> function. The aliases resolve to the same functions, which serialize under
# their primary names (``swish`` -> "silu"), as in Keras.
_BY_NAME = {
    fn.__name__: fn
    for fn in (relu, leaky_relu, relu6, softmax, celu, elu, selu, softplus, softsign,
               soft_shrink, sparse_plus, silu, squareplus, gelu, glu, tanh, tanh_shrink,
               hard_tanh, hard_shrink, threshold, sigmoid, exponential, hard_sigmoid,
               log_sigmoid, sparse_sigmoid, hard_silu, linear, mish, log_softmax, sparsemax)
}
_BY_NAME["swish"] = silu
_BY_NAME["hard_swish"] = hard_silu

__all__ = sorted(_BY_NAME) + ["deserialize", "get", "serialize"]


def serialize(activation):
    """The Keras name of a built-in activation; the registered-object dict for a custom one."""
    name = getattr(activation, "__name__", None)
    if name is not None and _BY_NAME.get(name) is activation:
        return name
    from amber.saving import serialize_keras_object

    config = serialize_keras_object(activation)
    if not isinstance(config, dict) or "config" not in config:
        raise ValueError(
            f"Unknown activation function {activation!r} cannot be serialized: use a built-in "
            "name or register it with @register_keras_serializable()"
        )
    return config


def deserialize(config, custom_objects=None):
    """The activation a config names (a built-in name, or a registered-object dict)."""
    if isinstance(config, str) and config in _BY_NAME and not (custom_objects and config in custom_objects):
        return _BY_NAME[config]
    from amber.saving import deserialize_keras_object

    return deserialize_keras_object(config, custom_objects=custom_objects, module_objects=_BY_NAME)


def get(identifier):
    """An activation function from None (linear), a name, a config dict or a callable."""
    if identifier is None:
        return linear
    if isinstance(identifier, str):
        obj = _BY_NAME.get(identifier)
        if obj is None:
            # registered custom activations may be named by string too
            try:
                obj = deserialize(identifier)
            except Exception:
                obj = None
    elif isinstance(identifier, dict):
        obj = deserialize(identifier)
    else:
        obj = identifier
    if callable(obj):
        return obj
    raise ValueError(f"Could not interpret activation function identifier: {identifier!r}")
