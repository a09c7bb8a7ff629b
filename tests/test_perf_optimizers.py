"""The optimizers' fast float32 paths (slots updated in place, scratch temporaries).

References: Keras 3's update rules written out here as plain numpy float32 expressions (the
rounding of every intermediate is float32, as in Keras), and real Keras 3 on its numpy
backend. The fast paths must agree bit for bit with the plain expressions, and must keep
copy-on-write: arrays handed in from outside (read-only loaded views, values someone still
holds) are never written.
"""

import os

import numpy as np
import pytest

if "keras" not in __import__("sys").modules:
    os.environ["KERAS_BACKEND"] = "numpy"
import keras  # noqa: E402

from amber import optimizers  # noqa: E402
from amber.backend import Variable  # noqa: E402

f32 = np.float32
# The guide MLP's variables: the big kernel, biases and a small output layer.
SHAPES = [(784, 64), (64,), (64, 64), (64,), (64, 10), (10,)]
STEPS = 4


def _adam_reference(weights, grads_per_step, lr=1e-3, beta_1=0.9, beta_2=0.999, eps=1e-7):
    w = [x.copy() for x in weights]
    m = [np.zeros_like(x) for x in weights]
    v = [np.zeros_like(x) for x in weights]
    for t, grads in enumerate(grads_per_step, start=1):
        step = f32(t)
        alpha = f32(lr) * np.sqrt(f32(1) - np.power(f32(beta_2), step)) / (
            f32(1) - np.power(f32(beta_1), step))
        for i, g in enumerate(grads):
            m[i] = m[i] + (g - m[i]) * f32(1 - beta_1)
            v[i] = v[i] + (np.square(g) - v[i]) * f32(1 - beta_2)
            w[i] = w[i] - (m[i] * alpha) / (np.sqrt(v[i]) + f32(eps))
    return w, m, v


def _rmsprop_reference(weights, grads_per_step, lr=1e-3, rho=0.9, momentum=0.0, eps=1e-7):
    w = [x.copy() for x in weights]
    vel = [np.zeros_like(x) for x in weights]
    mom = [np.zeros_like(x) for x in weights]
    for grads in grads_per_step:
        for i, g in enumerate(grads):
            vel[i] = f32(rho) * vel[i] + f32(1 - rho) * np.square(g)
            increment = (f32(lr) * g) / np.sqrt(vel[i] + f32(eps))
            if momentum > 0:
                mom[i] = f32(momentum) * mom[i] + increment
                w[i] = w[i] - mom[i]
            else:
                w[i] = w[i] - increment
    return w, vel, mom


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal(s).astype(f32) * f32(0.1) for s in SHAPES]
    grads = [[rng.standard_normal(s).astype(f32) * f32(0.01 * (k + 1)) for s in SHAPES]
             for k in range(STEPS)]
    return weights, grads


def _train(optimizer, weights, grads_per_step):
    variables = [Variable(x.copy(), name=f"w{i}") for i, x in enumerate(weights)]
    for grads in grads_per_step:
        optimizer.apply_gradients(zip(grads, variables))
    return variables


def test_adam_fast_path_is_bitwise_keras_float32_formula():
    weights, grads = _problem()
    opt = optimizers.Adam(learning_rate=1e-3)
    variables = _train(opt, weights, grads)
    w, m, v = _adam_reference(weights, grads)
    for i, variable in enumerate(variables):
        np.testing.assert_array_equal(variable.numpy(), w[i])
        # Keras order: iteration, learning_rate, then momentum/velocity per variable.
        np.testing.assert_array_equal(opt.variables[2 + 2 * i].numpy(), m[i])
        np.testing.assert_array_equal(opt.variables[3 + 2 * i].numpy(), v[i])
    assert int(opt.iterations.numpy()) == STEPS


@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_rmsprop_fast_path_is_bitwise_keras_float32_formula(momentum):
    weights, grads = _problem(1)
    opt = optimizers.RMSprop(learning_rate=1e-3, momentum=momentum)
    variables = _train(opt, weights, grads)
    w, vel, mom = _rmsprop_reference(weights, grads, momentum=momentum)
    for i, variable in enumerate(variables):
        np.testing.assert_array_equal(variable.numpy(), w[i])
    slots = opt.variables[2:]
    per_variable = 2 if momentum > 0 else 1
    for i in range(len(SHAPES)):
        np.testing.assert_array_equal(slots[i].numpy(), vel[i])
        if momentum > 0:
            np.testing.assert_array_equal(slots[len(SHAPES) + i].numpy(), mom[i])
    assert len(slots) == per_variable * len(SHAPES)


@pytest.mark.parametrize("name,kwargs", [("Adam", {}), ("RMSprop", {}),
                                         ("RMSprop", {"momentum": 0.9})])
def test_fast_paths_match_real_keras(name, kwargs):
    weights, grads = _problem(2)
    kvars = [keras.Variable(x.copy(), name=f"w{i}") for i, x in enumerate(weights)]
    kopt = getattr(keras.optimizers, name)(learning_rate=1e-3, **kwargs)
    for step_grads in grads:
        kopt.apply_gradients(zip(step_grads, kvars))
    variables = _train(getattr(optimizers, name)(learning_rate=1e-3, **kwargs), weights, grads)
    for kv, av in zip(kvars, variables):
        np.testing.assert_allclose(av.numpy(), keras.ops.convert_to_numpy(kv.value),
                                   rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", ["Adam", "RMSprop"])
def test_updates_never_write_arrays_handed_in(name):
    weights, grads = _problem(3)
    variables = [Variable(x.copy(), name=f"w{i}") for i, x in enumerate(weights)]
    # A read-only model value, as a loader's mapped view would be.
    frozen = weights[0].copy()
    frozen.flags.writeable = False
    variables[0]._adopt(frozen)
    opt = getattr(optimizers, name)(learning_rate=1e-3)
    opt.apply_gradients(zip(grads[0], variables))
    held_values = [v.numpy() for v in variables]
    held_copies = [x.copy() for x in held_values]
    # Slot state handed in from outside (as load_own_variables does), read-only.
    state = [np.array(v.numpy()) for v in opt.variables]
    for array in state:
        array.flags.writeable = False
    state_copies = [x.copy() for x in state]

    class Store(dict):
        pass

    store = Store({str(i): a for i, a in enumerate(state)})
    opt.load_own_variables(store)
    opt.apply_gradients(zip(grads[1], variables))

    np.testing.assert_array_equal(frozen, weights[0])
    for held, copy in zip(held_values, held_copies):
        np.testing.assert_array_equal(held, copy)
    for array, copy in zip(state, state_copies):
        np.testing.assert_array_equal(array, copy)
    # ... and the step still did the work: the weights moved.
    assert not np.array_equal(variables[0].numpy(), held_copies[0])


def test_slot_assign_then_step_uses_the_assigned_value():
    weights, grads = _problem(4)
    opt = optimizers.Adam(learning_rate=1e-3)
    variables = _train(opt, weights, grads[:1])
    # Reset the state through the public API: the next step must start from zeros again.
    for slot in opt.variables[2:]:
        slot.assign(np.zeros(slot.shape, "float32"))
    opt.iterations.assign(0)
    fresh = _train(optimizers.Adam(learning_rate=1e-3), [v.numpy() for v in variables], grads[1:2])
    for grad_pair in [grads[1]]:
        opt.apply_gradients(zip(grad_pair, variables))
    for a, b in zip(variables, fresh):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("name", ["Adam", "RMSprop"])
def test_changing_variable_subsets_keep_every_slot(name):
    # Steps over all variables (flat path), a subset (another flat layout) and a single
    # variable (per-variable path) must hand the slot state over without losing any of it.
    weights, grads = _problem(5)
    schedule = [range(6), range(3), range(6), [4], range(6)]
    steps = [[grads[k % STEPS][i] for i in chosen] for k, chosen in enumerate(schedule)]
    variables = [Variable(x.copy(), name=f"w{i}") for i, x in enumerate(weights)]
    opt = getattr(optimizers, name)(learning_rate=1e-3)
    opt.build(variables)
    for chosen, step_grads in zip(schedule, steps):
        opt.apply_gradients(zip(step_grads, [variables[i] for i in chosen]))

    w = [x.copy() for x in weights]
    first = [np.zeros_like(x) for x in weights]
    second = [np.zeros_like(x) for x in weights]
    for t, (chosen, step_grads) in enumerate(zip(schedule, steps), start=1):
        alpha = f32(1e-3) * np.sqrt(f32(1) - np.power(f32(0.999), f32(t))) / (
            f32(1) - np.power(f32(0.9), f32(t)))
        for i, g in zip(chosen, step_grads):
            if name == "Adam":
                first[i] = first[i] + (g - first[i]) * f32(1 - 0.9)
                second[i] = second[i] + (np.square(g) - second[i]) * f32(1 - 0.999)
                w[i] = w[i] - (first[i] * alpha) / (np.sqrt(second[i]) + f32(1e-7))
            else:
                first[i] = f32(0.9) * first[i] + f32(1 - 0.9) * np.square(g)
                w[i] = w[i] - (f32(1e-3) * g) / np.sqrt(first[i] + f32(1e-7))
    for variable, expected in zip(variables, w):
        np.testing.assert_array_equal(variable.numpy(), expected)
    per_variable = 2 if name == "Adam" else 1
    slots = opt.variables[2:]
    for i in range(6):
        if name == "Adam":
            np.testing.assert_array_equal(slots[per_variable * i].numpy(), first[i])
            np.testing.assert_array_equal(slots[per_variable * i + 1].numpy(), second[i])
        else:
            np.testing.assert_array_equal(slots[i].numpy(), first[i])
