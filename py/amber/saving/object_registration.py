"""The registry of custom objects: what a config may name beyond amber's own components.

Three sources, searched in this order when a config is resolved: the objects passed to the
loading call (``custom_objects=``), the innermost ``custom_object_scope``, and the global
registry filled by ``register_keras_serializable`` (or by writing into
``get_custom_objects()``). A registered object is known by ``"package>name"``.
"""

import inspect
import threading

# name -> object, and object -> registered name (the reverse lets serialization write the name).
_GLOBAL_CUSTOM_OBJECTS = {}
_GLOBAL_CUSTOM_NAMES = {}

_scope_state = threading.local()


def _scope_objects():
    """The objects of the active custom object scope (empty outside any scope)."""
    return getattr(_scope_state, "objects", {})


class CustomObjectScope:
    """``with custom_object_scope({"MyLayer": MyLayer}):`` makes those names resolvable inside
    the block. Scopes nest; the inner one adds to the outer."""

    def __init__(self, *custom_objects):
        merged = {}
        for objects in custom_objects:
            if objects is None:
                continue
            if not isinstance(objects, dict):
                raise TypeError(
                    f"custom_object_scope expects dicts of name -> object, got {type(objects).__name__}"
                )
            merged.update(objects)
        self.custom_objects = merged
        self._saved = None

    def __enter__(self):
        self._saved = _scope_objects()
        _scope_state.objects = {**self._saved, **self.custom_objects}
        return self

    def __exit__(self, *exc_info):
        _scope_state.objects = self._saved
        return False


custom_object_scope = CustomObjectScope


def get_custom_objects():
    """The live global dict of registered objects (``.clear()`` it to forget them all)."""
    return _GLOBAL_CUSTOM_OBJECTS


def register_keras_serializable(package="Custom", name=None):
    """Decorator: register a class or function under ``"package>name"`` (name defaults to
    the object's ``__name__``)."""
    if not isinstance(package, str) or not package:
        raise ValueError(f"package must be a non-empty string, got {package!r}")
    if ">" in package:
        raise ValueError(f"package may not contain '>': {package!r}")

    def decorator(obj):
        object_name = name if name is not None else getattr(obj, "__name__", None)
        if not isinstance(object_name, str) or not object_name:
            raise ValueError(f"Cannot register {obj!r}: it has no name; pass name=...")
        if inspect.isclass(obj) and not hasattr(obj, "get_config"):
            raise ValueError(
                f"Cannot register class {obj.__name__!r}: it has no get_config() method"
            )
        registered_name = f"{package}>{object_name}"
        _GLOBAL_CUSTOM_OBJECTS[registered_name] = obj
        _GLOBAL_CUSTOM_NAMES[obj] = registered_name
        return obj

    return decorator


def get_registered_name(obj):
    """``"package>name"`` for a registered object, else the object's ``__name__``."""
    try:
        registered = _GLOBAL_CUSTOM_NAMES.get(obj)
    except TypeError:  # unhashable objects cannot be registered
        registered = None
    if registered is not None and _GLOBAL_CUSTOM_OBJECTS.get(registered) is obj:
        return registered
    return obj.__name__


def get_registered_object(name, custom_objects=None, module_objects=None):
    """The object known as ``name`` to the caller's custom objects, the active scope, the
    global registry or ``module_objects`` (in that order), else None."""
    if not isinstance(name, str):
        return None
    for source in (custom_objects or {}, _scope_objects(), _GLOBAL_CUSTOM_OBJECTS, module_objects or {}):
        if name in source:
            return source[name]
    return None


def lookup_custom(names, custom_objects=None):
    """First hit of any of ``names`` in the caller's objects, the scope, then the registry.

    Each source is searched for every candidate name before the next source, so an object
    passed to the call wins over a registered one of the same name.
    """
    candidates = [n for n in names if isinstance(n, str) and n]
    for source in (custom_objects or {}, _scope_objects(), _GLOBAL_CUSTOM_OBJECTS):
        for candidate in candidates:
            if candidate in source:
                return source[candidate]
    return None
