"""Shared helpers for the framework tests: real Keras 3 (numpy backend) as the reference,
and the shared interop corpus. No tests here."""

import importlib.util
import os
import sys
import types
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FIXTURES = SHARED / "interop" / "fixtures"


def keras_reference():
    """Real Keras 3 on its numpy backend, or skip when Keras is not installed.

    Keras 3.15's numpy backend imports a few jax names at import time (used only by conv,
    pooling and fft, which these tests never call); when jax is absent, stand-ins that fail
    loudly if ever used let it import."""
    os.environ.setdefault("KERAS_BACKEND", "numpy")
    if importlib.util.find_spec("keras") is None:
        pytest.skip("real Keras 3 is not installed")
    if importlib.util.find_spec("jax") is None and "jax" not in sys.modules:
        def unavailable(*args, **kwargs):
            raise NotImplementedError("this Keras function needs jax, which is not installed")

        jax = types.ModuleType("jax")
        jax.lax = types.ModuleType("jax.lax")
        jax.monitoring = types.SimpleNamespace(record_scalar=unavailable)
        jax.__getattr__ = lambda name: unavailable
        jax.lax.__getattr__ = lambda name: unavailable
        sys.modules["jax"] = jax
        sys.modules["jax.lax"] = jax.lax
        jax_math = types.ModuleType("keras.src.backend.jax.math")
        jax_math.fft = jax_math.fft2 = unavailable
        sys.modules["keras.src.backend.jax.math"] = jax_math
    import keras

    if keras.backend.backend() != "numpy":
        pytest.skip(f"reference Keras runs on {keras.backend.backend()}, these tests expect numpy")
    return keras


def require_fixtures():
    if not FIXTURES.is_dir():
        pytest.skip(f"shared interop corpus not found at {FIXTURES}")
    return FIXTURES
