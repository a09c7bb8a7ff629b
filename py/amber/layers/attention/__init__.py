"""Attention layers and the einsum projection they are built from."""

from amber.layers.attention.dot_attention import AdditiveAttention, Attention  # noqa: F401
from amber.layers.attention.einsum_dense import EinsumDense  # noqa: F401
from amber.layers.attention.multi_head_attention import MultiHeadAttention  # noqa: F401
