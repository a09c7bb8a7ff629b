"""Convolutions run with their BatchNormalization and activation folded in, for inference.

In inference a BatchNormalization is a per-channel affine map, ``(z - mean) * inv + beta`` with
``inv = gamma / sqrt(variance + epsilon)``. After a convolution ``z = conv(x, W) + b`` it folds
into the convolution's epilogue: ``conv(x, W) * inv + (b - mean) * inv + beta``, the scale and
shift applied to each output tile while it is in cache (the kernel is not copied: weights
mapped from a file stay the only copy). The
activation layer after it (ReLU, ReLU(max_value=6), Activation relu/relu6/silu/sigmoid/tanh)
then runs in the convolution's epilogue, and a ZeroPadding layer before it becomes the
convolution's own padding. So ``Conv -> BatchNormalization -> ReLU``, the block MobileNets,
ResNets and EfficientNets are built of, costs one pass over the feature map instead of three
(measured: BatchNormalization and ReLU were 46% of MobileNetV2's forward, ZeroPadding 7%).

A fold runs only when nothing can tell the difference but rounding: no autodiff tape is
recording, the call is not training, the layers are the stock Keras classes (a subclass may
override ``call``), float32 channels-last, and the intermediate outputs feed nothing else.
Otherwise the layers run one by one as before. The scale and shift are computed in float64 and
kept until one of the variables they come from changes: variables are copy-on-write (every
assignment binds a new array, see ``backend.variable``), so the identity of their arrays says
whether they did.
"""

import numpy as np

from amber import activations
from amber.backend import autodiff
from amber.layers.convolutional.base_conv import Conv1D, Conv2D, Conv3D
from amber.layers.convolutional.depthwise_conv import DepthwiseConv1D, DepthwiseConv2D
from amber.layers.core import Activation, ReLU
from amber.layers.normalization import BatchNormalization
from amber.layers.reshaping.zero_padding import ZeroPadding1D, ZeroPadding2D
from amber.ops.conv import conv_bias_activation

_CONVOLUTIONS = (Conv1D, Conv2D, Conv3D)
_DEPTHWISE = (DepthwiseConv1D, DepthwiseConv2D)

# Activation functions the fused kernels apply, by the name the kernels know them by.
_KERNEL_ACTIVATIONS = {
    activations.linear: "linear",
    activations.relu: "relu",
    activations.relu6: "relu6",
    activations.silu: "silu",
    activations.sigmoid: "sigmoid",
    activations.tanh: "tanh",
}


def is_inference(context):
    """Whether a call may run folded layers: no tape recording, not training."""
    return not autodiff._recording and not context.training


def _plain_leaf(layer):
    return (layer.built and not layer._layers and layer.activity_regularizer is None
            and layer._dtype_name == "float32")


def _conv_eligible(layer):
    if type(layer) not in _CONVOLUTIONS + _DEPTHWISE or not _plain_leaf(layer):
        return False
    if layer.data_format != "channels_last":
        return False
    if type(layer) in _CONVOLUTIONS and layer.groups != 1:
        return False
    return layer.kernel.value.dtype == np.float32


def _batch_norm_eligible(layer, rank):
    if type(layer) is not BatchNormalization or not _plain_leaf(layer):
        return False
    return layer.axis in (-1, rank + 1) and layer.moving_mean.value.dtype == np.float32


def _layer_activation(layer):
    """The kernel name of an activation layer's function, or None if no kernel applies it."""
    if type(layer) is ReLU and _plain_leaf(layer):
        if layer.negative_slope != 0 or layer.threshold != 0:
            return None
        if layer.max_value is None:
            return "relu"
        return "relu6" if float(layer.max_value) == 6.0 else None
    if type(layer) is Activation and _plain_leaf(layer):
        return _KERNEL_ACTIVATIONS.get(layer.activation)
    return None


class FoldedConv:
    """A convolution with the ZeroPadding layer before it and the BatchNormalization and
    activation layer after it (each optional), run as one convolution (see the module
    docstring)."""

    __slots__ = ("padding_layer", "conv", "batch_norm", "activation_layer", "activation", "layers", "_cached",
                 "_signature")

    def __init__(self, padding_layer, conv, batch_norm, activation_layer, activation):
        self.padding_layer = padding_layer
        self.conv = conv
        self.batch_norm = batch_norm
        self.activation_layer = activation_layer
        self.activation = activation
        self.layers = [layer for layer in (padding_layer, conv, batch_norm, activation_layer) if layer is not None]
        self._cached = None
        self._signature = self._settings()

    def _settings(self):
        """What the fold was worked out from besides the weights: if any of it changes later
        (a layer's activation or padding reassigned), the fold no longer applies."""
        conv, norm, act = self.conv, self.batch_norm, self.activation_layer
        settings = [conv.activation, conv.strides, conv.padding, conv.dilation_rate, conv.use_bias,
                    conv.data_format, conv._dtype_name]
        if self.padding_layer is not None:
            settings += [self.padding_layer.padding, self.padding_layer.data_format]
        if norm is not None:
            settings += [norm.axis, norm._dtype_name, norm.gamma is None, norm.beta is None]
        if act is not None:
            settings += [getattr(act, name, None) for name in ("activation", "max_value", "negative_slope", "threshold")]
        return tuple(settings)

    def __call__(self, x):
        """The chain's output for ``x``, or None when the fold does not apply to this input
        or the layers' settings changed since it was worked out (the caller then runs
        ``layers`` one by one)."""
        if type(x) is not np.ndarray or x.dtype != np.float32 or x.ndim != self.conv.rank + 2:
            return None
        if self._settings() != self._signature:
            return None
        scale, bias = self._epilogue()
        conv = self.conv
        zero_pads = None if self.padding_layer is None else self.padding_layer.padding
        return conv_bias_activation(x, conv.kernel.value, bias, self.activation, conv.strides, conv.padding,
                                    conv.dilation_rate, depthwise=type(conv) in _DEPTHWISE, zero_pads=zero_pads,
                                    scale=scale)

    def _epilogue(self):
        """The per-channel ``(scale, bias)`` applied to the convolution's output: the
        BatchNormalization folded in, or the convolution's own bias (scale None)."""
        conv, bn = self.conv, self.batch_norm
        bias = conv.bias.value if conv.use_bias else None
        if bn is None:
            return None, bias
        sources = [bias, bn.moving_mean.value, bn.moving_variance.value,
                   bn.gamma.value if bn.gamma is not None else None,
                   bn.beta.value if bn.beta is not None else None, bn.epsilon]
        # One attribute holding (sources, result): concurrent predict calls from several
        # threads see either the old pair or the new one, never a new key with an old result.
        cached = self._cached
        if cached is None or not all(a is b for a, b in zip(cached[0], sources)):
            cached = (sources, _fold(*sources))
            self._cached = cached
        return cached[1]


def _fold(bias, mean, variance, gamma, beta, epsilon):
    """The per-channel scale and shift of a convolution's output followed by an inference
    BatchNormalization, ``(z + bias - mean) * inv + beta``, in float64 then rounded to
    float32. The kernel itself is left as it is (a scaled copy would double the memory of
    weights mapped from the file); the scale is applied to each output tile instead."""
    inv = 1.0 / np.sqrt(np.asarray(variance, np.float64) + float(epsilon))
    if gamma is not None:
        inv = inv * np.asarray(gamma, np.float64)
    shift = -np.asarray(mean, np.float64) * inv
    if bias is not None:
        shift = shift + np.asarray(bias, np.float64) * inv
    if beta is not None:
        shift = shift + np.asarray(beta, np.float64)
    return inv.astype(np.float32), shift.astype(np.float32)


def _padding_eligible(layer, conv):
    """A ZeroPadding layer whose zeros the convolution after it can add itself."""
    return (type(layer) in (ZeroPadding1D, ZeroPadding2D) and _plain_leaf(layer)
            and layer.data_format == "channels_last" and layer.rank == conv.rank)


# The longest chain a fold covers: ZeroPadding, convolution, BatchNormalization, activation.
LONGEST_CHAIN = 4


def fold_chain(layers, consumers_of_output):
    """Finds the fold that starts at ``layers[0]``: ``(FoldedConv, count)`` where ``count``
    is how many of ``layers`` it covers, or None. ``layers`` are consecutive calls, each
    taking the previous one's output; ``consumers_of_output(i)`` says how many calls (and
    model outputs) read the output of ``layers[i]``, which must be 1 for every layer the
    fold swallows the output of."""
    padding_layer = None
    if (len(layers) > 1 and type(layers[0]) in (ZeroPadding1D, ZeroPadding2D) and consumers_of_output(0) == 1
            and _conv_eligible(layers[1]) and _padding_eligible(layers[0], layers[1])):
        padding_layer, layers = layers[0], layers[1:]
        inner = consumers_of_output
        consumers_of_output = lambda i: inner(i + 1)  # noqa: E731
    conv = layers[0]
    if not _conv_eligible(conv):
        return None
    own = _KERNEL_ACTIVATIONS.get(conv.activation) if conv.activation is not None else "linear"
    if own is None:
        return None
    index = 1
    batch_norm = activation_layer = None
    activation = own
    if (own == "linear" and index < len(layers) and consumers_of_output(index - 1) == 1
            and _batch_norm_eligible(layers[index], conv.rank)):
        batch_norm = layers[index]
        index += 1
    if activation == "linear" and index < len(layers) and consumers_of_output(index - 1) == 1:
        name = _layer_activation(layers[index])
        if name is not None:
            activation_layer, activation = layers[index], name
            index += 1
    fold = FoldedConv(padding_layer, conv, batch_norm, activation_layer, activation)
    return fold, index + (padding_layer is not None)


# Marks a Functional plan entry that is a fold: (FoldedConv, args, the entries it replaces,
# output ids, FOLD).
FOLD = object()


def tensors_read(entry):
    """The ids of the graph tensors a Functional plan entry reads (a FOLD entry reads only
    its chain's input; its third field is the chain, not keyword arguments)."""
    from amber.layers import tree
    from amber.layers.keras_tensor import KerasTensor

    kwargs = {} if entry[4] is FOLD else dict(entry[2])
    return [id(value) for value in tree.flatten([list(entry[1]), kwargs]) if isinstance(value, KerasTensor)]


def fold_plan(plan, flat_outputs):
    """A Functional model's execution plan with each foldable chain replaced by one FOLD
    entry at the convolution's place (its input is ready there; the chain's consumers all
    come after the chain's last layer, hence after it). The plan itself is returned when
    nothing folds."""
    readers = {}
    for index, entry in enumerate(plan):
        for tensor_id in tensors_read(entry):
            readers.setdefault(tensor_id, []).append(index)
    for tensor in flat_outputs:
        readers.setdefault(id(tensor), []).append(None)
    folded, swallowed = [], set()
    for index, entry in enumerate(plan):
        if index in swallowed:
            continue
        layer, args, _, out_ids, single = entry
        if not single or len(out_ids) != 1:
            folded.append(entry)
            continue
        # Follow the chain of single readers from this entry.
        chain = [index]
        while len(chain) < LONGEST_CHAIN:
            last = plan[chain[-1]]
            following = readers.get(last[3][0], []) if len(last[3]) == 1 else []
            if len(following) != 1 or following[0] is None or not plan[following[0]][4]:
                break
            chain.append(following[0])
        found = fold_chain([plan[i][0] for i in chain],
                           lambda i: len(readers.get(plan[chain[i]][3][0], [])))
        if found is None or found[1] == 1 and not _worth_alone(found[0]):
            folded.append(entry)
            continue
        fold, count = found
        covered = [plan[i] for i in chain[:count]]
        swallowed.update(chain[1:count])
        folded.append([fold, args, covered, covered[-1][3], FOLD])
    return folded if swallowed or any(entry[4] is FOLD for entry in folded) else plan


def _worth_alone(fold):
    """A convolution on its own still gains by applying its bias and activation in the
    product's epilogue."""
    return fold.conv.use_bias or fold.activation != "linear"


def fold_layers(layers):
    """A Sequential model's layers with each foldable chain replaced by its FoldedConv (whose
    ``layers`` runs them one by one when the fold does not apply)."""
    steps, index = [], 0
    while index < len(layers):
        found = fold_chain(layers[index:index + LONGEST_CHAIN], lambda i: 1)
        if found is None or found[1] == 1 and not _worth_alone(found[0]):
            steps.append(layers[index])
            index += 1
        else:
            steps.append(found[0])
            index += found[1]
    return steps
