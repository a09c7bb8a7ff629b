"""Float32 variables laid end to end, so an update rule runs its fused kernel once per step
instead of once per variable (a small bias costs as much call overhead as a big kernel).

The optimizer's slots for these variables live as views of private flat buffers and are
written in place (nobody else computes with optimizer state; a slot value handed in from
outside is copied in first). The variables themselves are never written: each step they get
views of one fresh flat array, so their old values (read-only mapped views, arrays someone
still holds) stay untouched. Elementwise float32 arithmetic rounds each element the same
whatever the layout, so the results are bitwise those of the per-variable rule.
"""

import operator

import numpy as np

f32 = np.float32
_value_of = operator.attrgetter("value")


def _all_bound(variables, arrays):
    """True when each variable's value is (the very object) its entry in ``arrays``; the
    common case of every step, checked without a Python-level loop."""
    return all(map(operator.is_, map(_value_of, variables), arrays))


def fits(grads, variables):
    """True when ``grads`` and ``variables`` can take the flat path: two or more float32
    variables, each gradient of its variable's shape."""
    if type(grads) is FlatGradients and grads.variables is variables:
        return len(variables) >= 2  # laid out for exactly these float32 variables
    if len(variables) < 2:
        return False
    for grad, variable in zip(grads, variables):
        value = variable.value
        shape = grad.shape if type(grad) is np.ndarray else np.shape(grad)
        if value.dtype != f32 or shape != value.shape:
            return False
    return True


class FlatGradients(list):
    """Per-variable gradients that are views of one flat float32 vector, ``flat``, laid out
    as a ``FlatState`` of the same variables lays them (a compiled training step writes them
    so): the flat kernels use ``flat`` directly instead of gathering the views.
    ``variables`` is the list of float32 variables they were laid out for."""

    def __init__(self, views, flat, variables):
        super().__init__(views)
        self.flat = flat
        self.variables = variables


class FlatState:
    """The flat buffers for one list of variables and ``slot_count`` slots per variable."""

    def __init__(self, variables, slot_count):
        self.key = tuple(id(v) for v in variables)
        self.shapes = [v.value.shape for v in variables]
        bounds, offset = [], 0
        for shape in self.shapes:
            size = int(np.prod(shape, dtype=np.int64))
            bounds.append((offset, offset + size))
            offset += size
        self.bounds = bounds
        self._slices = [slice(start, stop) for start, stop in bounds]
        self.slots = [np.zeros(offset, f32) for _ in range(slot_count)]
        self._slot_views = [[None] * len(variables) for _ in range(slot_count)]
        self._gradient = np.empty(offset, f32)
        self._gathered_values = np.empty(offset, f32)
        self._values = None
        self._value_views = ()
        # The optimizer's slot variables for these variables, per slot (its own cache).
        self.slot_variables = None
        # Whether weight decay covers all these variables, and the exclusions that decided it
        # (the optimizer's cache, see `Optimizer._decays_all`).
        self.decays_all = None

    def slot(self, index, slot_variables):
        """Flat buffer ``index``, first taking in any slot value this state did not hand out
        (a loaded, assigned or freshly built slot) and giving the slot a view of the buffer."""
        flat = self.slots[index]
        views = self._slot_views[index]
        if _all_bound(slot_variables, views):
            return flat
        for i, slot in enumerate(slot_variables):
            if slot.value is not views[i]:
                start, stop = self.bounds[i]
                flat[start:stop] = slot.value.reshape(-1)
                view = flat[start:stop].reshape(self.shapes[i])
                slot._replace(view)
                views[i] = view
        return flat

    def gradients(self, grads):
        if type(grads) is FlatGradients and grads.flat.size == self._gradient.size:
            return grads.flat
        # axis=None: each gradient is read in C order, as `reshape(-1)` would.
        np.concatenate(grads, axis=None, out=self._gradient)
        return self._gradient

    def values(self, variables):
        """The variables' current values as one vector (only read, never written)."""
        if self._values is not None and _all_bound(variables, self._value_views):
            return self._values
        np.concatenate([v.value.reshape(-1) for v in variables], out=self._gathered_values)
        return self._gathered_values

    def assign_values(self, variables, new_values):
        """Give each variable its view of ``new_values`` (a fresh array from the caller)."""
        views = [new_values[piece].reshape(shape)
                 for piece, shape in zip(self._slices, self.shapes)]
        for variable, view in zip(variables, views):
            variable._replace(view)
        self._values = new_values
        self._value_views = views


def state_for(optimizer, variables, slot_count):
    """The optimizer's FlatState for exactly this list of variables (kept between steps)."""
    state = getattr(optimizer, "_flat_state", None)
    key = tuple(map(id, variables))
    if state is None or state.key != key or len(state.slots) != slot_count:
        state = FlatState(variables, slot_count)
        optimizer._flat_state = state
    return state


def existing(optimizer, variables):
    """The optimizer's FlatState if one is laid out for exactly this list of variables (its
    update rule took the flat path before), else None."""
    state = getattr(optimizer, "_flat_state", None)
    if state is not None and state.key == tuple(map(id, variables)):
        return state
    return None
