"""Serialization, the registry and the closed-world rules of deserialization."""

import json
import time
import zipfile
from pathlib import Path

import pytest

from amber import saving, utils
from amber.saving import serialization_lib
from amber.saving.json_safety import ConfigError, loads

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FIXTURES = SHARED / "interop" / "fixtures"


@pytest.fixture(autouse=True)
def _clean_registry():
    saving.get_custom_objects().clear()
    yield
    saving.get_custom_objects().clear()


class Scaler:
    """A minimal serializable component (get_config/from_config)."""

    def __init__(self, factor=1.0, inner=None):
        self.factor = factor
        self.inner = inner

    def get_config(self):
        return {"factor": self.factor, "inner": self.inner}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def square(x):
    return x * x


def _fixture_config(name):
    if not FIXTURES.is_dir():
        pytest.skip("shared interop corpus (../shared/interop) is not present")
    with zipfile.ZipFile(FIXTURES / name) as z:
        return json.loads(z.read("config.json"))


# ------------------------------------------------------------------ registry


def test_register_names_package_and_name():
    registered = saving.register_keras_serializable(package="MyLayers")(Scaler)
    assert registered is Scaler
    assert saving.get_registered_name(Scaler) == "MyLayers>Scaler"
    assert saving.get_registered_object("MyLayers>Scaler") is Scaler
    saving.register_keras_serializable(package="my_package", name="custom_fn")(square)
    assert saving.get_registered_name(square) == "my_package>custom_fn"
    assert saving.get_custom_objects()["my_package>custom_fn"] is square
    saving.get_custom_objects().clear()
    assert saving.get_registered_name(Scaler) == "Scaler"
    assert saving.get_registered_object("MyLayers>Scaler") is None


def test_default_package_is_custom_and_class_needs_get_config():
    saving.register_keras_serializable()(Scaler)
    assert saving.get_registered_name(Scaler) == "Custom>Scaler"

    class NoConfig:
        pass

    with pytest.raises(ValueError, match="get_config"):
        saving.register_keras_serializable()(NoConfig)


def test_scopes_nest_and_restore():
    assert utils.custom_object_scope is saving.custom_object_scope
    assert utils.CustomObjectScope is saving.CustomObjectScope
    assert utils.get_custom_objects is saving.get_custom_objects
    with saving.custom_object_scope({"Scaler": Scaler}):
        assert saving.get_registered_object("Scaler") is Scaler
        with utils.CustomObjectScope({"square": square}):
            assert saving.get_registered_object("Scaler") is Scaler
            assert saving.get_registered_object("square") is square
        assert saving.get_registered_object("square") is None
    assert saving.get_registered_object("Scaler") is None


# ------------------------------------------------------------------ format


def test_registered_class_format_and_roundtrip():
    saving.register_keras_serializable(package="MyLayers")(Scaler)
    config = saving.serialize_keras_object(Scaler(0.5))
    assert config == {
        "module": __name__,
        "class_name": "Scaler",
        "config": {"factor": 0.5, "inner": None},
        "registered_name": "MyLayers>Scaler",
    }
    json.dumps(config)
    restored = saving.deserialize_keras_object(config)
    assert isinstance(restored, Scaler) and restored.factor == 0.5


def test_function_form_matches_keras_file():
    """Keras writes a registered activation as a `builtins.function` dict (fixture file)."""
    keras_config = _fixture_config("custom_registered.keras")
    dense = [l for l in keras_config["config"]["layers"] if l["class_name"] == "Dense"][0]
    saving.register_keras_serializable(package="my_package", name="custom_fn")(square)
    assert saving.serialize_keras_object(square) == dense["config"]["activation"]
    assert saving.deserialize_keras_object(dense["config"]["activation"]) is square


def test_nested_objects_in_config_are_serialized_recursively():
    saving.register_keras_serializable(package="P")(Scaler)
    config = saving.serialize_keras_object(Scaler(2.0, inner=Scaler(3.0)))
    inner = config["config"]["inner"]
    assert inner["registered_name"] == "P>Scaler" and inner["config"]["factor"] == 3.0
    # Like Keras, the default from_config leaves nested configs as dicts.
    restored = saving.deserialize_keras_object(config)
    assert restored.inner["config"]["factor"] == 3.0


def test_plain_values_and_specials():
    import numpy as np

    assert saving.serialize_keras_object([1, "a", None, 2.5]) == [1, "a", None, 2.5]
    assert saving.serialize_keras_object((1, 2)) == (1, 2)
    arr = saving.serialize_keras_object(np.arange(3, dtype="float32"))
    assert arr == {"class_name": "__numpy__", "config": {"value": [0.0, 1.0, 2.0], "dtype": "float32"}}
    back = saving.deserialize_keras_object(arr)
    assert back.dtype == np.float32 and back.tolist() == [0.0, 1.0, 2.0]
    assert saving.serialize_keras_object(np.float32(1.5)) == 1.5
    assert saving.deserialize_keras_object(saving.serialize_keras_object(b"xy")) == b"xy"
    assert saving.deserialize_keras_object(saving.serialize_keras_object(slice(1, 5, 2))) == slice(1, 5, 2)


def test_shared_objects_get_one_id_and_come_back_as_one_object():
    saving.register_keras_serializable(package="P")(Scaler)
    shared = Scaler(1.0)
    with serialization_lib.ObjectSharingScope():
        config = saving.serialize_keras_object({"a": shared, "b": shared, "c": Scaler(2.0)})
    assert config["a"]["shared_object_id"] == config["b"]["shared_object_id"]
    assert "shared_object_id" not in config["c"]
    restored = saving.deserialize_keras_object(json.loads(json.dumps(config)))
    assert restored["a"] is restored["b"] and restored["a"] is not restored["c"]


# ------------------------------------------------------------------ lookups


def test_custom_objects_by_class_name_and_scope_after_clearing_registry():
    saving.register_keras_serializable(package="MyLayers")(Scaler)
    saving.register_keras_serializable(package="my_package", name="custom_fn")(square)
    config = saving.serialize_keras_object({"layer": Scaler(0.25), "fn": square})
    saving.get_custom_objects().clear()
    restored = saving.deserialize_keras_object(config, custom_objects={"Scaler": Scaler, "custom_fn": square})
    assert isinstance(restored["layer"], Scaler) and restored["fn"] is square
    with saving.custom_object_scope({"Scaler": Scaler, "custom_fn": square}):
        restored = saving.deserialize_keras_object(config)
    assert isinstance(restored["layer"], Scaler) and restored["fn"] is square


def test_unregistered_class_is_a_clear_error_naming_it():
    saving.register_keras_serializable(package="MyLayers")(Scaler)
    config = saving.serialize_keras_object(Scaler(1.0))
    saving.get_custom_objects().clear()
    with pytest.raises(ValueError, match="Could not locate class 'Scaler'"):
        saving.deserialize_keras_object(config)


def test_keras2_config_without_module_uses_custom_objects():
    obj = saving.deserialize_keras_object({"class_name": "Scaler", "config": {"factor": 4}},
                                          custom_objects={"Scaler": Scaler})
    assert isinstance(obj, Scaler) and obj.factor == 4


# ------------------------------------------------------------------ refusals


CANARY_CALLS = []


def _hostile_configs():
    return [
        {"module": "builtins", "class_name": "exec", "config": {}, "registered_name": None},
        {"module": "builtins", "class_name": "function", "config": "exec", "registered_name": "function"},
        {"module": "builtins", "class_name": "function", "config": "eval", "registered_name": None},
        {"module": "os", "class_name": "system", "config": {"command": "touch x"}, "registered_name": None},
        {"module": "subprocess", "class_name": "Popen", "config": {}, "registered_name": None},
        {"module": "importlib", "class_name": "import_module", "config": {}, "registered_name": None},
        {"module": None, "class_name": "os.system", "config": {}, "registered_name": None},
        {"module": "keras.config", "class_name": "enable_unsafe_deserialization", "config": {}, "registered_name": None},
        {"module": "keras.config", "class_name": "function", "config": "enable_unsafe_deserialization",
         "registered_name": "function"},
        {"module": "amber.config", "class_name": "enable_unsafe_deserialization", "config": {}, "registered_name": None},
        {"module": "keras.utils", "class_name": "get_file", "config": {}, "registered_name": None},
        {"module": "keras.saving", "class_name": "function", "config": "load_model", "registered_name": "function"},
        {"module": "keras.activations", "class_name": "function", "config": "deserialize", "registered_name": "function"},
        {"module": "mypkg", "class_name": "Evil", "config": {}, "registered_name": "Nobody>Evil"},
        {"module": "keras.layers", "class_name": "Dense", "config": {}, "registered_name": "Nobody>Dense"},
    ]


@pytest.mark.parametrize("config", _hostile_configs(), ids=lambda c: f"{c['module']}.{c['class_name']}:{c['config']}")
def test_foreign_names_are_refused_before_anything_runs(config):
    from amber import config as amber_config

    with pytest.raises(ValueError) as info:
        saving.deserialize_keras_object(config)
    message = str(info.value)
    assert config["class_name"] in message or str(config["config"]) in message
    assert not amber_config._unsafe_deserialization_enabled()


def test_refusal_at_any_depth():
    saving.register_keras_serializable(package="P")(Scaler)
    config = saving.serialize_keras_object(Scaler(1.0))
    config["config"]["inner"] = [{"deep": {"module": "os", "class_name": "system", "config": {}}}]

    class Walker(Scaler):
        @classmethod
        def from_config(cls, cfg):
            return cls(cfg["factor"], saving.deserialize_keras_object(cfg["inner"]))

    with pytest.raises(ValueError, match="system"):
        saving.deserialize_keras_object(config, custom_objects={"P>Scaler": Walker})


def test_function_where_a_class_is_expected_is_refused():
    with pytest.raises(ValueError, match="class was expected"):
        saving.deserialize_keras_object({"class_name": "square", "config": {}}, custom_objects={"square": square})


def _lambda_config():
    return saving.serialize_keras_object(lambda x: x + 1)


def test_lambda_refused_in_safe_mode_and_allowed_when_caller_opts_out():
    config = json.loads(json.dumps(_lambda_config()))
    assert config["class_name"] == "__lambda__"
    with pytest.raises(ValueError, match="safe_mode=False"):
        saving.deserialize_keras_object(config)
    fn = saving.deserialize_keras_object(config, safe_mode=False)
    assert fn(2) == 3


def test_nested_call_cannot_loosen_safe_mode():
    lam = json.loads(json.dumps(_lambda_config()))

    class Loosener(Scaler):
        @classmethod
        def from_config(cls, cfg):
            # A component asking for unsafe mode on its own does not get it.
            return cls(saving.deserialize_keras_object(cfg["factor"], safe_mode=False))

    config = {"module": None, "class_name": "Loosener", "config": {"factor": lam}, "registered_name": None}
    with pytest.raises(ValueError, match="lambda"):
        saving.deserialize_keras_object(config, custom_objects={"Loosener": Loosener})


# ------------------------------------------------------------------ JSON bounds


def test_deep_nesting_refused_fast():
    text = "[" * 100_000 + "]" * 100_000
    start = time.perf_counter()
    with pytest.raises(ConfigError, match="nesting depth"):
        loads(text, label="config.json")
    assert time.perf_counter() - start < 1.0


def test_duplicate_keys_invalid_utf8_and_size():
    with pytest.raises(ConfigError, match="duplicate key 'a'"):
        loads('{"a": 1, "b": {"a": 1, "a": 2}}', label="config.json")
    with pytest.raises(ConfigError, match="UTF-8"):
        loads(b'{"a": "\xff"}', label="config.json")
    with pytest.raises(ConfigError, match="exceeds"):
        loads(b"[" + b"1," * 100 + b"1]", label="config.json", max_bytes=50)
    with pytest.raises(ConfigError, match="invalid JSON"):
        loads("{nope}", label="config.json")
    # Brackets inside strings do not count as nesting.
    assert loads('{"s": "' + "[" * 1000 + '"}')["s"] == "[" * 1000


def test_depth_measure_matches_a_plain_counter_across_chunks():
    from amber.saving.json_safety import _nesting_depth

    text = json.dumps({"a": [[1, {"b": "[[[["}], [[[2]]]], "c": {"d": [{"e": []}]}}).encode()

    def reference(data):
        depth = deepest = 0
        in_string = escaped = False
        for ch in data.decode():
            if in_string:
                escaped, in_string = (not escaped and ch == "\\"), in_string and not (ch == '"' and not escaped)
                continue
            if ch == '"':
                in_string = True
            elif ch in "[{":
                depth += 1
                deepest = max(deepest, depth)
            elif ch in "]}":
                depth -= 1
        return deepest

    for chunk in (1, 2, 3, 7, 1 << 20):
        assert _nesting_depth(text, chunk=chunk) == reference(text) == 5
