"""compile / fit / evaluate / predict and callbacks.

The reference for a training step is the shared corpus: real Keras saved the weights and
optimizer state, one fit step on fit_x/fit_y, and the predictions after it. The test reads
those files with h5py and zipfile (not through amber.saving), so it checks the framework's
train step, compile resolution and the optimizers against Keras itself."""

import csv
import json
import math
import zipfile
from pathlib import Path

import numpy as np
import pytest

import amber
from test_framework_models import _model_from_keras_file
from test_framework_reference import require_fixtures

AFTER_FIT_CASES = ["seed_dense", "mlp_3layer", "opt_adam_amsgrad", "opt_adamw", "opt_adagrad", "opt_adadelta",
                   "opt_nadam", "opt_sgd"]


def _manifest_case(name):
    manifest = json.loads((require_fixtures() / "MANIFEST.json").read_text())
    return next(c for c in manifest["cases"] if c["name"] == name)


@pytest.mark.parametrize("case", AFTER_FIT_CASES)
def test_one_fit_step_reproduces_keras(case):
    fixtures = require_fixtures()
    info = _manifest_case(case)
    model, config, weights = _model_from_keras_file(case)
    model.compile_from_config(config["compile_config"])
    optimizer = model.optimizer
    assert type(optimizer).__name__ == info["compile"]["optimizer"]["class_name"]
    optimizer.build(model.trainable_variables)
    saved = weights["optimizer"]["vars"]
    assert len(optimizer.variables) == len(saved)
    for index, variable in enumerate(optimizer.variables):
        variable.assign(np.asarray(saved[str(index)][()]).astype(variable.dtype))
    after = info["after_fit"]
    fit_x = np.load(fixtures / after["fit_x"])
    fit_y = np.load(fixtures / after["fit_y"])
    history = model.fit(fit_x, fit_y, batch_size=len(fit_x), epochs=1, shuffle=False, verbose=0)
    assert list(history.history) == ["loss"] and len(history.history["loss"]) == 1
    x = np.load(fixtures / info["input"])
    tolerance = after["tolerance"]
    np.testing.assert_allclose(model.predict(x, verbose=0), np.load(fixtures / after["expected"]),
                               rtol=tolerance["rtol"], atol=tolerance["atol"])


def _mlp(seed=0):
    amber.utils.set_random_seed(seed)
    inputs = amber.Input((6,))
    x = amber.layers.Dense(8, activation="relu")(inputs)
    outputs = amber.layers.Dense(3, activation="softmax")(x)
    return amber.Model(inputs, outputs)


def _data(n=40, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype("float32")
    labels = rng.integers(0, 3, size=(n,))
    return x, labels


def test_history_loss_is_batch_size_weighted_mean_of_batch_losses():
    x, labels = _data(40)
    model = _mlp()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    weights = model.get_weights()
    history = model.fit(x, labels, batch_size=16, epochs=1, shuffle=False, verbose=0)
    # replay the same three steps one batch at a time
    replay = _mlp()
    replay.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    replay.set_weights(weights)
    losses, sizes, correct = [], [], 0
    for start in range(0, 40, 16):
        bx, by = x[start:start + 16], labels[start:start + 16]
        losses.append(replay.train_on_batch(bx, by, return_dict=True)["loss"])
        sizes.append(len(bx))
    np.testing.assert_allclose(history.history["loss"][0], np.average(losses, weights=sizes), rtol=1e-5)
    for a, b in zip(model.get_weights(), replay.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert list(history.history) == ["loss", "accuracy"]


def test_accuracy_resolves_by_shapes_like_keras():
    from amber.models.compile_utils import _resolve_metric

    assert type(_resolve_metric("accuracy", np.zeros((4, 1)), np.zeros((4, 1)))).__name__ == "BinaryAccuracy"
    assert type(_resolve_metric("acc", np.zeros((4,)), np.zeros((4, 3)))).__name__ == "SparseCategoricalAccuracy"
    assert type(_resolve_metric("accuracy", np.zeros((4, 1)), np.zeros((4, 3)))).__name__ == \
        "SparseCategoricalAccuracy"
    assert type(_resolve_metric("accuracy", np.zeros((4, 3)), np.zeros((4, 3)))).__name__ == \
        "CategoricalAccuracy"
    assert _resolve_metric("acc", np.zeros((4, 3)), np.zeros((4, 3))).name == "acc"


def test_evaluate_and_predict_match_numpy_forward():
    x, labels = _data(50)
    model = _mlp()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    kernel1, bias1, kernel2, bias2 = model.get_weights()
    hidden = np.maximum(x @ kernel1 + bias1, 0)
    logits = hidden @ kernel2 + bias2
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    np.testing.assert_allclose(model.predict(x, batch_size=7, verbose=0), probs, rtol=1e-5, atol=1e-6)
    loss, accuracy = model.evaluate(x, labels, batch_size=50, verbose=0)
    expected_loss = -np.mean(np.log(np.clip(probs[np.arange(50), labels], 1e-7, 1)))
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-5)
    np.testing.assert_allclose(accuracy, np.mean(np.argmax(probs, 1) == labels), rtol=1e-6)
    logs = model.evaluate(x, labels, verbose=0, return_dict=True)
    assert list(logs) == ["loss", "accuracy"]
    np.testing.assert_allclose(model.predict_on_batch(x), probs, rtol=1e-5, atol=1e-6)


def test_multi_output_losses_weights_and_log_names():
    a = amber.Input((4,), name="a")
    h = amber.layers.Dense(5, name="h")(a)
    reg = amber.layers.Dense(1, name="reg")(h)
    cls = amber.layers.Dense(3, activation="softmax", name="cls")(h)
    model = amber.Model(a, [reg, cls])
    model.compile(optimizer="sgd", loss={"reg": "mse", "cls": "sparse_categorical_crossentropy"},
                  loss_weights={"reg": 1.0, "cls": 0.5}, metrics={"cls": ["accuracy"]})
    rng = np.random.default_rng(4)
    x = rng.normal(size=(12, 4)).astype("float32")
    y_reg = rng.normal(size=(12, 1)).astype("float32")
    y_cls = rng.integers(0, 3, size=(12,))
    logs = model.evaluate(x, {"reg": y_reg, "cls": y_cls}, verbose=0, return_dict=True)
    assert set(logs) == {"loss", "cls_accuracy", "reg_loss", "cls_loss"}
    pred_reg, pred_cls = model.predict(x, verbose=0)
    reg_loss = np.mean((pred_reg - y_reg) ** 2)
    cls_loss = -np.mean(np.log(pred_cls[np.arange(12), y_cls]))
    np.testing.assert_allclose(logs["reg_loss"], reg_loss, rtol=1e-5)
    np.testing.assert_allclose(logs["cls_loss"], cls_loss, rtol=1e-5)
    np.testing.assert_allclose(logs["loss"], reg_loss + 0.5 * cls_loss, rtol=1e-5)
    history = model.fit(x, [y_reg, y_cls], epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2


def test_compile_config_keys_and_roundtrip():
    model = _mlp()
    model.compile(optimizer=amber.optimizers.Adam(learning_rate=0.01), loss="mse", metrics=["mae"])
    config = model.get_compile_config()
    # The keys and order Keras 3.15 writes (see any compiled model's config.json in the corpus).
    corpus = Path(__file__).resolve().parents[1].parent / "shared" / "interop" / "fixtures" / "mlp_3layer.keras"
    expected = ["optimizer", "loss", "loss_weights", "metrics", "weighted_metrics", "run_eagerly",
                "steps_per_execution", "jit_compile"]
    if corpus.is_file():
        expected = list(json.loads(zipfile.ZipFile(corpus).read("config.json"))["compile_config"])
    assert list(config) == expected
    assert config["optimizer"]["class_name"] == "Adam"
    json.dumps(config)
    other = _mlp()
    other.compile_from_config(json.loads(json.dumps(config)))
    assert type(other.optimizer).__name__ == "Adam"
    np.testing.assert_allclose(float(np.asarray(other.optimizer.learning_rate)), 0.01, rtol=1e-6)


def test_validation_split_uses_last_samples_and_logs_val_metrics():
    x, labels = _data(40)
    model = _mlp()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, labels, epochs=1, validation_split=0.25, shuffle=False, verbose=0)
    assert list(history.history) == ["loss", "accuracy", "val_loss", "val_accuracy"]
    expected = model.evaluate(x[30:], labels[30:], verbose=0, return_dict=True)
    np.testing.assert_allclose(history.history["val_loss"][0], expected["loss"], rtol=1e-6)


def test_sample_and_class_weights_weight_the_loss():
    x, labels = _data(16)
    model = _mlp()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    probs = model.predict(x, verbose=0)
    per_sample = -np.log(probs[np.arange(16), labels])
    weights = np.linspace(0.0, 2.0, 16).astype("float32")
    loss = model.test_on_batch(x, labels, sample_weight=weights)
    np.testing.assert_allclose(loss, np.mean(per_sample * weights), rtol=1e-5)
    class_weight = {0: 0.0, 1: 1.0, 2: 3.0}
    before = model.get_weights()
    model.train_on_batch(x, labels, class_weight=class_weight)
    assert any(not np.allclose(a, b) for a, b in zip(before, model.get_weights()))


def test_callbacks_early_stopping_scheduler_csv_lambda_nan(tmp_path):
    x, labels = _data(32)
    model = _mlp()
    model.compile(optimizer=amber.optimizers.SGD(learning_rate=0.1), loss="sparse_categorical_crossentropy")
    events = []
    rates = []
    csv_path = tmp_path / "log.csv"
    callbacks = [
        amber.callbacks.LearningRateScheduler(lambda epoch, lr: 0.1 * (0.5 ** epoch)),
        amber.callbacks.CSVLogger(str(csv_path)),
        amber.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: events.append(epoch),
                                       on_epoch_begin=lambda epoch, logs: rates.append(
                                           float(np.asarray(model.optimizer.learning_rate)))),
        amber.callbacks.EarlyStopping(monitor="loss", patience=0, min_delta=10.0),
    ]
    history = model.fit(x, labels, epochs=5, verbose=0, callbacks=callbacks)
    # min_delta=10 means no epoch counts as an improvement after the first
    assert events == [0, 1]
    np.testing.assert_allclose(rates, [0.1, 0.05], rtol=1e-6)
    np.testing.assert_allclose(history.history["learning_rate"], [0.1, 0.05], rtol=1e-6)
    rows = list(csv.DictReader(open(csv_path)))
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    np.testing.assert_allclose([float(r["loss"]) for r in rows], history.history["loss"], rtol=1e-6)

    nan_x = x.copy()
    nan_x[0, 0] = np.nan
    seen = []
    model.fit(nan_x, labels, epochs=3, verbose=0, callbacks=[
        amber.callbacks.TerminateOnNaN(),
        amber.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(epoch))])
    assert seen == [0]


def test_reduce_lr_on_plateau_and_restore_best_weights():
    x, labels = _data(32)
    model = _mlp()
    model.compile(optimizer=amber.optimizers.SGD(learning_rate=0.2), loss="sparse_categorical_crossentropy")
    reducer = amber.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=10.0)
    history = model.fit(x, labels, epochs=3, verbose=0, callbacks=[reducer])
    # Keras logs the rate the epoch ran with, then reduces it
    np.testing.assert_allclose(history.history["learning_rate"], [0.2, 0.2, 0.1], rtol=1e-6)
    np.testing.assert_allclose(float(np.asarray(model.optimizer.learning_rate)), 0.05, rtol=1e-6)

    stopper = amber.callbacks.EarlyStopping(monitor="loss", patience=1, mode="max", restore_best_weights=True)
    weights_after_first = []
    model.fit(x, labels, epochs=4, verbose=0, callbacks=[
        amber.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: weights_after_first.append(
            model.get_weights()) if e == 0 else None), stopper])
    # mode="max" on a falling loss: the best epoch is the first, restored at the end
    assert stopper.stopped_epoch == 1
    for a, b in zip(model.get_weights(), weights_after_first[0]):
        np.testing.assert_array_equal(a, b)


def test_model_checkpoint_saves_through_model_save(tmp_path, monkeypatch):
    calls = []
    x, labels = _data(16)
    model = _mlp()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    monkeypatch.setattr(type(model), "save_weights", lambda self, path, overwrite=True: calls.append(path))
    checkpoint = amber.callbacks.ModelCheckpoint(str(tmp_path / "w-{epoch:02d}.weights.h5"), monitor="loss",
                                                 save_weights_only=True, save_best_only=True, mode="min")
    model.fit(x, labels, epochs=3, verbose=0, callbacks=[checkpoint])
    assert calls[0].endswith("w-01.weights.h5") and 1 <= len(calls) <= 3
    with pytest.raises(ValueError, match=r"\.keras"):
        amber.callbacks.ModelCheckpoint(str(tmp_path / "model.h5"))


def test_verbose_modes_print_progress(capsys):
    x, labels = _data(64)
    model = _mlp()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.fit(x, labels, epochs=2, verbose=2)
    out = capsys.readouterr().out
    assert out.count("Epoch ") == 2 and out.count("2/2 - ") == 2 and "loss: " in out
    model.fit(x, labels, epochs=1, verbose=1)
    out = capsys.readouterr().out
    assert "Epoch 1/1" in out and "2/2" in out
    model.fit(x, labels, epochs=1, verbose=0)
    assert capsys.readouterr().out == ""


def test_fit_requires_compile_and_matching_lengths():
    x, labels = _data(8)
    model = _mlp()
    with pytest.raises(ValueError, match="compile"):
        model.fit(x, labels, verbose=0)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="cardinality"):
        model.fit(x, labels[:5], verbose=0)


def test_to_categorical_and_set_random_seed():
    np.testing.assert_array_equal(amber.utils.to_categorical([0, 2, 1], 3),
                                  np.eye(3, dtype="float32")[[0, 2, 1]])
    amber.utils.set_random_seed(7)
    a = _mlp(7).get_weights()
    b = _mlp(7).get_weights()
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not math.isnan(float(np.sum(a[0])))
