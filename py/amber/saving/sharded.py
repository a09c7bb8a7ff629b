"""Sharded weights (``.weights.json`` index + ``<stem>_NNNNN.weights.h5`` shards), Keras 3's
layout: each shard has the ``.weights.h5`` layout and holds a subset of the datasets; the index
maps every ``vars`` group (``/layers/dense/vars``) to the shards holding its datasets."""

import json
import os

import numpy as np

from amber.saving import h5_io
from amber.saving import json_safety
from amber.saving import weights_walk
from amber.saving.json_safety import ConfigError

MAX_INDEX_BYTES = 16 * 1024 * 1024
MAX_SHARDS = 10000


def _base_name(path):
    stem = os.path.basename(path)
    for suffix in (".json", ".weights"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    return stem


class _ShardedWriteStore:
    def __init__(self, path, max_shard_size):
        self.path = path
        self.directory = os.path.dirname(os.path.abspath(path))
        self.base = _base_name(path)
        self.max_bytes = float(max_shard_size) * 1024 ** 3
        self.shards = []  # [(file name, H5Builder)]
        self.current_size = 0
        self.total_size = 0
        self.weight_map = {}
        self._new_shard()

    def _new_shard(self):
        name = f"{self.base}_{len(self.shards):05d}.weights.h5"
        self.shards.append((name, h5_io.H5Builder()))
        self.current_size = 0

    @property
    def builder(self):
        return self.shards[-1][1]

    def make(self, path, metadata=None):
        group = f"{path}/vars" if path else "vars"
        return _ShardedEntry(self, group, metadata)

    def finish(self):
        for name, builder in self.shards:
            builder.write(os.path.join(self.directory, name))
        index = {"metadata": {"total_size": float(self.total_size)}, "weight_map": self.weight_map}
        tmp = f"{self.path}.tmp-{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(index, f, indent=4)
        os.replace(tmp, self.path)


class _ShardedEntry:
    def __init__(self, store, group, metadata):
        self.store = store
        self.group = group
        self.metadata = metadata or {}
        self._declare()

    def _declare(self):
        builder = self.store.builder
        builder.create_group(self.group)
        for key, value in self.metadata.items():
            builder.set_attr(self.group, key, value)

    def __setitem__(self, key, value):
        array = np.asarray(value)
        size = array.nbytes
        if size > self.store.max_bytes:
            raise ValueError(
                f"Variable '{self.group}/{key}' is {size} bytes, more than max_shard_size "
                f"({self.store.max_bytes:.0f} bytes)"
            )
        self.store.total_size += size
        if self.store.current_size + size > self.store.max_bytes:
            self.store._new_shard()
            self._declare()
        self.store.current_size += size
        self.store.builder.create_dataset(f"{self.group}/{key}", array)
        shard = self.store.shards[-1][0]
        files = self.store.weight_map.setdefault("/" + self.group, [])
        if shard not in files:
            files.append(shard)


def save_weights(model, path, max_shard_size=None):
    store = _ShardedWriteStore(path, 5 if max_shard_size is None else max_shard_size)
    weights_walk.save_state(model, store)
    store.finish()


class _UnionReader:
    """Several shard files seen as one HDF5 tree (a group may span shards)."""

    def __init__(self, readers, label):
        self.readers = readers
        self.label = label

    def kind(self, path):
        for reader in self.readers:
            kind = reader.kind(path)
            if kind is not None:
                return kind
        return None

    def keys(self, path="/"):
        seen = []
        for reader in self.readers:
            if reader.kind(path) == "group":
                seen.extend(k for k in reader.keys(path) if k not in seen)
        return seen

    def attrs(self, path="/"):
        merged = {}
        for reader in self.readers:
            if reader.kind(path) is not None:
                merged.update(reader.attrs(path))
        return merged

    def _dataset_reader(self, path):
        for reader in self.readers:
            if reader.kind(path) == "dataset":
                return reader
        raise KeyError(f"{self.label}: dataset '{path}' is in none of the shards")

    def shape(self, path):
        return self._dataset_reader(path).shape(path)

    def dtype(self, path):
        return self._dataset_reader(path).dtype(path)

    def read(self, path, copy=False):
        return self._dataset_reader(path).read(path, copy=copy)

    def visit(self):
        out = []
        for reader in self.readers:
            out.extend(reader.visit())
        return out


def _safe_shard_name(index_path, name):
    if (not isinstance(name, str) or not name or "/" in name or "\\" in name or name in (".", "..")
            or not name.endswith(".h5")):
        raise ConfigError(f"{index_path}: refusing shard file name {name!r}")
    return name


def open_shards(path):
    if not os.path.exists(path):
        raise ValueError(f"File not found: {path}")
    size = os.path.getsize(path)
    if size > MAX_INDEX_BYTES:
        raise ConfigError(f"{path}: index of {size} bytes exceeds the limit of {MAX_INDEX_BYTES}")
    with open(path, "rb") as f:
        index = json_safety.loads(f.read(), label=path)
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict):
        raise ConfigError(f"{path}: a sharded weights index needs a 'weight_map' object")
    names = []
    for group, files in weight_map.items():
        files = [files] if isinstance(files, str) else files
        if not isinstance(files, list):
            raise ConfigError(f"{path}: weight_map entry {group!r} must name shard files")
        for name in files:
            name = _safe_shard_name(path, name)
            if name not in names:
                names.append(name)
    if len(names) > MAX_SHARDS:
        raise ConfigError(f"{path}: {len(names)} shards exceed the limit of {MAX_SHARDS}")
    directory = os.path.dirname(os.path.abspath(path))
    readers = [h5_io.H5Reader.open(os.path.join(directory, name)) for name in sorted(names)]
    return _UnionReader(readers, path)


def load_weights(model, path, skip_mismatch=False, mmap=True):
    from amber.saving import keras_file

    reader = open_shards(path)
    keras_file.load_weights_into(model, reader, copy=not mmap, strict=True, skip_mismatch=skip_mismatch)
