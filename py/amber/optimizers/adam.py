"""Adam (optionally AMSGrad) and AdamW, which is Adam with decoupled weight decay."""

import numpy as np

from amber import _native
from amber.backend import allocator
from amber.optimizers import fused
from amber.optimizers.base_optimizer import Optimizer

f32 = np.float32
_ONE = f32(1)


class Adam(Optimizer):
    """Adam with Keras's bias correction folded into the step size:
    `alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)`, `w -= alpha * m / (sqrt(v) + eps)`."""

    def __init__(
        self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False,
        name=None, **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.amsgrad = amsgrad

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._momentums, self._velocities = self.add_optimizer_variables(
            var_list, ["momentum", "velocity"]
        )
        if self.amsgrad:
            self._velocity_hats = self.add_optimizer_variables(var_list, "velocity_hat")

    def _constants(self):
        """The float32 forms of the hyperparameters: beta_1, beta_2, 1 - beta_1, 1 - beta_2,
        epsilon (converted again only when one of them is set to something else)."""
        return fused.cached(self, "constants", (self.beta_1, self.beta_2, self.epsilon), lambda: (
            f32(self.beta_1), f32(self.beta_2), f32(1 - self.beta_1), f32(1 - self.beta_2),
            f32(self.epsilon)))

    def _step_size(self, learning_rate, constants=None):
        # The bias-corrected step size is the same for every variable of a step. It changes
        # every step, so it is computed each time: np.power as always (its float32 results
        # are the reference's), only the constants come converted.
        beta_1, beta_2 = (constants or self._constants())[:2]
        step = f32(self._step_count() + 1)
        beta_1_power = np.power(beta_1, step)
        beta_2_power = np.power(beta_2, step)
        return learning_rate * np.sqrt(_ONE - beta_2_power) / (_ONE - beta_1_power)

    def _slot_lists(self):
        return [self._momentums, self._velocities, self._velocity_hats if self.amsgrad else None]

    def _update_all(self, grads, trainable_variables, learning_rate):
        constants = self._constants()
        alpha = self._step_size(learning_rate, constants)
        kernel = self._kernel(alpha, constants)
        if not fused.step_all(self, grads, trainable_variables, self._slot_lists(), kernel):
            for gradient, variable in zip(grads, trainable_variables):
                self._update_variable(gradient, variable, alpha, kernel)

    def update_step(self, gradient, variable, learning_rate):
        self._update_variable(gradient, variable, self._step_size(learning_rate))

    def _update_variable(self, gradient, variable, alpha, kernel=None):
        index = self._get_variable_index(variable)
        if fused.is_float32(variable):
            slots = [None if slots is None else slots[index] for slots in self._slot_lists()]
            fused.step_one(self, gradient, variable, slots, kernel or self._kernel(alpha))
            return
        # Other dtypes: the rule as numpy expressions (the kernel's float32 twin).
        m = self._momentums[index]
        v = self._velocities[index]
        value = variable.value
        gradient = gradient.astype(variable.dtype, copy=False)
        m.assign(m.value + (gradient - m.value) * f32(1 - self.beta_1))
        v.assign(v.value + (np.square(gradient) - v.value) * f32(1 - self.beta_2))
        v_used = v.value
        if self.amsgrad:
            v_hat = self._velocity_hats[index]
            v_hat.assign(np.maximum(v_hat.value, v.value))
            v_used = v_hat.value
        variable.assign(
            value - (m.value * alpha) / (np.sqrt(v_used) + f32(self.epsilon))
        )

    def _kernel(self, alpha, constants=None):
        """Keras's float32 Adam step with step size `alpha`, fused into one pass with the
        same float32 roundings as the expressions in `_update_variable` (see `fused`);
        `constants` as `_constants` gives them, if the caller has them already."""
        coefficients = (f32(alpha), *(constants or self._constants())[2:])

        def adam(gradient, value, m, v, v_hat):
            new_value = allocator.empty_aligned(value.shape, f32)
            _native.adam_step_f32(new_value, value, gradient, m, v, v_hat, *coefficients)
            return new_value

        return adam

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "beta_1": self.beta_1,
                "beta_2": self.beta_2,
                "epsilon": self.epsilon,
                "amsgrad": self.amsgrad,
            }
        )
        return config


class AdamW(Adam):
    """Adam whose `weight_decay` (default 0.004) is required; the base class applies it."""

    def __init__(
        self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
        amsgrad=False, name=None, **kwargs,
    ):
        super().__init__(
            learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
            amsgrad=amsgrad, name=name, weight_decay=weight_decay, **kwargs,
        )
        if self.weight_decay is None:
            raise ValueError(
                "Argument `weight_decay` must be a float. Received: weight_decay=None"
            )

