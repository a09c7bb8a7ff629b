"""Stochastic gradient descent with optional (Nesterov) momentum."""

import numpy as np

from amber.optimizers.base_optimizer import Optimizer


class SGD(Optimizer):
    """`w -= lr * g`; with momentum `m = momentum * m - lr * g; w += m` (Nesterov looks ahead)."""

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, name=None, **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if not isinstance(momentum, float) or momentum < 0 or momentum > 1:
            raise ValueError(f"`momentum` must be a float between [0, 1]. Received: {momentum!r}")
        self.momentum = momentum
        self.nesterov = nesterov
        self.momentums = []

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        if self.momentum != 0:
            self.momentums = self.add_optimizer_variables(variables, "momentum")

    def update_step(self, gradient, variable, learning_rate):
        gradient = gradient.astype(variable.dtype, copy=False)
        step = gradient * learning_rate
        if self.momentum == 0:
            variable.assign(variable.value - step)
            return
        momentum = np.float32(self.momentum)
        m = self.momentums[self._get_variable_index(variable)]
        m.assign(m.value * momentum - step)
        if self.nesterov:
            variable.assign(variable.value + (m.value * momentum - step))
        else:
            variable.assign(variable.value + m.value)

    def get_config(self):
        config = super().get_config()
        config.update({"momentum": self.momentum, "nesterov": self.nesterov})
        return config
