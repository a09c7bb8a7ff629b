"""The native one-pass float32 sigmoid and silu (`_native.sigmoid_f32`, `silu_f32`, used by
`ops.sigmoid`, `ops.silu` and the activations for large contiguous float32 arrays) against
float64 numpy `1 / (1 + exp(-x))`, numpy's float32 stable form and real Keras."""

import numpy as np
import pytest

import amber as keras
from amber import _native, ops
from amber.backend import GradientTape, Variable
from amber.backend.logistic import NATIVE_MIN_SIZE

RNG = np.random.default_rng(7)
BIG = max(NATIVE_MIN_SIZE * 4, 1 << 14)

# numpy float32 stable form, the path the native kernel replaces: its saturation points
# are the ones the kernel must reproduce.
def numpy_float32_sigmoid(x):
    e = np.exp(-np.abs(x))
    return (np.where(x >= 0, np.float32(1), e) / (1 + e)).astype(np.float32)


def reference(x):
    x = x.astype(np.float64)
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


def ulps(got, want):
    """|got - want| in units of the float32 spacing at `want` (float64)."""
    spacing = np.spacing(np.abs(want.astype(np.float32))).astype(np.float64)
    return np.abs(got.astype(np.float64) - want) / spacing


def extremes():
    tiny = np.finfo(np.float32).tiny
    specials = [0.0, -0.0, 88.0, -88.0, 87.5, -87.5, 103.9, -103.9, 104.5, -104.5, 1e4, -1e4,
                np.inf, -np.inf, 1e-30, -1e-30, tiny, -tiny, tiny / 8, -tiny / 8, 1e-45, -1e-45,
                16.0, 17.0, 17.5, -17.0, 3e38, -3e38]
    return np.array(specials, np.float32)


def samples():
    """Random values on every scale, the extremes, and a dense sweep of the transition."""
    scales = np.exp(RNG.uniform(np.log(1e-6), np.log(200.0), size=BIG)).astype(np.float32)
    signs = RNG.choice(np.float32([-1, 1]), size=BIG)
    sweep = np.linspace(-110, 110, BIG, dtype=np.float32)
    return np.concatenate([scales * signs, sweep, extremes()])


@pytest.fixture(params=_native.supported_isas())
def isa(request):
    """Each kernel path this CPU runs (AVX-512, AVX2 with FMA, the portable one)."""
    _native.set_isa(request.param)
    yield request.param
    _native.set_isa(None)


def test_sigmoid_within_few_ulp_of_float64_and_saturates_like_numpy(isa):
    x = samples()
    got = np.empty_like(x)
    _native.sigmoid_f32(x, got)
    want = reference(x)
    # three float32 roundings (exp, 1 + e, the division): numpy's float32 form reaches 2.7
    assert ulps(got, want).max() <= 2.5
    old = numpy_float32_sigmoid(x)
    # where numpy's float32 path gives exactly 0 or 1 the kernel does too, away from the last
    # ulp before the saturation point (there the two float32 exp values may round apart)
    clear = np.abs(x) > 17.5
    for value in (0.0, 1.0):
        where = clear & (old == value)
        assert where.sum() > 100
        np.testing.assert_array_equal(got[where], value)


def test_silu_within_three_ulp_of_float64(isa):
    x = samples()
    got = np.empty_like(x)
    _native.silu_f32(x, got)
    s = reference(x)
    with np.errstate(invalid="ignore"):
        want = x.astype(np.float64) * s
    tiny = np.finfo(np.float32).tiny
    finite = np.isfinite(want)
    # within 3 ulp where the sigmoid is a normal float32 (numpy's x * sigmoid(x) reaches 3.01)
    normal = finite & (s >= tiny) & (np.abs(want) >= tiny)
    assert normal.sum() > BIG
    assert ulps(got[normal], want[normal]).max() <= 3.0
    # elsewhere the float32 sigmoid has only subnormal precision: |x| times about one
    # subnormal step, plus the rounding of the product
    rest = finite & ~normal
    bound = np.abs(x[rest]) * 2.0 ** -148 + np.spacing(np.abs(want[rest]).astype(np.float32))
    assert (np.abs(got[rest] - want[rest]) <= bound).all()


def test_special_values_as_numpy(isa):
    x = np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 1e4, -1e4], np.float32)
    s = np.empty_like(x)
    y = np.empty_like(x)
    _native.sigmoid_f32(x, s)
    _native.silu_f32(x, y)
    with np.errstate(invalid="ignore"):
        want_s = numpy_float32_sigmoid(x)
        want_y = x * want_s
    np.testing.assert_array_equal(s, want_s)  # nan, 1, 0, 0.5, 0.5, 1, 0
    np.testing.assert_array_equal(y, want_y)  # nan, nan, inf, nan (-inf * 0), 0, -0, 1e4, -0
    assert np.signbit(y[5]) and np.signbit(y[7])


@pytest.mark.parametrize("shape", [(8, 48, 48, 96), (BIG + 3,), (3, 5, 7, 11, 13)])
def test_ops_match_keras_and_float64(shape):
    import keras as real

    x = RNG.normal(scale=6.0, size=shape).astype(np.float32)
    want64 = reference(x)
    for name, ours, theirs, want in [
        ("sigmoid", ops.sigmoid, real.ops.sigmoid, want64),
        ("silu", ops.silu, real.ops.silu, x * want64),
        ("swish", keras.activations.swish, real.activations.swish, x * want64),
        ("sigmoid activation", keras.activations.sigmoid, real.activations.sigmoid, want64),
    ]:
        got = np.asarray(ours(x))
        assert got.dtype == np.float32 and got.shape == x.shape, name
        np.testing.assert_allclose(got, np.asarray(theirs(x)), rtol=2e-6, atol=1e-37, err_msg=name)
        np.testing.assert_allclose(got, want, rtol=4e-7, atol=1e-44, err_msg=name)


def test_large_contiguous_float32_takes_the_native_path():
    x = RNG.normal(scale=4.0, size=(BIG,)).astype(np.float32)
    s = np.empty_like(x)
    y = np.empty_like(x)
    _native.sigmoid_f32(x, s)
    _native.silu_f32(x, y)
    np.testing.assert_array_equal(ops.sigmoid(x), s)
    np.testing.assert_array_equal(ops.silu(x), y)


@pytest.mark.parametrize("case", ["float64", "float16", "small", "strided", "big_endian"])
def test_other_inputs_keep_the_numpy_path(case):
    x = RNG.normal(scale=5.0, size=(BIG * 2,)).astype(np.float32)
    x = {
        "float64": x.astype(np.float64),
        "float16": x.astype(np.float16),
        "small": x[:NATIVE_MIN_SIZE - 1],
        "strided": x[::2],
        "big_endian": x.astype(">f4"),
    }[case]
    e = np.exp(-np.abs(x))
    want = (np.where(x >= 0, 1, e) / (1 + e)).astype(np.result_type(x, np.float16))
    got = ops.sigmoid(x)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(ops.silu(x), x * want)


@pytest.mark.parametrize("op", ["sigmoid", "silu"])
def test_float32_gradient_matches_float64_derivative(op):
    x = RNG.normal(scale=3.0, size=(64, 97)).astype(np.float32)
    weights = RNG.normal(size=x.shape).astype(np.float32)
    v = Variable(x, name="x")
    with GradientTape() as tape:
        loss = ops.sum(ops.multiply(getattr(ops, op)(v), weights))
    grad = np.asarray(tape.gradient(loss, [v])[0])
    assert grad.dtype == np.float32
    s = reference(x)
    x64 = x.astype(np.float64)
    derivative = s * (1 - s) if op == "sigmoid" else s * (1 + x64 * (1 - s))
    np.testing.assert_allclose(grad, weights * derivative, rtol=2e-5, atol=2e-6)


def test_bad_arguments_are_refused_with_the_reason():
    x = np.zeros((4, 5), np.float32)
    with pytest.raises(ValueError, match=r"sigmoid_f32: `x` has shape \[4, 5\] and `out` \[5, 4\]"):
        _native.sigmoid_f32(x, np.empty((5, 4), np.float32))
    with pytest.raises(ValueError, match="silu_f32: `x` must be an aligned, C-contiguous"):
        _native.silu_f32(x.T, np.empty((5, 4), np.float32))
    with pytest.raises(ValueError, match="`out` must be an aligned, C-contiguous"):
        _native.silu_f32(x, np.empty((4, 10), np.float32)[:, ::2])
    with pytest.raises(TypeError):
        _native.sigmoid_f32(x.astype(np.float64), np.empty((4, 5)))
