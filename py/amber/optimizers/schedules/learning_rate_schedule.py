"""Learning-rate schedules: step -> learning rate, computed in float32 as Keras does.

A schedule given to an optimizer is evaluated at the optimizer's iteration count before each
update; in an optimizer config it is written as a Keras object dict
(`{"module": "keras.optimizers.schedules", "class_name": ..., "config": ...}`).
"""

import math

import numpy as np

from amber._object_namespace import serialize_object


def _f32(x):
    return np.float32(np.asarray(x.numpy() if hasattr(x, "numpy") else x))


class LearningRateSchedule:
    """Base class: subclasses implement `__call__(step)` and `get_config()`."""

    def __call__(self, step):
        raise NotImplementedError(
            f"Learning rate schedule '{type(self).__name__}' must override `__call__(self, step)`."
        )

    def get_config(self):
        raise NotImplementedError(
            f"Learning rate schedule '{type(self).__name__}' must override `get_config()` in "
            "order to be serializable."
        )

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _check_decay_steps(value, arg="decay_steps"):
    if value <= 0:
        raise ValueError(f"Argument `{arg}` must be > 0. Received: {arg}={value}")


class _RateDecay(LearningRateSchedule):
    """What ExponentialDecay and InverseTimeDecay share: the same arguments and config, and
    decay driven by `step / decay_steps` (floored when `staircase`); only the formula differs."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase, name):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.staircase = staircase
        self.name = name
        _check_decay_steps(decay_steps)

    def _progress(self, step):
        p = _f32(step) / _f32(self.decay_steps)
        return np.floor(p) if self.staircase else p

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "staircase": self.staircase,
            "name": self.name,
        }


class ExponentialDecay(_RateDecay):
    """`initial_learning_rate * decay_rate ** (step / decay_steps)` (floored if staircase)."""

    def __init__(
        self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
        name="ExponentialDecay",
    ):
        super().__init__(initial_learning_rate, decay_steps, decay_rate, staircase, name)

    def __call__(self, step):
        return _f32(self.initial_learning_rate) * np.power(_f32(self.decay_rate), self._progress(step))


class PiecewiseConstantDecay(LearningRateSchedule):
    """`values[i]` while `boundaries[i-1] < step <= boundaries[i]`."""

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        if len(boundaries) != len(values) - 1:
            raise ValueError(
                "The length of boundaries should be 1 less than the length of values. "
                f"Received: boundaries={boundaries} of length {len(boundaries)}, and "
                f"values={values} of length {len(values)}."
            )
        self.boundaries = boundaries
        self.values = values
        self.name = name

    def __call__(self, step):
        step = float(np.asarray(step.numpy() if hasattr(step, "numpy") else step))
        dtype = np.asarray(self.values[0]).dtype
        if dtype == np.float64:
            dtype = np.dtype("float32")
        for boundary, value in zip(self.boundaries, self.values):
            if step <= boundary:
                return np.asarray(value, dtype=dtype)
        return np.asarray(self.values[-1], dtype=dtype)

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class PolynomialDecay(LearningRateSchedule):
    """Polynomial interpolation from the initial to the end rate over `decay_steps`."""

    def __init__(
        self, initial_learning_rate, decay_steps, end_learning_rate=0.0001, power=1.0,
        cycle=False, name="PolynomialDecay",
    ):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.end_learning_rate = end_learning_rate
        self.power = power
        self.cycle = cycle
        self.name = name
        _check_decay_steps(decay_steps)

    def __call__(self, step):
        initial = _f32(self.initial_learning_rate)
        end = _f32(self.end_learning_rate)
        step = _f32(step)
        decay_steps = _f32(self.decay_steps)
        if self.cycle:
            # The first multiple of decay_steps not below step (1 at step 0).
            multiplier = _f32(1.0) if step == 0 else np.ceil(step / decay_steps)
            decay_steps = decay_steps * multiplier
        else:
            step = np.minimum(step, decay_steps)
        p = step / decay_steps
        return (initial - end) * np.power(_f32(1) - p, _f32(self.power)) + end

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "end_learning_rate": self.end_learning_rate,
            "power": self.power,
            "cycle": self.cycle,
            "name": self.name,
        }


class InverseTimeDecay(_RateDecay):
    """`initial_learning_rate / (1 + decay_rate * step / decay_steps)` (floored if staircase)."""

    def __init__(
        self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
        name="InverseTimeDecay",
    ):
        super().__init__(initial_learning_rate, decay_steps, decay_rate, staircase, name)

    def __call__(self, step):
        return _f32(self.initial_learning_rate) / (_f32(1) + _f32(self.decay_rate) * self._progress(step))


class CosineDecay(LearningRateSchedule):
    """Cosine decay to `alpha * rate`, optionally after a linear warmup to `warmup_target`."""

    def __init__(
        self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay",
        warmup_target=None, warmup_steps=0,
    ):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.alpha = alpha
        self.name = name
        self.warmup_steps = warmup_steps
        self.warmup_target = warmup_target
        _check_decay_steps(decay_steps)

    def _decay(self, step, decay_steps, decay_from):
        fraction = step / decay_steps
        cosine = _f32(0.5) * (_f32(1) + np.cos(_f32(math.pi) * fraction))
        alpha = _f32(self.alpha)
        return decay_from * ((_f32(1) - alpha) * cosine + alpha)

    def __call__(self, step):
        initial = _f32(self.initial_learning_rate)
        decay_steps = _f32(self.decay_steps)
        step = _f32(step)
        if self.warmup_target is None:
            return self._decay(np.minimum(step, decay_steps), decay_steps, initial)
        target = _f32(self.warmup_target)
        warmup_steps = _f32(self.warmup_steps)
        step = np.minimum(step, decay_steps + warmup_steps)
        if step < warmup_steps:
            return (target - initial) * (step / warmup_steps) + initial
        return self._decay(step - warmup_steps, decay_steps, target)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "alpha": self.alpha,
            "name": self.name,
            "warmup_target": self.warmup_target,
            "warmup_steps": self.warmup_steps,
        }


class CosineDecayRestarts(LearningRateSchedule):
    """Cosine decay with warm restarts (SGDR): periods grow by t_mul, peaks shrink by m_mul."""

    def __init__(
        self, initial_learning_rate, first_decay_steps, t_mul=2.0, m_mul=1.0, alpha=0.0,
        name="SGDRDecay",
    ):
        self.initial_learning_rate = initial_learning_rate
        self.first_decay_steps = first_decay_steps
        self._t_mul = t_mul
        self._m_mul = m_mul
        self.alpha = alpha
        self.name = name
        _check_decay_steps(first_decay_steps, "first_decay_steps")

    def __call__(self, step):
        t_mul = _f32(self._t_mul)
        fraction = _f32(step) / _f32(self.first_decay_steps)
        if t_mul == 1.0:
            restart = np.floor(fraction)
            fraction = fraction - restart
        else:
            restart = np.floor(np.log(_f32(1) - fraction * (_f32(1) - t_mul)) / np.log(t_mul))
            done = (_f32(1) - np.power(t_mul, restart)) / (_f32(1) - t_mul)
            fraction = (fraction - done) / np.power(t_mul, restart)
        m_fac = np.power(_f32(self._m_mul), restart)
        cosine = _f32(0.5) * m_fac * (_f32(1) + np.cos(_f32(math.pi) * fraction))
        alpha = _f32(self.alpha)
        return _f32(self.initial_learning_rate) * ((_f32(1) - alpha) * cosine + alpha)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "first_decay_steps": self.first_decay_steps,
            "t_mul": self._t_mul,
            "m_mul": self._m_mul,
            "alpha": self.alpha,
            "name": self.name,
        }


SCHEDULES = {
    cls.__name__: cls
    for cls in (
        ExponentialDecay,
        PiecewiseConstantDecay,
        PolynomialDecay,
        InverseTimeDecay,
        CosineDecay,
        CosineDecayRestarts,
    )
}

def serialize(schedule):
    """A schedule as Keras writes it inside an optimizer config."""
    return serialize_object(schedule)


def deserialize(config, custom_objects=None):
    """Rebuild a schedule from its Keras object dict (or bare class-name dict)."""
    if isinstance(config, LearningRateSchedule):
        return config
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"Could not interpret learning rate schedule config: {config!r}")
    class_name = config["class_name"]
    cls = (custom_objects or {}).get(class_name) or SCHEDULES.get(class_name)
    if cls is None:
        try:
            from amber.saving import deserialize_keras_object
        except ImportError:
            deserialize_keras_object = None
        if deserialize_keras_object is not None:
            return deserialize_keras_object(config, custom_objects=custom_objects)
        raise ValueError(f"Unknown learning rate schedule: {class_name!r}")
    return cls.from_config(dict(config.get("config", {})))
