"""Nadam: Adam with Nesterov momentum and Dozat's momentum-decay schedule."""

import numpy as np

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
        super()._update_all(grads, trainable_variables, learning_rate)

    def update_step(self, gradient, variable, learning_rate):
        gradient = gradient.astype(variable.dtype, copy=False)
        index = self._get_variable_index(variable)
        step = self._step_count()
        u_t = self._mu(step + 1)
        u_t_1 = self._mu(step + 2)
        u_product_t = f32(self._u_product.value)
        u_product_t_1 = u_product_t * u_t_1
        beta_2_power = np.power(f32(self.beta_2), f32(step + 1))
        m = self._momentums[index]
        v = self._velocities[index]
        m.assign(m.value + (gradient - m.value) * (f32(1) - f32(self.beta_1)))
        v.assign(v.value + (np.square(gradient) - v.value) * (f32(1) - f32(self.beta_2)))
        m_hat = (u_t_1 * m.value) / (f32(1) - u_product_t_1) + (
            (f32(1) - u_t) * gradient
        ) / (f32(1) - u_product_t)
        v_hat = v.value / (f32(1) - beta_2_power)
        variable.assign(
            variable.value - (m_hat * learning_rate) / (np.sqrt(v_hat) + f32(self.epsilon))
        )

    def get_config(self):
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon})
        return config


def _variable_class():
    from amber.backend import Variable

    return Variable
