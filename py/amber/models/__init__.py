"""amber.models: mirrors keras.models."""

from amber.models.functional import Functional  # noqa: F401
from amber.models.model import Model  # noqa: F401
from amber.models.sequential import Sequential  # noqa: F401


# The saving part owns these; they are looked up when called so either side can land first.
def load_model(filepath, custom_objects=None, compile=True, safe_mode=True, **kwargs):
    from amber import saving

    return saving.load_model(filepath, custom_objects=custom_objects, compile=compile, safe_mode=safe_mode,
                             **kwargs)


def save_model(model, filepath, overwrite=True, zipped=None, **kwargs):
    from amber import saving

    return saving.save_model(model, filepath, overwrite=overwrite, zipped=zipped, **kwargs)


def model_from_json(json_string, custom_objects=None):
    from amber import saving

    return saving.model_from_json(json_string, custom_objects=custom_objects)


def clone_model(model, input_tensors=None, clone_function=None, call_function=None, recursive=False,
                **kwargs):
    from amber import saving

    return saving.clone_model(model, input_tensors=input_tensors, clone_function=clone_function,
                              call_function=call_function, recursive=recursive, **kwargs)


__all__ = ["Functional", "Model", "Sequential", "clone_model", "load_model", "model_from_json", "save_model"]
