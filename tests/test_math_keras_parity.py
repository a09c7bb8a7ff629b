"""activations, ops, initializers, regularizers and constraints against real Keras 3
(numpy backend): same values, same configs key by key, same names and aliases."""

import importlib
import os

import numpy as np
import pytest

import amber
from amber import activations, constraints, initializers, ops, regularizers


def _import_keras():
    # Real Keras (a test extra, with jax and scipy that its numpy backend imports) is the
    # reference here; a missing install is a failure, not a skip.
    os.environ.setdefault("KERAS_BACKEND", "numpy")
    keras = importlib.import_module("keras")
    assert keras.backend.backend() == "numpy", "these comparisons need KERAS_BACKEND=numpy"
    return keras


keras = _import_keras()

RNG = np.random.default_rng(3)
X = np.concatenate([np.linspace(-8, 8, 33), RNG.normal(size=31) * 3]).astype(np.float32).reshape(8, 8)
SKIP_NAMES = {"get", "serialize", "deserialize"}


def _public(module):
    return {n for n in dir(module) if not n.startswith("_")}


# ---------------------------------------------------------------- activations


def test_every_keras_activation_name_exists():
    missing = {n for n in _public(keras.activations) - SKIP_NAMES if n not in activations.__all__}
    assert not missing, f"Keras activations amber lacks: {sorted(missing)}"


# Keras 3.15's numpy-backend sparsemax sums the cumulative sums over the support (its outputs
# do not sum to 1); sparsemax is checked against its definition below instead.
KERAS_NUMPY_BUGS = {"sparsemax"}


@pytest.mark.parametrize("name", sorted(_public(keras.activations) - SKIP_NAMES - {"threshold"} - KERAS_NUMPY_BUGS))
def test_activation_values_match_keras(name):
    ours = activations.get(name)(X)
    theirs = np.asarray(keras.activations.get(name)(X))
    assert type(ours) is np.ndarray
    assert ours.dtype == theirs.dtype == np.float32, name
    np.testing.assert_allclose(ours, theirs, rtol=2e-6, atol=2e-6, err_msg=name)


@pytest.mark.parametrize("kwargs", [dict(negative_slope=0.1), dict(max_value=2.5), dict(threshold=1.0),
                                    dict(negative_slope=0.3, max_value=4.0, threshold=0.5), dict(max_value=6)])
def test_relu_options_match_keras(kwargs):
    np.testing.assert_allclose(activations.relu(X, **kwargs), keras.activations.relu(X, **kwargs), rtol=1e-6, atol=1e-6)


def test_parametrized_activations_match_keras():
    pairs = [
        (activations.threshold(X, 0.5, -1.0), keras.activations.threshold(X, 0.5, -1.0)),
        (activations.gelu(X, approximate=True), keras.activations.gelu(X, approximate=True)),
        (activations.elu(X, alpha=0.3), keras.activations.elu(X, alpha=0.3)),
        (activations.celu(X, alpha=2.0), keras.activations.celu(X, alpha=2.0)),
        (activations.softmax(X, axis=0), keras.activations.softmax(X, axis=0)),
        (activations.glu(X, axis=0), keras.activations.glu(X, axis=0)),
        (activations.squareplus(X, b=2), keras.activations.squareplus(X, b=2)),
        (activations.hard_shrink(X, threshold=1.5), keras.activations.hard_shrink(X, threshold=1.5)),
    ]
    for ours, theirs in pairs:
        np.testing.assert_allclose(ours, theirs, rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize("axis", [-1, 0])
def test_sparsemax_is_the_projection_onto_the_simplex(axis):
    p = activations.sparsemax(X, axis=axis).astype(np.float64)
    np.testing.assert_allclose(p.sum(axis=axis), 1.0, rtol=1e-6)
    assert (p >= 0).all()
    # KKT conditions of min ||p - x||^2 over the simplex: on the support p = x - tau with one
    # tau per slice, and off the support x <= tau
    x = np.moveaxis(X.astype(np.float64), axis, -1)
    q = np.moveaxis(p, axis, -1)
    for xs, ps in zip(x, q):
        support = ps > 0
        tau = xs[support] - ps[support]
        np.testing.assert_allclose(tau, tau[0], atol=1e-5)
        assert (xs[~support] <= tau[0] + 1e-5).all()


@pytest.mark.parametrize("name", sorted(_public(keras.activations) - SKIP_NAMES))
def test_activation_serialize_matches_keras(name):
    assert activations.serialize(activations.get(name)) == keras.activations.serialize(keras.activations.get(name))
    assert activations.get(None) is activations.linear


def test_registered_custom_activation_round_trips_through_saving():
    @amber.saving.register_keras_serializable(package="parity")
    def scaled_tanh(x):
        return ops.tanh(x) * 2.0

    config = activations.serialize(scaled_tanh)
    assert isinstance(config, dict) and config["config"] == "parity>scaled_tanh"
    assert activations.deserialize(config) is scaled_tanh
    assert activations.get(config) is scaled_tanh
    with pytest.raises(ValueError):
        activations.get("no_such_activation")


# ---------------------------------------------------------------- ops


OPS_UNARY = ["relu", "relu6", "sigmoid", "softplus", "softsign", "silu", "swish", "gelu", "elu", "selu",
             "leaky_relu", "hard_sigmoid", "hard_silu", "log_sigmoid", "log_softmax", "softmax", "tanh", "exp",
             "abs", "square", "sign", "erf", "celu", "mish" if hasattr(keras.ops, "mish") else "tanh",
             "sparse_plus", "sparse_sigmoid", "squareplus", "tanh_shrink", "hard_tanh", "soft_shrink",
             "hard_shrink", "glu", "logsumexp", "cumsum", "sort", "argmax", "argmin"]


@pytest.mark.parametrize("name", sorted(set(OPS_UNARY)))
def test_ops_match_keras(name):
    ours = getattr(ops, name)(X)
    theirs = np.asarray(getattr(keras.ops, name)(X))
    np.testing.assert_allclose(ours, theirs, rtol=2e-6, atol=2e-6, err_msg=name)
    assert ours.dtype == theirs.dtype, f"{name}: {ours.dtype} vs Keras {theirs.dtype}"


def test_ops_with_arguments_match_keras():
    idx = np.array([[0, 3], [7, 1]])
    pairs = [
        (ops.one_hot(np.array([0, 3, -1]), 4), keras.ops.one_hot(np.array([0, 3, -1]), 4)),
        (ops.take(X, idx, axis=1), keras.ops.take(X, idx, axis=1)),
        (ops.pad(X, ((1, 2), (0, 1))), keras.ops.pad(X, ((1, 2), (0, 1)))),
        (ops.clip(X, -1.0, 2.0), keras.ops.clip(X, -1.0, 2.0)),
        (ops.moments(X, axes=[0])[1], keras.ops.moments(X, axes=[0])[1]),
        (ops.batch_normalization(X, X[0], X[1] ** 2, axis=1, offset=X[2], scale=X[3]),
         keras.ops.batch_normalization(X, X[0], X[1] ** 2, axis=1, offset=X[2], scale=X[3])),
        (ops.norm(X, axis=1), keras.ops.norm(X, axis=1)),
        (ops.einsum("ij,jk->ik", X, X), keras.ops.einsum("ij,jk->ik", X, X)),
        (ops.top_k(X, 3)[0], keras.ops.top_k(X, 3)[0]),
        (ops.top_k(X, 3)[1], keras.ops.top_k(X, 3)[1]),
        (ops.average(X, axis=1, weights=X[0] ** 2), keras.ops.average(X, axis=1, weights=X[0] ** 2)),
        (ops.split(X, 4, axis=1)[2], keras.ops.split(X, 4, axis=1)[2]),
        (ops.full((2, 3), 2.5), keras.ops.full((2, 3), 2.5)),
        (ops.arange(0, 5, 0.5), keras.ops.arange(0, 5, 0.5)),
    ]
    for ours, theirs in pairs:
        theirs = np.asarray(theirs)
        np.testing.assert_allclose(ours, theirs, rtol=2e-6, atol=2e-6)
        assert ours.dtype == theirs.dtype


def test_gelu_defaults_match_keras():
    # ops.gelu defaults to the tanh approximation, activations.gelu to the exact form
    np.testing.assert_allclose(ops.gelu(X), keras.ops.gelu(X), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(activations.gelu(X), keras.activations.gelu(X), rtol=1e-6, atol=1e-6)
    assert not np.allclose(ops.gelu(X), activations.gelu(X), rtol=0, atol=1e-6)


# ---------------------------------------------------------------- initializers, regularizers, constraints

INITIALIZER_ARGS = {
    "Constant": [{}, {"value": 0.5}],
    "Zeros": [{}], "Ones": [{}], "Identity": [{}],
    "RandomNormal": [{}, {"mean": 1.0, "stddev": 2.0, "seed": 4}],
    "RandomUniform": [{}, {"minval": -1.0, "maxval": 3.0, "seed": 4}],
    "TruncatedNormal": [{}, {"mean": 0.5, "stddev": 0.1, "seed": 1}],
    "VarianceScaling": [{}, {"scale": 2.0, "mode": "fan_avg", "distribution": "uniform", "seed": 3},
                        {"distribution": "normal"}, {"input_axes": [0], "output_axes": [1]}],
    "GlorotUniform": [{}, {"seed": 7}], "GlorotNormal": [{}, {"seed": 7}],
    "HeUniform": [{}, {"seed": 7}], "HeNormal": [{}, {"seed": 7}],
    "LecunUniform": [{}, {"seed": 7}], "LecunNormal": [{}, {"seed": 7}],
    "Orthogonal": [{}, {"gain": 2.0, "seed": 5}],
}
REGULARIZER_ARGS = {"L1": [{}, {"l1": 0.3}], "L2": [{}, {"l2": 0.3}], "L1L2": [{}, {"l1": 1e-5, "l2": 1e-4}],
                    "OrthogonalRegularizer": [{}, {"factor": 0.2, "mode": "columns"}]}
CONSTRAINT_ARGS = {"MaxNorm": [{}, {"max_value": 1.5, "axis": 1}], "NonNeg": [{}], "UnitNorm": [{}, {"axis": 1}],
                   "MinMaxNorm": [{}, {"min_value": 0.5, "max_value": 2.0, "rate": 0.5, "axis": 1}]}
CASES = [(initializers, "initializers", n, kw) for n, kws in INITIALIZER_ARGS.items() for kw in kws]
CASES += [(regularizers, "regularizers", n, kw) for n, kws in REGULARIZER_ARGS.items() for kw in kws]
CASES += [(constraints, "constraints", n, kw) for n, kws in CONSTRAINT_ARGS.items() for kw in kws]


@pytest.mark.parametrize("namespace,keras_name,name,kwargs", CASES,
                         ids=[f"{c[2]}-{i}" for i, c in enumerate(CASES)])
def test_config_matches_keras_key_by_key(namespace, keras_name, name, kwargs):
    ours = getattr(namespace, name)(**kwargs)
    theirs = getattr(getattr(keras, keras_name), name)(**kwargs)
    assert ours.get_config() == theirs.get_config()
    assert list(ours.get_config()) == list(theirs.get_config())
    assert namespace.serialize(ours) == getattr(keras, keras_name).serialize(theirs)
    # each side rebuilds the other's serialization with the same config
    rebuilt = namespace.deserialize(getattr(keras, keras_name).serialize(theirs))
    assert type(rebuilt) is type(ours) and rebuilt.get_config() == ours.get_config()
    back = getattr(keras, keras_name).deserialize(namespace.serialize(ours))
    assert back.get_config() == theirs.get_config()


@pytest.mark.parametrize("keras_name,namespace", [("initializers", initializers), ("regularizers", regularizers),
                                                  ("constraints", constraints)])
def test_every_keras_name_and_alias_resolves_the_same(keras_name, namespace):
    kmod = getattr(keras, keras_name)
    for name in sorted(_public(kmod) - SKIP_NAMES - {"STFT", "stft", "STFTInitializer"}):
        theirs = getattr(kmod, name)
        assert hasattr(namespace, name), f"{keras_name}.{name} missing"
        assert name in namespace.__all__
        assert getattr(namespace, name).__name__ == theirs.__name__, name
        if name[0].islower() and name not in ("deserialize",):
            try:
                their_obj = kmod.get(name)
            except (ValueError, KeyError):
                continue  # Keras's own get() fails on some exported aliases ("l1_l2", "constant")
            assert type(namespace.get(name)).__name__ == type(their_obj).__name__, name
    assert namespace.get(None) is None


def _fan_check(ours, theirs, shape):
    a = np.asarray(ours(shape))
    b = np.asarray(theirs(shape))
    assert a.shape == b.shape == shape and a.dtype == b.dtype == np.float32
    np.testing.assert_allclose(a.std(), b.std(), rtol=0.05)
    np.testing.assert_allclose(np.abs(a).max(), np.abs(b).max(), rtol=0.1)
    assert abs(a.mean() - b.mean()) < 0.05 * b.std() + 1e-6


@pytest.mark.parametrize("name", ["GlorotUniform", "GlorotNormal", "HeUniform", "HeNormal", "LecunUniform",
                                  "LecunNormal", "RandomNormal", "RandomUniform", "TruncatedNormal",
                                  "VarianceScaling"])
@pytest.mark.parametrize("shape", [(300, 200), (3, 3, 40, 50)])
def test_random_initializers_have_kerass_distribution(name, shape):
    _fan_check(getattr(initializers, name)(seed=11), getattr(keras.initializers, name)(seed=11), shape)


def test_deterministic_initializers_match_keras():
    for name, kwargs, shape in [("Zeros", {}, (3, 2)), ("Ones", {}, (4,)), ("Constant", {"value": 1.5}, (2, 2)),
                                ("Identity", {"gain": 3.0}, (3, 4))]:
        ours = getattr(initializers, name)(**kwargs)(shape)
        theirs = np.asarray(getattr(keras.initializers, name)(**kwargs)(shape))
        np.testing.assert_array_equal(ours, theirs)
        assert ours.dtype == theirs.dtype


def test_seeded_initializers_repeat_and_unseeded_follow_global_seed():
    init = initializers.GlorotUniform(seed=1)
    np.testing.assert_array_equal(init((5, 5)), init((5, 5)))
    amber.backend.random.set_seed(9)
    a = initializers.HeNormal()((4, 4))
    amber.backend.random.set_seed(9)
    np.testing.assert_array_equal(a, initializers.HeNormal()((4, 4)))


@pytest.mark.parametrize("shape", [(6, 4), (4, 6), (2, 3, 5)])
def test_orthogonal_is_orthogonal(shape):
    q = initializers.Orthogonal(gain=2.0, seed=3)(shape).astype(np.float64).reshape(-1, shape[-1])
    small = min(q.shape)
    gram = q.T @ q if q.shape[0] >= q.shape[1] else q @ q.T
    np.testing.assert_allclose(gram, 4.0 * np.eye(small), atol=1e-5)


@pytest.mark.parametrize("name,kwargs", [(n, kw) for n, kws in REGULARIZER_ARGS.items() for kw in kws])
def test_regularizer_values_match_keras(name, kwargs):
    w = RNG.normal(size=(5, 7)).astype(np.float32)
    ours = getattr(regularizers, name)(**kwargs)(w)
    if kwargs.get("mode") == "columns":
        # Keras 3.15's numpy normalize() turns axis=0 into the last axis, so its columns mode
        # is wrong on numpy arrays; columns of w are the rows of w.T by definition.
        theirs = np.asarray(keras.regularizers.OrthogonalRegularizer(kwargs["factor"], mode="rows")(w.T))
    else:
        theirs = np.asarray(getattr(keras.regularizers, name)(**kwargs)(w))
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)
    assert np.asarray(ours).dtype == np.float32


@pytest.mark.parametrize("name,kwargs", [(n, kw) for n, kws in CONSTRAINT_ARGS.items() for kw in kws])
def test_constraint_values_match_keras(name, kwargs):
    w = (RNG.normal(size=(5, 7)) * 2).astype(np.float32)
    ours = getattr(constraints, name)(**kwargs)(w)
    theirs = np.asarray(getattr(keras.constraints, name)(**kwargs)(w))
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-7)
    assert np.asarray(ours).dtype == theirs.dtype


def test_regularizer_is_differentiable():
    w = amber.backend.Variable(RNG.normal(size=(4, 3)), name="w")
    with amber.backend.GradientTape() as tape:
        penalty = regularizers.L1L2(l1=0.1, l2=0.2)(w)
    np.testing.assert_allclose(tape.gradient(penalty, w), 0.1 * np.sign(w.numpy()) + 0.4 * w.numpy())


def test_bad_arguments_are_refused_with_the_argument_named():
    with pytest.raises(ValueError, match="l1"):
        regularizers.L1(-1.0)
    with pytest.raises(ValueError, match="mode"):
        regularizers.OrthogonalRegularizer(mode="diagonal")
    with pytest.raises(ValueError, match="mode"):
        initializers.VarianceScaling(mode="fan_sideways")
    with pytest.raises(ValueError, match="scale"):
        initializers.VarianceScaling(scale=0)
    with pytest.raises(ValueError, match="seed"):
        initializers.GlorotUniform(seed="abc")
    with pytest.raises(ValueError, match="Identity"):
        initializers.Identity()((2, 2, 2))
    with pytest.raises(ValueError, match="initializer"):
        initializers.get(42)
