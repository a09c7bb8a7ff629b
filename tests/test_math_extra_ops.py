"""The wider ops namespace (cross-entropies, normalizations, attention, numpy extras, linear
algebra, control flow) against real Keras 3 on the numpy backend, with gradients by finite
differences for the differentiable ones."""

import numpy as np
import pytest

from amber import ops
from test_math_gradients import check_gradients
from test_math_keras_parity import keras

RNG = np.random.default_rng(11)
A = RNG.normal(size=(4, 5)).astype(np.float32)
PROBS = RNG.dirichlet(np.ones(5), size=4).astype(np.float32)
ONE_HOT = np.eye(5, dtype=np.float32)[[0, 3, 4, 1]]
BINARY = (RNG.random((4, 5)) > 0.5).astype(np.float32)
Q = RNG.normal(size=(2, 5, 3, 4)).astype(np.float32)
K = RNG.normal(size=(2, 6, 3, 4)).astype(np.float32)
V = RNG.normal(size=(2, 6, 3, 4)).astype(np.float32)
MASK = RNG.random((2, 3, 5, 6)) > 0.3
SQUARE = (RNG.normal(size=(4, 4)) + 4 * np.eye(4)).astype(np.float32)

CASES = {
    "bce": lambda o: o.binary_crossentropy(BINARY, 1 / (1 + np.exp(-A))),
    "bce_logits": lambda o: o.binary_crossentropy(BINARY, A, from_logits=True),
    "cce": lambda o: o.categorical_crossentropy(ONE_HOT, PROBS),
    "cce_logits": lambda o: o.categorical_crossentropy(ONE_HOT, A, from_logits=True),
    "scce": lambda o: o.sparse_categorical_crossentropy(np.array([0, 3, 4, 1]), PROBS),
    "scce_logits": lambda o: o.sparse_categorical_crossentropy(np.array([[0], [3], [4], [1]]), A, from_logits=True),
    "layer_norm": lambda o: o.layer_normalization(A, gamma=A[0], beta=A[1]),
    "layer_norm_axis0": lambda o: o.layer_normalization(A, axis=0, epsilon=0.1),
    "rms_norm": lambda o: o.rms_normalization(A, scale=A[2]),
    "attention": lambda o: o.dot_product_attention(Q, K, V),
    "attention_mask_scale": lambda o: o.dot_product_attention(Q, K, V, mask=MASK, scale=0.3),
    "attention_bias": lambda o: o.dot_product_attention(
        Q, K, V, bias=np.linspace(-1, 1, 180, dtype=np.float32).reshape(2, 3, 5, 6)),
    "attention_causal": lambda o: o.dot_product_attention(K, K, V, is_causal=True),
    "roll": lambda o: o.roll(A, 2, axis=1), "roll_flat": lambda o: o.roll(A, -3),
    "diag_vector": lambda o: o.diag(A[0], k=1), "diag_matrix": lambda o: o.diag(A, k=-1),
    "diagonal": lambda o: o.diagonal(A, offset=1), "trace": lambda o: o.trace(A),
    "linspace": lambda o: o.linspace(0.0, 1.0, 7), "logaddexp": lambda o: o.logaddexp(A, A[0]),
    "arctan2": lambda o: o.arctan2(A, A[::-1]), "cbrt": lambda o: o.cbrt(A),
    "divide_no_nan": lambda o: o.divide_no_nan(A, np.where(A > 0, A[::-1], 0)),
    "nan_to_num": lambda o: o.nan_to_num(np.array([np.nan, np.inf, -1.0], np.float32), nan=3.0),
    "median": lambda o: o.median(A, axis=1), "quantile": lambda o: o.quantile(A, 0.3, axis=0),
    "select": lambda o: o.select([A > 1, A < -1], [A, -A], 5.0),
    "multi_hot": lambda o: o.multi_hot(np.array([[0, 2], [3, 3]]), 5),
    "in_top_k": lambda o: o.in_top_k(np.array([0, 3, 4, 1]), A, 2),
    "segment_sum": lambda o: o.segment_sum(A, np.array([0, 0, 2, 1]), num_segments=3),
    "segment_max": lambda o: o.segment_max(A, np.array([0, 1, 1, 1])),
    "scatter": lambda o: o.scatter(np.array([[0, 1], [2, 2], [0, 1]]), np.array([1.0, 2.0, 3.0], np.float32), (3, 3)),
    "scatter_update": lambda o: o.scatter_update(A, np.array([[0, 1], [3, 4]]), np.array([9.0, 8.0], np.float32)),
    "slice_update": lambda o: o.slice_update(A, (1, 2), np.ones((2, 2), np.float32)),
    "unstack": lambda o: o.unstack(A, axis=1)[3], "ravel": lambda o: o.ravel(A),
    "erfinv": lambda o: o.erfinv(np.linspace(-0.999, 0.999, 41).astype(np.float32)),
    "searchsorted": lambda o: o.searchsorted(np.sort(A[0]), A[1]),
    "bincount": lambda o: o.bincount(np.array([0, 3, 3, 1]), minlength=5),
    "saturate_cast": lambda o: o.saturate_cast(A * 200, "int8"),
    "inv": lambda o: o.inv(SQUARE), "det": lambda o: o.det(SQUARE), "logdet": lambda o: o.logdet(SQUARE @ SQUARE.T),
    "solve": lambda o: o.solve(SQUARE, A[:, :2]),
    "cholesky": lambda o: o.cholesky(SQUARE @ SQUARE.T),
    "cond": lambda o: o.cond(A[0, 0] > 0, lambda: A + 1, lambda: A - 1),
    "switch": lambda o: o.switch(1, [lambda x: x, lambda x: x * 2], A),
    "fori_loop": lambda o: o.fori_loop(0, 4, lambda i, x: x * 2 + i, A),
    "while_loop": lambda o: o.while_loop(lambda x: o.sum(x) < 100, lambda x: (x * 2 + 1,), (np.abs(A),))[0],
    "scan": lambda o: o.scan(lambda c, x: (c + x, c * x), np.zeros(5, np.float32), A)[1],
    "map": lambda o: o.map(lambda x: x * x, A),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_keras(name):
    ours = np.asarray(CASES[name](ops))
    theirs = np.asarray(CASES[name](keras.ops))
    assert ours.shape == theirs.shape
    if ours.dtype.kind == "f":
        tol = 3e-5 if name in ("erfinv", "inv", "solve", "det", "logdet", "cholesky") else 2e-6
        np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol)
    else:
        np.testing.assert_array_equal(ours, theirs)
    if name not in ("bincount", "searchsorted", "linspace"):
        assert ours.dtype == theirs.dtype, f"{name}: {ours.dtype} vs Keras {theirs.dtype}"


def test_attention_mask_changes_the_result():
    # guards the comparison above against both sides ignoring the mask
    assert not np.allclose(ops.dot_product_attention(Q, K, V), ops.dot_product_attention(Q, K, V, mask=MASK))


GRADIENT_CASES = {
    "bce": (lambda o: ops.binary_crossentropy(BINARY.astype(np.float64), 1 / (1 + ops.exp(-o))), (4, 5)),
    "bce_logits": (lambda o: ops.binary_crossentropy(BINARY.astype(np.float64), o, from_logits=True), (4, 5)),
    "cce": (lambda o: ops.categorical_crossentropy(ONE_HOT.astype(np.float64), ops.softmax(o)), (4, 5)),
    "cce_logits": (lambda o: ops.categorical_crossentropy(ONE_HOT.astype(np.float64), o, from_logits=True), (4, 5)),
    "scce_logits": (lambda o: ops.sparse_categorical_crossentropy(np.array([0, 3, 4, 1]), o, from_logits=True), (4, 5)),
    "roll": (lambda x: ops.roll(x, 2, axis=1), (4, 5)), "roll_flat": (lambda x: ops.roll(x, -3), (4, 5)),
    "diag_vector": (lambda x: ops.diag(x, k=-1), (4,)), "diag_vector_up": (lambda x: ops.diag(x, k=2), (3,)), "trace": (lambda x: ops.trace(x, offset=1), (4, 5)),
    "cbrt": (lambda x: ops.cbrt(x * x + 1), (3, 2)), "unstack": (lambda x: ops.unstack(x, axis=1)[2] * 3, (4, 5)),
    "divide_no_nan": (lambda x: ops.divide_no_nan(x, np.array([0.0, 2.0, 0.0, 3.0, 1.0])), (4, 5)),
    "segment_sum": (lambda x: ops.segment_sum(x, np.array([0, 0, 2, 1])), (4, 5)),
    "select": (lambda x: ops.select([np.arange(20).reshape(4, 5) % 3 == 0], [x * 2], x * x), (4, 5)),
    "rms_norm": (lambda x: ops.rms_normalization(x), (4, 5)),
}


@pytest.mark.parametrize("name", sorted(GRADIENT_CASES))
def test_unary_gradients(name):
    f, shape = GRADIENT_CASES[name]
    check_gradients(f, [RNG.normal(size=shape)])


def test_two_input_gradients():
    check_gradients(ops.logaddexp, [RNG.normal(size=(3, 4)), RNG.normal(size=(4,))])
    check_gradients(ops.arctan2, [RNG.normal(size=(3, 4)), RNG.normal(size=(3, 4))])
    check_gradients(lambda x, g: ops.layer_normalization(x, gamma=g, beta=g * 2), [RNG.normal(size=(3, 4)),
                                                                                 RNG.normal(size=(4,))])
    check_gradients(lambda q, k: ops.dot_product_attention(q, k, k * 2, is_causal=True),
                    [RNG.normal(size=(1, 3, 2, 2)), RNG.normal(size=(1, 3, 2, 2))])


def test_custom_gradient_is_used_by_the_tape():
    from amber.backend import GradientTape, Variable

    @ops.custom_gradient
    def log1pexp(x):
        e = ops.exp(x)

        def grad(*args, upstream=None):
            if upstream is None:
                (upstream,) = args
            return ops.multiply(upstream, 1.0 - 1.0 / ops.add(1, e))

        return ops.log(1 + e), grad

    check_gradients(log1pexp, [RNG.normal(size=(3, 4))])

    @ops.custom_gradient
    def clipped_identity(x):
        return x, lambda g: ops.clip(g, -0.5, 0.5)

    v = Variable(np.array([1.0, 2.0]), name="v")
    with GradientTape() as tape:
        loss = ops.sum(clipped_identity(v) * np.array([3.0, -0.1]))
    np.testing.assert_allclose(tape.gradient(loss, v), [0.5, -0.1])
    np.testing.assert_allclose(log1pexp(np.array([0.0])), [np.log(2.0)])
