"""The compiled training step for chains of Dense layers (``amber/models/compiled_step.py``).

Two references: real Keras (the shared corpus's ``after_fit`` predictions, saved by Keras
after one ``fit`` step from a known state) for the models the compiled step takes, and
amber's generic step (``jit_compile=False``), which the compiled step must reproduce
bitwise: same weights, optimizer slots and History after several epochs, for each optimizer,
loss and model shape it handles. Models it must not take are checked to fall back."""

import json

import numpy as np
import pytest

import amber
from amber import _native
from amber.models import compiled_step
from test_framework_models import _model_from_keras_file
from test_framework_reference import require_fixtures


def _took_compiled_step(model):
    cached = model.__dict__.get("_compiled_step_cache")
    return cached is not None and cached[1] is not None


def _data(n=100, features=12, classes=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype("float32")
    labels = rng.integers(0, classes, size=(n,))
    return x, labels


def _functional_mlp(features=12, classes=5, use_bias=True, middle="relu"):
    inputs = amber.Input((features,))
    h = amber.layers.Dense(16, activation="relu")(inputs)
    h = amber.layers.Dense(8, activation=middle, use_bias=use_bias)(h)
    outputs = amber.layers.Dense(classes)(h)
    return amber.Model(inputs, outputs)


def _sequential_mlp(features=12, classes=5):
    return amber.Sequential([amber.Input((features,)), amber.layers.Dense(16, activation="relu"),
                             amber.layers.Dense(classes)])


def _train_both(build, compile_kwargs, fit_kwargs, x, y, seed=3):
    """Train the same model with the compiled and the generic step; return both models."""
    results = []
    for jit in ("auto", False):
        amber.utils.set_random_seed(seed)
        model = build()
        model.compile(jit_compile=jit, **compile_kwargs())
        history = model.fit(x, y, verbose=0, **fit_kwargs)
        results.append((model, history.history))
    return results


def _assert_identical(compiled, generic):
    (model_a, history_a), (model_b, history_b) = compiled, generic
    assert history_a == history_b
    for a, b in zip(model_a.get_weights(), model_b.get_weights()):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    for a, b in zip(model_a.optimizer.variables, model_b.optimizer.variables):
        assert np.array_equal(np.asarray(a.numpy()), np.asarray(b.numpy()))


SPARSE_LOGITS = amber.losses.SparseCategoricalCrossentropy(from_logits=True)

OPTIMIZERS = {
    "adam": lambda: amber.optimizers.Adam(learning_rate=0.01),
    "rmsprop_momentum": lambda: amber.optimizers.RMSprop(learning_rate=0.01, momentum=0.5),
    "sgd_nesterov": lambda: amber.optimizers.SGD(learning_rate=0.05, momentum=0.9, nesterov=True),
    "adamw": lambda: amber.optimizers.AdamW(learning_rate=0.01),
    "adam_clipnorm": lambda: amber.optimizers.Adam(learning_rate=0.01, clipnorm=0.1),
    "adamw_bias_excluded": lambda: _excluding_biases(amber.optimizers.AdamW(learning_rate=0.01)),
    "sgd_weight_decay_global_clipnorm": lambda: amber.optimizers.SGD(
        learning_rate=0.05, momentum=0.9, weight_decay=0.01, global_clipnorm=0.5),
    "rmsprop_clipvalue": lambda: amber.optimizers.RMSprop(learning_rate=0.01, clipvalue=0.01),
}


def _excluding_biases(optimizer):
    optimizer.exclude_from_weight_decay(var_names=["bias"])
    return optimizer


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_compiled_step_equals_the_generic_step_bitwise(optimizer):
    x, y = _data()
    compiled, generic = _train_both(
        _functional_mlp,
        lambda: {"optimizer": OPTIMIZERS[optimizer](), "loss": SPARSE_LOGITS, "metrics": ["accuracy"]},
        {"batch_size": 16, "epochs": 3, "shuffle": True}, x, y)
    model = compiled[0]
    assert _took_compiled_step(model), compiled_step.plan_or_reason(model, model.trainable_weights)[1]
    assert not _took_compiled_step(generic[0])
    _assert_identical(compiled, generic)


@pytest.mark.parametrize("case", ["sequential_mse", "labels_column", "string_loss", "no_bias_linear",
                                  "sample_weight", "validation", "partial_batches"])
def test_compiled_step_variants_equal_the_generic_step(case):
    x, y = _data(n=70)
    build = _functional_mlp
    loss = SPARSE_LOGITS
    fit_kwargs = {"batch_size": 16, "epochs": 2, "shuffle": False}
    if case == "sequential_mse":
        build = _sequential_mlp
        loss = "mse"
        y = np.random.default_rng(5).normal(size=(len(x), 5)).astype("float32")
    elif case == "labels_column":
        y = y.reshape(-1, 1).astype("float32")
    elif case == "string_loss":
        loss = "sparse_categorical_crossentropy"  # probabilities expected: the recorded loss
    elif case == "no_bias_linear":
        def build():
            return _functional_mlp(use_bias=False, middle="linear")
    elif case == "sample_weight":
        fit_kwargs["sample_weight"] = np.linspace(0.5, 2.0, len(x)).astype("float32")
    elif case == "validation":
        fit_kwargs["validation_split"] = 0.2
    elif case == "partial_batches":
        fit_kwargs["batch_size"] = 32  # 70 samples: a last batch of 6
    compiled, generic = _train_both(
        build, lambda: {"optimizer": amber.optimizers.Adam(0.01), "loss": loss, "metrics": ["accuracy"]},
        fit_kwargs, x, y)
    assert _took_compiled_step(compiled[0])
    _assert_identical(compiled, generic)


def _residual():
    inputs = amber.Input((12,))
    h = amber.layers.Dense(12, activation="relu")(inputs)
    outputs = amber.layers.Dense(5)(amber.layers.Add()([inputs, h]))
    return amber.Model(inputs, outputs)


class _ScaledDense(amber.layers.Dense):
    def call(self, inputs, training=None):
        return super().call(inputs) * 2.0


NOT_CHAINS = {
    "two_dropouts_in_a_row": lambda: amber.Sequential([
        amber.Input((12,)), amber.layers.Dense(8, activation="relu"), amber.layers.Dropout(0.5),
        amber.layers.Dropout(0.2), amber.layers.Dense(5)]),
    "regularizer": lambda: amber.Sequential([amber.Input((12,)), amber.layers.Dense(
        5, kernel_regularizer=amber.regularizers.L2(0.01))]),
    "sigmoid_activation": lambda: amber.Sequential([amber.Input((12,)), amber.layers.Dense(
        8, activation="sigmoid"), amber.layers.Dense(5)]),
    "residual": _residual,
    "custom_call": lambda: amber.Sequential([amber.Input((12,)), _ScaledDense(5)]),
}


@pytest.mark.parametrize("case", sorted(NOT_CHAINS))
def test_models_that_are_not_plain_dense_chains_take_the_generic_step(case):
    x, y = _data(n=40)
    amber.utils.set_random_seed(1)
    model = NOT_CHAINS[case]()
    model.compile(optimizer="adam", loss=SPARSE_LOGITS)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert not _took_compiled_step(model)


def test_run_eagerly_and_frozen_layers_take_the_generic_step():
    x, y = _data(n=40)
    model = _functional_mlp()
    model.compile(optimizer="adam", loss=SPARSE_LOGITS, run_eagerly=True)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert not _took_compiled_step(model)
    model = _functional_mlp()
    model.layers[1].trainable = False
    model.compile(optimizer="adam", loss=SPARSE_LOGITS)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert not _took_compiled_step(model)


def test_out_of_range_labels_raise_the_losss_error_under_the_compiled_step():
    x, y = _data(n=16)
    model = _functional_mlp()
    model.compile(optimizer="adam", loss=SPARSE_LOGITS)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert _took_compiled_step(model)
    with pytest.raises(ValueError, match="out of range"):
        model.fit(x, np.full(len(x), 7), batch_size=8, epochs=1, verbose=0)


def test_float64_inputs_take_the_generic_step_with_the_same_results():
    x, y = _data(n=32)
    compiled, generic = _train_both(
        _functional_mlp, lambda: {"optimizer": "adam", "loss": SPARSE_LOGITS},
        {"batch_size": 8, "epochs": 1, "shuffle": False}, x.astype("float64"), y)
    _assert_identical(compiled, generic)


@pytest.mark.parametrize("case", ["seed_dense", "mlp_3layer"])
def test_compiled_step_reproduces_keras_after_fit(case):
    """Real Keras's prediction after one fit step, from Keras's saved weights and optimizer
    state, reproduced with the compiled step doing the step."""
    fixtures = require_fixtures()
    manifest = json.loads((fixtures / "MANIFEST.json").read_text())
    info = next(c for c in manifest["cases"] if c["name"] == case)
    model, config, weights = _model_from_keras_file(case)
    model.compile_from_config(config["compile_config"])
    model.optimizer.build(model.trainable_variables)
    saved = weights["optimizer"]["vars"]
    for index, variable in enumerate(model.optimizer.variables):
        variable.assign(np.asarray(saved[str(index)][()]).astype(variable.dtype))
    after = info["after_fit"]
    fit_x = np.load(fixtures / after["fit_x"]).astype("float32")
    fit_y = np.load(fixtures / after["fit_y"])
    model.fit(fit_x, fit_y, batch_size=len(fit_x), epochs=1, shuffle=False, verbose=0)
    assert _took_compiled_step(model), "the case should be a plain Dense chain"
    tolerance = after["tolerance"]
    np.testing.assert_allclose(model.predict(np.load(fixtures / info["input"]), verbose=0),
                               np.load(fixtures / after["expected"]),
                               rtol=tolerance["rtol"], atol=tolerance["atol"])


def _chain_arrays(rng, batch=6, dims=(5, 4, 3)):
    x = rng.normal(size=(batch, dims[0])).astype("float32")
    kernels = [rng.normal(size=(a, b)).astype("float32") for a, b in zip(dims, dims[1:])]
    h, outputs = x, []
    for index, kernel in enumerate(kernels):
        h = h @ kernel
        if index == 0:
            h = np.maximum(h, 0)
        outputs.append(h)
    g = rng.normal(size=outputs[-1].shape).astype("float32")
    return x, kernels, outputs, g


def test_native_chain_backward_matches_numpy_and_refuses_bad_buffers():
    rng = np.random.default_rng(2)
    x, kernels, outputs, g = _chain_arrays(rng)
    out = np.empty(5 * 4 + 4 + 4 * 3 + 3, np.float32)
    inputs = [x, outputs[0]]
    _native.dense_chain_backward(inputs, [None, None], kernels, outputs, ["relu", "linear"], [True, True], g, out)
    # numpy in float64 as the reference.
    dk2 = outputs[0].T.astype(np.float64) @ g
    dh = (g.astype(np.float64) @ kernels[1].T) * (outputs[0] > 0)
    dk1 = x.T.astype(np.float64) @ dh
    expected = np.concatenate([dk1.ravel(), dh.sum(0), dk2.ravel(), g.sum(0, dtype=np.float64)])
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="`out` has 38 values, the gradients take 39"):
        _native.dense_chain_backward(inputs, [None, None], kernels, outputs, ["relu", "linear"], [True, True], g,
                                     np.empty(38, np.float32))
    shared = np.zeros(80, np.float32)
    shared[10:40] = x.ravel()
    with pytest.raises(ValueError, match="overlaps"):
        _native.dense_chain_backward([shared[10:40].reshape(6, 5), outputs[0]], [None, None], kernels, outputs,
                                     ["relu", "linear"], [True, True], g, shared[:39])
    with pytest.raises(ValueError, match="layer 1's kernel is 3x4 but its input is 6x4"):
        _native.dense_chain_backward(inputs, [None, None], [kernels[0], kernels[1].T.copy()], outputs,
                                     ["relu", "linear"], [True, True], g, np.empty(40, np.float32))
    with pytest.raises(ValueError, match="layer 1's input scale is 6x3, expected 6x4"):
        _native.dense_chain_backward(inputs, [None, np.ones((6, 3), np.float32)], kernels, outputs,
                                     ["relu", "linear"], [True, True], g, out)
    with pytest.raises(ValueError, match="only linear and relu"):
        _native.dense_chain_backward(inputs, [None, None], kernels, outputs, ["tanh", "linear"], [True, True], g, out)
    with pytest.raises(ValueError, match="unknown activation 'softmax'"):
        _native.dense_chain_backward(inputs, [None, None], kernels, outputs, ["softmax", "linear"], [True, True], g, out)


def test_cache_follows_the_variables_list():
    x, y = _data(n=32)
    model = _functional_mlp()
    model.compile(optimizer="adam", loss=SPARSE_LOGITS)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    first = model.__dict__["_compiled_step_cache"][1]
    assert compiled_step.for_model(model, model.__dict__["_compiled_step_cache"][0]) is first
    assert compiled_step.for_model(model, model.trainable_weights) is not first


def test_native_sparse_softmax_crossentropy_matches_float64_numpy():
    rng = np.random.default_rng(4)
    logits = (rng.standard_normal((9, 7)) * 8).astype(np.float32)
    logits[3, 2] = 95.0  # e^95 overflows float32: the max shift must keep it finite
    labels = rng.integers(0, 7, size=9).astype(np.int64)
    losses, probabilities = _native.sparse_softmax_crossentropy(logits.T.copy().T, labels)  # strided
    z = logits.astype(np.float64)
    log_softmax = z - z.max(-1, keepdims=True)
    log_softmax -= np.log(np.exp(log_softmax).sum(-1, keepdims=True))
    np.testing.assert_allclose(losses, -log_softmax[np.arange(9), labels], rtol=1e-6, atol=1e-6)
    g = rng.random(9).astype(np.float32)
    grad = _native.sparse_softmax_crossentropy_backward(probabilities, labels, g)
    expected = g[:, None] * (np.exp(log_softmax) - np.eye(7)[labels])
    np.testing.assert_allclose(grad, expected, rtol=1e-6, atol=1e-7)
    with_nan = logits.copy()
    with_nan[5, 0] = np.nan
    losses, _ = _native.sparse_softmax_crossentropy(with_nan, labels)
    assert np.isnan(losses[5]) and not np.isnan(np.delete(losses, 5)).any()
    bad = labels.copy()
    bad[2] = 7
    with pytest.raises(ValueError, match="label 7 of row 2 is out of range for 7 classes"):
        _native.sparse_softmax_crossentropy(logits, bad)
    # Labels for fewer rows than the probabilities have: refused, not read as another shape.
    with pytest.raises(ValueError, match="9x7 probabilities need 9 labels"):
        _native.sparse_softmax_crossentropy_backward(probabilities, labels[:3], g)


class _AddsLoss(amber.layers.Layer):
    def call(self, inputs):
        self.add_loss(amber.ops.mean(inputs) * 0.0)
        return inputs


def test_another_models_add_loss_does_not_disable_the_compiled_step():
    x, y = _data(n=32)
    other = amber.Sequential([amber.Input((12,)), _AddsLoss(), amber.layers.Dense(5)])
    other.compile(optimizer="adam", loss=SPARSE_LOGITS)
    other.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert not _took_compiled_step(other)
    model = _functional_mlp()
    model.compile(optimizer="adam", loss=SPARSE_LOGITS)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert _took_compiled_step(model), compiled_step.plan_or_reason(model, model.trainable_weights)[1]


def _dropout_chain(where, seed=None, noise_shape=None):
    layers = [amber.Input((12,))]
    if where == "input":
        layers.append(amber.layers.Dropout(0.2, seed=seed))
    layers.append(amber.layers.Dense(16, activation="relu"))
    if where == "between":
        layers.append(amber.layers.Dropout(0.5, seed=seed, noise_shape=noise_shape))
    layers.append(amber.layers.Dense(5))
    if where == "output":
        layers.append(amber.layers.Dropout(0.3, seed=seed))
    return amber.Sequential(layers)


@pytest.mark.parametrize("case", ["between", "input", "output", "seeded", "noise_shape", "rate_zero"])
def test_dropout_in_the_chain_equals_the_generic_step(case):
    x, y = _data(n=64)
    if case == "seeded":
        build = lambda: _dropout_chain("between", seed=7)  # noqa: E731
    elif case == "noise_shape":
        build = lambda: _dropout_chain("between", noise_shape=(None, 1))  # noqa: E731
    elif case == "rate_zero":
        def build():
            return amber.Sequential([amber.Input((12,)), amber.layers.Dense(8, activation="relu"),
                                     amber.layers.Dropout(0.0), amber.layers.Dense(5)])
    else:
        build = lambda: _dropout_chain(case)  # noqa: E731
    compiled, generic = _train_both(
        build, lambda: {"optimizer": amber.optimizers.Adam(0.01), "loss": SPARSE_LOGITS, "metrics": ["accuracy"]},
        {"batch_size": 16, "epochs": 2, "shuffle": True}, x, y)
    model = compiled[0]
    assert _took_compiled_step(model), compiled_step.plan_or_reason(model, model.trainable_weights)[1]
    _assert_identical(compiled, generic)


def test_native_chain_backward_applies_the_dropout_scale_below_a_layer():
    rng = np.random.default_rng(6)
    x, kernels, outputs, g = _chain_arrays(rng)
    scale = ((rng.random(outputs[0].shape) > 0.4) / 0.6).astype(np.float32)
    dropped = outputs[0] * scale
    second = dropped @ kernels[1]
    out = np.empty(5 * 4 + 4 + 4 * 3 + 3, np.float32)
    _native.dense_chain_backward([x, dropped], [None, scale], kernels, [outputs[0], second],
                                 ["relu", "linear"], [True, True], g, out)
    dk2 = dropped.T.astype(np.float64) @ g
    dh = (g.astype(np.float64) @ kernels[1].T) * scale * (outputs[0] > 0)
    dk1 = x.T.astype(np.float64) @ dh
    expected = np.concatenate([dk1.ravel(), dh.sum(0), dk2.ravel(), g.sum(0, dtype=np.float64)])
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def _tail_model(case):
    layers = [amber.Input((12,)), amber.layers.Dense(16, activation="relu")]
    if case == "softmax_dense":
        layers += [amber.layers.Dense(5, activation="softmax")]
    elif case == "activation_layer":
        layers += [amber.layers.Dense(5), amber.layers.Activation("softmax")]
    elif case == "softmax_layer":
        layers += [amber.layers.Dense(5), amber.layers.Softmax()]
    elif case == "dropout_then_softmax":
        layers += [amber.layers.Dropout(0.3), amber.layers.Dense(5, activation="softmax")]
    elif case == "tanh_then_dense":
        layers += [amber.layers.Dense(8, activation="tanh"), amber.layers.Dense(5, activation="softmax")]
    elif case == "sigmoid_binary":
        layers += [amber.layers.Dense(1, activation="sigmoid")]
    return amber.Sequential(layers)


@pytest.mark.parametrize("case", ["softmax_dense", "activation_layer", "softmax_layer",
                                  "dropout_then_softmax", "tanh_then_dense", "sigmoid_binary"])
def test_chain_with_a_recorded_tail_equals_the_generic_step(case):
    x, y = _data(n=64)
    loss = "sparse_categorical_crossentropy"
    if case == "sigmoid_binary":
        y = (y % 2).astype("float32")
        loss = "binary_crossentropy"
    compiled, generic = _train_both(
        lambda: _tail_model(case),
        lambda: {"optimizer": amber.optimizers.RMSprop(0.01), "loss": loss, "metrics": ["accuracy"]},
        {"batch_size": 16, "epochs": 2, "shuffle": True}, x, y)
    model = compiled[0]
    assert _took_compiled_step(model), compiled_step.plan_or_reason(model, model.trainable_weights)[1]
    assert compiled_step.for_model(model, model.__dict__["_compiled_step_cache"][0]).tail
    _assert_identical(compiled, generic)
