"""Optimizers against real Keras 3 (numpy backend) and against the Keras-written corpus.

Two independent references:
- Keras itself: the same gradients applied to Keras variables and to amber Variables for
  several steps must give the same weights, the same optimizer state in the same layout
  (paths, dtypes, shapes: what a `.keras` file stores under `optimizer/vars/<i>`) and the
  same config, key by key.
- The shared corpus: each compiled MLP case was saved by Keras with its optimizer state and
  Keras recorded the predictions after one more training step. The test reads the weights
  and optimizer state with h5py, computes the gradient with a numpy forward/backward pass
  written here, applies one amber optimizer step and compares with `after_fit.npy`.
"""

import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

if "keras" not in __import__("sys").modules:
    os.environ["KERAS_BACKEND"] = "numpy"
import keras  # noqa: E402

from amber import optimizers  # noqa: E402
from amber.backend import Variable  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FIXTURES = SHARED / "interop" / "fixtures"

SHAPES = [(3, 4), (4,), (2, 3, 2)]
STEPS = 6


def _keras_and_amber(name, keras_kwargs, amber_kwargs=None):
    return (
        getattr(keras.optimizers, name)(**keras_kwargs),
        getattr(optimizers, name)(**(keras_kwargs if amber_kwargs is None else amber_kwargs)),
    )


def _run_both(name, keras_kwargs, amber_kwargs=None, seed=0, steps=STEPS, with_none=False):
    rng = np.random.default_rng(seed)
    init = [rng.normal(size=s).astype("float32") for s in SHAPES]
    kvars = [keras.Variable(x.copy(), name=f"w{i}") for i, x in enumerate(init)]
    avars = [Variable(x.copy(), name=f"w{i}") for i, x in enumerate(init)]
    for kv, av in zip(kvars, avars):
        av.path = kv.path  # slot names derive from the model variable's path
    kopt, aopt = _keras_and_amber(name, keras_kwargs, amber_kwargs)
    for step in range(steps):
        grads = [rng.normal(size=s).astype("float32") * (1 + step) for s in SHAPES]
        kopt.apply_gradients(zip(grads, kvars))
        aopt.apply_gradients(zip(grads, avars))
    return kopt, aopt, kvars, avars


CASES = [
    ("SGD", {}),
    ("SGD", {"learning_rate": 0.1, "momentum": 0.9}),
    ("SGD", {"learning_rate": 0.1, "momentum": 0.9, "nesterov": True}),
    ("Adam", {}),
    ("Adam", {"learning_rate": 0.01, "amsgrad": True}),
    ("AdamW", {"learning_rate": 0.01, "weight_decay": 0.05}),
    ("RMSprop", {}),
    ("RMSprop", {"momentum": 0.5, "centered": True, "rho": 0.8}),
    ("Adagrad", {"learning_rate": 0.05, "initial_accumulator_value": 0.2}),
    ("Adadelta", {"learning_rate": 1.0}),
    ("Adamax", {"learning_rate": 0.01}),
    ("Nadam", {"learning_rate": 0.01}),
    ("Lion", {"learning_rate": 0.01}),
    ("Ftrl", {"learning_rate": 0.1}),
    (
        "Ftrl",
        {
            "learning_rate": 0.1,
            "learning_rate_power": -0.7,
            "l1_regularization_strength": 0.01,
            "l2_regularization_strength": 0.02,
            "l2_shrinkage_regularization_strength": 0.01,
            "beta": 0.1,
        },
    ),
    ("Adam", {"clipnorm": 0.5}),
    ("Adam", {"global_clipnorm": 0.5}),
    ("SGD", {"clipvalue": 0.1}),
    ("SGD", {"weight_decay": 0.1, "momentum": 0.5}),
    ("Adam", {"use_ema": True, "ema_overwrite_frequency": 3}),
    ("Adam", {"gradient_accumulation_steps": 2}),
    ("RMSprop", {"loss_scale_factor": 4.0}),
]


@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_updates_state_layout_and_config_match_keras(name, kwargs):
    kopt, aopt, kvars, avars = _run_both(name, kwargs)
    for kv, av in zip(kvars, avars):
        np.testing.assert_allclose(av.numpy(), kv.numpy(), rtol=1e-6, atol=1e-7)
    # Paths start with the optimizer's auto-generated name ("adam", "adam_3", ...), whose
    # counter depends on how many optimizers each library made earlier in the session: compare
    # the rest, and check the prefix is the optimizer's own name.
    def layout(opt):
        assert all(v.path.split("/", 1)[0] == opt.name for v in opt.variables), opt.name
        return [(v.path.split("/", 1)[1], v.dtype, tuple(v.shape)) for v in opt.variables]

    assert layout(aopt) == layout(kopt)
    for kv, av in zip(kopt.variables, aopt.variables):
        np.testing.assert_allclose(
            np.asarray(av.numpy(), "float64"), np.asarray(kv.numpy(), "float64"),
            rtol=1e-6, atol=1e-7, err_msg=kv.path,
        )
    kconfig, aconfig = kopt.get_config(), aopt.get_config()
    assert list(aconfig) == list(kconfig)
    for key in kconfig:
        if key != "name":
            assert aconfig[key] == kconfig[key], key


@pytest.mark.parametrize(
    "schedule_name,kwargs",
    [
        ("ExponentialDecay", {"initial_learning_rate": 0.1, "decay_steps": 2, "decay_rate": 0.5}),
        ("ExponentialDecay",
         {"initial_learning_rate": 0.1, "decay_steps": 2, "decay_rate": 0.5, "staircase": True}),
        ("InverseTimeDecay", {"initial_learning_rate": 0.1, "decay_steps": 3, "decay_rate": 0.7}),
        ("PolynomialDecay", {"initial_learning_rate": 0.1, "decay_steps": 4, "power": 2.0}),
        ("PolynomialDecay", {"initial_learning_rate": 0.1, "decay_steps": 4, "cycle": True}),
        ("CosineDecay", {"initial_learning_rate": 0.1, "decay_steps": 5, "alpha": 0.1}),
        ("CosineDecay",
         {"initial_learning_rate": 0.0, "decay_steps": 4, "warmup_target": 0.1,
          "warmup_steps": 3}),
        ("PiecewiseConstantDecay", {"boundaries": [1, 3], "values": [0.1, 0.05, 0.01]}),
        ("CosineDecayRestarts", {"initial_learning_rate": 0.1, "first_decay_steps": 2}),
    ],
)
def test_schedules_match_keras_values_and_drive_optimizer(schedule_name, kwargs):
    kschedule = getattr(keras.optimizers.schedules, schedule_name)(**kwargs)
    aschedule = getattr(optimizers.schedules, schedule_name)(**kwargs)
    for step in range(12):
        np.testing.assert_allclose(
            np.asarray(aschedule(step)), np.asarray(kschedule(step)), rtol=1e-6, atol=1e-9,
            err_msg=f"step {step}",
        )
    assert aschedule.get_config() == kschedule.get_config()
    # An optimizer driven by the schedule, and its config holding the schedule's Keras dict.
    kopt, aopt, kvars, avars = _run_both(
        "Adam", {"learning_rate": kschedule}, {"learning_rate": aschedule}
    )
    for kv, av in zip(kvars, avars):
        np.testing.assert_allclose(av.numpy(), kv.numpy(), rtol=1e-6, atol=1e-7)
    kconfig, aconfig = kopt.get_config(), aopt.get_config()
    assert aconfig["learning_rate"] == kconfig["learning_rate"]
    rebuilt = optimizers.Adam.from_config(aconfig)
    assert isinstance(rebuilt.learning_rate, (np.ndarray, np.floating))
    assert type(rebuilt._learning_rate).__name__ == schedule_name


def test_schedule_optimizer_has_no_learning_rate_variable_and_rejects_float_assign():
    opt = optimizers.SGD(learning_rate=optimizers.schedules.ExponentialDecay(0.1, 10, 0.9))
    assert [v.path.split("/")[-1] for v in opt.variables] == ["iteration"]
    np.testing.assert_allclose(np.asarray(opt.learning_rate), np.float32(0.1))
    with pytest.raises(TypeError, match="schedule"):
        opt.learning_rate = 0.5


def test_learning_rate_is_settable_variable():
    opt = optimizers.Adam(learning_rate=0.01)
    opt.learning_rate = 0.5
    assert float(opt.learning_rate.numpy()) == 0.5
    assert opt.get_config()["learning_rate"] == 0.5
    assert opt.variables[1] is opt.learning_rate


def test_get_serialize_deserialize_match_keras():
    for name in ["adam", "sgd", "rmsprop", "adamw", "adagrad", "nadam", "adamax", "lion"]:
        kopt = keras.optimizers.get(name)
        aopt = optimizers.get(name)
        assert type(aopt).__name__ == type(kopt).__name__
        kcfg, acfg = kopt.get_config(), aopt.get_config()
        kcfg.pop("name"), acfg.pop("name")
        assert acfg == kcfg
    kopt = keras.optimizers.RMSprop(learning_rate=0.02, rho=0.8, name="my_opt")
    ser = keras.optimizers.serialize(kopt)
    aopt = optimizers.deserialize(json.loads(json.dumps(ser)))
    assert isinstance(aopt, optimizers.RMSprop)
    assert aopt.get_config() == kopt.get_config()
    assert optimizers.serialize(aopt) == ser
    with pytest.raises(ValueError, match="nosuch"):
        optimizers.get("nosuch")


def test_constructor_validation_matches_keras():
    with pytest.raises(ValueError, match="Only one of"):
        optimizers.Adam(clipnorm=1.0, clipvalue=1.0)
    with pytest.raises(ValueError, match="weight_decay"):
        optimizers.AdamW(weight_decay=None)
    with pytest.raises(ValueError, match="momentum"):
        optimizers.SGD(momentum=2.0)
    with pytest.raises(ValueError, match="not recognized"):
        optimizers.Adam(bogus=1)
    with pytest.raises(ValueError, match="gradient_accumulation_steps"):
        optimizers.Adam(gradient_accumulation_steps=1)


def test_unknown_variable_and_gradient_count_errors():
    a, b = Variable(np.zeros(2, "float32"), name="a"), Variable(np.zeros(2, "float32"), name="b")
    opt = optimizers.SGD()
    opt.apply_gradients([(np.ones(2, "float32"), a)])
    with pytest.raises(ValueError, match="Unknown variable"):
        opt.apply_gradients([(np.ones(2, "float32"), b)])
    with pytest.raises(ValueError, match="2 gradients"):
        opt.apply([np.ones(2, "float32")] * 2)
    with pytest.raises(ValueError, match="No gradients"):
        opt.apply_gradients([(None, a)])


def test_save_and_load_own_variables_round_trip_and_checks():
    kopt, aopt, _, avars = _run_both("Adam", {"learning_rate": 0.01, "amsgrad": True})
    keras_store = {}
    kopt.save_own_variables(keras_store)
    fresh = optimizers.Adam(learning_rate=0.5, amsgrad=True)
    fresh.build(avars)
    fresh.load_own_variables(keras_store)
    for mine, theirs in zip(fresh.variables, kopt.variables):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    amber_store = {}
    fresh.save_own_variables(amber_store)
    assert sorted(amber_store, key=int) == sorted(keras_store, key=int)
    for key in keras_store:
        assert amber_store[key].dtype == keras_store[key].dtype
        np.testing.assert_array_equal(amber_store[key], keras_store[key])

    unbuilt = optimizers.Adam(amsgrad=True)
    with pytest.raises(ValueError, match=r"has 2 variables but got 11 saved.*build"):
        unbuilt.load_own_variables(keras_store)
    bad = dict(keras_store)
    bad["3"] = np.zeros((5, 5), "float32")
    other = optimizers.Adam(amsgrad=True)
    other.build(avars)
    with pytest.raises(ValueError, match=r"adam(_\d+)?/w0_velocity.*\(3, 4\).*\(5, 5\)"):
        other.load_own_variables(bad)
    # A Keras-on-TensorFlow step counter (int64) is accepted and stored as int32.
    tf_style = dict(keras_store)
    tf_style["0"] = np.asarray(7, "int64")
    other.load_own_variables(tf_style)
    assert other.iterations.numpy() == 7 and other.iterations.dtype == "int32"


# ----- continuation against the corpus ------------------------------------------------------

ACTIVATIONS = {
    "linear": (lambda z: z, lambda z, a: np.ones_like(z)),
    "relu": (lambda z: np.maximum(z, 0), lambda z, a: (z > 0).astype(z.dtype)),
    "tanh": (np.tanh, lambda z, a: 1 - a * a),
}


def _corpus_cases():
    manifest_path = FIXTURES / "MANIFEST.json"
    if not manifest_path.exists():
        return []
    manifest = json.loads(manifest_path.read_text())
    names = []
    for case in manifest["cases"]:
        fit = case.get("after_fit")
        if fit and str(fit["from"]).endswith(".keras") and case["model"]["layer_classes"] == [
            "InputLayer", "Dense"
        ]:
            names.append(case["name"])
    return names


CORPUS_CASES = _corpus_cases()


def _mlp_forward(x, layers):
    cache = []
    a = x
    for kernel, bias, activation in layers:
        z = a @ kernel + bias
        out = ACTIVATIONS[activation][0](z)
        cache.append((a, z, out))
        a = out
    return a, cache


def _mse_gradients(x, y, layers):
    pred, cache = _mlp_forward(x, layers)
    # keras mean_squared_error: mean over the last axis, then over the batch.
    delta = (2.0 / pred.size) * (pred - y)
    grads = []
    for (kernel, _bias, activation), (a_in, z, out) in zip(reversed(layers), reversed(cache)):
        delta = delta * ACTIVATIONS[activation][1](z, out)
        grads.append((a_in.T @ delta, delta.sum(axis=0)))
        delta = delta @ kernel.T
    grads.reverse()
    return [g.astype("float32") for pair in grads for g in pair]


@pytest.mark.skipif(not FIXTURES.exists(), reason="shared corpus folder ../shared is absent")
@pytest.mark.parametrize("case_name", CORPUS_CASES or ["<none>"])
def test_one_step_from_keras_saved_state_matches_after_fit(case_name):
    import h5py

    manifest = json.loads((FIXTURES / "MANIFEST.json").read_text())
    assert CORPUS_CASES, "the corpus has no Dense-only after_fit case"
    case = next(c for c in manifest["cases"] if c["name"] == case_name)
    assert case["compile"]["loss"] in ("mse", "mean_squared_error")
    fit = case["after_fit"]
    with zipfile.ZipFile(FIXTURES / fit["from"]) as archive:
        config = json.loads(archive.read("config.json"))
        weights = h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r")
        dense_configs = [
            layer["config"] for layer in config["config"]["layers"]
            if layer["class_name"] == "Dense"
        ]
        keys = ["dense"] + [f"dense_{i}" for i in range(1, len(dense_configs))]
        variables, layers = [], []
        for key, (layer_cfg, path_shape) in zip(
            keys, zip(dense_configs, case["model"]["variables"][::2])
        ):
            kernel = Variable(weights[f"layers/{key}/vars/0"][()], name="kernel")
            bias = Variable(weights[f"layers/{key}/vars/1"][()], name="bias")
            layer_path = path_shape[0].rsplit("/", 1)[0]
            kernel.path, bias.path = f"{layer_path}/kernel", f"{layer_path}/bias"
            variables += [kernel, bias]
            layers.append((kernel, bias, layer_cfg["activation"]))
        store = {k: v[()] for k, v in weights["optimizer/vars"].items()}
        weights.close()

    optimizer = optimizers.deserialize(config["compile_config"]["optimizer"])
    optimizer.build(variables)
    expected_layout = [tuple(v[:2]) + (v[2],) for v in case["compile"]["optimizer_variables"]]
    layout = [(v.path, list(v.shape), v.dtype) for v in optimizer.variables]
    assert [p for p, _, _ in layout] == [p for p, _, _ in expected_layout]
    assert [(s, d) for _, s, d in layout] == [(s, d) for _, s, d in expected_layout]
    optimizer.load_own_variables(store)

    x = np.load(FIXTURES / case["input"] if isinstance(case["input"], str) else
                FIXTURES / f"{case_name}.input.npy")
    expected_before = np.load(FIXTURES / f"{case_name}.expected.npy")
    plain = [(k.numpy(), b.numpy(), act) for k, b, act in layers]
    np.testing.assert_allclose(_mlp_forward(x, plain)[0], expected_before, rtol=1e-5, atol=1e-5)

    fit_x, fit_y = np.load(FIXTURES / fit["fit_x"]), np.load(FIXTURES / fit["fit_y"])
    grads = _mse_gradients(fit_x.astype("float32"), fit_y.astype("float32"), plain)
    step_before = int(optimizer.iterations.numpy())
    optimizer.apply_gradients(zip(grads, variables))
    assert int(optimizer.iterations.numpy()) == step_before + 1

    after = _mlp_forward(x, [(k.numpy(), b.numpy(), act) for k, b, act in layers])[0]
    tol = fit["tolerance"]
    np.testing.assert_allclose(after, np.load(FIXTURES / fit["expected"]), **tol)
