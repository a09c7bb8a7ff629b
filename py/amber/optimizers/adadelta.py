"""Adadelta: step sizes from running averages of squared gradients and squared updates."""

import numpy as np

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

    def update_step(self, grad, variable, learning_rate):
        grad = grad.astype(variable.dtype, copy=False)
        index = self._get_variable_index(variable)
        rho = f32(self.rho)
        one_minus_rho = f32(1 - self.rho)
        epsilon = f32(self.epsilon)
        acc_grad = self._accumulated_grads[index]
        acc_delta = self._accumulated_delta_vars[index]
        acc_grad.assign(rho * acc_grad.value + one_minus_rho * np.square(grad))
        delta = -((np.sqrt(acc_delta.value + epsilon) * grad) / np.sqrt(acc_grad.value + epsilon))
        acc_delta.assign(rho * acc_delta.value + one_minus_rho * np.square(delta))
        variable.assign(variable.value + learning_rate * delta)

    def get_config(self):
        config = super().get_config()
        config.update({"rho": self.rho, "epsilon": self.epsilon})
        return config
