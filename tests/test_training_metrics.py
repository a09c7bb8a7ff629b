"""Metrics against real Keras 3 (numpy backend): results over several weighted batches, state
variable layout, reset, configs and `get`."""

import os
import sys

import numpy as np
import pytest

if "keras" not in sys.modules:
    os.environ["KERAS_BACKEND"] = "numpy"
import keras  # noqa: E402

from amber import metrics  # noqa: E402

B, C = 8, 5
_rng = np.random.default_rng(2)


def _batch(kind):
    if kind == "binary":
        return (_rng.random((B, 1)) > 0.5).astype("float32"), _rng.random((B, 1)).astype("float32")
    if kind == "onehot":
        return np.eye(C, dtype="float32")[_rng.integers(0, C, B)], _rng.random((B, C)).astype(
            "float32")
    if kind == "sparse":
        return _rng.integers(0, C, (B, 1)), _rng.random((B, C)).astype("float32")
    if kind == "labels":
        return _rng.integers(0, 3, (B, 1)).astype("float32"), _rng.integers(0, 3, (B, 1)).astype(
            "float32")
    return _rng.normal(size=(B, C)).astype("float32"), _rng.normal(size=(B, C)).astype("float32")


CASES = [
    ("Accuracy", {}, "labels"),
    ("BinaryAccuracy", {}, "binary"),
    ("BinaryAccuracy", {"threshold": 0.3}, "binary"),
    ("CategoricalAccuracy", {}, "onehot"),
    ("SparseCategoricalAccuracy", {}, "sparse"),
    ("TopKCategoricalAccuracy", {"k": 2}, "onehot"),
    ("SparseTopKCategoricalAccuracy", {"k": 3}, "sparse"),
    ("MeanSquaredError", {}, "real"),
    ("MeanAbsoluteError", {}, "real"),
    ("RootMeanSquaredError", {}, "real"),
    ("Precision", {}, "binary"),
    ("Precision", {"thresholds": [0.2, 0.6]}, "binary"),
    ("Recall", {}, "binary"),
    ("Recall", {"thresholds": 0.7}, "binary"),
    ("AUC", {}, "binary"),
    ("AUC", {"curve": "PR"}, "binary"),
    ("AUC", {"num_thresholds": 17, "summation_method": "minoring"}, "binary"),
    ("AUC", {"curve": "PR", "summation_method": "majoring"}, "binary"),
    ("AUC", {"from_logits": True}, "binary_logits"),
]


@pytest.mark.parametrize("name,kwargs,kind", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_metric_matches_keras_over_weighted_batches(name, kwargs, kind):
    kmetric = getattr(keras.metrics, name)(**kwargs)
    ametric = getattr(metrics, name)(**kwargs)
    for step in range(3):
        if kind == "binary_logits":
            y_true, y_pred = _batch("binary")
            y_pred = (y_pred - 0.5) * 6
        else:
            y_true, y_pred = _batch(kind)
        weights = None if step == 0 else _rng.random(B).astype("float32")
        kmetric.update_state(y_true, y_pred, sample_weight=weights)
        ametric.update_state(y_true, y_pred, sample_weight=weights)
        np.testing.assert_allclose(
            np.asarray(ametric.result()), np.asarray(kmetric.result()), rtol=1e-5, atol=1e-6,
            err_msg=f"after batch {step}",
        )
    # Keras makes the path scope unique per instance ("auc_3/..."); the names must agree.
    assert [(v.path.split("/")[-1], tuple(v.shape), v.dtype) for v in ametric.variables] == [
        (v.path.split("/")[-1], tuple(v.shape), v.dtype) for v in kmetric.variables
    ]
    for mine, theirs in zip(ametric.variables, kmetric.variables):
        np.testing.assert_allclose(mine.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-5)
    # Unnamed Precision/Recall/AUC get Keras's numbered names ("auc_2"); the rest must agree.
    aconfig, kconfig = ametric.get_config(), kmetric.get_config()
    assert aconfig.pop("name").split("_")[0] == kconfig.pop("name").split("_")[0]
    assert aconfig == kconfig
    ametric.reset_state()
    kmetric.reset_state()
    np.testing.assert_allclose(np.asarray(ametric.result()), np.asarray(kmetric.result()))


def test_mean_and_sum_match_keras():
    values = _rng.normal(size=(B, 3)).astype("float32")
    weights = _rng.random(B).astype("float32")
    for name in ("Mean", "Sum"):
        kmetric, ametric = getattr(keras.metrics, name)(), getattr(metrics, name)()
        for w in (None, weights):
            kmetric.update_state(values, sample_weight=w)
            ametric.update_state(values, sample_weight=w)
            np.testing.assert_allclose(ametric.result(), kmetric.result(), rtol=1e-6)
        assert ametric.get_config() == kmetric.get_config()


def test_metric_functions_match_keras():
    y_true, y_pred = _batch("sparse")
    for name, kwargs in (("sparse_categorical_accuracy", {}),
                         ("sparse_top_k_categorical_accuracy", {"k": 2})):
        np.testing.assert_array_equal(
            getattr(metrics, name)(y_true, y_pred, **kwargs),
            np.asarray(getattr(keras.metrics, name)(y_true, y_pred, **kwargs)),
        )


def test_get_matches_keras():
    for name in ("accuracy", "mse", "mae", "AUC", "Precision", "binary_accuracy",
                 "categorical_accuracy", "sparse_categorical_accuracy"):
        kmetric, ametric = keras.metrics.get(name), metrics.get(name)
        assert type(ametric).__name__ == type(kmetric).__name__
        assert ametric.get_config() == kmetric.get_config()
    serialized = keras.metrics.serialize(keras.metrics.AUC(curve="PR", name="pr"))
    restored = metrics.deserialize(serialized)
    assert restored.get_config() == keras.metrics.AUC(curve="PR", name="pr").get_config()
    with pytest.raises(ValueError, match="nope"):
        metrics.get("nope")
