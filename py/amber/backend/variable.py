"""``Variable``: a named, mutable numpy value that layers and optimizers own.

Values are never written in place: ``assign`` and friends bind a fresh array. That makes a
read-only memory-mapped view (what loaders hand over with ``_adopt``) safe to hold, gives
copy-on-write for free, and keeps arrays captured by a recorded graph unchanged.

The arrays a variable makes for itself start on 64-byte boundaries (``allocator.aligned``),
so the matmul kernels can read a Dense kernel in place with whole-cache-line loads.
"""

import contextlib
import threading

import numpy as np

from amber.backend import allocator, config
from amber.backend.operand import Operand

# Loaders build a model only to replace every value with stored weights; running the
# initializers first would cost more than the load itself (seconds for a 500 MB model).
_deferral = threading.local()


@contextlib.contextmanager
def deferred_initialization():
    """Within this block, a variable made from an initializer gets a zero-cost placeholder (a
    read-only broadcast of zero with the right shape and dtype) instead of running the
    initializer. On leaving the block, every variable that still holds its placeholder (nothing
    was adopted or assigned into it) runs its initializer, so no variable ends up with
    placeholder values."""
    outer = getattr(_deferral, "pending", None)
    pending = []
    _deferral.pending = pending
    try:
        yield
    finally:
        _deferral.pending = outer
        for variable, placeholder in pending:
            if variable._value is placeholder:
                variable._value = variable._initial_value(placeholder.shape, placeholder.dtype)


class Variable(Operand):
    __slots__ = (
        "_value", "_name", "_path", "_trainable", "_constraint", "_regularizer",
        "_initializer", "_autocast", "_aggregation", "_synchronization",
        "_overwrite_with_gradient", "__weakref__", "__dict__",
    )

    def __init__(self, initializer, shape=None, dtype=None, trainable=True, autocast=True,
                 aggregation="none", synchronization="auto", name=None, **kwargs):
        name = "variable" if name is None else name
        if not isinstance(name, str) or "/" in name:
            raise ValueError(f"Variable name must be a string without '/', got {name!r}")
        self._name = name
        self._path = name
        self._trainable = bool(trainable)
        self._autocast = bool(autocast)
        self._aggregation = aggregation or "none"
        self._synchronization = synchronization or "none"
        self._constraint = None
        self._regularizer = None
        self._overwrite_with_gradient = False
        if isinstance(initializer, str):
            from amber import initializers

            initializer = initializers.get(initializer)
        self._initializer = initializer if callable(initializer) else None
        if callable(initializer):
            if shape is None:
                raise ValueError(
                    f"Variable {name!r}: creating a variable from an initializer needs a shape"
                )
            dtype = config.standardize_dtype(dtype)
            shape = tuple(int(d) for d in shape)
            pending = getattr(_deferral, "pending", None)
            if pending is not None:
                value = np.broadcast_to(np.zeros((), dtype=dtype), shape)
                pending.append((self, value))
            else:
                value = self._initial_value(shape, dtype)
        else:
            value = _to_array(initializer, dtype)
            if shape is not None and tuple(shape) != value.shape:
                raise ValueError(
                    f"Variable {name!r}: initial value has shape {value.shape}, "
                    f"expected {tuple(shape)}"
                )
        self._value = value

    def _initial_value(self, shape, dtype):
        value = np.asarray(self._initializer(shape, dtype=dtype), dtype=dtype)
        if value.shape != tuple(shape):
            raise ValueError(
                f"Variable {self._name!r}: initializer returned shape {value.shape}, "
                f"expected {tuple(shape)}"
            )
        return allocator.aligned(value)

    # --- identity
    @property
    def name(self):
        return self._name

    @property
    def path(self):
        return self._path

    @path.setter
    def path(self, value):
        self._path = value

    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        self._trainable = bool(value)

    @property
    def constraint(self):
        return self._constraint

    @constraint.setter
    def constraint(self, value):
        self._constraint = value

    @property
    def regularizer(self):
        return self._regularizer

    @regularizer.setter
    def regularizer(self, value):
        self._regularizer = value

    @property
    def overwrite_with_gradient(self):
        return self._overwrite_with_gradient

    @overwrite_with_gradient.setter
    def overwrite_with_gradient(self, value):
        self._overwrite_with_gradient = bool(value)

    @property
    def aggregation(self):
        return self._aggregation

    @property
    def synchronization(self):
        return self._synchronization

    @property
    def initializer(self):
        return self._initializer

    # --- value
    @property
    def value(self):
        return self._value

    @property
    def shape(self):
        return self._value.shape

    @property
    def dtype(self):
        return config.dtype_name(self._value.dtype)

    @property
    def ndim(self):
        return self._value.ndim

    @property
    def size(self):
        return self._value.size

    def numpy(self):
        return self._value

    def assign(self, value):
        source = np.asarray(_plain(value), dtype=self._value.dtype)
        self._check_shape(source.shape)
        new = allocator.empty_aligned(source.shape, source.dtype)
        new[...] = source
        self._value = new
        return self

    def assign_add(self, value):
        delta = np.asarray(_plain(value))
        self._check_shape(np.broadcast_shapes(self._value.shape, delta.shape))
        out = allocator.empty_aligned(self._value.shape, self._value.dtype)
        self._value = np.add(self._value, delta, out=out, dtype=self._value.dtype)
        return self

    def assign_sub(self, value):
        delta = np.asarray(_plain(value))
        self._check_shape(np.broadcast_shapes(self._value.shape, delta.shape))
        out = allocator.empty_aligned(self._value.shape, self._value.dtype)
        self._value = np.subtract(self._value, delta, out=out, dtype=self._value.dtype)
        return self

    def _adopt(self, array):
        """Take ``array`` as the value without copying (loaders pass mapped read-only views)."""
        if not isinstance(array, np.ndarray):
            raise TypeError(f"Variable {self._path!r}: _adopt expects a numpy array, got {type(array).__name__}")
        if array.shape != self._value.shape:
            raise ValueError(
                f"Variable {self._path!r}: cannot load a value of shape {array.shape} into a "
                f"variable of shape {self._value.shape}"
            )
        if array.dtype != self._value.dtype:
            raise ValueError(
                f"Variable {self._path!r}: cannot load a {array.dtype.name} value into a "
                f"{self._value.dtype.name} variable (shape {self._value.shape})"
            )
        self._value = array

    def _replace(self, array):
        """Bind ``array`` (a fresh array of this variable's shape and dtype that the caller
        computed and will never write again) without the copy ``assign`` makes: the optimizers'
        per-step path. Earlier values stay untouched, so copy-on-write still holds."""
        if array.shape != self._value.shape or array.dtype != self._value.dtype:
            raise ValueError(
                f"Variable {self._path!r}: cannot replace a {self._value.dtype.name} value of "
                f"shape {self._value.shape} with a {array.dtype.name} array of shape {array.shape}"
            )
        self._value = array

    def _check_shape(self, shape):
        if tuple(shape) != self._value.shape:
            raise ValueError(
                f"Variable {self._path!r}: cannot assign a value of shape {tuple(shape)} to a "
                f"variable of shape {self._value.shape}"
            )

    def __repr__(self):
        return (f"<Variable path={self._path}, shape={self._value.shape}, "
                f"dtype={self._value.dtype.name}, value={self._value!r}>")


def _plain(value):
    if isinstance(value, Operand):
        return value.numpy()
    return value


def _to_array(value, dtype):
    """Keras's conversion of an initial value: Python floats become floatx."""
    value = _plain(value)
    if dtype is not None:
        return allocator.aligned(np.array(value, dtype=config.standardize_dtype(dtype)))
    if isinstance(value, (np.ndarray, np.generic)):
        return allocator.aligned(np.array(value))
    array = np.array(value)
    if array.dtype == np.float64:
        array = array.astype(config.floatx())
    elif array.dtype == np.int64 and not isinstance(value, np.ndarray):
        array = array.astype("int32")
    return allocator.aligned(array)
