"""Loading a model does not run its initializers (the stored weights replace them), and a
variable the file does not fill still gets its initializer's values."""

import numpy as np

import amber as keras
from amber.backend.variable import Variable, deferred_initialization


def test_unfilled_variables_are_initialized_and_adopted_ones_kept():
    with deferred_initialization():
        fresh = Variable("glorot_uniform", shape=(30, 40))
        loaded = Variable("ones", shape=(3,))
        loaded._adopt(np.full(3, 5.0, dtype="float32"))
    limit = np.sqrt(6 / (30 + 40))
    assert fresh.numpy().std() > 0 and np.abs(fresh.numpy()).max() <= limit
    np.testing.assert_array_equal(loaded.numpy(), [5.0, 5.0, 5.0])


def test_load_model_runs_no_initializer(tmp_path):
    calls = []

    @keras.saving.register_keras_serializable(package="Test")
    class CountingInit(keras.initializers.Initializer):
        def __call__(self, shape, dtype=None):
            calls.append(tuple(shape))
            return np.full(shape, 0.25, dtype=dtype or "float32")

    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, kernel_initializer=CountingInit())])
    model.set_weights([np.arange(24, dtype="float32").reshape(6, 4), np.ones(4, "float32")])
    model.save(tmp_path / "m.keras")
    calls.clear()
    reloaded = keras.models.load_model(tmp_path / "m.keras")
    assert calls == []
    x = np.ones((2, 6), "float32")
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), x @ np.arange(24).reshape(6, 4) + 1)
