"""The fused training primitives (Dense as one node, sparse softmax crossentropy from logits).

Two references each: plain numpy formulas written here (forward and the analytic gradients,
compared with a float32 tolerance since numpy's BLAS sums in another order), and amber's own
chain of plain ops that the fused node replaces (compared bit for bit for Dense; to a few ulp
for the crossentropy, whose float32 exponentials and logarithm run natively rather than
through numpy's SIMD ones).
"""

import numpy as np
import pytest

from amber import backend, ops
from amber.ops import fused

RNG = np.random.default_rng(0)
F32_TOL = dict(rtol=2e-5, atol=2e-6)


def _data(batch, n_in, n_out):
    x = RNG.standard_normal((batch, n_in)).astype(np.float32)
    w = (RNG.standard_normal((n_in, n_out)) * 0.1).astype(np.float32)
    b = (RNG.standard_normal(n_out) * 0.1).astype(np.float32)
    seed = RNG.standard_normal((batch, n_out)).astype(np.float32)
    return x, w, b, seed


def _grads(fn, x, w, b, seed, watch_x):
    xv = backend.Variable(x) if watch_x else x
    wv, bv = backend.Variable(w), backend.Variable(b)
    with backend.GradientTape() as tape:
        y = fn(xv, wv, bv)
    sources = [xv, wv, bv] if watch_x else [wv, bv]
    grads = tape.gradient(y, sources, output_gradients=seed)
    return np.asarray(y.value if isinstance(y, backend.Tensor) else y), grads


@pytest.mark.parametrize("activation", ["relu", "linear"])
@pytest.mark.parametrize("shape", [(32, 784, 64), (32, 64, 10), (5, 3, 7), (1, 64, 64)])
@pytest.mark.parametrize("watch_x", [True, False])
def test_dense_matches_numpy_and_the_plain_chain(activation, shape, watch_x):
    x, w, b, seed = _data(*shape)
    # Make some pre-activations exactly zero-crossing candidates and negative.
    seed[0, 0] = 0.0

    def plain(xv, wv, bv):
        z = ops.add(ops.matmul(xv, wv), bv)
        return ops.relu(z) if activation == "relu" else z

    def fused_fn(xv, wv, bv):
        return fused.dense(xv, wv, bv, activation)

    y_fused, g_fused = _grads(fused_fn, x, w, b, seed, watch_x)
    y_plain, g_plain = _grads(plain, x, w, b, seed, watch_x)
    np.testing.assert_array_equal(y_fused, y_plain)
    for a, c in zip(g_fused, g_plain):
        np.testing.assert_array_equal(a, c)

    z = x.astype(np.float64) @ w + b
    y_ref = np.maximum(z, 0) if activation == "relu" else z
    dz = seed * (z > 0) if activation == "relu" else seed
    refs = ([dz @ w.T] if watch_x else []) + [x.T.astype(np.float64) @ dz, dz.sum(axis=0)]
    np.testing.assert_allclose(y_fused, y_ref, **F32_TOL)
    for got, ref in zip(g_fused, refs):
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


def test_dense_without_bias_and_outside_a_tape():
    x, w, _, seed = _data(4, 6, 3)
    y = fused.dense(x, backend.Variable(w), None, "relu")
    assert type(y) is np.ndarray
    np.testing.assert_allclose(y, np.maximum(x @ w, 0), **F32_TOL)
    wv = backend.Variable(w)
    with backend.GradientTape() as tape:
        out = fused.dense(x, wv, None, "linear")
    (gw,) = tape.gradient(out, [wv], output_gradients=seed)
    np.testing.assert_allclose(gw, x.T @ seed, **F32_TOL)


def _plain_sparse_ce(logits, labels):
    # The one-hot chain the loss used before the fused node.
    shift = np.max(np.asarray(logits.value if isinstance(logits, backend.Tensor) else
                              logits.numpy()), axis=-1, keepdims=True)
    shifted = logits - shift
    log_probs = shifted - ops.log(ops.sum(ops.exp(shifted), axis=-1, keepdims=True))
    one_hot = np.eye(logits.shape[-1], dtype=np.float32)[labels]
    return -ops.sum(one_hot * log_probs, axis=-1)


@pytest.mark.parametrize("shape", [(32, 10), (7, 3), (4, 5, 6), (1, 2)])
def test_sparse_softmax_crossentropy_matches_numpy_and_the_plain_chain(shape):
    logits = (RNG.standard_normal(shape) * 4).astype(np.float32)
    labels = RNG.integers(0, shape[-1], size=shape[:-1])
    seed = RNG.random(shape[:-1]).astype(np.float32)
    results = []
    for fn in (fused.sparse_softmax_crossentropy, _plain_sparse_ce):
        var = backend.Variable(logits)
        with backend.GradientTape() as tape:
            losses = fn(var, labels)
        grad = tape.gradient(losses, var, output_gradients=seed)
        results.append((np.asarray(losses.value), grad))
    (loss_fused, grad_fused), (loss_plain, grad_plain) = results
    np.testing.assert_allclose(loss_fused, loss_plain, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(grad_fused, grad_plain, rtol=1e-6, atol=1e-7)

    z = logits.astype(np.float64)
    log_softmax = z - z.max(-1, keepdims=True)
    log_softmax -= np.log(np.exp(log_softmax).sum(-1, keepdims=True))
    picked = np.take_along_axis(log_softmax, labels[..., None], -1)[..., 0]
    np.testing.assert_allclose(loss_fused, -picked, rtol=1e-5, atol=1e-5)
    one_hot = np.eye(shape[-1])[labels]
    np.testing.assert_allclose(grad_fused, seed[..., None] * (np.exp(log_softmax) - one_hot),
                               rtol=1e-5, atol=1e-6)


def test_sparse_crossentropy_loss_against_keras():
    import os

    os.environ.setdefault("KERAS_BACKEND", "numpy")
    keras = pytest.importorskip("keras")
    from amber import losses

    logits = (RNG.standard_normal((16, 10)) * 3).astype(np.float32)
    labels = RNG.integers(0, 10, size=16)
    weights = RNG.random(16).astype(np.float32)
    for kwargs in ({}, {"reduction": "sum"}):
        ours = losses.SparseCategoricalCrossentropy(from_logits=True, **kwargs)
        theirs = keras.losses.SparseCategoricalCrossentropy(from_logits=True, **kwargs)
        np.testing.assert_allclose(np.asarray(ours(labels, logits)),
                                   keras.ops.convert_to_numpy(theirs(labels, logits)), rtol=1e-6)
        np.testing.assert_allclose(np.asarray(ours(labels[:, None], logits, weights)),
                                   keras.ops.convert_to_numpy(theirs(labels[:, None], logits, weights)),
                                   rtol=1e-6)


@pytest.mark.parametrize("shape", [(32,), (4, 5), (1,)])
def test_sum_divided_matches_numpy_and_the_plain_chain(shape):
    values = RNG.standard_normal(shape).astype(np.float32)
    divisor = np.asarray(np.float32(np.prod(shape) + 0.5))
    # No tape, and a tape that does not watch the input: numpy scalars, like the chain.
    for taped in (False, True):
        if taped:
            with backend.GradientTape():
                fused_value = fused.sum_divided(values, divisor)
                plain_value = ops.sum(values) / divisor
        else:
            fused_value = fused.sum_divided(values, divisor)
            plain_value = ops.sum(values) / divisor
        assert type(fused_value) is type(plain_value)
        np.testing.assert_array_equal(fused_value, plain_value)
    np.testing.assert_allclose(float(fused_value), values.astype(np.float64).sum() / float(divisor),
                               rtol=1e-6)
    results = []
    for fn in (fused.sum_divided, lambda v, d: ops.sum(v) / d):
        var = backend.Variable(values)
        with backend.GradientTape() as tape:
            out = fn(var, divisor)
        assert isinstance(out, backend.Tensor) and out.value.shape == ()
        results.append((out.value, tape.gradient(out, var)))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
    np.testing.assert_allclose(results[0][1], np.full(shape, 1 / float(divisor)), rtol=1e-6)


def _guide_mlp(seed):
    import amber

    inputs = amber.Input(shape=(20,))
    x = amber.layers.Dense(16, activation="relu")(inputs)
    x = amber.layers.Dense(16, activation="relu")(x)
    model = amber.Model(inputs, amber.layers.Dense(5)(x))
    rng = np.random.default_rng(seed)
    model.set_weights([rng.standard_normal(w.shape).astype(np.float32) * np.float32(0.3)
                       for w in model.get_weights()])
    return model


def test_dense_records_one_node_in_training():
    model = _guide_mlp(0)
    dense = model.layers[1]
    x = RNG.standard_normal((4, 20)).astype(np.float32)
    with backend.GradientTape():
        out = dense(x, training=True)
    assert isinstance(out, backend.Tensor)
    assert [id(p) for _, p in out._parents] == [id(dense.kernel), id(dense.bias)]


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])
def test_fit_with_fused_nodes_equals_fit_through_the_plain_ops(monkeypatch, optimizer):
    import amber

    rng = np.random.default_rng(1)
    x = rng.random((96, 20), dtype=np.float32)
    y = rng.integers(0, 5, size=96)
    trained = []
    for fused_path in (True, False):
        if not fused_path:
            # Dense through matmul/add/relu, and the loss through its one-hot chain (an
            # ignore_class no label has takes the unfused path with the same values).
            monkeypatch.setattr(fused, "DENSE_ACTIVATIONS", ())
        model = _guide_mlp(2)
        loss = amber.losses.SparseCategoricalCrossentropy(
            from_logits=True, **({} if fused_path else {"ignore_class": -1}))
        model.compile(optimizer=optimizer, loss=loss)
        history = model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
        trained.append((history.history["loss"], model.get_weights()))
    (loss_fused, w_fused), (loss_plain, w_plain) = trained
    np.testing.assert_allclose(loss_fused, loss_plain, rtol=1e-6)
    for a, b in zip(w_fused, w_plain):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
