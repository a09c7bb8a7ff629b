"""A compiled training step for models that are a plain chain of Dense layers (with Dropout
between them), possibly ending in a short tail of other simple layers (a softmax output).

Keras compiles ``train_step`` into one backend program (``jit_compile``); amber's generic
step runs the model's layers one Python call at a time and records every op for autodiff,
which at the guide MLP's size (784-64-64-10, batch 32) costs more than the arithmetic. For a
model whose whole forward pass is ``Dense`` layers in a row (a ``Dropout`` between two of them,
or at either end, included), this module does what the generic step would, without the
machinery: the forward pass is one fused-kernel call per layer (``backend.linalg.dense``, the
same call Dense makes) and, for Dropout, the same mask drawn in the same order, the loss is the compiled loss recorded
on the logits alone, and the backward pass is one native call for the whole chain
(``amber-core``'s ``train::dense_chain_backward``), which runs the same kernels on the same
operands in the same order as Dense's recorded backward. The results are therefore bitwise
those of the generic step (the tests compare the two), only faster.

Layers after the chain that the native backward does not cover (a Dense with another
activation, Activation, Softmax, Dropout) form a tail that runs recorded, as in the generic
step, on the chain's output; its gradient there feeds the native backward. Anything else
takes the generic step: other layers, regularizers, masks, extra losses, a
custom ``call``, inputs that need casting, ``run_eagerly=True`` or ``jit_compile=False``.
"""

import numpy as np

from amber import _native, backend
from amber.backend import linalg
from amber.ops import fused
from amber.optimizers import flat_state

f32 = np.float32


class DenseChainStep:
    """The compiled step of one model for one list of trainable variables. ``stages`` is the
    chain in call order: Dense layers, and Dropout layers never two in a row."""

    def __init__(self, model, stages, tail, variables):
        self.model = model
        self.stages = stages
        self.tail = tail
        # Which stages are Dropout, decided once (the step runs every batch).
        self.dropouts = [_is_dropout(stage) for stage in stages]
        self.layers = [stage for stage, dropout in zip(stages, self.dropouts) if not dropout]
        self.variables = variables
        self.activations = [layer._fused_name for layer in self.layers]
        self.input_dim = self.layers[0].kernel.value.shape[0]
        self.has_bias = [layer.bias is not None for layer in self.layers]
        # The gradients' home: one flat vector in the variables' order, reused every step
        # (the optimizer reads it during the step and keeps nothing of it), with a view per
        # variable. The chain's variables come first; the tail's follow.
        sizes = [v.value.size for v in variables]
        self.flat_gradient = np.empty(sum(sizes), f32)
        views, offset = [], 0
        for variable, size in zip(variables, sizes):
            views.append(self.flat_gradient[offset:offset + size].reshape(variable.value.shape))
            offset += size
        self.gradients = flat_state.FlatGradients(views, self.flat_gradient, self.variables)
        chain_count = sum(2 if layer.bias is not None else 1 for layer in self.layers)
        self.chain_gradient = self.flat_gradient[:sum(sizes[:chain_count])]
        self.tail_variables = variables[chain_count:]
        self.tail_gradients = views[chain_count:]
        self.loss = None  # the compiled loss's fast form, decided once the loss is built

    def run(self, x, y, sample_weight):
        """``(loss, y_pred)`` as the generic ``train_step`` returns them, or None when this
        batch needs the generic step (an input that is not a float32 matrix)."""
        if type(x) is not np.ndarray or x.dtype != f32 or x.ndim != 2 or x.shape[1] != self.input_dim:
            return None
        model = self.model
        inputs, scales, kernels, outputs = [], [], [], []
        h = x
        scale = None  # the dropout factor the next Dense layer's input carries
        for stage, dropout in zip(self.stages, self.dropouts):
            if dropout:
                if stage.rate != 0:
                    scale = stage._training_scale(h)
                    h = np.multiply(h, scale)
                continue
            kernel = stage.kernel.value
            inputs.append(h)
            scales.append(None if scale is None else np.broadcast_to(scale, h.shape))
            scale = None
            h = linalg.dense(h, kernel, stage.bias.value if stage.bias is not None else None,
                             self.activations[len(kernels)])
            kernels.append(kernel)
            outputs.append(h)
        result = None
        if self.tail:
            result = self._recorded_tail(x, y, h, sample_weight)
            if result is None:
                return None
            loss, chain_gradient, y_pred = result
        else:
            if self.loss and sample_weight is None:
                result = self.loss(y, h)
            if result is None:
                result = self._recorded_loss(x, y, h, sample_weight)
                if result is None:
                    return None
            loss, chain_gradient = result
            y_pred = h
        if scale is not None:  # Dropout after the last Dense: through the multiply first
            chain_gradient = chain_gradient * scale
        _native.dense_chain_backward(inputs, scales, kernels, outputs, self.activations, self.has_bias,
                                     chain_gradient, self.chain_gradient)
        model.optimizer.apply_compiled_step(self.gradients, self.variables)
        return loss, y_pred

    def _recorded_tail(self, x, y, h, sample_weight):
        """The layers after the chain and the loss, recorded as the generic step records
        them: ``(loss, gradient at the chain's output, y_pred)``, the tail's variable
        gradients written to their places in the flat vector; None if some gradient is
        missing (the generic step reports it)."""
        source = backend.autodiff.Tensor(h)
        with backend.GradientTape() as tape:
            out = source
            for layer in self.tail:
                out = layer(out, training=True)
            loss = self.model.compute_loss(x, y, out, sample_weight, training=True)
        grads = tape.gradient(loss, [source] + self.tail_variables)
        if any(g is None for g in grads):
            return None
        for view, grad in zip(self.tail_gradients, grads[1:]):
            np.copyto(view, grad)
        return loss, grads[0], out


    def _recorded_loss(self, x, y, logits, sample_weight):
        """The compiled loss of any kind, recorded on the logits alone."""
        model = self.model
        # A leaf Tensor, as the generic step's logits are a Tensor: losses written with
        # Python operators (`y_true - y_pred`) record through it.
        source = backend.autodiff.Tensor(logits)
        with backend.GradientTape(watch_accessed_variables=False) as tape:
            loss = model.compute_loss(x, y, source, sample_weight, training=True)
        if self.loss is None:
            self.loss = _fast_loss(model._compiled) or False
        gradient = tape.gradient(loss, source)
        if gradient is None:  # a loss that ignores the predictions: the generic step reports it
            return None
        return loss, gradient


def _fast_loss(compiled):
    """For the compiled losses that a few direct calls compute exactly as their recorded ops
    do, ``fn(y, logits) -> (loss, gradient at the logits)`` (None from ``fn`` when a batch
    needs the recorded form, e.g. labels out of range, whose error that form raises); else
    None. Today: sparse categorical crossentropy from logits, Keras's default reduction."""
    from amber import losses

    if not compiled.built or len(compiled.losses) != 1 or compiled.output_loss_trackers:
        return None
    index, fn, weight = compiled.losses[0]
    if index != 0 or weight is not None:
        return None
    wrapper = losses.LossFunctionWrapper
    if not isinstance(fn, wrapper) or type(fn).__call__ is not wrapper.__call__ or (
            type(fn).call is not wrapper.call):
        return None
    kwargs = fn._fn_kwargs
    if fn.fn is not losses.sparse_categorical_crossentropy or not kwargs.get("from_logits") or (
            kwargs.get("ignore_class") is not None or kwargs.get("axis", -1) not in (-1, 1)):
        return None
    if fn.reduction != "sum_over_batch_size" or fn.dtype != "float32":
        return None
    return _sparse_crossentropy_from_logits


def _sparse_crossentropy_from_logits(y, logits):
    """Sparse categorical crossentropy from 2-D logits, mean over the batch, and its gradient:
    the calls ``fused.sparse_softmax_crossentropy`` and ``fused.sum_divided`` make, with the
    seed gradient 1, as ``tape.gradient`` would run them."""
    labels = np.asarray(y)
    if labels.ndim == 2 and labels.shape[-1] == 1:
        labels = np.squeeze(labels, axis=-1)
    batch, classes = logits.shape
    if labels.shape != (batch,) or labels.dtype.kind not in "iuf" or batch == 0:
        return None
    labels = labels.astype("int64", copy=False)
    if labels.min() < 0 or labels.max() >= classes:
        return None
    per_sample, saved = fused.sparse_softmax_crossentropy_rows(logits, labels)
    divisor = np.asarray(batch, f32)
    loss = np.true_divide(np.asarray(np.sum(per_sample)), divisor)
    seed = np.full(per_sample.shape, np.true_divide(np.ones_like(loss), divisor))
    return loss, fused.sparse_softmax_crossentropy_rows_grad(seed, saved, labels)


def _dense_class():
    from amber.layers.core import Dense

    return Dense


def _is_dropout(layer):
    from amber.layers.core import Dropout

    return type(layer).call is Dropout.call and isinstance(layer, Dropout)


def _chain_layers(model):
    """``(layers, None)`` with the model's layers in call order if its forward pass is
    exactly one chain of Dense layers (no other computation between them), else
    ``(None, why not)``."""
    from amber.layers.layer import Layer
    from amber.models.functional import Functional
    from amber.models.sequential import Sequential

    if type(model).call is Sequential.call and isinstance(model, Sequential):
        if not model.built:
            return None, "the model is not built"
        layers = model.layers
    elif isinstance(model, Functional) and type(model).call is Functional.call:
        if len(model._flat_inputs) != 1 or len(model._flat_outputs) != 1:
            return None, "the model has several inputs or outputs"
        if model._outputs_struct is not model._flat_outputs[0]:
            return None, "the model's output is a structure"
        layers = []
        current = id(model._flat_inputs[0])
        for layer, args, kwargs, out_ids, single in model._plan:
            if not single or kwargs or len(args) != 1 or id(args[0]) != current or len(out_ids) != 1:
                return None, f"the graph branches or passes arguments at '{layer.name}'"
            layers.append(layer)
            current = out_ids[0]
        if current != id(model._flat_outputs[0]):
            return None, "the output is not the end of the chain"
    else:
        return None, "the model defines its own call"
    dense = _dense_class()
    previous_dropout = False
    chain = []
    for position, layer in enumerate(layers):
        name = layer.name
        if _is_dropout(layer) and type(layer).__call__ is Layer.__call__:
            if previous_dropout:
                return None, f"'{name}' follows another Dropout"
            previous_dropout = True
            chain.append(layer)
            continue
        previous_dropout = False
        if type(layer).call is not dense.call or type(layer).__call__ is not Layer.__call__:
            break
        reason = _plain_dense_reason(layer)
        if reason is not None:
            return None, reason
        if layer._fused_name not in fused.DENSE_ACTIVATIONS:
            break
        chain.append(layer)
    while chain and _is_dropout(chain[-1]) and len(chain) < len(layers):
        chain.pop()  # a Dropout right before the tail belongs to the tail
    if not any(not _is_dropout(layer) for layer in chain):
        return None, "the model does not start with a Dense layer (linear or relu)"
    tail = layers[len(chain):]
    for layer in tail:
        reason = _tail_reason(layer, dense)
        if reason is not None:
            return None, reason
    return (chain, tail), None


def _plain_dense_reason(layer):
    name = layer.name
    if not layer.built:
        return f"'{name}' is not built"
    if layer.activity_regularizer is not None or layer.kernel_regularizer is not None or (
            layer.bias_regularizer is not None):
        return f"'{name}' has a regularizer"
    if layer._dtype_name != "float32" or layer.kernel.value.dtype != f32:
        return f"'{name}' does not compute in float32"
    if getattr(layer, "lora_enabled", False) or getattr(layer, "_layer_call_hooks", None):
        return f"'{name}' has LoRA or call hooks"
    return None


def _tail_reason(layer, dense):
    """None if ``layer`` may run recorded after the chain (a Dense with another activation,
    an Activation or a Softmax layer, a Dropout): built-in layers that add no loss."""
    from amber.layers.core import Activation, Dropout, Softmax
    from amber.layers.layer import Layer

    if type(layer).__call__ is not Layer.__call__:
        return f"'{layer.name}' overrides __call__"
    if type(layer).call is dense.call:
        return _plain_dense_reason(layer)
    for kind in (Activation, Softmax, Dropout):
        if type(layer).call is kind.call and isinstance(layer, kind):
            return None
    return f"'{layer.name}' ({type(layer).__name__}) is not a Dense, Dropout, Activation or Softmax layer"


def for_model(model, variables):
    """The compiled step for ``model`` training ``variables``, or None for the generic step.

    Cached on the model per list of variables (``fit`` makes a new list each epoch), so the
    structure is checked once per epoch, not once per batch."""
    cached = model.__dict__.get("_compiled_step_cache")
    if cached is not None and cached[0] is variables:
        return cached[1]
    step = _plan(model, variables)
    object.__setattr__(model, "_compiled_step_cache", (variables, step))
    return step


def _plan(model, variables):
    step, _ = plan_or_reason(model, variables)
    return step


def plan_or_reason(model, variables):
    """``(DenseChainStep, None)``, or ``(None, why the generic step is needed)``."""
    config = model._compile_config or {}
    if config.get("run_eagerly") or config.get("jit_compile") is False:
        return None, "compiled with run_eagerly=True or jit_compile=False"
    parts, reason = _chain_layers(model)
    if parts is None:
        return None, reason
    chain, tail = parts
    # These layers' own calls add no loss (regularizers were refused above); a loss added by
    # hand to the model or a layer would have to join the compiled loss.
    if model._losses or any(layer._losses for layer in chain + tail):
        return None, "the model or a layer holds losses added with add_loss"
    expected = []
    for layer in chain:
        if _is_dropout(layer):
            continue
        expected.append(layer.kernel)
        if layer.bias is not None:
            expected.append(layer.bias)
    for layer in tail:
        expected.extend(layer.trainable_weights)
    if len(expected) != len(variables) or any(a is not b for a, b in zip(expected, variables)):
        return None, "the trainable variables are not exactly the layers' kernels and biases"
    return DenseChainStep(model, chain, tail, list(variables)), None
