"""Adagrad: per-parameter step sizes from the running sum of squared gradients."""

import numpy as np

from amber.optimizers.base_optimizer import Optimizer

f32 = np.float32


class Adagrad(Optimizer):
    def __init__(
        self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, name=None,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.initial_accumulator_value = initial_accumulator_value
        self.epsilon = epsilon

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._accumulators = self.add_optimizer_variables(
            var_list, "accumulator", initializer=float(self.initial_accumulator_value)
        )

    def update_step(self, gradient, variable, learning_rate):
        gradient = gradient.astype(variable.dtype, copy=False)
        accumulator = self._accumulators[self._get_variable_index(variable)]
        accumulator.assign(accumulator.value + np.square(gradient))
        variable.assign(
            variable.value
            - (learning_rate * gradient) / np.sqrt(accumulator.value + f32(self.epsilon))
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon,
            }
        )
        return config
