"""Running an optimizer's fused float32 kernel (`amber._native.*_step_f32`) on its variables.

A kernel here is ``kernel(gradient, value, *slots) -> new_value``: C-contiguous float32
operands of one shape, the slots (None for an absent optional one) updated in place and the
new value a fresh array (the old one may be a read-only mapped view or still referenced, so
it is never written). `step_all` runs it once over all variables laid end to end
(`flat_state`); `step_one` runs it on one variable, for the per-variable path. `cached`
keeps a rule's kernel (and the float32 coefficients it closes over) between steps while
nothing it was computed from changes.
"""

import math

import numpy as np

from amber.optimizers import flat_state

f32 = np.float32


def step_all(optimizer, grads, variables, slot_lists, kernel):
    """Update `variables` with one call of `kernel` over their flat layout when they fit it
    (see `flat_state.fits`), returning True; False (nothing done) otherwise.

    `slot_lists` are the optimizer's per-variable slot lists, in the kernel's slot order (each
    indexed as `optimizer._get_variable_index`), None for an absent optional slot."""
    if not flat_state.fits(grads, variables):
        return False
    present = [k for k, slots in enumerate(slot_lists) if slots is not None]
    state = flat_state.state_for(optimizer, variables, len(present))
    if state.slot_variables is None:
        indices = [optimizer._get_variable_index(v) for v in variables]
        state.slot_variables = [[slot_lists[k][i] for i in indices] for k in present]
    flat_slots = [None] * len(slot_lists)
    for buffer, k in enumerate(present):
        flat_slots[k] = state.slot(buffer, state.slot_variables[buffer])
    new_values = kernel(state.gradients(grads), state.values(variables), *flat_slots)
    state.assign_values(variables, new_values)
    return True


def cached(optimizer, what, inputs, make):
    """``make()``, reused from the optimizer's previous call for ``what`` while ``inputs`` (a
    tuple of everything the result is computed from: the float32 learning rate, the
    hyperparameters as the optimizer holds them) stay the same, so a step does not redo the
    coefficients' scalar arithmetic (microseconds of numpy scalars) when nothing changed. Any
    change (a new learning rate from the user, a schedule or a callback, a hyperparameter set
    on the optimizer) makes a new result."""
    held = optimizer.__dict__.setdefault("_fused_cache", {}).get(what)
    if held is not None and _same_inputs(held[0], inputs):
        return held[1]
    result = make()
    optimizer._fused_cache[what] = (inputs, result)
    return result


# Immutable numbers: one that compares equal now gives the same float32 later. Anything else
# (a 0-d array or a Variable given as a hyperparameter) may be written in place between
# steps, so it never counts as unchanged.
_SCALARS = (float, int, np.generic)


def _same_inputs(old, new):
    # Equal is not enough: 0.0 == -0.0 but their float32 products differ in sign, and values
    # of different types may round differently.
    if len(old) != len(new):
        return False
    for a, b in zip(old, new):
        if type(a) is not type(b) or not isinstance(b, _SCALARS):
            return False
        if a is b:
            continue
        if not a == b or (a == 0 and math.copysign(1.0, a) != math.copysign(1.0, b)):
            return False
    return True


def step_one(optimizer, gradient, variable, slots, kernel):
    """Update one float32 `variable` with `kernel`; `slots` are its slot variables in the
    kernel's order (None for an absent optional one). Operands in another layout are copied to
    C order first; slots become private to the optimizer before being written."""
    private = [None if slot is None else optimizer._private_slot_value(slot) for slot in slots]
    variable._replace(kernel(optimizer._c_float32(gradient), optimizer._c_float32(variable.value),
                             *private))


def is_float32(variable):
    return variable.value.dtype == f32
