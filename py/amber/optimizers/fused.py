"""Running an optimizer's fused float32 kernel (`amber._native.*_step_f32`) on its variables.

A kernel here is ``kernel(gradient, value, *slots) -> new_value``: C-contiguous float32
operands of one shape, the slots (None for an absent optional one) updated in place and the
new value a fresh array (the old one may be a read-only mapped view or still referenced, so
it is never written). `step_all` runs it once over all variables laid end to end
(`flat_state`); `step_one` runs it on one variable, for the per-variable path.
"""

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


def step_one(optimizer, gradient, variable, slots, kernel):
    """Update one float32 `variable` with `kernel`; `slots` are its slot variables in the
    kernel's order (None for an absent optional one). Operands in another layout are copied to
    C order first; slots become private to the optimizer before being written."""
    private = [None if slot is None else optimizer._private_slot_value(slot) for slot in slots]
    variable._replace(kernel(optimizer._c_float32(gradient), optimizer._c_float32(variable.value),
                             *private))


def is_float32(variable):
    return variable.value.dtype == f32
