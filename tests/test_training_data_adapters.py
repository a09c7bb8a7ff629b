"""fit / evaluate / predict on Python generators and keras.utils.PyDataset.

References: real Keras 3 on its numpy backend for evaluate/predict (same weights, same
batches: results, step counts, batches read, errors); real Keras on its jax backend, run in a
subprocess because the numpy backend cannot train, for fit (steps per epoch, History keys
and values); and amber's own array path for fit (a generator of the same batches must give
bit-identical weights)."""

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import _fit_stream_scenarios as scenarios
import amber
from test_framework_reference import keras_reference

HERE = os.path.dirname(os.path.abspath(__file__))
RNG = np.random.default_rng(3)
X = RNG.normal(size=(22, 3)).astype("float32")
Y = RNG.normal(size=(22, 2)).astype("float32")
SW = RNG.uniform(0.5, 2.0, size=(22,)).astype("float32")
WEIGHTS = [RNG.normal(size=(3, 2)).astype("float32"), RNG.normal(size=(2,)).astype("float32")]


@pytest.fixture(scope="module")
def keras():
    return keras_reference()


def model_for(lib):
    model = lib.Sequential([lib.Input((3,)), lib.layers.Dense(2)])
    model.layers[0].set_weights(WEIGHTS)
    model.compile(optimizer=lib.optimizers.SGD(0.05), loss="mse", metrics=["mae"])
    return model


def batches(size=4, count=None, form="xy"):
    """The rows of X/Y in batches of `size` (the last one shorter), as tuples of `form`."""
    starts = list(range(0, len(X), size))[:count]
    for start in starts:
        part = slice(start, start + size)
        yield {"x": X[part], "x,": (X[part],), "xy": (X[part], Y[part]),
               "xyw": (X[part], Y[part], SW[part])}[form]


def dataset_class(lib):
    class Rows(lib.utils.PyDataset):
        def __init__(self, size=4, form="xy", **kwargs):
            super().__init__(**kwargs)
            self.size, self.form = size, form
            self.read, self.begins, self.ends = [], 0, 0

        def __len__(self):
            return -(-len(X) // self.size)

        def __getitem__(self, index):
            self.read.append(index)
            part = slice(index * self.size, (index + 1) * self.size)
            return {"x": X[part], "x,": (X[part],), "xy": (X[part], Y[part]),
                    "xyw": (X[part], Y[part], SW[part])}[self.form]

        def on_epoch_begin(self):
            self.begins += 1

        def on_epoch_end(self):
            self.ends += 1

    return Rows


def counting_callback(lib):
    class Counter(lib.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.test_batches, self.predict_batches, self.steps = [], [], "unset"

        def on_test_begin(self, logs=None):
            self.steps = self.params.get("steps")

        def on_predict_begin(self, logs=None):
            self.steps = self.params.get("steps")

        def on_test_batch_end(self, batch, logs=None):
            self.test_batches.append(batch)

        def on_predict_batch_end(self, batch, logs=None):
            self.predict_batches.append(batch)

    return Counter()


def quietly(call):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return call()


# ------------------------------------------------------------------ evaluate / predict vs Keras


@pytest.mark.parametrize("kwargs", [{}, {"steps": 2}, {"steps": 9}, {"batch_size": 3}])
@pytest.mark.parametrize("form", ["xy", "xyw"])
def test_evaluate_generator_matches_keras(keras, form, kwargs):
    results = {}
    for lib in (amber, keras):
        counter = counting_callback(lib)
        value = quietly(lambda: model_for(lib).evaluate(batches(form=form), verbose=0, callbacks=[counter],
                                                        return_dict=True, **kwargs))
        results[lib.__name__] = (value, counter.test_batches, counter.steps)
    ours, theirs = results["amber"], results["keras"]
    assert ours[1] == theirs[1] and ours[2] == theirs[2]
    assert ours[0].keys() == theirs[0].keys()
    for key in theirs[0]:
        np.testing.assert_allclose(ours[0][key], theirs[0][key], rtol=1e-5)


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("kwargs", [{}, {"steps": 2}, {"steps": 8}])
def test_evaluate_pydataset_matches_keras(keras, kwargs, workers):
    results = {}
    for lib in (amber, keras):
        counter = counting_callback(lib)
        dataset = dataset_class(lib)(size=5, workers=workers, use_multiprocessing=False, max_queue_size=4)
        value = quietly(lambda: model_for(lib).evaluate(dataset, verbose=0, callbacks=[counter], **kwargs))
        results[lib.__name__] = (value, counter.test_batches, counter.steps, dataset.read)
    ours, theirs = results["amber"], results["keras"]
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-5)
    assert ours[1:3] == theirs[1:3]
    expected_reads = list(range(len(ours[1])))
    if workers == 1:
        # Read in order in this thread, exactly the batches used.
        assert ours[3] == theirs[3] == expected_reads
    else:
        # Worker threads read ahead (at most max_queue_size), as Keras's do.
        assert set(expected_reads) <= set(ours[3]) <= set(range(5))
        assert set(expected_reads) <= set(theirs[3]) <= set(range(5))


@pytest.mark.parametrize("form", ["x,", "xy", "xyw"])
def test_predict_generator_matches_keras(keras, form):
    outputs = {}
    for lib in (amber, keras):
        counter = counting_callback(lib)
        outputs[lib.__name__] = (quietly(lambda: model_for(lib).predict(batches(form=form), verbose=0,
                                                                         callbacks=[counter])),
                                 counter.predict_batches, counter.steps)
    ours, theirs = outputs["amber"], outputs["keras"]
    assert ours[0].shape == theirs[0].shape == (len(X), 2)
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-5, atol=1e-6)
    assert ours[1:] == theirs[1:]


@pytest.mark.parametrize("form", ["x", "x,", "xy"])
def test_predict_pydataset_matches_keras(keras, form):
    outputs = {}
    for lib in (amber, keras):
        dataset = dataset_class(lib)(size=6, form=form)
        outputs[lib.__name__] = (model_for(lib).predict(dataset, verbose=0, steps=3), dataset.read)
    np.testing.assert_allclose(outputs["amber"][0], outputs["keras"][0], rtol=1e-5, atol=1e-6)
    assert outputs["amber"][0].shape == (18, 2)
    assert outputs["amber"][1] == outputs["keras"][1] == [0, 1, 2]


def test_pydataset_dict_batches_for_a_two_input_model(keras):
    outputs = {}
    for lib in (amber, keras):
        a, b = lib.Input((3,), name="a"), lib.Input((2,), name="b")
        out = lib.layers.Dense(1, name="d")(lib.layers.Concatenate()([a, b]))
        model = lib.Model({"a": a, "b": b}, out)
        model.layers[-1].set_weights([np.arange(5, dtype="float32").reshape(5, 1) / 5, np.ones(1, "float32")])

        class Pairs(lib.utils.PyDataset):
            def __len__(self):
                return 3

            def __getitem__(self, index):
                part = slice(index * 4, index * 4 + 4)
                return {"a": X[part], "b": Y[part]}

        outputs[lib.__name__] = quietly(lambda: model.predict(Pairs(), verbose=0))
    np.testing.assert_allclose(outputs["amber"], outputs["keras"], rtol=1e-5)


def test_sequence_is_pydataset_and_importable_from_utils(keras):
    assert amber.utils.Sequence is amber.utils.PyDataset
    assert keras.utils.Sequence is keras.utils.PyDataset


def test_pydataset_without_super_init_warns_like_keras(keras):
    for lib in (amber, keras):
        class Bare(lib.utils.PyDataset):
            def __init__(self):
                pass

            def __len__(self):
                return 2

            def __getitem__(self, index):
                return X[:4], Y[:4]

        with pytest.warns(UserWarning, match="super"):
            model_for(lib).evaluate(Bare(), verbose=0)


# ------------------------------------------------------------------ bad inputs: Keras refuses them too


def _bad_calls(lib):
    Rows = dataset_class(lib)

    def list_batches():
        yield [X[:4], Y[:4]]

    def four_tuples():
        yield X[:4], Y[:4], SW[:4], SW[:4]

    def nothing():
        return
        yield

    class FourParts(lib.utils.PyDataset):
        def __len__(self):
            return 1

        def __getitem__(self, index):
            return X[:4], Y[:4], SW[:4], SW[:4]

    return {
        "generator and y": lambda m: m.evaluate(batches(), Y, verbose=0),
        "generator and sample_weight": lambda m: m.evaluate(batches(), sample_weight=SW, verbose=0),
        "pydataset and y": lambda m: m.evaluate(Rows(), Y, verbose=0),
        "generator yielding lists": lambda m: m.evaluate(list_batches(), verbose=0),
        "generator yielding 4-tuples": lambda m: m.evaluate(four_tuples(), verbose=0),
        "generator yielding bare arrays": lambda m: m.predict(batches(form="x"), verbose=0),
        "empty generator": lambda m: m.evaluate(nothing(), verbose=0),
        "pydataset returning 4-tuples": lambda m: m.evaluate(FourParts(), verbose=0),
        "list iterator": lambda m: m.predict(iter([X[:4], X[4:8]]), verbose=0),
    }


@pytest.mark.parametrize("case", list(_bad_calls(amber)))
def test_bad_stream_inputs_refused_like_keras(keras, case):
    raised = {}
    for lib in (amber, keras):
        with pytest.raises(Exception) as info:
            quietly(lambda: _bad_calls(lib)[case](model_for(lib)))
        raised[lib.__name__] = info
    assert raised["amber"].type is raised["keras"].type is ValueError
    assert len(str(raised["amber"].value)) < 400  # names what was yielded, without dumping arrays


def test_malformed_batch_error_names_what_was_yielded():
    def list_batches():
        yield [X[:4], Y[:4]]

    with pytest.raises(ValueError, match=r"list of 2 \(ndarray of shape \(4, 3\), ndarray of shape \(4, 2\)\)"):
        model_for(amber).fit(list_batches(), verbose=0)

    def late_bad():
        yield X[:4], Y[:4]
        yield X[:4], Y[:4]
        yield "oops"

    with pytest.raises(ValueError, match="produced a str"):
        quietly(lambda: model_for(amber).fit(late_bad(), verbose=0))


def test_fit_refusals_for_generators():
    model = model_for(amber)
    with pytest.raises(ValueError, match="validation_split"):
        model.fit(batches(), validation_split=0.2, verbose=0)
    with pytest.raises(ValueError, match="class_weight"):
        model.fit(batches(), class_weight={0: 1.0}, verbose=0)
    with pytest.raises(ValueError, match="y"):
        model.fit(dataset_class(amber)(), Y, verbose=0)
    with pytest.raises(ValueError, match="sample_weight"):
        model.fit(dataset_class(amber)(), sample_weight=SW, verbose=0)
    with pytest.raises(ValueError, match="class_weight"):
        model.fit(dataset_class(amber)(form="xyw"), class_weight={0: 1.0}, verbose=0)
    with pytest.raises(ValueError, match="positive"):
        model.fit(batches(), steps_per_epoch=0, verbose=0)
    with pytest.warns(UserWarning, match="shuffle"):
        model.fit(batches(), verbose=0)


# ------------------------------------------------------------------ fit vs real Keras (jax backend)


@pytest.fixture(scope="module")
def keras_fit_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("keras_fit") / "results.json"
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    completed = subprocess.run([sys.executable, os.path.join(HERE, "_fit_stream_scenarios.py"), str(out)],
                               env=env, cwd=HERE, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(out.read_text())


def test_fit_on_streams_matches_keras_steps_and_history(keras_fit_results):
    ours = scenarios.run(amber)
    assert ours.keys() == keras_fit_results.keys()
    for name, theirs in keras_fit_results.items():
        mine = ours[name]
        assert mine["per_epoch"] == theirs["per_epoch"], name
        assert mine["steps_param"] == theirs["steps_param"], name
        assert mine["history"].keys() == theirs["history"].keys(), name
        for key, values in theirs["history"].items():
            np.testing.assert_allclose(mine["history"][key], values, rtol=2e-5, err_msg=f"{name}: {key}")


# ------------------------------------------------------------------ fit vs amber's array path


def _trained(x, **kwargs):
    model = model_for(amber)
    history = quietly(lambda: model.fit(x, verbose=0, **kwargs))
    return [w.copy() for w in model.get_weights()], history.history


@pytest.mark.parametrize("form", ["xy", "xyw"])
def test_fit_generator_equals_fit_on_arrays(form):
    epochs = 1  # a generator is one pass; later epochs would only replay its first batches
    arrays = dict(x=X, y=Y, sample_weight=SW if form == "xyw" else None)
    expected, expected_history = _trained(arrays.pop("x"), batch_size=4, shuffle=False, epochs=epochs, **arrays)
    got, history = _trained(batches(form=form), epochs=epochs)
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)
    assert history == expected_history


def test_fit_pydataset_equals_fit_on_arrays_over_epochs():
    expected, expected_history = _trained(X, y=Y, batch_size=5, shuffle=False, epochs=3,
                                          validation_data=(X[:10], Y[:10]))
    dataset = dataset_class(amber)(size=5)
    validation = dataset_class(amber)(size=5)
    got, history = _trained(dataset, shuffle=False, epochs=3,
                            validation_data=validation, validation_steps=2)
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)
    assert history.keys() == expected_history.keys() == {"loss", "mae", "val_loss", "val_mae"}
    for key in history:
        np.testing.assert_allclose(history[key], expected_history[key], rtol=1e-6)
    # on_epoch_begin / on_epoch_end once per epoch (training) and once per validation.
    assert dataset.begins == dataset.ends == 3
    assert validation.begins == validation.ends == 3
    assert dataset.read == list(range(5)) * 3
    assert validation.read == [0, 1] * 3


def test_fit_pydataset_class_weight_equals_arrays_with_class_weight(keras):
    labels = (Y[:, :1] > 0).astype("float32")
    one_hot = np.concatenate([1 - labels, labels], axis=1)
    class_weight = {0: 2.0, 1: 0.5}
    from keras.src.trainers.data_adapters.data_adapter_utils import class_weight_to_sample_weights

    for targets in (labels, one_hot, labels[:, 0] + 0.2):
        np.testing.assert_array_equal(
            amber.trainers.data_adapters.class_weight_to_sample_weights(targets, class_weight),
            class_weight_to_sample_weights(targets, class_weight))

    class Labelled(amber.utils.PyDataset):
        def __len__(self):
            return 5

        def __getitem__(self, index):
            part = slice(index * 5, index * 5 + 5)
            return X[part], one_hot[part]

    model = model_for(amber)
    model.fit(Labelled(), class_weight=class_weight, shuffle=False, verbose=0)
    reference = model_for(amber)
    weights = class_weight_to_sample_weights(one_hot, class_weight)
    assert len(set(weights[:20].tolist())) == 2
    reference.fit(X[:25], one_hot, sample_weight=weights, batch_size=5, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_fit_pydataset_shuffle_visits_batches_in_keras_order(keras):
    """shuffle=True permutes the batch order with Python's `random`, seeded by set_random_seed."""
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    keras.utils.set_random_seed(11)
    theirs = dataset_class(keras)(size=2)
    list(PyDatasetAdapter(theirs, shuffle=True).get_numpy_iterator())
    amber.utils.set_random_seed(11)
    ours = dataset_class(amber)(size=2)
    model_for(amber).fit(ours, epochs=1, shuffle=True, verbose=0)
    assert sorted(ours.read) == list(range(11))
    assert ours.read == theirs.read != list(range(11))


def test_stop_training_ends_the_epoch_and_closes_the_pass():
    class StopAfterTwo(amber.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                self.model.stop_training = True

    dataset = dataset_class(amber)(size=4)
    history = model_for(amber).fit(dataset, epochs=3, shuffle=False, verbose=0, callbacks=[StopAfterTwo()])
    assert dataset.read == [0, 1] and dataset.begins == dataset.ends == 1
    assert len(history.history["loss"]) == 1


# ------------------------------------------------------------------ progress bar totals


def test_progress_bar_total_unknown_until_a_generator_runs_out(capsys):
    model = model_for(amber)
    quietly(lambda: model.fit(batches(size=5), epochs=2, verbose=2))
    out = capsys.readouterr().out
    # verbose=2 prints one line per epoch, with the length learned in the first epoch
    assert [line.split(" - ")[0] for line in out.splitlines() if " - " in line] == ["5/5", "5/5"]
    quietly(lambda: model.evaluate(batches(size=5), verbose=1))
    out = capsys.readouterr().out
    assert "1/Unknown" in out and "5/5" in out and "/0" not in out
    quietly(lambda: model.predict(dataset_class(amber)(size=5), verbose=1))
    out = capsys.readouterr().out
    assert "5/5" in out and "Unknown" not in out
