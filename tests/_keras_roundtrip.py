"""Helpers the layer test files share when they compare amber with real Keras 3: the Keras
reference itself, the interop corpus cases, and the two checks every corpus model gets
(amber reproduces Keras's expected outputs; amber's re-save loads back in Keras)."""

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest

from _shared_corpus import find_shared

FIXTURES = find_shared("interop") / "interop" / "fixtures"


def keras_numpy(needs_jax=False):
    """Real Keras 3 on its numpy backend, or skip saying why it cannot be the reference.

    `needs_jax`: Keras's numpy backend runs convolutions through jax, so conv tests skip
    when jax is absent instead of failing inside Keras."""
    os.environ.setdefault("KERAS_BACKEND", "numpy")
    if importlib.util.find_spec("keras") is None:
        pytest.skip("real Keras 3 is not installed (test-only reference)")
    if needs_jax and importlib.util.find_spec("jax") is None:
        pytest.skip("Keras 3's numpy backend runs convolutions through jax, which is not installed")
    import keras

    if keras.backend.backend() != "numpy":
        pytest.skip(f"Keras was already imported with the {keras.backend.backend()} backend")
    return keras


def plain_config(config):
    """A config as JSON sees it (tuples become lists), without the auto-generated name."""
    config = json.loads(json.dumps(config))
    config.pop("name", None)
    return config


def corpus_case(name):
    """The corpus MANIFEST entry `name` with its input and Keras's expected output."""
    if not FIXTURES.is_dir():
        pytest.skip(f"shared interop corpus not found at {FIXTURES}")
    manifest = json.loads((FIXTURES / "MANIFEST.json").read_text())
    case = next(c for c in manifest["cases"] if c["name"] == name)
    return case, np.load(FIXTURES / case["input"]), np.load(FIXTURES / case["expected"])


def assert_amber_loads_corpus_model(name):
    """Load `<name>.keras` with amber: Keras's expected outputs and variable paths must match."""
    import amber

    case, x, expected = corpus_case(name)
    model = amber.models.load_model(str(FIXTURES / f"{name}.keras"))
    tol = case["tolerance"]
    np.testing.assert_allclose(model.predict(x), expected, rtol=tol["rtol"], atol=tol["atol"])
    assert [(v.path, list(v.shape)) for v in model.weights] == [(p, s) for p, s in case["model"]["variables"]]


def assert_keras_loads_amber_resave(keras, name, directory):
    """Re-save the corpus model `name` with amber into `directory`, load it in Keras and check
    Keras's outputs; returns the re-saved path for file-level checks."""
    import amber

    case, x, expected = corpus_case(name)
    model = amber.models.load_model(str(FIXTURES / f"{name}.keras"))
    path = Path(directory) / f"{name}_amber.keras"
    model.save(str(path))
    reloaded = keras.models.load_model(str(path))
    tol = case["tolerance"]
    np.testing.assert_allclose(np.asarray(reloaded.predict(x, verbose=0)), expected, rtol=tol["rtol"],
                               atol=tol["atol"])
    return path
