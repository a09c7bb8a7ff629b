"""Every differentiable op's gradient against central finite differences (float64)."""

import numpy as np
import pytest

from amber import ops
from amber.backend import GradientTape, Tensor, Variable
from amber.ops.core import REGISTRY

RNG = np.random.default_rng(0)


def numeric_grad(f, inputs, k, weights, eps=1e-6):
    """d/d inputs[k] of sum(f(*inputs) * weights), by central differences."""
    x = inputs[k]
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        idx = it.multi_index
        saved = x[idx]
        x[idx] = saved + eps
        up = np.sum(np.asarray(f(*inputs)) * weights)
        x[idx] = saved - eps
        down = np.sum(np.asarray(f(*inputs)) * weights)
        x[idx] = saved
        grad[idx] = (up - down) / (2 * eps)
    return grad


def check_gradients(f, inputs, rtol=1e-5, atol=1e-7):
    inputs = [np.array(x, dtype=np.float64) for x in inputs]
    out = np.asarray(f(*inputs))
    weights = RNG.normal(size=out.shape)
    variables = [Variable(x.copy(), name=f"in{k}") for k, x in enumerate(inputs)]
    with GradientTape() as tape:
        y = f(*variables)
        target = ops.sum(ops.multiply(y, weights))
    assert isinstance(target, Tensor), "the op did not record on the tape"
    grads = tape.gradient(target, variables)
    for k in range(len(inputs)):
        expected = numeric_grad(f, inputs, k, weights)
        assert grads[k] is not None, f"no gradient for input {k}"
        assert grads[k].shape == inputs[k].shape
        np.testing.assert_allclose(grads[k], expected, rtol=rtol, atol=atol,
                                   err_msg=f"gradient of input {k}")


def positive(*shape):
    return RNG.uniform(0.5, 2.0, size=shape)


def normal(*shape):
    return RNG.normal(size=shape)


def away_from_kinks(*shape):
    """Values at least 0.05 from 0 (relu-like kinks) and from +-3, 6 (hard_* and relu6)."""
    x = RNG.uniform(-7.5, 7.5, size=shape)
    for kink in (0.0, 3.0, -3.0, 6.0):
        close = np.abs(x - kink) < 0.05
        x[close] += 0.1
    return x


UNARY = {
    "exp": (ops.exp, normal), "expm1": (ops.expm1, normal), "log": (ops.log, positive),
    "log1p": (ops.log1p, positive), "log2": (ops.log2, positive), "log10": (ops.log10, positive),
    "sqrt": (ops.sqrt, positive), "rsqrt": (ops.rsqrt, positive), "square": (ops.square, normal),
    "abs": (ops.abs, away_from_kinks), "reciprocal": (ops.reciprocal, positive),
    "negative": (ops.negative, normal), "tanh": (ops.tanh, normal), "sinh": (ops.sinh, normal),
    "cosh": (ops.cosh, normal), "sin": (ops.sin, normal), "cos": (ops.cos, normal),
    "tan": (ops.tan, lambda *s: RNG.uniform(-1, 1, size=s)), "arctan": (ops.arctan, normal),
    "arcsin": (ops.arcsin, lambda *s: RNG.uniform(-0.9, 0.9, size=s)),
    "arccos": (ops.arccos, lambda *s: RNG.uniform(-0.9, 0.9, size=s)),
    "erf": (ops.erf, normal), "sigmoid": (ops.sigmoid, normal), "relu": (ops.relu, away_from_kinks),
    "relu6": (ops.relu6, away_from_kinks), "leaky_relu": (ops.leaky_relu, away_from_kinks),
    "elu": (ops.elu, away_from_kinks), "selu": (ops.selu, away_from_kinks),
    "gelu": (ops.gelu, normal), "gelu_exact": (lambda x: ops.gelu(x, approximate=False), normal),
    "silu": (ops.silu, normal), "softplus": (ops.softplus, normal), "softsign": (ops.softsign, away_from_kinks),
    "hard_sigmoid": (ops.hard_sigmoid, away_from_kinks), "hard_silu": (ops.hard_silu, away_from_kinks),
    "log_sigmoid": (ops.log_sigmoid, normal),
    "softmax": (ops.softmax, normal), "softmax_axis0": (lambda x: ops.softmax(x, axis=0), normal),
    "log_softmax": (ops.log_softmax, normal),
    "sum": (ops.sum, normal), "sum_axis": (lambda x: ops.sum(x, axis=1), normal),
    "sum_keep": (lambda x: ops.sum(x, axis=(0, 2), keepdims=True), normal),
    "mean": (lambda x: ops.mean(x, axis=-1), normal),
    "max": (lambda x: ops.max(x, axis=1), normal), "min": (lambda x: ops.min(x, axis=0, keepdims=True), normal),
    "prod": (lambda x: ops.prod(x, axis=1), positive), "prod_all": (ops.prod, positive),
    "var": (lambda x: ops.var(x, axis=1), normal), "std": (lambda x: ops.std(x, axis=(1, 2)), normal),
    "logsumexp": (lambda x: ops.logsumexp(x, axis=-1), normal),
    "logsumexp_keep": (lambda x: ops.logsumexp(x, axis=0, keepdims=True), normal),
    "cumsum": (lambda x: ops.cumsum(x, axis=1), normal), "cumsum_flat": (ops.cumsum, normal),
    "reshape": (lambda x: ops.reshape(x, (-1, 2)), normal),
    "transpose": (lambda x: ops.transpose(x, (2, 0, 1)), normal), "transpose_default": (ops.transpose, normal),
    "swapaxes": (lambda x: ops.swapaxes(x, 0, 2), normal), "moveaxis": (lambda x: ops.moveaxis(x, 0, -1), normal),
    "expand_dims": (lambda x: ops.expand_dims(x, 1), normal),
    "squeeze": (lambda x: ops.squeeze(ops.reshape(x, (1,) + x.shape + (1,))), normal),
    "broadcast_to": (lambda x: ops.broadcast_to(x, (5,) + x.shape), normal),
    "flip": (lambda x: ops.flip(x, axis=1), normal), "tile": (lambda x: ops.tile(x, (2, 1, 3)), normal),
    "tile_short": (lambda x: ops.tile(x, 2), normal),
    "repeat": (lambda x: ops.repeat(x, 2, axis=1), normal), "repeat_flat": (lambda x: ops.repeat(x, 3), normal),
    "get_item": (lambda x: x[1:, ::2, [0, 0, 1]], normal), "get_item_neg": (lambda x: x[..., -1], normal),
    "take": (lambda x: ops.take(x, np.array([[0, 2], [2, -1]]), axis=1), normal),
    "take_flat": (lambda x: ops.take(x, [0, 5, 5, 7]), normal),
    "take_along_axis": (lambda x: ops.take_along_axis(x, np.array([[[0, 1], [3, 3], [2, 0]]]), axis=1), normal),
    "pad": (lambda x: ops.pad(x, ((1, 0), (0, 2), (3, 1))), normal),
    "sort": (lambda x: ops.sort(x, axis=1), normal), "top_k": (lambda x: ops.top_k(x, 2)[0], normal),
    "split": (lambda x: ops.split(x, [1, 2], axis=1)[2] * 3, normal),
    "norm": (ops.norm, normal), "norm_l1": (lambda x: ops.norm(x, ord=1, axis=-1), away_from_kinks),
    "norm_3": (lambda x: ops.norm(x, ord=3, axis=0), away_from_kinks),
    "norm_fro": (lambda x: ops.norm(x, axis=(0, 1)), normal),
    "clip": (lambda x: ops.clip(x, -1.0, 1.0), lambda *s: away_from_kinks(*s) / 3),
    "moments_var": (lambda x: ops.moments(x, axes=[0, 1])[1], normal),
    "normalize": (lambda x: ops.normalize(x, axis=-1), normal),
    "pow_const": (lambda x: ops.power(x, 3), normal), "rpow": (lambda x: 2.0 ** x, normal),
    "scalar_ops": (lambda x: (1 - x) / 2 + x * 3 - 4 / (x * x + 1), normal),
    "average": (lambda x: ops.average(x, axis=1, weights=np.array([1.0, 2.0, 3.0, 0.5])), normal),
    # composite activations: gradients come from the chain rule through the primitives
    "celu": (lambda x: ops.celu(x, alpha=0.7), away_from_kinks), "glu": (lambda x: ops.glu(x, axis=1), normal),
    "mish": (ops.mish, normal), "squareplus": (ops.squareplus, normal), "tanh_shrink": (ops.tanh_shrink, normal),
    "soft_shrink": (ops.soft_shrink, away_from_kinks), "sparse_plus": (ops.sparse_plus, lambda *s: away_from_kinks(*s) / 5),
    "sparsemax": (lambda x: ops.sparsemax(x, axis=1), normal),
    "relu_options": (lambda x: __import__("amber").activations.relu(x, negative_slope=0.1, max_value=4.0,
                                                                      threshold=0.5), lambda *s: away_from_kinks(*s) / 1.7),
}

LOOSE = {}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_gradient(name):
    f, sample = UNARY[name]
    check_gradients(f, [sample(3, 4, 2) if "flat" not in name else sample(2, 4)], **LOOSE.get(name, {}))


# Binary ops over broadcasting shape pairs: the gradient must be summed back to each shape.
BROADCAST_SHAPES = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((1,), (2, 3)), ((), (3,))]
BINARY = {
    "add": (ops.add, normal, normal), "subtract": (ops.subtract, normal, normal),
    "multiply": (ops.multiply, normal, normal), "divide": (ops.divide, normal, positive),
    "true_divide": (ops.true_divide, normal, positive),
    "power": (ops.power, positive, normal), "mod": (ops.mod, positive, lambda *s: positive(*s) + 0.3),
    "maximum": (ops.maximum, normal, normal), "minimum": (ops.minimum, normal, normal),
    "where": (lambda a, b: ops.where(np.asarray(a) > 0, a, b), normal, normal),
    "operators": (lambda a, b: a * b - a / (b * b + 1) + (-a) ** 2, normal, normal),
}


@pytest.mark.parametrize("shapes", BROADCAST_SHAPES, ids=str)
@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_gradient_with_broadcasting(name, shapes):
    f, sample_a, sample_b = BINARY[name]
    a, b = sample_a(*shapes[0]), sample_b(*shapes[1])
    if name == "mod":
        # stay away from the jumps of mod
        b = np.abs(b) + 0.3
        a = np.floor(a / np.max(b)) * 0 + 0.05 + 0.9 * a % 0.25
    check_gradients(f, [a, b])


MATRIX_CASES = {
    "matmul_2d": (ops.matmul, (3, 4), (4, 5)), "matmul_batched": (ops.matmul, (2, 3, 4), (4, 5)),
    "matmul_broadcast_batch": (ops.matmul, (2, 1, 3, 4), (3, 4, 2)),
    "matmul_vec_left": (ops.matmul, (4,), (2, 4, 3)), "matmul_vec_right": (ops.matmul, (3, 4), (4,)),
    "matmul_vec_vec": (ops.matmul, (4,), (4,)), "matmul_operator": (lambda a, b: a @ b, (3, 4), (4, 2)),
    "dot_2d": (ops.dot, (3, 4), (4, 2)), "dot_nd": (ops.dot, (2, 3, 4), (5, 4, 2)),
    "tensordot": (lambda a, b: ops.tensordot(a, b, axes=([0, 2], [1, 0])), (4, 3, 2), (2, 4, 5)),
    "tensordot_int": (lambda a, b: ops.tensordot(a, b, axes=1), (3, 4), (4, 2)),
    "einsum_mm": (lambda a, b: ops.einsum("ij,jk->ik", a, b), (3, 4), (4, 2)),
    "einsum_ellipsis": (lambda a, b: ops.einsum("...ij,jk->...ik", a, b), (2, 3, 4), (4, 2)),
    "einsum_implicit": (lambda a, b: ops.einsum("ij,kj", a, b), (3, 4), (2, 4)),
    "einsum_reduce_own": (lambda a, b: ops.einsum("ijk,j->i", a, b), (3, 4, 2), (4,)),
    "einsum_outer": (lambda a, b: ops.einsum("i,j->ij", a, b), (3,), (4,)),
    "einsum_broadcast_ellipsis": (lambda a, b: ops.einsum("...i,...i->...", a, b), (3, 4), (1, 4)),
    "outer": (ops.outer, (3,), (4,)), "inner": (ops.inner, (2, 4), (3, 4)), "vdot": (ops.vdot, (3, 2), (6,)),
    "concatenate": (lambda a, b: ops.concatenate([a, b], axis=1), (3, 2), (3, 4)),
    "stack": (lambda a, b: ops.stack([a, b * 2], axis=1), (3, 2), (3, 2)),
    "batchnorm": (lambda a, b: ops.batch_normalization(a, b, b * b + 1, axis=1, offset=b, scale=b + 2), (5, 3), (3,)),
}


@pytest.mark.parametrize("name", sorted(MATRIX_CASES))
def test_matrix_and_join_gradients(name):
    f, sa, sb = MATRIX_CASES[name]
    check_gradients(f, [normal(*sa), normal(*sb)])


# primitives whose gradients are checked in the other math test modules
TESTED_ELSEWHERE = ["conv", "conv_transpose", "max_pool", "average_pool",  # test_math_conv
                    "diag_from_vector", "logaddexp", "arctan2", "cbrt",  # test_math_extra_ops
                    "time_step"]  # test_layers_rnn_keras


def test_every_registered_primitive_is_covered():
    tested_names = " ".join(list(UNARY) + list(BINARY) + list(MATRIX_CASES) + TESTED_ELSEWHERE)
    untested = [name for name in REGISTRY if name.strip("_") not in tested_names]
    assert not untested, f"differentiable ops without a gradient test: {untested}"


def test_clip_gradient_reaches_bounds():
    check_gradients(lambda x, lo, hi: ops.clip(x, lo, hi), [[-2.0, 0.3, 2.0], [-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])


def test_gradient_accumulates_over_reuse_and_deep_chains():
    x = Variable(np.array([0.5, -1.0]), name="x")
    with GradientTape() as tape:
        y = x
        for _ in range(3000):  # deeper than Python's recursion limit
            y = y * 1.0001
        loss = ops.sum(y * x)
    grad = tape.gradient(loss, x)
    np.testing.assert_allclose(grad, 2 * x.numpy() * 1.0001 ** 3000, rtol=1e-10)


def test_cast_passes_gradients_between_float_types_and_cuts_them_to_ints():
    x = Variable(np.array([1.5, -2.0, 3.25], dtype="float32"), name="x")
    with GradientTape() as tape:
        y64 = ops.cast(x, "float64")
        loss = ops.sum(y64 * np.array([1.0, 2.0, 3.0]))
        assert isinstance(ops.cast(x, "int32"), np.ndarray)
    grad = tape.gradient(loss, x)
    assert grad.dtype == np.float32
    np.testing.assert_array_equal(grad, [1.0, 2.0, 3.0])
