"""``Model``: a Layer with the training API (compile/fit/evaluate/predict), summary and
save/load delegation. ``Model(inputs, outputs)`` builds a Functional model; subclasses
define ``call`` and get attribute tracking from Layer."""

import numpy as np

from amber.layers import tree
from amber.layers.keras_tensor import KerasTensor
from amber.layers.layer import Layer


def _is_functional_call(args, kwargs):
    if "inputs" in kwargs and "outputs" in kwargs:
        return True
    if len(args) >= 2 or (len(args) == 1 and "outputs" in kwargs):
        first = tree.flatten(args[0] if args else kwargs["inputs"])
        return bool(first) and all(isinstance(x, KerasTensor) for x in first)
    return False


class Model(Layer):
    """Groups layers into an object with training and inference features."""

    def __new__(cls, *args, **kwargs):
        if cls is Model and _is_functional_call(args, kwargs):
            from amber.models.functional import Functional

            return Functional.__new__(Functional, *args, **kwargs)
        return super().__new__(cls, *args, **kwargs)

    def __init__(self, *args, **kwargs):
        from amber.models.functional import Functional

        if not isinstance(self, Functional) and _is_functional_call(args, kwargs):
            # A Model subclass whose __init__ passes inputs/outputs up: like Keras, make the
            # class a Functional subclass so it gets the graph behaviour.
            _inject_functional(type(self), Functional)
            Functional.__init__(self, *args, **kwargs)
            return
        trainable = kwargs.pop("trainable", True)
        name = kwargs.pop("name", None)
        dtype = kwargs.pop("dtype", None)
        super().__init__(trainable=trainable, name=name, dtype=dtype, **kwargs)
        self._reset_compile_state()

    def _reset_compile_state(self):
        object.__setattr__(self, "optimizer", None)
        object.__setattr__(self, "compiled", False)
        object.__setattr__(self, "loss", None)
        object.__setattr__(self, "_compile_config", None)
        object.__setattr__(self, "_compiled", None)
        object.__setattr__(self, "history", None)
        object.__setattr__(self, "stop_training", False)
        object.__setattr__(self, "_fit_variables", None)
        # During fit: False when no layer has regularizers or add_loss (checked once per epoch).
        object.__setattr__(self, "_fit_has_losses", None)

    # ------------------------------------------------------------------ structure

    @property
    def layers(self):
        return list(self._layers)

    @layers.setter
    def layers(self, _):
        raise AttributeError("`Model.layers` attribute is reserved and should not be used.")

    def get_layer(self, name=None, index=None):
        if index is not None and name is not None:
            raise ValueError(f"Provide only a layer name or a layer index. Received: index={index}, name={name}.")
        if index is not None:
            if len(self.layers) <= index:
                raise ValueError(f"Was asked to retrieve layer at index {index} but model only has "
                                 f"{len(self.layers)} layers.")
            return self.layers[index]
        if name is not None:
            for layer in self.layers:
                if layer.name == name:
                    return layer
            raise ValueError(f"No such layer: {name}. Existing layers are: {[l.name for l in self.layers]}.")
        raise ValueError("Provide either a layer name or layer index at `get_layer`.")

    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False,
                show_trainable=False, layer_range=None):
        from amber.models.summary import print_summary

        print_summary(self, line_length=line_length, positions=positions, print_fn=print_fn,
                      expand_nested=expand_nested, show_trainable=show_trainable, layer_range=layer_range)

    @property
    def metrics_names(self):
        return [m_name for m_name in (self._compiled.log_names() if self._compiled else [])]

    @property
    def metrics(self):
        return self._compiled.metric_objects() if self._compiled else []

    # ------------------------------------------------------------------ config

    def get_config(self):
        from amber.models.functional import Functional

        if isinstance(self, Functional):
            return Functional.get_config(self)
        return super().get_config()

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from amber.models.functional import Functional, functional_from_config

        if isinstance(config, dict) and "layers" in config and "input_layers" in config and (
                cls is Model or issubclass(cls, Functional)):
            return functional_from_config(cls, config, custom_objects=custom_objects)
        try:
            return cls(**config)
        except TypeError as error:
            raise TypeError(
                f"Unable to revive model from config. When overriding the `get_config()` method, make sure "
                f"that the returned config contains all items used as arguments in the constructor to "
                f"{cls}, which is the default behavior. You can override this default behavior by defining "
                f"a `from_config(cls, config)` class method to specify how to create an instance of "
                f"{cls.__name__} from its config.\n\nReceived config={config}\n\nError encountered "
                f"during deserialization: {error}") from error

    def to_json(self, **kwargs):
        import json

        from amber.saving import serialize_keras_object

        return json.dumps(serialize_keras_object(self), **kwargs)

    # ------------------------------------------------------------------ saving (delegated)

    def save(self, filepath, overwrite=True, zipped=None, **kwargs):
        from amber import saving

        return saving.save_model(self, filepath, overwrite=overwrite, zipped=zipped, **kwargs)

    def save_weights(self, filepath, overwrite=True, max_shard_size=None, **kwargs):
        from amber import saving

        if max_shard_size is not None:
            kwargs["max_shard_size"] = max_shard_size
        return saving.save_weights(self, filepath, overwrite=overwrite, **kwargs)

    def load_weights(self, filepath, skip_mismatch=False, **kwargs):
        from amber import saving

        return saving.load_weights(self, filepath, skip_mismatch=skip_mismatch, **kwargs)

    def export(self, filepath, format="amber", verbose=None, **kwargs):
        from amber import export

        return export.export_model(self, filepath, format=format, verbose=verbose, **kwargs)

    # ------------------------------------------------------------------ building

    def build(self, input_shape=None):
        """Subclassed models build by running ``call`` on zeros of ``input_shape``."""
        if input_shape is None:
            raise ValueError(f"Model '{self.name}' cannot be built without an input shape.")
        if type(self).call is Model.call:
            self.built = True
            return

        def zeros(shape):
            return np.zeros([1 if d is None else d for d in shape], dtype=self.compute_dtype)

        if isinstance(input_shape, dict):
            dummy = {k: zeros(v) for k, v in input_shape.items()}
        elif isinstance(input_shape, list) and input_shape and isinstance(input_shape[0], (list, tuple)):
            dummy = [zeros(s) for s in input_shape]
        else:
            dummy = zeros(input_shape)
        self.built = True
        self(dummy)

    # ------------------------------------------------------------------ training API

    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None, weighted_metrics=None,
                run_eagerly=False, steps_per_execution=1, jit_compile="auto", auto_scale_loss=True):
        from amber import optimizers
        from amber.models.compile_utils import CompiledState

        optimizer = optimizers.get(optimizer)
        object.__setattr__(self, "optimizer", optimizer)
        object.__setattr__(self, "loss", loss)
        object.__setattr__(self, "_compiled", CompiledState(self, loss, loss_weights, metrics, weighted_metrics))
        object.__setattr__(self, "_compile_config", {
            "optimizer": optimizer, "loss": loss, "loss_weights": loss_weights, "metrics": metrics,
            "weighted_metrics": weighted_metrics, "run_eagerly": run_eagerly,
            "steps_per_execution": steps_per_execution, "jit_compile": jit_compile,
            "auto_scale_loss": auto_scale_loss})
        object.__setattr__(self, "compiled", True)
        object.__setattr__(self, "stop_training", False)

    def get_compile_config(self):
        # Keras writes {} for a model that was never compiled, keeps no auto_scale_loss, and
        # stores jit_compile resolved ("auto" becomes True unless running eagerly).
        if not self.compiled or self._compile_config is None:
            return {}
        from amber.saving import serialize_keras_object

        config = {k: v for k, v in self._compile_config.items() if k != "auto_scale_loss"}
        if config.get("jit_compile") == "auto":
            config["jit_compile"] = not config.get("run_eagerly")
        return {key: serialize_keras_object(value) if value is not None and not isinstance(
            value, (bool, int, float, str)) else value for key, value in config.items()}

    def compile_from_config(self, config):
        from amber.saving import deserialize_keras_object

        if not config:
            return
        config = dict(config)
        for key in ("optimizer", "loss", "metrics", "weighted_metrics", "loss_weights"):
            value = config.get(key)
            if isinstance(value, dict) and "class_name" in value:
                config[key] = deserialize_keras_object(value)
            elif isinstance(value, (list, dict)):
                config[key] = tree.map_structure(
                    lambda v: v, value) if key == "loss_weights" else _deserialize_nested(value)
        allowed = ("optimizer", "loss", "loss_weights", "metrics", "weighted_metrics", "run_eagerly",
                   "steps_per_execution", "jit_compile", "auto_scale_loss")
        self.compile(**{k: v for k, v in config.items() if k in allowed})
        if self.built and self.optimizer is not None and hasattr(self.optimizer, "build"):
            self.optimizer.build(self.trainable_variables)

    def _assert_compiled(self):
        if not self.compiled:
            raise ValueError("You must call `compile()` before using the model.")

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        from amber.layers.layer import _LOSSES_IN_USE

        check = self._fit_has_losses is not False or _LOSSES_IN_USE[0]
        extra = self.losses if check and self._has_losses() else []
        return self._compiled.compute_loss(y, y_pred, sample_weight, extra)

    def train_step(self, x, y, sample_weight):
        from amber import backend

        variables = self._fit_variables
        if variables is None:
            variables = self.trainable_weights
        else:
            # Inside fit: a model that is one chain of Dense layers takes the compiled step
            # (same results, a fraction of the interpreter overhead).
            from amber.models import compiled_step

            step = compiled_step.for_model(self, variables)
            if step is not None:
                result = step.run(x, y, sample_weight)
                if result is not None:
                    return result
        with backend.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(x, y, y_pred, sample_weight, training=True)
        grads = tape.gradient(loss, variables)
        if variables:
            self.optimizer.apply_gradients(zip(grads, variables))
        return loss, y_pred

    def test_step(self, x, y, sample_weight):
        y_pred = self(x, training=False)
        loss = self.compute_loss(x, y, y_pred, sample_weight, training=False)
        return loss, y_pred

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None, sample_weight=None,
            initial_epoch=0, steps_per_epoch=None, validation_steps=None, validation_batch_size=None,
            validation_freq=1):
        from amber.models import training_loop

        return training_loop.fit(self, x, y, batch_size=batch_size, epochs=epochs, verbose=verbose,
                                 callbacks=callbacks, validation_split=validation_split,
                                 validation_data=validation_data, shuffle=shuffle, class_weight=class_weight,
                                 sample_weight=sample_weight, initial_epoch=initial_epoch,
                                 steps_per_epoch=steps_per_epoch, validation_steps=validation_steps,
                                 validation_batch_size=validation_batch_size, validation_freq=validation_freq)

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None,
                 callbacks=None, return_dict=False, **kwargs):
        from amber.models import training_loop

        return training_loop.evaluate(self, x, y, batch_size=batch_size, verbose=verbose,
                                      sample_weight=sample_weight, steps=steps, callbacks=callbacks,
                                      return_dict=return_dict)

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        from amber.models import training_loop

        return training_loop.predict(self, x, batch_size=batch_size, verbose=verbose, steps=steps,
                                     callbacks=callbacks)

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        from amber.models import training_loop

        return training_loop.train_on_batch(self, x, y, sample_weight, class_weight, return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        from amber.models import training_loop

        return training_loop.test_on_batch(self, x, y, sample_weight, return_dict)

    def predict_on_batch(self, x):
        from amber.models import training_loop

        return training_loop.predict_on_batch(self, x)

    def reset_metrics(self):
        if self._compiled is not None:
            self._compiled.reset()


def _inject_functional(cls, functional):
    for klass in cls.__mro__:
        if Model in klass.__bases__:
            klass.__bases__ = tuple(functional if base is Model else base for base in klass.__bases__)
            return
    raise TypeError(f"Cannot make {cls.__name__} a Functional model")


def _deserialize_nested(value):
    from amber.saving import deserialize_keras_object

    if isinstance(value, dict) and "class_name" in value:
        return deserialize_keras_object(value)
    if isinstance(value, list):
        return [_deserialize_nested(v) for v in value]
    if isinstance(value, dict):
        return {k: _deserialize_nested(v) for k, v in value.items()}
    return value
