"""The fused Rust optimizer steps (`_native.adam_step_f32`, `_native.rmsprop_step_f32`).

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
        _native.adam_step_f32(out, value, g, m, v, alpha, f32(1 - beta_1), f32(1 - beta_2),
                              f32(epsilon))
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
        _native.rmsprop_step_f32(out, value, g, velocity, momentum, lr, f32(rho), f32(1 - rho),
                                 f32(epsilon), f32(momentum_factor))
        value = out
        ref_value = numpy_rmsprop(ref_value, g, ref_velocity, ref_momentum, lr, rho,
                                  momentum_factor, epsilon)
        assert same_bits(value, ref_value), f"values differ at step {step}"
        assert same_bits(velocity, ref_velocity)
        if momentum is not None:
            assert same_bits(momentum, ref_momentum)


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
            np.zeros(n, f32)]


COEFFICIENTS = (f32(1e-3), f32(0.1), f32(0.001), f32(1e-7))


def test_mismatched_lengths_name_the_operand():
    args = adam_args()
    args[4] = np.zeros(5, f32)
    with pytest.raises(ValueError, match=r"`v` has 5 elements, expected 8"):
        _native.adam_step_f32(*args, *COEFFICIENTS)
    out, value, grad, velocity, _ = adam_args()
    with pytest.raises(ValueError, match=r"`momentum` has 3 elements"):
        _native.rmsprop_step_f32(out, value, grad, velocity, np.zeros(3, f32), f32(1e-3),
                                 f32(0.9), f32(0.1), f32(1e-7), f32(0.9))


def test_non_contiguous_and_fortran_operands_are_refused():
    args = adam_args()
    args[2] = np.ones(16, f32)[::2]
    with pytest.raises(ValueError, match="`grad` must be an aligned, C-contiguous"):
        _native.adam_step_f32(*args, *COEFFICIENTS)
    args = [np.asfortranarray(np.zeros((4, 3), f32)) for _ in range(5)]
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
