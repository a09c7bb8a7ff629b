"""Small data helpers Keras exposes in keras.utils."""

import random as _py_random

import numpy as np


def set_random_seed(seed):
    """Seed every generator amber draws from (Python's, numpy's legacy one and amber's own)."""
    if not isinstance(seed, (int, np.integer)):
        raise ValueError(f"Expected `seed` argument to be an integer. Received: seed={seed} (of type {type(seed)})")
    from amber.backend import random

    _py_random.seed(int(seed))
    np.random.seed(int(seed) % (2**32))
    random.set_seed(int(seed))


def to_categorical(x, num_classes=None):
    """One-hot rows for integer class labels (a trailing axis of size 1 is folded in)."""
    x = np.asarray(x)
    if x.dtype.kind == "f":
        if not np.all(np.equal(np.mod(x, 1), 0)):
            raise ValueError("to_categorical expects integer class labels.")
    x = x.astype("int64")
    shape = x.shape
    if shape and shape[-1] == 1 and len(shape) > 1:
        shape = shape[:-1]
    x = x.reshape(-1)
    if x.size and x.min() < 0:
        raise ValueError(f"to_categorical expects non-negative labels, got {x.min()}")
    if num_classes is None:
        num_classes = int(x.max()) + 1 if x.size else 0
    if x.size and x.max() >= num_classes:
        raise ValueError(f"Label {int(x.max())} is out of range for num_classes={num_classes}")
    out = np.zeros((x.shape[0], num_classes), dtype="float32")
    out[np.arange(x.shape[0]), x] = 1.0
    return out.reshape(shape + (num_classes,))


def normalize(x, axis=-1, order=2):
    x = np.asarray(x)
    norm = np.linalg.norm(x, ord=order, axis=axis, keepdims=True)
    norm[norm == 0] = 1
    return x / norm
