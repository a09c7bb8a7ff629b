"""Whole models in the Keras 3 format: a zip archive (or a directory with ``zipped=False``)
holding ``metadata.json``, ``config.json`` and ``model.weights.h5``, in that order."""

import datetime
import json
import os
import posixpath

from amber.saving import config_checks
from amber.saving import h5_io
from amber.saving import json_safety
from amber.saving import serialization_lib
from amber.saving import traces
from amber.saving import weights_walk
from amber.saving.h5_store import H5ReadStore, H5WriteStore
from amber.saving.json_safety import ConfigError

CONFIG = "config.json"
METADATA = "metadata.json"
WEIGHTS = "model.weights.h5"
# Version of the Keras format amber writes (the corpus is Keras 3.15).
KERAS_FORMAT_VERSION = "3.15.1"
MAX_CONFIG_BYTES = json_safety.MAX_JSON_BYTES
MAX_METADATA_BYTES = 1 << 20
MAX_ENTRIES = 1000


# ------------------------------------------------------------------ saving


def serialize_model(model):
    """The model's config as Keras writes it into ``config.json``."""
    with serialization_lib.ObjectSharingScope():
        return serialization_lib.serialize_keras_object(model)


def _metadata():
    from amber import __version__

    return {
        "keras_version": KERAS_FORMAT_VERSION,
        "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
        "amber_version": __version__,
    }


def build_weights(model):
    store = H5WriteStore()
    weights_walk.save_state(model, store)
    return store.builder


def save_model(model, filepath, zipped=True):
    filepath = os.fspath(filepath)
    config_bytes = json.dumps(serialize_model(model)).encode("utf-8")
    metadata_bytes = json.dumps(_metadata()).encode("utf-8")
    builder = build_weights(model)
    trace = traces.record(model)
    trace_bytes = json.dumps(trace).encode("utf-8") if trace is not None else None
    if not zipped:
        os.makedirs(filepath, exist_ok=True)
        for name, data in ((METADATA, metadata_bytes), (CONFIG, config_bytes), (traces.ENTRY, trace_bytes)):
            if data is not None:
                _write_atomically(os.path.join(filepath, name), data)
        builder.write(os.path.join(filepath, WEIGHTS))
        return
    writer = h5_io.archive_writer(filepath)
    try:
        writer.add_bytes(METADATA, metadata_bytes)
        writer.add_bytes(CONFIG, config_bytes)
        writer.add_h5(WEIGHTS, builder)
        if trace_bytes is not None:
            writer.add_bytes(traces.ENTRY, trace_bytes)
        writer.finish()
    except BaseException:
        writer.abort()
        raise


def _write_atomically(path, data):
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


# ------------------------------------------------------------------ loading


class _ArchiveSource:
    """A ``.keras`` zip, checked: safe member names, one config and one weights member."""

    def __init__(self, path):
        self.path = path
        self.archive = h5_io.open_archive(path)
        entries = self.archive.entries()
        if len(entries) > MAX_ENTRIES:
            raise ConfigError(f"{path}: {len(entries)} archive members; at most {MAX_ENTRIES} are accepted")
        seen = {}
        for entry in entries:
            name = entry["name"]
            _check_member_name(path, name)
            _check_member_size(path, entry)
            seen[name] = seen.get(name, 0) + 1
        for required in (CONFIG, WEIGHTS):
            count = seen.get(required, 0)
            if count != 1:
                what = "is missing" if count == 0 else f"appears {count} times"
                raise ConfigError(f"{path}: archive member '{required}' {what}; exactly one is required")
        self.names = set(seen)

    def read_text(self, name, limit):
        if name not in self.names:
            return None
        return self.archive.read(name, limit)

    def weights(self):
        return h5_io.H5Reader.from_archive(self.archive, WEIGHTS)


class _DirectorySource:
    def __init__(self, path):
        self.path = path
        for required in (CONFIG, WEIGHTS):
            if not os.path.isfile(os.path.join(path, required)):
                raise ConfigError(f"{path}: '{required}' is missing from the model directory")

    def read_text(self, name, limit):
        full = os.path.join(self.path, name)
        if not os.path.isfile(full):
            return None
        size = os.path.getsize(full)
        if size > limit:
            raise ConfigError(f"{full}: {size} bytes exceeds the limit of {limit}")
        with open(full, "rb") as f:
            return f.read()

    def weights(self):
        return h5_io.H5Reader.open(os.path.join(self.path, WEIGHTS))


def _check_member_name(path, name):
    if (
        not name
        or name.startswith("/")
        or "\\" in name
        or ".." in name.split("/")
        or (len(name) > 1 and name[1] == ":")
        or "\x00" in name
    ):
        raise ConfigError(f"{path}: refusing archive member with unsafe name {name!r}")


# A member may inflate to at most this many times its stored size once it is large.
MAX_INFLATION_RATIO = 200
INFLATION_CHECK_ABOVE = 64 * 1024 * 1024


def _check_member_size(path, entry):
    size = entry.get("size")
    stored = entry.get("compressed_size")
    if not isinstance(size, int) or not isinstance(stored, int):
        return
    if size > INFLATION_CHECK_ABOVE and size > MAX_INFLATION_RATIO * max(stored, 1):
        raise ConfigError(
            f"{path}: archive member '{entry['name']}' declares {size} bytes uncompressed from {stored} stored "
            f"bytes (ratio {size / max(stored, 1):.0f}:1); refusing a likely decompression bomb"
        )


def open_source(filepath):
    filepath = os.fspath(filepath)
    if os.path.isdir(filepath):
        return _DirectorySource(filepath)
    return _ArchiveSource(filepath)


def read_config(source):
    data = source.read_text(CONFIG, MAX_CONFIG_BYTES)
    config = json_safety.loads(data, label=f"{source.path}:{CONFIG}")
    metadata = source.read_text(METADATA, MAX_METADATA_BYTES)
    if metadata is not None:
        meta = json_safety.loads(metadata, label=f"{source.path}:{METADATA}")
        if not isinstance(meta, dict):
            raise ConfigError(f"{source.path}:{METADATA}: expected a JSON object")
    return config


def model_from_config(config, custom_objects=None, compile=True, safe_mode=True, label=CONFIG):
    config_checks.check_model_config(config, safe_mode=safe_mode, label=label)
    if not compile:
        config = {k: v for k, v in config.items() if k != "compile_config"}
    with serialization_lib.SafeModeScope(safe_mode):
        model = serialization_lib.deserialize_keras_object(config, custom_objects=custom_objects,
                                                           safe_mode=safe_mode)
    if isinstance(model, (dict, list, str)) or model is None or not hasattr(model, "save_own_variables"):
        raise ConfigError(f"{label}: the config does not describe a model or layer (got {type(model).__name__})")
    return model


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True, mmap=True):
    source = open_source(filepath)
    label = f"{source.path}:{CONFIG}"
    config = read_config(source)
    if not traces.top_level_resolvable(config, custom_objects):
        trace_data = source.read_text(traces.ENTRY, MAX_CONFIG_BYTES)
        if trace_data is not None:
            return _load_from_trace(source, trace_data, custom_objects, safe_mode, mmap)
    model = model_from_config(config, custom_objects, compile, safe_mode, label=label)
    load_weights_into(model, source.weights(), copy=not mmap, strict=True)
    return model


def _load_from_trace(source, trace_data, custom_objects, safe_mode, mmap):
    label = f"{source.path}:{traces.ENTRY}"
    trace = json_safety.loads(trace_data, label=label)
    model, paths = traces.revive(trace, custom_objects, safe_mode, label)
    store = H5ReadStore(source.weights(), copy=not mmap)
    traces.load_revived_weights(model, paths, store)
    leftover = store.unused_weight_groups(ignore_prefixes=("optimizer",))
    if leftover:
        raise ValueError(f"{source.path}: the trace does not account for stored weights {leftover[:10]}")
    return model


def _prepare_optimizer(model, store):
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or not store.has("optimizer"):
        return
    if not getattr(optimizer, "built", True) and callable(getattr(optimizer, "build", None)):
        optimizer.build(model.trainable_variables)


def load_weights_into(model, reader, copy=False, strict=True, skip_mismatch=False):
    """Walk the model over the Keras 3 layout in ``reader``. ``strict``: every stored layer
    variable must belong to the model (weights of an uncompiled model's optimizer aside)."""
    store = H5ReadStore(reader, copy=copy)
    _prepare_optimizer(model, store)
    errors = []
    weights_walk.load_state(model, store, skip_mismatch=skip_mismatch, errors=errors)
    if strict and not skip_mismatch:
        leftover = store.unused_weight_groups(ignore_prefixes=("optimizer",))
        if leftover:
            raise ValueError(
                f"{reader.label}: the file stores weights the model has no place for: "
                f"{', '.join(posixpath.join('/', g) for g in leftover[:10])}"
            )
    return errors
