"""The one walk over a model's object tree, in Keras 3's order, saving to or loading from a
store (HDF5, sharded HDF5, ...).

Each layer and optimizer saves and loads only its own variables (``save_own_variables`` /
``load_own_variables``); the walk decides where they live: ``layers/<snake_case_class>[_N]``
for the layers of Sequential/Functional models and for lists and dicts of layers, the
attribute name for sub-layers held as attributes, ``optimizer`` for the optimizer.
"""

import re
import warnings

import numpy as np

_skipset_cache = {}


def to_snake_case(name):
    """Keras's container key for a class name: 'BatchNormalization' -> 'batch_normalization'."""
    name = re.sub(r"\W+", "", name)
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    name = re.sub(r"([a-z])([A-Z])", r"\1_\2", name)
    return name.lower()


# (module, name) -> class, once found. The walk asks for the same two base classes for every
# attribute of every object; importing them each time was a fifth of a mapped load. Misses are
# not remembered, so a part that lands later is still found.
_found_classes = {}


def _optional(module_name, name):
    key = (module_name, name)
    found = _found_classes.get(key)
    if found is not None:
        return found
    import importlib

    try:
        found = getattr(importlib.import_module(module_name), name, None)
    except ImportError:
        return None
    if found is not None:
        _found_classes[key] = found
    return found


_all_bases = []


def _saveable_bases():
    if _all_bases:
        return _all_bases[0]
    bases = tuple(
        c for c in (_optional("amber.layers", "Layer"), _optional("amber.optimizers", "Optimizer")) if c is not None
    )
    if len(bases) == 2:
        _all_bases.append(bases)
    return bases


def is_saveable(obj):
    """Layers and optimizers own saved state (Keras does not save compile metrics)."""
    if isinstance(obj, type):
        return False
    bases = _saveable_bases()
    if bases:
        return isinstance(obj, bases)
    return callable(getattr(obj, "save_own_variables", None)) and callable(getattr(obj, "load_own_variables", None))


def _obj_type(obj):
    if callable(getattr(obj, "_obj_type", None)):
        return obj._obj_type()
    names = [c.__name__ for c in type(obj).__mro__]
    if "Sequential" in names:
        return "Sequential"
    if "Functional" in names or _is_functional_model(obj):
        return "Functional"
    layer_cls = _optional("amber.layers", "Layer")
    if layer_cls is not None and isinstance(obj, layer_cls):
        return "Layer"
    return "Optimizer"


def _is_functional_model(obj):
    return bool(getattr(obj, "_is_graph_network", False) or getattr(obj, "_is_functional", False))


def container_key(obj):
    """snake_case of the class; a Model built from inputs/outputs is 'functional' as in Keras."""
    cls_name = type(obj).__name__
    if cls_name == "Model" and _is_functional_model(obj):
        cls_name = "Functional"
    return to_snake_case(cls_name)


def _skipset(obj_type):
    """Attributes every base object has: not children (Keras builds this set the same way)."""
    if obj_type in _skipset_cache:
        return _skipset_cache[obj_type]
    skip = None
    try:
        if obj_type == "Optimizer":
            base = _optional("amber.optimizers", "Optimizer")
            skip = set(dir(base(1.0))) - {"variables"} if base is not None else None
        else:
            base = _optional("amber.layers", "Layer")
            skip = set(dir(base())) if base is not None else None
            if skip is not None and obj_type == "Sequential":
                skip.add("_functional")
            if skip is not None and obj_type == "Functional":
                skip.update({"operations", "_operations"})
    except Exception:  # the base cannot be built on its own: fall back below
        skip = None
    if skip is None:
        return None
    _skipset_cache[obj_type] = skip
    return skip


def _private_last(name):
    return "~" + name if name.startswith("_") else name


def walk_children(obj):
    """(attribute name, child) pairs in Keras's order."""
    obj_type = _obj_type(obj)
    if obj_type in ("Sequential", "Functional"):
        yield "layers", list(obj.layers)
    skip = _skipset(obj_type)
    for attr in sorted(dir(obj), key=_private_last):
        if attr.startswith("__"):
            continue
        if skip is not None:
            if attr in skip:
                continue
        elif attr.startswith("_") or attr in ("layers", "weights", "variables"):
            continue
        try:
            child = getattr(obj, attr)
        except Exception:
            continue
        yield attr, child


def _join(path, name):
    return f"{path}/{name}" if path else name


# ------------------------------------------------------------------ saving


def save_state(obj, store, path="", visited=None):
    visited = set() if visited is None else visited
    if id(obj) in visited:
        return
    name = getattr(obj, "name", None)
    entry = store.make(path, metadata={"name": name} if isinstance(name, str) else None)
    obj.save_own_variables(entry)
    visited.add(id(obj))
    for attr, child in walk_children(obj):
        if is_saveable(child):
            save_state(child, store, _join(path, attr), visited)
        elif isinstance(child, (list, tuple, dict)):
            _save_container(child, store, _join(path, attr), visited, set())


def _unique(name, used):
    if name in used:
        used[name] += 1
        return f"{name}_{used[name]}"
    used[name] = 0
    return name


def _save_container(container, store, path, visited, seen_containers):
    if id(container) in seen_containers:
        return
    seen_containers.add(id(container))
    used = {}
    items = list(container.values()) if isinstance(container, dict) else list(container)
    for item in items:
        if is_saveable(item):
            save_state(item, store, _join(path, _unique(container_key(item), used)), visited)
        elif isinstance(item, (list, tuple, dict)):
            _save_container(item, store, _join(path, _unique("container", used)), visited, seen_containers)


# ------------------------------------------------------------------ loading


class _Probe(dict):
    """A store entry that only records what ``save_own_variables`` would write."""


def expected_variables(obj):
    """[(key, shape, dtype)] of the variables ``obj`` saves, in its own order."""
    probe = _Probe()
    obj.save_own_variables(probe)
    out = []
    for key, value in probe.items():
        shape = tuple(int(d) for d in getattr(value, "shape", np.shape(value)))
        dtype = getattr(value, "dtype", None)
        dtype = np.dtype(dtype).name if dtype is not None else np.asarray(value).dtype.name
        out.append((str(key), shape, dtype))
    return out


def load_state(obj, store, path="", visited=None, skip_mismatch=False, errors=None):
    visited = set() if visited is None else visited
    if id(obj) in visited:
        return
    entry = store.get(path)
    label = getattr(obj, "name", type(obj).__name__)
    try:
        entry.expect(expected_variables(obj), owner=label)
        obj.load_own_variables(entry)
    except ValueError as e:
        # Keras restores optimizer state only when it fits, and warns otherwise.
        if not (skip_mismatch or _obj_type(obj) == "Optimizer"):
            raise
        warnings.warn(f"Skipping variables of {label!r} at '{path or '/'}': {e}", stacklevel=2)
        if errors is not None:
            errors.append((path, str(e)))
    visited.add(id(obj))
    for attr, child in walk_children(obj):
        if is_saveable(child):
            load_state(child, store, _join(path, attr), visited, skip_mismatch, errors)
        elif isinstance(child, (list, tuple, dict)):
            _load_container(child, store, _join(path, attr), visited, set(), skip_mismatch, errors)


def _load_container(container, store, path, visited, seen_containers, skip_mismatch, errors):
    if id(container) in seen_containers:
        return
    seen_containers.add(id(container))
    used = {}
    items = list(container.values()) if isinstance(container, dict) else list(container)
    for item in items:
        if is_saveable(item):
            load_state(item, store, _join(path, _unique(container_key(item), used)), visited, skip_mismatch, errors)
        elif isinstance(item, (list, tuple, dict)):
            _load_container(item, store, _join(path, _unique("container", used)), visited, seen_containers,
                            skip_mismatch, errors)
