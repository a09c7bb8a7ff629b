"""The random source of the noise layers: a private generator for a seeded layer (so its
draws repeat run to run), the global one otherwise."""

import numpy as np


def layer_generator(seed):
    if seed is not None:
        return np.random.default_rng(seed)
    return None


def draw(layer):
    if layer._generator is not None:
        return layer._generator
    from amber.backend import random

    return random.generator()


def check_rate(rate):
    if not isinstance(rate, (int, float, np.floating)) or not 0 <= rate <= 1:
        raise ValueError(f"Invalid value received for argument `rate`. Expected a float value between 0 and 1. "
                         f"Received: rate={rate}")
    return float(rate) if not isinstance(rate, int) else rate


def dtype_of(inputs):
    return np.dtype(getattr(inputs, "dtype", "float32"))
