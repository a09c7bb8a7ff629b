"""Adamax: Adam with the infinity norm in place of the second moment."""

import numpy as np

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

    def update_step(self, gradient, variable, learning_rate):
        gradient = gradient.astype(variable.dtype, copy=False)
        index = self._get_variable_index(variable)
        beta_1_power = np.power(f32(self.beta_1), f32(self._step_count() + 1))
        m = self._m[index]
        u = self._u[index]
        m.assign(m.value + (gradient - m.value) * f32(1 - self.beta_1))
        u.assign(np.maximum(f32(self.beta_2) * u.value, np.abs(gradient)))
        variable.assign(
            variable.value
            - (learning_rate * m.value)
            / ((f32(1) - beta_1_power) * (u.value + f32(self.epsilon)))
        )

    def get_config(self):
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon})
        return config
