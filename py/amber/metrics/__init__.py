"""amber.metrics: mirrors keras.metrics."""

from amber.losses import (  # noqa: F401  Keras exposes these loss functions as metrics too
    binary_crossentropy,
    categorical_crossentropy,
    hinge,
    kl_divergence,
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_squared_error,
    mean_squared_logarithmic_error,
    poisson,
    sparse_categorical_crossentropy,
    squared_hinge,
)
import inspect

from amber._object_namespace import deserialize_object, serialize_object
from amber.metrics.metrics import (
    AUC,
    Accuracy,
    BinaryAccuracy,
    CategoricalAccuracy,
    Mean,
    MeanAbsoluteError,
    MeanMetricWrapper,
    MeanSquaredError,
    Metric,
    Precision,
    Recall,
    RootMeanSquaredError,
    SparseCategoricalAccuracy,
    SparseTopKCategoricalAccuracy,
    Sum,
    TopKCategoricalAccuracy,
    accuracy,
    binary_accuracy,
    categorical_accuracy,
    sparse_categorical_accuracy,
    sparse_top_k_categorical_accuracy,
    top_k_categorical_accuracy,
)

_CLASSES = [
    Metric, Mean, Sum, MeanMetricWrapper, Accuracy, BinaryAccuracy, CategoricalAccuracy,
    SparseCategoricalAccuracy, TopKCategoricalAccuracy, SparseTopKCategoricalAccuracy,
    MeanSquaredError, MeanAbsoluteError, RootMeanSquaredError, AUC, Precision, Recall,
]
_FUNCTIONS = [
    accuracy, binary_accuracy, categorical_accuracy, sparse_categorical_accuracy,
    top_k_categorical_accuracy, sparse_top_k_categorical_accuracy, binary_crossentropy,
    categorical_crossentropy, sparse_categorical_crossentropy, hinge, squared_hinge,
    kl_divergence, poisson, mean_absolute_error, mean_absolute_percentage_error,
    mean_squared_error, mean_squared_logarithmic_error,
]
ALL_OBJECTS_DICT = {obj.__name__: obj for obj in _CLASSES + _FUNCTIONS}
# Keras's short names resolve to the metric classes.
ALL_OBJECTS_DICT.update({
    "mse": MeanSquaredError, "MSE": MeanSquaredError,
    "mae": MeanAbsoluteError, "MAE": MeanAbsoluteError,
})
# Lower-case names of the built-in metric functions resolve to their metric classes.
_FUNCTION_TO_CLASS = {
    "accuracy": Accuracy, "binary_accuracy": BinaryAccuracy,
    "categorical_accuracy": CategoricalAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "top_k_categorical_accuracy": TopKCategoricalAccuracy,
    "sparse_top_k_categorical_accuracy": SparseTopKCategoricalAccuracy,
    "mean_squared_error": MeanSquaredError, "mean_absolute_error": MeanAbsoluteError,
}

__all__ = [obj.__name__ for obj in _CLASSES + _FUNCTIONS] + ["get", "serialize", "deserialize"]


def serialize(metric):
    return serialize_object(metric)


def deserialize(config, custom_objects=None):
    if isinstance(config, str):
        obj = (custom_objects or {}).get(config) or ALL_OBJECTS_DICT.get(config)
        if obj is None:
            raise ValueError(f"Unknown metric: {config!r}")
        return obj
    if isinstance(config, dict):
        obj = deserialize_object(config, custom_objects, ALL_OBJECTS_DICT)
        if isinstance(obj, Metric) or inspect.isroutine(obj):
            return obj
        raise ValueError(f"{config.get('class_name')!r} is not a metric (it deserializes to a "
                         f"{type(obj).__name__})")
    raise ValueError(f"Could not interpret metric identifier: {config!r}")


def get(identifier):
    """A Metric instance (or metric function) from a name, config dict, class or instance."""
    if identifier is None:
        return None
    if isinstance(identifier, str):
        obj = _FUNCTION_TO_CLASS.get(identifier) or deserialize(identifier)
    elif isinstance(identifier, dict):
        obj = deserialize(identifier)
    else:
        obj = identifier
    if isinstance(obj, type):
        obj = obj()
    if callable(obj) or isinstance(obj, Metric):
        return obj
    raise ValueError(f"Could not interpret metric identifier: {identifier!r}")
