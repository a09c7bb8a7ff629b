"""SimpleRNN, LSTM and GRU: an RNN over the matching built-in cell, configured flat as Keras
does (the cell's arguments sit in the layer's config; there is no ``cell`` key)."""

from amber.layers.layer import Layer
from amber.layers.rnn.cells import GRUCell, LSTMCell, SimpleRNNCell, serialize_or_none
from amber.layers.rnn.rnn import RNN

# Arguments of the layer that belong to the RNN loop, not to the cell.
_RNN_ARGS = ("return_sequences", "return_state", "go_backwards", "stateful", "unroll", "zero_output_for_mask")
# Layer-level keyword arguments the cell shares.
_SHARED = ("dtype", "trainable")


class _CellLayer(RNN):
    _cell_class = None
    _cell_name = None
    # Config keys Keras writes for the layer, beyond the base Layer keys and the RNN flags.
    _writes_seed = True
    _keeps_activity_regularizer = True

    def __init__(self, units, **kwargs):
        rnn_kwargs = {k: kwargs.pop(k) for k in _RNN_ARGS if k in kwargs}
        kwargs.pop("use_cudnn", None)
        # Keras 2 configs carry time_major; only the batch-major layout exists here.
        if kwargs.pop("time_major", False):
            raise ValueError(f"{type(self).__name__}: time_major=True is not supported (inputs are "
                             "(batch, time, features))")
        kwargs.pop("implementation", None)
        activity_regularizer = kwargs.pop("activity_regularizer", None)
        if not self._keeps_activity_regularizer:
            activity_regularizer = None
        layer_kwargs = {k: kwargs.pop(k) for k in list(kwargs)
                        if k in ("name", "input_shape", "input_dim", "batch_input_shape", "batch_size",
                                 "input_dtype", "autocast", "weights")}
        cell_kwargs = dict(kwargs)
        for key in _SHARED:
            if key in kwargs:
                layer_kwargs[key] = kwargs[key]
        cell_kwargs.setdefault("trainable", kwargs.get("trainable", True))
        cell = self._cell_class(units, name=self._cell_name, **cell_kwargs)
        super().__init__(cell, activity_regularizer=activity_regularizer, **rnn_kwargs, **layer_kwargs)

    def call(self, sequences, initial_state=None, mask=None, training=False):
        return super().call(sequences, initial_state=initial_state, mask=mask, training=training)

    def get_config(self):
        from amber import regularizers

        config = Layer.get_config(self)  # the base keys: name, trainable, dtype
        config.update(self._rnn_config())
        cell_config = self.cell.get_config()
        for key in ("name", "trainable", "dtype"):
            cell_config.pop(key, None)
        if not self._writes_seed:
            cell_config.pop("seed", None)
        config.update(cell_config)
        config["activity_regularizer"] = serialize_or_none(regularizers, self.activity_regularizer)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(**dict(config))


def _delegate(name):
    return property(lambda self: getattr(self.cell, name))


for _name in ("units", "activation", "recurrent_activation", "use_bias", "kernel_initializer",
              "recurrent_initializer", "bias_initializer", "kernel_regularizer", "recurrent_regularizer",
              "bias_regularizer", "kernel_constraint", "recurrent_constraint", "bias_constraint", "dropout",
              "recurrent_dropout"):
    setattr(_CellLayer, _name, _delegate(_name))


class SimpleRNN(_CellLayer):
    """Fully connected recurrence: h_t = activation(x_t W + h_{t-1} U + b)."""

    _cell_class = SimpleRNNCell
    _cell_name = "simple_rnn_cell"
    _writes_seed = False
    # Keras 3's SimpleRNN accepts activity_regularizer but never applies or saves it.
    _keeps_activity_regularizer = False


class LSTM(_CellLayer):
    """Long short-term memory (gates i, f, c, o; variables kept by the cell as
    ``lstm/lstm_cell/{kernel, recurrent_kernel, bias}``)."""

    _cell_class = LSTMCell
    _cell_name = "lstm_cell"

    unit_forget_bias = _delegate("unit_forget_bias")


class GRU(_CellLayer):
    """Gated recurrent unit (gates z, r, h; ``reset_after=True`` by default)."""

    _cell_class = GRUCell
    _cell_name = "gru_cell"

    reset_after = _delegate("reset_after")
