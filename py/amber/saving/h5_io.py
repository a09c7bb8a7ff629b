"""The one place saving touches files natively: zip archives and HDF5 through ``amber._native``.

Everything else in ``amber.saving`` is format logic over these small wrappers. Errors from the
native readers (``FormatError``, a ``ValueError``) already name the file, object and offset.
"""

import os

import numpy as np

# Largest weights entry read into memory when it cannot be mapped in place.
MAX_COPIED_ENTRY = 16 * 1024 ** 3


def _native():
    from amber import _native

    return _native


def _require(name):
    native = _native()
    obj = getattr(native, name, None)
    if obj is None:
        raise NotImplementedError(
            f"amber._native.{name} is not available in this build of the native extension"
        )
    return obj


class H5Reader:
    """Read-only view of an HDF5 file: '/'-separated paths relative to the root."""

    def __init__(self, native_file, label):
        self._file = native_file
        self.label = label

    @classmethod
    def open(cls, path):
        return cls(_require("H5File").open(os.fspath(path)), os.fspath(path))

    @classmethod
    def from_archive(cls, archive, entry, limit=None):
        label = f"{archive.path}:{entry}"
        if hasattr(archive, "open_h5"):
            return cls(archive.open_h5(entry), label)
        # Builds whose archive cannot open entries in place: a bounded copy of the entry.
        data = archive.read(entry, MAX_COPIED_ENTRY if limit is None else limit)
        return cls(_require("H5File").from_bytes(data, label), label)

    def kind(self, path):
        return self._file.kind(path)

    def is_group(self, path):
        return self._file.kind(path) == "group"

    def is_dataset(self, path):
        return self._file.kind(path) == "dataset"

    def keys(self, path="/"):
        return list(self._file.keys(path))

    def attrs(self, path="/"):
        return dict(self._file.attrs(path))

    def shape(self, path):
        return tuple(int(d) for d in self._file.shape(path))

    def dtype(self, path):
        return str(self._file.dtype(path))

    def read(self, path, copy=False):
        """The dataset as an array: a read-only view of the mapped file when possible, or with
        ``copy`` a private writable array.

        A view may be misaligned for its dtype (Keras places datasets at offsets that leave
        float32 data 2 bytes off a multiple of 4); numpy and the kernels read such data in
        place, so it is not copied."""
        return self._file.read(path, copy=bool(copy))

    def visit(self):
        return list(self._file.visit())


class H5Builder:
    """Collects groups, datasets and attributes, then writes them in one pass."""

    def __init__(self):
        self._writer = _require("H5Writer")()
        self._groups = set()

    @property
    def native(self):
        return self._writer

    def create_group(self, path):
        if path not in self._groups:
            self._writer.create_group(path)
            self._groups.add(path)

    def create_dataset(self, path, data):
        self._writer.create_dataset(path, np.asarray(data, order="C"))

    def set_attr(self, path, name, value):
        self._writer.set_attr(path, name, value)

    def write(self, path):
        self._writer.write(os.fspath(path))

    def to_bytes(self):
        return self._writer.to_bytes()


def open_archive(path):
    return _require("Archive").open(os.fspath(path))


class _ArchiveWriter:
    """The native writer; HDF5 entries stream from the plan when the build supports it."""

    def __init__(self, path):
        self._writer = _require("ArchiveWriter")(os.fspath(path))

    def add_bytes(self, name, data, deflate=False):
        self._writer.add_bytes(name, data, deflate)

    def add_h5(self, name, builder):
        if hasattr(self._writer, "add_h5"):
            self._writer.add_h5(name, builder.native)
        else:
            self._writer.add_bytes(name, builder.to_bytes())

    def finish(self):
        self._writer.finish()

    def abort(self):
        self._writer.abort()


def archive_writer(path):
    return _ArchiveWriter(path)


def safetensors_load(path):
    tensors, metadata = _require("safetensors_load")(os.fspath(path))
    return dict(tensors), metadata


def safetensors_save(path, tensors, metadata=None):
    return _require("safetensors_save")(os.fspath(path), tensors, metadata)
