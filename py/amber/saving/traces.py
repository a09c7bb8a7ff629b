"""Saved traces: reloading a subclassed model whose class is not available.

When a model of a custom class is saved, its ``call`` is run once on a symbolic input; if
every step is a layer call, the result is a Functional graph over the model's own sub-layers.
That graph (a Keras config, resolved closed-world like any other) and, for each of its layers,
the place of its weights in the model's weights file are stored as ``amber_trace.json``.
A later ``load_model`` without the class rebuilds the graph and loads each layer from that
place. Nothing executable is stored: only configs of components.
"""

import warnings

from amber.saving import builtin_objects
from amber.saving import serialization_lib
from amber.saving import weights_walk
from amber.saving.json_safety import ConfigError

ENTRY = "amber_trace.json"
FORMAT = "amber-trace"


class _RecordingStore:
    """Remembers which arrays each weights path receives (no data is copied)."""

    def __init__(self):
        self.paths = {}

    def make(self, path, metadata=None):
        ids = []
        self.paths[path] = ids

        class Entry(dict):
            def __setitem__(self, key, value):
                ids.append(id(value))

        return Entry()


def _ids_of(layer):
    ids = []

    class Entry(dict):
        def __setitem__(self, key, value):
            ids.append(id(value))

    layer.save_own_variables(Entry())
    return ids


def _input_shape(model):
    get_build_config = getattr(model, "get_build_config", None)
    config = get_build_config() if callable(get_build_config) else None
    shape = (config or {}).get("input_shape")
    if not isinstance(shape, (list, tuple)) or not shape or not all(
        d is None or (isinstance(d, int) and d > 0) for d in shape
    ):
        return None
    return (None,) + tuple(shape[1:])


def record(model):
    """The trace of ``model`` as a JSON-safe dict, or None when it cannot be traced."""
    from amber import layers as layers_module
    from amber.models import Model

    if not isinstance(model, Model) or builtin_objects.public_name(type(model)) is not None:
        return None
    if weights_walk._obj_type(model) in ("Sequential", "Functional") or not getattr(model, "built", False):
        return None
    shape = _input_shape(model)
    if shape is None:
        return None
    try:
        inputs = layers_module.Input(batch_shape=shape)
        outputs = model.call(inputs)
        graph = Model(inputs, outputs)
    except Exception:  # a call that is more than layer calls: no trace, as in Keras
        return None
    store = _RecordingStore()
    weights_walk.save_state(model, store)
    by_ids = {tuple(ids): path for path, ids in store.paths.items() if ids}
    paths = {}
    covered = 0
    for layer in graph.layers:
        ids = tuple(_ids_of(layer))
        if not ids:
            continue
        path = by_ids.get(ids)
        if path is None:
            return None
        paths[layer.name] = path
        covered += len(ids)
    if covered != sum(len(ids) for ids in store.paths.values()):
        return None  # the model holds weights its call does not reach through layers
    with serialization_lib.ObjectSharingScope():
        config = serialization_lib.serialize_keras_object(graph)
    return {"format": FORMAT, "version": 1, "class_name": type(model).__name__, "model": config, "paths": paths}


def top_level_resolvable(config, custom_objects):
    """Whether the class ``config`` names can be found (without building anything)."""
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        return True
    try:
        serialization_lib._resolve_class(config["class_name"], config.get("registered_name"),
                                         config.get("module"), custom_objects, None, config)
    except (ConfigError, TypeError):
        return False
    return True


def revive(trace, custom_objects, safe_mode, label):
    """(model, {layer name: weights path}) from a stored trace."""
    from amber.saving import keras_file

    if not isinstance(trace, dict) or trace.get("format") != FORMAT or not isinstance(trace.get("paths"), dict):
        raise ConfigError(f"{label}: malformed trace")
    paths = trace["paths"]
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in paths.items()):
        raise ConfigError(f"{label}: malformed trace paths")
    model = keras_file.model_from_config(trace.get("model"), custom_objects=custom_objects, compile=False,
                                         safe_mode=safe_mode, label=label)
    warnings.warn(
        f"{label}: class {trace.get('class_name')!r} is not available; rebuilt the model from its saved "
        "trace (a Functional model over the same layers and weights)",
        stacklevel=3,
    )
    return model, paths


def load_revived_weights(model, paths, store):
    for layer in model.layers:
        if not _ids_of(layer):
            continue
        path = paths.get(layer.name)
        if path is None:
            raise ValueError(f"{store.reader.label}: the trace gives no weights path for layer {layer.name!r}")
        weights_walk.load_state(layer, store, path)
