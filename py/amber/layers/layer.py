"""The Layer base class: state tracking, naming, building, calling, config and weights I/O.

Behaviour follows Keras 3: auto-names from the snake-cased class name with a process-wide
counter, variables created under the layer's name scope (so their ``path`` is
``outer/inner/name``), weights ordered own-trainable, own-non-trainable, then sublayers in
assignment order, and a ``training`` flag that sublayers inherit from the outermost call.
"""

import inspect
import re
import threading

import numpy as np

from amber.layers import call_masks, tree
from amber.layers.keras_tensor import KerasTensor, Node, any_symbolic

# ----------------------------------------------------------------------------- naming

_NAME_COUNTS = {}


def to_snake_case(name):
    name = re.sub(r"\W+", "", name)
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    name = re.sub(r"([a-z])([A-Z])", r"\1_\2", name)
    return name.lower()


def unique_name(prefix):
    """``prefix`` the first time, then ``prefix_1``, ``prefix_2``... (one counter per process)."""
    count = _NAME_COUNTS.get(prefix, 0)
    _NAME_COUNTS[prefix] = count + 1
    return prefix if count == 0 else f"{prefix}_{count}"


def reset_name_counts():
    """Start every auto-generated name afresh (``backend.clear_session``)."""
    _NAME_COUNTS.clear()


# ------------------------------------------------------------------- scopes and context

class _CallContext(threading.local):
    """Per-thread call state, so concurrent predict calls do not see each other's:
    - ``scope``: names of the layers whose build/call is running, outermost first; a
      variable's path is this stack joined with "/" plus its own name. Entries are (name,
      owner) pairs so a layer re-entering its own scope (build inside __call__) does not
      repeat its name.
    - ``training``: what the outermost call decided; ``symbolic``: a shape-only run."""

    def __init__(self):
        self.scope = []
        self.training = None
        self.depth = 0
        self.symbolic = False


CALL_CONTEXT = _CallContext()


def current_path():
    return "/".join(name for name, _ in CALL_CONTEXT.scope)

# Set once any layer uses add_loss, so the per-call clearing costs nothing otherwise.
_LOSSES_IN_USE = [False]


_VARIABLE_CLASS = []


def _variable_class():
    # Asked for every attribute a layer sets; the import statement alone was a visible part
    # of building the layers of a loaded model. Remembered once found.
    if _VARIABLE_CLASS:
        return _VARIABLE_CLASS[0]
    from amber import backend

    cls = getattr(backend, "Variable", None)
    if cls is not None:
        _VARIABLE_CLASS.append(cls)
    return cls


def _is_variable(value):
    cls = _variable_class()
    return cls is not None and isinstance(value, cls)


# ----------------------------------------------------------------------- dtype policies


def dtype_policy_name(dtype):
    """Accept ``None``, a dtype name, a numpy dtype or Keras's DTypePolicy dict."""
    if dtype is None:
        return "float32"
    if isinstance(dtype, dict):
        config = dtype.get("config", {})
        name = config.get("name", "float32") if isinstance(config, dict) else "float32"
        return name if name != "mixed_float16" else "float32"
    if hasattr(dtype, "name") and not isinstance(dtype, str):
        return getattr(dtype, "name")
    return np.dtype(dtype).name


def serialize_dtype_policy(name):
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": name}, "registered_name": None}


# -------------------------------------------------------------------------- InputSpec


class InputSpec:
    """What a layer accepts: dtype, shape, rank bounds and fixed axis sizes."""

    def __init__(self, dtype=None, shape=None, ndim=None, max_ndim=None, min_ndim=None, axes=None,
                 allow_last_axis_squeeze=False, name=None, optional=False):
        self.dtype = np.dtype(dtype).name if dtype is not None else None
        self.shape = tuple(shape) if shape is not None else None
        self.ndim = len(self.shape) if self.shape is not None else ndim
        self.max_ndim = max_ndim
        self.min_ndim = min_ndim
        self.axes = {int(k): v for k, v in (axes or {}).items()}
        self.allow_last_axis_squeeze = allow_last_axis_squeeze
        self.name = name
        self.optional = optional

    def __repr__(self):
        return (f"InputSpec(dtype={self.dtype}, shape={self.shape}, ndim={self.ndim}, "
                f"max_ndim={self.max_ndim}, min_ndim={self.min_ndim}, axes={self.axes})")

    def get_config(self):
        return {"dtype": self.dtype, "shape": self.shape, "ndim": self.ndim, "max_ndim": self.max_ndim,
                "min_ndim": self.min_ndim, "axes": self.axes}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _check_input_spec(layer, specs, shapes):
    specs = specs if isinstance(specs, (list, tuple)) else [specs]
    shapes = shapes if isinstance(shapes, list) else [shapes]
    for index, (spec, shape) in enumerate(zip(specs, shapes)):
        if spec is None or shape is None:
            continue
        where = f"Input {index} of layer '{layer.name}'"
        rank = len(shape)
        if spec.ndim is not None and rank != spec.ndim:
            raise ValueError(f"{where} is incompatible with the layer: expected ndim={spec.ndim}, "
                             f"found ndim={rank}. Full shape received: {shape}")
        if spec.min_ndim is not None and rank < spec.min_ndim:
            raise ValueError(f"{where} is incompatible with the layer: expected min_ndim={spec.min_ndim}, "
                             f"found ndim={rank}. Full shape received: {shape}")
        if spec.max_ndim is not None and rank > spec.max_ndim:
            raise ValueError(f"{where} is incompatible with the layer: expected max_ndim={spec.max_ndim}, "
                             f"found ndim={rank}. Full shape received: {shape}")
        for axis, size in spec.axes.items():
            if size is None:
                continue
            if -rank <= axis < rank and shape[axis] is not None and shape[axis] != size:
                raise ValueError(f"{where} is incompatible with the layer: expected axis {axis} of input "
                                 f"shape to have value {size}, but received input with shape {shape}")


# ----------------------------------------------------------------- tracked containers


class _TrackedList(list):
    """A list attribute of a layer: layers and variables appended later are tracked too."""

    def __init__(self, items, owner):
        super().__init__(items)
        self._owner = owner
        for item in items:
            owner._track(item)

    def append(self, item):
        super().append(item)
        self._owner._track(item)

    def extend(self, items):
        items = list(items)
        super().extend(items)
        for item in items:
            self._owner._track(item)

    def insert(self, index, item):
        super().insert(index, item)
        self._owner._track(item)

    def __setitem__(self, index, item):
        super().__setitem__(index, item)
        for value in (item if isinstance(index, slice) else [item]):
            self._owner._track(value)


class _TrackedDict(dict):
    def __init__(self, items, owner):
        super().__init__(items)
        self._owner = owner
        for item in items.values():
            owner._track(item)

    def __setitem__(self, key, item):
        super().__setitem__(key, item)
        self._owner._track(item)

    def update(self, *args, **kwargs):
        new = dict(*args, **kwargs)
        super().update(new)
        for item in new.values():
            self._owner._track(item)


# ---------------------------------------------------------------------------- Layer

_LAYER_INIT_KWARGS = ("input_shape", "input_dim", "batch_input_shape", "batch_size", "input_dtype",
                      "autocast", "weights")


def _shape_of(x):
    if x is None:
        return None
    shape = getattr(x, "shape", None)
    if shape is None:
        shape = np.shape(x)
    return tuple(shape)


def _shapes_of(inputs):
    if isinstance(inputs, (list, tuple)):
        return [_shapes_of(x) for x in inputs]
    if isinstance(inputs, dict):
        return {k: _shapes_of(v) for k, v in inputs.items()}
    return _shape_of(inputs)


def _wrap_build(build):
    """Run a subclass's build under the layer's name scope, then mark the layer built."""

    def build_wrapper(self, *args, **kwargs):
        if getattr(self, "_in_build", False):
            return build(self, *args, **kwargs)
        self._in_build = True
        pushed = self._enter_scope()
        try:
            result = build(self, *args, **kwargs)
        finally:
            if pushed:
                CALL_CONTEXT.scope.pop()
            self._in_build = False
        shape = args[0] if args else (next(iter(kwargs.values())) if kwargs else None)
        self._build_input_shape = _plain_shape(shape)
        self.built = True
        return result

    build_wrapper.__wrapped__ = build
    build_wrapper.__name__ = "build"
    build_wrapper.__doc__ = build.__doc__
    return build_wrapper


def _plain_shape(shape):
    """Shapes as tuples of int/None (lists of shapes stay lists)."""
    if shape is None:
        return None
    if isinstance(shape, dict):
        return {k: _plain_shape(v) for k, v in shape.items()}
    if isinstance(shape, (list, tuple)) and shape and isinstance(shape[0], (list, tuple, dict)):
        return [_plain_shape(s) for s in shape]
    if isinstance(shape, (list, tuple)):
        return tuple(None if d is None else int(d) for d in shape)
    return shape


class Layer:
    """Base class of every layer and model."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "build" in cls.__dict__ and not hasattr(cls.__dict__["build"], "__wrapped__"):
            cls.build = _wrap_build(cls.__dict__["build"])
        cls._call_signature = None

    def __new__(cls, *args, **kwargs):
        obj = super().__new__(cls)
        # Tracking works even for attributes assigned before super().__init__().
        d = obj.__dict__
        d["_layers"] = []
        d["_trainable_variables"] = []
        d["_non_trainable_variables"] = []
        d["_inbound_nodes"] = []
        d["_losses"] = []
        d["_weight_regularizers"] = []
        d["_tracking"] = True
        d["built"] = False
        d["_in_build"] = False
        d["_init_args"] = (args, kwargs)
        return obj

    def __init__(self, *, activity_regularizer=None, trainable=True, dtype=None, name=None, **kwargs):
        input_shape = kwargs.pop("input_shape", None)
        input_dim = kwargs.pop("input_dim", None)
        batch_input_shape = kwargs.pop("batch_input_shape", None)
        batch_size = kwargs.pop("batch_size", None)
        input_dtype = kwargs.pop("input_dtype", None)
        kwargs.pop("autocast", None)
        kwargs.pop("weights", None)
        if kwargs:
            raise ValueError(f"Unrecognized keyword arguments passed to {type(self).__name__}: {kwargs}")
        if input_dim is not None and input_shape is None:
            input_shape = (input_dim,)
        if batch_input_shape is not None:
            self._input_shape_arg = tuple(batch_input_shape)
        elif input_shape is not None:
            self._input_shape_arg = (batch_size,) + tuple(input_shape)
        else:
            self._input_shape_arg = None
        self._input_dtype_arg = input_dtype
        if name is not None and not isinstance(name, str):
            raise TypeError(f"Layer name must be a string, got {name!r}")
        self.name = name if name else unique_name(to_snake_case(type(self).__name__))
        self._dtype_name = dtype_policy_name(dtype)
        self._trainable = bool(trainable)
        self.input_spec = None
        self.supports_masking = False
        self._build_input_shape = None
        self.activity_regularizer = None
        if activity_regularizer is not None:
            from amber import regularizers

            self.activity_regularizer = regularizers.get(activity_regularizer)

    # ------------------------------------------------------------------ tracking

    def __setattr__(self, name, value):
        if self.__dict__.get("_tracking", False) and name not in _UNTRACKED:
            if isinstance(value, list) and not isinstance(value, _TrackedList):
                value = _TrackedList(value, self)
            elif isinstance(value, dict) and not isinstance(value, _TrackedDict):
                value = _TrackedDict(value, self)
            elif isinstance(value, tuple):
                for item in value:
                    self._track(item)
            else:
                self._track(value)
        object.__setattr__(self, name, value)

    def _track(self, value):
        if isinstance(value, Layer):
            if value is not self and not any(value is layer for layer in self._layers):
                self._layers.append(value)
        elif isinstance(value, (list, tuple)) and not isinstance(value, str):
            for item in value:
                self._track(item)
        elif isinstance(value, dict):
            for item in value.values():
                self._track(item)
        elif _is_variable(value):
            own = self._trainable_variables + self._non_trainable_variables
            if not any(value is v for v in own):
                (self._trainable_variables if value.trainable else self._non_trainable_variables).append(value)

    def _enter_scope(self):
        """Push this layer's name unless it is already the innermost scope."""
        if CALL_CONTEXT.scope and CALL_CONTEXT.scope[-1][1] is self:
            return False
        CALL_CONTEXT.scope.append((self.name, self))
        return True

    # ------------------------------------------------------------------ properties

    @property
    def dtype(self):
        return self._dtype_name

    @property
    def compute_dtype(self):
        return self._dtype_name

    @property
    def variable_dtype(self):
        return self._dtype_name

    @property
    def dtype_policy(self):
        return self._dtype_name

    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        value = bool(value)
        self._trainable = value
        for variable in self._trainable_variables:
            variable.trainable = value
        for layer in self._layers:
            layer.trainable = value

    @property
    def path(self):
        return self.name

    def _flatten_layers(self, include_self=True, recursive=True):
        result = [self] if include_self else []
        seen = set()
        queue = list(self._layers)
        while queue:
            layer = queue.pop(0)
            if id(layer) in seen:
                continue
            seen.add(id(layer))
            result.append(layer)
            if recursive:
                queue = list(layer._layers) + queue
        return result

    @property
    def weights(self):
        result = []
        seen = set()
        for variable in self._trainable_variables + self._non_trainable_variables:
            if id(variable) not in seen:
                seen.add(id(variable))
                result.append(variable)
        for layer in self._layers:
            for variable in layer.weights:
                if id(variable) not in seen:
                    seen.add(id(variable))
                    result.append(variable)
        return result

    @property
    def variables(self):
        return self.weights

    @property
    def trainable_weights(self):
        if not self.trainable:
            return []
        return [v for v in self.weights if v.trainable]

    @property
    def trainable_variables(self):
        return self.trainable_weights

    @property
    def non_trainable_weights(self):
        if not self.trainable:
            return self.weights
        return [v for v in self.weights if not v.trainable]

    @property
    def non_trainable_variables(self):
        return self.non_trainable_weights

    # ------------------------------------------------------------------ weights

    def add_weight(self, shape=None, initializer=None, dtype=None, trainable=True, autocast=True,
                   regularizer=None, constraint=None, aggregation="none", overwrite_with_gradient=False,
                   name=None):
        from amber import backend, initializers

        shape = () if shape is None else tuple(int(d) for d in shape)
        dtype = np.dtype(dtype).name if dtype is not None else self._dtype_name
        _check_variable_size(self, name, shape, dtype)
        if initializer is None:
            initializer = "glorot_uniform" if np.issubdtype(np.dtype(dtype), np.floating) else "zeros"
        initializer = initializers.get(initializer)
        pushed = self._enter_scope()
        try:
            variable = backend.Variable(initializer, shape=shape, dtype=dtype, trainable=trainable, name=name)
            scope = current_path()
        finally:
            if pushed:
                CALL_CONTEXT.scope.pop()
        variable_name = name if name else getattr(variable, "name", "variable")
        try:
            variable.path = f"{scope}/{variable_name}" if scope else variable_name
        except AttributeError:
            pass
        if regularizer is not None:
            from amber import regularizers

            regularizer = regularizers.get(regularizer)
        if regularizer is not None:
            self._weight_regularizers.append((variable, regularizer))
        if constraint is not None:
            from amber import constraints

            constraint = constraints.get(constraint)
        try:
            variable.constraint = constraint
        except AttributeError:
            pass
        (self._trainable_variables if trainable else self._non_trainable_variables).append(variable)
        if not self.trainable:
            # Built after being frozen (``Dense(3, trainable=False)``, or loaded frozen): as in
            # Keras the weight starts frozen and stays listed for ``trainable = True`` to thaw.
            variable.trainable = False
        return variable

    def add_variable(self, shape, initializer, dtype=None, trainable=True, name=None, **kwargs):
        return self.add_weight(shape=shape, initializer=initializer, dtype=dtype, trainable=trainable,
                               name=name, **kwargs)

    def get_weights(self):
        return [np.array(v.numpy(), copy=True) for v in self.weights]

    def set_weights(self, weights):
        layer_weights = self.weights
        weights = list(weights)
        if len(layer_weights) != len(weights):
            raise ValueError(
                f"You called `set_weights(weights)` on layer '{self.name}' with a weight list of length "
                f"{len(weights)}, but the layer was expecting {len(layer_weights)} weights.")
        for variable, value in zip(layer_weights, weights):
            value = np.asarray(value)
            if tuple(variable.shape) != tuple(value.shape):
                raise ValueError(
                    f"Layer '{self.name}' weight '{getattr(variable, 'path', variable.name)}' has shape "
                    f"{tuple(variable.shape)}, which is not compatible with the provided weight shape "
                    f"{tuple(value.shape)}.")
        for variable, value in zip(layer_weights, weights):
            variable.assign(np.asarray(value))

    def count_params(self):
        if not self.built:
            raise ValueError(
                f"You tried to call `count_params` on layer '{self.name}', but the layer isn't built. "
                "You can build it manually via: `layer.build(input_shape)`.")
        return int(sum(int(np.prod(v.shape)) for v in self.weights))

    # ------------------------------------------------------------------ saving hooks

    def _own_variables(self):
        return self._trainable_variables + self._non_trainable_variables

    def save_own_variables(self, store):
        for index, variable in enumerate(self._own_variables()):
            store[str(index)] = variable.numpy()

    def load_own_variables(self, store):
        own = self._own_variables()
        keys = list(store.keys())
        if len(keys) != len(own):
            if not own and not self.built:
                raise ValueError(
                    f"Layer '{self.name}' was never built and thus it doesn't have any variables. However "
                    f"the weights file lists {len(keys)} variables for this layer.")
            raise ValueError(
                f"Layer '{self.name}' expected {len(own)} variables, but received {len(keys)} variables "
                f"during loading. Expected: {[getattr(v, 'name', '?') for v in own]}")
        arrays = [store[str(i)] for i in range(len(own))]
        for variable, array in zip(own, arrays):
            if tuple(np.shape(array)) != tuple(variable.shape):
                raise ValueError(
                    f"Layer '{self.name}': variable '{getattr(variable, 'path', variable.name)}' has shape "
                    f"{tuple(variable.shape)} but the saved value has shape {tuple(np.shape(array))}.")
        for variable, array in zip(own, arrays):
            variable._adopt(array)

    # ------------------------------------------------------------------ build

    def build(self, input_shape=None):
        self._build_input_shape = _plain_shape(input_shape)
        self.built = True

    def _maybe_build(self, inputs):
        if self.built:
            return
        if type(self).build is Layer.build:
            # Nothing to create: like Keras, no build shapes are recorded for such layers.
            self.built = True
            return
        shapes = _shapes_of(inputs)
        if self.input_spec is not None:
            _check_input_spec(self, self.input_spec, shapes)
        self.build(shapes)
        self.built = True
        if self._build_input_shape is None:
            self._build_input_shape = _plain_shape(shapes)

    def get_build_config(self):
        if self._build_input_shape is not None:
            shape = self._build_input_shape
            return {"input_shape": list(shape) if isinstance(shape, tuple) else shape}
        return None

    def build_from_config(self, config):
        if config and "input_shape" in config:
            shape = config["input_shape"]
            self.build(_plain_shape(shape))
        elif config and "shapes_dict" in config:
            shapes = {k.removesuffix("_shape"): _plain_shape(v) for k, v in config["shapes_dict"].items()}
            self.build(*shapes.values())
        self.built = True

    # ------------------------------------------------------------------ calling

    @classmethod
    def _call_params(cls):
        sig = cls.__dict__.get("_call_signature")
        if sig is None:
            params = inspect.signature(cls.call).parameters
            names = [n for n in params if n != "self"]
            accepts_kwargs = any(p.kind == p.VAR_KEYWORD for p in params.values())
            training = params.get("training")
            sig = (names, "training" in params or accepts_kwargs, "mask" in params,
                   None if training is None or training.default is inspect.Parameter.empty
                   else training.default)
            cls._call_signature = sig
        return sig

    def call(self, inputs, *args, **kwargs):
        raise NotImplementedError(f"Layer {type(self).__name__} does not implement call().")

    def __call__(self, *args, **kwargs):
        names, takes_training, takes_mask, training_default = self._call_params()
        if args:
            inputs = args[0]
        elif names and names[0] in kwargs:
            inputs = kwargs[names[0]]
        else:
            raise ValueError(f"Layer '{self.name}' was called without inputs.")

        if not isinstance(inputs, np.ndarray) and any_symbolic(args, kwargs):
            return self._symbolic_call(args, kwargs, names, takes_training, training_default)

        # Keras casts floating inputs to the layer's compute dtype.
        if isinstance(inputs, np.ndarray):
            if inputs.dtype.kind == "f" and inputs.dtype != self._dtype_name:
                inputs = inputs.astype(self._dtype_name)
                args = (inputs,) + tuple(args[1:]) if args else args
                if not args:
                    kwargs[names[0]] = inputs
        elif isinstance(inputs, (list, tuple)) and inputs and isinstance(inputs[0], np.ndarray):
            cast = [x.astype(self._dtype_name) if isinstance(x, np.ndarray) and x.dtype.kind == "f"
                    and x.dtype != self._dtype_name else x for x in inputs]
            inputs = type(inputs)(cast)
            if args:
                args = (inputs,) + tuple(args[1:])
            else:
                kwargs[names[0]] = inputs

        context = CALL_CONTEXT
        outer_training = context.training
        training = kwargs.get("training", None)
        if training is None:
            training = outer_training if outer_training is not None else training_default
        if takes_training:
            kwargs["training"] = training
        else:
            kwargs.pop("training", None)
        if not takes_mask:
            kwargs.pop("mask", None)

        if context.depth == 0 and _LOSSES_IN_USE[0] and not context.symbolic:
            for layer in self._flatten_layers():
                layer._losses = []

        pushed = self._enter_scope()
        context.training = training
        context.depth += 1
        try:
            if not self.built:
                self._maybe_build(inputs)
            outputs = self.call(*args, **kwargs)
        except (ValueError, TypeError) as error:
            wrapped = _with_layer_context(error, self, inputs)
            if wrapped is error:
                raise
            raise wrapped from error
        finally:
            context.depth -= 1
            context.training = outer_training
            if pushed:
                CALL_CONTEXT.scope.pop()
        if self.activity_regularizer is not None and not context.symbolic:
            for output in tree.flatten(outputs):
                self.add_loss(self.activity_regularizer(output))
        return outputs

    def _symbolic_call(self, args, kwargs, names, takes_training, training_default):
        inputs = args[0] if args else kwargs[names[0]]
        if self.input_spec is not None:
            _check_input_spec(self, self.input_spec, _shapes_of(inputs))
        if not self.built:
            pushed = self._enter_scope()
            try:
                self._maybe_build(inputs)
            finally:
                if pushed:
                    CALL_CONTEXT.scope.pop()
        call_kwargs = {k: v for k, v in kwargs.items() if k != "training" or v is not None}
        if takes_training and "training" not in call_kwargs and training_default is not None:
            call_kwargs["training"] = training_default
        # The masks the inputs carry reach the call's mask arguments, as in Keras.
        previous_mask = call_masks.fill_mask_arguments(self, args, kwargs, call_kwargs,
                                                       call_masks.symbolic_mask)
        # Keras records an explicit mask=None for layers whose call takes a mask (all of
        # Keras's such layers support masking; requiring both keeps layers that only accept
        # a mask for convenience out of the recorded node).
        if self._call_params()[2] and self.supports_masking and "mask" not in call_kwargs:
            call_kwargs["mask"] = None
        outputs = self.compute_output_spec(*args, **call_kwargs)
        call_masks.attach_output_masks(self, inputs, outputs, previous_mask)
        # Keras fills `training` and the masks into the caller's own kwargs (so its node
        # records them) only for a call on one tensor already in the layer's dtype; any other
        # call converts its arguments first, and the node records them as the caller gave them.
        in_place = (not kwargs and len(args) == 1 and isinstance(inputs, KerasTensor)
                    and inputs.dtype == self._dtype_name)
        Node(self, args, call_kwargs if in_place else kwargs, outputs)
        return outputs

    def compute_output_shape(self, *args, **kwargs):
        raise NotImplementedError

    def compute_output_spec(self, *args, **kwargs):
        """Symbolic outputs: from ``compute_output_shape`` when the layer defines it, else by
        running ``call`` on small dummy arrays (unknown dimensions probed with two sizes)."""
        if type(self).compute_output_shape is not Layer.compute_output_shape:
            inputs = args[0] if args else next(iter(kwargs.values()))
            try:
                shape = self.compute_output_shape(_shapes_of(inputs))
            except NotImplementedError:
                shape = None
            if shape is not None:
                return _specs_from_shapes(shape, self.compute_dtype)
        first = self._dummy_run(args, kwargs, 2)
        unknown = [leaf for leaf in tree.flatten([list(args), kwargs])
                   if isinstance(leaf, KerasTensor) and None in leaf.shape[1:]]
        second = self._dummy_run(args, kwargs, 3) if unknown else None
        batch_unknown = any(isinstance(leaf, KerasTensor) and leaf.shape and leaf.shape[0] is None
                            for leaf in tree.flatten([list(args), kwargs]))

        def spec(index_and_value):
            index, value = index_and_value
            shape = list(np.shape(value))
            if second is not None:
                other = np.shape(tree.flatten(second)[index])
                shape = [d if d == o else None for d, o in zip(shape, other)]
            if batch_unknown and shape:
                shape[0] = None
            return KerasTensor(shape, dtype=_dtype_name_of(value))

        leaves = tree.flatten(first)
        return tree.pack_like(first, [spec(item) for item in enumerate(leaves)])

    def _dummy_run(self, args, kwargs, size):
        def concrete(x):
            if isinstance(x, KerasTensor):
                shape = [size if d is None else d for d in x.shape]
                return np.zeros(shape, dtype=x.dtype)
            return x

        run_args = tree.map_structure(concrete, list(args))
        run_kwargs = tree.map_structure(concrete, dict(kwargs))
        if self._call_params()[1]:
            run_kwargs["training"] = False
        context = CALL_CONTEXT
        was_symbolic, outer_training = context.symbolic, context.training
        context.symbolic, context.training = True, False
        context.depth += 1
        pushed = self._enter_scope()
        try:
            return self.call(*run_args, **run_kwargs)
        finally:
            if pushed:
                CALL_CONTEXT.scope.pop()
            context.depth -= 1
            context.symbolic, context.training = was_symbolic, outer_training

    # ------------------------------------------------------------------ masks

    def compute_mask(self, inputs, previous_mask=None):
        """The mask of this layer's output: passed through by layers that support masking."""
        return previous_mask if self.supports_masking else None

    @classmethod
    def _produces_masks(cls):
        """Whether the class overrides compute_mask (it may create a mask from nothing)."""
        return cls.compute_mask is not Layer.compute_mask

    # ------------------------------------------------------------------ losses

    def add_loss(self, loss):
        if CALL_CONTEXT.symbolic:
            return
        _LOSSES_IN_USE[0] = True
        self._losses.append(loss)

    def _regularization_losses(self):
        losses = []
        for variable, regularizer in self._weight_regularizers:
            losses.append(regularizer(variable))
        return losses

    def _has_losses(self):
        """Cheap check before building ``losses`` in the training step."""
        if _LOSSES_IN_USE[0]:
            return True
        return any(layer._weight_regularizers or layer.activity_regularizer is not None
                   for layer in self._flatten_layers())

    @property
    def losses(self):
        result = []
        for layer in self._flatten_layers():
            result.extend(layer._losses)
            result.extend(layer._regularization_losses())
        return result

    # ------------------------------------------------------------------ functional graph

    def _first_node(self, what):
        if not self._inbound_nodes:
            raise AttributeError(
                f"Layer '{self.name}' has never been called and thus has no defined {what}.")
        return self._inbound_nodes[0]

    @property
    def input(self):
        node = self._first_node("input")
        if node.is_input:
            return node.outputs
        return node.call_args[0] if node.call_args else next(iter(node.call_kwargs.values()))

    @property
    def output(self):
        return self._first_node("output").outputs

    @property
    def input_shape(self):
        return _shapes_of(self.input)

    @property
    def output_shape(self):
        return _shapes_of(self.output)

    # ------------------------------------------------------------------ config

    def get_config(self):
        config = {"name": self.name, "trainable": self.trainable,
                  "dtype": serialize_dtype_policy(self._dtype_name)}
        own_get_config = type(self).get_config
        if own_get_config is Layer.get_config:
            extra = self._auto_config()
            if extra is None:
                raise NotImplementedError(
                    f"Layer {type(self).__name__} has arguments in `__init__` that are not plain values; "
                    "override `get_config()` to make it serializable.")
            config.update(extra)
        return config

    def _auto_config(self):
        """Constructor arguments of a subclass without its own get_config, if plain values."""
        init = type(self).__init__
        if init is Layer.__init__:
            return {}
        args, kwargs = self._init_args
        try:
            bound = inspect.signature(init).bind(None, *args, **kwargs)
        except TypeError:
            return None
        bound.apply_defaults()  # Keras lists defaulted arguments too
        extra = {}
        for key, value in list(bound.arguments.items())[1:]:
            param = inspect.signature(init).parameters[key]
            if param.kind == param.VAR_KEYWORD:
                extra.update({k: v for k, v in value.items() if k not in ("name", "trainable", "dtype")})
                continue
            if param.kind == param.VAR_POSITIONAL:
                continue
            if key in ("name", "trainable", "dtype"):
                continue
            if not _is_plain(value):
                return None
            extra[key] = value
        return extra

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        try:
            return cls(**config)
        except TypeError as error:
            raise TypeError(
                f"Error when deserializing class '{cls.__name__}' using config={config}.\n\n"
                f"Exception encountered: {error}") from error

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


_UNTRACKED = {"_layers", "_trainable_variables", "_non_trainable_variables", "_inbound_nodes", "_losses",
              "_init_args", "_weight_regularizers", "_build_input_shape", "_input_shape_arg",
              "input_spec", "_tracking",
              # Model state that holds variables it does not own (optimizer slots, the
              # variables being trained, compile settings).
              "optimizer", "loss", "history", "_compiled", "_compile_config", "_fit_variables"}


# Refuse single variables beyond this many bytes before allocating: a config (possibly from an
# untrusted file) asking for more is far more likely hostile than real.
MAX_VARIABLE_BYTES = 1 << 36


def _check_variable_size(layer, name, shape, dtype):
    if any(d < 0 for d in shape):
        raise ValueError(f"Layer '{layer.name}': variable '{name}' has a negative dimension in shape {shape}")
    nbytes = np.dtype(dtype).itemsize
    for d in shape:
        nbytes *= d
        if nbytes > MAX_VARIABLE_BYTES:
            raise ValueError(f"Layer '{layer.name}': variable '{name}' of shape {shape} and dtype {dtype} would "
                             f"need more than {MAX_VARIABLE_BYTES} bytes; refusing to allocate it")


_CONTEXT_PREFIX = "Exception encountered when calling layer"


def _with_layer_context(error, layer, inputs):
    """The same error type, its message prefixed with the innermost layer and input shapes."""
    message = str(error)
    if message.startswith(_CONTEXT_PREFIX):
        return error
    try:
        shapes = _shapes_of(inputs)
    except Exception:  # shapes are only decoration for the message
        shapes = "?"
    try:
        return type(error)(f"{_CONTEXT_PREFIX} '{layer.name}' ({type(layer).__name__}) on inputs of shape "
                           f"{shapes}: {message}")
    except Exception:
        return error


def _is_plain(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    return False


def _dtype_name_of(value):
    dtype = getattr(value, "dtype", None)
    if dtype is None:
        return np.asarray(value).dtype.name
    return np.dtype(dtype).name


def _specs_from_shapes(shape, dtype):
    if isinstance(shape, dict):
        return {k: _specs_from_shapes(v, dtype) for k, v in shape.items()}
    if isinstance(shape, list) and shape and isinstance(shape[0], (list, tuple)):
        return [_specs_from_shapes(s, dtype) for s in shape]
    return KerasTensor(shape, dtype=dtype)
