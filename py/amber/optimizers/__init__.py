"""amber.optimizers: mirrors keras.optimizers."""

from amber.optimizers import schedules
from amber.optimizers.adadelta import Adadelta
from amber.optimizers.adagrad import Adagrad
from amber.optimizers.adam import Adam, AdamW
from amber.optimizers.adamax import Adamax
from amber.optimizers.base_optimizer import Optimizer
from amber.optimizers.ftrl import Ftrl
from amber.optimizers.lion import Lion
from amber.optimizers.nadam import Nadam
from amber.optimizers.rmsprop import RMSprop
from amber.optimizers.sgd import SGD

__all__ = [
    "Optimizer",
    "SGD",
    "Adam",
    "AdamW",
    "RMSprop",
    "Adagrad",
    "Adadelta",
    "Adamax",
    "Nadam",
    "Lion",
    "Ftrl",
    "get",
    "serialize",
    "deserialize",
]

_BUILT_INS = {
    cls.__name__.lower(): cls
    for cls in (Optimizer, SGD, Adam, AdamW, RMSprop, Adagrad, Adadelta, Adamax, Nadam, Lion, Ftrl)
}


def serialize(optimizer):
    """The Keras object dict of `optimizer` (as written in a compile config)."""
    if optimizer is None:
        return None
    if not isinstance(optimizer, Optimizer):
        raise ValueError(f"Could not serialize optimizer {optimizer!r}: not an Optimizer.")
    try:
        from amber.saving import serialize_keras_object
    except ImportError:
        serialize_keras_object = None
    if serialize_keras_object is not None:
        return serialize_keras_object(optimizer)
    return {
        "module": "keras.optimizers",
        "class_name": type(optimizer).__name__,
        "config": optimizer.get_config(),
        "registered_name": None,
    }


def deserialize(config, custom_objects=None):
    """Rebuild an optimizer from its Keras object dict or a bare `{"class_name", "config"}`."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"Could not interpret optimizer config: {config!r}")
    class_name = config["class_name"]
    custom = (custom_objects or {}).get(class_name)
    cls = custom or _BUILT_INS.get(str(class_name).lower())
    if cls is None or config.get("registered_name") not in (None, class_name):
        try:
            from amber.saving import deserialize_keras_object
        except ImportError:
            deserialize_keras_object = None
        if deserialize_keras_object is not None:
            return deserialize_keras_object(config, custom_objects=custom_objects)
        raise ValueError(f"Unknown optimizer: {class_name!r}")
    return cls.from_config(dict(config.get("config") or {}))


def get(identifier):
    """An Optimizer from None, a name ("adam"), a config dict or an Optimizer instance."""
    if identifier is None:
        return None
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, dict):
        obj = deserialize(identifier)
    elif isinstance(identifier, str):
        cls = _BUILT_INS.get(identifier.lower())
        if cls is None or cls is Optimizer:
            raise ValueError(f"Could not interpret optimizer identifier: {identifier!r}")
        obj = cls()
    else:
        obj = identifier
    if isinstance(obj, Optimizer):
        return obj
    raise ValueError(f"Could not interpret optimizer identifier: {identifier!r}")
