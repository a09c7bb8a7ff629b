"""Recurrent layers: the RNN loop, the built-in cells and layers, and the wrappers."""

from amber.layers.rnn.cells import GRUCell, LSTMCell, SimpleRNNCell  # noqa: F401
from amber.layers.rnn.recurrent import GRU, LSTM, SimpleRNN  # noqa: F401
from amber.layers.rnn.rnn import RNN, StackedRNNCells  # noqa: F401
from amber.layers.rnn.wrappers import Bidirectional, TimeDistributed  # noqa: F401
