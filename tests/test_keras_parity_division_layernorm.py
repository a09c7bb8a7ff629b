"""Small Keras-parity points against real Keras 3 (numpy backend): the result dtype and values
of `ops.divide` / `ops.true_divide` for every operand dtype pair, the operation each records on
symbolic tensors (`Divide` vs `TrueDivide`), and `LayerNormalization`'s `axis` in its config
(an int before build, a sorted list after, as Keras writes it into saved models)."""

import json
import zipfile

import ml_dtypes
import numpy as np
import pytest

import amber
from amber import layers, ops
from amber.backend import Variable
from test_framework_reference import FIXTURES, keras_reference


@pytest.fixture(scope="module")
def keras():
    return keras_reference()


DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "float16",
          "bfloat16", "float32", "float64"]


def _values(dtype):
    # Nonzero divisors, and values an int-to-float cast does not round.
    return np.array([1, 2, 3, 7] if dtype != "bool" else [1, 1, 1, 1]).astype(
        ml_dtypes.bfloat16 if dtype == "bfloat16" else dtype)


def _is_float64(x):
    return isinstance(x, (np.ndarray, np.generic)) and x.dtype == np.float64


def _reference(keras, op, x1, x2):
    """Keras's result; except that amber keeps float64 operands in float64 (Keras narrows
    every 64-bit result to 32 bits, amber never does, in any op): there the reference is
    numpy's float64 division."""
    if _is_float64(x1) or _is_float64(x2):
        return np.true_divide(np.asarray(x1, np.float64), np.asarray(x2, np.float64))
    return np.asarray(getattr(keras.ops, op)(x1, x2))


@pytest.mark.parametrize("op", ["divide", "true_divide"])
@pytest.mark.parametrize("dtype1", DTYPES)
def test_division_of_arrays_has_keras_dtype_and_values(keras, op, dtype1):
    x1 = _values(dtype1)
    for dtype2 in DTYPES:
        x2 = _values(dtype2)
        expected = _reference(keras, op, x1, x2)
        got = getattr(ops, op)(x1, x2)
        assert got.dtype == expected.dtype, (dtype1, dtype2, got.dtype, expected.dtype)
        np.testing.assert_array_equal(got, expected, err_msg=f"{dtype1} / {dtype2}")


def test_integer_division_is_float32_where_numpy_gives_float64(keras):
    # The reported case: int32 / int32 (and int64, int8, int / float32) are float32 in Keras.
    for x1, x2 in [(np.int32, np.int32), (np.int64, np.int64), (np.int8, np.int8),
                   (np.int32, np.float32), (np.int64, np.float32)]:
        a, b = np.array([7, 9], x1), np.array([2, 4], x2)
        assert ops.divide(a, b).dtype == keras.ops.divide(a, b).dtype == np.float32
        assert ops.true_divide(a, b).dtype == np.float32


@pytest.mark.parametrize("x1,x2", [
    (np.array([1, 2], np.int32), 2),
    (np.array([1, 2], np.int32), 2.5),
    (3, np.array([1, 2], np.int8)),
    (np.array([1.0, 3.0], np.float16), 2),
    (np.array([1.0, 3.0], np.float16), 2.5),
    (np.array([5, 7], np.int64), 2.5),
    (np.float32(3.0), np.array([2, 4], np.int16)),
    (np.int64(3), np.float32(2.0)),
    (1, 2),
    (1.0, 4),
    (True, np.array([2, 4], np.uint8)),
], ids=lambda v: type(v).__name__ + str(getattr(v, "dtype", "")))
def test_division_with_scalars_has_keras_dtype_and_values(keras, x1, x2):
    expected = _reference(keras, "divide", x1, x2)
    got = ops.divide(x1, x2)
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


def test_variable_division_follows_the_same_rule(keras):
    # Named: an unnamed Keras Variable would advance Keras's global "variable" name counter,
    # which other tests' saved optimizer paths (Nadam's product) depend on.
    expected = keras.Variable(np.array([3, 4], np.int32), dtype="int32", trainable=False,
                              name="counts") / 2
    got = Variable(np.array([3, 4], np.int32), dtype="int32", trainable=False, name="counts") / 2
    assert got.dtype == expected.dtype == np.float32
    np.testing.assert_array_equal(got, expected)


def test_division_gradient_flows_through_the_cast():
    # An int divisor is cast to float32 first; the float32 numerator's gradient is 1 / x2.
    x = Variable(np.array([2.0, 6.0], np.float32))
    with amber.backend.GradientTape() as tape:
        y = ops.sum(ops.divide(x, np.array([2, 3], np.int32)))
    (grad,) = tape.gradient(y, [x])
    np.testing.assert_array_equal(np.asarray(grad), np.array([0.5, 1 / 3], np.float32))
    assert np.asarray(grad).dtype == np.float32


def _graph_ops(config):
    """Each operation node's class, module and config; the auto-generated name (numbered by
    how many ops of its kind the process has made) as its base, e.g. ``true_divide``."""
    ops_found = []
    for layer in config["layers"]:
        if layer["class_name"] == "InputLayer":
            continue
        node_config = dict(layer["config"])
        node_config["name"] = node_config["name"].rstrip("0123456789").rstrip("_")
        ops_found.append((layer["class_name"], layer["module"], node_config))
    return ops_found


def test_symbolic_division_records_keras_operations(keras):
    def build(lib):
        t = lib.Input(shape=(3,), dtype="int32", name="t")
        f = lib.Input(shape=(3,), name="f")
        outputs = [lib.ops.true_divide(f, 2.0), lib.ops.divide(t, t), lib.ops.true_divide(t, 3),
                   f / 4.0]
        return lib.Model([t, f], outputs, name="division")

    expected, got = build(keras), build(amber)
    assert _graph_ops(got.get_config()) == _graph_ops(expected.get_config())
    assert [op[0] for op in _graph_ops(got.get_config())] == [
        "TrueDivide", "Divide", "TrueDivide", "TrueDivide"]
    assert [o.dtype for o in got.outputs] == [o.dtype for o in expected.outputs]
    t_value = np.array([[1, 2, 3], [4, 5, 7]], np.int32)
    f_value = np.array([[0.5, -1.0, 3.0], [2.0, 9.0, -7.5]], np.float32)
    reference = expected.predict([t_value, f_value], verbose=0)
    result = got.predict([t_value, f_value])
    for r, e in zip(result, reference):
        assert r.dtype == e.dtype
        np.testing.assert_array_equal(r, e)


def test_symbolic_division_round_trips_through_config():
    t = amber.Input(shape=(3,), dtype="int32")
    model = amber.Model(t, amber.ops.true_divide(t, 2))
    rebuilt = amber.Model.from_config(model.get_config())
    assert [op[0] for op in _graph_ops(rebuilt.get_config())] == ["TrueDivide"]
    np.testing.assert_array_equal(rebuilt.predict(np.array([[1, 2, 3]], np.int32)),
                                  np.array([[0.5, 1.0, 1.5]], np.float32))


@pytest.mark.parametrize("axis,shape", [(-1, (2, 4)), ([-1], (2, 4)), (1, (2, 3, 4)),
                                        ((2, 1), (2, 3, 4)), ([-1, -2], (2, 3, 4))])
def test_layer_normalization_axis_config_is_keras(keras, axis, shape):
    k_layer = keras.layers.LayerNormalization(axis=axis)
    a_layer = layers.LayerNormalization(axis=axis)
    assert a_layer.get_config()["axis"] == k_layer.get_config()["axis"]  # before build
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    expected = np.asarray(k_layer(x))
    got = a_layer(x)
    assert a_layer.get_config()["axis"] == k_layer.get_config()["axis"]  # after build
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    # Either spelling loads back, and builds to the same axes.
    rebuilt = layers.LayerNormalization.from_config(a_layer.get_config())
    rebuilt(x)
    assert rebuilt.get_config()["axis"] == k_layer.get_config()["axis"]


def test_layer_normalization_axis_matches_a_keras_written_file():
    path = FIXTURES / "transformer_block.keras"
    if not path.exists():
        pytest.skip(f"shared interop corpus not found at {FIXTURES}")
    with zipfile.ZipFile(path) as archive:
        written = json.loads(archive.read("config.json"))
    expected = {layer["config"]["name"]: layer["config"]["axis"]
                for layer in written["config"]["layers"]
                if layer["class_name"] == "LayerNormalization"}
    assert expected and all(isinstance(axis, list) for axis in expected.values())
    model = amber.saving.load_model(str(path))
    got = {layer.name: layer.get_config()["axis"] for layer in model.layers
           if isinstance(layer, layers.LayerNormalization)}
    assert got == expected
