"""RMSprop: divide by a running root-mean-square of gradients (optionally centered)."""

import numpy as np

from amber import _native
from amber.backend import allocator
from amber.optimizers import fused
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

    def _slot_lists(self):
        return [self._velocities, self._average_gradients if self.centered else None,
                self._momentums if self.momentum > 0 else None]

    def _update_all(self, grads, trainable_variables, learning_rate):
        inputs = (learning_rate, self.rho, self.epsilon, self.momentum)
        kernel = fused.cached(self, "kernel", inputs, lambda: self._kernel(learning_rate))
        if not fused.step_all(self, grads, trainable_variables, self._slot_lists(), kernel):
            super()._update_all(grads, trainable_variables, learning_rate)

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        if fused.is_float32(variable):
            slots = [None if slots is None else slots[index] for slots in self._slot_lists()]
            fused.step_one(self, gradient, variable, slots, self._kernel(learning_rate))
            return
        # Other dtypes: the rule as numpy expressions (the kernel's float32 twin).
        rho = f32(self.rho)
        one_minus_rho = f32(1 - self.rho)
        velocity = self._velocities[index]
        gradient = gradient.astype(variable.dtype, copy=False)
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

    def _kernel(self, learning_rate):
        """Keras's float32 RMSprop step, fused into one pass with the same float32 roundings
        as the expressions in `update_step` (see `fused`)."""
        coefficients = (f32(learning_rate), f32(self.rho), f32(1 - self.rho), f32(self.epsilon),
                        f32(self.momentum))

        def rmsprop(gradient, value, velocity, average_gradient, momentum):
            new_value = allocator.empty_aligned(value.shape, f32)
            _native.rmsprop_step_f32(new_value, value, gradient, velocity, average_gradient,
                                     momentum, *coefficients)
            return new_value

        return rmsprop

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

