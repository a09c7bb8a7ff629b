"""A layer frozen before it is built (``Dense(3, trainable=False)``, or a frozen layer loaded
from a file) creates frozen weights, and thawing it later makes them trainable again: the
weight counts are compared with real Keras 3 at each step."""

import amber
import pytest
from test_framework_reference import keras_reference


@pytest.fixture(scope="module")
def keras():
    return keras_reference()


def counts(lib):
    x = lib.Input((4,))
    frozen = lib.layers.Dense(3, trainable=False, name="frozen")
    model = lib.Model(x, lib.layers.Dense(2, name="head")(frozen(x)))
    steps = [(len(model.trainable_weights), len(model.non_trainable_weights))]
    frozen.trainable = True
    steps.append((len(model.trainable_weights), len(model.non_trainable_weights)))
    frozen.trainable = False
    steps.append((len(model.trainable_weights), len(model.non_trainable_weights)))
    return steps


def test_frozen_before_build_like_keras(keras):
    assert counts(amber) == counts(keras)


def test_loaded_frozen_layer_like_keras(keras, tmp_path):
    found = []
    for lib in (amber, keras):
        x = lib.Input((4,))
        inner_in = lib.Input((4,))
        inner = lib.Model(inner_in, lib.layers.Dense(3, name="a")(inner_in), name="inner")
        inner.layers[1].trainable = False
        model = lib.Model(x, lib.layers.Dense(1, name="b")(inner(x)))
        model.save(tmp_path / f"{lib.__name__}.keras")
        loaded = lib.models.load_model(tmp_path / f"{lib.__name__}.keras")
        found.append((len(loaded.trainable_weights), len(loaded.non_trainable_weights)))
    assert found[0] == found[1]
