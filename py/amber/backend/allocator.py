"""How amber allocates arrays: glibc's malloc told to keep and reuse the blocks that a forward
pass frees, instead of handing them back to the kernel and faulting them in again; and arrays
amber keeps (variable values) aligned to cache lines (``empty_aligned``, ``aligned``).

glibc serves blocks from 128 KiB up with a fresh ``mmap`` until it has seen one of that size
freed, then raises the limit to it (at most 32 MiB), and trims its heap whenever twice that
lies free at the top. A forward pass allocates and frees feature maps of many sizes, so it
keeps falling outside those adaptive limits: each new array is faulted in page by page and
zeroed by the kernel. Measured on MobileNetV2 (batch 8, 96x96 input): about 1,800 page faults
per round of six arrays of 1-12 MiB, and its forward pass ran in 25 ms instead of 34 ms with
the limits fixed. They are fixed here at glibc's own adaptive maxima (``mmap`` from 32 MiB,
trim above 64 MiB free), so a process keeps at most 64 MiB more free heap than glibc would
already keep after some use.

Nothing is changed when the user chose for themselves (``MALLOC_MMAP_THRESHOLD_``,
``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_TOP_PAD_`` or ``MALLOC_MMAP_MAX_`` in the environment), when
``AMBER_MALLOC_TUNING=0``, or on a C library that is not glibc (musl, macOS)."""

import ctypes
import math
import os
import sys

import numpy as np

# mallopt's parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 64 << 20

_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")

# Whether this process's malloc was tuned (set once, by ``tune``).
applied = False


def tune():
    """Fixes glibc's thresholds (see the module docstring) unless that is not ours to do;
    returns whether they were set."""
    global applied
    if applied:
        return True
    if (not sys.platform.startswith("linux") or os.environ.get("AMBER_MALLOC_TUNING", "1") == "0"
            or any(name in os.environ for name in _USER_SETTINGS)):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # glibc only: raises AttributeError elsewhere
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    applied = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return applied


# Arrays amber keeps (variable values) start on this boundary: the matmul kernels read a Dense
# kernel in place with vector loads, and a load that straddles two cache lines costs them up to
# 1.8x (amber-core `gemm::b_aligned`). numpy itself only aligns to 16 bytes.
ALIGNMENT = 64


def address(array):
    """The address of ``array``'s first element."""
    return array.__array_interface__["data"][0]


def empty_aligned(shape, dtype):
    """An uninitialised C-ordered array whose data starts on an ``ALIGNMENT`` boundary."""
    dtype = np.dtype(dtype)
    shape = tuple(shape)
    nbytes = math.prod(shape) * dtype.itemsize
    raw = np.empty(nbytes + ALIGNMENT, np.uint8)
    start = -address(raw) % ALIGNMENT
    return raw[start:start + nbytes].view(dtype).reshape(shape)


def aligned(array):
    """``array`` itself when it is C-ordered and starts on an ``ALIGNMENT`` boundary (or is
    too small to matter), else an aligned copy."""
    if array.nbytes < ALIGNMENT or (array.flags.c_contiguous and address(array) % ALIGNMENT == 0):
        return array
    out = empty_aligned(array.shape, array.dtype)
    out[...] = array
    return out
