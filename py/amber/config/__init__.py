"""amber.config: mirrors keras.config.

Global settings. Nothing here is a model component, so no config file can name any of it.
"""


from amber.backend.config import (  # noqa: F401
    backend,
    epsilon,
    floatx,
    image_data_format,
    set_epsilon,
    set_floatx,
    set_image_data_format,
)

_unsafe = {"enabled": False}


def enable_unsafe_deserialization():
    """Allow marshaled Python (Lambda bytecode) in every later load of this process.

    Only the program may call this; the loaders never do, whatever a file says.
    """
    _unsafe["enabled"] = True


def _unsafe_deserialization_enabled():
    return _unsafe["enabled"]


__all__ = [
    "backend",
    "epsilon",
    "floatx",
    "image_data_format",
    "set_epsilon",
    "set_floatx",
    "set_image_data_format",
    "enable_unsafe_deserialization",
]
