"""Lion: sign of an interpolated momentum (Chen et al., 2023)."""

import numpy as np

from amber.optimizers.base_optimizer import Optimizer

f32 = np.float32


class Lion(Optimizer):
    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.99, name=None, **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        if beta_1 <= 0 or beta_1 > 1:
            raise ValueError(
                "Argument `beta_1` must be in the [0, 1] range. Otherwise, the optimizer "
                f"degenerates to SignSGD. Received: beta_1={beta_1}."
            )

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._momentums = self.add_optimizer_variables(var_list, "momentum")

    def update_step(self, gradient, variable, learning_rate):
        gradient = gradient.astype(variable.dtype, copy=False)
        beta_1 = f32(self.beta_1)
        beta_2 = f32(self.beta_2)
        m = self._momentums[self._get_variable_index(variable)]
        direction = np.sign(m.value * beta_1 + gradient * (f32(1) - beta_1))
        variable.assign(variable.value - learning_rate * direction)
        m.assign(m.value * beta_2 + gradient * (f32(1) - beta_2))

    def get_config(self):
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2})
        return config
