"""The public entry points: pick the format from the file name and hand over to it."""

import os

from amber.saving import json_safety
from amber.backend.variable import deferred_initialization

_H5_EXTENSIONS = (".h5", ".hdf5")


def _path(filepath):
    if not isinstance(filepath, (str, os.PathLike)):
        raise TypeError(f"Expected a file path, got {type(filepath).__name__}")
    return os.fspath(filepath)


def _check_overwrite(path, overwrite):
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{path} exists and overwrite=False")


def save_model(model, filepath, overwrite=True, zipped=None, **kwargs):
    """Save a whole model: ``.keras`` (zip, or a directory with ``zipped=False``) or legacy
    ``.h5``."""
    path = _path(filepath)
    unknown = set(kwargs) - {"include_optimizer", "save_format"}
    if unknown:
        raise TypeError(f"save_model() got unexpected arguments: {sorted(unknown)}")
    _check_overwrite(path, overwrite)
    if path.endswith(_H5_EXTENSIONS):
        from amber.saving import legacy_h5

        legacy_h5.save_model(model, path, include_optimizer=kwargs.get("include_optimizer", True))
        return
    from amber.saving import keras_file

    if path.endswith(".keras"):
        keras_file.save_model(model, path, zipped=True if zipped is None else zipped)
        return
    if zipped is False or (zipped is None and not os.path.splitext(path)[1]):
        keras_file.save_model(model, path, zipped=False)
        return
    raise ValueError(
        f"Invalid filepath extension for saving: {path!r}. Use '.keras' (the Keras 3 format), "
        "'.h5' (legacy), or zipped=False for a directory."
    )


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True, mmap=True):
    """Load a whole model saved by Keras 3 or amber (``.keras`` file or directory) or a legacy
    ``.h5`` file (Keras 3 or Keras 2). ``mmap=False`` copies the weights instead of mapping
    them."""
    path = _path(filepath)
    if not os.path.exists(path):
        raise ValueError(f"File not found: filepath={path}. Please ensure the file is an accessible '.keras' "
                         "zip file, a model directory or a legacy '.h5' file.")
    if path.endswith(_H5_EXTENSIONS):
        from amber.saving import legacy_h5

        with deferred_initialization():
            return legacy_h5.load_model(path, custom_objects=custom_objects, compile=compile,
                                        safe_mode=safe_mode, mmap=mmap)
    if path.endswith(".keras") or os.path.isdir(path):
        from amber.saving import keras_file

        with deferred_initialization():
            return keras_file.load_model(path, custom_objects=custom_objects, compile=compile,
                                         safe_mode=safe_mode, mmap=mmap)
    raise ValueError(
        f"File format not supported: filepath={path}. amber loads '.keras' files, model directories "
        "and legacy '.h5' files."
    )


def save_weights(model, filepath, overwrite=True, max_shard_size=None, **kwargs):
    path = _path(filepath)
    _check_overwrite(path, overwrite)
    if max_shard_size is not None and not path.endswith(".weights.json"):
        raise ValueError(f"Sharded weights (max_shard_size) need a '.weights.json' file name, got {path!r}")
    if path.endswith(".weights.h5"):
        from amber.saving import keras_file

        keras_file.build_weights(model).write(path)
    elif path.endswith(".weights.json"):
        from amber.saving import sharded

        sharded.save_weights(model, path, max_shard_size=max_shard_size)
    elif path.endswith(".safetensors"):
        from amber.saving import safetensors_io

        safetensors_io.save_model_weights(model, path)
    elif path.endswith(_H5_EXTENSIONS):
        from amber.saving import legacy_h5

        legacy_h5.save_weights(model, path)
    elif not os.path.splitext(os.path.basename(path))[1]:
        from amber.saving import checkpoint

        return checkpoint.save_model_checkpoint(model, path)
    else:
        raise ValueError(
            f"Invalid filepath extension for saving weights: {path!r}. Use '.weights.h5', "
            "'.weights.json' (sharded), '.safetensors', '.h5' (legacy) or no extension (checkpoint)."
        )


def load_weights(model, filepath, skip_mismatch=False, by_name=False, mmap=True, **kwargs):
    path = _path(filepath)
    if path.endswith(".weights.h5") or path.endswith(".keras"):
        from amber.saving import h5_io, keras_file

        if path.endswith(".keras"):
            reader = keras_file.open_source(path).weights()
        else:
            if not os.path.exists(path):
                raise ValueError(f"File not found: {path}")
            reader = h5_io.H5Reader.open(path)
        keras_file.load_weights_into(model, reader, copy=not mmap, strict=True, skip_mismatch=skip_mismatch)
        return None
    if path.endswith(".weights.json"):
        from amber.saving import sharded

        return sharded.load_weights(model, path, skip_mismatch=skip_mismatch)
    if path.endswith(".safetensors"):
        from amber.saving import safetensors_io

        return safetensors_io.load_model_weights(model, path, skip_mismatch=skip_mismatch)
    if path.endswith(_H5_EXTENSIONS):
        from amber.saving import legacy_h5

        return legacy_h5.load_weights(model, path, skip_mismatch=skip_mismatch, by_name=by_name)
    if not os.path.splitext(os.path.basename(path))[1]:
        from amber.saving import checkpoint

        return checkpoint.load_model_checkpoint(model, path)
    raise ValueError(f"File format not supported for loading weights: {path!r}")


def model_from_json(json_string, custom_objects=None, safe_mode=True):
    """A model (uncompiled, fresh weights) from ``model.to_json()`` text."""
    from amber.saving import keras_file

    from amber.saving import keras2_config

    config = keras2_config.upgrade(json_safety.loads(json_string, label="model JSON"), label="model JSON")
    return keras_file.model_from_config(config, custom_objects=custom_objects, compile=False,
                                        safe_mode=safe_mode, label="model JSON")


def model_from_config(config, custom_objects=None, safe_mode=True):
    from amber.saving import keras_file

    return keras_file.model_from_config(config, custom_objects=custom_objects, compile=False,
                                        safe_mode=safe_mode, label="model config")
