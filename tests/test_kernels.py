"""amber._native matmul kernels against numpy: every ISA path this CPU has, random and edge
shapes, any layout (transposed, sliced, Fortran-ordered), float32 and float64, the fused Dense
epilogue against numpy's separate ops, and the backward helpers against numpy's products."""

import math
import platform

import numpy as np
import pytest

native = pytest.importorskip("amber._native")

ISAS = native.supported_isas()


@pytest.fixture(params=ISAS)
def isa(request):
    native.set_isa(request.param)
    yield request.param
    native.set_isa(None)


def tolerance(dtype, k):
    """Rounding of a k-term dot product grows with k; scale by the operands' magnitudes."""
    eps = np.finfo(dtype).eps
    return 4 * eps * math.sqrt(max(k, 1)) * 4 + eps


def assert_product(got, a, b, extra=None):
    want = a.astype(np.float64) @ b.astype(np.float64)
    scale = np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64) + 1.0
    tol = tolerance(got.dtype, a.shape[1])
    err = np.abs(got.astype(np.float64) - want) / scale
    assert got.shape == want.shape
    assert err.size == 0 or err.max() <= tol, f"max scaled error {err.max()} > {tol}"


SHAPES = [(1, 1, 1), (1, 300, 1), (1, 64, 97), (97, 64, 1), (7, 13, 11), (31, 257, 37),
          (12, 256, 32), (0, 4, 5), (4, 0, 5), (4, 5, 0), (129, 65, 300), (300, 200, 140)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m,k,n", SHAPES)
def test_matmul_random_and_edge_shapes(isa, dtype, m, k, n):
    rng = np.random.default_rng(m * 1000 + k * 10 + n)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    got = native.matmul(a, b)
    assert got.dtype == dtype
    assert_product(got, a, b)
    if k == 0:
        assert np.all(got == 0)


LAYOUTS = {
    "c": lambda x: x,
    "fortran": np.asfortranarray,
    "transposed": lambda x: np.ascontiguousarray(x.T).T,
    "sliced": lambda x: np.pad(x, ((1, 2), (3, 4)))[1:-2:1, 3:-4][:, :] if x.size else x,
    "every_other": lambda x: np.repeat(np.repeat(x, 2, axis=0), 3, axis=1)[::2, ::3],
    "reversed": lambda x: np.ascontiguousarray(x[::-1, ::-1])[::-1, ::-1],
}


@pytest.mark.parametrize("la", LAYOUTS)
@pytest.mark.parametrize("lb", LAYOUTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_any_layout(isa, la, lb, dtype):
    rng = np.random.default_rng(5)
    a0 = rng.standard_normal((45, 70)).astype(dtype)
    b0 = rng.standard_normal((70, 53)).astype(dtype)
    a, b = LAYOUTS[la](a0), LAYOUTS[lb](b0)
    np.testing.assert_array_equal(a, a0)
    got = native.matmul(a, b)
    assert_product(got, a0, b0)


def test_transposed_views_are_read_in_place():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((200, 30)).astype(np.float32)
    dy = rng.standard_normal((200, 20)).astype(np.float32)
    assert_product(native.matmul(x.T, dy), x.T, dy)  # dW = X^T dY
    w = rng.standard_normal((30, 20)).astype(np.float32)
    assert_product(native.matmul(dy, w.T), dy, w.T)  # dX = dY W^T


def test_out_argument(isa):
    rng = np.random.default_rng(2)
    a = rng.standard_normal((20, 30)).astype(np.float32)
    b = rng.standard_normal((30, 40)).astype(np.float32)
    out = np.full((20, 40), np.nan, np.float32)
    assert native.matmul(a, b, out=out) is out
    assert_product(out, a, b)
    # A Fortran-ordered output and a strided window of a larger buffer.
    big = np.full((50, 90), 7.0, np.float32)
    window = big[5:25, 10:90:2]
    native.matmul(a, b, out=window)
    assert_product(window, a, b)
    untouched = big.copy()
    untouched[5:25, 10:90:2] = 7.0
    assert np.all(untouched == 7.0)
    fortran = np.zeros((20, 40), np.float32, order="F")
    native.matmul(a, b, out=fortran)
    assert_product(fortran, a, b)


def test_out_overlapping_an_input_reads_the_original_values():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((16, 16))
    b = rng.standard_normal((16, 16))
    want = a @ b
    native.matmul(a, b, out=a)
    np.testing.assert_allclose(a, want, rtol=1e-12, atol=1e-12)


def test_bad_arguments_raise_clear_errors():
    a = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match="inner dimensions differ"):
        native.matmul(a, np.ones((3, 4), np.float32))
    with pytest.raises(TypeError, match="int64"):
        native.matmul(np.ones((2, 2), np.int64), np.ones((2, 2), np.int64))
    with pytest.raises(ValueError, match="2-D"):
        native.matmul(np.ones(3, np.float32), np.ones((3, 2), np.float32))
    with pytest.raises(ValueError, match="output is 3x3, expected 3x2"):
        native.matmul(a, np.ones((4, 2), np.float32), out=np.zeros((3, 3), np.float32))
    ro = np.zeros((3, 2), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        native.matmul(a, np.ones((4, 2), np.float32), out=ro)
    with pytest.raises(ValueError, match="same memory"):
        native.matmul(a, np.ones((4, 2), np.float32), out=np.lib.stride_tricks.as_strided(np.zeros(6, np.float32), (3, 2), (4, 0)))
    with pytest.raises(ValueError, match="unknown activation 'softmax'"):
        native.dense(a, np.ones((4, 2), np.float32), None, "softmax")
    with pytest.raises(ValueError, match="bias has 3 values, expected 2"):
        native.dense(a, np.ones((4, 2), np.float32), np.ones(3, np.float32))
    with pytest.raises(ValueError, match="unknown kernel ISA 'sse9'"):
        native.set_isa("sse9")
    if platform.machine() in ("x86_64", "AMD64"):
        with pytest.raises(ValueError, match="kernel ISA 'neon' is not supported by this CPU"):
            native.set_isa("neon")


def test_mixed_precision_promotes_like_numpy():
    a = np.ones((3, 4), np.float32)
    b = np.ones((4, 2), np.float64)
    got = native.matmul(a, b)
    assert got.dtype == np.result_type(a, b)
    np.testing.assert_array_equal(got, a @ b)


# ------------------------------------------------------------------ fused Dense
_erf = np.vectorize(math.erf)


def reference_activation(name, z):
    z = z.astype(np.float64)
    if name == "linear":
        return z
    if name == "relu":
        return np.maximum(z, 0)
    if name == "relu6":
        return np.clip(z, 0, 6)
    if name == "sigmoid":
        return 1 / (1 + np.exp(-z))
    if name == "tanh":
        return np.tanh(z)
    if name == "gelu":  # Keras 3 keras.activations.gelu default: approximate=False, erf form
        return 0.5 * z * (1 + _erf(z / math.sqrt(2)))
    if name == "gelu_tanh":  # approximate=True
        return 0.5 * z * (1 + np.tanh(math.sqrt(2 / math.pi) * (z + 0.044715 * z**3)))
    if name == "silu":
        return z / (1 + np.exp(-z))
    raise AssertionError(name)


ACTIVATIONS = ["linear", "relu", "relu6", "sigmoid", "tanh", "gelu", "gelu_tanh", "silu"]


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch,din,dout", [(1, 784, 64), (32, 64, 10), (100, 70, 33), (5, 0, 4)])
def test_dense_equals_numpy_ops(isa, activation, dtype, batch, din, dout):
    rng = np.random.default_rng(batch + din + dout)
    x = rng.standard_normal((batch, din)).astype(dtype)
    w = (rng.standard_normal((din, dout)) / math.sqrt(max(din, 1))).astype(dtype)
    b = rng.standard_normal(dout).astype(dtype)
    got = native.dense(x, w, b, activation)
    assert got.dtype == dtype
    want = reference_activation(activation, x.astype(np.float64) @ w.astype(np.float64) + b)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def test_relu6_clips_both_ends_and_passes_nan(isa):
    rng = np.random.default_rng(12)
    x = (rng.standard_normal((40, 30)) * 6).astype(np.float32)
    w = rng.standard_normal((30, 20)).astype(np.float32) / 3
    b = np.linspace(-8, 8, 20).astype(np.float32)
    x[3, 4] = np.nan
    got = native.dense(x, w, b, "relu6")
    z = x.astype(np.float64) @ w.astype(np.float64) + b
    assert (z > 6).sum() > 50 and (z < 0).sum() > 50  # both ends clip
    np.testing.assert_allclose(got, np.clip(z, 0, 6), rtol=1e-5, atol=1e-5)
    assert np.isnan(got[3]).all() and not np.isnan(np.delete(got, 3, axis=0)).any()


@pytest.mark.parametrize("activation", ["linear", "relu6", "silu"])
@pytest.mark.parametrize("batch,din,dout", [(1, 784, 64), (40, 1100, 70), (300, 200, 260)])
def test_dense_scale_applies_per_column_before_bias_and_activation(isa, activation, batch, din, dout):
    rng = np.random.default_rng(batch + din)
    x = rng.standard_normal((batch, din)).astype(np.float32)
    w = (rng.standard_normal((din, dout)) / math.sqrt(din)).astype(np.float32)
    b = rng.standard_normal(dout).astype(np.float32)
    scale = rng.uniform(0.25, 4.0, dout).astype(np.float32)
    got = native.dense(x, w, b, activation, None, scale)
    z = (x.astype(np.float64) @ w.astype(np.float64)) * scale + b
    np.testing.assert_allclose(got, reference_activation(activation, z), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=f"scale has {dout - 1} values, expected {dout}"):
        native.dense(x, w, b, activation, None, scale[1:])


def test_dense_without_bias_and_strided_weights(isa):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((17, 40)).astype(np.float32)
    w_t = rng.standard_normal((25, 40)).astype(np.float32)
    got = native.dense(x, w_t.T, None, "relu")
    np.testing.assert_allclose(got, np.maximum(x @ w_t.T, 0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_activation_and_its_gradient(activation):
    rng = np.random.default_rng(4)
    z = (rng.standard_normal((13, 7)) * 4)
    dy = rng.standard_normal((13, 7))
    np.testing.assert_allclose(native.activation(activation, z), reference_activation(activation, z), rtol=1e-12, atol=1e-12)
    h = 1e-6
    numeric = (reference_activation(activation, z + h) - reference_activation(activation, z - h)) / (2 * h)
    got = native.activation_grad(activation, z, dy)
    mask = (np.abs(z) > 1e-4) & (np.abs(z - 6) > 1e-4)  # the kinks of relu and relu6
    np.testing.assert_allclose(got[mask], (dy * numeric)[mask], rtol=1e-5, atol=1e-6)
    got32 = native.activation_grad(activation, z.astype(np.float32), dy.astype(np.float32))
    assert got32.dtype == np.float32
    np.testing.assert_allclose(got32[mask], (dy * numeric)[mask], rtol=1e-4, atol=1e-5)


def test_dense_grad_matches_numpy():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((64, 30))
    w = rng.standard_normal((30, 20))
    dz = rng.standard_normal((64, 20))
    dx, dw, db = native.dense_grad(x, w, dz)
    np.testing.assert_allclose(dx, dz @ w.T, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dw, x.T @ dz, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(db, dz.sum(axis=0), rtol=1e-12, atol=1e-12)


def test_large_product_uses_threads_and_stays_correct(isa):
    rng = np.random.default_rng(8)
    a = rng.standard_normal((513, 700)).astype(np.float32)
    b = rng.standard_normal((700, 385)).astype(np.float32)
    assert_product(native.matmul(a, b), a, b)
    assert_product(native.matmul(b.T, a.T), b.T, a.T)


@pytest.mark.parametrize("name", ISAS)
def test_isa_forced_by_environment(name):
    """AMBER_KERNEL_ISA is read once at first use and picks the path; results still match."""
    import os
    import subprocess
    import sys

    code = (
        "import numpy as np, amber._native as n\n"
        "a = np.arange(12, dtype=np.float32).reshape(3, 4); b = np.ones((4, 5), np.float32)\n"
        "assert np.array_equal(n.matmul(a, b), a @ b)\n"
        "print(n.kernel_isa())\n"
    )
    env = dict(os.environ, AMBER_KERNEL_ISA=name)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == name


def test_broadcast_zero_stride_inputs_are_read_in_place():
    row = np.arange(6, dtype=np.float32)
    a = np.broadcast_to(row, (4, 6))  # row stride 0
    b = np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32)
    assert_product(native.matmul(a, b), np.array(a), b)
