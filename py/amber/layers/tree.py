"""Small helpers over nested structures (lists, tuples, dicts) of values.

Layers and models take and return nested structures of arrays or symbolic tensors; these
helpers flatten and rebuild them in one fixed order. Dicts flatten in sorted key order, as
Keras's tree utilities do, so model.outputs and graph order match Keras for dict outputs.
"""


def sorted_keys(mapping):
    try:
        return sorted(mapping)
    except TypeError:
        return list(mapping)


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
        for key in sorted_keys(struct):
            _flatten_into(struct[key], out)
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
    # A module-level helper, not a nested recursive closure: such a closure refers to itself,
    # and the cycle would keep ``leaves`` (a model's outputs with their whole recorded graph)
    # alive until the garbage collector runs.
    return _pack(struct, iter(leaves))


def _pack(node, iterator):
    if isinstance(node, list):
        return [_pack(item, iterator) for item in node]
    if isinstance(node, tuple):
        return tuple(_pack(item, iterator) for item in node)
    if isinstance(node, dict):
        packed = {key: _pack(node[key], iterator) for key in sorted_keys(node)}
        return {key: packed[key] for key in node}
    return next(iterator)


def is_nested(struct):
    return isinstance(struct, (list, tuple, dict))
