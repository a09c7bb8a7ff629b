"""Operators shared by ``Variable`` and ``Tensor``: each one is an ``amber.ops`` call, so the
gradient tape sees it. numpy is told to defer (``__array_ufunc__``) so that
``ndarray + Tensor`` reaches our reflected operators instead of building an object array."""


def _ops():
    # amber.ops imports this package; resolve it at call time to avoid the cycle.
    from amber import ops

    return ops


class Operand:
    __slots__ = ()
    # Higher than ndarray's so numpy's binary operators return NotImplemented for us.
    __array_priority__ = 100

    # --- arithmetic
    def __add__(self, other):
        return _ops().add(self, other)

    def __radd__(self, other):
        return _ops().add(other, self)

    def __sub__(self, other):
        return _ops().subtract(self, other)

    def __rsub__(self, other):
        return _ops().subtract(other, self)

    def __mul__(self, other):
        return _ops().multiply(self, other)

    def __rmul__(self, other):
        return _ops().multiply(other, self)

    def __truediv__(self, other):
        return _ops().divide(self, other)

    def __rtruediv__(self, other):
        return _ops().divide(other, self)

    def __floordiv__(self, other):
        return _ops().floor_divide(self, other)

    def __rfloordiv__(self, other):
        return _ops().floor_divide(other, self)

    def __mod__(self, other):
        return _ops().mod(self, other)

    def __rmod__(self, other):
        return _ops().mod(other, self)

    def __pow__(self, other):
        return _ops().power(self, other)

    def __rpow__(self, other):
        return _ops().power(other, self)

    def __matmul__(self, other):
        return _ops().matmul(self, other)

    def __rmatmul__(self, other):
        return _ops().matmul(other, self)

    def __neg__(self):
        return _ops().negative(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return _ops().abs(self)

    # --- comparisons and logic (not differentiable: plain arrays)
    def __eq__(self, other):
        return _ops().equal(self, other)

    def __ne__(self, other):
        return _ops().not_equal(self, other)

    def __lt__(self, other):
        return _ops().less(self, other)

    def __le__(self, other):
        return _ops().less_equal(self, other)

    def __gt__(self, other):
        return _ops().greater(self, other)

    def __ge__(self, other):
        return _ops().greater_equal(self, other)

    def __and__(self, other):
        return _ops().logical_and(self, other)

    def __rand__(self, other):
        return _ops().logical_and(other, self)

    def __or__(self, other):
        return _ops().logical_or(self, other)

    def __ror__(self, other):
        return _ops().logical_or(other, self)

    def __invert__(self):
        return _ops().logical_not(self)

    # Objects compared with == are not hashable by value; keep identity hashing (tapes and
    # optimizers key variables by identity).
    __hash__ = object.__hash__

    # --- indexing and views
    def __getitem__(self, key):
        return _ops().get_item(self, key)

    @property
    def T(self):
        return _ops().transpose(self)

    @property
    def ndim(self):
        return len(self.shape)

    def __len__(self):
        shape = self.shape
        if not shape:
            raise TypeError("len() of a 0-d tensor")
        return shape[0]

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    # --- conversion to Python / numpy
    def __array__(self, dtype=None, copy=None):
        value = self.numpy()
        if dtype is not None and value.dtype != dtype:
            return value.astype(dtype)
        if copy:
            return value.copy()
        return value

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        """numpy ufuncs on our objects: known ones go through ``amber.ops`` (differentiable),
        the rest run on the plain values."""
        ops = _ops()
        if method == "__call__" and not kwargs:
            op = ops._UFUNC_OPS.get(ufunc.__name__)
            if op is not None:
                return op(*inputs)
        plain = [ops.convert_to_numpy(x) if isinstance(x, Operand) else x for x in inputs]
        return getattr(ufunc, method)(*plain, **kwargs)

    def __float__(self):
        return float(self.numpy())

    def __int__(self):
        return int(self.numpy())

    def __index__(self):
        return int(self.numpy())

    def __bool__(self):
        return bool(self.numpy())

    def item(self):
        return self.numpy().item()

    def tolist(self):
        return self.numpy().tolist()

    def astype(self, dtype):
        return _ops().cast(self, dtype)
