"""FTRL-Proximal (McMahan et al.), with L1/L2 and L2-shrinkage regularization."""

import numpy as np

from amber.optimizers.base_optimizer import Optimizer

f32 = np.float32


class Ftrl(Optimizer):
    def __init__(
        self, learning_rate=0.001, learning_rate_power=-0.5, initial_accumulator_value=0.1,
        l1_regularization_strength=0.0, l2_regularization_strength=0.0,
        l2_shrinkage_regularization_strength=0.0, beta=0.0, name=None, **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        checks = (
            ("initial_accumulator_value", initial_accumulator_value, "positive or zero", -1),
            ("learning_rate_power", learning_rate_power, "negative or zero", 1),
            ("l1_regularization_strength", l1_regularization_strength, "positive or zero", -1),
            ("l2_regularization_strength", l2_regularization_strength, "positive or zero", -1),
            ("l2_shrinkage_regularization_strength", l2_shrinkage_regularization_strength,
             "positive or zero", -1),
        )
        for arg, value, rule, bad_sign in checks:
            if value * bad_sign > 0:
                raise ValueError(f"`{arg}` needs to be {rule}. Received: {arg}={value}.")
        self.learning_rate_power = learning_rate_power
        self.initial_accumulator_value = initial_accumulator_value
        self.l1_regularization_strength = l1_regularization_strength
        self.l2_regularization_strength = l2_regularization_strength
        self.l2_shrinkage_regularization_strength = l2_shrinkage_regularization_strength
        self.beta = beta

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._accumulators, self._linears = self.add_optimizer_variables(
            var_list,
            ["accumulator", "linear"],
            initializer=[float(self.initial_accumulator_value), "zeros"],
        )

    def update_step(self, gradient, variable, learning_rate):
        gradient = gradient.astype(variable.dtype, copy=False)
        index = self._get_variable_index(variable)
        accum = self._accumulators[index]
        linear = self._linears[index]
        lr = learning_rate
        power = f32(-self.learning_rate_power)
        l2 = f32(self.l2_regularization_strength) + f32(self.beta) / (f32(2) * lr)
        w = variable.value
        grad_to_use = gradient + f32(2 * self.l2_shrinkage_regularization_strength) * w
        new_accum = accum.value + np.square(gradient)
        linear.assign(
            linear.value
            + (grad_to_use - ((np.power(new_accum, power) - np.power(accum.value, power)) / lr) * w)
        )
        quadratic = np.power(new_accum, power) / lr + f32(2) * l2
        l1 = f32(self.l1_regularization_strength)
        clipped = np.clip(linear.value, -l1, l1)
        variable.assign((clipped - linear.value) / quadratic)
        accum.assign(new_accum)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "learning_rate_power": self.learning_rate_power,
                "initial_accumulator_value": self.initial_accumulator_value,
                "l1_regularization_strength": self.l1_regularization_strength,
                "l2_regularization_strength": self.l2_regularization_strength,
                "l2_shrinkage_regularization_strength": self.l2_shrinkage_regularization_strength,
                "beta": self.beta,
            }
        )
        return config
