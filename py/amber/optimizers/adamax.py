"""Adamax: Adam with the infinity norm in place of the second moment."""

import numpy as np

from amber import _native
from amber.backend import allocator
from amber.optimizers import fused
from amber.optimizers.base_optimizer import Optimizer

f32 = np.float32


class Adamax(Optimizer):
    def __init__(
        self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, name=None, **kwargs
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._m, self._u = self.add_optimizer_variables(var_list, ["momentum", "norm"])

    def _update_all(self, grads, trainable_variables, learning_rate):
        if not fused.step_all(self, grads, trainable_variables, [self._m, self._u],
                              self._kernel(learning_rate)):
            super()._update_all(grads, trainable_variables, learning_rate)

    def _one_minus_beta_1_power(self):
        return f32(1) - np.power(f32(self.beta_1), f32(self._step_count() + 1))

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        m = self._m[index]
        u = self._u[index]
        if fused.is_float32(variable):
            fused.step_one(self, gradient, variable, [m, u], self._kernel(learning_rate))
            return
        # Other dtypes: the rule as numpy expressions (the kernel's float32 twin).
        gradient = gradient.astype(variable.dtype, copy=False)
        m.assign(m.value + (gradient - m.value) * f32(1 - self.beta_1))
        u.assign(np.maximum(f32(self.beta_2) * u.value, np.abs(gradient)))
        variable.assign(
            variable.value
            - (learning_rate * m.value)
            / (self._one_minus_beta_1_power() * (u.value + f32(self.epsilon)))
        )

    def _kernel(self, learning_rate):
        """Keras's float32 Adamax step, fused into one pass with the same float32 roundings as
        the expressions in `update_step` (see `fused`)."""
        coefficients = (f32(learning_rate), f32(1 - self.beta_1), f32(self.beta_2),
                        f32(self.epsilon), self._one_minus_beta_1_power())

        def adamax(gradient, value, m, u):
            new_value = allocator.empty_aligned(value.shape, f32)
            _native.adamax_step_f32(new_value, value, gradient, m, u, *coefficients)
            return new_value

        return adamax

    def get_config(self):
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon})
        return config
