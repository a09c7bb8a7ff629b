"""Losses against real Keras 3 (numpy backend): values for every reduction, with and without
sample weights and logits; configs and serialized forms; gradients against finite differences."""

import json
import os
import sys

import numpy as np
import pytest

if "keras" not in sys.modules:
    os.environ["KERAS_BACKEND"] = "numpy"
import keras  # noqa: E402

from amber import losses  # noqa: E402
from amber.backend import GradientTape, Variable  # noqa: E402

B, C = 6, 4
_rng = np.random.default_rng(1)
REAL_T = _rng.normal(size=(B, C)).astype("float32")
REAL_P = _rng.normal(size=(B, C)).astype("float32")
PROB_T = _rng.random((B, C)).astype("float32")
PROB_P = (_rng.random((B, C)) * 0.98 + 0.01).astype("float32")
BIN_T = (_rng.random((B, C)) > 0.5).astype("float32")
ONE_HOT = np.eye(C, dtype="float32")[_rng.integers(0, C, B)]
SPARSE = _rng.integers(0, C, B)
WEIGHTS = _rng.random(B).astype("float32")

CASES = [
    ("MeanSquaredError", {}, REAL_T, REAL_P),
    ("MeanAbsoluteError", {}, REAL_T, REAL_P),
    ("MeanAbsolutePercentageError", {}, REAL_T, REAL_P),
    ("MeanSquaredLogarithmicError", {}, PROB_T, PROB_P),
    ("CosineSimilarity", {}, REAL_T, REAL_P),
    ("Huber", {"delta": 0.7}, REAL_T, REAL_P),
    ("LogCosh", {}, REAL_T, REAL_P),
    ("Hinge", {}, BIN_T, REAL_P),
    ("SquaredHinge", {}, BIN_T, REAL_P),
    ("CategoricalHinge", {}, ONE_HOT, REAL_P),
    ("KLDivergence", {}, PROB_T, PROB_P),
    ("Poisson", {}, PROB_T, PROB_P),
    ("BinaryCrossentropy", {}, BIN_T, PROB_P),
    ("BinaryCrossentropy", {"from_logits": True, "label_smoothing": 0.1}, BIN_T, REAL_P),
    ("BinaryFocalCrossentropy", {"apply_class_balancing": True}, BIN_T, PROB_P),
    ("BinaryFocalCrossentropy", {"from_logits": True, "gamma": 1.5}, BIN_T, REAL_P),
    ("CategoricalCrossentropy", {}, ONE_HOT, PROB_P),
    ("CategoricalCrossentropy", {"from_logits": True, "label_smoothing": 0.2}, ONE_HOT, REAL_P),
    ("CategoricalFocalCrossentropy", {}, ONE_HOT, PROB_P),
    ("CategoricalFocalCrossentropy", {"from_logits": True}, ONE_HOT, REAL_P),
    ("SparseCategoricalCrossentropy", {}, SPARSE, PROB_P),
    ("SparseCategoricalCrossentropy", {"from_logits": True}, SPARSE[:, None], REAL_P),
    ("SparseCategoricalCrossentropy", {"from_logits": True, "ignore_class": 1}, SPARSE, REAL_P),
]
REDUCTIONS = ["sum_over_batch_size", "sum", "none", "mean_with_sample_weight"]


def _ids(cases):
    return [f"{name}-{i}" for i, (name, *_rest) in enumerate(cases)]


@pytest.mark.parametrize("name,kwargs,y_true,y_pred", CASES, ids=_ids(CASES))
def test_loss_classes_match_keras(name, kwargs, y_true, y_pred):
    for reduction in REDUCTIONS:
        for weights in (None, WEIGHTS):
            expected = getattr(keras.losses, name)(reduction=reduction, **kwargs)(
                y_true, y_pred, sample_weight=weights
            )
            actual = getattr(losses, name)(reduction=reduction, **kwargs)(
                y_true, y_pred, sample_weight=weights
            )
            np.testing.assert_allclose(
                np.asarray(actual), np.asarray(expected), rtol=2e-6, atol=1e-6,
                err_msg=f"{reduction}, weighted={weights is not None}",
            )
    assert getattr(losses, name)(**kwargs).get_config() == getattr(keras.losses, name)(
        **kwargs
    ).get_config()


FUNCTION_CASES = [
    ("mean_squared_error", {}, REAL_T, REAL_P),
    ("mse", {}, REAL_T, REAL_P),
    ("mae", {}, REAL_T, REAL_P),
    ("mape", {}, REAL_T, REAL_P),
    ("msle", {}, PROB_T, PROB_P),
    ("huber", {"delta": 2.0}, REAL_T, REAL_P),
    ("log_cosh", {}, REAL_T, REAL_P),
    ("kl_divergence", {}, PROB_T, PROB_P),
    ("hinge", {}, BIN_T, REAL_P),
    ("squared_hinge", {}, BIN_T, REAL_P),
    ("categorical_hinge", {}, ONE_HOT, REAL_P),
    ("poisson", {}, PROB_T, PROB_P),
    ("cosine_similarity", {"axis": -1}, REAL_T, REAL_P),
    ("binary_crossentropy", {"from_logits": True}, BIN_T, REAL_P),
    ("categorical_crossentropy", {"label_smoothing": 0.1}, ONE_HOT, PROB_P),
    ("categorical_crossentropy", {"from_logits": True, "axis": 0}, ONE_HOT, REAL_P),
    ("sparse_categorical_crossentropy", {"from_logits": True}, SPARSE, REAL_P),
    ("binary_focal_crossentropy", {}, BIN_T, PROB_P),
]


@pytest.mark.parametrize("name,kwargs,y_true,y_pred", FUNCTION_CASES, ids=_ids(FUNCTION_CASES))
def test_loss_functions_match_keras(name, kwargs, y_true, y_pred):
    expected = keras.losses.get(name)(y_true, y_pred, **kwargs)
    actual = losses.get(name)(y_true, y_pred, **kwargs)
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=2e-6, atol=1e-6)


def test_crossentropy_clips_probabilities_like_keras():
    y_true = np.array([[1.0, 0.0], [0.0, 1.0]], "float32")
    y_pred = np.array([[0.0, 1.0], [1.0, 0.0]], "float32")  # confidently wrong: log(1e-7)
    for name in ("binary_crossentropy", "categorical_crossentropy"):
        expected = keras.losses.get(name)(y_true, y_pred)
        actual = losses.get(name)(y_true, y_pred)
        np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=1e-6)
        assert np.all(np.isfinite(actual)) and np.all(np.asarray(actual) > 10)


def test_get_serialize_deserialize_match_keras():
    for name in ("mse", "mean_squared_error", "categorical_crossentropy", "MAE", "kld"):
        assert losses.get(name).__name__ == keras.losses.get(name).__name__
        assert losses.serialize(losses.get(name)) == keras.losses.serialize(keras.losses.get(name))
    instance = losses.get("CategoricalCrossentropy")
    assert type(instance).__name__ == "CategoricalCrossentropy"
    for kloss in (
        keras.losses.MeanSquaredError(),
        keras.losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.1),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True, name="scce"),
    ):
        serialized = json.loads(json.dumps(keras.losses.serialize(kloss)))
        mine = losses.deserialize(serialized)
        assert type(mine).__name__ == type(kloss).__name__
        assert losses.serialize(mine) == serialized
        assert losses.get(serialized).get_config() == kloss.get_config()
    with pytest.raises(ValueError, match="no_such_loss"):
        losses.get("no_such_loss")
    with pytest.raises(ValueError, match="reduction"):
        losses.MeanSquaredError(reduction="bogus")


def test_corpus_loss_forms_deserialize():
    # The compile configs of the corpus hold both forms: a bare string and a Keras object dict.
    text_lstm_loss = {
        "module": "keras.losses", "class_name": "SparseCategoricalCrossentropy",
        "config": {"name": "sparse_categorical_crossentropy", "reduction": "sum_over_batch_size",
                   "from_logits": True, "ignore_class": None},
        "registered_name": None,
    }
    loss = losses.get(text_lstm_loss)
    assert loss.from_logits is True and loss.get_config() == text_lstm_loss["config"]
    assert losses.get("mse") is losses.mean_squared_error


def test_sparse_label_out_of_range_is_a_clear_error():
    with pytest.raises(ValueError, match=r"label 7 is out of range for 4 classes"):
        losses.sparse_categorical_crossentropy(np.array([0, 7]), REAL_P[:2], from_logits=True)


GRAD_CASES = [
    ("MeanSquaredError", {}, REAL_T),
    ("MeanAbsoluteError", {}, REAL_T),
    ("Huber", {"delta": 0.5}, REAL_T),
    ("LogCosh", {}, REAL_T),
    ("CosineSimilarity", {}, REAL_T),
    ("Hinge", {}, BIN_T),
    ("CategoricalHinge", {}, ONE_HOT),
    ("BinaryCrossentropy", {"from_logits": True}, BIN_T),
    ("CategoricalCrossentropy", {"from_logits": True, "label_smoothing": 0.1}, ONE_HOT),
    ("SparseCategoricalCrossentropy", {"from_logits": True}, SPARSE),
    ("BinaryFocalCrossentropy", {"from_logits": True}, BIN_T),
]


@pytest.mark.parametrize("name,kwargs,y_true", GRAD_CASES, ids=_ids(GRAD_CASES))
def test_loss_gradients_match_finite_differences(name, kwargs, y_true):
    x0 = REAL_P.astype("float64") * 1.3
    loss_fn = getattr(losses, name)(dtype="float64", **kwargs)
    variable = Variable(x0.copy(), dtype="float64", name="logits")
    with GradientTape() as tape:
        value = loss_fn(y_true, variable, sample_weight=WEIGHTS)
    grad = tape.gradient(value, [variable])[0]
    assert grad is not None and grad.shape == x0.shape
    h = 1e-6
    numeric = np.zeros_like(x0)
    for idx in np.ndindex(x0.shape):
        plus, minus = x0.copy(), x0.copy()
        plus[idx] += h
        minus[idx] -= h
        numeric[idx] = (
            float(np.asarray(loss_fn(y_true, plus, sample_weight=WEIGHTS)))
            - float(np.asarray(loss_fn(y_true, minus, sample_weight=WEIGHTS)))
        ) / (2 * h)
    np.testing.assert_allclose(np.asarray(grad), numeric, rtol=1e-5, atol=1e-7)


def test_deserialize_refuses_objects_of_another_kind():
    # A config naming an optimizer (or any non-loss component) must not come back as a "loss",
    # nor an optimizer as a "metric".
    import amber

    with pytest.raises(ValueError, match="not a loss"):
        amber.losses.deserialize({"class_name": "Adam", "config": {}})
    with pytest.raises(ValueError, match="not a metric"):
        amber.metrics.deserialize({"module": "keras.optimizers", "class_name": "Adam", "config": {},
                                   "registered_name": None})
