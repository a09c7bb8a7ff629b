"""``clone_model``: the same architecture with freshly initialized weights (Keras's
``models.clone_model``). Layers are rebuilt from their configs, so names are kept and no
variable is shared with the original."""


def _default_clone(layer):
    return layer.__class__.from_config(layer.get_config())


def clone_model(model, input_tensors=None, clone_function=None, call_function=None, recursive=False, **kwargs):
    if kwargs:
        raise TypeError(f"clone_model() got unexpected arguments: {sorted(kwargs)}")
    from amber import layers as layers_module

    class_name = type(model).__name__
    if class_name == "Sequential" and (clone_function is not None or input_tensors is not None):
        clone = clone_function or _default_clone
        new_layers = [clone(layer) for layer in model.layers]
        sequential_cls = type(model)
        if input_tensors is not None:
            inputs = input_tensors[0] if isinstance(input_tensors, (list, tuple)) else input_tensors
            return sequential_cls([layers_module.InputLayer(input_tensor=inputs)] + new_layers, name=model.name) \
                if _accepts_input_tensor() else sequential_cls(new_layers, name=model.name)
        config = model.get_config()
        shape = _sequential_input_shape(config)
        head = [layers_module.Input(batch_shape=tuple(shape))] if shape is not None else []
        return sequential_cls(head + new_layers, name=model.name)
    if clone_function is not None or input_tensors is not None or call_function is not None:
        return _clone_functional(model, input_tensors, clone_function or _default_clone)
    # Rebuilding from the config gives new layers and fresh weights in one step.
    return type(model).from_config(model.get_config())


def _accepts_input_tensor():
    import inspect

    from amber import layers as layers_module

    return "input_tensor" in inspect.signature(layers_module.InputLayer.__init__).parameters


def _sequential_input_shape(config):
    for layer in config.get("layers", []):
        if isinstance(layer, dict) and layer.get("class_name") == "InputLayer":
            return layer.get("config", {}).get("batch_shape")
    return config.get("build_input_shape")


def _clone_functional(model, input_tensors, clone):
    """Re-run the graph of a Functional model through cloned layers, in the config's order."""
    from amber import layers as layers_module
    from amber.saving import serialization_lib

    config = model.get_config()
    by_name = {layer.name: layer for layer in model.layers}
    tensors = {}
    new_inputs = []
    given = list(input_tensors) if isinstance(input_tensors, (list, tuple)) else (
        [input_tensors] if input_tensors is not None else [])
    for entry in config["layers"]:
        name = entry["name"]
        layer = by_name[name]
        if entry["class_name"] == "InputLayer":
            tensor = given.pop(0) if given else layers_module.Input(
                batch_shape=tuple(entry["config"]["batch_shape"]), dtype=entry["config"].get("dtype"), name=name)
            tensors[(name, 0, 0)] = tensor
            new_inputs.append(tensor)
            continue
        new_layer = clone(layer)
        for node_index, node in enumerate(entry.get("inbound_nodes", [])):
            args = serialization_lib.deserialize_keras_object(node.get("args", []))
            kwargs = serialization_lib.deserialize_keras_object(node.get("kwargs", {}))
            args = _substitute(args, tensors)
            kwargs = _substitute(kwargs, tensors)
            outputs = new_layer(*args, **kwargs)
            flat = outputs if isinstance(outputs, (list, tuple)) else [outputs]
            for tensor_index, tensor in enumerate(flat):
                tensors[(name, node_index, tensor_index)] = tensor
    outputs = [tensors[tuple(ref)] for ref in _refs(config["output_layers"])]
    inputs = new_inputs if len(new_inputs) != 1 else new_inputs[0]
    outputs = outputs if len(outputs) != 1 else outputs[0]
    return type(model)(inputs, outputs, name=model.name)


def _refs(value):
    if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str):
        return [value]
    out = []
    for item in value.values() if isinstance(value, dict) else value:
        out.extend(_refs(item))
    return out


def _substitute(value, tensors):
    history = getattr(value, "_pre_serialization_keras_history", None)
    if history is not None:
        return tensors[tuple(history)]
    if isinstance(value, list):
        return [_substitute(v, tensors) for v in value]
    if isinstance(value, tuple):
        return tuple(_substitute(v, tensors) for v in value)
    if isinstance(value, dict):
        return {k: _substitute(v, tensors) for k, v in value.items()}
    return value
