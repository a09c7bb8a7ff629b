"""Convolution layers (Keras 3 names, configs, weight order and numerics)."""

from amber.layers.convolutional.base_conv import Conv1D, Conv2D, Conv3D  # noqa: F401
from amber.layers.convolutional.conv_transpose import (  # noqa: F401
    Conv1DTranspose,
    Conv2DTranspose,
    Conv3DTranspose,
)
from amber.layers.convolutional.depthwise_conv import DepthwiseConv1D, DepthwiseConv2D  # noqa: F401
from amber.layers.convolutional.separable_conv import SeparableConv1D, SeparableConv2D  # noqa: F401

__all__ = [
    "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose",
    "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D",
]
