"""The optimizer base class: variable layout, gradient pre-processing and the update loop.

Keras 3 is the reference for everything observable: the order of `optimizer.variables` (what
a `.keras` file stores under `optimizer/vars/<i>`), variable paths, config keys and defaults,
and the float32 arithmetic of each update, so that an optimizer state saved by Keras resumes
here and produces the same weights after the next step.

Updates are plain numpy on `Variable.value` (no tape): the optimizer runs after gradients
exist, so nothing it computes ever needs a gradient itself. Model variables always receive a
fresh array (their old value may be a read-only mapped view or held elsewhere); the fast
float32 paths of Adam and RMSprop write their own slot arrays in place, after copying in any
slot value they did not allocate (see `_private_slot_value` and `flat_state`), so reading a
slot's `.value` gives the live state, not a snapshot: copy it to keep one.
"""

import operator
import re
import warnings

import numpy as np

from amber import _native
from amber.backend import allocator
from amber.optimizers import flat_state
from amber.optimizers.schedules import learning_rate_schedule as lr_schedules

# Keras creates the step counter with dtype "int", which it resolves to int32 on the JAX and
# numpy backends; the files in the wild (Keras 3 on JAX) store int32.
ITERATION_DTYPE = "int32"
_ONE_STEP = np.int32(1)
FLOATX = "float32"

_BASE_CONFIG_DEFAULTS = {
    "weight_decay": None,
    "clipnorm": None,
    "global_clipnorm": None,
    "clipvalue": None,
    "use_ema": False,
    "ema_momentum": 0.99,
    "ema_overwrite_frequency": None,
    "loss_scale_factor": None,
    "gradient_accumulation_steps": None,
}


def _variable_class():
    # Imported lazily: the backend is a sibling part and must not be needed to import us.
    from amber.backend import Variable

    return Variable


def _snake_case(name):
    # Keras's auto-naming: "RMSprop" -> "rm_sprop", "AdamW" -> "adam_w".
    intermediate = re.sub("(.)([A-Z][a-z0-9]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", intermediate).lower()


_name_counts = {}


def _auto_name(class_name):
    base = _snake_case(class_name)
    count = _name_counts.get(base, 0)
    _name_counts[base] = count + 1
    return base if count == 0 else f"{base}_{count}"


def _f32(x):
    return np.float32(x)


def _has_constraint(variable):
    return getattr(variable, "constraint", None) is not None


def _as_array(value):
    if type(value) is np.ndarray:  # the common case, without the attribute probe
        return value
    if hasattr(value, "numpy") and not isinstance(value, np.ndarray):
        return np.asarray(value.numpy())
    return np.asarray(value)


class Optimizer:
    """Base class of every optimizer; subclasses define `build` and `update_step`."""

    def __init__(
        self,
        learning_rate,
        weight_decay=None,
        clipnorm=None,
        clipvalue=None,
        global_clipnorm=None,
        use_ema=False,
        ema_momentum=0.99,
        ema_overwrite_frequency=None,
        loss_scale_factor=None,
        gradient_accumulation_steps=None,
        name=None,
        **kwargs,
    ):
        if kwargs.pop("decay", None) is not None:
            warnings.warn("Argument `decay` is no longer supported and will be ignored.")
        if kwargs:
            raise ValueError(f"Argument(s) not recognized: {kwargs}")
        if sum(a is not None for a in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError(
                "Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. "
                f"Received: clipnorm={clipnorm}, clipvalue={clipvalue}, "
                f"global_clipnorm={global_clipnorm}"
            )
        if gradient_accumulation_steps and not gradient_accumulation_steps >= 2:
            raise ValueError(
                "`gradient_accumulation_steps` must be an integer >= 2. Received: "
                f"gradient_accumulation_steps={gradient_accumulation_steps}"
            )
        if use_ema:
            if not 0 <= ema_momentum <= 1:
                raise ValueError(
                    f"`ema_momentum` must be in the range [0, 1]. Received: {ema_momentum}"
                )
            if ema_overwrite_frequency is not None and (
                not isinstance(ema_overwrite_frequency, int) or ema_overwrite_frequency < 1
            ):
                raise ValueError(
                    "`ema_overwrite_frequency` must be an integer >= 1 or None. "
                    f"Received: {ema_overwrite_frequency}"
                )

        self.name = name if name is not None else _auto_name(type(self).__name__)
        self.weight_decay = weight_decay
        self.clipnorm = clipnorm
        self.global_clipnorm = global_clipnorm
        self.clipvalue = clipvalue
        self.use_ema = use_ema
        self.ema_momentum = ema_momentum
        self.ema_overwrite_frequency = ema_overwrite_frequency
        self.loss_scale_factor = loss_scale_factor
        self.gradient_accumulation_steps = gradient_accumulation_steps
        self.built = False
        self._building_in_scope = False

        self._variables = []
        self._trainable_variables = []
        self._index_by_id = {}
        self._exclude_ids = set()
        self._exclude_pattern = None
        self._model_variables_moving_average = []
        self._accumulated_gradients = []
        # Slot arrays this optimizer allocated and alone writes (see `_private_slot_value`),
        # keyed by the slot variable's id.
        self._private_slots = {}

        self._iterations = self.add_variable(
            (), initializer="zeros", dtype=ITERATION_DTYPE, name="iteration"
        )
        self._learning_rate = None
        self._set_initial_learning_rate(learning_rate)

    # ----- learning rate -------------------------------------------------------------------

    def _set_initial_learning_rate(self, learning_rate):
        if isinstance(learning_rate, lr_schedules.LearningRateSchedule) or callable(
            learning_rate
        ):
            self._learning_rate = learning_rate
            return
        if isinstance(learning_rate, bool) or not isinstance(
            learning_rate, (float, int, np.floating, np.integer)
        ):
            raise ValueError(
                "Argument `learning_rate` should be a float, a LearningRateSchedule or a "
                f"callable returning the learning rate. Received: learning_rate={learning_rate!r}"
            )
        self._learning_rate = self.add_variable(
            (), initializer=float(learning_rate), dtype=FLOATX, name="learning_rate"
        )

    def _lr_is_variable(self):
        # Identity, not `in`: Variables compare elementwise. The learning rate normally sits
        # right after the step counter, so look there first (this runs every step).
        variables = self._variables
        if len(variables) > 1 and variables[1] is self._learning_rate:
            return True
        return any(v is self._learning_rate for v in variables)

    @property
    def learning_rate(self):
        """The current learning rate: the Variable, or the schedule's value at this step."""
        return self._current_learning_rate()

    @learning_rate.setter
    def learning_rate(self, value):
        if isinstance(value, lr_schedules.LearningRateSchedule) or callable(value):
            if self._lr_is_variable():
                self._variables = [v for v in self._variables if v is not self._learning_rate]
            self._learning_rate = value
            return
        if not self._lr_is_variable():
            raise TypeError(
                f"Optimizer '{self.name}' was created with a learning-rate schedule, so its "
                "learning rate is not settable; create it with a float learning_rate instead."
            )
        self._learning_rate.assign(np.asarray(value, dtype=FLOATX))

    def _current_learning_rate(self):
        lr = self._learning_rate
        if isinstance(lr, lr_schedules.LearningRateSchedule):
            return lr(self.iterations)
        if self._lr_is_variable():
            return lr
        if callable(lr):
            return lr()
        return lr

    def _learning_rate_value(self):
        """The current learning rate as a float32 scalar for the update arithmetic."""
        return _f32(_as_array(self._current_learning_rate()))

    # ----- variables -----------------------------------------------------------------------

    @property
    def iterations(self):
        """The number of optimizer steps taken (update steps, under gradient accumulation)."""
        if self.gradient_accumulation_steps:
            return np.floor_divide(
                self._iterations.value, self.gradient_accumulation_steps
            ).astype(ITERATION_DTYPE)
        return self._iterations

    def _step_count(self):
        if self.gradient_accumulation_steps:
            return int(_as_array(self.iterations))
        return int(self._iterations.value)  # what the line above gives, without the probes

    def _increment_iterations(self):
        # A fresh 0-d array, as `assign` would make, without its conversions and checks.
        iterations = self._iterations
        iterations._replace(np.array(iterations.value + _ONE_STEP))

    @property
    def variables(self):
        return list(self._variables)

    def add_variable(self, shape, initializer="zeros", dtype=None, name=None):
        """Create an optimizer-owned, non-trainable Variable with path `<optimizer>/<name>`."""
        Variable = _variable_class()
        dtype = dtype or FLOATX
        shape = tuple(int(d) for d in shape)
        if isinstance(initializer, str):
            if initializer != "zeros":
                raise ValueError(f"Unsupported optimizer variable initializer {initializer!r}")
            value = np.zeros(shape, dtype=dtype)
        elif callable(initializer):
            value = np.asarray(initializer(shape, dtype), dtype=dtype)
        else:
            value = np.full(shape, initializer, dtype=dtype)
        variable = Variable(value, dtype=dtype, trainable=False, name=name)
        variable.path = f"{self.name}/{name}"
        self._variables.append(variable)
        return variable

    def add_variable_from_reference(self, reference_variable, name=None, initializer="zeros"):
        """A slot shaped like a model variable, named `<model var path with _>_<name>`."""
        name = name or "var"
        ref_path = getattr(reference_variable, "path", None)
        if ref_path:
            prefix = str(ref_path).replace("/", "_")
        else:
            prefix = str(reference_variable.name).replace("/", "_").replace(":", "_")
        return self.add_variable(
            reference_variable.shape,
            initializer=initializer,
            dtype=reference_variable.dtype,
            name=f"{prefix}_{name}",
        )

    def add_optimizer_variables(self, trainable_variables, name, initializer="zeros"):
        """Slots for every model variable; several names interleave per variable, as Keras."""
        names = [name] if isinstance(name, str) else list(name)
        if isinstance(initializer, (list, tuple)):
            initializers = list(initializer)
        else:
            initializers = [initializer] * len(names)
        if len(initializers) != len(names):
            raise ValueError(
                f"The number of names ({len(names)}) must match the number of "
                f"initializers ({len(initializers)})."
            )
        slots = tuple([] for _ in names)
        for variable in trainable_variables:
            for i, (slot_name, slot_init) in enumerate(zip(names, initializers)):
                slots[i].append(
                    self.add_variable_from_reference(variable, slot_name, slot_init)
                )
        return slots[0] if isinstance(name, str) else slots

    def build(self, variables):
        """Create the slots for `variables`; subclasses call this first, then add theirs."""
        variables = list(variables)
        if self.use_ema:
            self._model_variables_moving_average = self.add_optimizer_variables(
                variables, "average"
            )
        for i, variable in enumerate(variables):
            self._index_by_id[id(variable)] = i
            if self.gradient_accumulation_steps:
                self._accumulated_gradients.append(
                    self.add_variable_from_reference(variable, "gradient_accumulator")
                )
        self._trainable_variables = variables
        self.built = True

    def _private_slot_value(self, slot):
        """The slot's array, safe for the update rules to write in place.

        Slots hold optimizer state nobody else computes with, so the per-step updates write
        them in place instead of allocating (allocating fresh 200 kB arrays every step costs
        page faults that dwarf the arithmetic). A value this optimizer did not allocate itself
        (a read-only view adopted by a loader, an array passed to `assign`) is first replaced
        by a private copy, so copy-on-write holds for everything handed in from outside."""
        value = slot.value
        if self._private_slots.get(id(slot)) is not value:
            # C order: the fused float32 kernels walk slots and values in the same flat order.
            value = np.array(value, order="C", copy=True)
            slot._replace(value)
            self._private_slots[id(slot)] = value
        return value

    @staticmethod
    def _c_float32(array):
        """`array` as the aligned, C-contiguous float32 array the fused kernels of
        `amber._native` take (a copy only when it is not one already)."""
        return np.require(array, np.float32, ["C", "A"])

    def _get_variable_index(self, variable):
        return self._index_by_id[id(variable)]

    # ----- applying gradients --------------------------------------------------------------

    def apply_gradients(self, grads_and_vars):
        """Apply `[(gradient, variable), ...]`; returns the iteration counter."""
        pairs = list(grads_and_vars)
        if not pairs:
            return self._iterations
        grads, variables = zip(*pairs)
        self.apply(list(grads), list(variables))
        return self._iterations

    def apply(self, grads, trainable_variables=None):
        """Update the variables from `grads` (one per variable the optimizer was built on)."""
        grads = list(grads)
        if not grads:
            return
        if trainable_variables is None:
            if not self.built:
                raise ValueError(
                    "When passing `grads` without `variables`, the optimizer must already be "
                    "built: call `optimizer.build(trainable_variables)` first."
                )
            if len(grads) != len(self._trainable_variables):
                raise ValueError(
                    f"Received {len(grads)} gradients, but optimizer '{self.name}' tracks "
                    f"{len(self._trainable_variables)} trainable variables."
                )
            trainable_variables = self._trainable_variables
        else:
            trainable_variables = list(trainable_variables)
            if len(grads) != len(trainable_variables):
                raise ValueError(
                    f"Received {len(grads)} gradients for {len(trainable_variables)} variables."
                )
            if not self.built:
                # Keras builds inside the optimizer's name scope here (visible in Nadam's
                # product variable path), but not when `build` is called directly.
                self._building_in_scope = True
                try:
                    self.build(trainable_variables)
                finally:
                    self._building_in_scope = False
                self.built = True
            known = self._index_by_id
            if not all(map(known.__contains__, map(id, trainable_variables))):
                unknown = next(v for v in trainable_variables if id(v) not in known)
                raise ValueError(
                    f"Unknown variable: {getattr(unknown, 'path', unknown)}. Optimizer "
                    f"'{self.name}' can only update the variables it was built with; "
                    "create a new optimizer for a new set of variables."
                )

        grads, trainable_variables = self._filter_empty_gradients(grads, trainable_variables)
        grads = list(map(_as_array, grads))
        if self.loss_scale_factor is not None:
            grads = [g / _f32(self.loss_scale_factor) for g in grads]
        self._apply_with_accumulation(grads, trainable_variables)
        for variable in trainable_variables:
            constraint = getattr(variable, "constraint", None)
            if constraint is not None:
                variable.assign(_as_array(constraint(variable)))
        self._increment_iterations()

    def apply_compiled_step(self, grads, trainable_variables):
        """The update of a compiled training step: what ``apply(grads, trainable_variables)``
        does, without re-checking per step what cannot change within ``fit`` (the variables
        are the model's, already checked when the optimizer was built on them, and none of
        their gradients is missing). Anything beyond the rule, clipping and weight decay
        (accumulation, EMA, loss scaling, constraints, or a first call that builds the
        optimizer) goes through ``apply``.

        ``grads`` may be a ``flat_state.FlatGradients``: gradients already laid end to end,
        which the flat update kernels then use without gathering them (unless clipping made
        new ones)."""
        if (not self.built or self.gradient_accumulation_steps or self.use_ema
                or self.loss_scale_factor is not None
                or any(map(_has_constraint, trainable_variables))):
            self.apply(list(grads), trainable_variables)
            return
        self._update(grads, trainable_variables)
        self._increment_iterations()

    def _apply_with_accumulation(self, grads, trainable_variables):
        if self.gradient_accumulation_steps:
            steps = self.gradient_accumulation_steps
            accumulators = [
                self._accumulated_gradients[self._get_variable_index(v)]
                for v in trainable_variables
            ]
            is_update_step = (int(self._iterations.value) + 1) % steps == 0
            if is_update_step:
                grads = [(g + acc.value) / _f32(steps) for g, acc in zip(grads, accumulators)]
                self._update(grads, trainable_variables)
                for acc in self._accumulated_gradients:
                    acc.assign(np.zeros_like(acc.value))
            else:
                for g, acc in zip(grads, accumulators):
                    acc.assign(g + acc.value)
        else:
            self._update(grads, trainable_variables)

        if self.use_ema:
            self._update_moving_averages()
            if self.ema_overwrite_frequency and (
                self._step_count() + 1
            ) % self.ema_overwrite_frequency == 0:
                self._overwrite_model_variables_with_average_value(self._trainable_variables)

    def _update(self, grads, trainable_variables):
        grads = self._clip_gradients(grads)
        self._apply_weight_decay(trainable_variables)
        learning_rate = self._learning_rate_value()
        self._update_all(grads, trainable_variables, learning_rate)

    def _update_all(self, grads, trainable_variables, learning_rate):
        # One hook around the per-variable loop: Nadam advances a shared product here.
        for grad, variable in zip(grads, trainable_variables):
            self.update_step(grad, variable, learning_rate)

    def update_step(self, gradient, variable, learning_rate):
        raise NotImplementedError(
            f"{type(self).__name__} must implement update_step(gradient, variable, learning_rate)"
        )

    def _filter_empty_gradients(self, grads, variables):
        if not any(map(operator.is_, grads, [None] * len(grads))):
            return list(grads), list(variables)
        kept = [(g, v) for g, v in zip(grads, variables) if g is not None]
        if not kept:
            raise ValueError("No gradients provided for any variable.")
        if len(kept) != len(grads):
            missing = [
                getattr(v, "path", getattr(v, "name", "?"))
                for g, v in zip(grads, variables)
                if g is None
            ]
            warnings.warn(
                f"Gradients do not exist for variables {missing} when minimizing the loss. "
                "If using `model.compile()`, did you forget to provide a `loss` argument?"
            )
        grads_out, vars_out = zip(*kept)
        return list(grads_out), list(vars_out)

    def _clip_gradients(self, grads):
        if self.clipnorm and self.clipnorm > 0:
            return [self._clip_by_norm(g) for g in grads]
        if self.global_clipnorm and self.global_clipnorm > 0:
            return _clip_by_global_norm(grads, self.global_clipnorm)
        if self.clipvalue and self.clipvalue > 0:
            limit = _f32(self.clipvalue)
            return [np.clip(g, -limit, limit) for g in grads]
        return grads

    def _clip_by_norm(self, values):
        # Scale `values` so its L2 norm is at most clipnorm (zero gradients stay zero).
        l2sum = np.sum(np.square(values), keepdims=True)
        l2norm = np.sqrt(l2sum) if np.all(l2sum > 0) else l2sum
        clipnorm = _f32(self.clipnorm)
        return (values * clipnorm) / np.maximum(l2norm, clipnorm)

    # ----- weight decay and EMA ------------------------------------------------------------

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        """Exclude variables (or variables whose name contains one of `var_names`)."""
        if self.built:
            raise ValueError(
                "`exclude_from_weight_decay()` can only be configured before the optimizer is "
                "built."
            )
        self._exclude_ids = {id(v) for v in (var_list or [])}
        self._exclude_pattern = re.compile("|".join(set(var_names))) if var_names else None

    def _use_weight_decay(self, variable):
        if id(variable) in self._exclude_ids:
            return False
        if self._exclude_pattern is not None and self._exclude_pattern.search(
            str(getattr(variable, "name", ""))
        ):
            return False
        return True

    def _decays_all(self, state, variables):
        """Whether no variable of ``state`` (laid out for ``variables``) is excluded from weight
        decay, kept on the state: names are fixed and exclusions are set before building, so
        the answer changes only if the exclusions are replaced."""
        exclusions = (self._exclude_ids, self._exclude_pattern)
        held = state.decays_all
        if held is None or held[0] is not exclusions[0] or held[1] is not exclusions[1]:
            held = (*exclusions, all(self._use_weight_decay(v) for v in variables))
            state.decays_all = held
        return held[2]

    def _apply_weight_decay(self, variables):
        # Decoupled weight decay (Loshchilov & Hutter), applied before the gradient step.
        if self.weight_decay is None:
            return
        lr = self._learning_rate_value()
        wd = _f32(self.weight_decay)
        state = flat_state.existing(self, variables)
        if state is not None and self._decays_all(state, variables):
            # The variables are laid end to end for the update rule's flat kernel: decay them
            # in one pass into a fresh flat array, which the rule then reads without gathering.
            values = state.values(variables)
            decayed = allocator.empty_aligned(values.shape, values.dtype)
            _native.weight_decay_f32(decayed, values, wd, lr)
            state.assign_values(variables, decayed)
            return
        for variable in variables:
            if self._use_weight_decay(variable):
                value = variable.value
                if value.dtype == np.float32:
                    # One fused pass, same float32 roundings; the old value is never written.
                    decayed = allocator.empty_aligned(value.shape, np.float32)
                    _native.weight_decay_f32(decayed, self._c_float32(value), wd, lr)
                    variable._replace(decayed)
                else:
                    variable.assign(value - value * wd * lr)

    def _update_moving_averages(self):
        # The first step copies the weights; later steps blend with ema_momentum.
        momentum = _f32(self.ema_momentum) if self._step_count() != 0 else _f32(0.0)
        for variable, average in zip(
            self._trainable_variables, self._model_variables_moving_average
        ):
            average.assign(momentum * average.value + (_f32(1) - momentum) * variable.value)

    def _overwrite_model_variables_with_average_value(self, trainable_variables):
        if len(trainable_variables) != len(self._model_variables_moving_average):
            raise ValueError(
                f"Got {len(trainable_variables)} model variables to overwrite, but optimizer "
                f"'{self.name}' holds {len(self._model_variables_moving_average)} averages."
            )
        for variable, average in zip(trainable_variables, self._model_variables_moving_average):
            variable.assign(average.value)

    def finalize_variable_values(self, var_list):
        """With EMA, replace the model variables by their moving averages (end of fit)."""
        if self.use_ema:
            self._overwrite_model_variables_with_average_value(var_list)

    def scale_loss(self, loss):
        if self.loss_scale_factor is not None:
            return loss * self.loss_scale_factor
        return loss

    # ----- state -------------------------------------------------------------------------

    def get_weights(self):
        return [np.array(v.value) for v in self._variables]

    def set_weights(self, weights):
        if not self.built:
            raise ValueError(
                f"Optimizer '{self.name}' is not built yet: call "
                "`optimizer.build(trainable_variables)` before `set_weights()`."
            )
        weights = list(weights)
        self._check_state_count(len(weights), "weights")
        for variable, weight in zip(self._variables, weights):
            self._assign_checked(variable, np.asarray(weight), adopt=False)

    def save_own_variables(self, store):
        """Write every optimizer variable as store["0"], store["1"], ... in Keras order."""
        for i, variable in enumerate(self._variables):
            store[str(i)] = np.asarray(variable.value)

    def load_own_variables(self, store):
        """Read the state written by Keras or by `save_own_variables`, checking it fits."""
        count = len(list(store.keys()))
        self._check_state_count(count, "saved variables")
        for i, variable in enumerate(self._variables):
            self._assign_checked(variable, store[str(i)], adopt=True)

    def _check_state_count(self, count, what):
        if count != len(self._variables):
            hint = (
                " The optimizer is not built yet: call optimizer.build(trainable_variables) "
                "first."
                if not self.built
                else ""
            )
            raise ValueError(
                f"Optimizer '{self.name}' ({type(self).__name__}) has "
                f"{len(self._variables)} variables but got {count} {what}.{hint}"
            )

    def _assign_checked(self, variable, array, adopt):
        shape = tuple(getattr(array, "shape", ()))
        if shape != tuple(variable.shape):
            raise ValueError(
                f"Optimizer variable '{variable.path}' has shape {tuple(variable.shape)} but "
                f"the saved value has shape {shape}."
            )
        dtype = np.dtype(variable.dtype)
        if adopt and isinstance(array, np.ndarray) and array.dtype == dtype:
            variable._adopt(array)
            return
        source = np.asarray(array)
        # The step counter may come as int64 (Keras on TensorFlow); other kinds must match.
        if source.dtype.kind != dtype.kind and not (
            source.dtype.kind in "iu" and dtype.kind in "iu"
        ):
            raise ValueError(
                f"Optimizer variable '{variable.path}' has dtype {dtype.name} but the saved "
                f"value has dtype {source.dtype.name}."
            )
        variable.assign(source.astype(dtype))

    # ----- config --------------------------------------------------------------------------

    def get_config(self):
        lr = self._learning_rate
        if isinstance(lr, lr_schedules.LearningRateSchedule):
            learning_rate = lr_schedules.serialize(lr)
        elif self._lr_is_variable():
            learning_rate = float(np.asarray(lr.value))
        elif callable(lr):
            from amber.saving import serialize_keras_object

            learning_rate = serialize_keras_object(lr)
        else:
            learning_rate = float(lr)
        config = {"name": self.name, "learning_rate": learning_rate}
        for key in _BASE_CONFIG_DEFAULTS:
            config[key] = getattr(self, key)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = lr_schedules.deserialize(
                config["learning_rate"], custom_objects=custom_objects
            )
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r} built={self.built}>"


def _clip_by_global_norm(grads, clip_norm):
    squared = np.sum(np.stack([np.sum(np.square(g)) for g in grads]))
    use_norm = np.sqrt(squared)
    # Non-finite norms turn the scale into NaN on purpose, as Keras does.
    scale = _f32(clip_norm) * np.minimum(_f32(1.0) / use_norm, _f32(1.0 / clip_norm))
    scale = scale + (use_norm - use_norm)
    return [g * scale for g in grads]
