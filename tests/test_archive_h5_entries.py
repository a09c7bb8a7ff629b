"""HDF5 inside zip entries: `Archive.open_h5` reads in place, `ArchiveWriter.add_h5` streams.

References: Python's zipfile and h5py (reading the entry bytes from memory).
"""

import io
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from amber import _native

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "interop" / "fixtures"


def _h5py_entry(path, entry="model.weights.h5"):
    return h5py.File(io.BytesIO(zipfile.ZipFile(path).read(entry)), "r")


@pytest.mark.skipif(not FIXTURES.is_dir(), reason="shared interop corpus not present")
@pytest.mark.parametrize("keras_file", sorted(p.name for p in FIXTURES.glob("*.keras")))
def test_open_h5_in_place_equals_h5py(keras_file):
    path = FIXTURES / keras_file
    ours = _native.Archive.open(str(path)).open_h5("model.weights.h5")
    with _h5py_entry(path) as ref:
        datasets = []
        ref.visititems(lambda name, obj: datasets.append(name) if isinstance(obj, h5py.Dataset) else None)
        assert sorted(p for p, k in ours.visit() if k == "dataset") == sorted(datasets)
        offset = next(e for e in _native.Archive.open(str(path)).entries() if e["name"] == "model.weights.h5")["data_offset"]
        mapped = np.memmap(path, mode="r")
        for name in datasets:
            got = ours.read(name)
            np.testing.assert_array_equal(got, ref[name][()])
            assert got.dtype == ref[name].dtype
            if got.nbytes and ref[name].id.get_offset() is not None:
                # Zero-copy: the array's memory is the file's bytes at the entry offset + the
                # dataset's offset inside the HDF5 file.
                assert not got.flags.writeable
                start = offset + ref[name].id.get_offset()
                assert got.tobytes() == mapped[start:start + got.nbytes].tobytes()


def test_deflated_entry_is_inflated_then_read(tmp_path):
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f["a/b"] = np.arange(10, dtype="int64")
    path = tmp_path / "deflated.keras"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("model.weights.h5", buf.getvalue())
    got = _native.Archive.open(str(path)).open_h5("model.weights.h5").read("a/b")
    np.testing.assert_array_equal(got, np.arange(10))


def test_add_h5_streams_an_aligned_stored_entry(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {f"layers/dense_{i}/vars/0": rng.standard_normal((7, 5 + i)).astype("float32") for i in range(3)}
    w = _native.H5Writer()
    for name, arr in arrays.items():
        w.create_dataset(name, arr)
        w.set_attr(name.rsplit("/", 1)[0], "name", name.split("/")[1])
    path = tmp_path / "m.keras"
    aw = _native.ArchiveWriter(str(path))
    aw.add_bytes("config.json", b'{"a": 1}', True)
    aw.add_h5("model.weights.h5", w)
    aw.finish()
    z = zipfile.ZipFile(path)
    info = z.getinfo("model.weights.h5")
    assert info.compress_type == zipfile.ZIP_STORED
    assert z.testzip() is None
    with _h5py_entry(path) as ref:
        for name, arr in arrays.items():
            np.testing.assert_array_equal(ref[name][()], arr)
            assert ref[name.rsplit("/", 1)[0]].attrs["name"] == name.split("/")[1]
    entry = next(e for e in _native.Archive.open(str(path)).entries() if e["name"] == "model.weights.h5")
    assert entry["data_offset"] % 64 == 0


def test_open_h5_of_a_non_hdf5_entry_names_the_entry(tmp_path):
    path = tmp_path / "bad.keras"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("model.weights.h5", b"PK\x03\x04 not hdf5 at all" * 10)
    with pytest.raises(ValueError, match="model.weights.h5"):
        _native.Archive.open(str(path)).open_h5("model.weights.h5")
