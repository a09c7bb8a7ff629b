"""Keras 3 object serialization: objects <-> ``{"module", "class_name", "config",
"registered_name", ...}`` dicts.

Deserialization is closed-world. A config names a class or function that is resolved only
against the caller's custom objects, the active custom object scope, the global registry and
amber's allowlist of built-in components (``builtin_objects``). Nothing a config names is
imported, and nothing in it is evaluated; marshaled Python (``__lambda__``) is refused unless
the caller of the outermost load passes ``safe_mode=False``.
"""

import base64
import builtins
import inspect
import marshal
import threading
import types

import numpy as np

from amber.saving import builtin_objects
from amber.saving import object_registration
from amber.saving.json_safety import ConfigError

PLAIN_TYPES = (str, int, float, bool)

# Special class names Keras writes for values that are not components.
_KERAS_TENSOR = "__keras_tensor__"
_LAMBDA = "__lambda__"

_state = threading.local()


# ------------------------------------------------------------------ scopes


class SafeModeScope:
    """Fixes safe mode for every nested deserialization (layers' ``from_config`` included),
    so a nested call can never loosen what the outermost caller chose."""

    def __init__(self, safe_mode=True):
        self.safe_mode = safe_mode
        self._saved = None

    def __enter__(self):
        self._saved = getattr(_state, "safe_mode", None)
        _state.safe_mode = self.safe_mode
        return self

    def __exit__(self, *exc_info):
        _state.safe_mode = self._saved
        return False


def in_safe_mode():
    """The active scope's safe mode; else False after
    ``amber.config.enable_unsafe_deserialization()``; else None (the caller decides)."""
    scoped = getattr(_state, "safe_mode", None)
    if scoped is not None:
        return scoped
    from amber.config import _unsafe_deserialization_enabled

    return False if _unsafe_deserialization_enabled() else None


class ObjectSharingScope:
    """Within the scope, an object serialized twice gets a ``shared_object_id`` in both
    configs, and configs with the same id deserialize to one object."""

    def __enter__(self):
        self._saved = (getattr(_state, "id_to_config", None), getattr(_state, "id_to_object", None))
        _state.id_to_config = {}
        _state.id_to_object = {}
        return self

    def __exit__(self, *exc_info):
        _state.id_to_config, _state.id_to_object = self._saved
        return False


def _record_serialized(obj, config):
    if config.get("module") == "__main__":
        config["module"] = None
    seen = getattr(_state, "id_to_config", None)
    if seen is None:
        return
    key = id(obj)
    if key in seen:
        config["shared_object_id"] = key
        seen[key]["shared_object_id"] = key
    else:
        seen[key] = config


# ------------------------------------------------------------------ serialization


def serialize_keras_object(obj):
    """The JSON-safe config of ``obj`` in Keras 3's format."""
    if obj is None or isinstance(obj, PLAIN_TYPES):
        return obj
    if isinstance(obj, (list, tuple)):
        items = [serialize_keras_object(x) for x in obj]
        return tuple(items) if isinstance(obj, tuple) else items
    if isinstance(obj, dict):
        return serialize_dict(obj)
    if isinstance(obj, bytes):
        return {"class_name": "__bytes__", "config": {"value": obj.decode("utf-8")}}
    if isinstance(obj, slice):
        return {
            "class_name": "__slice__",
            "config": {
                "start": serialize_keras_object(obj.start),
                "stop": serialize_keras_object(obj.stop),
                "step": serialize_keras_object(obj.step),
            },
        }
    if obj is Ellipsis:
        return {"class_name": "__ellipsis__", "config": {}}
    keras_tensor = _serialize_keras_tensor(obj)
    if keras_tensor is not None:
        return keras_tensor
    if isinstance(obj, (np.ndarray, np.generic)):
        if isinstance(obj, np.ndarray) and obj.ndim > 0:
            return {"class_name": "__numpy__", "config": {"value": obj.tolist(), "dtype": obj.dtype.name}}
        return obj.item()
    tensor = _serialize_tensor(obj)
    if tensor is not None:
        return tensor
    if isinstance(obj, types.FunctionType) and obj.__name__ == "<lambda>":
        return {"class_name": _LAMBDA, "config": {"value": list(_dump_function(obj))}}
    if isinstance(obj, np.dtype):
        return obj.name

    inner_config = _inner_config(obj)
    if isinstance(obj, types.FunctionType):
        # Keras writes every function as an instance of the builtin class ``function``; the
        # function's own (registered) name is the config.
        config = {
            "module": "builtins",
            "class_name": "function",
            "config": inner_config,
            "registered_name": "function",
        }
        _record_serialized(obj, config)
        return config

    cls = obj if inspect.isclass(obj) else type(obj)
    public = builtin_objects.public_name(cls)
    if public is not None:
        module, class_name = public
        registered_name = (class_name if module == builtin_objects.FUNCTIONAL_MODULE
                           or module in builtin_objects.INTERNAL_MODULES else None)
    else:
        module = cls.__module__
        class_name = cls.__name__
        registered_name = object_registration.get_registered_name(cls)
    config = {
        "module": module,
        "class_name": class_name,
        "config": inner_config,
        "registered_name": registered_name,
    }
    _add_build_and_compile_config(obj, config)
    _record_serialized(obj, config)
    return config


def serialize_dict(obj):
    return {key: serialize_keras_object(value) for key, value in obj.items()}


def _inner_config(obj):
    if isinstance(obj, types.FunctionType):
        return object_registration.get_registered_name(obj)
    if hasattr(obj, "get_config") and not inspect.isclass(obj):
        config = obj.get_config()
        if not isinstance(config, dict):
            raise TypeError(
                f"get_config() of {type(obj).__name__} must return a dict, got {type(config).__name__}"
            )
        return serialize_dict(config)
    if hasattr(obj, "__name__"):
        return object_registration.get_registered_name(obj)
    raise TypeError(
        f"Cannot serialize object {obj!r} of type {type(obj).__name__}: "
        "a serializable class must implement get_config()"
    )


def _add_build_and_compile_config(obj, config):
    if inspect.isclass(obj):
        return
    get_build_config = getattr(obj, "get_build_config", None)
    if callable(get_build_config):
        build_config = get_build_config()
        if build_config is not None:
            config["build_config"] = serialize_dict(build_config)
    get_compile_config = getattr(obj, "get_compile_config", None)
    if callable(get_compile_config):
        compile_config = get_compile_config()
        if compile_config is not None:
            config["compile_config"] = serialize_dict(compile_config)


def _serialize_keras_tensor(obj):
    keras_tensor_cls = _optional_attr("amber", "KerasTensor")
    if keras_tensor_cls is None or not isinstance(obj, keras_tensor_cls):
        return None
    history = getattr(obj, "_keras_history", None)
    if history:
        history = list(history)
        history[0] = getattr(history[0], "name", history[0])
    return {
        "class_name": _KERAS_TENSOR,
        "config": {"shape": list(obj.shape), "dtype": str(obj.dtype), "keras_history": history},
    }


def _serialize_tensor(obj):
    tensor_cls = _optional_attr("amber.backend", "Tensor")
    variable_cls = _optional_attr("amber.backend", "Variable")
    classes = tuple(c for c in (tensor_cls, variable_cls) if c is not None)
    if not classes or not isinstance(obj, classes):
        return None
    value = np.asarray(obj)
    return {"class_name": "__tensor__", "config": {"value": value.tolist(), "dtype": value.dtype.name}}


def _optional_attr(module_name, name):
    import importlib

    try:
        return getattr(importlib.import_module(module_name), name, None)
    except ImportError:
        return None


# ------------------------------------------------------------------ deserialization


def deserialize_keras_object(config, custom_objects=None, safe_mode=True, **kwargs):
    """The object described by ``config`` (see the module docstring for what may be named)."""
    scoped = in_safe_mode()
    safe_mode = scoped if scoped is not None else bool(safe_mode)
    module_objects = kwargs.pop("module_objects", None)
    if kwargs:
        raise TypeError(f"Unexpected arguments: {sorted(kwargs)}")
    if custom_objects is not None and not isinstance(custom_objects, dict):
        raise TypeError(f"custom_objects must be a dict, got {type(custom_objects).__name__}")
    if getattr(_state, "id_to_object", None) is None:
        with ObjectSharingScope():
            return _deserialize(config, custom_objects, safe_mode, module_objects)
    return _deserialize(config, custom_objects, safe_mode, module_objects)


def _deserialize(config, custom_objects, safe_mode, module_objects=None):
    if config is None:
        return None
    if isinstance(config, str):
        found = object_registration.lookup_custom([config], custom_objects)
        if found is not None:
            return found
        if module_objects and config in module_objects:
            return _instantiate_module_object(module_objects[config], None)
        return config
    if isinstance(config, PLAIN_TYPES):
        return config
    if isinstance(config, (list, tuple)):
        return [_deserialize(x, custom_objects, safe_mode) for x in config]
    if not isinstance(config, dict):
        raise ConfigError(f"Could not parse config of type {type(config).__name__}: {config!r}")
    if "class_name" not in config or "config" not in config:
        if module_objects is not None and "class_name" in config:
            return _from_module_objects(config, custom_objects, safe_mode, module_objects)
        return {key: _deserialize(value, custom_objects, safe_mode) for key, value in config.items()}

    class_name = config["class_name"]
    if not isinstance(class_name, str):
        raise ConfigError(f"'class_name' must be a string, got {type(class_name).__name__}: {config!r}"[:500])
    inner_config = config["config"] if config["config"] is not None else {}

    special = _deserialize_special(class_name, inner_config, custom_objects, safe_mode)
    if special is not _NOT_SPECIAL:
        return special

    module = config.get("module")
    registered_name = config.get("registered_name")
    if module is not None and not isinstance(module, str):
        raise ConfigError(f"'module' of {class_name!r} must be a string or null")
    if registered_name is not None and not isinstance(registered_name, str):
        raise ConfigError(f"'registered_name' of {class_name!r} must be a string or null")

    if class_name == "function":
        if not isinstance(inner_config, str):
            raise ConfigError(f"A function config must name the function as a string, got {inner_config!r}"[:300])
        return _resolve_function(inner_config, module, custom_objects, module_objects)

    if not isinstance(inner_config, dict):
        raise ConfigError(f"'config' of {class_name!r} must be a dict, got {type(inner_config).__name__}")

    shared_id = config.get("shared_object_id")
    shared_objects = getattr(_state, "id_to_object", None)
    if shared_id is not None and shared_objects is not None and shared_id in shared_objects:
        return shared_objects[shared_id]

    cls = _resolve_class(class_name, registered_name, module, custom_objects, module_objects, config)
    from_config = getattr(cls, "from_config", None)
    if not callable(from_config):
        raise ConfigError(f"Cannot rebuild {class_name!r}: the class has no from_config() method")
    with object_registration.CustomObjectScope(custom_objects or {}), SafeModeScope(safe_mode):
        try:
            instance = from_config(inner_config)
        except TypeError as e:
            raise TypeError(
                f"{class_name} could not be rebuilt from its config: {e}. Objects such as layers "
                "returned by get_config() must be deserialized explicitly in from_config()."
            ) from e
        build_config = config.get("build_config")
        if build_config and not getattr(instance, "built", True):
            instance.build_from_config(build_config)
        compile_config = config.get("compile_config")
        if compile_config and hasattr(instance, "compile_from_config"):
            instance.compile_from_config(compile_config)
    if shared_id is not None and shared_objects is not None:
        shared_objects[shared_id] = instance
    return instance


_NOT_SPECIAL = object()


def _deserialize_special(class_name, inner, custom_objects, safe_mode):
    if not class_name.startswith("__"):
        return _NOT_SPECIAL
    if class_name == _LAMBDA:
        if safe_mode:
            raise ConfigError(
                "Refusing to deserialize a Python lambda (marshaled bytecode): it could run "
                "arbitrary code. If you trust this file, pass safe_mode=False to the loading call."
            )
        value = inner.get("value") if isinstance(inner, dict) else None
        return load_function(value)
    if not isinstance(inner, dict):
        raise ConfigError(f"'config' of {class_name!r} must be a dict")
    if class_name == _KERAS_TENSOR:
        keras_tensor_cls = _optional_attr("amber", "KerasTensor")
        if keras_tensor_cls is None:
            raise ConfigError("KerasTensor configs need amber.KerasTensor, which is not available")
        tensor = keras_tensor_cls(inner.get("shape"), dtype=inner.get("dtype"))
        tensor._pre_serialization_keras_history = inner.get("keras_history")
        return tensor
    if class_name in ("__numpy__", "__tensor__"):
        dtype = inner.get("dtype")
        try:
            dtype = np.dtype(dtype)
        except TypeError:
            raise ConfigError(f"{class_name}: unknown dtype {dtype!r}") from None
        if dtype.kind not in "biufc":
            raise ConfigError(f"{class_name}: dtype {dtype.name} is not numeric")
        return np.array(inner.get("value"), dtype=dtype)
    if class_name == "__bytes__":
        value = inner.get("value")
        if not isinstance(value, str):
            raise ConfigError("__bytes__: 'value' must be a string")
        return value.encode("utf-8")
    if class_name == "__ellipsis__":
        return Ellipsis
    if class_name == "__slice__":
        parts = [_deserialize(inner.get(k), custom_objects, safe_mode) for k in ("start", "stop", "step")]
        if not all(p is None or isinstance(p, int) for p in parts):
            raise ConfigError("__slice__: bounds must be integers or null")
        return slice(*parts)
    raise ConfigError(f"Unknown special class name {class_name!r}")


def _refuse_foreign(kind, name, module):
    raise ConfigError(
        f"Could not locate {kind} '{name}'"
        + (f" (module {module!r})" if module else "")
        + ". Only amber's built-in components and objects registered with "
        "@register_keras_serializable, passed as custom_objects or in a custom_object_scope "
        "can be loaded; nothing named in a file is imported."
    )


def _resolve_class(class_name, registered_name, module, custom_objects, module_objects, full_config):
    if "." in class_name:
        _refuse_foreign("class", class_name, module)
    short_registered = registered_name.split(">")[-1] if registered_name and ">" in registered_name else None
    found = object_registration.lookup_custom(
        [registered_name, class_name] + ([short_registered] if short_registered else []), custom_objects
    )
    if found is None and module_objects:
        found = module_objects.get(class_name)
    if found is None and (registered_name is None or ">" not in registered_name):
        found = builtin_objects.resolve(module, class_name)
        if found is None and _is_keras_module(module):
            # Keras 2 and internal spellings (``keras.engine.functional``, ``keras.src...``)
            # of a component that is on the allowlist anyway.
            found = builtin_objects.resolve(None, class_name)
    if found is None:
        _refuse_foreign("class", class_name, module)
    if not inspect.isclass(found):
        raise ConfigError(
            f"'{class_name}' resolves to {type(found).__name__} {getattr(found, '__name__', found)!r}, "
            "but a class was expected here"
        )
    return found


def _is_keras_module(module):
    if not isinstance(module, str):
        return False
    root = module.split(".", 1)[0]
    return root in ("keras", "tf_keras", "amber")


def _resolve_function(name, module, custom_objects, module_objects):
    if "." in name:
        _refuse_foreign("function", name, module)
    candidates = [name]
    if ">" in name:
        candidates.append(name.split(">")[-1])
    found = object_registration.lookup_custom(candidates, custom_objects)
    if found is None and ">" not in name:
        found = _registered_with_suffix(name, custom_objects)
    if found is None and module_objects:
        candidate = module_objects.get(name)
        found = candidate if inspect.isfunction(candidate) else None
    if found is None and ">" not in name:
        found = builtin_objects.resolve_function(module, name)
    if found is None:
        _refuse_foreign("function", name, module)
    if inspect.isclass(found) or not callable(found):
        raise ConfigError(f"'{name}' does not resolve to a function")
    return found


def _registered_with_suffix(name, custom_objects):
    suffix = ">" + name
    for source in (custom_objects or {}, object_registration._scope_objects(),
                   object_registration.get_custom_objects()):
        for key, obj in source.items():
            if isinstance(key, str) and key.endswith(suffix):
                return obj
    return None


def _instantiate_module_object(obj, inner_config):
    if inspect.isclass(obj):
        return obj.from_config(inner_config or {})
    return obj


def _from_module_objects(config, custom_objects, safe_mode, module_objects):
    class_name = config.get("class_name")
    obj = module_objects.get(class_name) if isinstance(class_name, str) else None
    if obj is None:
        _refuse_foreign("object", class_name, None)
    return _instantiate_module_object(obj, config.get("config"))


# ------------------------------------------------------------------ lambdas (unsafe mode only)


def _dump_function(fn):
    """(base64 marshaled code, defaults, closure values), Keras's lambda layout."""
    code = base64.b64encode(marshal.dumps(fn.__code__)).decode("ascii")
    closure = tuple(cell.cell_contents for cell in fn.__closure__) if fn.__closure__ else None
    return code, fn.__defaults__, closure


def load_function(value):
    """Rebuild a function from Keras's marshaled form. Runs file-supplied bytecode: only
    reachable with safe_mode=False."""
    if isinstance(value, (list, tuple)) and len(value) == 3:
        code, defaults, closure = value
    else:
        code, defaults, closure = value, None, None
    if not isinstance(code, str):
        raise ConfigError("A marshaled function must be a base64 string")
    try:
        raw = base64.b64decode(code.encode("ascii"), validate=False)
        code_object = marshal.loads(raw)
    except (ValueError, EOFError, TypeError) as e:
        raise ConfigError(f"Cannot decode marshaled function: {e}") from None
    if not isinstance(code_object, types.CodeType):
        raise ConfigError("A marshaled function must hold a code object")
    if isinstance(defaults, list):
        defaults = tuple(defaults)
    cells = None
    if closure is not None:
        cells = tuple(types.CellType(v) for v in closure)
    import amber

    namespace = {"__builtins__": builtins, "keras": amber, "ops": amber.ops, "np": np}
    return types.FunctionType(code_object, namespace, code_object.co_name, defaults, cells)
