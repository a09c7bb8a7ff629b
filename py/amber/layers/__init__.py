"""amber.layers: mirrors keras.layers."""

from amber.layers.core import (  # noqa: F401
    Activation,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    Identity,
    Lambda,
    LeakyReLU,
    Permute,
    ReLU,
    RepeatVector,
    Rescaling,
    Reshape,
    Softmax,
)
from amber.layers.input_layer import Input, InputLayer  # noqa: F401
from amber.layers.keras_tensor import KerasTensor  # noqa: F401
from amber.layers.layer import InputSpec, Layer  # noqa: F401
from amber.layers.merging import (  # noqa: F401
    Add,
    Average,
    Concatenate,
    Maximum,
    Minimum,
    Multiply,
    Subtract,
    add,
    average,
    concatenate,
    maximum,
    minimum,
    multiply,
    subtract,
)
from amber.layers.normalization import BatchNormalization, LayerNormalization  # noqa: F401


def serialize(layer):
    """A layer's Keras config dict (``module``, ``class_name``, ``config``, ...)."""
    from amber.saving import serialize_keras_object

    return serialize_keras_object(layer)


def deserialize(config, custom_objects=None, safe_mode=True):
    """Rebuild a layer from ``serialize``'s output."""
    from amber.saving import deserialize_keras_object

    return deserialize_keras_object(config, custom_objects=custom_objects, safe_mode=safe_mode)


def get(identifier):
    if identifier is None or isinstance(identifier, Layer):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    raise ValueError(f"Could not interpret layer identifier: {identifier!r}")


__all__ = [
    "Activation", "Add", "Average", "BatchNormalization", "Concatenate", "Dense", "Dropout", "Embedding",
    "Flatten", "Identity", "Input", "InputLayer", "InputSpec", "Lambda", "Layer", "LayerNormalization",
    "LeakyReLU", "Maximum", "Minimum", "Multiply", "Permute", "ReLU", "RepeatVector", "Rescaling", "Reshape",
    "Softmax", "Subtract", "add", "average", "concatenate", "maximum", "minimum", "multiply", "subtract",
    "serialize", "deserialize", "get",
]
