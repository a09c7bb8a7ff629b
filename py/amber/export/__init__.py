"""amber.export: mirrors keras.export.

An exported artifact is a directory: each tracked layer or model as a ``.keras`` archive
(``objects/<i>.keras``) and ``endpoints.json`` naming, for every endpoint, the tracked object
and the method it calls, plus the variable collections. ``load(path)`` rebuilds the objects
(closed-world, as ``load_model``) and exposes each endpoint as a function returning numpy
arrays. Objects are rebuilt from their configs, so their classes must be amber's own or
registered.
"""

import json
import os

import numpy as np

ENDPOINTS = "endpoints.json"
FORMAT = "amber-export"
MAX_ENDPOINTS_BYTES = 1 << 20


class ExportArchive:
    """Collects tracked objects, endpoints and variable collections, then ``write_out``."""

    def __init__(self):
        self._tracked = []
        self._endpoints = {}
        self._collections = {}

    def track(self, resource):
        from amber.saving import weights_walk

        if not weights_walk.is_saveable(resource) or not hasattr(resource, "get_config"):
            raise ValueError(f"Only layers and models can be tracked, got {type(resource).__name__}")
        if not any(resource is t for t in self._tracked):
            self._tracked.append(resource)
        return resource

    def _owner_index(self, obj):
        for i, tracked in enumerate(self._tracked):
            if tracked is obj:
                return i
        return None

    def add_endpoint(self, name, fn=None, input_signature=None, **kwargs):
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"Endpoint names must be identifiers, got {name!r}")
        if name in self._endpoints:
            raise ValueError(f"Endpoint {name!r} is already defined")
        owner = getattr(fn, "__self__", None)
        method = getattr(fn, "__name__", None)
        if owner is None and fn is not None and self._owner_index(fn) is not None:
            owner, method = fn, "__call__"
        index = self._owner_index(owner) if owner is not None else None
        if index is None:
            raise ValueError(
                f"Endpoint {name!r}: amber exports calls of tracked layers and their methods; "
                "track the object first and pass one of its methods (e.g. layer.call)"
            )
        self._endpoints[name] = {
            "object": index,
            "method": method,
            "input_signature": _signature_config(input_signature),
        }
        return fn

    def add_variable_collection(self, name, variables):
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"Collection names must be identifiers, got {name!r}")
        refs = []
        for variable in variables:
            ref = self._locate(variable)
            if ref is None:
                raise ValueError(f"Variable {getattr(variable, 'path', variable)!r} belongs to no tracked object")
            refs.append(ref)
        self._collections[name] = (list(variables), refs)

    def _locate(self, variable):
        for i, tracked in enumerate(self._tracked):
            for j, weight in enumerate(tracked.weights):
                if weight is variable:
                    return [i, j]
        return None

    def __getattr__(self, name):
        collections = self.__dict__.get("_collections", {})
        if name in collections:
            return collections[name][0]
        raise AttributeError(name)

    def write_out(self, filepath, verbose=None):
        from amber.saving import keras_file

        if not self._endpoints:
            raise ValueError("No endpoint to export: call add_endpoint first")
        os.makedirs(os.path.join(filepath, "objects"), exist_ok=True)
        for i, tracked in enumerate(self._tracked):
            keras_file.save_model(tracked, os.path.join(filepath, "objects", f"{i}.keras"))
        manifest = {
            "format": FORMAT,
            "version": 1,
            "objects": len(self._tracked),
            "endpoints": self._endpoints,
            "variable_collections": {k: refs for k, (_, refs) in self._collections.items()},
        }
        with open(os.path.join(filepath, ENDPOINTS), "w") as f:
            json.dump(manifest, f, indent=2)


def _signature_config(signature):
    if signature is None:
        return None
    out = []
    for spec in signature if isinstance(signature, (list, tuple)) else [signature]:
        shape = getattr(spec, "shape", None)
        dtype = getattr(spec, "dtype", None)
        out.append({"shape": list(shape) if shape is not None else None,
                    "dtype": str(dtype) if dtype is not None else None})
    return out


def export_model(model, filepath, format="amber", verbose=None, **kwargs):
    """``model.export(path)``: one endpoint ``serve`` running the model in inference mode."""
    if format not in ("amber", "tf_saved_model"):
        raise ValueError(f"Unsupported export format {format!r}; amber writes its own ('amber')")
    archive = ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", model.__call__ if hasattr(model, "__call__") else model)
    archive.write_out(filepath)


class ExportedArtifact:
    """What ``load`` returns: one attribute per endpoint and per variable collection."""

    def __init__(self, objects, endpoints, collections):
        self._objects = objects
        for name, spec in endpoints.items():
            setattr(self, name, _endpoint(objects[spec["object"]], spec["method"]))
        for name, refs in collections.items():
            setattr(self, name, [objects[i].weights[j] for i, j in refs])


def _endpoint(obj, method):
    target = getattr(obj, method) if method != "__call__" else obj

    def call(*args, **kwargs):
        if method in ("__call__", "call") and "training" not in kwargs and _takes_training(target):
            kwargs["training"] = False
        out = target(*args, **kwargs)
        return _to_numpy(out)

    call.__name__ = method
    return call


def _takes_training(fn):
    import inspect

    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "training" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _to_numpy(value):
    if isinstance(value, (list, tuple)):
        return type(value)(_to_numpy(v) for v in value)
    if isinstance(value, dict):
        return {k: _to_numpy(v) for k, v in value.items()}
    return np.asarray(value)


def load(filepath):
    from amber.saving import json_safety, keras_file

    path = os.path.join(os.fspath(filepath), ENDPOINTS)
    if not os.path.isfile(path):
        raise ValueError(f"{filepath}: not an amber export (no {ENDPOINTS})")
    if os.path.getsize(path) > MAX_ENDPOINTS_BYTES:
        raise ValueError(f"{path}: file too large")
    with open(path, "rb") as f:
        manifest = json_safety.loads(f.read(), label=path)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{path}: not an amber export manifest")
    count = manifest.get("objects")
    endpoints = manifest.get("endpoints")
    collections = manifest.get("variable_collections", {})
    if not isinstance(count, int) or not 0 < count <= 1000 or not isinstance(endpoints, dict) \
            or not isinstance(collections, dict):
        raise ValueError(f"{path}: malformed export manifest")
    objects = [keras_file.load_model(os.path.join(os.fspath(filepath), "objects", f"{i}.keras"), compile=False)
               for i in range(count)]
    for name, spec in endpoints.items():
        if (not isinstance(name, str) or not name.isidentifier() or not isinstance(spec, dict)
                or not isinstance(spec.get("object"), int) or not 0 <= spec["object"] < count
                or not isinstance(spec.get("method"), str) or spec["method"].startswith("_")
                and spec["method"] != "__call__"):
            raise ValueError(f"{path}: malformed endpoint {name!r}")
    for name, refs in collections.items():
        if not isinstance(name, str) or not name.isidentifier() or not isinstance(refs, list) or not all(
                isinstance(r, list) and len(r) == 2 and all(isinstance(v, int) for v in r)
                and 0 <= r[0] < count and 0 <= r[1] < len(objects[r[0]].weights) for r in refs):
            raise ValueError(f"{path}: malformed variable collection {name!r}")
    for name, spec in endpoints.items():
        _check_endpoint_method(path, name, objects[spec["object"]], spec["method"])
    return ExportedArtifact(objects, endpoints, collections)


# Inference entry points of every layer; other endpoints must be the object's own methods, so
# a manifest cannot make an endpoint of a base-class utility such as save or export.
_INFERENCE_METHODS = ("__call__", "call", "predict", "predict_on_batch")


def _check_endpoint_method(path, name, obj, method):
    if method in _INFERENCE_METHODS:
        return
    defined_by_user = any(
        method in vars(cls) and not cls.__module__.startswith("amber.") for cls in type(obj).__mro__
    )
    if not defined_by_user or not callable(getattr(obj, method, None)):
        raise ValueError(f"{path}: endpoint {name!r} names {method!r}, which is not an inference method "
                         f"of {type(obj).__name__}")


__all__ = ["ExportArchive", "export_model", "load"]
