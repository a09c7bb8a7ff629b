"""Nadam: Adam with Nesterov momentum and Dozat's momentum-decay schedule."""

import numpy as np

from amber import _native
from amber.backend import allocator
from amber.optimizers import fused
from amber.optimizers.base_optimizer import Optimizer

f32 = np.float32

# Dozat's schedule: mu_t = beta_1 * (1 - 0.5 * 0.96^t).
_MOMENTUM_DECAY = 0.96


class Nadam(Optimizer):
    def __init__(
        self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, name=None, **kwargs
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon

    def build(self, var_list):
        if self.built:
            return
        dtype = var_list[0].dtype if var_list else "float32"
        super().build(var_list)
        self._momentums, self._velocities = self.add_optimizer_variables(
            var_list, ["momentum", "velocity"]
        )
        # The running product of mu_t, saved last. Keras creates it as a bare Variable: its
        # path is "variable" unless the build runs inside the optimizer's name scope.
        Variable = _variable_class()
        self._u_product = Variable(np.ones((), dtype=dtype), dtype=dtype, trainable=False,
                                   name="variable")
        self._u_product.path = f"{self.name}/variable" if self._building_in_scope else "variable"
        self._variables.append(self._u_product)

    def _mu(self, step):
        return f32(self.beta_1) * (
            f32(1) - f32(0.5) * np.power(f32(_MOMENTUM_DECAY), f32(step))
        )

    def _update_all(self, grads, trainable_variables, learning_rate):
        # The product advances once per step, before any variable is updated.
        u = self._u_product
        step = f32(self._step_count() + 1)
        u.assign(
            (u.value * f32(self.beta_1)
             * (f32(1) - f32(0.5) * np.power(f32(_MOMENTUM_DECAY), step))).astype(u.dtype)
        )
        if not fused.step_all(self, grads, trainable_variables,
                              [self._momentums, self._velocities], self._kernel(learning_rate)):
            super()._update_all(grads, trainable_variables, learning_rate)

    def _step_scalars(self, learning_rate):
        """The float32 scalars of this step's rule: lr, 1 - beta_1, 1 - beta_2, epsilon,
        u_{t+1}, 1 - prod_t * u_{t+1}, 1 - u_t, 1 - prod_t, 1 - beta_2^t."""
        step = self._step_count()
        u_t = self._mu(step + 1)
        u_t_1 = self._mu(step + 2)
        u_product_t = f32(self._u_product.value)
        u_product_t_1 = u_product_t * u_t_1
        beta_2_power = np.power(f32(self.beta_2), f32(step + 1))
        return (f32(learning_rate), f32(1) - f32(self.beta_1), f32(1) - f32(self.beta_2),
                f32(self.epsilon), u_t_1, f32(1) - u_product_t_1, f32(1) - u_t,
                f32(1) - u_product_t, f32(1) - beta_2_power)

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        m = self._momentums[index]
        v = self._velocities[index]
        if fused.is_float32(variable):
            fused.step_one(self, gradient, variable, [m, v], self._kernel(learning_rate))
            return
        # Other dtypes: the rule as numpy expressions (the kernel's float32 twin).
        (lr, one_minus_beta_1, one_minus_beta_2, epsilon, u_t_1, one_minus_product_t_1,
         one_minus_u_t, one_minus_product_t, one_minus_beta_2_power) = self._step_scalars(
            learning_rate)
        gradient = gradient.astype(variable.dtype, copy=False)
        m.assign(m.value + (gradient - m.value) * one_minus_beta_1)
        v.assign(v.value + (np.square(gradient) - v.value) * one_minus_beta_2)
        m_hat = (u_t_1 * m.value) / one_minus_product_t_1 + (
            one_minus_u_t * gradient
        ) / one_minus_product_t
        v_hat = v.value / one_minus_beta_2_power
        variable.assign(variable.value - (m_hat * lr) / (np.sqrt(v_hat) + epsilon))

    def _kernel(self, learning_rate):
        """Keras's float32 Nadam step, fused into one pass with the same float32 roundings as
        the expressions in `update_step` (see `fused`)."""
        scalars = self._step_scalars(learning_rate)

        def nadam(gradient, value, m, v):
            new_value = allocator.empty_aligned(value.shape, f32)
            _native.nadam_step_f32(new_value, value, gradient, m, v, *scalars)
            return new_value

        return nadam

    def get_config(self):
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon})
        return config


def _variable_class():
    from amber.backend import Variable

    return Variable
