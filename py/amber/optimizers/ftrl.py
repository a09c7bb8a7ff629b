"""FTRL-Proximal (McMahan et al.), with L1/L2 and L2-shrinkage regularization."""

import numpy as np

from amber import _native
from amber.backend import allocator
from amber.optimizers import fused
from amber.optimizers.base_optimizer import Optimizer

f32 = np.float32

# Accumulator exponents (`-learning_rate_power`) numpy's float32 `power` computes exactly
# (sqrt, copy, square, 1), so the fused kernel can match it bit for bit; numpy computes any
# other exponent with a vectorized pow that is not correctly rounded, so those keep the rule.
_EXACT_POWERS = (0.0, 0.5, 1.0, 2.0)


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

    def _update_all(self, grads, trainable_variables, learning_rate):
        if not (self._fusable() and fused.step_all(
                self, grads, trainable_variables, [self._accumulators, self._linears],
                self._kernel(learning_rate))):
            super()._update_all(grads, trainable_variables, learning_rate)

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        accum = self._accumulators[index]
        linear = self._linears[index]
        if fused.is_float32(variable) and self._fusable():
            fused.step_one(self, gradient, variable, [accum, linear], self._kernel(learning_rate))
            return
        # Other dtypes and exponents: the rule as numpy expressions (the kernel's twin).
        gradient = gradient.astype(variable.dtype, copy=False)
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

    def _fusable(self):
        return float(f32(-self.learning_rate_power)) in _EXACT_POWERS

    def _kernel(self, learning_rate):
        """Keras's float32 Ftrl step, fused into one pass with the same float32 roundings as
        the expressions in `update_step` (see `fused`)."""
        lr = f32(learning_rate)
        l2 = f32(self.l2_regularization_strength) + f32(self.beta) / (f32(2) * lr)
        coefficients = (lr, f32(-self.learning_rate_power),
                        f32(2 * self.l2_shrinkage_regularization_strength),
                        f32(self.l1_regularization_strength), f32(2) * l2)

        def ftrl(gradient, value, accumulator, linear):
            new_value = allocator.empty_aligned(value.shape, f32)
            _native.ftrl_step_f32(new_value, value, gradient, accumulator, linear, *coefficients)
            return new_value

        return ftrl

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
