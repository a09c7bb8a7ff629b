"""Legacy HDF5 files: whole models (``model.save("m.h5")``) and weights (``save_weights`` to a
plain ``.h5``), as written by Keras 3 and by Keras 2 (tf_keras).

Layout: root attributes ``keras_version``, ``backend``, ``model_config`` and
``training_config`` (JSON); group ``model_weights`` with attribute ``layer_names`` and one
group per layer whose attribute ``weight_names`` orders its datasets (variable paths:
``dense/kernel`` in Keras 3, ``dense/kernel:0`` in Keras 2); group ``optimizer_weights``
ordered the same way. Weights-only files hold the per-layer groups at the root.
Layer weights are in the legacy order: trainable, then non-trainable.
"""

import json
import os
import warnings

import numpy as np

from amber.saving import h5_io
from amber.saving import json_safety
from amber.saving import keras2_config
from amber.saving import keras_file
from amber.saving.json_safety import ConfigError

KERAS_VERSION = keras_file.KERAS_FORMAT_VERSION
BACKEND = "numpy"


# ------------------------------------------------------------------ writing


def _legacy_weights(layer):
    return list(layer.trainable_weights) + list(layer.non_trainable_weights)


def _names_attr(names):
    # h5py writes an empty name list as an empty float array; Keras reads either.
    return list(names) if names else np.zeros((0,), dtype=np.float64)


def _write_layer_weights(builder, root, model):
    prefix = f"{root}/" if root else ""
    layers = list(model.layers)
    target = root or "/"
    builder.set_attr(target, "layer_names", _names_attr([layer.name for layer in layers]))
    builder.set_attr(target, "backend", BACKEND)
    builder.set_attr(target, "keras_version", KERAS_VERSION)
    for layer in sorted(layers, key=lambda l: l.name):
        _write_subset(builder, f"{prefix}{layer.name}", _legacy_weights(layer))
    layer_ids = {id(w) for layer in layers for w in layer.weights}
    top_level = [w for w in _legacy_weights(model) if id(w) not in layer_ids]
    _write_subset(builder, f"{prefix}top_level_model_weights", top_level)


def _write_subset(builder, group, variables):
    builder.create_group(group)
    names = [str(v.path) for v in variables]
    builder.set_attr(group, "weight_names", _names_attr(names))
    for name, variable in zip(names, variables):
        builder.create_dataset(f"{group}/{name}", np.asarray(variable))


def _training_config(model):
    get_compile_config = getattr(model, "get_compile_config", None)
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or not callable(get_compile_config):
        return None
    compile_config = get_compile_config()
    if not compile_config:
        return None
    from amber.saving import serialization_lib

    config = {k: v for k, v in serialization_lib.serialize_dict(compile_config).items() if k != "optimizer"}
    config["optimizer_config"] = {"class_name": type(optimizer).__name__, "config": optimizer.get_config()}
    return config


def save_model(model, filepath, include_optimizer=True):
    builder = h5_io.H5Builder()
    config = keras_file.serialize_model(model)
    model_config = {"class_name": config["class_name"], "config": config["config"]}
    builder.set_attr("/", "keras_version", KERAS_VERSION)
    builder.set_attr("/", "backend", BACKEND)
    builder.set_attr("/", "model_config", json.dumps(model_config))
    training_config = _training_config(model) if include_optimizer else None
    if training_config is not None:
        builder.set_attr("/", "training_config", json.dumps(training_config))
    builder.create_group("model_weights")
    _write_layer_weights(builder, "model_weights", model)
    optimizer = getattr(model, "optimizer", None)
    variables = list(getattr(optimizer, "variables", []) or []) if include_optimizer and optimizer else []
    if variables:
        _write_subset(builder, "optimizer_weights", variables)
    builder.write(filepath)


def save_weights(model, filepath):
    builder = h5_io.H5Builder()
    _write_layer_weights(builder, "", model)
    builder.write(filepath)


# ------------------------------------------------------------------ reading


def _attr_text(reader, path, name):
    value = reader.attrs(path).get(name)
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.dtype.kind in "SOU" and value.ndim == 0:
        value = value.item()
        value = value.decode("utf-8") if isinstance(value, bytes) else value
    if not isinstance(value, str):
        raise ConfigError(f"{reader.label}: attribute '{name}' of '{path}' should be a string")
    return value


def _name_list(reader, path, name):
    """A list-of-names attribute, also when Keras split it into ``name0``, ``name1``, ..."""
    attrs = reader.attrs(path)
    if name in attrs:
        return _as_names(reader, path, name, attrs[name])
    names, chunk = [], 0
    while f"{name}{chunk}" in attrs:
        names.extend(_as_names(reader, path, name, attrs[f"{name}{chunk}"]))
        chunk += 1
    return names


def _as_names(reader, path, name, value):
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        items = list(value)
    elif isinstance(value, np.ndarray):
        if value.size == 0:
            return []
        items = value.reshape(-1).tolist()
    else:
        raise ConfigError(f"{reader.label}: attribute '{name}' of '{path or '/'}' is not a list of names")
    out = []
    for item in items:
        if isinstance(item, bytes):
            item = item.decode("utf-8")
        if not isinstance(item, str):
            raise ConfigError(f"{reader.label}: attribute '{name}' of '{path or '/'}' holds a non-string")
        out.append(item)
    return out


def _join(*parts):
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


def _read_subset(reader, group, copy):
    names = _name_list(reader, group, "weight_names")
    values = []
    for name in names:
        dataset = _join(group, name)
        if reader.kind(dataset) != "dataset":
            raise ValueError(f"{reader.label}: weight '{name}' listed in '{group}' is not in the file")
        values.append((name, dataset))
    return values


def _assign(layer_label, variables, entries, reader, copy, skip_mismatch):
    if len(variables) != len(entries):
        message = (
            f"{reader.label}: layer {layer_label} has {len(variables)} weights but the file stores "
            f"{len(entries)} ({', '.join(n for n, _ in entries) or 'none'})"
        )
        if skip_mismatch:
            warnings.warn(message + "; skipped", stacklevel=3)
            return
        raise ValueError(message)
    for variable, (name, dataset) in zip(variables, entries):
        shape = reader.shape(dataset)
        if tuple(shape) != tuple(variable.shape):
            message = (
                f"{reader.label}: layer {layer_label}, weight '{name}': the model's variable "
                f"'{getattr(variable, 'path', variable.name)}' has shape {tuple(variable.shape)} but the file "
                f"stores shape {tuple(shape)}"
            )
            if skip_mismatch:
                warnings.warn(message + "; skipped", stacklevel=3)
                return
            raise ValueError(message)
    for variable, (name, dataset) in zip(variables, entries):
        array = reader.read(dataset)
        if array.dtype != np.dtype(variable.dtype):
            variable.assign(array.astype(variable.dtype))
        elif copy:
            variable.assign(np.array(array))
        else:
            variable._adopt(array)


def load_weights_from_group(model, reader, group, copy=False, skip_mismatch=False, by_name=False):
    layer_names = _name_list(reader, group, "layer_names")
    stored = []
    for name in layer_names:
        layer_group = _join(group, name)
        if reader.kind(layer_group) != "group":
            raise ValueError(f"{reader.label}: layer '{name}' is listed in layer_names but has no group")
        entries = _read_subset(reader, layer_group, copy)
        if entries:
            stored.append((name, entries))
    if by_name:
        by_layer = {layer.name: layer for layer in model.layers}
        for name, entries in stored:
            layer = by_layer.get(name)
            if layer is None:
                continue
            _assign(f"'{name}'", _legacy_weights(layer), entries, reader, copy, skip_mismatch)
        return
    layers = [layer for layer in model.layers if _legacy_weights(layer)]
    if len(layers) != len(stored):
        raise ValueError(
            f"{reader.label}: the model has {len(layers)} layers with weights but the file stores "
            f"{len(stored)} ({', '.join(n for n, _ in stored)})"
        )
    for index, (layer, (name, entries)) in enumerate(zip(layers, stored)):
        _assign(f"#{index} '{layer.name}' (stored as '{name}')", _legacy_weights(layer), entries, reader, copy,
                skip_mismatch)


def load_weights(model, filepath, skip_mismatch=False, by_name=False, mmap=True):
    if not os.path.exists(filepath):
        raise ValueError(f"File not found: {filepath}")
    reader = h5_io.H5Reader.open(filepath)
    if _name_list(reader, "", "layer_names"):
        group = ""
    elif reader.kind("model_weights") == "group":
        group = "model_weights"
    else:
        raise ValueError(f"{filepath}: not a Keras weights file (no 'layer_names' attribute)")
    load_weights_from_group(model, reader, group, copy=not mmap, skip_mismatch=skip_mismatch, by_name=by_name)


def _read_json_attr(reader, name):
    text = _attr_text(reader, "/", name)
    if text is None:
        return None
    return json_safety.loads(text, label=f"{reader.label}: attribute '{name}'")


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True, mmap=True):
    reader = h5_io.H5Reader.open(filepath)
    model_config = _read_json_attr(reader, "model_config")
    if model_config is None:
        raise ValueError(f"{filepath}: no model config found in the file (attribute 'model_config')")
    model_config = keras2_config.upgrade(model_config, label=f"{filepath}: model_config")
    model = keras_file.model_from_config(model_config, custom_objects=custom_objects, compile=False,
                                         safe_mode=safe_mode, label=f"{filepath}: model_config")
    if reader.kind("model_weights") != "group":
        raise ValueError(f"{filepath}: group 'model_weights' is missing")
    load_weights_from_group(model, reader, "model_weights", copy=not mmap)
    if not compile:
        return model
    training_config = _read_json_attr(reader, "training_config")
    if training_config is None:
        return model
    _compile_from_training_config(model, training_config, custom_objects, safe_mode, filepath)
    if reader.kind("optimizer_weights") == "group":
        _restore_optimizer(model, reader, copy=not mmap)
    return model


def _compile_from_training_config(model, training_config, custom_objects, safe_mode, label):
    from amber.saving import serialization_lib

    if not isinstance(training_config, dict):
        raise ConfigError(f"{label}: training_config must be a JSON object")
    optimizer_config = keras2_config.upgrade_optimizer_config(training_config.get("optimizer_config"))
    with serialization_lib.SafeModeScope(safe_mode):
        optimizer = serialization_lib.deserialize_keras_object(optimizer_config, custom_objects=custom_objects)
        kwargs = {"optimizer": optimizer}
        for key in ("loss", "metrics", "loss_weights", "weighted_metrics"):
            value = training_config.get(key)
            if value is not None:
                kwargs[key] = serialization_lib.deserialize_keras_object(value, custom_objects=custom_objects)
    model.compile(**kwargs)


def _restore_optimizer(model, reader, copy):
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return
    entries = _read_subset(reader, "optimizer_weights", copy)
    if not entries:
        return
    if not getattr(optimizer, "built", True):
        optimizer.build(model.trainable_variables)
    variables = list(optimizer.variables)
    values = [np.asarray(reader.read(dataset)) for _, dataset in entries]
    # Keras 2 optimizers keep no learning-rate variable: keep the one from the config.
    if len(values) == len(variables) - 1 and "iteration" in entries[0][0].lower():
        values.insert(1, np.asarray(optimizer.variables[1].numpy()))
    if len(values) != len(variables):
        warnings.warn(
            f"{reader.label}: the saved optimizer state has {len(values)} variables but "
            f"{type(optimizer).__name__} has {len(variables)}; training restarts from a fresh optimizer state",
            stacklevel=3,
        )
        return
    for variable, value, (name, _) in zip(variables, values, entries):
        if tuple(value.shape) != tuple(variable.shape):
            raise ValueError(
                f"{reader.label}: optimizer weight '{name}' has shape {tuple(value.shape)} but "
                f"'{getattr(variable, 'path', variable.name)}' has shape {tuple(variable.shape)}"
            )
    for variable, value in zip(variables, values):
        variable.assign(value.astype(variable.dtype))
