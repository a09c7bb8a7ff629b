"""Thread control for the BLAS library inside numpy, used around small matrix products.

OpenBLAS splits even tiny products across threads. On a busy machine the handoff costs far
more than the product: a (32, 784) @ (784, 64) float32 product measured 3-30 ms with two
threads against 0.15 ms with one, on a 2-core host under load. ``single_threaded()`` runs a
block on one BLAS thread and restores the previous count. When numpy's BLAS is not an
OpenBLAS that exports the thread setters, it does nothing.
"""

import contextlib
import ctypes
import glob
import os

import numpy as np

_SETTER_NAMES = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
                 "openblas_set_num_threads64_", "openblas_set_num_threads")
_GETTER_NAMES = ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads",
                 "openblas_get_num_threads64_", "openblas_get_num_threads")


def _find_openblas():
    """(set_num_threads, get_num_threads) of the OpenBLAS numpy loaded, or (None, None)."""
    numpy_dir = os.path.dirname(np.__file__)
    candidates = glob.glob(os.path.join(numpy_dir, os.pardir, "numpy.libs", "*openblas*"))
    candidates += glob.glob(os.path.join(numpy_dir, ".dylibs", "*openblas*"))
    for path in candidates:
        try:
            # the library is already loaded by numpy; this returns the same handle
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        setter = next((getattr(lib, n) for n in _SETTER_NAMES if hasattr(lib, n)), None)
        getter = next((getattr(lib, n) for n in _GETTER_NAMES if hasattr(lib, n)), None)
        if setter is not None and getter is not None:
            setter.argtypes = [ctypes.c_int]
            setter.restype = None
            getter.argtypes = []
            getter.restype = ctypes.c_int
            return setter, getter
    return None, None


_set_threads, _get_threads = _find_openblas()


def available():
    return _set_threads is not None


@contextlib.contextmanager
def single_threaded():
    if _set_threads is None:
        yield
        return
    previous = _get_threads()
    if previous <= 1:
        yield
        return
    _set_threads(1)
    try:
        yield
    finally:
        _set_threads(previous)
