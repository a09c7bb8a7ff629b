"""Stochastic gradient descent with optional (Nesterov) momentum."""

import numpy as np

from amber import _native
from amber.backend import allocator
from amber.optimizers import fused
from amber.optimizers.base_optimizer import Optimizer


class SGD(Optimizer):
    """`w -= lr * g`; with momentum `m = momentum * m - lr * g; w += m` (Nesterov looks ahead)."""

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, name=None, **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if not isinstance(momentum, float) or momentum < 0 or momentum > 1:
            raise ValueError(f"`momentum` must be a float between [0, 1]. Received: {momentum!r}")
        self.momentum = momentum
        self.nesterov = nesterov
        self.momentums = []

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        if self.momentum != 0:
            self.momentums = self.add_optimizer_variables(variables, "momentum")

    def _slot_lists(self):
        return [self.momentums if self.momentum != 0 else None]

    def _update_all(self, grads, trainable_variables, learning_rate):
        kernel = fused.cached(self, "kernel", (learning_rate, self.momentum, self.nesterov),
                              lambda: self._kernel(learning_rate))
        if not fused.step_all(self, grads, trainable_variables, self._slot_lists(), kernel):
            super()._update_all(grads, trainable_variables, learning_rate)

    def update_step(self, gradient, variable, learning_rate):
        if fused.is_float32(variable):
            index = self._get_variable_index(variable)
            slots = [None if slots is None else slots[index] for slots in self._slot_lists()]
            fused.step_one(self, gradient, variable, slots, self._kernel(learning_rate))
            return
        # Other dtypes: the rule as numpy expressions (the kernel's float32 twin).
        gradient = gradient.astype(variable.dtype, copy=False)
        step = gradient * learning_rate
        if self.momentum == 0:
            variable.assign(variable.value - step)
            return
        momentum = np.float32(self.momentum)
        m = self.momentums[self._get_variable_index(variable)]
        m.assign(m.value * momentum - step)
        if self.nesterov:
            variable.assign(variable.value + (m.value * momentum - step))
        else:
            variable.assign(variable.value + m.value)

    def _kernel(self, learning_rate):
        """Keras's float32 SGD step, fused into one pass with the same float32 roundings as
        the expressions in `update_step` (see `fused`)."""
        coefficients = (np.float32(learning_rate), np.float32(self.momentum), bool(self.nesterov))

        def sgd(gradient, value, momentum):
            new_value = allocator.empty_aligned(value.shape, np.float32)
            _native.sgd_step_f32(new_value, value, gradient, momentum, *coefficients)
            return new_value

        return sgd

    def get_config(self):
        config = super().get_config()
        config.update({"momentum": self.momentum, "nesterov": self.nesterov})
        return config
