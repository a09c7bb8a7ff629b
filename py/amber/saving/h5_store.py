"""The Keras 3 weights layout in HDF5 (``model.weights.h5``, ``.weights.h5``) as a store for
the walk: an object's variables are datasets ``<path>/vars/<i>``, and each ``vars`` group has
an attribute ``name`` with the object's name."""

import numpy as np

from amber.saving.h5_io import H5Builder


def _vars_path(path):
    return f"{path}/vars" if path else "vars"


def _numeric_key(name):
    return (0, int(name)) if name.isdigit() else (1, name)


class H5WriteStore:
    def __init__(self, builder=None):
        self.builder = builder if builder is not None else H5Builder()

    def make(self, path, metadata=None):
        group = _vars_path(path)
        self.builder.create_group(group)
        if metadata:
            for key, value in metadata.items():
                self.builder.set_attr(group, key, value)
        return _WriteEntry(self.builder, group)


class _WriteEntry:
    def __init__(self, builder, group):
        self._builder = builder
        self._group = group
        self._keys = []

    def __setitem__(self, key, value):
        array = np.asarray(value)
        self._builder.create_dataset(f"{self._group}/{key}", array)
        self._keys.append(str(key))

    def keys(self):
        return list(self._keys)

    def __len__(self):
        return len(self._keys)


class H5ReadStore:
    """Reads the layout from an ``H5Reader``; remembers which groups the walk used."""

    def __init__(self, reader, copy=False):
        self.reader = reader
        self.copy = copy
        self.used = set()

    def get(self, path):
        group = _vars_path(path)
        self.used.add(group)
        return ReadEntry(self, group)

    def has(self, path):
        return self.reader.kind(_vars_path(path)) is not None

    def unused_weight_groups(self, ignore_prefixes=()):
        """``vars`` groups holding datasets that no object of the model asked for."""
        groups = set()
        for obj_path, kind in self.reader.visit():
            if kind != "dataset":
                continue
            parent = obj_path.rsplit("/", 1)[0] if "/" in obj_path else ""
            if parent == "vars" or parent.endswith("/vars"):
                groups.add(parent)
        return sorted(
            g for g in groups - self.used if not any(g == p or g.startswith(p + "/") for p in ignore_prefixes)
        )


class ReadEntry:
    """The variables of one object: ``entry["0"]`` is its first variable."""

    def __init__(self, store, group):
        self._store = store
        self._group = group
        reader = store.reader
        kind = reader.kind(group)
        if kind is None:
            self._keys = []
        elif kind != "group":
            raise ValueError(f"{reader.label}: '{group}' should be a group of variables, found a {kind}")
        else:
            self._keys = sorted(reader.keys(group), key=_numeric_key)
        self._expected = {}

    @property
    def path(self):
        return self._group

    def keys(self):
        return list(self._keys)

    def __len__(self):
        return len(self._keys)

    def __contains__(self, key):
        return str(key) in self._keys

    def __iter__(self):
        return iter(self.keys())

    def items(self):
        return [(k, self[k]) for k in self._keys]

    def values(self):
        return [self[k] for k in self._keys]

    def expect(self, expected, owner):
        """Check count, shapes and dtype kinds against the object's variables from metadata
        alone, before any data is read."""
        reader = self._store.reader
        where = f"{reader.label}: '{self._group}'"
        if len(expected) != len(self._keys):
            raise ValueError(
                f"{where}: {owner!r} has {len(expected)} variables but the file stores {len(self._keys)} "
                f"({', '.join(self._keys) or 'none'})"
            )
        for key, shape, dtype in expected:
            if key not in self._keys:
                raise ValueError(f"{where}: variable '{key}' of {owner!r} is missing from the file")
            dataset = f"{self._group}/{key}"
            if reader.kind(dataset) != "dataset":
                raise ValueError(f"{where}: '{key}' of {owner!r} is not a dataset")
            stored_shape = reader.shape(dataset)
            if tuple(stored_shape) != tuple(shape):
                raise ValueError(
                    f"{where}: variable '{key}' of {owner!r} has shape {tuple(shape)} but the file "
                    f"stores shape {tuple(stored_shape)}"
                )
            stored_dtype = reader.dtype(dataset)
            if not _compatible(stored_dtype, dtype):
                raise ValueError(
                    f"{where}: variable '{key}' of {owner!r} has dtype {dtype} but the file stores {stored_dtype}"
                )
            self._expected[key] = dtype

    def __getitem__(self, key):
        key = str(key)
        if key not in self._keys:
            raise KeyError(f"{self._store.reader.label}: no variable '{key}' in '{self._group}'")
        path = f"{self._group}/{key}"
        reader = self._store.reader
        array = reader.read(path, copy=True) if self._store.copy else reader.read(path)
        wanted = self._expected.get(key)
        if wanted is not None and array.dtype.name != wanted:
            array = array.astype(wanted)  # e.g. an int32 iteration counter into an int64 one
        return array


def _compatible(stored, expected):
    stored, expected = np.dtype(stored), np.dtype(expected)
    if stored == expected:
        return True
    # Integer counters and float widths differ between writers; values convert exactly or
    # as Keras does on assignment.
    return (stored.kind in "iu" and expected.kind in "iu") or (stored.kind == "f" and expected.kind == "f")
