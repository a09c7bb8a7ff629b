"""Adagrad: per-parameter step sizes from the running sum of squared gradients."""

import numpy as np

from amber import _native
from amber.backend import allocator
from amber.optimizers import fused
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

    def _update_all(self, grads, trainable_variables, learning_rate):
        if not fused.step_all(self, grads, trainable_variables, [self._accumulators],
                              self._kernel(learning_rate)):
            super()._update_all(grads, trainable_variables, learning_rate)

    def update_step(self, gradient, variable, learning_rate):
        accumulator = self._accumulators[self._get_variable_index(variable)]
        if fused.is_float32(variable):
            fused.step_one(self, gradient, variable, [accumulator], self._kernel(learning_rate))
            return
        # Other dtypes: the rule as numpy expressions (the kernel's float32 twin).
        gradient = gradient.astype(variable.dtype, copy=False)
        accumulator.assign(accumulator.value + np.square(gradient))
        variable.assign(
            variable.value
            - (learning_rate * gradient) / np.sqrt(accumulator.value + f32(self.epsilon))
        )

    def _kernel(self, learning_rate):
        """Keras's float32 Adagrad step, fused into one pass with the same float32 roundings
        as the expressions in `update_step` (see `fused`)."""
        coefficients = (f32(learning_rate), f32(self.epsilon))

        def adagrad(gradient, value, accumulator):
            new_value = allocator.empty_aligned(value.shape, f32)
            _native.adagrad_step_f32(new_value, value, gradient, accumulator, *coefficients)
            return new_value

        return adagrad

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon,
            }
        )
        return config
