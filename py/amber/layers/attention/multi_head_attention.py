"""MultiHeadAttention (Keras 3): query/key/value projections by EinsumDense into
(heads, head_dim), scaled dot-product attention over ``attention_axes``, an output
projection back to the query's feature size. Sub-layers carry Keras's attribute names
(``query_dense``, ``key_dense``, ``value_dense``, ``output_dense``), which is where the saving
walk stores their variables."""

import math
import string

import numpy as np

from amber import ops
from amber.layers.attention.einsum_dense import EinsumDense
from amber.layers.layer import Layer, _plain_shape

_LETTERS = string.ascii_lowercase
_LARGE_NEGATIVE = -1e9


def _serialize_or_none(namespace, obj):
    return namespace.serialize(obj) if obj is not None else None


def _shape(x):
    shape = getattr(x, "shape", None)
    return tuple(shape) if shape is not None else np.shape(x)


def projection_equation(free_dims, bound_dims, output_dims):
    """Einsum for a projection keeping ``free_dims`` leading axes, contracting ``bound_dims``
    and producing ``output_dims`` new axes: (equation, bias axes, output rank)."""
    inputs = kernel = output = bias = ""
    for i in range(free_dims):
        inputs += _LETTERS[i]
        output += _LETTERS[i]
    for i in range(free_dims, free_dims + bound_dims):
        inputs += _LETTERS[i]
        kernel += _LETTERS[i]
    for i in range(free_dims + bound_dims, free_dims + bound_dims + output_dims):
        kernel += _LETTERS[i]
        output += _LETTERS[i]
        bias += _LETTERS[i]
    return f"{inputs},{kernel}->{output}", bias, len(output)


def _partial_shape(output_rank, known_last_dims):
    return [None] * (output_rank - len(known_last_dims)) + list(known_last_dims)


def attention_equations(rank, attention_axes):
    """(dot-product equation, combine equation, scores rank) for projected tensors of
    ``rank`` = (batch, <other axes>, <attention axes>, heads, channels)."""
    target = _LETTERS[:rank]
    batch_dims = tuple(i for i in range(rank) if i not in attention_axes and i != rank - 1)
    offset = rank
    source = ""
    for i in range(rank):
        if i in batch_dims or i == rank - 1:
            source += target[i]
        else:
            source += _LETTERS[offset]
            offset += 1
    product = "".join([target[i] for i in batch_dims] + [target[i] for i in attention_axes]
                      + [source[i] for i in attention_axes])
    return f"{source},{target}->{product}", f"{product},{source}->{target}", len(product)


class MultiHeadAttention(Layer):
    def __init__(self, num_heads, key_dim, value_dim=None, dropout=0.0, use_bias=True, output_shape=None,
                 attention_axes=None, sliding_window=None, flash_attention=None, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None, use_gate=False, seed=None,
                 **kwargs):
        if not isinstance(num_heads, int) or isinstance(num_heads, bool) or num_heads <= 0:
            raise ValueError("Received an invalid value for argument `num_heads`, expected a positive integer. "
                             f"Received: num_heads={num_heads}")
        if not isinstance(key_dim, int) or isinstance(key_dim, bool) or key_dim <= 0:
            raise ValueError("Received an invalid value for argument `key_dim`, expected a positive integer. "
                             f"Received: key_dim={key_dim}")
        if value_dim is not None and (not isinstance(value_dim, int) or value_dim <= 0):
            raise ValueError("Received an invalid value for argument `value_dim`, expected a positive integer or "
                             f"`None`. Received: value_dim={value_dim}")
        super().__init__(**kwargs)
        from amber import constraints, initializers, regularizers

        self.supports_masking = True
        self._num_heads = num_heads
        self._key_dim = key_dim
        self._value_dim = value_dim if value_dim else key_dim
        self._dropout = float(dropout)
        self._use_bias = bool(use_bias)
        self._use_gate = bool(use_gate)
        if output_shape:
            if isinstance(output_shape, int):
                output_shape = (output_shape,)
            try:
                output_shape = tuple(output_shape)
            except TypeError:
                raise ValueError(f"Invalid `output_shape`: {output_shape}. When specified, the `output_shape` "
                                 "should be of type tuple, list, or int.") from None
        self._output_shape = output_shape or None
        self._kernel_initializer = initializers.get(kernel_initializer)
        self._bias_initializer = initializers.get(bias_initializer)
        self._kernel_regularizer = regularizers.get(kernel_regularizer)
        self._bias_regularizer = regularizers.get(bias_regularizer)
        self._activity_regularizer = regularizers.get(activity_regularizer)
        self._kernel_constraint = constraints.get(kernel_constraint)
        self._bias_constraint = constraints.get(bias_constraint)
        if isinstance(attention_axes, int):
            attention_axes = (attention_axes,)
        elif attention_axes and not isinstance(attention_axes, (list, tuple)):
            raise ValueError(f"`attention_axes` must be an int, list, or tuple.Received: "
                             f"attention_axes={attention_axes}")
        self._attention_axes = tuple(attention_axes) if attention_axes else None
        if sliding_window is not None and (not isinstance(sliding_window, int) or sliding_window <= 0):
            raise ValueError("`sliding_window` must be `None` or a positive integer. "
                             f"Received: sliding_window={sliding_window}")
        self._sliding_window = sliding_window
        self.seed = seed
        self._inverse_sqrt_key_dim = 1.0 / math.sqrt(float(self._key_dim))
        self._query_dense = self._key_dense = self._value_dense = self._output_dense = None
        self._gate_dense = None
        self._build_shapes = None

    # ------------------------------------------------------------------ properties

    num_heads = property(lambda self: self._num_heads)
    key_dim = property(lambda self: self._key_dim)
    value_dim = property(lambda self: self._value_dim)
    dropout = property(lambda self: self._dropout)
    use_bias = property(lambda self: self._use_bias)
    attention_axes = property(lambda self: self._attention_axes)
    query_dense = property(lambda self: self._query_dense)
    key_dense = property(lambda self: self._key_dense)
    value_dense = property(lambda self: self._value_dense)
    output_dense = property(lambda self: self._output_dense)

    # ------------------------------------------------------------------ building

    def _sublayer_kwargs(self):
        from amber import initializers

        # Each projection gets its own initializer copy, as Keras does (seeded initializers
        # would otherwise give every projection the same values).
        return dict(
            kernel_regularizer=self._kernel_regularizer, bias_regularizer=self._bias_regularizer,
            activity_regularizer=self._activity_regularizer, kernel_constraint=self._kernel_constraint,
            bias_constraint=self._bias_constraint, dtype=self.dtype,
            kernel_initializer=initializers.get(initializers.serialize(self._kernel_initializer)),
            bias_initializer=initializers.get(initializers.serialize(self._bias_initializer)),
        )

    def _projection(self, rank, last_dims, name, activation=None):
        equation, bias_axes, output_rank = projection_equation(rank - 1, bound_dims=1, output_dims=2)
        return EinsumDense(equation, output_shape=_partial_shape(output_rank - 1, last_dims),
                           bias_axes=bias_axes if self._use_bias else None, activation=activation, name=name,
                           **self._sublayer_kwargs())

    def build(self, query_shape, value_shape, key_shape=None):
        query_shape = tuple(query_shape)
        value_shape = tuple(value_shape)
        key_shape = value_shape if key_shape is None else tuple(key_shape)
        if value_shape[1:-1] != key_shape[1:-1]:
            raise ValueError("All dimensions of `value` and `key`, except the last one, must be equal. "
                             f"Received: value_shape={value_shape} and key_shape={key_shape}")
        self._build_shapes = (query_shape, value_shape, None if key_shape is value_shape else key_shape)
        heads = self._num_heads
        self._query_dense = self._projection(len(query_shape), [heads, self._key_dim], "query")
        self._query_dense.build(query_shape)
        self._key_dense = self._projection(len(key_shape), [heads, self._key_dim], "key")
        self._key_dense.build(key_shape)
        if self._use_gate:
            self._gate_dense = self._projection(len(query_shape), [heads, self._value_dim], "gate",
                                                activation="sigmoid")
            self._gate_dense.build(query_shape)
        self._value_dense = self._projection(len(value_shape), [heads, self._value_dim], "value")
        self._value_dense.build(value_shape)

        rank = len(value_shape) + 1  # projected tensors gain a heads axis
        if self._attention_axes is None:
            self._attention_axes = tuple(range(1, rank - 2))
        else:
            self._attention_axes = tuple(a if a >= 0 else (rank - 1) + a for a in self._attention_axes)
        self._dot_product_equation, self._combine_equation, scores_rank = attention_equations(
            rank, self._attention_axes)
        self._norm_axes = tuple(range(scores_rank - len(self._attention_axes), scores_rank))
        from amber.layers.core import Dropout, Softmax

        self._softmax = Softmax(axis=self._norm_axes, dtype=self.dtype)
        self._dropout_layer = Dropout(rate=self._dropout, dtype=self.dtype, seed=self.seed)

        output_shape = self._output_shape if self._output_shape else [query_shape[-1]]
        equation, bias_axes, output_rank = projection_equation(len(query_shape) - 1, bound_dims=2,
                                                               output_dims=len(output_shape))
        self._output_dense = EinsumDense(equation, output_shape=_partial_shape(output_rank - 1, output_shape),
                                         bias_axes=bias_axes if self._use_bias else None, name="attention_output",
                                         **self._sublayer_kwargs())
        projected = list(self._query_dense.compute_output_shape(query_shape))
        projected[-1] = self._value_dim
        self._output_dense.build(tuple(projected))

    def _maybe_build(self, inputs):
        # Building needs the value's shape too, which only call() sees.
        return None

    def _build_from_arguments(self, query, value, key):
        if not self.built:
            self.build(_shape(query), _shape(value), None if key is None else _shape(key))
            self.built = True

    def get_build_config(self):
        if self._build_shapes is None:
            return None
        query_shape, value_shape, key_shape = self._build_shapes
        shapes = {"query_shape": list(query_shape), "value_shape": list(value_shape)}
        if key_shape is not None:
            shapes["key_shape"] = list(key_shape)
        return {"shapes_dict": shapes}

    def build_from_config(self, config):
        if config and "shapes_dict" in config:
            shapes = config["shapes_dict"]
            self.build(_plain_shape(shapes["query_shape"]), _plain_shape(shapes["value_shape"]),
                       _plain_shape(shapes["key_shape"]) if shapes.get("key_shape") else None)
            self.built = True
        else:
            super().build_from_config(config)

    # ------------------------------------------------------------------ masks

    def _attention_mask(self, query, value, query_mask, value_mask, key_mask, attention_mask, use_causal_mask):
        """Boolean (B, T, S) mask merging the inputs' masks, the explicit mask and the causal
        and sliding-window bands (None when nothing masks)."""
        merged = None

        def merge(mask):
            nonlocal merged
            merged = mask if merged is None else np.logical_and(merged, mask)

        if query_mask is not None:
            merge(np.asarray(ops.convert_to_numpy(query_mask)).astype(bool)[..., None])
        if value_mask is not None:
            merge(np.asarray(ops.convert_to_numpy(value_mask)).astype(bool)[..., None, :])
        if key_mask is not None:
            merge(np.asarray(ops.convert_to_numpy(key_mask)).astype(bool)[..., None, :])
        t, s = _shape(query)[1], _shape(value)[1]
        if use_causal_mask:
            merge(np.tril(np.ones((t, s), dtype=bool))[None])
        if self._sliding_window is not None:
            rows, cols = np.arange(t)[:, None], np.arange(s)[None, :]
            merge((np.abs(rows - cols) < self._sliding_window)[None])
        if attention_mask is not None:
            explicit = np.asarray(ops.convert_to_numpy(attention_mask)).astype(bool)
            merged = explicit if merged is None else np.logical_and(explicit, merged)
        return merged

    # ------------------------------------------------------------------ attention

    def _compute_attention(self, query, key, value, attention_mask=None, training=None,
                           return_attention_scores=False):
        # Keras takes its fused dot-product-attention path when it can; that path leaves
        # fully masked rows uniform instead of zeroing them, so mirror which path applies.
        fused_path = not (self._dropout > 0.0 or return_attention_scores or len(_shape(query)) != 4)
        query = ops.multiply(query, np.asarray(self._inverse_sqrt_key_dim, dtype=ops.dtype(query)))
        scores = ops.einsum(self._dot_product_equation, key, query)
        keep = None
        if attention_mask is not None:
            keep = attention_mask
            scores_rank = len(_shape(scores))
            axis = -len(self._attention_axes) * 2 - 1
            while keep.ndim < scores_rank:
                keep = np.expand_dims(keep, axis)
            keep = np.broadcast_to(keep, _shape(scores))
            scores = ops.where(keep, scores, _LARGE_NEGATIVE)
        if len(self._norm_axes) == 1:
            weights = ops.softmax(scores, axis=self._norm_axes[0])
        else:
            weights = ops.exp(ops.subtract(scores, ops.logsumexp(scores, axis=self._norm_axes, keepdims=True)))
        if keep is not None and not fused_path:
            weights = ops.where(keep, weights, 0.0)
        final = weights
        if self._dropout > 0.0:
            final = self._dropout_layer(weights, training=training)
        output = ops.einsum(self._combine_equation, final, value)
        return output, weights

    def call(self, query, value, key=None, query_mask=None, value_mask=None, key_mask=None, attention_mask=None,
             return_attention_scores=False, training=None, use_causal_mask=False):
        self._build_from_arguments(query, value, key)
        # Keras casts every floating input to the compute dtype, not only the first.
        value = self._as_compute_dtype(value)
        key = value if key is None else self._as_compute_dtype(key)
        mask = self._attention_mask(query, value, query_mask, value_mask, key_mask, attention_mask,
                                    use_causal_mask)
        gate = self._gate_dense(query) if self._use_gate else None
        query = self._query_dense(query)
        key = self._key_dense(key)
        value = self._value_dense(value)
        output, scores = self._compute_attention(query, key, value, mask, training, return_attention_scores)
        if gate is not None:
            output = ops.multiply(output, gate)
        output = self._output_dense(output)
        if return_attention_scores:
            return output, scores
        return output

    def _as_compute_dtype(self, x):
        if isinstance(x, np.ndarray) and x.dtype.kind == "f" and x.dtype != self.compute_dtype:
            return x.astype(self.compute_dtype)
        return x

    def compute_output_shape(self, query_shape, value_shape=None, key_shape=None):
        query_shape = tuple(query_shape)
        if value_shape is not None:
            value_shape = tuple(value_shape)
            key_shape = value_shape if key_shape is None else tuple(key_shape)
            if value_shape[1:-1] != key_shape[1:-1]:
                raise ValueError("All dimensions of `value` and `key`, except the last one, must be equal. "
                                 f"Received: value_shape={value_shape} and key_shape={key_shape}")
        if self._output_shape:
            return query_shape[:-1] + tuple(self._output_shape)
        return query_shape

    def compute_output_spec(self, query, value, key=None, query_mask=None, value_mask=None, key_mask=None,
                            attention_mask=None, return_attention_scores=False, training=None,
                            use_causal_mask=False):
        from amber.layers.keras_tensor import KerasTensor

        self._build_from_arguments(query, value, key)
        shape = self.compute_output_shape(query.shape, value.shape, None if key is None else key.shape)
        output = KerasTensor(shape, dtype=self.compute_dtype)
        if return_attention_scores:
            length = query.shape[1]
            return output, KerasTensor((query.shape[0], self._num_heads, length, length), dtype=self.compute_dtype)
        return output

    # ------------------------------------------------------------------ config

    def get_config(self):
        from amber import constraints, initializers, regularizers

        config = super().get_config()
        config.update({
            "num_heads": self._num_heads,
            "key_dim": self._key_dim,
            "value_dim": self._value_dim,
            "dropout": self._dropout,
            "use_bias": self._use_bias,
            "use_gate": self._use_gate,
            "output_shape": list(self._output_shape) if self._output_shape else None,
            "attention_axes": list(self._attention_axes) if self._attention_axes is not None else None,
            "sliding_window": self._sliding_window,
            "kernel_initializer": initializers.serialize(self._kernel_initializer),
            "bias_initializer": initializers.serialize(self._bias_initializer),
            "kernel_regularizer": _serialize_or_none(regularizers, self._kernel_regularizer),
            "bias_regularizer": _serialize_or_none(regularizers, self._bias_regularizer),
            "activity_regularizer": _serialize_or_none(regularizers, self._activity_regularizer),
            "kernel_constraint": _serialize_or_none(constraints, self._kernel_constraint),
            "bias_constraint": _serialize_or_none(constraints, self._bias_constraint),
            "seed": self.seed,
        })
        return config
