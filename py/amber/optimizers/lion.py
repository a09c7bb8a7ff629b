"""Lion: sign of an interpolated momentum (Chen et al., 2023)."""

import numpy as np

from amber import _native
from amber.backend import allocator
from amber.optimizers import fused
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

    def _update_all(self, grads, trainable_variables, learning_rate):
        if not fused.step_all(self, grads, trainable_variables, [self._momentums],
                              self._kernel(learning_rate)):
            super()._update_all(grads, trainable_variables, learning_rate)

    def update_step(self, gradient, variable, learning_rate):
        m = self._momentums[self._get_variable_index(variable)]
        if fused.is_float32(variable):
            fused.step_one(self, gradient, variable, [m], self._kernel(learning_rate))
            return
        # Other dtypes: the rule as numpy expressions (the kernel's float32 twin).
        gradient = gradient.astype(variable.dtype, copy=False)
        beta_1 = f32(self.beta_1)
        beta_2 = f32(self.beta_2)
        direction = np.sign(m.value * beta_1 + gradient * (f32(1) - beta_1))
        variable.assign(variable.value - learning_rate * direction)
        m.assign(m.value * beta_2 + gradient * (f32(1) - beta_2))

    def _kernel(self, learning_rate):
        """Keras's float32 Lion step, fused into one pass with the same float32 roundings as
        the expressions in `update_step` (see `fused`)."""
        beta_1, beta_2 = f32(self.beta_1), f32(self.beta_2)
        coefficients = (f32(learning_rate), beta_1, f32(1) - beta_1, beta_2, f32(1) - beta_2)

        def lion(gradient, value, m):
            new_value = allocator.empty_aligned(value.shape, f32)
            _native.lion_step_f32(new_value, value, gradient, m, *coefficients)
            return new_value

        return lion

    def get_config(self):
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2})
        return config
