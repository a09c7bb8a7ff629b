"""Structural checks on a model config from a file, before any object is built.

The deserializer only resolves names; these checks refuse configs whose shape is wrong:
Functional graphs that name missing layers or loop, marshaled code in safe mode, and values
of well-known size parameters that are not sane (a string ``units``, a negative shape, a
layer that would allocate absurd amounts of memory).
"""

from amber.saving.json_safety import ConfigError

# Layer arguments that must be positive integers when present.
_POSITIVE_INT_KEYS = ("units", "filters", "input_dim", "output_dim", "num_heads", "key_dim", "value_dim")
# Shape arguments: lists of positive integers or nulls.
_SHAPE_KEYS = ("batch_shape", "batch_input_shape", "input_shape", "shape")
# No single dimension of a layer argument can reasonably exceed this.
_MAX_DIM = 1 << 31
# Nor can a weight implied by a config: 2**31 elements (8 GiB of float32).
_MAX_ELEMENTS = 1 << 31


def check_model_config(config, safe_mode=True, label="config.json"):
    if not isinstance(config, dict):
        raise ConfigError(f"{label}: the model config must be a JSON object, got {type(config).__name__}")
    _walk(config, safe_mode, label, path="")


def _walk(node, safe_mode, label, path):
    stack = [(node, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, dict):
            _check_object(item, safe_mode, label, where)
            for key, value in item.items():
                if isinstance(value, (dict, list)):
                    stack.append((value, f"{where}/{key}"))
        elif isinstance(item, list):
            for i, value in enumerate(item):
                if isinstance(value, (dict, list)):
                    stack.append((value, f"{where}/{i}"))


def _check_object(obj, safe_mode, label, where):
    class_name = obj.get("class_name")
    if safe_mode and (class_name == "__lambda__" or obj.get("function_type") == "lambda"
                      or obj.get("output_shape_type") == "lambda"):
        raise ConfigError(
            f"{label}: {where or '/'} holds marshaled Python code (a lambda); refusing to load it. "
            "If you trust this file, pass safe_mode=False."
        )
    inner = obj.get("config")
    if isinstance(class_name, str) and isinstance(inner, dict):
        _check_layer_arguments(class_name, inner, label, where)
        if isinstance(inner.get("layers"), list) or "layers" in inner:
            layers = inner.get("layers")
            if not isinstance(layers, list):
                raise ConfigError(f"{label}: {where}/config/layers of {class_name!r} must be a list")
            if "input_layers" in inner or "output_layers" in inner or any(
                isinstance(l, dict) and "inbound_nodes" in l for l in layers
            ):
                _check_graph(class_name, inner, label, where)


def _check_layer_arguments(class_name, config, label, where):
    for key in _POSITIVE_INT_KEYS:
        if key in config and config[key] is not None:
            value = config[key]
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0 or value > _MAX_DIM:
                raise ConfigError(
                    f"{label}: {where}: '{key}' of {class_name} must be a positive integer, got {value!r}"
                )
    for key in _SHAPE_KEYS:
        if key in config and config[key] is not None:
            shape = config[key]
            if not isinstance(shape, list) or not all(
                d is None or (isinstance(d, int) and not isinstance(d, bool) and 0 < d <= _MAX_DIM) for d in shape
            ):
                raise ConfigError(
                    f"{label}: {where}: '{key}' of {class_name} must be a list of positive integers or "
                    f"nulls, got {shape!r}"[:400]
                )
    dims = [config.get(k) for k in ("input_dim", "output_dim") if isinstance(config.get(k), int)]
    if len(dims) == 2 and dims[0] * dims[1] > _MAX_ELEMENTS:
        raise ConfigError(f"{label}: {where}: {class_name} would allocate {dims[0]} x {dims[1]} weights")


def _layer_name(layer, index, label, where):
    if not isinstance(layer, dict):
        raise ConfigError(f"{label}: {where}/config/layers/{index} must be an object")
    name = layer.get("name")
    if name is None and isinstance(layer.get("config"), dict):
        name = layer["config"].get("name")
    if not isinstance(name, str):
        raise ConfigError(f"{label}: {where}/config/layers/{index} has no layer name")
    return name


def _inbound_names(node, label, where):
    """Names of the layers a node reads from, in both the Keras 3 and the Keras 2 forms."""
    names = []
    if isinstance(node, dict):
        stack = [node.get("args", []), node.get("kwargs", {})]
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                if item.get("class_name") == "__keras_tensor__":
                    history = (item.get("config") or {}).get("keras_history")
                    if not (isinstance(history, list) and history and isinstance(history[0], str)):
                        raise ConfigError(f"{label}: {where}: a tensor in inbound_nodes has no keras_history")
                    node_index = history[1] if len(history) > 1 else 0
                    names.append((history[0], node_index))
                else:
                    stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
    elif isinstance(node, list):
        # Keras 2: [[layer_name, node_index, tensor_index, kwargs], ...]
        for ref in node:
            if isinstance(ref, list) and ref and isinstance(ref[0], str):
                names.append((ref[0], ref[1] if len(ref) > 1 else 0))
            else:
                raise ConfigError(f"{label}: {where}: malformed inbound node {ref!r}"[:300])
    else:
        raise ConfigError(f"{label}: {where}: malformed inbound node {node!r}"[:300])
    return names


def _check_graph(class_name, config, label, where):
    layers = config["layers"]
    names = {}
    for i, layer in enumerate(layers):
        name = _layer_name(layer, i, label, where)
        if name in names:
            raise ConfigError(f"{label}: {where}: two layers are named {name!r}")
        names[name] = i
    # Nodes are (layer, call index); a layer may be reused, so cycles are looked for
    # between nodes, not layers.
    node_counts = {}
    for i, layer in enumerate(layers):
        nodes = layer.get("inbound_nodes", [])
        if not isinstance(nodes, list):
            raise ConfigError(f"{label}: {where}: inbound_nodes of layer {layer.get('name')!r} must be a list")
        node_counts[_layer_name(layer, i, label, where)] = max(len(nodes), 1)
    edges = {}
    for i, layer in enumerate(layers):
        name = _layer_name(layer, i, label, where)
        for k, node in enumerate(layer.get("inbound_nodes", [])):
            sources = []
            for source, node_index in _inbound_names(node, label, f"{where} layer {name!r}"):
                if source not in names:
                    raise ConfigError(
                        f"{label}: {where or '/'}: layer {name!r} takes input from layer {source!r}, "
                        f"which is not in the model"
                    )
                if not isinstance(node_index, int) or isinstance(node_index, bool) or not (
                    0 <= node_index < node_counts[source]
                ):
                    raise ConfigError(
                        f"{label}: {where}: layer {name!r} reads node {node_index!r} of layer {source!r}, "
                        f"which has {node_counts[source]} node(s)"
                    )
                sources.append((source, node_index))
            edges[(name, k)] = sources
    for key in ("input_layers", "output_layers"):
        for ref in _endpoint_refs(config.get(key)):
            if ref not in names:
                raise ConfigError(f"{label}: {where}: {key} names layer {ref!r}, which is not in the model")
    _refuse_cycles(edges, label, where)


def _endpoint_refs(value):
    """Layer names in input_layers/output_layers: [name, i, j], or lists/dicts of those."""
    out = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            if len(item) == 3 and isinstance(item[0], str) and all(isinstance(v, int) for v in item[1:]):
                out.append(item[0])
            else:
                stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
    return out


def _refuse_cycles(edges, label, where):
    state = {}  # name -> 1 visiting, 2 done
    for start in edges:
        if state.get(start) == 2:
            continue
        stack = [(start, iter(edges.get(start, ())))]
        state[start] = 1
        while stack:
            name, sources = stack[-1]
            nxt = next(sources, None)
            if nxt is None:
                state[name] = 2
                stack.pop()
                continue
            if state.get(nxt) == 1:
                raise ConfigError(f"{label}: {where}: the layer graph has a cycle through layer {nxt[0]!r}")
            if state.get(nxt) is None:
                state[nxt] = 1
                stack.append((nxt, iter(edges.get(nxt, ()))))
