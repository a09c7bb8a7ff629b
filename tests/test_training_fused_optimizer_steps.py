"""The fused Rust optimizer steps (`_native.sgd_step_f32`, `adam_step_f32` with and without
AMSGrad, `rmsprop_step_f32` plain/centered/with momentum, `adagrad_step_f32`, `nadam_step_f32`,
`adamax_step_f32`, `lion_step_f32`, `adadelta_step_f32`, `ftrl_step_f32`, `weight_decay_f32`).

Reference: Keras's float32 update rules written here as the numpy passes the optimizers ran
before the kernels existed (one ufunc per operation, every intermediate a float32 array), with
subnormal operands and results flushed to zero as the kernels run them. The
kernels must agree with them bit for bit (`np.array_equal` on float32, compared as raw bits so
a signed zero or NaN pattern would count too), on the flat vectors and through the
optimizers' per-variable and flat paths, and refuse operands they cannot walk in flat order.
"""

import numpy as np
import pytest

from amber import _native, optimizers
from amber.backend import Variable

f32 = np.float32
LENGTHS = [1, 7, 64, 1000, 55050]


TINY = np.finfo(f32).tiny


def flushed(x):
    """``x`` with every subnormal replaced by a zero of its sign: what an operation sees and
    produces with FTZ and DAZ set, as the kernels run (XLA's and TensorFlow's CPU mode)."""
    x = np.asarray(x, f32)
    return np.where(np.abs(x) < TINY, np.copysign(f32(0), x), x).astype(f32)


def numpy_adam(value, g, m, v, alpha, beta_1, beta_2, epsilon):
    """One Adam step pass by pass, slots in place, as the previous numpy code did it, with
    every operand and result flushed."""
    F = flushed
    g, value = F(g), F(value)
    m[:] = F(F(m) + F(F(g - F(m)) * f32(1 - beta_1)))
    v[:] = F(F(v) + F(F(F(np.square(g)) - F(v)) * f32(1 - beta_2)))
    t = F(F(np.sqrt(v)) + f32(epsilon))
    u = F(F(np.multiply(m, alpha)) / t)
    return F(value - u)


def numpy_rmsprop(value, g, velocity, momentum, lr, rho, momentum_factor, epsilon):
    F = flushed
    g, value = F(g), F(value)
    velocity[:] = F(F(F(velocity) * f32(rho)) + F(F(np.square(g)) * f32(1 - rho)))
    t = F(np.sqrt(F(velocity + f32(epsilon))))
    u = F(F(np.multiply(g, lr)) / t)
    if momentum is not None:
        momentum[:] = F(F(F(momentum) * f32(momentum_factor)) + u)
        u = momentum
    return F(value - u)


def numpy_amsgrad(value, g, m, v, v_hat, alpha, beta_1, beta_2, epsilon):
    """Adam with AMSGrad, as Keras writes it: the running maximum of `v` replaces `v`."""
    F = flushed
    g, value = F(g), F(value)
    m[:] = F(F(m) + F(F(g - F(m)) * f32(1 - beta_1)))
    v[:] = F(F(v) + F(F(F(np.square(g)) - F(v)) * f32(1 - beta_2)))
    v_hat[:] = F(np.maximum(F(v_hat), v))
    t = F(F(np.sqrt(v_hat)) + f32(epsilon))
    return F(value - F(F(np.multiply(m, alpha)) / t))


def numpy_centered_rmsprop(value, g, velocity, average, momentum, lr, rho, momentum_factor,
                           epsilon):
    """Keras's centered RMSprop: `rho * v + (1 - rho) * g^2`, `rho * a + (1 - rho) * g`,
    denominator `v - a^2 + eps`."""
    F = flushed
    g, value = F(g), F(value)
    velocity[:] = F(F(f32(rho) * F(velocity)) + F(f32(1 - rho) * F(np.square(g))))
    average[:] = F(F(f32(rho) * F(average)) + F(f32(1 - rho) * g))
    denominator = F(F(velocity - F(np.square(average))) + f32(epsilon))
    u = F(F(lr * g) / F(np.sqrt(denominator)))
    if momentum is not None:
        momentum[:] = F(F(f32(momentum_factor) * F(momentum)) + u)
        u = momentum
    return F(value - u)


def numpy_sgd(value, g, momentum, lr, momentum_factor, nesterov):
    """Keras's SGD: `m = m * momentum - g * lr`, then `w += m` (Nesterov:
    `w += m * momentum - g * lr`); without momentum `w -= g * lr`."""
    F = flushed
    g, value = F(g), F(value)
    step = F(g * lr)
    if momentum is None:
        return F(value - step)
    momentum[:] = F(F(F(momentum) * f32(momentum_factor)) - step)
    if nesterov:
        return F(value + F(F(momentum * f32(momentum_factor)) - step))
    return F(value + momentum)


def numpy_adagrad(value, g, accumulator, lr, epsilon):
    F = flushed
    g, value = F(g), F(value)
    accumulator[:] = F(F(accumulator) + F(np.square(g)))
    return F(value - F(F(lr * g) / F(np.sqrt(F(accumulator + f32(epsilon))))))


def nadam_scalars(step, u_product, beta_1, beta_2):
    """Keras's per-step Nadam scalars for 1-based `step`, with `u_product` the running
    product after this step's update: u_t, u_{t+1}, prod_t, prod_t * u_{t+1}, beta_2^t."""
    def mu(t):
        return f32(beta_1) * (f32(1.0) - f32(0.5) * np.power(f32(0.96), f32(t)))
    u_t, u_next = mu(step), mu(step + 1)
    return u_t, u_next, u_product, u_product * u_next, np.power(f32(beta_2), f32(step))


def numpy_nadam(value, g, m, v, lr, beta_1, beta_2, epsilon, scalars):
    F = flushed
    u_t, u_next, product, next_product, beta_2_power = scalars
    g, value = F(g), F(value)
    m[:] = F(F(m) + F(F(g - F(m)) * (f32(1) - f32(beta_1))))
    v[:] = F(F(v) + F(F(F(np.square(g)) - F(v)) * (f32(1) - f32(beta_2))))
    m_hat = F(F(F(u_next * m) / (f32(1) - next_product))
              + F(F((f32(1) - u_t) * g) / (f32(1) - product)))
    v_hat = F(v / (f32(1) - beta_2_power))
    return F(value - F(F(m_hat * lr) / F(F(np.sqrt(v_hat)) + f32(epsilon))))


def adam_alpha(lr, step, beta_1, beta_2):
    step = f32(step)
    return f32(lr) * np.sqrt(f32(1) - np.power(f32(beta_2), step)) / (
        f32(1) - np.power(f32(beta_1), step))


def same_bits(a, b):
    return a.dtype == b.dtype == f32 and a.shape == b.shape and np.array_equal(
        a.view(np.uint32), b.view(np.uint32))


def random_vector(rng, n, scale):
    # Mixed magnitudes (including exact zeros and tiny values) so roundings are exercised.
    x = rng.standard_normal(n).astype(f32) * f32(scale)
    x[rng.random(n) < 0.05] = 0
    x[rng.random(n) < 0.05] *= f32(1e-30)
    return x


@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("hyper", [(1e-3, 0.9, 0.999, 1e-7), (0.05, 0.5, 0.9, 1e-3)])
def test_adam_step_is_bitwise_the_numpy_passes(n, hyper):
    lr, beta_1, beta_2, epsilon = hyper
    rng = np.random.default_rng(n)
    value = random_vector(rng, n, 0.3)
    m, v = np.zeros(n, f32), np.zeros(n, f32)
    ref_value, ref_m, ref_v = value.copy(), m.copy(), v.copy()
    for step in range(1, 6):
        g = random_vector(rng, n, 0.01 * step)
        alpha = adam_alpha(lr, step, beta_1, beta_2)
        out = np.empty(n, f32)
        _native.adam_step_f32(out, value, g, m, v, None, alpha, f32(1 - beta_1),
                              f32(1 - beta_2), f32(epsilon))
        value = out
        ref_value = numpy_adam(ref_value, g, ref_m, ref_v, alpha, beta_1, beta_2, epsilon)
        assert same_bits(value, ref_value), f"values differ at step {step}"
        assert same_bits(m, ref_m) and same_bits(v, ref_v), f"slots differ at step {step}"


@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("momentum_factor", [0.0, 0.9])
def test_rmsprop_step_is_bitwise_the_numpy_passes(n, momentum_factor):
    lr, rho, epsilon = f32(1e-3), 0.9, 1e-7
    rng = np.random.default_rng(100 + n)
    value = random_vector(rng, n, 0.3)
    velocity = np.zeros(n, f32)
    momentum = np.zeros(n, f32) if momentum_factor else None
    ref_value, ref_velocity = value.copy(), velocity.copy()
    ref_momentum = None if momentum is None else momentum.copy()
    for step in range(1, 6):
        g = random_vector(rng, n, 0.01 * step)
        out = np.empty(n, f32)
        _native.rmsprop_step_f32(out, value, g, velocity, None, momentum, lr, f32(rho),
                                 f32(1 - rho), f32(epsilon), f32(momentum_factor))
        value = out
        ref_value = numpy_rmsprop(ref_value, g, ref_velocity, ref_momentum, lr, rho,
                                  momentum_factor, epsilon)
        assert same_bits(value, ref_value), f"values differ at step {step}"
        assert same_bits(velocity, ref_velocity)
        if momentum is not None:
            assert same_bits(momentum, ref_momentum)


@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("momentum_factor,nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_sgd_step_is_bitwise_the_numpy_passes(n, momentum_factor, nesterov):
    lr = f32(0.01)
    rng = np.random.default_rng(200 + n)
    value = random_vector(rng, n, 0.3)
    momentum = np.zeros(n, f32) if momentum_factor else None
    ref_value = value.copy()
    ref_momentum = None if momentum is None else momentum.copy()
    for step in range(1, 6):
        g = random_vector(rng, n, 0.1 * step)
        out = np.empty(n, f32)
        _native.sgd_step_f32(out, value, g, momentum, lr, f32(momentum_factor), nesterov)
        value = out
        ref_value = numpy_sgd(ref_value, g, ref_momentum, lr, momentum_factor, nesterov)
        assert same_bits(value, ref_value), f"values differ at step {step}"
        if momentum is not None:
            assert same_bits(momentum, ref_momentum)


@pytest.mark.parametrize("n", LENGTHS)
def test_amsgrad_step_is_bitwise_the_numpy_passes(n):
    lr, beta_1, beta_2, epsilon = 1e-3, 0.9, 0.999, 1e-7
    rng = np.random.default_rng(300 + n)
    value = random_vector(rng, n, 0.3)
    m, v, v_hat = np.zeros(n, f32), np.zeros(n, f32), np.zeros(n, f32)
    ref = [value.copy(), m.copy(), v.copy(), v_hat.copy()]
    for step in range(1, 7):
        # Large gradients first, then small ones: the running maximum must hold v_hat above v.
        g = random_vector(rng, n, 0.1 if step < 3 else 0.001)
        alpha = adam_alpha(lr, step, beta_1, beta_2)
        out = np.empty(n, f32)
        _native.adam_step_f32(out, value, g, m, v, v_hat, alpha, f32(1 - beta_1),
                              f32(1 - beta_2), f32(epsilon))
        value = out
        ref[0] = numpy_amsgrad(ref[0], g, ref[1], ref[2], ref[3], alpha, beta_1, beta_2, epsilon)
        assert same_bits(value, ref[0]), f"values differ at step {step}"
        assert same_bits(m, ref[1]) and same_bits(v, ref[2]) and same_bits(v_hat, ref[3])
    assert (v_hat > v).any()


def test_amsgrad_maximum_propagates_nan_as_numpy():
    n = 16
    value, g = np.ones(n, f32), np.full(n, 0.1, f32)
    m, v = np.zeros(n, f32), np.zeros(n, f32)
    v_hat = np.zeros(n, f32)
    v_hat[3] = np.nan
    ref_m, ref_v, ref_v_hat = m.copy(), v.copy(), v_hat.copy()
    out = np.empty(n, f32)
    _native.adam_step_f32(out, value, g, m, v, v_hat, f32(1e-3), f32(0.1), f32(0.001),
                          f32(1e-7))
    expected = numpy_amsgrad(value, g, ref_m, ref_v, ref_v_hat, f32(1e-3), 0.9, 0.999, 1e-7)
    assert np.isnan(v_hat[3]) and np.isnan(out[3])
    assert same_bits(out, expected) and same_bits(v_hat, ref_v_hat)


@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("momentum_factor", [0.0, 0.9])
def test_centered_rmsprop_step_is_bitwise_the_numpy_passes(n, momentum_factor):
    lr, rho, epsilon = f32(1e-3), 0.9, 1e-7
    rng = np.random.default_rng(400 + n)
    value = random_vector(rng, n, 0.3)
    velocity, average = np.zeros(n, f32), np.zeros(n, f32)
    momentum = np.zeros(n, f32) if momentum_factor else None
    ref_value, ref_velocity, ref_average = value.copy(), velocity.copy(), average.copy()
    ref_momentum = None if momentum is None else momentum.copy()
    for step in range(1, 6):
        g = random_vector(rng, n, 0.01 * step)
        out = np.empty(n, f32)
        _native.rmsprop_step_f32(out, value, g, velocity, average, momentum, lr, f32(rho),
                                 f32(1 - rho), f32(epsilon), f32(momentum_factor))
        value = out
        ref_value = numpy_centered_rmsprop(ref_value, g, ref_velocity, ref_average,
                                           ref_momentum, lr, rho, momentum_factor, epsilon)
        assert same_bits(value, ref_value), f"values differ at step {step}"
        assert same_bits(velocity, ref_velocity) and same_bits(average, ref_average)
        if momentum is not None:
            assert same_bits(momentum, ref_momentum)


@pytest.mark.parametrize("n", LENGTHS)
def test_adagrad_step_is_bitwise_the_numpy_passes(n):
    lr, epsilon = f32(1e-2), 1e-7
    rng = np.random.default_rng(500 + n)
    value = random_vector(rng, n, 0.3)
    accumulator = np.full(n, 0.1, f32)
    ref_value, ref_accumulator = value.copy(), accumulator.copy()
    for step in range(1, 6):
        g = random_vector(rng, n, 0.01 * step)
        out = np.empty(n, f32)
        _native.adagrad_step_f32(out, value, g, accumulator, lr, f32(epsilon))
        value = out
        ref_value = numpy_adagrad(ref_value, g, ref_accumulator, lr, epsilon)
        assert same_bits(value, ref_value), f"values differ at step {step}"
        assert same_bits(accumulator, ref_accumulator)


def advance_nadam_product(product, step, beta_1):
    # Keras's order: (prod * beta_1) * (1 - 0.5 * 0.96^t), all float32.
    return (product * f32(beta_1)) * (f32(1) - f32(0.5) * np.power(f32(0.96), f32(step)))


@pytest.mark.parametrize("n", LENGTHS)
def test_nadam_step_is_bitwise_the_numpy_passes(n):
    lr, beta_1, beta_2, epsilon = f32(1e-3), 0.9, 0.999, 1e-7
    rng = np.random.default_rng(600 + n)
    value = random_vector(rng, n, 0.3)
    m, v = np.zeros(n, f32), np.zeros(n, f32)
    ref_value, ref_m, ref_v = value.copy(), m.copy(), v.copy()
    product = f32(1)
    for step in range(1, 6):
        product = advance_nadam_product(product, step, beta_1)
        u_t, u_next, _, next_product, beta_2_power = nadam_scalars(step, product, beta_1, beta_2)
        g = random_vector(rng, n, 0.01 * step)
        out = np.empty(n, f32)
        _native.nadam_step_f32(out, value, g, m, v, lr, f32(1) - f32(beta_1),
                               f32(1) - f32(beta_2), f32(epsilon), u_next,
                               f32(1) - next_product, f32(1) - u_t, f32(1) - product,
                               f32(1) - beta_2_power)
        value = out
        ref_value = numpy_nadam(ref_value, g, ref_m, ref_v, lr, beta_1, beta_2, epsilon,
                                nadam_scalars(step, product, beta_1, beta_2))
        assert same_bits(value, ref_value), f"values differ at step {step}"
        assert same_bits(m, ref_m) and same_bits(v, ref_v)


def numpy_adamax(value, g, m, u, lr, beta_1, beta_2, epsilon, step):
    """Keras's Adamax: `m += (g - m) * (1 - b1)`, `u = max(b2 * u, |g|)`,
    `w -= (lr * m) / ((1 - b1^t) * (u + eps))`, flushed."""
    F = flushed
    g, value = F(g), F(value)
    one_minus_power = f32(1) - np.power(f32(beta_1), f32(step))
    m[:] = F(F(m) + F(F(g - F(m)) * f32(1 - beta_1)))
    u[:] = F(np.maximum(F(f32(beta_2) * F(u)), np.abs(g)))
    return F(value - F(F(lr * m) / F(one_minus_power * F(u + f32(epsilon)))))


def numpy_lion(value, g, m, lr, beta_1, beta_2):
    """Keras's Lion: `w -= lr * sign(m * b1 + g * (1 - b1))`, then
    `m = m * b2 + g * (1 - b2)`, flushed."""
    F = flushed
    g, value = F(g), F(value)
    b1, b2 = f32(beta_1), f32(beta_2)
    direction = np.sign(F(F(F(m) * b1) + F(g * (f32(1) - b1))))
    out = F(value - F(lr * direction))
    m[:] = F(F(F(m) * b2) + F(g * (f32(1) - b2)))
    return out


def numpy_adadelta(value, g, acc_grad, acc_delta, lr, rho, epsilon):
    """Keras's Adadelta, flushed."""
    F = flushed
    g, value = F(g), F(value)
    acc_grad[:] = F(F(f32(rho) * F(acc_grad)) + F(f32(1 - rho) * F(np.square(g))))
    delta = -F(F(F(np.sqrt(F(F(acc_delta) + f32(epsilon)))) * g)
               / F(np.sqrt(F(acc_grad + f32(epsilon)))))
    acc_delta[:] = F(F(f32(rho) * F(acc_delta)) + F(f32(1 - rho) * F(np.square(delta))))
    return F(value + F(lr * delta))


@pytest.mark.parametrize("n", LENGTHS)
def test_adamax_lion_adadelta_steps_are_bitwise_the_numpy_passes(n):
    rng = np.random.default_rng(800 + n)
    lr = f32(2e-3)
    start = random_vector(rng, n, 0.3)
    values = {"adamax": start.copy(), "lion": start.copy(), "adadelta": start.copy()}
    refs = {k: v.copy() for k, v in values.items()}
    slots = {"adamax": [np.zeros(n, f32), np.zeros(n, f32)], "lion": [np.zeros(n, f32)],
             "adadelta": [np.zeros(n, f32), np.zeros(n, f32)]}
    ref_slots = {k: [x.copy() for x in v] for k, v in slots.items()}
    for step in range(1, 6):
        g = random_vector(rng, n, 0.01 * step)
        outs = {k: np.empty(n, f32) for k in values}
        _native.adamax_step_f32(outs["adamax"], values["adamax"], g, *slots["adamax"], lr,
                                f32(1 - 0.9), f32(0.999), f32(1e-7),
                                f32(1) - np.power(f32(0.9), f32(step)))
        _native.lion_step_f32(outs["lion"], values["lion"], g, *slots["lion"], lr, f32(0.9),
                              f32(1) - f32(0.9), f32(0.99), f32(1) - f32(0.99))
        _native.adadelta_step_f32(outs["adadelta"], values["adadelta"], g, *slots["adadelta"],
                                  lr, f32(0.95), f32(1 - 0.95), f32(1e-7))
        values = outs
        refs["adamax"] = numpy_adamax(refs["adamax"], g, *ref_slots["adamax"], lr, 0.9, 0.999,
                                      1e-7, step)
        refs["lion"] = numpy_lion(refs["lion"], g, *ref_slots["lion"], lr, 0.9, 0.99)
        refs["adadelta"] = numpy_adadelta(refs["adadelta"], g, *ref_slots["adadelta"], lr, 0.95,
                                          1e-7)
        for k in values:
            assert same_bits(values[k], refs[k]), f"{k} values differ at step {step}"
            for a, b in zip(slots[k], ref_slots[k]):
                assert same_bits(a, b), f"{k} slots differ at step {step}"


def test_lion_sign_of_zero_and_nan_is_numpys():
    value = np.ones(4, f32)
    g = np.array([0.0, -0.0, np.nan, 1.0], f32)
    m = np.array([0.0, -0.0, 0.0, -1.0], f32)
    ref_m = m.copy()
    out = np.empty(4, f32)
    _native.lion_step_f32(out, value, g, m, f32(0.1), f32(0.9), f32(0.1), f32(0.99), f32(0.01))
    expected = numpy_lion(value, g, ref_m, f32(0.1), 0.9, 0.99)
    assert same_bits(out, expected) and same_bits(m, ref_m)


def numpy_ftrl(value, g, accumulator, linear, lr, learning_rate_power, l1, l2, l2_shrinkage,
               beta):
    """Keras's Ftrl, flushed: `linear += (g + 2*shrinkage*w) - ((n'^p - n^p) / lr) * w` with
    `n' = n + g^2`, `w = (clip(linear, -l1, l1) - linear) / (n'^p / lr + 2*(l2 + beta/(2 lr)))`."""
    with np.errstate(invalid="ignore", divide="ignore"):  # 0/0 and 0*inf are cases here
        return _numpy_ftrl(flushed, value, g, accumulator, linear, lr, learning_rate_power, l1,
                           l2, l2_shrinkage, beta)


def _numpy_ftrl(F, value, g, accumulator, linear, lr, learning_rate_power, l1, l2, l2_shrinkage,
                beta):
    g, value = F(g), F(value)
    power = f32(-learning_rate_power)
    l2_total = f32(l2) + f32(beta) / (f32(2) * lr)
    grad_to_use = F(g + F(f32(2 * l2_shrinkage) * value))
    old_power = F(np.power(F(accumulator), power))
    accumulator[:] = F(F(accumulator) + F(np.square(g)))
    new_power = F(np.power(accumulator, power))
    linear[:] = F(F(linear) + F(grad_to_use - F(F(F(new_power - old_power) / lr) * value)))
    quadratic = F(F(new_power / lr) + f32(2) * l2_total)
    clipped = np.clip(linear, -f32(l1), f32(l1))
    return F(F(clipped - linear) / quadratic)


# (learning_rate, learning_rate_power, initial_accumulator_value, l1, l2, l2_shrinkage, beta)
FTRL_OPTIONS = [
    (1e-3, -0.5, 0.1, 0.0, 0.0, 0.0, 0.0),  # Keras's defaults
    (0.05, -0.5, 0.1, 0.01, 0.02, 0.03, 0.1),
    (0.1, 0.0, 0.0, 1e-3, 0.0, 0.0, 0.5),  # a learning-rate power of 0
    (0.02, -1.0, 0.2, 0.0, 0.1, 0.0, 0.0),
    (0.01, -2.0, 0.1, 5e-3, 0.0, 0.01, 0.0),
    (0.01, -0.5, 0.0, 0.0, 0.0, 0.0, 0.0),  # a zero accumulator: 0/0 (NaN) where g is 0
]


@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("options", FTRL_OPTIONS)
def test_ftrl_step_is_bitwise_the_numpy_passes(n, options):
    lr, lr_power, initial, l1, l2, shrinkage, beta = options
    lr = f32(lr)
    rng = np.random.default_rng(900 + n)
    value = random_vector(rng, n, 0.3)
    accumulator, linear = np.full(n, f32(initial)), np.zeros(n, f32)
    ref_value, ref_accumulator, ref_linear = value.copy(), accumulator.copy(), linear.copy()
    two_l2 = f32(2) * (f32(l2) + f32(beta) / (f32(2) * lr))
    for step in range(1, 5):
        g = random_vector(rng, n, 0.05 * step)
        out = np.empty(n, f32)
        _native.ftrl_step_f32(out, value, g, accumulator, linear, lr, f32(-lr_power),
                              f32(2 * shrinkage), f32(l1), two_l2)
        value = out
        ref_value = numpy_ftrl(ref_value, g, ref_accumulator, ref_linear, lr, lr_power, l1, l2,
                               shrinkage, beta)
        assert same_bits(value, ref_value), f"values differ at step {step}"
        assert same_bits(accumulator, ref_accumulator) and same_bits(linear, ref_linear)


def test_ftrl_clip_keeps_signed_zeros_nan_and_infinities_as_numpy():
    # Special linear values around the clip bounds, repeated past the vector width.
    specials = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 0.01, -0.01, 0.02, -0.02, 1e-3],
                        f32)
    for l1 in (0.0, 0.01):
        linear = np.tile(specials, 8)
        n = linear.size
        value, g, accumulator = np.ones(n, f32), np.zeros(n, f32), np.ones(n, f32)
        ref_linear, ref_accumulator = linear.copy(), accumulator.copy()
        out = np.empty(n, f32)
        # With zero gradient and no shrinkage, linear stays put: the clip decides the result.
        _native.ftrl_step_f32(out, value, g, accumulator, linear, f32(0.1), f32(0.5), f32(0),
                              f32(l1), f32(0))
        expected = numpy_ftrl(value, g, ref_accumulator, ref_linear, f32(0.1), -0.5, l1, 0.0,
                              0.0, 0.0)
        assert same_bits(out, expected) and same_bits(linear, ref_linear)


def test_ftrl_refuses_an_inexact_power_and_names_the_slot():
    out, value, grad = np.empty(8, f32), np.ones(8, f32), np.ones(8, f32)
    with pytest.raises(ValueError, match=r"accumulator power 0.7.* expected 0, 0.5, 1 or 2"):
        _native.ftrl_step_f32(out, value, grad, np.ones(8, f32), np.zeros(8, f32), f32(0.1),
                              f32(0.7), f32(0), f32(0), f32(0))
    with pytest.raises(ValueError, match=r"ftrl_step_f32: `linear` has 3 elements, expected 8"):
        _native.ftrl_step_f32(out, value, grad, np.ones(8, f32), np.zeros(3, f32), f32(0.1),
                              f32(0.5), f32(0), f32(0), f32(0))


def numpy_weight_decay(value, weight_decay, lr):
    """Keras's decoupled decay `w - w * wd * lr`, flushed."""
    F = flushed
    value = F(value)
    return F(value - F(F(value * f32(weight_decay)) * f32(lr)))


@pytest.mark.parametrize("n", LENGTHS)
def test_weight_decay_is_bitwise_the_numpy_passes(n):
    value = random_vector(np.random.default_rng(700 + n), n, 0.3)
    out = np.empty(n, f32)
    _native.weight_decay_f32(out, value, f32(0.004), f32(1e-3))
    assert same_bits(out, numpy_weight_decay(value, 0.004, 1e-3))


# ----- through the optimizers: the flat path (several variables) and the per-variable path

SHAPES = [(784, 64), (64,), (64, 10), (10,)]


def train(optimizer, weights, grads_per_step):
    variables = [Variable(w.copy(), name=f"w{i}") for i, w in enumerate(weights)]
    for grads in grads_per_step:
        optimizer.apply_gradients(zip(grads, variables))
    return [v.numpy() for v in variables]


def problem(shapes, steps=4, seed=0):
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal(s).astype(f32) * f32(0.1) for s in shapes]
    grads = [[rng.standard_normal(s).astype(f32) * f32(0.01 * (k + 1)) for s in shapes]
             for k in range(steps)]
    return weights, grads


@pytest.mark.parametrize("shapes", [SHAPES, [(33, 5)]], ids=["flat", "one-variable"])
def test_adam_optimizer_equals_the_numpy_passes(shapes):
    weights, grads = problem(shapes)
    got = train(optimizers.Adam(learning_rate=1e-3), weights, grads)
    ref = [w.copy() for w in weights]
    slots = [(np.zeros_like(w), np.zeros_like(w)) for w in weights]
    for step, step_grads in enumerate(grads, start=1):
        alpha = adam_alpha(1e-3, step, 0.9, 0.999)
        for i, g in enumerate(step_grads):
            ref[i] = numpy_adam(ref[i], g, *slots[i], alpha, 0.9, 0.999, 1e-7)
    for a, b in zip(got, ref):
        assert same_bits(a, b)


@pytest.mark.parametrize("shapes", [SHAPES, [(33, 5)]], ids=["flat", "one-variable"])
@pytest.mark.parametrize("momentum_factor", [0.0, 0.5])
def test_rmsprop_optimizer_equals_the_numpy_passes(shapes, momentum_factor):
    weights, grads = problem(shapes, seed=1)
    got = train(optimizers.RMSprop(learning_rate=1e-3, momentum=momentum_factor), weights, grads)
    ref = [w.copy() for w in weights]
    slots = [(np.zeros_like(w), np.zeros_like(w) if momentum_factor else None) for w in weights]
    for step_grads in grads:
        for i, g in enumerate(step_grads):
            ref[i] = numpy_rmsprop(ref[i], g, *slots[i], f32(1e-3), 0.9, momentum_factor, 1e-7)
    for a, b in zip(got, ref):
        assert same_bits(a, b)


@pytest.mark.parametrize("shapes", [SHAPES, [(33, 5)]], ids=["flat", "one-variable"])
@pytest.mark.parametrize("momentum_factor,nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_sgd_optimizer_equals_the_numpy_passes(shapes, momentum_factor, nesterov):
    weights, grads = problem(shapes, seed=2)
    got = train(optimizers.SGD(learning_rate=0.05, momentum=momentum_factor, nesterov=nesterov),
                weights, grads)
    ref = [w.copy() for w in weights]
    slots = [np.zeros_like(w) if momentum_factor else None for w in weights]
    for step_grads in grads:
        for i, g in enumerate(step_grads):
            ref[i] = numpy_sgd(ref[i], g, slots[i], f32(0.05), momentum_factor, nesterov)
    for a, b in zip(got, ref):
        assert same_bits(a, b)


@pytest.mark.parametrize("shapes", [SHAPES, [(33, 5)]], ids=["flat", "one-variable"])
def test_amsgrad_optimizer_equals_the_numpy_passes(shapes):
    weights, grads = problem(shapes, seed=3, steps=5)
    grads = grads[::-1]  # shrinking gradients, so v_hat stays above v
    optimizer = optimizers.Adam(learning_rate=1e-3, amsgrad=True)
    got = train(optimizer, weights, grads)
    ref = [w.copy() for w in weights]
    slots = [(np.zeros_like(w), np.zeros_like(w), np.zeros_like(w)) for w in weights]
    for step, step_grads in enumerate(grads, start=1):
        alpha = adam_alpha(1e-3, step, 0.9, 0.999)
        for i, g in enumerate(step_grads):
            ref[i] = numpy_amsgrad(ref[i], g, *slots[i], alpha, 0.9, 0.999, 1e-7)
    for a, b in zip(got, ref):
        assert same_bits(a, b)
    for hat, (_, _, ref_hat) in zip(optimizer._velocity_hats, slots):
        assert same_bits(np.ascontiguousarray(hat.numpy()), ref_hat)


@pytest.mark.parametrize("shapes", [SHAPES, [(33, 5)]], ids=["flat", "one-variable"])
@pytest.mark.parametrize("momentum_factor", [0.0, 0.5])
def test_centered_rmsprop_optimizer_equals_the_numpy_passes(shapes, momentum_factor):
    weights, grads = problem(shapes, seed=4)
    optimizer = optimizers.RMSprop(learning_rate=1e-3, momentum=momentum_factor, centered=True)
    got = train(optimizer, weights, grads)
    ref = [w.copy() for w in weights]
    slots = [(np.zeros_like(w), np.zeros_like(w), np.zeros_like(w) if momentum_factor else None)
             for w in weights]
    for step_grads in grads:
        for i, g in enumerate(step_grads):
            ref[i] = numpy_centered_rmsprop(ref[i], g, *slots[i], f32(1e-3), 0.9,
                                            momentum_factor, 1e-7)
    for a, b in zip(got, ref):
        assert same_bits(a, b)


@pytest.mark.parametrize("shapes", [SHAPES, [(33, 5)]], ids=["flat", "one-variable"])
def test_adagrad_optimizer_equals_the_numpy_passes(shapes):
    weights, grads = problem(shapes, seed=5)
    got = train(optimizers.Adagrad(learning_rate=1e-2), weights, grads)
    ref = [w.copy() for w in weights]
    slots = [np.full_like(w, 0.1) for w in weights]
    for step_grads in grads:
        for i, g in enumerate(step_grads):
            ref[i] = numpy_adagrad(ref[i], g, slots[i], f32(1e-2), 1e-7)
    for a, b in zip(got, ref):
        assert same_bits(a, b)


@pytest.mark.parametrize("shapes", [SHAPES, [(33, 5)]], ids=["flat", "one-variable"])
def test_nadam_optimizer_equals_the_numpy_passes(shapes):
    weights, grads = problem(shapes, seed=6)
    got = train(optimizers.Nadam(learning_rate=1e-3), weights, grads)
    ref = [w.copy() for w in weights]
    slots = [(np.zeros_like(w), np.zeros_like(w)) for w in weights]
    product = f32(1)
    for step, step_grads in enumerate(grads, start=1):
        product = advance_nadam_product(product, step, 0.9)
        scalars = nadam_scalars(step, product, 0.9, 0.999)
        for i, g in enumerate(step_grads):
            ref[i] = numpy_nadam(ref[i], g, *slots[i], f32(1e-3), 0.9, 0.999, 1e-7, scalars)
    for a, b in zip(got, ref):
        assert same_bits(a, b)


@pytest.mark.parametrize("shapes", [SHAPES, [(33, 5)]], ids=["flat", "one-variable"])
@pytest.mark.parametrize("name", ["Adamax", "Lion", "Adadelta"])
def test_adamax_lion_adadelta_optimizers_equal_the_numpy_passes(shapes, name):
    weights, grads = problem(shapes, seed=10)
    got = train(getattr(optimizers, name)(learning_rate=2e-3), weights, grads)
    ref = [w.copy() for w in weights]
    slot_count = {"Adamax": 2, "Lion": 1, "Adadelta": 2}[name]
    slots = [[np.zeros_like(w) for _ in range(slot_count)] for w in weights]
    for step, step_grads in enumerate(grads, start=1):
        for i, g in enumerate(step_grads):
            if name == "Adamax":
                ref[i] = numpy_adamax(ref[i], g, *slots[i], f32(2e-3), 0.9, 0.999, 1e-7, step)
            elif name == "Lion":
                ref[i] = numpy_lion(ref[i], g, *slots[i], f32(2e-3), 0.9, 0.99)
            else:
                ref[i] = numpy_adadelta(ref[i], g, *slots[i], f32(2e-3), 0.95, 1e-7)
    for a, b in zip(got, ref):
        assert same_bits(a, b)


@pytest.mark.parametrize("shapes", [SHAPES, [(33, 5)]], ids=["flat", "one-variable"])
@pytest.mark.parametrize("options", FTRL_OPTIONS[1:3] + [
    (0.1, -0.7, 0.1, 0.01, 0.02, 0.01, 0.1)], ids=["half", "zero", "inexact-0.7"])
def test_ftrl_optimizer_equals_the_numpy_passes(shapes, options):
    # Exponents numpy computes exactly take the kernel; -0.7 keeps the numpy rule, whose
    # values are the same as long as nothing turns subnormal (nothing here does).
    lr, lr_power, initial, l1, l2, shrinkage, beta = options
    weights, grads = problem(shapes, seed=11)
    optimizer = optimizers.Ftrl(
        learning_rate=lr, learning_rate_power=lr_power, initial_accumulator_value=initial,
        l1_regularization_strength=l1, l2_regularization_strength=l2,
        l2_shrinkage_regularization_strength=shrinkage, beta=beta)
    got = train(optimizer, weights, grads)
    ref = [w.copy() for w in weights]
    slots = [(np.full_like(w, f32(initial)), np.zeros_like(w)) for w in weights]
    for step_grads in grads:
        for i, g in enumerate(step_grads):
            ref[i] = numpy_ftrl(ref[i], g, *slots[i], f32(lr), lr_power, l1, l2, shrinkage, beta)
    for a, b in zip(got, ref):
        assert same_bits(a, b)
    for (accumulator, linear), a, b in zip(slots, optimizer._accumulators, optimizer._linears):
        assert same_bits(a.numpy(), accumulator) and same_bits(b.numpy(), linear)
    fused = getattr(optimizer, "_flat_state", None) is not None
    assert fused == (len(shapes) > 1 and lr_power != -0.7)


def test_adamw_decays_then_takes_the_fused_adam_step():
    # AdamW: Keras's decoupled decay `w - w * wd * lr` on each variable (its own fused pass),
    # then Adam.
    weights, grads = problem(SHAPES, seed=7)
    got = train(optimizers.AdamW(learning_rate=1e-3, weight_decay=0.004), weights, grads)
    ref = [w.copy() for w in weights]
    slots = [(np.zeros_like(w), np.zeros_like(w)) for w in weights]
    for step, step_grads in enumerate(grads, start=1):
        alpha = adam_alpha(1e-3, step, 0.9, 0.999)
        for i, g in enumerate(step_grads):
            F = flushed
            decayed = F(F(ref[i]) - F(F(F(ref[i]) * f32(0.004)) * f32(1e-3)))
            ref[i] = numpy_adam(decayed, g, *slots[i], alpha, 0.9, 0.999, 1e-7)
    for a, b in zip(got, ref):
        assert same_bits(a, b)


def test_weight_decay_skips_excluded_variables():
    weights, grads = problem(SHAPES, seed=9, steps=2)
    optimizer = optimizers.SGD(learning_rate=0.05, momentum=0.9, weight_decay=0.01)
    variables = [Variable(w.copy(), name=f"w{i}") for i, w in enumerate(weights)]
    optimizer.exclude_from_weight_decay(var_list=[variables[1]])
    for step_grads in grads:
        optimizer.apply_gradients(zip(step_grads, variables))
    ref = [w.copy() for w in weights]
    slots = [np.zeros_like(w) for w in weights]
    for step_grads in grads:
        for i, g in enumerate(step_grads):
            decayed = ref[i] if i == 1 else numpy_weight_decay(ref[i], 0.01, 0.05)
            ref[i] = numpy_sgd(decayed, g, slots[i], f32(0.05), 0.9, False)
    for variable, expected in zip(variables, ref):
        assert same_bits(variable.numpy(), expected)


def test_float64_variables_keep_the_numpy_rule():
    # Only float32 variables take the kernels; a float64 one runs the rule in float64.
    rng = np.random.default_rng(8)
    w = rng.standard_normal((4, 3))
    g = rng.standard_normal((4, 3)) * 0.1
    variables = [Variable(w.copy(), dtype="float64", name="a"),
                 Variable(w.copy(), dtype="float64", name="b")]
    optimizer = optimizers.SGD(learning_rate=0.1, momentum=0.9)
    optimizer.apply_gradients([(g, variables[0]), (g, variables[1])])
    for variable in variables:
        assert variable.numpy().dtype == np.float64
        # Keras casts the float32 learning rate to the variable's dtype.
        assert np.array_equal(variable.numpy(), w + (-(g * np.float64(f32(0.1)))))


def test_per_variable_path_takes_fortran_ordered_and_strided_operands():
    # A Fortran-ordered value, a transposed gradient and a Fortran-ordered slot handed in
    # from outside must pair the same elements as their C-ordered copies would.
    rng = np.random.default_rng(3)
    value = np.asfortranarray(rng.standard_normal((6, 5)).astype(f32))
    grad = rng.standard_normal((5, 6)).astype(f32).T
    m0 = np.asfortranarray(rng.standard_normal((6, 5)).astype(f32) * f32(0.01))
    optimizer = optimizers.Adam(learning_rate=1e-2)
    variable = Variable(value.copy(order="F"), name="w")
    optimizer.build([variable])
    optimizer._momentums[0].assign(m0)
    optimizer.apply_gradients([(grad, variable)])
    m_ref, v_ref = np.ascontiguousarray(m0), np.zeros((6, 5), f32)
    expected = numpy_adam(np.ascontiguousarray(value), np.ascontiguousarray(grad), m_ref, v_ref,
                          adam_alpha(1e-2, 1, 0.9, 0.999), 0.9, 0.999, 1e-7)
    assert same_bits(np.ascontiguousarray(variable.numpy()), expected)
    assert same_bits(np.ascontiguousarray(optimizer._momentums[0].numpy()), m_ref)
    # The array handed in for the slot was not written.
    assert np.array_equal(m0, np.asfortranarray(m0)) and m0.flags.f_contiguous


# ----- refusals: operands the kernels cannot walk in flat order are errors, not wrong data

def adam_args(n=8):
    return [np.empty(n, f32), np.ones(n, f32), np.ones(n, f32), np.zeros(n, f32),
            np.zeros(n, f32), None]


COEFFICIENTS = (f32(1e-3), f32(0.1), f32(0.001), f32(1e-7))


def test_mismatched_lengths_name_the_operand():
    args = adam_args()
    args[4] = np.zeros(5, f32)
    with pytest.raises(ValueError, match=r"`v` has 5 elements, expected 8"):
        _native.adam_step_f32(*args, *COEFFICIENTS)
    out, value, grad, velocity, _, _ = adam_args()
    with pytest.raises(ValueError, match=r"`momentum` has 3 elements"):
        _native.rmsprop_step_f32(out, value, grad, velocity, None, np.zeros(3, f32), f32(1e-3),
                                 f32(0.9), f32(0.1), f32(1e-7), f32(0.9))


def test_non_contiguous_and_fortran_operands_are_refused():
    args = adam_args()
    args[2] = np.ones(16, f32)[::2]
    with pytest.raises(ValueError, match="`grad` must be an aligned, C-contiguous"):
        _native.adam_step_f32(*args, *COEFFICIENTS)
    args = [np.asfortranarray(np.zeros((4, 3), f32)) for _ in range(5)] + [None]
    with pytest.raises(ValueError, match="`value_out` must be an aligned, C-contiguous"):
        _native.adam_step_f32(*args, *COEFFICIENTS)


def test_misaligned_operand_is_refused():
    raw = np.zeros(8 * 4 + 1, np.uint8)
    misaligned = raw[1:].view(f32)
    assert not misaligned.flags.aligned
    args = adam_args()
    args[1] = misaligned
    with pytest.raises(ValueError, match="`value_in` must be an aligned"):
        _native.adam_step_f32(*args, *COEFFICIENTS)


def test_wrong_dtype_and_read_only_slots_are_refused():
    args = adam_args()
    args[2] = np.ones(8, np.float64)
    with pytest.raises(TypeError):
        _native.adam_step_f32(*args, *COEFFICIENTS)
    args = adam_args()
    args[3].flags.writeable = False
    with pytest.raises(TypeError, match="not writeable"):
        _native.adam_step_f32(*args, *COEFFICIENTS)


def test_one_array_as_two_writable_slots_is_refused():
    args = adam_args()
    args[4] = args[3]
    with pytest.raises(Exception, match="(?i)borrow|alias|overlap"):
        _native.adam_step_f32(*args, *COEFFICIENTS)
    assert np.array_equal(args[3], np.zeros(8, f32))


def test_new_kernels_name_the_mismatched_slot():
    out, value, grad = np.empty(8, f32), np.ones(8, f32), np.ones(8, f32)
    with pytest.raises(ValueError, match=r"sgd_step_f32: `momentum` has 3 elements, expected 8"):
        _native.sgd_step_f32(out, value, grad, np.zeros(3, f32), f32(0.1), f32(0.9), False)
    with pytest.raises(ValueError, match=r"`v_hat` has 4 elements"):
        _native.adam_step_f32(out, value, grad, np.zeros(8, f32), np.zeros(8, f32),
                              np.zeros(4, f32), *COEFFICIENTS)
    with pytest.raises(ValueError, match=r"`average_gradient` has 2 elements"):
        _native.rmsprop_step_f32(out, value, grad, np.zeros(8, f32), np.zeros(2, f32), None,
                                 f32(1e-3), f32(0.9), f32(0.1), f32(1e-7), f32(0))
    with pytest.raises(ValueError, match=r"adagrad_step_f32: `accumulator` has 9 elements"):
        _native.adagrad_step_f32(out, value, grad, np.zeros(9, f32), f32(0.1), f32(1e-7))
    with pytest.raises(ValueError, match=r"nadam_step_f32: `grad` has 7 elements"):
        _native.nadam_step_f32(out, value, np.ones(7, f32), np.zeros(8, f32), np.zeros(8, f32),
                               *([f32(0.5)] * 9))
    with pytest.raises(ValueError, match="`momentum` must be an aligned, C-contiguous"):
        _native.sgd_step_f32(out, value, grad, np.zeros(16, f32)[::2], f32(0.1), f32(0.9), True)
