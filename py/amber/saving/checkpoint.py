"""Object-graph checkpoints (the TF-era ``tf.train.Checkpoint`` workflow).

Variables are keyed by the attribute path that reaches them from the checkpoint's root
objects: ``dense/kernel/.ATTRIBUTES/VARIABLE_VALUE`` for ``Checkpoint(dense=layer)``, and
``layer_with_weights-0/kernel/...`` for the layers of a model. The file is a safetensors
file whose metadata holds the object graph (each saved key with the kind of object holding
it), so any program can read it.
"""

import json
import os

import numpy as np

from amber.saving import safetensors_io
from amber.saving import weights_walk

SUFFIX = ".ATTRIBUTES/VARIABLE_VALUE"
GRAPH_KEY = "amber_object_graph"


def _variable_class():
    from amber.backend import Variable

    return Variable


def _key(path):
    return f"{path}/{SUFFIX}" if path else SUFFIX


def _collect(obj, path, out, seen):
    """Fill ``out`` with key -> Variable for everything reachable from ``obj``."""
    Variable = _variable_class()
    if isinstance(obj, Variable):
        if id(obj) not in seen:
            seen.add(id(obj))
            out[_key(path)] = obj
        return
    if isinstance(obj, (list, tuple)):
        for i, item in enumerate(obj):
            _collect(item, f"{path}/{i}" if path else str(i), out, seen)
        return
    if isinstance(obj, dict):
        for name, item in obj.items():
            _collect(item, f"{path}/{name}" if path else str(name), out, seen)
        return
    if not weights_walk.is_saveable(obj) or id(obj) in seen:
        return
    seen.add(id(obj))
    join = (lambda name: f"{path}/{name}") if path else (lambda name: name)
    layers = getattr(obj, "layers", None) if weights_walk._obj_type(obj) in ("Sequential", "Functional") else None
    if layers:
        with_weights = [layer for layer in layers if layer.weights]
        for i, layer in enumerate(with_weights):
            _collect(layer, join(f"layer_with_weights-{i}"), out, seen)
    for attr, child in weights_walk.walk_children(obj):
        if attr == "layers" and layers:
            continue
        if isinstance(child, (Variable, list, tuple, dict)) or weights_walk.is_saveable(child):
            _collect(child, join(attr), out, seen)
    # Variables not reachable through attributes (kept in private lists) by position.
    own = list(getattr(obj, "weights", None) or getattr(obj, "variables", None) or [])
    for i, variable in enumerate(v for v in own if id(v) not in seen):
        seen.add(id(variable))
        out[_key(join(f"vars/{i}"))] = variable


def variables_of(objects):
    out, seen = {}, set()
    for name, obj in objects.items():
        _collect(obj, name, out, seen)
    return out


class CheckpointLoadStatus:
    """What ``restore`` matched: checks in the style of TF's load status."""

    def __init__(self, path, file_keys, target_keys, restored):
        self.path = path
        self._file_keys = set(file_keys)
        self._target_keys = set(target_keys)
        self._restored = set(restored)

    def assert_consumed(self):
        unused = sorted(self._file_keys - self._restored - {_key("save_counter")})
        missing = sorted(self._target_keys - self._restored)
        if unused or missing:
            raise AssertionError(
                f"{self.path}: checkpoint not fully consumed. Unused values in the file: {unused[:10]}; "
                f"objects with no value: {missing[:10]}"
            )
        return self

    def assert_existing_objects_matched(self):
        missing = sorted(self._target_keys - self._restored)
        if missing:
            raise AssertionError(f"{self.path}: objects with no value in the checkpoint: {missing[:10]}")
        return self

    def assert_nontrivial_match(self):
        if not self._restored:
            raise AssertionError(f"{self.path}: nothing in the checkpoint matched")
        return self

    def expect_partial(self):
        return self


def _resolve(path):
    path = os.fspath(path)
    if os.path.isfile(path):
        return path
    raise ValueError(f"Checkpoint not found: {path}")


def _write(objects, path, counter=None):
    variables = variables_of(objects)
    tensors = {key: np.asarray(v) for key, v in variables.items()}
    if counter is not None:
        tensors[_key("save_counter")] = np.asarray(counter, dtype=np.int64)
    graph = {key: type(v).__name__ for key, v in variables.items()}
    safetensors_io.save_safetensors(tensors, path, metadata={GRAPH_KEY: json.dumps(graph), "format": "amber"})
    return path


def _restore(objects, path):
    path = _resolve(path)
    stored = safetensors_io.load_safetensors(path)
    targets = variables_of(objects)
    restored = []
    problems = []
    for key, variable in targets.items():
        array = stored.get(key)
        if array is None:
            continue
        if tuple(array.shape) != tuple(variable.shape):
            problems.append(f"'{key}': the object has shape {tuple(variable.shape)}, the checkpoint "
                            f"{tuple(array.shape)}")
            continue
        restored.append((key, variable, array))
    if problems:
        raise ValueError(f"{path}: shape mismatch restoring " + "; ".join(problems))
    for key, variable, array in restored:
        if array.dtype == np.dtype(variable.dtype):
            variable._adopt(array)
        else:
            variable.assign(array.astype(variable.dtype))
    return CheckpointLoadStatus(path, stored.keys(), targets.keys(), [k for k, _, _ in restored])


class Checkpoint:
    """``Checkpoint(dense=layer, kernel=variable).save("ckpt")`` -> ``"ckpt-1"``;
    ``.restore(path)`` assigns every matching variable and returns a load status."""

    def __init__(self, root=None, **objects):
        self._objects = dict(objects)
        if root is not None:
            self._objects["root"] = root
        self.save_counter = 0

    def write(self, file_prefix):
        return _write(self._objects, os.fspath(file_prefix), counter=self.save_counter)

    def save(self, file_prefix):
        self.save_counter += 1
        return _write(self._objects, f"{os.fspath(file_prefix)}-{self.save_counter}", counter=self.save_counter)

    def restore(self, save_path):
        return _restore(self._objects, save_path)

    read = restore


class CheckpointReader:
    """``load_checkpoint(path)``: inspect a checkpoint without building objects."""

    def __init__(self, path):
        self.path = _resolve(path)
        self._tensors = safetensors_io.load_safetensors(self.path)

    def get_variable_to_dtype_map(self):
        return {k: v.dtype for k, v in self._tensors.items()}

    def get_variable_to_shape_map(self):
        return {k: list(v.shape) for k, v in self._tensors.items()}

    def has_tensor(self, key):
        return key in self._tensors

    def get_tensor(self, key):
        if key not in self._tensors:
            raise KeyError(f"{self.path}: no tensor {key!r} in the checkpoint")
        return self._tensors[key]


def load_checkpoint(path):
    return CheckpointReader(path)


# Weights-only saving to a path without extension (``model.save_weights("ckpt")``): the model
# is the root, so keys start at its attributes.
def save_model_checkpoint(model, path):
    variables = {}
    seen = set()
    _collect(model, "", variables, seen)
    tensors = {key: np.asarray(v) for key, v in variables.items()}
    graph = {key: type(v).__name__ for key, v in variables.items()}
    safetensors_io.save_safetensors(tensors, path, metadata={GRAPH_KEY: json.dumps(graph), "format": "amber"})


def load_model_checkpoint(model, path):
    path = _resolve(path)
    stored = safetensors_io.load_safetensors(path)
    targets = {}
    _collect(model, "", targets, set())
    restored = []
    for key, variable in targets.items():
        array = stored.get(key)
        if array is None:
            continue
        if tuple(array.shape) != tuple(variable.shape):
            raise ValueError(f"{path}: '{key}' has shape {tuple(variable.shape)} in the model but "
                             f"{tuple(array.shape)} in the checkpoint")
        restored.append((key, variable, array))
    for key, variable, array in restored:
        if array.dtype == np.dtype(variable.dtype):
            variable._adopt(array)
        else:
            variable.assign(array.astype(variable.dtype))
    return CheckpointLoadStatus(path, stored.keys(), targets.keys(), [k for k, _, _ in restored])
