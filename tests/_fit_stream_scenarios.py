"""fit() on generators and PyDatasets, written once for amber and for real Keras.

Keras's numpy backend cannot train, so the test runs this file as a script under Keras's jax
backend (``python _fit_stream_scenarios.py out.json``) and compares what Keras recorded (steps
per epoch, History) with amber running the same scenarios in-process.
"""

import json
import sys
import warnings

import numpy as np

RNG = np.random.default_rng(7)
X = RNG.normal(size=(20, 3)).astype("float32")
Y = RNG.normal(size=(20, 1)).astype("float32")
SW = RNG.uniform(0.5, 1.5, size=(20,)).astype("float32")
KERNEL = RNG.normal(size=(3, 1)).astype("float32")
BIAS = np.array([0.1], dtype="float32")


def batches(count=5, size=4, weights=False):
    for i in range(count):
        part = slice(i * size, (i + 1) * size)
        yield (X[part], Y[part], SW[part]) if weights else (X[part], Y[part])


def make_dataset_class(lib):
    class Batches(lib.utils.PyDataset):
        def __init__(self, count=5, **kwargs):
            super().__init__(**kwargs)
            self.count = count

        def __len__(self):
            return self.count

        def __getitem__(self, index):
            part = slice(index * 4, (index + 1) * 4)
            return X[part], Y[part]

    return Batches


def make_model(lib):
    model = lib.Sequential([lib.Input((3,)), lib.layers.Dense(1)])
    model.layers[0].set_weights([KERNEL, BIAS])
    model.compile(optimizer=lib.optimizers.SGD(0.05), loss="mse", metrics=["mae"])
    return model


def make_counter(lib):
    class StepCounter(lib.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.per_epoch = []
            self.steps_param = None

        def on_train_begin(self, logs=None):
            self.steps_param = self.params.get("steps")

        def on_epoch_begin(self, epoch, logs=None):
            self.per_epoch.append(0)

        def on_train_batch_end(self, batch, logs=None):
            self.per_epoch[-1] += 1

    return StepCounter()


def scenarios(lib):
    Batches = make_dataset_class(lib)
    return {
        "generator_until_exhausted": lambda: dict(x=batches(), epochs=3),
        "generator_steps_2": lambda: dict(x=batches(), epochs=3, steps_per_epoch=2),
        "generator_steps_4": lambda: dict(x=batches(), epochs=3, steps_per_epoch=4),
        "generator_sample_weights": lambda: dict(x=batches(weights=True), epochs=2),
        "pydataset_steps_3": lambda: dict(x=Batches(), epochs=3, steps_per_epoch=3, shuffle=False),
        "pydataset_steps_7": lambda: dict(x=Batches(), epochs=2, steps_per_epoch=7, shuffle=False),
        "pydataset_validation_generator": lambda: dict(x=Batches(), epochs=3, shuffle=False,
                                                       validation_data=batches()),
        "arrays_validation_pydataset_steps": lambda: dict(x=X, y=Y, batch_size=4, epochs=2, shuffle=False,
                                                          validation_data=Batches(), validation_steps=2),
        "arrays_validation_generator_steps": lambda: dict(x=X, y=Y, batch_size=4, epochs=3, shuffle=False,
                                                          validation_data=batches(), validation_steps=2),
        "pydataset_class_weight": lambda: dict(x=Batches(), epochs=2, shuffle=False,
                                               class_weight={0: 2.0, 1: 0.5}),
    }


def run(lib):
    results = {}
    for name, make_kwargs in scenarios(lib).items():
        counter = make_counter(lib)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            history = make_model(lib).fit(verbose=0, callbacks=[counter], **make_kwargs())
        results[name] = {"steps_param": counter.steps_param, "per_epoch": counter.per_epoch,
                         "history": {key: [float(v) for v in values] for key, values in history.history.items()}}
    return results


if __name__ == "__main__":
    import keras

    with open(sys.argv[1], "w") as handle:
        json.dump(run(keras), handle)
