"""``Sequential``: a plain stack of layers, each feeding the next.

As in Keras 3, an ``InputLayer`` (from ``keras.Input`` or a first layer's ``input_shape``)
builds the stack at once; without one the model builds on its first call. ``layers`` leaves
the InputLayer out; the config lists it.
"""

from amber.layers import tree
from amber.layers.input_layer import InputLayer
from amber.layers.keras_tensor import KerasTensor
from amber.layers.layer import CALL_CONTEXT, Layer, serialize_dtype_policy
from amber.models import inference_fold
from amber.models.model import Model


class Sequential(Model):
    def __init__(self, layers=None, trainable=True, name=None):
        super().__init__(trainable=trainable, name=name)
        object.__setattr__(self, "_graph_inputs", None)
        object.__setattr__(self, "_graph_outputs", None)
        for layer in layers or []:
            self.add(layer, rebuild=False)
        self._maybe_rebuild()

    def add(self, layer, rebuild=True):
        if isinstance(layer, KerasTensor):
            if layer._keras_history is None or not isinstance(layer._keras_history[0], InputLayer):
                raise ValueError(f"Only keras.Input tensors can be added to a Sequential model; got {layer!r}")
            layer = layer._keras_history[0]
        if not isinstance(layer, Layer):
            raise ValueError(f"Only instances of `keras.Layer` can be added to a Sequential model. Received: "
                             f"{layer!r} (of type {type(layer)})")
        if isinstance(layer, InputLayer):
            if self._layers and isinstance(self._layers[0], InputLayer):
                raise ValueError(f"Sequential model '{self.name}' has already been configured to use an input "
                                 f"with shape {self._layers[0].batch_shape}. You cannot add a different Input "
                                 f"layer to it.")
            if self._layers:
                raise ValueError("An InputLayer can only be added first to a Sequential model.")
        elif not self._layers and getattr(layer, "_input_shape_arg", None) is not None:
            # Keras 2 style: the first layer carries input_shape / batch_input_shape.
            self._layers.append(InputLayer(batch_shape=layer._input_shape_arg,
                                           dtype=getattr(layer, "_input_dtype_arg", None)))
        if any(layer is existing for existing in self._layers):
            raise ValueError(f"Layer '{layer.name}' is already in Sequential model '{self.name}'.")
        names = [existing.name for existing in self._layers]
        if layer.name in names:
            raise ValueError(f"All layers added to a Sequential model should have unique names. Name "
                             f"'{layer.name}' is already the name of a layer in this model.")
        self._layers.append(layer)
        if rebuild:
            self._maybe_rebuild()
        else:
            self.built = False

    def pop(self, rebuild=True):
        removable = [l for l in self._layers if not isinstance(l, InputLayer)]
        if not removable:
            raise TypeError("There are no layers in the model.")
        layer = self._layers.pop()
        self.built = False
        if rebuild:
            self._maybe_rebuild()
        return layer

    def _maybe_rebuild(self):
        self.built = False
        object.__setattr__(self, "_graph_inputs", None)
        object.__setattr__(self, "_graph_outputs", None)
        if self._layers and isinstance(self._layers[0], InputLayer) and len(self._layers) > 1:
            self.build(self._layers[0].batch_shape)

    def build(self, input_shape=None):
        if input_shape is None:
            raise ValueError("You must provide an `input_shape` argument.")
        if isinstance(input_shape, dict) or (isinstance(input_shape, list) and input_shape
                                             and isinstance(input_shape[0], (list, tuple))):
            raise ValueError(f"Sequential model '{self.name}' cannot be built with multiple inputs: "
                             f"{input_shape}")
        input_shape = tuple(input_shape)
        if self._in_call_build and input_shape:
            # Built from the first concrete batch: the batch size is not part of the model.
            input_shape = (None,) + input_shape[1:]
        if not self._layers or not isinstance(self._layers[0], InputLayer):
            self._layers.insert(0, InputLayer(batch_shape=input_shape))
        x = self._layers[0].output
        inputs = x
        for layer in self._layers[1:]:
            x = layer(x)
        object.__setattr__(self, "_graph_inputs", inputs)
        object.__setattr__(self, "_graph_outputs", x)
        self._build_input_shape = tuple(self._layers[0].batch_shape)
        self.built = True

    @property
    def _in_call_build(self):
        return not self.built and bool(self._layers) and not isinstance(self._layers[0], InputLayer)

    def call(self, inputs, training=None, mask=None):
        x = inputs
        steps = self._layers
        if mask is None and inference_fold.is_inference(CALL_CONTEXT):
            steps = self._inference_steps()
        for step in steps:
            if type(step) is inference_fold.FoldedConv:
                y = step(x) if mask is None else None
                if y is not None:
                    x = y
                    continue
                layers = step.layers  # the fold does not apply to this input: layer by layer
            else:
                layers = (step,)
            for layer in layers:
                if isinstance(layer, InputLayer):
                    continue
                if mask is not None and layer._call_params()[2]:
                    y = layer(x, mask=mask)
                else:
                    y = layer(x)
                if mask is not None or layer._produces_masks():
                    mask = layer.compute_mask(x, mask)
                x = y
        return x

    def _inference_steps(self):
        """The layers with Conv/BatchNormalization/activation chains folded for inference
        (``models.inference_fold``), worked out again whenever the layers change."""
        cached = self.__dict__.get("_folded_steps")
        layers = tuple(self._layers)
        if cached is None or cached[0] != layers:
            if not all(layer.built for layer in layers):
                return self._layers  # built by this call; folds are found once they are
            cached = (layers, inference_fold.fold_layers(list(layers)))
            object.__setattr__(self, "_folded_steps", cached)
        return cached[1]

    def compute_output_spec(self, *args, **kwargs):
        inputs = args[0] if args else next(iter(kwargs.values()))
        x = inputs
        for layer in self._layers:
            if not isinstance(layer, InputLayer):
                x = layer.compute_output_spec(x)
        return x

    # ------------------------------------------------------------------ structure

    @property
    def layers(self):
        return [layer for layer in self._layers if not isinstance(layer, InputLayer)]

    @layers.setter
    def layers(self, _):
        raise AttributeError("`Model.layers` attribute is reserved and should not be used.")

    def _require_graph(self, what):
        if self._graph_outputs is None:
            raise AttributeError(f"Sequential model '{self.name}' has no defined {what} yet: it is not built. "
                                 "Give it an Input or call it on data first.")

    @property
    def inputs(self):
        self._require_graph("inputs")
        return [self._graph_inputs]

    @property
    def outputs(self):
        self._require_graph("outputs")
        return tree.flatten(self._graph_outputs)

    @property
    def input(self):
        self._require_graph("input")
        return self._graph_inputs

    @property
    def output(self):
        self._require_graph("output")
        return self._graph_outputs

    @property
    def input_shape(self):
        self._require_graph("input shape")
        return self._graph_inputs.shape

    @property
    def output_shape(self):
        self._require_graph("output shape")
        return tree.map_structure(lambda t: t.shape, self._graph_outputs)

    @property
    def input_dtype(self):
        if self._layers and isinstance(self._layers[0], InputLayer):
            return self._layers[0].dtype
        return self.compute_dtype

    @property
    def output_names(self):
        return [self.layers[-1].name] if self.layers else []

    # ------------------------------------------------------------------ config

    def get_config(self):
        from amber.saving import serialize_keras_object

        config = {"name": self.name, "trainable": self.trainable, "dtype": serialize_dtype_policy(self.dtype),
                  "layers": [serialize_keras_object(layer) for layer in self._layers]}
        if self.built and self._build_input_shape is not None:
            config["build_input_shape"] = list(self._build_input_shape)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from amber.saving import deserialize_keras_object

        if isinstance(config, list):  # oldest Keras 2 form: just the layer list
            config = {"layers": config}
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            raise ValueError(f"A Sequential config needs a 'layers' list; got {config!r:.200}")
        kwargs = {}
        if "name" in config:
            kwargs["name"] = config["name"]
        if "trainable" in config:
            kwargs["trainable"] = config["trainable"]
        model = cls(**kwargs)
        for layer_config in config["layers"]:
            model.add(deserialize_keras_object(layer_config, custom_objects=custom_objects), rebuild=False)
        model._maybe_rebuild()
        shape = config.get("build_input_shape")
        if not model.built and shape is not None and model._layers:
            model.build(tuple(shape))
        return model
