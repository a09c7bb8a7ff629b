"""A stand-in for the native readers/writers, built on the reference libraries (h5py,
zipfile, safetensors), for the saving tests while ``amber._native`` lacks them.

``native_io`` (a fixture other saving tests use) patches ``amber.saving.h5_io`` to use the
real native class when it exists and this stand-in otherwise, so the format logic is tested
now and the same tests run on the Rust engine once it lands. The tests in this file check
that the stand-in reads like h5py itself.
"""

import io
import os
import types
import zipfile

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")


def _attr_value(value):
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.dtype.kind in "OSU":
        return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in value.reshape(-1)]
    return value


class StandInH5File:
    def __init__(self, handle, label):
        self._f = handle
        self.label = label

    @staticmethod
    def open(path):
        return StandInH5File(h5py.File(path, "r"), path)

    @staticmethod
    def from_bytes(data, label="<memory>"):
        return StandInH5File(h5py.File(io.BytesIO(data), "r"), label)

    def _get(self, path):
        path = path.strip("/") or "/"
        return self._f.get(path)

    def kind(self, path):
        obj = self._get(path)
        if obj is None:
            return None
        return "group" if isinstance(obj, h5py.Group) else "dataset"

    def keys(self, path="/"):
        return list(self._get(path).keys())

    def attrs(self, path="/"):
        return {k: _attr_value(v) for k, v in self._get(path).attrs.items()}

    def shape(self, path):
        return tuple(self._get(path).shape)

    def dtype(self, path):
        return self._get(path).dtype.name

    def read(self, path):
        array = np.asarray(self._get(path)[()])
        array = np.array(array)
        array.flags.writeable = False
        return array

    def visit(self):
        out = []
        self._f.visititems(lambda name, obj: out.append((name, "group" if isinstance(obj, h5py.Group) else "dataset")))
        return out


class StandInH5Writer:
    def __init__(self):
        self._ops = []

    def create_group(self, path):
        self._ops.append(("group", path, None, None))

    def create_dataset(self, path, data):
        self._ops.append(("dataset", path, np.asarray(data, order="C"), None))

    def set_attr(self, path, name, value):
        self._ops.append(("attr", path, name, value))

    def _fill(self, f):
        for kind, path, a, b in self._ops:
            path = path.strip("/") or "/"
            if kind == "group":
                f.require_group(path)
            elif kind == "dataset":
                f.create_dataset(path, data=a)
            else:
                target = f.require_group(path) if path not in f else f[path]
                if isinstance(b, list):
                    b = np.array([s.encode("utf-8") for s in b], dtype="S") if b else np.zeros(0)
                target.attrs[a] = b

    def write(self, path):
        tmp = f"{path}.standin-tmp"
        with h5py.File(tmp, "w") as f:
            self._fill(f)
        os.replace(tmp, path)

    def to_bytes(self):
        buffer = io.BytesIO()
        with h5py.File(buffer, "w") as f:
            self._fill(f)
        return buffer.getvalue()


class StandInArchive:
    def __init__(self, path):
        self.path = path
        self._zip = zipfile.ZipFile(path)

    @staticmethod
    def open(path):
        return StandInArchive(path)

    def names(self):
        return self._zip.namelist()

    def entries(self):
        return [{"name": i.filename, "size": i.file_size, "compressed_size": i.compress_size, "is_dir": i.is_dir()}
                for i in self._zip.infolist()]

    def read(self, name, limit=None):
        info = self._zip.getinfo(name)
        if limit is not None and info.file_size > limit:
            raise ValueError(f"{self.path}: entry {name} is larger than {limit} bytes")
        return self._zip.read(name)

    def open_h5(self, name):
        return StandInH5File.from_bytes(self._zip.read(name), f"{self.path}:{name}")


class StandInArchiveWriter:
    def __init__(self, path):
        self._path = path
        self._tmp = f"{path}.standin-tmp"
        self._zip = zipfile.ZipFile(self._tmp, "w", compression=zipfile.ZIP_STORED)

    def add_bytes(self, name, data, deflate=False):
        self._zip.writestr(name, data)

    def add_h5(self, name, writer):
        self._zip.writestr(name, writer.to_bytes())

    def finish(self):
        self._zip.close()
        os.replace(self._tmp, self._path)

    def abort(self):
        self._zip.close()
        os.remove(self._tmp)


def _st_load(path):
    from safetensors import safe_open
    from safetensors.numpy import load_file

    with safe_open(path, framework="numpy") as f:
        metadata = f.metadata()
    return load_file(path), metadata


def _st_save(path, tensors, metadata=None):
    from safetensors.numpy import save_file

    save_file(dict(tensors), path, metadata=metadata)


STAND_INS = {
    "H5File": StandInH5File,
    "H5Writer": StandInH5Writer,
    "Archive": StandInArchive,
    "ArchiveWriter": StandInArchiveWriter,
    "safetensors_load": _st_load,
    "safetensors_save": _st_save,
}


def native_or_standin():
    """A namespace with the native names where they exist and the stand-ins elsewhere."""
    from amber import _native

    return types.SimpleNamespace(**{name: getattr(_native, name, None) or stand_in
                                    for name, stand_in in STAND_INS.items()},
                                 FormatError=_native.FormatError)


def native_complete():
    from amber import _native

    return all(hasattr(_native, name) for name in STAND_INS)


@pytest.fixture
def native_io(monkeypatch):
    from amber.saving import h5_io

    namespace = native_or_standin()
    monkeypatch.setattr(h5_io, "_native", lambda: namespace)
    return namespace


# ------------------------------------------------------------------ the stand-in itself


def test_standin_reads_like_h5py(tmp_path):
    path = tmp_path / "x.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("g/vars/0", data=np.arange(6, dtype="float32").reshape(2, 3))
        f["g/vars"].attrs["name"] = "dense"
    h5 = StandInH5File.open(str(path))
    assert h5.kind("g/vars") == "group" and h5.kind("g/vars/0") == "dataset" and h5.kind("nope") is None
    assert h5.attrs("g/vars") == {"name": "dense"}
    assert h5.read("g/vars/0").tolist() == [[0, 1, 2], [3, 4, 5]]
    writer = StandInH5Writer()
    writer.create_dataset("a/b", np.ones(3))
    writer.set_attr("a", "names", ["x", "y"])
    h5 = StandInH5File.from_bytes(writer.to_bytes())
    assert h5.attrs("a") == {"names": ["x", "y"]} and h5.shape("a/b") == (3,)
