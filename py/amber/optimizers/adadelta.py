"""Adadelta: step sizes from running averages of squared gradients and squared updates."""

import numpy as np

from amber import _native
from amber.backend import allocator
from amber.optimizers import fused
from amber.optimizers.base_optimizer import Optimizer

f32 = np.float32


class Adadelta(Optimizer):
    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, name=None, **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.rho = rho
        self.epsilon = epsilon

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._accumulated_grads, self._accumulated_delta_vars = self.add_optimizer_variables(
            var_list, ["accumulated_grad", "accumulated_delta_var"]
        )

    def _update_all(self, grads, trainable_variables, learning_rate):
        slot_lists = [self._accumulated_grads, self._accumulated_delta_vars]
        if not fused.step_all(self, grads, trainable_variables, slot_lists,
                              self._kernel(learning_rate)):
            super()._update_all(grads, trainable_variables, learning_rate)

    def update_step(self, grad, variable, learning_rate):
        index = self._get_variable_index(variable)
        acc_grad = self._accumulated_grads[index]
        acc_delta = self._accumulated_delta_vars[index]
        if fused.is_float32(variable):
            fused.step_one(self, grad, variable, [acc_grad, acc_delta], self._kernel(learning_rate))
            return
        # Other dtypes: the rule as numpy expressions (the kernel's float32 twin).
        grad = grad.astype(variable.dtype, copy=False)
        rho = f32(self.rho)
        one_minus_rho = f32(1 - self.rho)
        epsilon = f32(self.epsilon)
        acc_grad.assign(rho * acc_grad.value + one_minus_rho * np.square(grad))
        delta = -((np.sqrt(acc_delta.value + epsilon) * grad) / np.sqrt(acc_grad.value + epsilon))
        acc_delta.assign(rho * acc_delta.value + one_minus_rho * np.square(delta))
        variable.assign(variable.value + learning_rate * delta)

    def _kernel(self, learning_rate):
        """Keras's float32 Adadelta step, fused into one pass with the same float32 roundings
        as the expressions in `update_step` (see `fused`)."""
        coefficients = (f32(learning_rate), f32(self.rho), f32(1 - self.rho), f32(self.epsilon))

        def adadelta(gradient, value, accumulated_grad, accumulated_delta):
            new_value = allocator.empty_aligned(value.shape, f32)
            _native.adadelta_step_f32(new_value, value, gradient, accumulated_grad,
                                      accumulated_delta, *coefficients)
            return new_value

        return adadelta

    def get_config(self):
        config = super().get_config()
        config.update({"rho": self.rho, "epsilon": self.epsilon})
        return config
