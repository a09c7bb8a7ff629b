"""Convolutions with their BatchNormalization and activation folded in for inference
(``amber.models.inference_fold``).

References: real Keras 3 (numpy backend) predicting the same saved models, and amber's own
layer-by-layer path (the fold switched off), which the fold must match to float32 rounding.
Every test that compares also asserts the fold ran (or, for the cases that must not fold,
that it did not), so none passes by never folding."""

import numpy as np
import pytest

import amber
from amber import layers
from amber.backend import GradientTape
from amber.models import inference_fold
from _keras_roundtrip import keras_numpy


@pytest.fixture(scope="module")
def keras():
    return keras_numpy(needs_jax=True)


@pytest.fixture
def fold_calls(monkeypatch):
    """Counts the folds that ran (returned an output) during the test."""
    calls = []
    original = inference_fold.FoldedConv.__call__

    def counting(self, x):
        y = original(self, x)
        if y is not None:
            calls.append([type(layer).__name__ for layer in self.layers])
        return y

    monkeypatch.setattr(inference_fold.FoldedConv, "__call__", counting)
    return calls


def layer_by_layer(model, x, monkeypatch, **kwargs):
    """The model's output with folding switched off."""
    with monkeypatch.context() as patch:
        patch.setattr(inference_fold, "is_inference", lambda context: False)
        return np.asarray(model(x, **kwargs))


def randomize(model, seed):
    """Random weights everywhere, BatchNormalization statistics included (positive
    variances), so a fold that mixes up mean, variance, scale or offset shows."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        shape = tuple(variable.shape)
        if "moving_variance" in variable.path:
            value = rng.uniform(0.2, 3.0, shape)
        elif "gamma" in variable.path:
            value = rng.uniform(0.5, 2.0, shape)
        else:
            value = rng.normal(0.0, 0.5, shape)
        variable.assign(value.astype(np.dtype(variable.dtype)))


def keras_blocks(k, inputs):
    """The blocks MobileNets, ResNets and EfficientNets are built of, one after another."""
    x = k.layers.ZeroPadding2D(((3, 2), (1, 3)))(inputs)         # ResNet's stem
    x = k.layers.Conv2D(8, 5, strides=2, use_bias=False)(x)
    x = k.layers.BatchNormalization()(x)
    x = k.layers.ReLU(6.0)(x)                                    # MobileNetV2
    x = k.layers.ZeroPadding2D(((0, 1), (0, 1)))(x)              # its stride-2 blocks
    x = k.layers.DepthwiseConv2D(3, strides=2, use_bias=False)(x)
    x = k.layers.BatchNormalization()(x)
    x = k.layers.ReLU(6.0)(x)
    x = k.layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
    x = k.layers.BatchNormalization(epsilon=1e-3, momentum=0.999)(x)
    x = k.layers.ReLU()(x)
    x = k.layers.Conv2D(12, 1, use_bias=True)(x)                 # bias folded too
    x = k.layers.BatchNormalization(axis=3)(x)
    x = k.layers.Activation("relu")(x)                           # ResNet
    x = k.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2)(x)
    x = k.layers.BatchNormalization(center=False)(x)
    x = k.layers.Activation("swish")(x)                          # EfficientNet
    x = k.layers.Conv2D(6, 3, activation="relu")(x)              # its own activation, no BN
    x = k.layers.Conv2D(5, 1)(x)
    return k.layers.BatchNormalization(scale=False)(x)           # a BN output as model output


def assert_amber_predicts_as_keras(reference, path, x):
    """Random weights into the Keras model, saved to ``path``; amber loads the file and
    must predict what Keras predicts."""
    randomize(reference, 1)
    reference.save(path)
    expected = reference.predict(x, verbose=0)
    got = amber.models.load_model(path).predict(x, verbose=0)
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-5 * np.abs(expected).max())


def test_folded_blocks_match_keras_predictions(keras, tmp_path, fold_calls):
    inputs = keras.Input((23, 21, 3))
    x = np.random.default_rng(2).normal(size=(4, 23, 21, 3)).astype("float32")
    assert_amber_predicts_as_keras(keras.Model(inputs, keras_blocks(keras, inputs)), tmp_path / "blocks.keras", x)
    assert fold_calls == [
        ["ZeroPadding2D", "Conv2D", "BatchNormalization", "ReLU"],
        ["ZeroPadding2D", "DepthwiseConv2D", "BatchNormalization", "ReLU"],
        ["DepthwiseConv2D", "BatchNormalization", "ReLU"],
        ["Conv2D", "BatchNormalization", "Activation"],
        ["DepthwiseConv2D", "BatchNormalization", "Activation"],
        ["Conv2D"],
        ["Conv2D", "BatchNormalization"],
    ]


def test_sequential_folds_and_matches_keras(keras, tmp_path, fold_calls):
    reference = keras.Sequential([
        keras.Input((9, 9, 4)),
        keras.layers.Conv2D(7, 3, use_bias=False),
        keras.layers.BatchNormalization(),
        keras.layers.ReLU(6.0),
        keras.layers.Flatten(),
        keras.layers.Dense(3),
    ])
    x = np.random.default_rng(4).normal(size=(2, 9, 9, 4)).astype("float32")
    assert_amber_predicts_as_keras(reference, tmp_path / "sequential.keras", x)
    assert fold_calls == [["Conv2D", "BatchNormalization", "ReLU"]]


def amber_blocks_model(seed=5):
    inputs = amber.Input((10, 10, 3))
    x = layers.Conv2D(6, 3, padding="same")(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU(6.0)(x)
    x = layers.DepthwiseConv2D(3, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(2)(x)
    model = amber.Model(inputs, outputs)
    randomize(model, seed)
    return model


def test_fold_equals_layer_by_layer_and_follows_weight_changes(monkeypatch, fold_calls):
    model = amber_blocks_model()
    x = np.random.default_rng(6).normal(size=(3, 10, 10, 3)).astype("float32")
    first = np.asarray(model(x))
    np.testing.assert_allclose(first, layer_by_layer(model, x, monkeypatch), rtol=1e-5, atol=1e-5)
    assert len(fold_calls) == 2

    # Training moves the weights and the moving statistics: the folded weights must follow.
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, np.ones((3, 2), "float32"), epochs=2, verbose=0)
    after_fit = np.asarray(model(x))
    assert not np.allclose(after_fit, first)
    np.testing.assert_allclose(after_fit, layer_by_layer(model, x, monkeypatch), rtol=1e-5, atol=1e-5)

    # So must set_weights and a single assigned statistic.
    randomize(model, 7)
    np.testing.assert_allclose(np.asarray(model(x)), layer_by_layer(model, x, monkeypatch), rtol=1e-5, atol=1e-5)
    bn = model.layers[2]
    bn.moving_mean.assign(bn.moving_mean.numpy() + 1.0)
    np.testing.assert_allclose(np.asarray(model(x)), layer_by_layer(model, x, monkeypatch), rtol=1e-5, atol=1e-5)
    bn.epsilon = 0.5
    np.testing.assert_allclose(np.asarray(model(x)), layer_by_layer(model, x, monkeypatch), rtol=1e-5, atol=1e-5)

    # A setting reassigned after the fold was worked out: the layers run one by one again.
    folds_so_far = len(fold_calls)
    model.layers[3].max_value = 1.0
    capped = np.asarray(model(x))
    assert len(fold_calls) == folds_so_far + 1  # only the depthwise chain still folds
    np.testing.assert_allclose(capped, layer_by_layer(model, x, monkeypatch), rtol=1e-5, atol=1e-5)


def test_folds_read_the_kernels_in_place(monkeypatch):
    """A fold keeps per-channel vectors only: the convolution reads the variable's own kernel
    array (mapped from the file when loaded), never a scaled copy."""
    model = amber_blocks_model()
    kernels_read = []
    original = inference_fold.conv_bias_activation

    def spy(x, kernel, *args, **kwargs):
        kernels_read.append(kernel)
        return original(x, kernel, *args, **kwargs)

    monkeypatch.setattr(inference_fold, "conv_bias_activation", spy)
    model(np.zeros((1, 10, 10, 3), "float32"))
    convolutions = [model.layers[1], model.layers[4]]
    assert len(kernels_read) == 2
    assert all(read is conv.kernel.value for read, conv in zip(kernels_read, convolutions))
    plan, _ = model._inference_plan()
    for entry in plan:
        if entry[4] is inference_fold.FOLD:
            scale, shift = entry[0]._cached[1]
            assert scale.shape == shift.shape == tuple(entry[0].conv.bias.shape)  # one per output channel


def test_training_calls_and_tapes_never_fold(monkeypatch, fold_calls):
    model = amber_blocks_model()
    x = np.random.default_rng(8).normal(size=(4, 10, 10, 3)).astype("float32")
    # Training uses the batch statistics: layer by layer, exactly.
    np.testing.assert_array_equal(np.asarray(model(x, training=True)),
                                  layer_by_layer(model, x, monkeypatch, training=True))
    with GradientTape() as tape:
        total = amber.ops.sum(model(x))
    gradients = tape.gradient(total, model.trainable_weights)
    assert all(g is not None for g in gradients)
    assert fold_calls == []


def test_chains_that_must_not_fold_run_layer_by_layer(monkeypatch, fold_calls):
    inputs = amber.Input((8, 8, 2))
    conv = layers.Conv2D(4, 3, use_bias=False)(inputs)
    normalized = layers.BatchNormalization()(conv)
    both = layers.Add()([normalized, conv])  # the convolution's output is read twice
    outputs = layers.ReLU(max_value=5.0)(both)  # not a kernel activation
    model = amber.Model(inputs, [outputs, normalized])
    randomize(model, 9)
    x = np.random.default_rng(10).normal(size=(2, 8, 8, 2)).astype("float32")
    got = [np.asarray(v) for v in model(x)]
    assert fold_calls == []
    with monkeypatch.context() as patch:
        patch.setattr(inference_fold, "is_inference", lambda context: False)
        want = [np.asarray(v) for v in model(x)]
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)

    class Custom(layers.Conv2D):  # a subclass may change what call does
        def call(self, inputs):
            return super().call(inputs) * 2.0

    inputs = amber.Input((8, 8, 2))
    model = amber.Model(inputs, layers.ReLU()(Custom(3, 3)(inputs)))
    y = np.asarray(model(x))
    assert fold_calls == []
    np.testing.assert_array_equal(y, layer_by_layer(model, x, monkeypatch))


def test_float64_inputs_are_cast_by_the_model_and_refused_by_a_fold_itself(monkeypatch, fold_calls):
    model = amber_blocks_model()
    x = np.random.default_rng(11).normal(size=(2, 10, 10, 3))
    got = np.asarray(model(x))  # the model's float32 input casts x first, so it folds
    assert len(fold_calls) == 2
    np.testing.assert_allclose(got, layer_by_layer(model, x.astype("float32"), monkeypatch), rtol=1e-5, atol=1e-5)

    fold = inference_fold.fold_chain(model.layers[1:4], lambda i: 1)[0]
    assert fold(x) is None  # a float64 array is not the fold's to compute
