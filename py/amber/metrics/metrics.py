"""Keras 3's metrics: stateful accumulators over batches, with Keras's names, state variables
and configs. Metrics never need gradients, so they compute in numpy on plain values."""

import re

import numpy as np

from amber import losses as _losses

EPSILON = 1e-7


def _value(x):
    return np.asarray(x.numpy() if hasattr(x, "numpy") and not isinstance(x, np.ndarray) else x)


def _snake_case(name):
    name = re.sub("(.)([A-Z][a-z0-9]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _same_rank(x1, x2):
    r1, r2 = x1.ndim, x2.ndim
    if r1 == r2 + 1 and x1.shape[-1] == 1:
        x1 = np.squeeze(x1, -1) if r2 != 1 else x1
        x2 = x2[..., None] if r2 == 1 else x2
    elif r2 == r1 + 1 and x2.shape[-1] == 1:
        x2 = np.squeeze(x2, -1) if r1 != 1 else x2
        x1 = x1[..., None] if r1 == 1 else x1
    return x1, x2


_name_counts = {}


def _auto_name(class_name):
    # Keras numbers unnamed instances: "auc", "auc_1", ...
    base = _snake_case(class_name)
    count = _name_counts.get(base, 0)
    _name_counts[base] = count + 1
    return base if count == 0 else f"{base}_{count}"


class Metric:
    """Base class: state Variables (`add_variable`), `update_state`, `result`, `reset_state`."""

    def __init__(self, dtype=None, name=None):
        self.name = name or _auto_name(type(self).__name__)
        if isinstance(dtype, dict):  # a DTypePolicy config
            dtype = dtype.get("config", {}).get("name")
        self._dtype = dtype or "float32"
        self._variables = []

    @property
    def dtype(self):
        return self._dtype

    @property
    def variables(self):
        return list(self._variables)

    def add_variable(self, shape, initializer="zeros", dtype=None, name=None):
        from amber.backend import Variable

        dtype = dtype or self._dtype
        value = np.zeros(shape, dtype) if initializer == "zeros" else np.full(shape, initializer,
                                                                            dtype)
        variable = Variable(value, dtype=dtype, trainable=False, name=name)
        variable.path = f"{self.name}/{name}"
        self._variables.append(variable)
        return variable

    def update_state(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must implement update_state")

    def result(self):
        raise NotImplementedError(f"{type(self).__name__} must implement result")

    def reset_state(self):
        for variable in self._variables:
            variable.assign(np.zeros(variable.shape, variable.dtype))

    def __call__(self, *args, **kwargs):
        self.update_state(*args, **kwargs)
        return self.result()

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"


def _samplewise(values, sample_weight, dtype, reduce_fn=np.mean):
    """Weight `values` and reduce each sample to one number, as Keras's reduction metrics do:
    values are first averaged down to the weights' rank, then weighted, then per sample."""
    values = _value(values).astype(dtype, copy=False)
    if sample_weight is not None:
        sample_weight = _value(sample_weight).astype(dtype, copy=False)
        values, sample_weight = _same_rank(values, sample_weight)
        if values.ndim > sample_weight.ndim:
            values = reduce_fn(values, axis=tuple(range(sample_weight.ndim, values.ndim)))
        sample_weight = np.broadcast_to(sample_weight, values.shape)
        values = values * sample_weight
        if sample_weight.ndim > 1:
            sample_weight = reduce_fn(sample_weight, axis=tuple(range(1, sample_weight.ndim)))
    if values.ndim > 1:
        values = reduce_fn(values, axis=tuple(range(1, values.ndim)))
    return values, sample_weight


class Sum(Metric):
    """The weighted sum of every value seen."""

    def __init__(self, name="sum", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable((), name="total")

    def update_state(self, values, sample_weight=None):
        values, _ = _samplewise(values, sample_weight, self.dtype, reduce_fn=np.sum)
        self.total.assign(self.total.value + np.sum(values, dtype=self.dtype))

    def result(self):
        return np.array(self.total.value)


class Mean(Metric):
    """The (weighted) mean of every value seen: total / count."""

    def __init__(self, name="mean", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable((), name="total")
        self.count = self.add_variable((), name="count")

    def update_state(self, values, sample_weight=None):
        values, sample_weight = _samplewise(values, sample_weight, self.dtype)
        self.total.assign(self.total.value + np.sum(values, dtype=self.dtype))
        if sample_weight is not None:
            added = np.sum(sample_weight, dtype=self.dtype)
        else:
            added = values.shape[0] if values.ndim >= 1 else 1
        self.count.assign(self.count.value + np.asarray(added, self.dtype))

    def result(self):
        count = self.count.value
        return np.asarray(self.total.value / count if count != 0 else 0.0, self.dtype)


class MeanMetricWrapper(Mean):
    """The mean over all samples of `fn(y_true, y_pred, **kwargs)`."""

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype)
        self._fn = fn
        self._fn_kwargs = kwargs

    def update_state(self, y_true, y_pred, sample_weight=None):
        values = self._fn(_value(y_true), _value(y_pred), **self._fn_kwargs)
        super().update_state(_value(values), sample_weight=sample_weight)

    def get_config(self):
        config = Metric.get_config(self)
        config.update(self._config_extras())
        return config

    def _config_extras(self):
        return {}


# ----- accuracy functions -----------------------------------------------------------------


def accuracy(y_true, y_pred):
    y_true, y_pred = _same_rank(_value(y_true), _value(y_pred))
    return (y_true == y_pred).astype("float32")


def binary_accuracy(y_true, y_pred, threshold=0.5):
    y_true, y_pred = _same_rank(_value(y_true), _value(y_pred))
    return (y_true == (y_pred > threshold).astype(y_true.dtype)).astype("float32")


def categorical_accuracy(y_true, y_pred):
    y_true, y_pred = _value(y_true), _value(y_pred)
    return (np.argmax(y_true, -1) == np.argmax(y_pred, -1)).astype("float32")


def sparse_categorical_accuracy(y_true, y_pred):
    y_true, y_pred = _value(y_true), _value(y_pred)
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = np.squeeze(y_true, -1)
    return (y_true.astype(y_pred.dtype) == np.argmax(y_pred, -1)).astype("float32")


def _in_top_k(y_pred, labels, k):
    # A label is in the top k when fewer than k classes score strictly higher.
    target = np.take_along_axis(y_pred, labels[..., None].astype(np.int64), -1)
    return np.sum(y_pred > target, axis=-1) < k


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    y_true, y_pred = _value(y_true), _value(y_pred)
    return _in_top_k(y_pred, np.argmax(y_true, -1), k).astype("float32")


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5):
    y_true, y_pred = _value(y_true), _value(y_pred)
    original_shape = y_true.shape
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = np.squeeze(y_true, -1)
    # Keras gives the matches the labels' original shape.
    return _in_top_k(y_pred, y_true, k).astype("float32").reshape(original_shape)


def _metric_class(class_name, fn, default_name, config_keys=(), **defaults):
    def __init__(self, name=default_name, dtype=None, **kwargs):
        unknown = set(kwargs) - set(defaults)
        if unknown:
            raise TypeError(f"{class_name}() got unexpected keyword arguments {sorted(unknown)}")
        fn_kwargs = {**defaults, **kwargs}
        MeanMetricWrapper.__init__(self, fn, name=name, dtype=dtype, **fn_kwargs)
        for key, value in fn_kwargs.items():
            setattr(self, key, value)

    def _config_extras(self):
        return {key: self._fn_kwargs[key] for key in config_keys}

    return type(
        class_name, (MeanMetricWrapper,),
        {"__init__": __init__, "_config_extras": _config_extras, "__module__": __name__,
         "__doc__": f"The mean of `{fn.__name__}` over all samples."},
    )


Accuracy = _metric_class("Accuracy", accuracy, "accuracy")
BinaryAccuracy = _metric_class(
    "BinaryAccuracy", binary_accuracy, "binary_accuracy", ("threshold",), threshold=0.5
)
CategoricalAccuracy = _metric_class(
    "CategoricalAccuracy", categorical_accuracy, "categorical_accuracy"
)
SparseCategoricalAccuracy = _metric_class(
    "SparseCategoricalAccuracy", sparse_categorical_accuracy, "sparse_categorical_accuracy"
)
TopKCategoricalAccuracy = _metric_class(
    "TopKCategoricalAccuracy", top_k_categorical_accuracy, "top_k_categorical_accuracy",
    ("k",), k=5,
)
SparseTopKCategoricalAccuracy = _metric_class(
    "SparseTopKCategoricalAccuracy", sparse_top_k_categorical_accuracy,
    "sparse_top_k_categorical_accuracy", ("k",), k=5,
)


def _loss_value_fn(loss_fn):
    def fn(y_true, y_pred):
        return _value(loss_fn(y_true, y_pred))

    fn.__name__ = loss_fn.__name__
    return fn


MeanSquaredError = _metric_class(
    "MeanSquaredError", _loss_value_fn(_losses.mean_squared_error), "mean_squared_error"
)
MeanAbsoluteError = _metric_class(
    "MeanAbsoluteError", _loss_value_fn(_losses.mean_absolute_error), "mean_absolute_error"
)


class RootMeanSquaredError(Mean):
    """sqrt of the (weighted) mean squared error over all samples."""

    def __init__(self, name="root_mean_squared_error", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = _same_rank(_value(y_true).astype(self.dtype), _value(y_pred))
        super().update_state(np.square(y_pred - y_true), sample_weight=sample_weight)

    def result(self):
        return np.sqrt(super().result())


# ----- confusion-matrix metrics -----------------------------------------------------------


def _confusion_counts(y_true, y_pred, thresholds, sample_weight, dtype):
    """Weighted TP, FP, TN, FN per threshold (prediction counts as positive above it)."""
    labels = _value(y_true).astype(bool)
    preds = _value(y_pred).astype(dtype)
    labels, preds = _same_rank(labels, preds)
    if labels.shape != preds.shape:
        labels = np.broadcast_to(labels, preds.shape)
    weights = np.ones(preds.shape, dtype)
    if sample_weight is not None:
        sw = _value(sample_weight).astype(dtype)
        sw, preds_ = _same_rank(sw, preds)
        weights = np.broadcast_to(sw, preds.shape).astype(dtype)
    labels, preds, weights = labels.ravel(), preds.ravel(), weights.ravel()
    above = preds[None, :] > np.asarray(thresholds, dtype)[:, None]
    pos, neg = labels[None, :], ~labels[None, :]
    count = lambda mask: np.sum(np.where(mask, weights[None, :], 0), axis=1, dtype=dtype)  # noqa
    return count(above & pos), count(above & neg), count(~above & neg), count(~above & pos)


class _ThresholdMetric(Metric):
    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        if top_k is not None:
            raise NotImplementedError(f"{type(self).__name__}(top_k=...) is not supported yet")
        self.init_thresholds = thresholds
        self.top_k = top_k
        self.class_id = class_id
        if thresholds is None:
            self.thresholds = [0.5]
        else:
            self.thresholds = list(np.atleast_1d(thresholds).astype(float))
        self._scalar = thresholds is None or np.ndim(thresholds) == 0

    def _counts(self, y_true, y_pred, sample_weight):
        y_true, y_pred = _value(y_true), _value(y_pred)
        if self.class_id is not None:
            y_true, y_pred = y_true[..., self.class_id], y_pred[..., self.class_id]
        return _confusion_counts(y_true, y_pred, self.thresholds, sample_weight, self.dtype)

    def _ratio(self, numerator, other):
        denominator = numerator + other
        out = np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), 0)
        out = out.astype(self.dtype)
        return out[0] if self._scalar else out

    def get_config(self):
        config = Metric.get_config(self)
        config.update(
            {"thresholds": self.init_thresholds, "top_k": self.top_k, "class_id": self.class_id}
        )
        return config


class Precision(_ThresholdMetric):
    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        super().__init__(thresholds, top_k, class_id, name=name, dtype=dtype)
        n = len(self.thresholds)
        self.true_positives = self.add_variable((n,), name="true_positives")
        self.false_positives = self.add_variable((n,), name="false_positives")

    def update_state(self, y_true, y_pred, sample_weight=None):
        tp, fp, _, _ = self._counts(y_true, y_pred, sample_weight)
        self.true_positives.assign(self.true_positives.value + tp)
        self.false_positives.assign(self.false_positives.value + fp)

    def result(self):
        return self._ratio(self.true_positives.value, self.false_positives.value)


class Recall(_ThresholdMetric):
    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        super().__init__(thresholds, top_k, class_id, name=name, dtype=dtype)
        n = len(self.thresholds)
        self.true_positives = self.add_variable((n,), name="true_positives")
        self.false_negatives = self.add_variable((n,), name="false_negatives")

    def update_state(self, y_true, y_pred, sample_weight=None):
        tp, _, _, fn = self._counts(y_true, y_pred, sample_weight)
        self.true_positives.assign(self.true_positives.value + tp)
        self.false_negatives.assign(self.false_negatives.value + fn)

    def result(self):
        return self._ratio(self.true_positives.value, self.false_negatives.value)


def _divide_no_nan(a, b):
    safe = np.where(b != 0, b, 1)
    return np.where(b != 0, a / safe, 0)


class AUC(Metric):
    """Area under the ROC or PR curve from confusion counts at `num_thresholds` thresholds."""

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation",
                 name=None, dtype=None, thresholds=None, multi_label=False, num_labels=None,
                 label_weights=None, from_logits=False):
        if multi_label:
            raise NotImplementedError("AUC(multi_label=True) is not supported yet")
        if str(curve).upper() not in ("ROC", "PR"):
            raise ValueError(f'Invalid `curve` argument value "{curve}". Expected ROC or PR.')
        if summation_method not in ("interpolation", "minoring", "majoring"):
            raise ValueError(
                f'Invalid `summation_method` argument value "{summation_method}". Expected '
                "one of: interpolation, minoring, majoring."
            )
        if thresholds is not None:
            inner = sorted(float(t) for t in thresholds)
            self.num_thresholds = len(inner) + 2
        else:
            if num_thresholds <= 1:
                raise ValueError(
                    "Argument `num_thresholds` must be an integer > 1. "
                    f"Received: num_thresholds={num_thresholds}"
                )
            self.num_thresholds = num_thresholds
            inner = [(i + 1) * 1.0 / (num_thresholds - 1) for i in range(num_thresholds - 2)]
        self._thresholds = np.array([0.0 - EPSILON] + inner + [1.0 + EPSILON])
        self.curve = str(curve).upper()
        self.summation_method = summation_method
        super().__init__(name=name, dtype=dtype)
        self.multi_label = multi_label
        self.num_labels = num_labels
        self.label_weights = label_weights
        self._from_logits = from_logits
        n = self.num_thresholds
        self.true_positives = self.add_variable((n,), name="true_positives")
        self.false_positives = self.add_variable((n,), name="false_positives")
        self.true_negatives = self.add_variable((n,), name="true_negatives")
        self.false_negatives = self.add_variable((n,), name="false_negatives")

    @property
    def thresholds(self):
        return list(self._thresholds)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = _value(y_pred)
        if self._from_logits:
            y_pred = 1.0 / (1.0 + np.exp(-y_pred))
        tp, fp, tn, fn = _confusion_counts(
            y_true, y_pred, self._thresholds, sample_weight, self.dtype
        )
        for variable, delta in ((self.true_positives, tp), (self.false_positives, fp),
                                (self.true_negatives, tn), (self.false_negatives, fn)):
            variable.assign(variable.value + delta)

    def _interpolated_pr_auc(self):
        # Davis & Goadrich: precision interpolated along the recall axis between thresholds.
        tp, fp, fn = (v.value.astype(self.dtype) for v in
                      (self.true_positives, self.false_positives, self.false_negatives))
        dtp = tp[:-1] - tp[1:]
        p = tp + fp
        dp = p[:-1] - p[1:]
        slope = _divide_no_nan(dtp, np.maximum(dp, 0))
        intercept = tp[1:] - slope * p[1:]
        ratio = np.where((p[:-1] > 0) & (p[1:] > 0), _divide_no_nan(p[:-1], np.maximum(p[1:], 0)),
                         1.0)
        increments = _divide_no_nan(slope * (dtp + intercept * np.log(ratio)),
                                    np.maximum(tp[1:] + fn[1:], 0))
        return np.asarray(np.sum(increments), self.dtype)

    def result(self):
        if self.curve == "PR" and self.summation_method == "interpolation":
            return self._interpolated_pr_auc()
        tp, fp, tn, fn = (v.value.astype(self.dtype) for v in self._variables)
        recall = _divide_no_nan(tp, tp + fn)
        if self.curve == "ROC":
            x, y = _divide_no_nan(fp, fp + tn), recall
        else:
            x, y = recall, _divide_no_nan(tp, tp + fp)
        if self.summation_method == "interpolation":
            heights = (y[:-1] + y[1:]) / 2.0
        elif self.summation_method == "minoring":
            heights = np.minimum(y[:-1], y[1:])
        else:
            heights = np.maximum(y[:-1], y[1:])
        return np.asarray(np.sum((x[:-1] - x[1:]) * heights), self.dtype)

    def get_config(self):
        config = Metric.get_config(self)
        config.update({
            "num_thresholds": self.num_thresholds,
            "curve": self.curve,
            "summation_method": self.summation_method,
            "multi_label": self.multi_label,
            "num_labels": self.num_labels,
            "label_weights": self.label_weights,
            "from_logits": self._from_logits,
        })
        return config
