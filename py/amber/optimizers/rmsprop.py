"""RMSprop: divide by a running root-mean-square of gradients (optionally centered)."""

import numpy as np

from amber.optimizers.base_optimizer import Optimizer

f32 = np.float32


class RMSprop(Optimizer):
    def __init__(
        self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False,
        name=None, **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.rho = rho
        self.momentum = momentum
        self.epsilon = epsilon
        self.centered = centered
        self._momentums = []
        self._average_gradients = []

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._velocities = self.add_optimizer_variables(var_list, "velocity")
        if self.momentum > 0:
            self._momentums = self.add_optimizer_variables(var_list, "momentum")
        if self.centered:
            self._average_gradients = self.add_optimizer_variables(var_list, "average_gradient")

    def update_step(self, gradient, variable, learning_rate):
        gradient = gradient.astype(variable.dtype, copy=False)
        index = self._get_variable_index(variable)
        rho = f32(self.rho)
        one_minus_rho = f32(1 - self.rho)
        velocity = self._velocities[index]
        velocity.assign(rho * velocity.value + one_minus_rho * np.square(gradient))
        if self.centered:
            average = self._average_gradients[index]
            average.assign(rho * average.value + one_minus_rho * gradient)
            denominator = velocity.value - np.square(average.value) + f32(self.epsilon)
        else:
            denominator = velocity.value + f32(self.epsilon)
        increment = (learning_rate * gradient) / np.sqrt(denominator)
        if self.momentum > 0:
            momentum = self._momentums[index]
            momentum.assign(f32(self.momentum) * momentum.value + increment)
            variable.assign(variable.value - momentum.value)
        else:
            variable.assign(variable.value - increment)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "rho": self.rho,
                "momentum": self.momentum,
                "epsilon": self.epsilon,
                "centered": self.centered,
            }
        )
        return config
