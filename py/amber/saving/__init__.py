"""amber.saving: mirrors keras.saving."""

from amber.saving.object_registration import (  # noqa: F401
    CustomObjectScope,
    custom_object_scope,
    get_custom_objects,
    get_registered_name,
    get_registered_object,
    register_keras_serializable,
)
from amber.saving.serialization_lib import (  # noqa: F401
    deserialize_keras_object,
    serialize_keras_object,
)
from amber.saving.saving_api import (  # noqa: F401
    load_model,
    load_weights,
    model_from_config,
    model_from_json,
    save_model,
    save_weights,
)
from amber.saving.safetensors_io import load_safetensors, save_safetensors  # noqa: F401
from amber.saving.checkpoint import Checkpoint, CheckpointReader, load_checkpoint  # noqa: F401
from amber.saving.cloning import clone_model  # noqa: F401,E402

__all__ = [
    "Checkpoint",
    "CheckpointReader",
    "CustomObjectScope",
    "clone_model",
    "custom_object_scope",
    "deserialize_keras_object",
    "get_custom_objects",
    "get_registered_name",
    "get_registered_object",
    "load_checkpoint",
    "load_model",
    "load_safetensors",
    "load_weights",
    "model_from_config",
    "model_from_json",
    "register_keras_serializable",
    "save_model",
    "save_safetensors",
    "save_weights",
    "serialize_keras_object",
]
