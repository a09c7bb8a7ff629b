"""Shared fixtures."""

import pytest


@pytest.fixture
def native_io():
    """The native engine the saving tests run on: every class the saving code needs must be
    there (no stand-ins), so a missing native feature fails loudly."""
    from amber import _native

    for name in ("Archive", "ArchiveWriter", "H5File", "H5Writer", "safetensors_load", "safetensors_save"):
        assert hasattr(_native, name), f"amber._native lacks {name}"
    return _native
