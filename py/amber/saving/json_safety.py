"""Parsing JSON from files with bounds: size, nesting depth, duplicate keys, valid UTF-8.

Configs come from untrusted files. Python's parser recurses per nesting level, so depth is
measured on the raw text first (vectorised, strings masked out) and too-deep input is
refused before parsing.
"""

import json
import re

import numpy as np

MAX_JSON_BYTES = 64 * 1024 * 1024
MAX_JSON_DEPTH = 256

# A JSON string literal; brackets inside strings do not nest.
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


class ConfigError(ValueError):
    """A config that is malformed, oversized, or names something it may not."""


def _nesting_depth(data, chunk=1 << 20):
    """Deepest bracket nesting outside strings, in bounded memory (chunk by chunk)."""
    stripped = _STRING.sub(b'""', data)
    codes = np.frombuffer(stripped, dtype=np.uint8)
    depth = deepest = 0
    for start in range(0, codes.size, chunk):
        part = codes[start:start + chunk]
        steps = (np.isin(part, _OPEN).astype(np.int32) - np.isin(part, _CLOSE).astype(np.int32))
        running = np.cumsum(steps) + depth
        deepest = max(deepest, int(running.max()))
        depth = int(running[-1])
    return deepest


_OPEN = np.frombuffer(b"[{", dtype=np.uint8)
_CLOSE = np.frombuffer(b"]}", dtype=np.uint8)


def _refuse_duplicates(label):
    def build(pairs):
        result = {}
        for key, value in pairs:
            if key in result:
                raise ConfigError(f"{label}: duplicate key {key!r} in a JSON object")
            result[key] = value
        return result

    return build


def loads(data, label="config", max_bytes=MAX_JSON_BYTES, max_depth=MAX_JSON_DEPTH):
    """Parse ``data`` (bytes or str) as JSON under the bounds; errors name ``label``."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ConfigError(f"{label}: expected JSON text, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > max_bytes:
        raise ConfigError(f"{label}: {len(data)} bytes of JSON exceeds the limit of {max_bytes}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{label}: invalid UTF-8 at byte {e.start}") from None
    depth = _nesting_depth(data)
    if depth > max_depth:
        raise ConfigError(f"{label}: JSON nesting depth {depth} exceeds the limit of {max_depth}")
    try:
        return json.loads(text, object_pairs_hook=_refuse_duplicates(label))
    except ConfigError:
        raise
    except (ValueError, RecursionError) as e:
        raise ConfigError(f"{label}: invalid JSON: {e}") from None

