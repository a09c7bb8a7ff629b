"""The one source of randomness: a seeded numpy Generator shared by initializers, dropout and
shuffling, so ``set_seed`` makes a whole run reproducible."""

import numpy as np

_generator = np.random.default_rng()


def set_seed(seed):
    """Reseed the global generator (also ``amber.utils.set_random_seed``)."""
    global _generator
    _generator = np.random.default_rng(seed)


def generator(seed=None):
    """The global generator, or a fresh one for an explicit integer seed (so a seeded
    initializer gives the same values every time it is called)."""
    if seed is None:
        return _generator
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def _floatx(dtype):
    from amber.backend.config import standardize_dtype

    return standardize_dtype(dtype)


def normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    values = generator(seed).normal(mean, stddev, size=tuple(shape))
    return values.astype(_floatx(dtype))


def uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
    values = generator(seed).uniform(minval, maxval, size=tuple(shape))
    return values.astype(_floatx(dtype))


def truncated_normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    """Normal samples redrawn until they fall within two standard deviations of the mean."""
    rng = generator(seed)
    shape = tuple(shape)
    values = rng.normal(size=shape)
    outside = np.abs(values) > 2.0
    while outside.any():
        values[outside] = rng.normal(size=int(outside.sum()))
        outside = np.abs(values) > 2.0
    return (values * stddev + mean).astype(_floatx(dtype))


def randint(shape, minval, maxval, dtype="int32", seed=None):
    return generator(seed).integers(minval, maxval, size=tuple(shape)).astype(dtype)


def shuffle(x, axis=0, seed=None):
    return generator(seed).permutation(np.asarray(x), axis=axis)


def dropout(inputs, rate, noise_shape=None, seed=None):
    """Inverted dropout mask applied to ``inputs`` (kept values scaled by ``1 / (1 - rate)``),
    built from ops so it is differentiable."""
    from amber import ops

    shape = np.shape(inputs) if noise_shape is None else tuple(noise_shape)
    keep = generator(seed).random(size=shape) >= rate
    dtype = np.asarray(ops.convert_to_numpy(inputs)).dtype
    mask = keep.astype(dtype) / np.asarray(1.0 - rate, dtype)
    return ops.multiply(inputs, mask)
