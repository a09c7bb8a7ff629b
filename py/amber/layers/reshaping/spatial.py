"""Argument forms shared by the padding and cropping layers."""

import numpy as np


def pairs(value, rank, name):
    """Keras's accepted forms: an int (same before/after everywhere), ``rank`` ints (same
    before/after per axis) or ``rank`` (before, after) pairs — as a tuple of pairs."""
    if isinstance(value, (int, np.integer)):
        result = ((int(value), int(value)),) * rank
    elif rank == 1 and len(value) == 2 and all(isinstance(v, (int, np.integer)) for v in value):
        result = ((int(value[0]), int(value[1])),)
    elif len(value) == rank and all(isinstance(v, (int, np.integer)) for v in value):
        result = tuple((int(v), int(v)) for v in value)
    elif len(value) == rank and all(isinstance(v, (list, tuple)) and len(v) == 2 for v in value):
        result = tuple((int(a), int(b)) for a, b in value)
    else:
        raise ValueError(f"`{name}` should be an int, a tuple of {rank} ints or a tuple of {rank} tuples of 2 "
                         f"ints. Received: {name}={value}")
    if any(v < 0 for pair in result for v in pair):
        raise ValueError(f"`{name}` cannot contain negative values. Received: {name}={value}")
    return result


def spatial_axes(rank, data_format):
    first = 2 if data_format == "channels_first" else 1
    return tuple(range(first, first + rank))
