"""keras.utils.clear_session / keras.backend.clear_session: auto-generated names start afresh,
as in real Keras 3."""

import amber
from test_framework_reference import keras_reference


def names_after_reset(lib, reset):
    lib.layers.Dense(1), lib.layers.Dense(1)
    x = lib.Input((2,))
    lib.ops.multiply(x, 2.0)
    reset()
    x = lib.Input((2,))
    y = lib.layers.Dense(1)(lib.ops.multiply(x, 2.0))
    model = lib.Model(x, y)
    return [layer.name for layer in model.layers] + [lib.layers.Dense(1).name]


def test_clear_session_restarts_names_like_keras():
    keras = keras_reference()
    for module in ("utils", "backend"):
        ours = names_after_reset(amber, getattr(amber, module).clear_session)
        theirs = names_after_reset(keras, getattr(keras, module).clear_session)
        assert ours == theirs
        assert "dense" in ours  # really restarted, not just equal counters


def test_clear_session_without_garbage_collection():
    amber.layers.Dense(1)
    amber.backend.clear_session(free_memory=False)
    assert amber.layers.Dense(1).name == "dense"
