"""RNN: runs a cell over the time axis, and StackedRNNCells: several cells as one.

The loop is plain Python over time steps built from ops, so under a GradientTape every step
is recorded and ``fit`` differentiates through time. Built-in cells project all time steps'
inputs with one matrix product first; each step then costs one recurrent product plus a few
elementwise ops.
"""

import numpy as np

from amber import ops
from amber.backend.autodiff import Tensor, differentiable_input, is_recording
from amber.layers.layer import Layer
from amber.layers.rnn.cells import DropoutRNNCell, _GatedCell
from amber.ops.rnn_attention_ops import time_step


def _shape(x):
    if type(x) is np.ndarray or type(x) is Tensor:
        return x.shape
    return np.shape(ops.convert_to_numpy(x))


def _time_step(x, t):
    """``x[:, t]``: a free view for arrays, a recorded slice for Tensors and watched arrays."""
    if type(x) is np.ndarray and (not is_recording() or differentiable_input(x) is None):
        return x[:, t]
    return time_step(x, t)


def _is_nested(x):
    return isinstance(x, (list, tuple))


def _flatten(x):
    if _is_nested(x):
        out = []
        for item in x:
            out.extend(_flatten(item))
        return out
    return [x]


def _pack_like(structure, flat):
    """Rebuild ``structure``'s nesting from the flat list ``flat`` (consumed in order)."""
    iterator = iter(flat)

    def rebuild(node):
        if _is_nested(node):
            return [rebuild(item) for item in node]
        return next(iterator)

    return rebuild(structure)


def _zeros_for(state_size, batch_size, dtype):
    if _is_nested(state_size):
        return [_zeros_for(s, batch_size, dtype) for s in state_size]
    return np.zeros((batch_size, int(state_size)), dtype=dtype)


def _select(keep, new, old):
    """``new`` where the step is not masked, else ``old`` (``keep`` is (batch, 1))."""
    return ops.where(keep, new, old)


class RNN(Layer):
    """Base class for recurrent layers: ``cell`` (a layer with ``call(inputs, states)`` and
    ``state_size``, or a list of such cells) applied to every time step."""

    def __init__(self, cell, return_sequences=False, return_state=False, go_backwards=False, stateful=False,
                 unroll=False, zero_output_for_mask=False, **kwargs):
        if isinstance(cell, (list, tuple)):
            # The stack computes in the RNN's dtype (it would otherwise cast float64 steps to float32).
            cell = StackedRNNCells(cell, dtype=kwargs.get("dtype"))
        if "call" not in dir(cell):
            raise ValueError(f"Argument `cell` should have a `call` method. Received: cell={cell}")
        state_size = getattr(cell, "state_size", None)
        if state_size is None:
            raise ValueError("state_size must be specified as property on the RNN cell.")
        if not isinstance(state_size, (list, tuple, int, np.integer)):
            raise ValueError("state_size must be an integer, or a list/tuple of integers "
                             "(one for each state tensor).")
        super().__init__(**kwargs)
        self.cell = cell
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = bool(stateful)
        self.unroll = bool(unroll)
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self.supports_masking = True
        self.single_state = isinstance(state_size, (int, np.integer))
        self.state_size = [int(state_size)] if self.single_state else list(state_size)
        # Stateful carry-over lives in untracked Variables: Keras does not count them as weights.
        object.__setattr__(self, "states", None)

    # ------------------------------------------------------------------ shapes and state

    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        batch, length = sequences_shape[0], sequences_shape[1]
        output_size = getattr(self.cell, "output_size", None)
        if output_size is None:
            output_size = self.state_size[0]
            while _is_nested(output_size):
                output_size = output_size[0]
        output_shape = (batch, length, output_size) if self.return_sequences else (batch, output_size)
        if not self.return_state:
            return output_shape
        # One shape per state, nested like the states themselves (a stacked LSTM cell has two).
        states = [[(batch, i) for i in s] if _is_nested(s) else (batch, s) for s in self.state_size]
        return [output_shape] + states

    def compute_mask(self, inputs, mask=None):
        if _is_nested(mask):
            mask = mask[0] if mask else None
        output_mask = mask if self.return_sequences else None
        if self.return_state:
            return [output_mask] + [None for _ in _flatten(self.state_size)]
        return output_mask

    def build(self, sequences_shape, initial_state_shape=None):
        step_shape = (sequences_shape[0],) + tuple(sequences_shape[2:])
        if isinstance(self.cell, Layer) and not self.cell.built:
            self.cell.build(step_shape)
            self.cell.built = True
        if self.stateful:
            if self.states is not None:
                self.reset_state()
            else:
                if sequences_shape[0] is None:
                    raise ValueError("When using `stateful=True` in a RNN, the batch size must be static. "
                                     f"Found dynamic batch size: sequence.shape={tuple(sequences_shape)}")
                self._create_state_variables(sequences_shape[0])

    def _create_state_variables(self, batch_size):
        from amber import backend

        initial = _flatten(self.get_initial_state(batch_size))
        variables = []
        for value in initial:
            variable = backend.Variable(np.asarray(value), trainable=False, name="rnn_state")
            try:
                variable.path = f"{self.name}/rnn_state"
            except AttributeError:
                pass
            variables.append(variable)
        object.__setattr__(self, "states", variables)

    def get_initial_state(self, batch_size):
        make = getattr(self.cell, "get_initial_state", None)
        if make is not None:
            state = make(batch_size=batch_size)
            return list(state) if _is_nested(state) else [state]
        dtype = getattr(self.cell, "compute_dtype", self.compute_dtype)
        return [_zeros_for(s, batch_size, dtype) for s in self.state_size]

    def reset_state(self):
        if self.states is not None:
            for variable in self.states:
                variable.assign(np.zeros(tuple(variable.shape), dtype=variable.dtype))

    def reset_states(self):
        self.reset_state()

    # ------------------------------------------------------------------ the loop

    def call(self, sequences, initial_state=None, mask=None, training=False):
        shape = _shape(sequences)
        if len(shape) < 3:
            raise ValueError(f"Layer '{self.name}' expects inputs of rank >= 3 (batch, time, features), "
                             f"got shape {tuple(shape)}")
        batch, steps = shape[0], shape[1]
        if steps == 0:
            raise ValueError(f"Layer '{self.name}' received a sequence with no time steps (shape {tuple(shape)})")
        if initial_state is None:
            if self.stateful:
                if self.states is None:
                    self._create_state_variables(batch)
                if tuple(self.states[0].shape)[0] != batch:
                    raise ValueError(
                        "If an RNN is stateful, the batch size of the input sequences must be the same as the "
                        f"batch size of the initial state. \n- Expected batch size: "
                        f"{tuple(self.states[0].shape)[0]}\n- Received batch size: {batch}")
                initial_state = _pack_like(self.get_initial_state(batch), [v.value for v in self.states])
            else:
                initial_state = self.get_initial_state(batch)
        if not _is_nested(initial_state):
            initial_state = [initial_state]
        dtype = getattr(self.cell, "compute_dtype", self.compute_dtype)
        flat = [s if type(s) is Tensor else np.asarray(ops.convert_to_numpy(s), dtype=dtype)
                for s in _flatten(initial_state)]
        initial_state = _pack_like(list(initial_state), flat)
        if mask is not None:
            mask = np.asarray(ops.convert_to_numpy(mask)).astype(bool)
            if mask.ndim != 2 or mask.shape[0] != batch or mask.shape[1] != steps:
                raise ValueError(f"Layer '{self.name}': mask shape {mask.shape} does not match the "
                                 f"(batch, time) = ({batch}, {steps}) of the inputs")

        last_output, outputs, states = self._loop(sequences, steps, initial_state, mask, bool(training))
        self._reset_dropout_masks(self.cell)

        if self.stateful:
            for variable, value in zip(self.states, _flatten(states)):
                variable.assign(np.asarray(ops.convert_to_numpy(value)))
        output = outputs if self.return_sequences else last_output
        if self.return_state:
            return (output, *states)
        return output

    def _loop(self, sequences, steps, states, mask, training):
        cell = self.cell
        # Subclasses that override call() keep their own step.
        fast = isinstance(cell, _GatedCell) and type(cell).call is _GatedCell.call
        # Inference projects every time step's input with one matrix product. Under a tape
        # each step projects its own input slice instead: slicing a recorded projection would
        # send a full-size gradient back from every step (quadratic in the length), while a
        # slice of an unwatched input costs nothing.
        project_per_step = fast and is_recording()
        if fast and not project_per_step:
            source = cell.project_inputs(sequences, training)
        elif fast:
            source = sequences
        else:
            source = sequences
            takes_training = isinstance(cell, Layer) and cell._call_params()[1]
        order = range(steps - 1, -1, -1) if self.go_backwards else range(steps)
        outputs = []
        previous = None
        for t in order:
            x_t = _time_step(source, t)
            if fast:
                if project_per_step:
                    x_t = cell.project_inputs(x_t, training)
                output, new_states = cell.recurrent_step(x_t, states, training)
            else:
                kwargs = {"training": training} if takes_training else {}
                output, new_states = cell(x_t, states, **kwargs) if isinstance(cell, Layer) \
                    else cell.call(x_t, states)
                if not _is_nested(new_states):
                    new_states = [new_states]
                new_states = list(new_states)
            if mask is not None:
                keep = mask[:, t:t + 1]
                flat_new, flat_old = _flatten(new_states), _flatten(states)
                new_states = _pack_like(new_states, [_select(keep, n, o) for n, o in zip(flat_new, flat_old)])
                if self.zero_output_for_mask or previous is None:
                    fallback = np.zeros(_shape(output), dtype=np.asarray(ops.convert_to_numpy(output)).dtype)
                else:
                    fallback = previous
                output = _select(keep, output, fallback)
            states = new_states
            previous = output
            if self.return_sequences:
                outputs.append(output)
        if previous is None:
            raise ValueError(f"Layer '{self.name}' received a sequence with no time steps")
        sequence = ops.stack(outputs, axis=1) if self.return_sequences else None
        return previous, sequence, states

    def _reset_dropout_masks(self, cell):
        if isinstance(cell, DropoutRNNCell):
            cell.reset_dropout_mask()
            cell.reset_recurrent_dropout_mask()
        if isinstance(cell, StackedRNNCells):
            for inner in cell.cells:
                self._reset_dropout_masks(inner)

    # ------------------------------------------------------------------ config

    def _rnn_config(self):
        return {
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "go_backwards": self.go_backwards,
            "stateful": self.stateful,
            "unroll": self.unroll,
            "zero_output_for_mask": self.zero_output_for_mask,
        }

    def get_config(self):
        from amber.saving import serialize_keras_object

        config = super().get_config()
        config.update(self._rnn_config())
        config["cell"] = serialize_keras_object(self.cell)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from amber.saving import deserialize_keras_object

        config = dict(config)
        cell = deserialize_keras_object(config.pop("cell"), custom_objects=custom_objects)
        return cls(cell, **config)


class StackedRNNCells(Layer):
    """Several cells run one after the other within each time step; the state is one entry
    per cell."""

    def __init__(self, cells, **kwargs):
        super().__init__(**kwargs)
        for cell in cells:
            if "call" not in dir(cell):
                raise ValueError(f"All cells must have a `call` method. Received cell without a `call` "
                                 f"method: {cell}")
            if not hasattr(cell, "state_size"):
                raise ValueError(f"All cells must have a `state_size` attribute. Received cell without a "
                                 f"`state_size`: {cell}")
        self.cells = list(cells)

    @property
    def state_size(self):
        return [c.state_size for c in self.cells]

    @property
    def output_size(self):
        last = self.cells[-1]
        if getattr(last, "output_size", None) is not None:
            return last.output_size
        size = last.state_size
        return size[0] if _is_nested(size) else size

    def get_initial_state(self, batch_size=None):
        states = []
        for cell in self.cells:
            make = getattr(cell, "get_initial_state", None)
            if make is not None:
                states.append(make(batch_size=batch_size))
            else:
                dtype = getattr(cell, "compute_dtype", "float32")
                states.append(_zeros_for(cell.state_size, batch_size, dtype))
        return states

    def call(self, inputs, states, training=False):
        new_states = []
        for cell, cell_states in zip(self.cells, states):
            was_list = _is_nested(cell_states)
            cell_states = list(cell_states) if was_list else [cell_states]
            kwargs = {"training": training} if isinstance(cell, Layer) and cell._call_params()[1] else {}
            inputs, cell_states = cell(inputs, cell_states, **kwargs)
            if not _is_nested(cell_states):
                cell_states = [cell_states]
            cell_states = list(cell_states)
            if len(cell_states) == 1 and not was_list:
                cell_states = cell_states[0]
            new_states.append(cell_states)
        return inputs, new_states

    def build(self, input_shape):
        for cell in self.cells:
            if isinstance(cell, Layer) and not cell.built:
                cell.build(input_shape)
                cell.built = True
            size = getattr(cell, "output_size", None)
            if size is None:
                size = cell.state_size[0] if _is_nested(cell.state_size) else cell.state_size
            input_shape = (input_shape[0], size)

    def get_config(self):
        from amber.saving import serialize_keras_object

        config = super().get_config()
        config["cells"] = [serialize_keras_object(cell) for cell in self.cells]
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from amber.saving import deserialize_keras_object

        config = dict(config)
        cells = [deserialize_keras_object(c, custom_objects=custom_objects) for c in config.pop("cells")]
        return cls(cells, **config)
