"""amber.backend: mirrors keras.backend, plus the value types amber computes with
(``Variable``, ``Tensor``, ``GradientTape``), the matmul call site (``linalg``) and the
global random generator (``random``)."""

from amber.backend import linalg  # noqa: F401
from amber.backend import random  # noqa: F401
from amber.backend.autodiff import GradientTape, Tensor, is_recording  # noqa: F401
from amber.backend.config import (  # noqa: F401
    backend,
    epsilon,
    floatx,
    image_data_format,
    is_float_dtype,
    is_int_dtype,
    result_type,
    set_epsilon,
    set_floatx,
    set_image_data_format,
    standardize_dtype,
)
from amber.backend.operand import Operand
from amber.backend.variable import Variable  # noqa: F401


def is_tensor(x):
    """True for values ops compute with natively: numpy arrays, Tensors and Variables."""
    import numpy as np

    return isinstance(x, (np.ndarray, Operand))


def is_keras_tensor(x):
    """True for the symbolic tensors of functional model construction."""
    try:
        from amber.layers import KerasTensor
    except ImportError:
        return False
    return isinstance(x, KerasTensor)


def convert_to_numpy(x):
    from amber import ops

    return ops.convert_to_numpy(x)


def convert_to_tensor(x, dtype=None):
    from amber import ops

    return ops.convert_to_tensor(x, dtype=dtype)


def clear_session(free_memory=True):
    """Resets the state amber keeps across models, as ``keras.backend.clear_session`` does:
    the counters behind auto-generated layer and operation names (the next ``Dense()`` is
    ``dense`` again). ``free_memory`` also runs Python's garbage collector."""
    from amber.layers import layer

    layer.reset_name_counts()
    if free_memory:
        import gc

        gc.collect()


__all__ = [
    "GradientTape", "Tensor", "Variable", "backend", "clear_session", "convert_to_numpy", "convert_to_tensor",
    "epsilon", "floatx", "image_data_format", "is_float_dtype", "is_int_dtype",
    "is_keras_tensor", "is_recording", "is_tensor", "linalg", "random", "result_type",
    "set_epsilon", "set_floatx", "set_image_data_format", "standardize_dtype",
]
