"""Shared fixtures, and a check that the test-only references are installed.

Many tests compare amber with h5py, the safetensors package and real Keras 3 (numpy backend),
and skip when one is missing so the suite stays usable on a partial install. Under CI (the
`CI` environment variable set) a missing reference is an error instead, so a skip can never
hide a failure there.
"""

import importlib
import os

import pytest


def pytest_configure(config):
    if not os.environ.get("CI"):
        return
    os.environ.setdefault("KERAS_BACKEND", "numpy")
    missing = []
    for module in ("h5py", "safetensors.numpy", "keras", "jax"):
        try:
            importlib.import_module(module)
        except ImportError as error:
            missing.append(f"{module} ({error})")
    if missing:
        raise pytest.UsageError("test-only references missing under CI: " + ", ".join(missing))


@pytest.fixture
def native_io():
    """The native engine the saving tests run on: every class the saving code needs must be
    there (no stand-ins), so a missing native feature fails loudly."""
    from amber import _native

    for name in ("Archive", "ArchiveWriter", "H5File", "H5Writer", "safetensors_load", "safetensors_save"):
        assert hasattr(_native, name), f"amber._native lacks {name}"
    return _native
