"""Spatial reshaping layers: zero padding, cropping and upsampling in 1-3 D."""

from amber.layers.reshaping.cropping import Cropping1D, Cropping2D, Cropping3D  # noqa: F401
from amber.layers.reshaping.up_sampling import UpSampling1D, UpSampling2D, UpSampling3D  # noqa: F401
from amber.layers.reshaping.zero_padding import ZeroPadding1D, ZeroPadding2D, ZeroPadding3D  # noqa: F401

__all__ = [
    "Cropping1D", "Cropping2D", "Cropping3D", "UpSampling1D", "UpSampling2D", "UpSampling3D",
    "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D",
]
