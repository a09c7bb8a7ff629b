"""Keras 3's loss functions and Loss classes, built from `amber.ops` so they differentiate.

Each function maps `(y_true, y_pred)` to one loss value per sample (Keras reduces the last
axis); the `Loss` classes then weight and reduce those values. Labels never need gradients,
so label-only preprocessing (casts, one-hot, smoothing) may use numpy directly.
"""

import math
import re

import numpy as np

from amber import ops
from amber.ops import fused

EPSILON = 1e-7  # Keras's backend.epsilon(): probabilities are clipped to [eps, 1 - eps]

_REDUCTIONS = ("sum_over_batch_size", "sum", None, "none", "mean", "mean_with_sample_weight")


def _is_traced(x):
    # Variables and Tensors carry the tape connection; converting them would cut it.
    return hasattr(x, "numpy") and not isinstance(x, (np.ndarray, np.generic))


def _pred(y_pred, dtype=None):
    """y_pred as a float array or, when it can carry gradients, unchanged (cast if needed)."""
    current = _dtype_of(y_pred)
    if dtype is None:
        dtype = current if current.kind in "fc" else np.dtype("float32")
    if _is_traced(y_pred):
        return y_pred if current == np.dtype(dtype) else ops.cast(y_pred, dtype)
    return np.asarray(y_pred, dtype=dtype)


def _value(x):
    return x.numpy() if hasattr(x, "numpy") and not isinstance(x, np.ndarray) else x


def _dtype_of(x):
    if isinstance(x, np.ndarray):
        return x.dtype
    value = getattr(x, "value", None)  # Tensors and Variables: their array's dtype, directly
    if isinstance(value, np.ndarray):
        return value.dtype
    return np.dtype(getattr(x, "dtype", None) or np.asarray(_value(x)).dtype)


def _labels(y_true, like):
    """y_true as a constant of y_pred's dtype (labels are never differentiated)."""
    return np.asarray(_value(y_true)).astype(_dtype_of(like), copy=False)


def _shape(x):
    return tuple(np.shape(x)) if not hasattr(x, "shape") else tuple(x.shape)


def squeeze_or_expand_to_same_rank(x1, x2, expand_rank_1=True):
    """Make ranks agree when they differ by one trailing unit axis, as Keras does."""
    r1, r2 = len(_shape(x1)), len(_shape(x2))
    if r1 == r2 + 1 and _shape(x1)[-1] == 1:
        if r2 == 1 and expand_rank_1:
            x2 = ops.expand_dims(x2, -1)
        else:
            x1 = ops.squeeze(x1, -1)
    elif r2 == r1 + 1 and _shape(x2)[-1] == 1:
        if r1 == 1 and expand_rank_1:
            x1 = ops.expand_dims(x1, -1)
        else:
            x2 = ops.squeeze(x2, -1)
    return x1, x2


def _prepare(y_true, y_pred):
    y_pred = _pred(y_pred)
    y_true = _labels(y_true, y_pred)
    return squeeze_or_expand_to_same_rank(y_true, y_pred)


def _softplus(x):
    # log(1 + e^x) without overflow: max(x, 0) + log1p(e^-|x|).
    return ops.maximum(x, 0.0) + ops.log1p(ops.exp(-ops.abs(x)))


def _log_softmax(x, axis):
    # The shift is a constant: log_softmax is invariant to it, so it needs no gradient.
    shift = np.max(np.asarray(_value(x)), axis=axis, keepdims=True)
    shifted = x - shift
    return shifted - ops.log(ops.sum(ops.exp(shifted), axis=axis, keepdims=True))


# ----- regression losses ------------------------------------------------------------------


def mean_squared_error(y_true, y_pred):
    y_true, y_pred = _prepare(y_true, y_pred)
    return ops.mean(ops.square(y_true - y_pred), axis=-1)


def mean_absolute_error(y_true, y_pred):
    y_true, y_pred = _prepare(y_true, y_pred)
    return ops.mean(ops.abs(y_true - y_pred), axis=-1)


def mean_absolute_percentage_error(y_true, y_pred):
    y_true, y_pred = _prepare(y_true, y_pred)
    eps = np.asarray(EPSILON, _dtype_of(y_pred))
    diff = ops.abs((y_true - y_pred) / np.maximum(np.abs(y_true), eps))
    return 100.0 * ops.mean(diff, axis=-1)


def mean_squared_logarithmic_error(y_true, y_pred):
    y_true, y_pred = _prepare(y_true, y_pred)
    eps = np.asarray(EPSILON, _dtype_of(y_pred))
    first = ops.log(ops.maximum(y_pred, eps) + 1.0)
    second = np.log(np.maximum(y_true, eps) + np.asarray(1.0, y_true.dtype))
    return ops.mean(ops.square(first - second), axis=-1)


def _l2_normalize(x, axis):
    square_sum = ops.sum(ops.square(x), axis=axis, keepdims=True)
    return x * (1.0 / ops.sqrt(ops.maximum(square_sum, 1e-12)))


def cosine_similarity(y_true, y_pred, axis=-1):
    y_true, y_pred = _prepare(y_true, y_pred)
    return -ops.sum(_l2_normalize(y_true, axis) * _l2_normalize(y_pred, axis), axis=axis)


def huber(y_true, y_pred, delta=1.0):
    y_true, y_pred = _prepare(y_true, y_pred)
    delta = np.asarray(delta, _dtype_of(y_pred))
    error = y_pred - y_true
    abs_error = ops.abs(error)
    quadratic = 0.5 * ops.square(error)
    linear = delta * abs_error - 0.5 * np.square(delta)
    return ops.mean(ops.where(np.asarray(_value(abs_error)) <= delta, quadratic, linear), axis=-1)


def log_cosh(y_true, y_pred):
    y_true, y_pred = _prepare(y_true, y_pred)
    x = y_pred - y_true
    log2 = np.asarray(np.log(2.0), _dtype_of(y_pred))
    return ops.mean(x + _softplus(x * -2.0) - log2, axis=-1)


def poisson(y_true, y_pred):
    y_pred = _pred(y_pred)
    y_true = _labels(y_true, y_pred)
    return ops.mean(y_pred - y_true * ops.log(y_pred + EPSILON), axis=-1)


def kl_divergence(y_true, y_pred):
    y_pred = _pred(y_pred)
    y_true = np.clip(_labels(y_true, y_pred), EPSILON, 1)
    y_pred = ops.clip(y_pred, EPSILON, 1)
    return ops.sum(y_true * ops.log(y_true / y_pred), axis=-1)


# ----- hinge losses -----------------------------------------------------------------------


def _binary_labels_to_hinge(y_true):
    # {0, 1} labels become {-1, 1}; other label sets are used as given.
    if np.all((y_true == 0) | (y_true == 1)):
        return 2.0 * y_true - 1.0
    return y_true


def hinge(y_true, y_pred):
    y_pred = _pred(y_pred)
    y_true = _binary_labels_to_hinge(_labels(y_true, y_pred))
    return ops.mean(ops.maximum(1.0 - y_true * y_pred, 0.0), axis=-1)


def squared_hinge(y_true, y_pred):
    y_pred = _pred(y_pred)
    y_true = _binary_labels_to_hinge(_labels(y_true, y_pred))
    return ops.mean(ops.square(ops.maximum(1.0 - y_true * y_pred, 0.0)), axis=-1)


def categorical_hinge(y_true, y_pred):
    y_pred = _pred(y_pred)
    y_true = _labels(y_true, y_pred)
    pos = ops.sum(y_true * y_pred, axis=-1)
    neg = ops.max((1.0 - y_true) * y_pred, axis=-1)
    return ops.maximum(neg - pos + 1.0, 0.0)


# ----- crossentropies ---------------------------------------------------------------------


def _check_axis(axis):
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise ValueError(f"`axis` must be of type `int`. Received: axis={axis!r}")


def _categorical_log_probs(y_pred, from_logits, axis):
    if from_logits:
        return _log_softmax(y_pred, axis)
    output = y_pred / ops.sum(y_pred, axis=axis, keepdims=True)
    return ops.log(ops.clip(output, EPSILON, 1.0 - EPSILON))


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    _check_axis(axis)
    y_pred = _pred(y_pred)
    y_true = _labels(y_true, y_pred)
    if _shape(y_true) != _shape(y_pred):
        raise ValueError(
            "Arguments `target` and `output` must have the same shape. Received: "
            f"target.shape={_shape(y_true)}, output.shape={_shape(y_pred)}"
        )
    if label_smoothing:
        num_classes = y_true.dtype.type(y_true.shape[-1])
        y_true = y_true * (1.0 - label_smoothing) + (label_smoothing / num_classes)
    return -ops.sum(y_true * _categorical_log_probs(y_pred, from_logits, axis), axis=axis)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, ignore_class=None,
                                    axis=-1):
    _check_axis(axis)
    y_pred = _pred(y_pred)
    labels = np.asarray(_value(y_true))
    pred_shape = _shape(y_pred)
    if labels.ndim == len(pred_shape) and labels.shape[axis] == 1:
        labels = np.squeeze(labels, axis=axis)
    class_axis = axis % len(pred_shape)
    expected = pred_shape[:class_axis] + pred_shape[class_axis + 1:]
    if labels.shape != expected:
        raise ValueError(
            "Arguments `target` and `output` must have the same shape up until the last "
            f"dimension: target.shape={labels.shape}, output.shape={pred_shape}"
        )
    valid = None
    if ignore_class is not None:
        valid = labels != ignore_class
        labels = np.where(valid, labels, 0)
    labels = labels.astype("int64", copy=False)
    num_classes = pred_shape[class_axis]
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)].flat[0]
        raise ValueError(
            f"sparse_categorical_crossentropy: label {bad} is out of range for "
            f"{num_classes} classes."
        )
    if from_logits and valid is None and class_axis == len(pred_shape) - 1:
        # One recorded node with the same values and gradients as the one-hot chain below.
        return fused.sparse_softmax_crossentropy(y_pred, labels)
    one_hot = np.moveaxis(np.eye(num_classes, dtype=_dtype_of(y_pred))[labels], -1, class_axis)
    if valid is not None:
        y_pred = ops.where(np.expand_dims(valid, class_axis), y_pred, 0.0)
    losses = -ops.sum(one_hot * _categorical_log_probs(y_pred, from_logits, axis), axis=axis)
    if valid is not None:
        losses = ops.where(valid, losses, 0.0)
    return losses


def _elementwise_binary_crossentropy(y_true, y_pred, from_logits):
    if from_logits:
        # -y log(sigmoid(x)) - (1 - y) log(sigmoid(-x)), in softplus form.
        return y_true * _softplus(-y_pred) + (1.0 - y_true) * _softplus(y_pred)
    output = ops.clip(y_pred, EPSILON, 1.0 - EPSILON)
    return -(y_true * ops.log(output) + (1.0 - y_true) * ops.log(1.0 - output))


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    y_pred = _pred(y_pred)
    y_true = _labels(y_true, y_pred)
    if _shape(y_true) != _shape(y_pred):
        raise ValueError(
            "Arguments `target` and `output` must have the same shape. Received: "
            f"target.shape={_shape(y_true)}, output.shape={_shape(y_pred)}"
        )
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    return ops.mean(_elementwise_binary_crossentropy(y_true, y_pred, from_logits), axis=axis)


def binary_focal_crossentropy(y_true, y_pred, apply_class_balancing=False, alpha=0.25,
                              gamma=2.0, from_logits=False, label_smoothing=0.0, axis=-1):
    y_pred = _pred(y_pred)
    y_true = _labels(y_true, y_pred)
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        y_pred = ops.sigmoid(y_pred)
    bce = _elementwise_binary_crossentropy(y_true, y_pred, from_logits=False)
    p_t = y_true * y_pred + (1 - y_true) * (1 - y_pred)
    focal = ops.power(1.0 - p_t, gamma) * bce
    if apply_class_balancing:
        focal = (y_true * alpha + (1 - y_true) * (1 - alpha)) * focal
    return ops.mean(focal, axis=axis)


def categorical_focal_crossentropy(y_true, y_pred, alpha=0.25, gamma=2.0, from_logits=False,
                                   label_smoothing=0.0, axis=-1):
    _check_axis(axis)
    y_pred = _pred(y_pred)
    y_true = _labels(y_true, y_pred)
    if label_smoothing:
        num_classes = y_true.dtype.type(y_true.shape[-1])
        y_true = y_true * (1.0 - label_smoothing) + (label_smoothing / num_classes)
    if from_logits:
        y_pred = ops.exp(_log_softmax(y_pred, axis))
    output = ops.clip(y_pred / ops.sum(y_pred, axis=axis, keepdims=True), EPSILON, 1.0 - EPSILON)
    cce = -y_true * ops.log(output)
    weight = ops.power(1.0 - output, gamma) * alpha
    return ops.sum(weight * cce, axis=axis)


# ----- the Loss classes -------------------------------------------------------------------


def _snake_case(name):
    name = re.sub("(.)([A-Z][a-z0-9]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def standardize_reduction(reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(
            f"Invalid value for argument `reduction`. Expected one of {_REDUCTIONS}. "
            f"Received: reduction={reduction!r}"
        )
    return reduction


def _merge_mask(sample_weight, mask, dtype, reduction):
    # Masked-out entries weigh 0; for mean-type reductions the valid ones weigh total/valid so
    # the sum over the batch divides by the number of valid entries.
    mask = np.asarray(mask, bool)
    if reduction in ("mean", "sum_over_batch_size"):
        valid = np.sum(mask)
        weight = np.asarray(mask.size / valid if valid else 0.0, dtype)
        float_mask = np.where(mask, weight, np.asarray(0, dtype)).astype(dtype)
    else:
        float_mask = mask.astype(dtype)
    if sample_weight is None:
        return float_mask
    sample_weight = np.asarray(_value(sample_weight)).astype(dtype, copy=False)
    float_mask, sample_weight = squeeze_or_expand_to_same_rank(float_mask, sample_weight)
    return sample_weight * float_mask


def reduce_weighted_values(values, sample_weight=None, reduction="sum_over_batch_size",
                           mask=None):
    """Weight per-sample losses (and a validity mask) and reduce them the way Keras 3 does."""
    reduction = standardize_reduction(reduction)
    if mask is not None:
        sample_weight = _merge_mask(sample_weight, mask, _dtype_of(values), reduction)
    if sample_weight is not None:
        sample_weight = np.asarray(_value(sample_weight)).astype(_dtype_of(values), copy=False)
        values, sample_weight = squeeze_or_expand_to_same_rank(values, sample_weight)
        values = values * sample_weight
    shape = _shape(values)
    if reduction in (None, "none") or shape in ((), (0,)):
        return values
    if reduction == "sum":
        return ops.sum(values)
    if reduction == "mean_with_sample_weight" and sample_weight is not None:
        divisor = np.sum(sample_weight)
    else:
        divisor = math.prod(shape)
    divisor = np.asarray(divisor, _dtype_of(values))
    if divisor == 0:  # divide_no_nan
        return ops.sum(values) * 0.0
    return fused.sum_divided(values, divisor)


class Loss:
    """Base class: subclasses implement `call(y_true, y_pred)` returning per-sample losses."""

    def __init__(self, name=None, reduction="sum_over_batch_size", dtype=None):
        self.name = name or _snake_case(type(self).__name__)
        self.reduction = standardize_reduction(reduction)
        if isinstance(dtype, dict):  # a DTypePolicy config
            dtype = dtype.get("config", {}).get("name", None)
        self._dtype = dtype or "float32"

    @property
    def dtype(self):
        return self._dtype

    def __call__(self, y_true, y_pred, sample_weight=None):
        y_pred = _pred(y_pred, self.dtype)
        y_true = np.asarray(_value(y_true)).astype(self.dtype, copy=False)
        losses = self.call(y_true, y_pred)
        return reduce_weighted_values(losses, sample_weight, self.reduction)

    def call(self, y_true, y_pred):
        raise NotImplementedError(f"{type(self).__name__} must implement call(y_true, y_pred)")

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}>"


class LossFunctionWrapper(Loss):
    """A Loss that calls a loss function with fixed keyword arguments."""

    # The constructor arguments Keras writes into the config (beyond name and reduction).
    _config_keys = ()

    def __init__(self, fn, reduction="sum_over_batch_size", name=None, dtype=None, **kwargs):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.fn = fn
        self._fn_kwargs = kwargs

    def __call__(self, y_true, y_pred, sample_weight=None):
        y_pred = _pred(y_pred, self.dtype)
        # Sparse labels stay integers; everything else takes the loss dtype.
        y_true = np.asarray(_value(y_true))
        losses = self.call(y_true, y_pred)
        mask = self._output_mask(y_true, y_pred)
        return reduce_weighted_values(losses, sample_weight, self.reduction, mask=mask)

    def call(self, y_true, y_pred):
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        return self.fn(y_true, y_pred, **self._fn_kwargs)

    def _output_mask(self, y_true, y_pred):
        # Which per-sample losses count; only an ignored class in sparse labels masks any.
        ignore_class = self._fn_kwargs.get("ignore_class")
        if ignore_class is None:
            return None
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        labels = np.asarray(y_true)
        if labels.ndim == len(_shape(y_pred)) and labels.shape[-1] == 1:
            labels = np.squeeze(labels, -1)
        return labels != ignore_class

    def get_config(self):
        config = Loss.get_config(self)
        for key in self._config_keys:
            config[key] = self._fn_kwargs[key]
        return config


def _wrapper(class_name, fn, default_name, config_keys=(), **defaults):
    """Define a LossFunctionWrapper subclass with Keras's signature and config keys."""

    def __init__(self, reduction="sum_over_batch_size", name=default_name, dtype=None,
                 **kwargs):
        unknown = set(kwargs) - set(defaults)
        if unknown:
            raise TypeError(f"{class_name}() got unexpected keyword arguments {sorted(unknown)}")
        fn_kwargs = {**defaults, **kwargs}
        LossFunctionWrapper.__init__(
            self, fn, reduction=reduction, name=name, dtype=dtype, **fn_kwargs
        )
        for key, value in fn_kwargs.items():
            setattr(self, key, value)

    return type(
        class_name,
        (LossFunctionWrapper,),
        {"__init__": __init__, "_config_keys": tuple(config_keys),
         "__doc__": f"Loss class of `{fn.__name__}`.", "__module__": __name__},
    )


MeanSquaredError = _wrapper("MeanSquaredError", mean_squared_error, "mean_squared_error")
MeanAbsoluteError = _wrapper("MeanAbsoluteError", mean_absolute_error, "mean_absolute_error")
MeanAbsolutePercentageError = _wrapper(
    "MeanAbsolutePercentageError", mean_absolute_percentage_error,
    "mean_absolute_percentage_error",
)
MeanSquaredLogarithmicError = _wrapper(
    "MeanSquaredLogarithmicError", mean_squared_logarithmic_error,
    "mean_squared_logarithmic_error",
)
# Keras leaves `axis` and `delta` out of these two configs; so do we, for identical files.
CosineSimilarity = _wrapper("CosineSimilarity", cosine_similarity, "cosine_similarity", axis=-1)
Huber = _wrapper("Huber", huber, "huber_loss", delta=1.0)
LogCosh = _wrapper("LogCosh", log_cosh, "log_cosh")
Hinge = _wrapper("Hinge", hinge, "hinge")
SquaredHinge = _wrapper("SquaredHinge", squared_hinge, "squared_hinge")
CategoricalHinge = _wrapper("CategoricalHinge", categorical_hinge, "categorical_hinge")
KLDivergence = _wrapper("KLDivergence", kl_divergence, "kl_divergence")
Poisson = _wrapper("Poisson", poisson, "poisson")
BinaryCrossentropy = _wrapper(
    "BinaryCrossentropy", binary_crossentropy, "binary_crossentropy",
    ("from_logits", "label_smoothing", "axis"), from_logits=False, label_smoothing=0.0, axis=-1,
)
BinaryFocalCrossentropy = _wrapper(
    "BinaryFocalCrossentropy", binary_focal_crossentropy, "binary_focal_crossentropy",
    ("from_logits", "label_smoothing", "axis", "apply_class_balancing", "alpha", "gamma"),
    apply_class_balancing=False, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0,
    axis=-1,
)
CategoricalCrossentropy = _wrapper(
    "CategoricalCrossentropy", categorical_crossentropy, "categorical_crossentropy",
    ("from_logits", "label_smoothing", "axis"), from_logits=False, label_smoothing=0.0, axis=-1,
)
CategoricalFocalCrossentropy = _wrapper(
    "CategoricalFocalCrossentropy", categorical_focal_crossentropy,
    "categorical_focal_crossentropy",
    ("from_logits", "label_smoothing", "axis", "alpha", "gamma"),
    alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0, axis=-1,
)
SparseCategoricalCrossentropy = _wrapper(
    "SparseCategoricalCrossentropy", sparse_categorical_crossentropy,
    "sparse_categorical_crossentropy", ("from_logits", "ignore_class"),
    from_logits=False, ignore_class=None, axis=-1,
)
