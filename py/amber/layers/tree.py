"""Small helpers over nested structures (lists, tuples, dicts) of values.

Layers and models take and return nested structures of arrays or symbolic tensors; these
helpers flatten and rebuild them in one fixed order (dicts by insertion order, like Keras
does for functional inputs and outputs).
"""


def flatten(struct):
    """All leaves of ``struct`` in order; ``None`` counts as a leaf."""
    out = []
    _flatten_into(struct, out)
    return out


def _flatten_into(struct, out):
    if isinstance(struct, (list, tuple)):
        for item in struct:
            _flatten_into(item, out)
    elif isinstance(struct, dict):
        for item in struct.values():
            _flatten_into(item, out)
    else:
        out.append(struct)


def map_structure(fn, struct):
    """The same structure with ``fn`` applied to every leaf."""
    if isinstance(struct, list):
        return [map_structure(fn, item) for item in struct]
    if isinstance(struct, tuple):
        return tuple(map_structure(fn, item) for item in struct)
    if isinstance(struct, dict):
        return {key: map_structure(fn, item) for key, item in struct.items()}
    return fn(struct)


def pack_like(struct, leaves):
    """Rebuild ``struct``'s shape from a flat list of leaves (inverse of ``flatten``)."""
    iterator = iter(leaves)
    packed = map_structure(lambda _: next(iterator), struct)
    return packed


def is_nested(struct):
    return isinstance(struct, (list, tuple, dict))
