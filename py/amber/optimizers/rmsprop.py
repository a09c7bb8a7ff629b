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
        index = self._get_variable_index(variable)
        rho = f32(self.rho)
        one_minus_rho = f32(1 - self.rho)
        velocity = self._velocities[index]
        if variable.value.dtype == f32 and not self.centered:
            variable._replace(self._rmsprop_float32(
                gradient.astype(f32, copy=False), variable.value, velocity,
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
        """The new float32 value of a variable after one (uncentered) RMSprop step, with the
        same roundings as the expressions in `update_step`: slots updated in place,
        temporaries in scratch buffers, a fresh array only for the variable itself."""
        velocity = self._private_slot_value(velocity)
        t, u = self._scratch_buffers(value.shape, f32)
        np.square(gradient, out=t)
        t *= f32(1 - self.rho)
        velocity *= f32(self.rho)
        velocity += t
        np.add(velocity, f32(self.epsilon), out=t)
        np.sqrt(t, out=t)
        np.multiply(gradient, learning_rate, out=u)
        u /= t
        if momentum is not None:
            momentum = self._private_slot_value(momentum)
            momentum *= f32(self.momentum)
            momentum += u
            u = momentum
        return np.subtract(value, u)

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

