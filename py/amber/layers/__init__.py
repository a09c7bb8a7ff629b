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

from amber.layers.convolutional import (  # noqa: F401
    Conv1D,
    Conv1DTranspose,
    Conv2D,
    Conv2DTranspose,
    Conv3D,
    Conv3DTranspose,
    DepthwiseConv1D,
    DepthwiseConv2D,
    SeparableConv1D,
    SeparableConv2D,
)
from amber.layers.core_masking import Masking  # noqa: F401
from amber.layers.pooling import (  # noqa: F401
    AveragePooling1D,
    AveragePooling2D,
    AveragePooling3D,
    GlobalAveragePooling1D,
    GlobalAveragePooling2D,
    GlobalAveragePooling3D,
    GlobalMaxPooling1D,
    GlobalMaxPooling2D,
    GlobalMaxPooling3D,
    MaxPooling1D,
    MaxPooling2D,
    MaxPooling3D,
)
from amber.layers.regularization import (  # noqa: F401
    ActivityRegularization,
    GaussianDropout,
    GaussianNoise,
    SpatialDropout1D,
    SpatialDropout2D,
    SpatialDropout3D,
)
from amber.layers.reshaping import (  # noqa: F401
    Cropping1D,
    Cropping2D,
    Cropping3D,
    UpSampling1D,
    UpSampling2D,
    UpSampling3D,
    ZeroPadding1D,
    ZeroPadding2D,
    ZeroPadding3D,
)


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

# Convolution, pooling, reshaping and regularization layers.
__all__ += [
    "ActivityRegularization", "AveragePooling1D", "AveragePooling2D", "AveragePooling3D", "Conv1D",
    "Conv1DTranspose", "Conv2D", "Conv2DTranspose", "Conv3D", "Conv3DTranspose", "Cropping1D", "Cropping2D",
    "Cropping3D", "DepthwiseConv1D", "DepthwiseConv2D", "GaussianDropout", "GaussianNoise",
    "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D", "GlobalMaxPooling1D",
    "GlobalMaxPooling2D", "GlobalMaxPooling3D", "Masking", "MaxPooling1D", "MaxPooling2D", "MaxPooling3D",
    "SeparableConv1D", "SeparableConv2D", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
    "UpSampling1D", "UpSampling2D", "UpSampling3D", "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D",
]

# Recurrent layers and their wrappers.
from amber.layers.rnn import (  # noqa: E402,F401
    GRU, LSTM, RNN, Bidirectional, GRUCell, LSTMCell, SimpleRNN, SimpleRNNCell, StackedRNNCells, TimeDistributed,
)

__all__ += [
    "Bidirectional", "GRU", "GRUCell", "LSTM", "LSTMCell", "RNN", "SimpleRNN", "SimpleRNNCell", "StackedRNNCells",
    "TimeDistributed",
]

# Attention layers and EinsumDense.
from amber.layers.attention import AdditiveAttention, Attention, EinsumDense, MultiHeadAttention  # noqa: E402,F401

__all__ += ["AdditiveAttention", "Attention", "EinsumDense", "MultiHeadAttention"]

# More normalization.
from amber.layers.normalization_extra import GroupNormalization, Normalization, UnitNormalization  # noqa: E402,F401

__all__ += ["GroupNormalization", "Normalization", "UnitNormalization"]
