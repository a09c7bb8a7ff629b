"""safetensors: amber's reader and writer against the safetensors package."""

import json
import os
import struct

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st
from safetensors.numpy import load_file, save_file

from amber import _native

DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16", "float32", "float64"]

shapes = st.lists(st.integers(min_value=0, max_value=5), min_size=0, max_size=4)


def make_array(dtype, shape, seed):
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape, dtype=np.int64))
    raw = rng.integers(0, 256, size=n * np.dtype(dtype).itemsize, dtype=np.uint8)
    arr = raw.view(dtype).reshape(shape) if n else np.zeros(shape, dtype)
    if dtype == "bool":
        arr = raw.astype(bool).reshape(shape)
    return arr


tensor_sets = st.dictionaries(
    st.text(alphabet="abcdefgh/_.0123", min_size=1, max_size=10).filter(lambda s: s != "__metadata__"),
    st.tuples(st.sampled_from(DTYPES), shapes, st.integers(0, 2**32 - 1)),
    max_size=6,
)


def assert_same(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    # compare bits so NaN payloads from random bytes count as equal
    assert a.tobytes() == b.tobytes()


@settings(max_examples=60, deadline=None)
@given(tensor_sets, st.one_of(st.none(), st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3)))
def test_package_reads_what_amber_writes(tmp_path_factory, spec, metadata):
    path = str(tmp_path_factory.mktemp("st") / "w.safetensors")
    tensors = {name: make_array(d, s, seed) for name, (d, s, seed) in spec.items()}
    _native.safetensors_save(path, tensors, metadata)
    loaded = load_file(path)
    assert set(loaded) == set(tensors)
    for name, arr in tensors.items():
        assert_same(loaded[name], arr)
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    if not tensors and metadata == {}:
        metadata = None  # written without the empty map (see safetensors.rs)
    assert header.get("__metadata__") == metadata


@settings(max_examples=60, deadline=None)
@given(tensor_sets, st.one_of(st.none(), st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3)))
def test_amber_reads_what_package_writes(tmp_path_factory, spec, metadata):
    # The package itself writes invalid JSON for no tensors plus an empty metadata map.
    assume(spec or metadata != {})
    path = str(tmp_path_factory.mktemp("st") / "w.safetensors")
    tensors = {name: make_array(d, s, seed) for name, (d, s, seed) in spec.items()}
    save_file(tensors, path, metadata=metadata)
    loaded, meta = _native.safetensors_load(path)
    assert set(loaded) == set(tensors)
    for name, arr in tensors.items():
        assert_same(loaded[name], arr)
        assert not loaded[name].flags.writeable
    assert meta == metadata


def test_views_are_read_only_and_outlive_the_file(tmp_path):
    path = str(tmp_path / "w.safetensors")
    expected = np.arange(12, dtype=np.float32).reshape(3, 4)
    save_file({"w": expected, "s": np.array(2.5)}, path)
    tensors, _ = _native.safetensors_load(path)
    w = tensors["w"]
    assert tensors["s"].shape == () and tensors["s"] == 2.5
    with pytest.raises(ValueError):
        w[0, 0] = 1.0
    with pytest.raises(ValueError):
        w.flags.writeable = True
    # a view of the file, not a copy: its base owns the mapped bytes
    assert type(w.base).__name__ == "MappedView"
    assert not w.flags.owndata
    del tensors
    os.remove(path)
    assert_same(w, expected)
    assert float(w.sum()) == float(expected.sum())


def test_awkward_inputs_are_written_correctly(tmp_path):
    path = str(tmp_path / "w.safetensors")
    base = np.arange(24, dtype=">f4").reshape(4, 6)
    tensors = {"strided": base[:, ::2], "big_endian": base, "fortran": np.asfortranarray(base.astype("<i8")), "list": [1.0, 2.0]}
    _native.safetensors_save(path, tensors)
    loaded = load_file(path)
    for name, arr in tensors.items():
        np.testing.assert_array_equal(loaded[name], np.asarray(arr))
    assert loaded["big_endian"].dtype == np.dtype("<f4")


def test_bfloat16_is_refused_with_a_clear_message(tmp_path):
    path = tmp_path / "bf.safetensors"
    header = json.dumps({"x": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\x80\x3f\x00\x40")
    with pytest.raises(_native.FormatError, match=r"object 'x'.*bfloat16"):
        _native.safetensors_load(str(path))


def test_unsupported_save_inputs(tmp_path):
    path = str(tmp_path / "w.safetensors")
    with pytest.raises(_native.FormatError, match="complex128"):
        _native.safetensors_save(path, {"c": np.zeros(2, np.complex128)})
    assert not os.path.exists(path)
    with pytest.raises(_native.FileIOError):
        _native.safetensors_load(str(tmp_path / "missing.safetensors"))
