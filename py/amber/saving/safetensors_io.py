"""``.safetensors`` files: plain tensors (``load_safetensors``/``save_safetensors``) and model
weights, where each tensor is named by its variable's path (``dense/kernel``)."""

import os

import numpy as np

from amber.saving import h5_io

FORMAT_METADATA = {"format": "amber", "layout": "variable_paths"}


def load_safetensors(path):
    """``{name: array}``: read-only views of the mapped file."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ValueError(f"File not found: {path}")
    tensors, _ = h5_io.safetensors_load(path)
    return dict(tensors)


def load_safetensors_metadata(path):
    _, metadata = h5_io.safetensors_load(os.fspath(path))
    return dict(metadata or {})


def save_safetensors(tensors, path, metadata=None):
    if not isinstance(tensors, dict):
        raise TypeError(f"tensors must be a dict of name -> array, got {type(tensors).__name__}")
    arrays = {}
    for name, value in tensors.items():
        if not isinstance(name, str):
            raise TypeError(f"tensor names must be strings, got {name!r}")
        arrays[name] = np.asarray(value, order="C")
    if metadata is not None:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise TypeError("safetensors metadata must map strings to strings")
        metadata = dict(metadata)
    h5_io.safetensors_save(os.fspath(path), arrays, metadata)


def _named_weights(model):
    named = {}
    for variable in model.weights:
        name = str(variable.path)
        if name in named and named[name] is not variable:
            raise ValueError(f"Two variables of the model share the path {name!r}; cannot name tensors by path")
        named[name] = variable
    return named


def save_model_weights(model, path):
    named = _named_weights(model)
    save_safetensors({name: np.asarray(v) for name, v in named.items()}, path, metadata=FORMAT_METADATA)


def load_model_weights(model, path, skip_mismatch=False):
    tensors = load_safetensors(path)
    named = _named_weights(model)
    problems = []
    for name, variable in named.items():
        array = tensors.get(name)
        if array is None:
            problems.append(f"variable '{name}' is missing from the file")
        elif tuple(array.shape) != tuple(variable.shape):
            problems.append(f"variable '{name}' has shape {tuple(variable.shape)} but the file stores "
                            f"{tuple(array.shape)}")
    extra = sorted(set(tensors) - set(named))
    if extra:
        problems.append(f"the file has tensors the model lacks: {', '.join(extra[:10])}")
    if problems and not skip_mismatch:
        raise ValueError(f"{path}: " + "; ".join(problems))
    for name, variable in named.items():
        array = tensors.get(name)
        if array is None or tuple(array.shape) != tuple(variable.shape):
            continue
        if array.dtype == np.dtype(variable.dtype):
            variable._adopt(array)
        else:
            variable.assign(array.astype(variable.dtype))
