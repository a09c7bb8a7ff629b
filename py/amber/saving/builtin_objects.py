"""The allowlist of amber's own model components, and their Keras names.

A config may name a built-in only through this table: it is built from the ``__all__`` lists
of the component namespaces (layers, initializers, ...), never by importing what a file
names. Helpers such as ``get``/``serialize``/``deserialize``, and namespaces that hold no
model components (config, utils, saving, export, backend), are not in it.
"""

import importlib
import inspect
import sys

# Keras module name -> amber namespace, in lookup order for configs that carry no module
# (Keras 2): layers first, as most names are layers.
NAMESPACES = (
    ("keras.layers", "amber.layers"),
    ("keras.models", "amber.models"),
    ("keras.activations", "amber.activations"),
    ("keras.initializers", "amber.initializers"),
    ("keras.regularizers", "amber.regularizers"),
    ("keras.constraints", "amber.constraints"),
    ("keras.optimizers", "amber.optimizers"),
    ("keras.optimizers.schedules", "amber.optimizers.schedules"),
    ("keras.losses", "amber.losses"),
    ("keras.metrics", "amber.metrics"),
)

# Names Keras exports at its top level (``"module": "keras"``) and where amber keeps them.
TOP_LEVEL = {
    "Sequential": ("amber", "amber.models"),
    "Model": ("amber", "amber.models"),
    "Functional": ("amber.models", "amber"),
    "DTypePolicy": ("amber", "amber.layers", "amber.backend"),
    "FloatDTypePolicy": ("amber", "amber.layers", "amber.backend"),
    "InputSpec": ("amber", "amber.layers"),
    "Layer": ("amber", "amber.layers"),
}

# Keras writes Functional models under an internal module; it is the one internal name kept.
FUNCTIONAL_MODULE = "keras.src.models.functional"

# Keras-internal modules whose classes appear in saved configs, and where amber keeps their
# counterparts: the operation nodes a Functional graph records for ops on symbolic tensors
# (``x * 0.5``, the masks layers compute, ``ops.cast``), whose names (Add, Concatenate) clash
# with layers, and layers Keras keeps inside its applications. They resolve only under their
# module; Keras writes a registered_name for them, as for Functional.
INTERNAL_MODULES = {
    "keras.src.ops.numpy": "amber.layers.graph_ops",
    "keras.src.ops.core": "amber.layers.graph_ops_core",
    "keras.src.applications.convnext": "amber.applications.convnext",
}

# Namespace helpers that are public but are not components a config may name.
NOT_COMPONENTS = frozenset({"get", "serialize", "deserialize"})


def _namespace(module_name):
    module = sys.modules.get(module_name)
    if module is not None:
        return module
    try:
        return importlib.import_module(module_name)
    except ImportError:
        return None


def _is_component(obj):
    if obj is None or inspect.ismodule(obj):
        return False
    return inspect.isclass(obj) or inspect.isfunction(obj) or callable(obj)


# module name -> (its __all__ as a tuple, the str names in it as a set). Resolving a name needs
# only membership; rebuilding the whole table for every name in a config was a tenth of a
# mapped load. Any change to __all__ is noticed, and objects are looked up live, so an
# attribute replaced at run time is what resolves.
_listed_cache = {}


def _listed(module):
    names = tuple(getattr(module, "__all__", ()))
    cached = _listed_cache.get(module.__name__)
    if cached is None or cached[0] != names:
        cached = (names, frozenset(n for n in names if isinstance(n, str)))
        _listed_cache[module.__name__] = cached
    return cached[1]


def _component(module_name, name):
    """The model component ``name`` that namespace ``module_name`` lists in ``__all__``."""
    module = _namespace(module_name)
    if module is None or not isinstance(name, str) or name in NOT_COMPONENTS or name not in _listed(module):
        return None
    obj = getattr(module, name, None)
    return obj if _is_component(obj) else None


def _top_level(name):
    for module_name in TOP_LEVEL.get(name, ()):
        module = _namespace(module_name)
        obj = getattr(module, name, None) if module is not None else None
        if obj is not None and inspect.isclass(obj):
            return obj
    return None


def resolve(module, name):
    """The built-in component ``name`` of Keras module ``module`` (None: search them all,
    as Keras 2 configs carry no module), or None when the allowlist has no such entry."""
    if not isinstance(name, str) or not name or "." in name or ">" in name:
        return None
    if module is None:
        for _, amber_module in NAMESPACES:
            obj = _component(amber_module, name)
            if obj is not None:
                return obj
        return _top_level(name)
    if not isinstance(module, str):
        return None
    module = _keras_spelling(module)
    if module == "keras":
        return _top_level(name)
    if module == FUNCTIONAL_MODULE:
        return _top_level(name) if name == "Functional" else None
    if module in INTERNAL_MODULES:
        return _component(INTERNAL_MODULES[module], name)
    for keras_module, amber_module in NAMESPACES:
        if module == keras_module:
            obj = _component(amber_module, name)
            if obj is None and keras_module == "keras.models":
                obj = _top_level(name)
            return obj
    return None


def resolve_function(module, name):
    """A built-in function (activation, loss, metric, ...) named by a function config."""
    if not isinstance(name, str):
        return None
    if module in (None, "builtins"):
        for keras_module, amber_module in NAMESPACES:
            obj = _component(amber_module, name)
            if obj is not None and inspect.isfunction(obj):
                return obj
        return None
    obj = resolve(module, name)
    return obj if inspect.isfunction(obj) else None


def _keras_spelling(module):
    """Files amber writes say ``keras.*``; accept ``amber.*`` spelled the same way."""
    if module == "amber":
        return "keras"
    if module.startswith("amber."):
        return "keras." + module[len("amber."):]
    return module


def public_name(obj):
    """(Keras module, name) for an allowlisted built-in, or None for anything else."""
    target = obj
    name = getattr(target, "__name__", None)
    if name is None:
        return None
    if name in TOP_LEVEL and _top_level(name) is target:
        if name == "Functional":
            return (FUNCTIONAL_MODULE, name)
        return ("keras", name)
    for keras_module, amber_module in INTERNAL_MODULES.items():
        if getattr(target, "__module__", None) == amber_module:
            return (keras_module, name) if _component(amber_module, name) is target else None
    for keras_module, amber_module in NAMESPACES:
        if keras_module == "keras.models":
            continue
        if _component(amber_module, name) is target:
            return (keras_module, name)
    return None
