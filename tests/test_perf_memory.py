"""Training and inference free their recorded graphs by reference counting alone.

A reference cycle that reaches a step's outputs keeps the whole recorded graph (every
activation and backward closure) alive until Python's cycle collector runs, which costs
memory and fresh allocations every step. Reference: Python's own ``gc`` module, which reports
how many unreachable objects a collection found.
"""

import gc

import numpy as np
import pytest

import amber


def _mlp(outputs=1):
    inputs = amber.Input(shape=(12,))
    x = amber.layers.Dense(8, activation="relu")(inputs)
    heads = [amber.layers.Dense(3, name=f"head_{i}")(x) for i in range(outputs)]
    return amber.Model(inputs, heads[0] if outputs == 1 else heads)


@pytest.fixture
def no_collector():
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])
@pytest.mark.parametrize("outputs", [1, 2])
def test_fit_and_predict_leave_no_cycles(no_collector, optimizer, outputs):
    rng = np.random.default_rng(0)
    x = rng.random((64, 12), dtype=np.float32)
    y = rng.integers(0, 3, size=64)
    model = _mlp(outputs)
    model.compile(optimizer=optimizer,
                  loss=amber.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    targets = y if outputs == 1 else [y] * outputs
    model.fit(x, targets, batch_size=16, epochs=1, verbose=0)  # builds everything once
    gc.collect()
    model.fit(x, targets, batch_size=16, epochs=2, verbose=0)
    model.predict(x, verbose=0)
    model.evaluate(x, targets, verbose=0)
    assert gc.collect() == 0
