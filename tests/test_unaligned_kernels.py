"""The kernels read operands at any address: arrays built 2 bytes (float32) or 4 bytes
(float64) off their alignment, as weights mapped from Keras-written files are, give numpy's
results on every ISA path, in every layout, for matmul, fused dense, the backward helpers and
the activations, and a misaligned ``out`` receives the result."""

import numpy as np
import pytest

native = pytest.importorskip("amber._native")


@pytest.fixture(params=native.supported_isas())
def isa(request):
    native.set_isa(request.param)
    yield request.param
    native.set_isa(None)


def misaligned(array, writeable=False):
    """A copy of ``array`` (C order) whose data starts half an element past an aligned
    address; read-only unless asked, like a view of a mapped file."""
    array = np.ascontiguousarray(array)
    buf = np.zeros(array.nbytes + 2 * array.itemsize, dtype=np.uint8)
    start = (-buf.ctypes.data) % array.itemsize + array.itemsize // 2
    raw = buf[start:start + array.nbytes]
    raw[:] = np.frombuffer(array.tobytes(), dtype=np.uint8)
    view = raw.view(array.dtype).reshape(array.shape)
    view.setflags(write=writeable)
    assert not view.flags.aligned and view.ctypes.data % array.itemsize != 0
    np.testing.assert_array_equal(view, array)
    return view


def close(got, want, k):
    """``got`` (computed in the operands' precision) against numpy's float64 result."""
    eps = np.finfo(got.dtype).eps
    scale = np.abs(want) + 1.0
    assert got.shape == want.shape
    assert np.all(np.abs(got - want) <= 16 * eps * np.sqrt(max(k, 1)) * scale)


SHAPES = [(1, 64, 40), (40, 64, 1), (3, 33, 17), (37, 300, 71), (150, 70, 260)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m,k,n", SHAPES)
def test_matmul_reads_misaligned_operands(isa, dtype, m, k, n):
    rng = np.random.default_rng(m * 1000 + n)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    want = a.astype(np.float64) @ b.astype(np.float64)
    ma, mb = misaligned(a), misaligned(b)
    close(native.matmul(ma, mb), want, k)
    # Transposed and sliced views of misaligned memory.
    close(native.matmul(misaligned(a.T.copy()).T, misaligned(b.T.copy()).T), want, k)
    wide = misaligned(np.concatenate([b, b], axis=1))
    close(native.matmul(ma, wide[:, ::2]), a.astype(np.float64) @ np.concatenate([b, b], axis=1)[:, ::2], k)
    # The results are bit-identical to the same operands aligned.
    np.testing.assert_array_equal(native.matmul(ma, mb), native.matmul(a, b))


@pytest.mark.parametrize("activation", ["linear", "relu", "sigmoid", "tanh"])
def test_dense_with_misaligned_weights_and_bias(isa, activation):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((9, 50)).astype(np.float32)
    w = rng.standard_normal((50, 33)).astype(np.float32)
    b = rng.standard_normal(33).astype(np.float32)
    z = x.astype(np.float64) @ w + b
    want = {"linear": z, "relu": np.maximum(z, 0), "sigmoid": 1 / (1 + np.exp(-z)), "tanh": np.tanh(z)}[activation]
    got = native.dense(misaligned(x), misaligned(w), misaligned(b), activation)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(got, native.dense(x, w, b, activation))


def test_misaligned_out_receives_the_product(isa):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((20, 30)).astype(np.float32)
    b = rng.standard_normal((30, 10)).astype(np.float32)
    out = misaligned(np.zeros((20, 10), np.float32), writeable=True)
    result = native.matmul(misaligned(a), b, out=out)
    assert result is out
    close(out, a.astype(np.float64) @ b, 30)


def test_backward_and_activations_read_misaligned_inputs(isa):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((12, 20)).astype(np.float32)
    w = rng.standard_normal((20, 7)).astype(np.float32)
    dz = rng.standard_normal((12, 7)).astype(np.float32)
    dx, dw, db = native.dense_grad(misaligned(x), misaligned(w), misaligned(dz))
    close(dx, dz.astype(np.float64) @ w.T, 7)
    close(dw, x.T.astype(np.float64) @ dz, 12)
    close(db, dz.astype(np.float64).sum(axis=0), 12)
    z = rng.standard_normal((4, 25)).astype(np.float32)
    np.testing.assert_allclose(native.activation("tanh", misaligned(z)), np.tanh(z), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(
        native.activation_grad("relu", misaligned(z), misaligned(dz[:4, :1].repeat(25, axis=1))),
        np.where(z > 0, dz[:4, :1].repeat(25, axis=1), 0),
        rtol=0, atol=0,
    )


def test_misaligned_operands_are_not_copied():
    """numpy reports its allocations to tracemalloc: a copy of a 16 MB misaligned weight
    matrix would show as a 16 MB peak during the call."""
    import tracemalloc

    rng = np.random.default_rng(11)
    w = misaligned(rng.standard_normal((2000, 2000)).astype(np.float32))
    x = rng.standard_normal((1, 2000)).astype(np.float32)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        got = native.dense(x, w, None, "linear")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    close(got, x.astype(np.float64) @ w, 2000)
    assert peak < w.nbytes // 8, f"peak {peak} bytes during the call: the weights were copied"
