"""Arrays amber keeps start on 64-byte boundaries (``amber.backend.allocator``), so the matmul
kernels read a Dense kernel in place with whole-cache-line loads; and a kernel that does not
(a plain numpy array, a view mapped from a Keras file) still gives numpy's result on every path
the kernels choose for it (copied, read in place, or its first columns split off)."""

import numpy as np
import pytest

import amber as keras
from amber import _native
from amber.backend import allocator


def offset(array):
    return allocator.address(array) % allocator.ALIGNMENT


@pytest.mark.parametrize("shape,dtype", [((784, 64), np.float32), ((3,), np.float64), ((0, 5), np.float32),
                                         ((17, 3, 5), np.int32), ((), np.float32)])
def test_empty_aligned_has_the_shape_and_boundary(shape, dtype):
    array = allocator.empty_aligned(shape, dtype)
    assert array.shape == shape and array.dtype == dtype
    assert array.flags.c_contiguous and array.flags.writeable
    if array.size:  # an empty array has no data to place
        assert offset(array) == 0


def test_aligned_copies_only_what_is_off_a_boundary():
    raw = np.arange(300, dtype=np.float32)
    start = (-allocator.address(raw) % 64) // 4
    on, off = raw[start:start + 200], raw[start + 4:start + 204]
    assert allocator.aligned(on) is on
    copy = allocator.aligned(off)
    assert copy is not off and offset(copy) == 0
    np.testing.assert_array_equal(copy, off)
    strided = raw[start:start + 200:2]
    assert allocator.aligned(strided).flags.c_contiguous
    np.testing.assert_array_equal(allocator.aligned(strided), strided)


def _weights_offsets(model):
    # Values under a cache line may sit anywhere: the kernels never read them as vectors.
    return [offset(v.value) for v in model.weights if v.value.nbytes >= allocator.ALIGNMENT]


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "rmsprop", "adamw", "lion", "adagrad", "nadam"])
def test_variables_stay_aligned_through_training_and_assignment(optimizer):
    model = keras.Sequential([keras.Input((30,)), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(48), keras.layers.Dense(10)])
    assert set(_weights_offsets(model)) == {0}
    model.compile(optimizer, "mse")
    rng = np.random.default_rng(0)
    x, y = rng.random((64, 30), np.float32), rng.random((64, 10), np.float32)
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    assert set(_weights_offsets(model)) == {0}
    kernel = model.layers[0].kernel
    raw = rng.random(30 * 64 + 32).astype(np.float32)
    misplaced = raw[(-allocator.address(raw) % 64) // 4 + 1:][:30 * 64].reshape(30, 64)
    assert offset(misplaced) != 0
    kernel.assign(misplaced)
    assert offset(kernel.value) == 0
    np.testing.assert_array_equal(kernel.value, misplaced)
    kernel.assign_add(np.ones((30, 64), np.float32))
    assert offset(kernel.value) == 0
    np.testing.assert_array_equal(kernel.value, misplaced + 1)
    kernel.assign_sub(np.ones((30, 64), np.float32))
    assert offset(kernel.value) == 0


def _placed(values, byte_offset):
    raw = np.empty(values.nbytes + 128, np.uint8)
    start = -allocator.address(raw) % 64 + byte_offset
    array = raw[start:start + values.nbytes].view(values.dtype).reshape(values.shape)
    array[...] = values
    return array


# (batch, in, out): a kernel one panel wide (read in place when aligned, copied when not at
# larger batches), a small kernel read by many row panels, and wide kernels read by a few rows
# (the first columns split off when misaligned), one of them over 1 MB (streamed).
SHAPES = [(32, 784, 64), (1, 784, 64), (24, 100, 64), (8, 512, 1024), (16, 300, 256), (12, 1100, 320), (3, 64, 10)]


@pytest.mark.parametrize("batch,din,dout", SHAPES)
@pytest.mark.parametrize("byte_offset", [0, 4, 16, 48])
def test_dense_matches_numpy_wherever_the_kernel_starts(batch, din, dout, byte_offset):
    rng = np.random.default_rng(batch * 7 + dout)
    x = rng.standard_normal((batch, din)).astype(np.float32)
    values = rng.standard_normal((din, dout)).astype(np.float32)
    bias = rng.standard_normal(dout).astype(np.float32)
    w = _placed(values, byte_offset)
    assert offset(w) == byte_offset
    want = np.maximum(x.astype(np.float64) @ values.astype(np.float64) + bias, 0)
    got = _native.dense(x, w, bias, "relu")
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.sqrt(din))
    # Exactly the bits of the same kernel on a boundary: the placement changes how B is read,
    # never the order in which any output is summed.
    np.testing.assert_array_equal(got, _native.dense(x, _placed(values, 0), bias, "relu"))
