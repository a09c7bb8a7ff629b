"""Reverse-mode automatic differentiation.

While a ``GradientTape`` records, an op whose inputs include a watched value returns a
``Tensor``: its value, the inputs it was computed from (its parents) and a ``backward``
closure mapping the output gradient to one gradient per input. ``tape.gradient`` walks that
graph once in reverse topological order. Outside a tape nothing is recorded and ops return
plain numpy arrays, so inference and metric code pay nothing for autodiff.
"""

import threading

import numpy as np

from amber.backend.config import dtype_name
from amber.backend.operand import Operand

# The tapes currently recording, innermost last. Ops test this list's truthiness on every
# call, so it is a plain module-level list; each tape only watches ops of the thread that
# opened it, so inference in another thread is not recorded.
_recording = []


def is_recording():
    return bool(_recording)


class Tensor(Operand):
    """A value produced by a recorded op: numpy data plus the graph edge back to its inputs."""

    __slots__ = ("value", "_parents", "_backward", "__weakref__")

    def __init__(self, value, parents=(), backward=None):
        self.value = value
        # (input position, input object) for each differentiable input of the op.
        self._parents = parents
        self._backward = backward

    @property
    def shape(self):
        return self.value.shape

    @property
    def dtype(self):
        return dtype_name(self.value.dtype)

    @property
    def size(self):
        return self.value.size

    def numpy(self):
        return self.value

    def __repr__(self):
        return f"<Tensor shape={self.value.shape} dtype={self.value.dtype.name}\n{self.value!r}>"


_variable_class = []  # filled on first use: variable.py imports this module


def _is_variable(x):
    if not _variable_class:
        from amber.backend.variable import Variable

        _variable_class.append(Variable)
    return isinstance(x, _variable_class[0])


def differentiable_input(x):
    """``x`` itself if gradients may flow into it under the active tapes, else ``None``."""
    if type(x) is Tensor:
        return x
    thread = threading.get_ident()
    for tape in _recording:
        if tape._thread == thread and tape._watches(x):
            return x
    return None


def record(value, inputs, backward):
    """Wrap an op's output in a ``Tensor`` if any of ``inputs`` is differentiable.

    ``backward(g)`` returns one gradient (or ``None``) per entry of ``inputs``; the walk sums
    each down to its input's shape, which undoes broadcasting.
    """
    parents = []
    for position, x in enumerate(inputs):
        if differentiable_input(x) is not None:
            parents.append((position, x))
    if not parents:
        return value
    return Tensor(value, tuple(parents), backward)


def value_of(x):
    """The numpy value behind a Tensor, Variable or array-like."""
    if type(x) is Tensor:
        return x.value
    if isinstance(x, Operand):
        return x.numpy()
    return x


def unbroadcast(grad, shape):
    """Sum ``grad`` down to ``shape``: the adjoint of numpy broadcasting."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    squashed = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if squashed:
        grad = grad.sum(axis=squashed, keepdims=True)
    return grad.reshape(shape)


class GradientTape:
    """Records differentiable ops run inside its ``with`` block.

    Trainable Variables are watched automatically (unless ``watch_accessed_variables=False``);
    ``watch(x)`` adds non-trainable Variables, Tensors and numpy arrays (arrays are tracked by
    identity, so pass the same object to ``gradient``).
    """

    def __init__(self, persistent=False, watch_accessed_variables=True):
        self.persistent = persistent
        self._auto_watch = watch_accessed_variables
        self._watched_ids = set()
        self._watched_refs = []  # keeps watched objects alive so their ids stay unique
        self._thread = threading.get_ident()

    def __enter__(self):
        self._thread = threading.get_ident()
        _recording.append(self)
        return self

    def __exit__(self, *exc):
        # Remove this tape even if inner tapes were left open by an exception.
        for i in range(len(_recording) - 1, -1, -1):
            if _recording[i] is self:
                del _recording[i:]
                break
        return False

    def watch(self, x):
        for item in x if isinstance(x, (list, tuple)) else (x,):
            if id(item) not in self._watched_ids:
                self._watched_ids.add(id(item))
                self._watched_refs.append(item)

    def stop_recording(self):
        return _Paused(self)

    def reset(self):
        self._watched_ids.clear()
        self._watched_refs.clear()

    def _watches(self, x):
        if id(x) in self._watched_ids:
            return True
        return self._auto_watch and getattr(x, "trainable", False) and _is_variable(x)

    def gradient(self, target, sources, output_gradients=None, unconnected_gradients=None):
        """d(sum of target * output_gradients)/d(source) for each source, as numpy arrays.

        Returns a list for a list/tuple of sources, else a single array; ``None`` for a
        source the target does not depend on (or zeros if
        ``unconnected_gradients="zero"``).
        """
        single = not isinstance(sources, (list, tuple))
        source_list = [sources] if single else list(sources)
        grads = backpropagate(target, source_list, output_gradients)
        if unconnected_gradients in ("zero", "ZERO") or str(unconnected_gradients).endswith("ZERO"):
            grads = [
                np.zeros(np.shape(value_of(s)), dtype=np.asarray(value_of(s)).dtype)
                if g is None else g
                for g, s in zip(grads, source_list)
            ]
        return grads[0] if single else grads


class _Paused:
    """Context manager that suspends one tape's recording (``tape.stop_recording()``)."""

    def __init__(self, tape):
        self._tape = tape
        self._position = None

    def __enter__(self):
        if self._tape in _recording:
            self._position = _recording.index(self._tape)
            _recording.remove(self._tape)

    def __exit__(self, *exc):
        if self._position is not None:
            _recording.insert(self._position, self._tape)
        return False


def _topological_order(target):
    """Tensors reachable from ``target``, each after all the Tensors that consume it."""
    order = []
    visited = {id(target)}
    # Iterative DFS (deep models would overflow Python's recursion limit).
    stack = [(target, iter(target._parents))]
    while stack:
        node, pending = stack[-1]
        advanced = False
        for _, parent in pending:
            if type(parent) is Tensor and id(parent) not in visited:
                visited.add(id(parent))
                stack.append((parent, iter(parent._parents)))
                advanced = True
                break
        if not advanced:
            stack.pop()
            order.append(node)
    order.reverse()
    return order


def backpropagate(target, sources, output_gradients=None):
    """Gradients of ``target`` with respect to each of ``sources`` (``None`` if unconnected)."""
    wanted = {id(s) for s in sources}
    if type(target) is not Tensor:
        # A target that no recorded op produced depends on nothing but itself.
        grads = []
        for s in sources:
            if s is target:
                value = np.asarray(value_of(s))
                seed = np.ones_like(value) if output_gradients is None else np.asarray(output_gradients)
                grads.append(seed.astype(value.dtype, copy=False))
            else:
                grads.append(None)
        return grads

    value = target.value
    if output_gradients is None:
        seed = np.ones_like(value)
    else:
        seed = np.broadcast_to(np.asarray(value_of(output_gradients), dtype=value.dtype), value.shape)
    accumulated = {id(target): seed}
    found = {}
    for node in _topological_order(target):
        grad = accumulated.pop(id(node), None)
        if grad is None:
            continue
        if id(node) in wanted:
            found[id(node)] = grad
        if node._backward is None:  # a leaf Tensor made to differentiate from (no inputs)
            continue
        parent_grads = node._backward(grad)
        for position, parent in node._parents:
            pgrad = parent_grads[position]
            if pgrad is None:
                continue
            if type(pgrad) is not np.ndarray:
                pgrad = np.asarray(pgrad)
            shape = _shape_of(parent)
            if pgrad.shape != shape:
                pgrad = unbroadcast(pgrad, shape)
            key = id(parent)
            previous = accumulated.get(key)
            accumulated[key] = pgrad if previous is None else previous + pgrad

    results = []
    for s in sources:
        grad = found.get(id(s))
        if grad is None:
            grad = accumulated.get(id(s))
        if grad is not None:
            dtype = _dtype_of(s)
            if dtype.kind in "fc" and grad.dtype != dtype:
                grad = grad.astype(dtype)
        results.append(grad)
    return results


def _shape_of(x):
    # The hot case first: Tensors and Variables know their shape without a conversion.
    if type(x) is Tensor:
        return x.value.shape
    value = x.numpy() if isinstance(x, Operand) else x
    return value.shape if type(value) is np.ndarray else np.shape(value)


def _dtype_of(x):
    value = x.value if type(x) is Tensor else (x.numpy() if isinstance(x, Operand) else x)
    return value.dtype if type(value) is np.ndarray else np.asarray(value).dtype
