"""Global numeric settings (float type, fuzz factor, image layout) and dtype names."""

import numpy as np

_FLOATX = "float32"
_EPSILON = 1e-7
_IMAGE_DATA_FORMAT = "channels_last"

# Names Keras accepts beside numpy's own.
_ALIASES = {"float": "float32", "int": "int64", "double": "float64", "half": "float16"}


def backend():
    """The name of the array backend: amber computes with numpy (and its Rust kernels)."""
    return "numpy"


def floatx():
    return _FLOATX


def set_floatx(value):
    global _FLOATX
    value = standardize_dtype(value)
    if value not in ("float16", "float32", "float64"):
        raise ValueError(f"Unknown floatx type: {value!r}; expected float16, float32 or float64")
    _FLOATX = value


def epsilon():
    return _EPSILON


def set_epsilon(value):
    global _EPSILON
    _EPSILON = float(value)


def image_data_format():
    return _IMAGE_DATA_FORMAT


def set_image_data_format(data_format):
    global _IMAGE_DATA_FORMAT
    data_format = str(data_format).lower()
    if data_format not in ("channels_first", "channels_last"):
        raise ValueError(
            f"data_format must be 'channels_first' or 'channels_last', got {data_format!r}"
        )
    _IMAGE_DATA_FORMAT = data_format


def standardize_dtype(dtype):
    """The canonical name of a dtype (``None`` means floatx), e.g. ``"float32"``."""
    if dtype is None:
        return _FLOATX
    if isinstance(dtype, str):
        name = _ALIASES.get(dtype, dtype)
    elif hasattr(dtype, "name") and isinstance(dtype.name, str):
        # numpy dtypes, and Keras DTypePolicy-like objects that carry a compute dtype name
        name = dtype.name
    else:
        name = dtype
    try:
        return np.dtype(name).name
    except TypeError:
        raise ValueError(f"Invalid dtype: {dtype!r}") from None


_DTYPE_NAMES = {}


def dtype_name(dtype):
    """``np.dtype.name``, memoized: numpy computes the name string on every access, and
    ``Variable.dtype`` / ``Tensor.dtype`` are read on hot paths."""
    name = _DTYPE_NAMES.get(dtype)
    if name is None:
        name = _DTYPE_NAMES[dtype] = np.dtype(dtype).name
    return name


def is_float_dtype(dtype):
    return np.issubdtype(np.dtype(standardize_dtype(dtype)), np.floating)


def is_int_dtype(dtype):
    return np.issubdtype(np.dtype(standardize_dtype(dtype)), np.integer)


def division_dtype(dtype1, dtype2):
    """The dtype of ``x1 / x2``, each operand's dtype given, or None for a Python int or float
    (a weak type): Keras's rule (``result_type(x1, x2, float)``), so integers, bools and
    Python scalars alone give floatx where numpy gives float64, a float dtype wins over
    integers (``float16 / int32`` is float16), and float16 with bfloat16 gives float32.

    Unlike Keras, which narrows every 64-bit result to 32 bits, float64 and complex128 stay
    64-bit, as in every amber op (amber computes float64 models and gradients in float64)."""
    key = (dtype1, dtype2, _FLOATX)
    name = _DIVISION_DTYPES.get(key)
    if name is None:
        name = _DIVISION_DTYPES[key] = _division_dtype(dtype1, dtype2)
    return name


_DIVISION_DTYPES = {}  # memo of division_dtype: it runs on every integer division


def _division_dtype(dtype1, dtype2):
    inexact = {standardize_dtype(d) for d in (dtype1, dtype2) if d is not None}
    inexact = {name for name in inexact if name.startswith(("float", "bfloat", "complex"))}
    if not inexact:
        return _FLOATX
    if len(inexact) == 1:
        return inexact.pop()
    if inexact == {"float16", "bfloat16"}:
        return "float32"
    # bfloat16 ranks below every other float and complex type it meets here.
    return np.result_type(*(inexact - {"bfloat16"})).name


def result_type(*dtypes):
    """The dtype numpy promotes these to; ``float`` Python scalars count as floatx."""
    resolved = [_FLOATX if d is float else d for d in dtypes]
    if not resolved:
        return _FLOATX
    return np.result_type(*resolved).name
