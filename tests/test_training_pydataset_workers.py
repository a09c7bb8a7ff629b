"""PyDataset(workers=..., use_multiprocessing=...): batches read ahead by worker threads or
processes must train exactly like a single-threaded read.

References: the same dataset read with workers=1 (bit-identical weights and History), amber's
array path for the same batches (checked against Keras in test_training_data_adapters), real
Keras 3 (numpy backend) predictions for the same weights, and the threads / processes that
actually ran ``__getitem__``."""

import gc
import os
import threading
import time

import numpy as np
import pytest

import amber
from test_framework_reference import keras_reference

RNG = np.random.default_rng(5)
X = RNG.normal(size=(40, 3)).astype("float32")
Y = RNG.normal(size=(40, 2)).astype("float32")
WEIGHTS = [RNG.normal(size=(3, 2)).astype("float32"), RNG.normal(size=(2,)).astype("float32")]


def model_for(lib):
    model = lib.Sequential([lib.Input((3,)), lib.layers.Dense(2)])
    model.layers[0].set_weights(WEIGHTS)
    model.compile(optimizer=lib.optimizers.SGD(0.05), loss="mse", metrics=["mae"])
    return model


class Rows(amber.utils.PyDataset):
    """Batches of 4 rows; records which thread read each index, and can fail on one."""

    def __init__(self, delay=0.0, fail_at=None, pid_dir=None, **kwargs):
        super().__init__(**kwargs)
        self.delay, self.fail_at, self.pid_dir = delay, fail_at, pid_dir
        self.threads = {}

    def __len__(self):
        return len(X) // 4

    def __getitem__(self, index):
        if index == self.fail_at:
            raise ValueError(f"bad batch {index}")
        if self.delay:
            time.sleep(self.delay)
        self.threads[index] = threading.get_ident()
        if self.pid_dir is not None:
            with open(os.path.join(self.pid_dir, str(index)), "w") as f:
                f.write(str(os.getpid()))
        part = slice(4 * index, 4 * index + 4)
        return X[part], Y[part]


def trained(dataset, **kwargs):
    model = model_for(amber)
    history = model.fit(dataset, verbose=0, **kwargs)
    return [w.copy() for w in model.get_weights()], history.history


def assert_same_training(a, b):
    for x, y in zip(a[0], b[0]):
        np.testing.assert_array_equal(x, y)
    assert a[1] == b[1]


def test_threads_read_in_parallel_and_train_like_one_reader():
    serial = trained(Rows(), epochs=3, shuffle=False)
    dataset = Rows(delay=0.005, workers=3, max_queue_size=6)
    parallel = trained(dataset, epochs=3, shuffle=False)
    assert_same_training(parallel, serial)
    # The independent path: the same batches as arrays.
    assert_same_training(serial, trained(X, y=Y, batch_size=4, epochs=3, shuffle=False))
    readers = set(dataset.threads.values())
    assert threading.get_ident() not in readers and len(readers) > 1


def test_processes_read_the_batches_and_predict_like_keras(tmp_path):
    keras = keras_reference()
    dataset = Rows(workers=2, use_multiprocessing=True, pid_dir=str(tmp_path))
    ours = model_for(amber).predict(dataset, verbose=0)
    pids = {int((tmp_path / str(i)).read_text()) for i in range(len(dataset))}
    assert os.getpid() not in pids  # every batch was read in a worker process
    np.testing.assert_array_equal(ours, model_for(amber).predict(Rows(), verbose=0))
    np.testing.assert_allclose(ours, model_for(keras).predict(X, batch_size=4, verbose=0), rtol=1e-6, atol=1e-6)
    # Training through processes too.
    assert_same_training(trained(Rows(workers=2, use_multiprocessing=True), epochs=2, shuffle=False),
                         trained(Rows(), epochs=2, shuffle=False))


@pytest.mark.parametrize("use_multiprocessing", [False, True])
def test_a_workers_exception_reaches_the_caller(use_multiprocessing):
    dataset = Rows(fail_at=3, workers=2, use_multiprocessing=use_multiprocessing)
    with pytest.raises(ValueError, match="bad batch 3"):
        model_for(amber).fit(dataset, epochs=1, shuffle=False, verbose=0)


def test_shuffled_and_stepped_epochs_keep_the_single_reader_order():
    amber.utils.set_random_seed(7)
    serial = trained(Rows(), epochs=3, shuffle=True)
    amber.utils.set_random_seed(7)
    parallel = trained(Rows(workers=3, max_queue_size=2), epochs=3, shuffle=True)
    assert_same_training(parallel, serial)
    # steps_per_epoch shorter than a pass: the pass continues into the next epoch.
    assert_same_training(trained(Rows(workers=2), epochs=4, steps_per_epoch=3, shuffle=False),
                         trained(Rows(), epochs=4, steps_per_epoch=3, shuffle=False))


def test_stopping_early_leaves_no_reader_threads():
    class StopAfterTwo(amber.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                self.model.stop_training = True

    dataset = Rows(delay=0.002, workers=3)
    history = model_for(amber).fit(dataset, epochs=3, shuffle=False, verbose=0, callbacks=[StopAfterTwo()])
    assert len(history.history["loss"]) == 1
    gc.collect()
    deadline = time.monotonic() + 5
    while any(t.name.startswith("amber-pydataset") for t in threading.enumerate()):
        assert time.monotonic() < deadline, "PyDataset reader threads outlived the pass"
        time.sleep(0.01)
