"""Rewriting Keras 2 (tf_keras) model configs into the Keras 3 form the layers read.

Only spelling changes; names are still resolved by the closed-world deserializer afterwards:
``batch_input_shape`` becomes an InputLayer's ``batch_shape``; inbound nodes in the list form
``[[name, node_index, tensor_index, kwargs], ...]`` become ``{"args": [...], "kwargs": ...}``
with ``__keras_tensor__`` references; optimizer class names ``Custom>Adam`` lose the package
tf_keras adds to its own optimizers.
"""

import copy

from amber.saving.json_safety import ConfigError


def _tensor_ref(ref, label):
    if not (isinstance(ref, list) and len(ref) >= 3 and isinstance(ref[0], str)):
        raise ConfigError(f"{label}: malformed Keras 2 inbound node reference {ref!r}"[:300])
    return {
        "class_name": "__keras_tensor__",
        "config": {"shape": None, "dtype": None, "keras_history": [ref[0], ref[1], ref[2]]},
    }


def _upgrade_node(node, label):
    if isinstance(node, dict):
        return node
    if not isinstance(node, list) or not node:
        raise ConfigError(f"{label}: malformed inbound node {node!r}"[:300])
    refs = [_tensor_ref(ref, label) for ref in node]
    kwargs = node[0][3] if len(node[0]) > 3 and isinstance(node[0][3], dict) else {}
    args = [refs[0]] if len(refs) == 1 else [refs]
    return {"args": args, "kwargs": kwargs}


def _upgrade_layer(layer, label):
    if not isinstance(layer, dict):
        return layer
    config = layer.get("config")
    if isinstance(config, dict):
        if layer.get("class_name") == "InputLayer":
            if "batch_input_shape" in config and "batch_shape" not in config:
                config["batch_shape"] = config.pop("batch_input_shape")
        else:
            config.pop("batch_input_shape", None)
        _upgrade_model(layer, label)
    nodes = layer.get("inbound_nodes")
    if isinstance(nodes, list):
        layer["inbound_nodes"] = [_upgrade_node(n, label) for n in nodes]
    return layer


def _upgrade_model(model, label):
    config = model.get("config")
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        return
    layers = config["layers"]
    if model.get("class_name") == "Sequential" and layers:
        first = layers[0]
        first_config = first.get("config") if isinstance(first, dict) else None
        if (
            isinstance(first_config, dict)
            and first.get("class_name") != "InputLayer"
            and isinstance(first_config.get("batch_input_shape"), list)
        ):
            layers.insert(0, {
                "class_name": "InputLayer",
                "config": {
                    "batch_shape": first_config["batch_input_shape"],
                    "dtype": first_config.get("dtype", "float32") if isinstance(first_config.get("dtype"), str)
                    else "float32",
                    "name": f"{first_config.get('name', 'input')}_input",
                },
            })
    config["layers"] = [_upgrade_layer(layer, label) for layer in layers]


def upgrade(config, label="model config"):
    """A Keras 3 spelling of ``config`` (returned as a new dict; Keras 3 configs pass through)."""
    if not isinstance(config, dict):
        raise ConfigError(f"{label}: the model config must be a JSON object")
    config = copy.deepcopy(config)
    for key in ("keras_version", "backend"):
        config.pop(key, None)
    _upgrade_model(config, label)
    return config


# Keys tf_keras writes into optimizer configs that Keras 3 optimizers do not take.
_KERAS2_OPTIMIZER_KEYS = ("is_legacy_optimizer", "jit_compile")


def upgrade_optimizer_config(config):
    if isinstance(config, str) or config is None:
        return config
    if not isinstance(config, dict):
        raise ConfigError("training_config: optimizer_config must be an object")
    config = copy.deepcopy(config)
    class_name = config.get("class_name")
    if isinstance(class_name, str) and class_name.startswith("Custom>"):
        from amber.saving import builtin_objects, object_registration

        short = class_name.split(">", 1)[1]
        if (object_registration.get_registered_object(class_name) is None
                and builtin_objects.resolve("keras.optimizers", short) is not None):
            config["class_name"] = short
            config["registered_name"] = None
            config["module"] = "keras.optimizers"
    inner = config.get("config")
    if isinstance(inner, dict):
        for key in _KERAS2_OPTIMIZER_KEYS:
            inner.pop(key, None)
    return config
