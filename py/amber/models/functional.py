"""Functional models: a graph of layer calls between symbolic inputs and outputs.

Graph order follows Keras 3 so that ``model.layers`` and ``model.weights`` line up with
Keras's: each layer's depth is the longest path from it to an output, layers are listed by
decreasing depth, ties broken by the order a depth-first walk from the outputs first meets
them. Configs are written in Keras 3's form (``inbound_nodes`` of ``args``/``kwargs`` with
``__keras_tensor__`` references) and read in that form or Keras 2's list form.
"""

import numpy as np

from amber.layers import tree
from amber.layers.call_masks import fill_mask_arguments
from amber.layers.graph_ops import GraphOp
from amber.layers.input_layer import InputLayer
from amber.layers.keras_tensor import KerasTensor
from amber.layers.layer import CALL_CONTEXT, Layer
from amber.models import inference_fold
from amber.models.model import Model


def _history(tensor):
    if not isinstance(tensor, KerasTensor) or tensor._keras_history is None:
        raise ValueError(f"Functional model inputs and outputs must be symbolic tensors produced by "
                         f"`keras.Input` or by layers called on them. Received: {tensor!r}")
    return tensor._keras_history


def map_graph(inputs, outputs):
    """(nodes in execution order, layers in Keras order) of the graph between the tensors."""
    input_ids = {id(t) for t in inputs}
    finished, in_progress = set(), set()
    ordered_nodes = []  # parents before children
    first_seen = {}  # layer id -> pre-order index

    def visit(tensor):
        layer, node_index, _ = _history(tensor)
        node = layer._inbound_nodes[node_index]
        if id(node) in finished:
            return
        if not node.is_input and id(tensor) in input_ids:
            finished.add(id(node))
            return
        if id(node) in in_progress:
            raise ValueError(f"Tensor {tensor} from layer '{layer.name}' is part of a cycle.")
        first_seen.setdefault(id(layer), len(first_seen))
        in_progress.add(id(node))
        # Iterative enough for real models; recursion depth equals graph depth.
        for parent in node.input_tensors:
            visit(parent)
        in_progress.discard(id(node))
        finished.add(id(node))
        ordered_nodes.append(node)

    for tensor in outputs:
        visit(tensor)

    node_depth, layer_depth = graph_depths(ordered_nodes)
    layers_by_id = {id(node.layer): node.layer for node in ordered_nodes}

    # Inputs not connected to any output still belong to the model.
    for tensor in inputs:
        layer, node_index, _ = _history(tensor)
        node = layer._inbound_nodes[node_index]
        if id(layer) not in layer_depth and node.is_input:
            layer_depth[id(layer)] = 0
            layers_by_id[id(layer)] = layer
            first_seen[id(layer)] = -1
            ordered_nodes.insert(0, node)

    computable = set(input_ids)
    for node in ordered_nodes:
        if node.is_input and not any(id(t) in input_ids for t in node.output_tensors):
            raise ValueError(f"Graph disconnected: the output depends on the input '{node.layer.name}', which "
                             "is not among the model's inputs.")
        for tensor in node.input_tensors:
            if id(tensor) not in computable:
                raise ValueError(f"Graph disconnected: cannot find parent for tensor {tensor} at layer "
                                 f"'{node.layer.name}'. Pass it (or its Input) in the model's inputs.")
        for tensor in node.output_tensors:
            computable.add(id(tensor))

    layers = sorted(layers_by_id.values(), key=lambda l: (-layer_depth[id(l)], first_seen[id(l)]))
    names = [l.name for l in layers]
    for name in names:
        if names.count(name) > 1:
            raise ValueError(f'The name "{name}" is used {names.count(name)} times in the model. '
                             "All layer names should be unique.")
    return ordered_nodes, layers


def graph_depths(ordered_nodes):
    """({node id: depth}, {layer id: depth}) of nodes listed parents before children.

    A node's depth is the longest path from it to an output (outputs are 0); a shared layer
    takes the deepest of its nodes' depths, and its later nodes start from that depth."""
    node_ids = {id(n) for n in ordered_nodes}
    node_depth, layer_depth = {}, {}
    for node in reversed(ordered_nodes):
        depth = max(node_depth.setdefault(id(node), 0), layer_depth.get(id(node.layer), 0))
        layer_depth[id(node.layer)] = depth
        node_depth[id(node)] = depth
        for parent in node.parent_nodes:
            if id(parent) in node_ids:
                node_depth[id(parent)] = max(depth + 1, node_depth.get(id(parent), 0))
    return node_depth, layer_depth


class Functional(Model):
    """A model defined by ``Model(inputs, outputs)``."""

    def __init__(self, inputs, outputs, name=None, **kwargs):
        trainable = kwargs.pop("trainable", True)
        super().__init__(name=name, trainable=trainable, **kwargs)
        self._init_graph(inputs, outputs)

    def _init_graph(self, inputs, outputs):
        if isinstance(inputs, dict):
            inputs = dict(inputs)
        elif isinstance(inputs, tuple):
            inputs = list(inputs)
        if isinstance(outputs, tuple):
            outputs = list(outputs)
        object.__setattr__(self, "_inputs_struct", inputs)
        object.__setattr__(self, "_outputs_struct", outputs)
        flat_in = tree.flatten(inputs)
        flat_out = tree.flatten(outputs)
        for t in flat_in + flat_out:
            _history(t)
        nodes, layers = map_graph(flat_in, flat_out)
        object.__setattr__(self, "_nodes", nodes)
        object.__setattr__(self, "_flat_inputs", flat_in)
        object.__setattr__(self, "_flat_outputs", flat_out)
        # Every graph node's owner in Keras order (the config lists them all); operation
        # nodes (``x * 0.5``) own no weights and, as in Keras, are not among ``layers``.
        object.__setattr__(self, "_operations", layers)
        for layer in layers:
            if not isinstance(layer, GraphOp):
                self._track(layer)
        # Execution plan: (layer, args, kwargs, flat output tensor ids) for non-input nodes.
        plan = []
        for node in nodes:
            if node.is_input:
                continue
            # The recorded training value is only the call's default: at run time the
            # model's own training flag reaches every layer through the call context.
            run_kwargs = {k: v for k, v in node.call_kwargs.items() if k != "training"}
            single = (len(node.call_args) == 1 and isinstance(node.call_args[0], KerasTensor)
                      and all(value is None for value in run_kwargs.values()))
            plan.append([node.layer, node.call_args, run_kwargs, [id(t) for t in node.output_tensors], single])
        object.__setattr__(self, "_plan", plan)
        object.__setattr__(self, "_releases", _release_schedule(plan, flat_out))
        object.__setattr__(self, "_folded_plan", None)
        self.built = True
        self._build_input_shape = None

    # ------------------------------------------------------------------ structure

    @property
    def layers(self):
        return list(self._layers)

    @layers.setter
    def layers(self, _):
        raise AttributeError("`Model.layers` attribute is reserved and should not be used.")

    @property
    def inputs(self):
        return list(self._flat_inputs)

    @property
    def outputs(self):
        return list(self._flat_outputs)

    @property
    def input(self):
        return self._inputs_struct

    @property
    def output(self):
        return self._outputs_struct

    @property
    def input_shape(self):
        shapes = tree.map_structure(lambda t: t.shape, self._inputs_struct)
        return shapes

    @property
    def output_shape(self):
        return tree.map_structure(lambda t: t.shape, self._outputs_struct)

    @property
    def input_names(self):
        return [t._keras_history[0].name for t in self._flat_inputs]

    @property
    def output_names(self):
        if isinstance(self._outputs_struct, dict):
            return list(self._outputs_struct.keys())
        return [t._keras_history[0].name for t in self._flat_outputs]

    # ------------------------------------------------------------------ calling

    def _standardize_inputs(self, inputs):
        """Match the caller's structure to the model's inputs, as a flat list."""
        struct = self._inputs_struct
        if isinstance(inputs, dict):
            if isinstance(struct, dict):
                missing = [k for k in struct if k not in inputs]
                if missing:
                    raise ValueError(f"Model '{self.name}' is missing inputs {missing}; got keys {list(inputs)}")
                return [inputs[k] for k in tree.sorted_keys(struct)]
            names = [t._keras_history[0].name for t in self._flat_inputs]
            if all(n in inputs for n in names):
                return [inputs[n] for n in names]
            flat = list(inputs.values())
        elif isinstance(inputs, (list, tuple)):
            flat = tree.flatten(list(inputs))
        else:
            flat = [inputs]
        if len(flat) != len(self._flat_inputs):
            raise ValueError(f"Model '{self.name}' expects {len(self._flat_inputs)} input(s), but it received "
                             f"{len(flat)} input tensors.")
        return flat

    def call(self, inputs, training=None, mask=None):
        flat = self._standardize_inputs(inputs)
        values = {}
        for tensor, value in zip(self._flat_inputs, flat):
            if isinstance(value, np.ndarray) and value.dtype != tensor.dtype and value.dtype.kind in "fiub":
                if np.dtype(tensor.dtype).kind == "f" or value.dtype.kind == "f":
                    value = value.astype(tensor.dtype)
            values[id(tensor)] = value
        context = CALL_CONTEXT
        masks = {}
        plan, releases = (self._inference_plan() if inference_fold.is_inference(context)
                          else (self._plan, self._releases))
        for entry, release in zip(plan, releases):
            if entry[4] is inference_fold.FOLD:
                source = id(entry[1][0])
                outputs = None if masks.get(source) is not None else entry[0](values[source])
                if outputs is not None:
                    values[entry[3][0]] = outputs
                else:  # the fold does not apply to this input: layer by layer
                    for layer, args, kwargs, out_ids, single in entry[2]:
                        self._run_entry(layer, args, kwargs, out_ids, single, values, masks, context)
            else:
                self._run_entry(*entry, values, masks, context)
            for tensor_id in release:
                values.pop(tensor_id, None)
        return tree.pack_like(self._outputs_struct, [values[id(t)] for t in self._flat_outputs])

    def _inference_plan(self):
        """``_plan`` with Conv/BatchNormalization/activation chains folded for inference
        (``models.inference_fold``) and its release schedule, worked out on the first
        inference call."""
        folded = self.__dict__.get("_folded_plan")
        if folded is None:
            plan = inference_fold.fold_plan(self._plan, self._flat_outputs)
            folded = (plan, _release_schedule(plan, self._flat_outputs))
            object.__setattr__(self, "_folded_plan", folded)
        return folded

    def _run_entry(self, layer, args, kwargs, out_ids, single, values, masks, context):
        """Runs one node of the plan, storing its outputs (and masks) by tensor id."""
        x = values[id(args[0])] if single else None
        mask = masks.get(id(args[0])) if single and masks else None
        if mask is not None:
            # Keras-style mask propagation (e.g. from Embedding(mask_zero=True)).
            outputs = layer(x, mask=mask) if layer._call_params()[2] else layer(x)
        elif single and layer.built and getattr(x, "dtype", None) == layer._dtype_name and _is_leaf_layer(layer):
            # A built layer without sublayers or activity regularizer, input already in its
            # dtype: call it directly (the outer __call__ set the training context).
            _, takes_training, _, training_default = layer._call_params()
            if takes_training:
                training = context.training if context.training is not None else training_default
                outputs = layer.call(x, training=training)
            else:
                outputs = layer.call(x)
        elif single:
            outputs = layer(values[id(args[0])])
        else:
            call_args = tree.map_structure(lambda x: values[id(x)] if isinstance(x, KerasTensor) else x,
                                           list(args))
            call_kwargs = tree.map_structure(
                lambda x: values[id(x)] if isinstance(x, KerasTensor) else x, dict(kwargs))
            previous_mask = (fill_mask_arguments(layer, args, kwargs, call_kwargs, lambda t: masks.get(id(t)))
                             if masks else None)
            outputs = layer(*call_args, **call_kwargs)
            if previous_mask is not None and (layer.supports_masking or layer._produces_masks()):
                out_masks = tree.flatten(layer.compute_mask(call_args[0] if call_args else None,
                                                            previous_mask))
                for tensor_id, out_mask in zip(out_ids, out_masks):
                    if out_mask is not None:
                        masks[tensor_id] = out_mask
        if single and len(out_ids) == 1 and (mask is not None or layer._produces_masks()):
            out_mask = layer.compute_mask(x, mask)
            if out_mask is not None and not tree.is_nested(out_mask):
                masks[out_ids[0]] = out_mask
        if len(out_ids) == 1:
            values[out_ids[0]] = outputs if not tree.is_nested(outputs) else tree.flatten(outputs)[0]
        else:
            for tensor_id, value in zip(out_ids, tree.flatten(outputs)):
                values[tensor_id] = value

    def compute_output_spec(self, *args, **kwargs):
        inputs = args[0] if args else next(iter(kwargs.values()))
        flat = self._standardize_inputs(inputs)
        if all(isinstance(x, KerasTensor) and x.shape == t.shape for x, t in zip(flat, self._flat_inputs)):
            return tree.map_structure(lambda t: KerasTensor(t.shape, t.dtype), self._outputs_struct)
        return super().compute_output_spec(*args, **kwargs)

    def build(self, input_shape=None):
        self.built = True

    # ------------------------------------------------------------------ config

    def get_build_config(self):
        # A Functional model is built by its graph; Keras still writes an empty input shape.
        return {"input_shape": None}

    def _node_index_map(self):
        """Per layer, its node indices that belong to this model, renumbered from 0."""
        in_model = {id(n) for n in self._nodes}
        mapping = {}
        for layer in self._operations:
            kept = [i for i, n in enumerate(layer._inbound_nodes) if id(n) in in_model]
            mapping[id(layer)] = {old: new for new, old in enumerate(kept)}
        return mapping

    def get_config(self):
        from amber.saving import serialize_keras_object

        mapping = self._node_index_map()

        def node_index_of(layer, index):
            return mapping.get(id(layer), {}).get(index, index)

        def ref(value):
            if isinstance(value, KerasTensor):
                return value._config_ref(node_index_of)
            if isinstance(value, np.ndarray):
                return value.tolist()
            if isinstance(value, (Layer,)) or callable(value):
                return serialize_keras_object(value)
            return value

        in_model = {id(n) for n in self._nodes}
        layer_configs = []
        for layer in self._operations:
            entry = dict(serialize_keras_object(layer))
            entry["name"] = layer.name
            nodes = []
            for node in layer._inbound_nodes:
                if id(node) not in in_model or node.is_input:
                    continue
                nodes.append({"args": tree.map_structure(ref, list(node.call_args)),
                              "kwargs": tree.map_structure(ref, dict(node.call_kwargs))})
            entry["inbound_nodes"] = nodes
            layer_configs.append(entry)

        def endpoint(tensor):
            layer, node_index, tensor_index = tensor._keras_history
            return [layer.name, node_index_of(layer, node_index), tensor_index]

        def endpoints(struct):
            if isinstance(struct, dict):
                return {k: endpoint(v) for k, v in struct.items()}
            if isinstance(struct, list):
                return [endpoint(t) for t in struct]
            return endpoint(struct)

        return {"name": self.name, "trainable": self.trainable, "layers": layer_configs,
                "input_layers": endpoints(self._inputs_struct), "output_layers": endpoints(self._outputs_struct)}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return functional_from_config(cls, config, custom_objects=custom_objects)


def _release_schedule(plan, flat_outputs):
    """For each plan entry, the ids of the tensors it is the last reader of: the forward pass
    drops each intermediate as soon as nothing more needs it, so a deep network holds only
    its live activations rather than all of them until the end (under a tape, the recorded
    backward keeps what it needs itself). The model's outputs are kept."""
    keep = {id(t) for t in flat_outputs}
    last = {}
    for index, entry in enumerate(plan):
        for tensor_id in inference_fold.tensors_read(entry):
            last[tensor_id] = index
    schedule = [[] for _ in plan]
    for tensor_id, index in last.items():
        if tensor_id not in keep:
            schedule[index].append(tensor_id)
    return [tuple(ids) for ids in schedule]


def _is_leaf_layer(layer):
    return not layer._layers and layer.activity_regularizer is None


def _unwrap_single(struct):
    # Keras 2 wrote every endpoint list as a list; one tensor means a single input/output.
    if isinstance(struct, list) and len(struct) == 1:
        return struct[0]
    return struct


def _deserialize_layer(layer_config, custom_objects):
    from amber.saving import deserialize_keras_object

    return deserialize_keras_object(layer_config, custom_objects=custom_objects)


def functional_from_config(cls, config, custom_objects=None):
    """Rebuild a Functional model (or a subclass) from Keras 3 or Keras 2 config."""
    if not isinstance(config, dict) or "layers" not in config:
        raise ValueError(f"A functional model config needs a 'layers' list; got keys "
                         f"{sorted(config) if isinstance(config, dict) else type(config).__name__}")
    created = {}
    pending = []  # (layer, [node_data...])
    for layer_data in config["layers"]:
        if not isinstance(layer_data, dict):
            raise ValueError(f"Each entry of a functional config's 'layers' must be a dict, got {layer_data!r}")
        layer_name = layer_data.get("name") or layer_data.get("config", {}).get("name")
        layer = _deserialize_layer(layer_data, custom_objects)
        if layer_name is None:
            layer_name = layer.name
        created[layer_name] = layer
        nodes = layer_data.get("inbound_nodes", [])
        if not isinstance(nodes, list):
            raise ValueError(f"Layer '{layer_name}': 'inbound_nodes' must be a list")
        pending.append((layer, layer_name, list(nodes)))

    # node outputs: (layer_name, node_index) -> flat list of output tensors
    produced = {}
    for layer_name, layer in created.items():
        if isinstance(layer, InputLayer):
            produced[(layer_name, 0)] = [layer.output]

    def tensor_for(history):
        name, node_index, tensor_index = history[0], int(history[1]), int(history[2])
        outputs = produced.get((name, node_index))
        if outputs is None:
            return None
        if not 0 <= tensor_index < len(outputs):
            raise ValueError(f"Functional config refers to output {tensor_index} of layer '{name}', which has "
                             f"{len(outputs)} outputs")
        return outputs[tensor_index]

    class _Missing(Exception):
        pass

    def resolve(value):
        if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
            history = value.get("config", {}).get("keras_history")
            if not isinstance(history, (list, tuple)) or len(history) != 3:
                raise ValueError(f"Malformed keras_history in functional config: {history!r}")
            tensor = tensor_for(history)
            if tensor is None:
                raise _Missing()
            return tensor
        if isinstance(value, list):
            return [resolve(v) for v in value]
        if isinstance(value, tuple):
            return tuple(resolve(v) for v in value)
        if isinstance(value, dict):
            return {k: resolve(v) for k, v in value.items()}
        return value

    def keras2_node(node_data):
        """Keras 2: a node is a list of [layer_name, node_index, tensor_index, kwargs]."""
        tensors = []
        kwargs = {}
        for entry in node_data:
            if not isinstance(entry, (list, tuple)) or len(entry) < 3:
                raise ValueError(f"Malformed Keras 2 inbound node entry: {entry!r}")
            tensor = tensor_for(entry[:3])
            if tensor is None:
                raise _Missing()
            tensors.append(tensor)
            if len(entry) > 3 and isinstance(entry[3], dict):
                kwargs.update(entry[3])
        args = [tensors[0] if len(tensors) == 1 else tensors]
        return args, kwargs

    progress = True
    while progress and any(nodes for _, _, nodes in pending):
        progress = False
        for layer, name, nodes in pending:
            while nodes:
                node_data = nodes[0]
                try:
                    if isinstance(node_data, dict):
                        args = resolve(node_data.get("args", []))
                        kwargs = resolve(node_data.get("kwargs", {}))
                    elif isinstance(node_data, list):
                        args, kwargs = keras2_node(node_data)
                    else:
                        raise ValueError(f"Layer '{name}': malformed inbound node {node_data!r}")
                except _Missing:
                    break
                outputs = layer(*args, **kwargs)
                index = sum(1 for key in produced if key[0] == name)
                produced[(name, index)] = tree.flatten(outputs)
                nodes.pop(0)
                progress = True
    stuck = [name for _, name, nodes in pending if nodes]
    if stuck:
        raise ValueError(f"Functional config could not be connected: layers {stuck} refer to tensors that no "
                         "layer in the config produces")

    def endpoint(data):
        if not isinstance(data, (list, tuple)) or len(data) < 3:
            raise ValueError(f"Malformed input/output layer reference in functional config: {data!r}")
        tensor = tensor_for(data)
        if tensor is None:
            raise ValueError(f"Functional config names unknown layer output {data!r}")
        return tensor

    def endpoints(data):
        if isinstance(data, dict):
            return {k: endpoint(v) for k, v in data.items()}
        if isinstance(data, (list, tuple)) and data and isinstance(data[0], (list, tuple)):
            return [endpoint(v) for v in data]
        return endpoint(data)

    inputs = _unwrap_single(endpoints(config.get("input_layers", [])))
    outputs = _unwrap_single(endpoints(config.get("output_layers", [])))
    kwargs = {}
    if "name" in config:
        kwargs["name"] = config["name"]
    if "trainable" in config:
        kwargs["trainable"] = config["trainable"]
    if cls is Functional or cls is Model:
        return Functional(inputs, outputs, **kwargs)
    return cls(inputs=inputs, outputs=outputs, **kwargs)

