"""Regularization layers: spatial dropout, Gaussian noise and dropout, activity penalty."""

from amber.layers.regularization.activity_regularization import ActivityRegularization  # noqa: F401
from amber.layers.regularization.gaussian import GaussianDropout, GaussianNoise  # noqa: F401
from amber.layers.regularization.spatial_dropout import (  # noqa: F401
    SpatialDropout1D,
    SpatialDropout2D,
    SpatialDropout3D,
)

__all__ = [
    "ActivityRegularization", "GaussianDropout", "GaussianNoise", "SpatialDropout1D", "SpatialDropout2D",
    "SpatialDropout3D",
]
