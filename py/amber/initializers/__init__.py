"""amber.initializers: mirrors keras.initializers.

An initializer is a callable ``init(shape, dtype=None) -> np.ndarray`` with Keras's
``get_config`` keys. Randomness comes from ``amber.backend.random``: an integer ``seed``
gives the same values on every call (as in Keras); ``seed=None`` draws from the global
generator, so ``set_seed`` makes runs reproducible.
"""

import math

import numpy as np

from amber._object_namespace import deserialize_object, resolve_identifier, serialize_object
from amber.backend import random
from amber.backend.config import standardize_dtype


class Initializer:
    def __call__(self, shape, dtype=None):
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(shape, dtype)")

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def clone(self):
        return self.__class__.from_config(self.get_config())


# ---------------------------------------------------------------- constants


class Constant(Initializer):
    def __init__(self, value=0.0):
        self.value = value

    def __call__(self, shape, dtype=None):
        dtype = standardize_dtype(dtype)
        return np.full(tuple(shape), np.asarray(self.value), dtype=dtype)

    def get_config(self):
        from amber.saving import serialize_keras_object

        return {"value": serialize_keras_object(self.value)}

    @classmethod
    def from_config(cls, config):
        from amber.saving import deserialize_keras_object

        return cls(deserialize_keras_object(config["value"]))


class Zeros(Initializer):
    def __call__(self, shape, dtype=None):
        return np.zeros(tuple(shape), dtype=standardize_dtype(dtype))


class Ones(Initializer):
    def __call__(self, shape, dtype=None):
        return np.ones(tuple(shape), dtype=standardize_dtype(dtype))


class Identity(Initializer):
    def __init__(self, gain=1.0):
        self.gain = gain

    def __call__(self, shape, dtype=None):
        if len(shape) != 2:
            raise ValueError(f"Identity initializer needs a 2-D shape, got shape={tuple(shape)}")
        dtype = standardize_dtype(dtype)
        return (self.gain * np.eye(*shape)).astype(dtype)

    def get_config(self):
        # Keras writes {} (it does not save the gain); a non-default gain is kept so it
        # survives a round trip.
        return {} if self.gain == 1.0 else {"gain": self.gain}


# ---------------------------------------------------------------- random


class RandomInitializer(Initializer):
    def __init__(self, seed=None):
        if isinstance(seed, bool) or not (seed is None or isinstance(seed, (int, np.integer))):
            raise ValueError(f"seed must be an integer or None, got seed={seed!r}")
        self.seed = None if seed is None else int(seed)

    def get_config(self):
        return {"seed": self.seed}


class RandomNormal(RandomInitializer):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        self.mean = mean
        self.stddev = stddev
        super().__init__(seed)

    def __call__(self, shape, dtype=None):
        return random.normal(shape, self.mean, self.stddev, dtype=dtype, seed=self.seed)

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "stddev": self.stddev}


class TruncatedNormal(RandomInitializer):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        self.mean = mean
        self.stddev = stddev
        super().__init__(seed)

    def __call__(self, shape, dtype=None):
        return random.truncated_normal(shape, self.mean, self.stddev, dtype=dtype, seed=self.seed)

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "stddev": self.stddev}


class RandomUniform(RandomInitializer):
    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        self.minval = minval
        self.maxval = maxval
        super().__init__(seed)

    def __call__(self, shape, dtype=None):
        return random.uniform(shape, self.minval, self.maxval, dtype=dtype, seed=self.seed)

    def get_config(self):
        return {**super().get_config(), "minval": self.minval, "maxval": self.maxval}


def compute_fans(shape, input_axes=None, output_axes=None):
    """(fan_in, fan_out) as Keras computes them: explicit axes if given, else the last two
    axes times the receptive field (the product of the leading axes)."""
    shape = tuple(shape)
    if input_axes is not None and output_axes is not None:
        return int(np.prod([shape[a] for a in input_axes])), int(np.prod([shape[a] for a in output_axes]))
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = int(np.prod(shape[:-2]))
    return shape[-2] * receptive, shape[-1] * receptive


# stddev of a standard normal truncated to [-2, 2]: dividing by it restores the variance
_TRUNCATED_STDDEV = 0.87962566103423978


class VarianceScaling(RandomInitializer):
    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None,
                 input_axes=None, output_axes=None):
        if scale <= 0.0:
            raise ValueError(f"VarianceScaling: scale must be positive, got scale={scale}")
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError(f"VarianceScaling: mode must be fan_in, fan_out or fan_avg, got {mode!r}")
        distribution = distribution.lower()
        if distribution == "normal":
            distribution = "truncated_normal"
        if distribution not in ("uniform", "truncated_normal", "untruncated_normal"):
            raise ValueError(
                "VarianceScaling: distribution must be uniform, truncated_normal or "
                f"untruncated_normal, got {distribution!r}")
        self.scale = scale
        self.mode = mode
        self.distribution = distribution
        self.input_axes = input_axes
        self.output_axes = output_axes
        super().__init__(seed)

    def __call__(self, shape, dtype=None):
        fan_in, fan_out = compute_fans(shape, self.input_axes, self.output_axes)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        variance = self.scale / max(1.0, fan)
        if self.distribution == "truncated_normal":
            return random.truncated_normal(shape, 0.0, math.sqrt(variance) / _TRUNCATED_STDDEV,
                                           dtype=dtype, seed=self.seed)
        if self.distribution == "untruncated_normal":
            return random.normal(shape, 0.0, math.sqrt(variance), dtype=dtype, seed=self.seed)
        limit = math.sqrt(3.0 * variance)
        return random.uniform(shape, -limit, limit, dtype=dtype, seed=self.seed)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "mode": self.mode,
                "distribution": self.distribution, "input_axes": self.input_axes,
                "output_axes": self.output_axes}


class _FixedVarianceScaling(VarianceScaling):
    """The named schemes: fixed scale, mode and distribution; config has only seed and axes."""

    _SCHEME = (1.0, "fan_in", "truncated_normal")

    def __init__(self, seed=None, input_axes=None, output_axes=None):
        scale, mode, distribution = self._SCHEME
        super().__init__(scale, mode, distribution, seed, input_axes, output_axes)

    def get_config(self):
        return {"seed": self.seed, "input_axes": self.input_axes, "output_axes": self.output_axes}


class GlorotUniform(_FixedVarianceScaling):
    _SCHEME = (1.0, "fan_avg", "uniform")


class GlorotNormal(_FixedVarianceScaling):
    _SCHEME = (1.0, "fan_avg", "truncated_normal")


class LecunUniform(_FixedVarianceScaling):
    _SCHEME = (1.0, "fan_in", "uniform")


class LecunNormal(_FixedVarianceScaling):
    _SCHEME = (1.0, "fan_in", "truncated_normal")


class HeUniform(_FixedVarianceScaling):
    _SCHEME = (2.0, "fan_in", "uniform")


class HeNormal(_FixedVarianceScaling):
    _SCHEME = (2.0, "fan_in", "truncated_normal")


class Orthogonal(RandomInitializer):
    def __init__(self, gain=1.0, seed=None):
        self.gain = gain
        super().__init__(seed)

    def __call__(self, shape, dtype=None):
        shape = tuple(shape)
        if len(shape) < 2:
            raise ValueError(f"Orthogonal initializer needs at least 2 dimensions, got shape={shape}")
        rows = int(np.prod(shape[:-1]))
        cols = shape[-1]
        a = random.normal((max(rows, cols), min(rows, cols)), dtype="float64", seed=self.seed)
        q, r = np.linalg.qr(a)
        q = q * np.sign(np.diag(r))  # makes the decomposition unique (uniformly distributed q)
        if rows < cols:
            q = q.T
        return (self.gain * q.reshape(shape)).astype(standardize_dtype(dtype))

    def get_config(self):
        return {**super().get_config(), "gain": self.gain}


# ---------------------------------------------------------------- lookup

_CLASSES = (Constant, Zeros, Ones, Identity, RandomNormal, RandomUniform, TruncatedNormal,
            VarianceScaling, GlorotUniform, GlorotNormal, LecunUniform, LecunNormal, HeUniform,
            HeNormal, Orthogonal)


def _snake(name):
    out = []
    for i, c in enumerate(name):
        if c.isupper() and i and not name[i - 1].isupper():
            out.append("_")
        out.append(c.lower())
    return "".join(out)


_BY_NAME = {cls.__name__: cls for cls in _CLASSES}
_BY_NAME.update({_snake(cls.__name__): cls for cls in _CLASSES})
_BY_NAME.update({"IdentityInitializer": Identity, "OrthogonalInitializer": Orthogonal,
                 "normal": RandomNormal, "uniform": RandomUniform, "one": Ones, "zero": Zeros})

# snake_case aliases, as Keras exports them (classes, so they serialize as the class)
constant, zeros, ones, identity = Constant, Zeros, Ones, Identity
random_normal, random_uniform, truncated_normal = RandomNormal, RandomUniform, TruncatedNormal
variance_scaling, orthogonal = VarianceScaling, Orthogonal
glorot_uniform, glorot_normal = GlorotUniform, GlorotNormal
lecun_uniform, lecun_normal = LecunUniform, LecunNormal
he_uniform, he_normal = HeUniform, HeNormal
IdentityInitializer, OrthogonalInitializer = Identity, Orthogonal

__all__ = sorted(set(_BY_NAME) | {"Initializer"}) + ["deserialize", "get", "serialize"]


def serialize(initializer):
    return serialize_object(initializer)


def deserialize(config, custom_objects=None):
    return deserialize_object(config, custom_objects, _BY_NAME)


def _array_initializer(value):
    value = np.asarray(value)

    def initialize(shape, dtype=None):
        if tuple(shape) != value.shape:
            raise ValueError(f"Expected shape {value.shape} for an array initializer, got {tuple(shape)}")
        return value.astype(standardize_dtype(dtype))

    return initialize


def get(identifier):
    """An initializer from None, a name (``"glorot_uniform"``), a config dict, an array
    (used as the value), a class, or a callable."""
    if isinstance(identifier, (np.ndarray, np.generic)) or hasattr(identifier, "numpy") and not callable(identifier):
        return _array_initializer(np.asarray(identifier))
    return resolve_identifier(identifier, "initializer", _from_name, deserialize)


def _from_name(name):
    # Names not built in may still be registered custom initializers.
    cls = _BY_NAME.get(name)
    return cls() if cls is not None else deserialize({"class_name": name, "config": {}})
