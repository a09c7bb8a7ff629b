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


def result_type(*dtypes):
    """The dtype numpy promotes these to; ``float`` Python scalars count as floatx."""
    resolved = [_FLOATX if d is float else d for d in dtypes]
    if not resolved:
        return _FLOATX
    return np.result_type(*resolved).name
