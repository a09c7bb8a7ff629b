"""RMSprop: divide by a running root-mean-square of gradients (optionally centered)."""

import numpy as np

from amber import _native
from amber.optimizers import flat_state
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

    def _update_all(self, grads, trainable_variables, learning_rate):
        if not self.centered and flat_state.fits(grads, trainable_variables):
            with_momentum = self.momentum > 0
            state = flat_state.state_for(self, trainable_variables, 2 if with_momentum else 1)
            if state.slot_variables is None:
                indices = [self._get_variable_index(v) for v in trainable_variables]
                state.slot_variables = ([self._velocities[i] for i in indices],
                                        [self._momentums[i] for i in indices] if with_momentum else None)
            velocity = state.slot(0, state.slot_variables[0])
            momentum = state.slot(1, state.slot_variables[1]) if with_momentum else None
            new_values = self._rmsprop_kernel(
                state.gradients(grads), state.values(trainable_variables), velocity, momentum,
                learning_rate)
            state.assign_values(trainable_variables, new_values)
            return
        super()._update_all(grads, trainable_variables, learning_rate)

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        rho = f32(self.rho)
        one_minus_rho = f32(1 - self.rho)
        velocity = self._velocities[index]
        if variable.value.dtype == f32 and not self.centered:
            variable._replace(self._rmsprop_float32(
                gradient, variable.value, velocity,
                self._momentums[index] if self.momentum > 0 else None, learning_rate,
            ))
            return
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

    def _rmsprop_float32(self, gradient, value, velocity, momentum, learning_rate):
        """The new float32 value of one variable after an (uncentered) RMSprop step: slots
        updated in place."""
        velocity = self._private_slot_value(velocity)
        if momentum is not None:
            momentum = self._private_slot_value(momentum)
        return self._rmsprop_kernel(self._c_float32(gradient), self._c_float32(value), velocity,
                                    momentum, learning_rate)

    def _rmsprop_kernel(self, gradient, value, velocity, momentum, learning_rate):
        """Keras's float32 RMSprop step in one fused pass, with the same float32 roundings as
        the expressions in `update_step`: `velocity` and `momentum` (private, C-contiguous)
        are updated in place, and the new value is a fresh array (the old one is never
        written)."""
        new_value = np.empty(value.shape, f32)
        _native.rmsprop_step_f32(new_value, value, gradient, velocity, momentum,
                                 f32(learning_rate), f32(self.rho), f32(1 - self.rho),
                                 f32(self.epsilon), f32(self.momentum))
        return new_value

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

