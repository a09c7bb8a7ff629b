"""model.summary()'s "Connected to" column, against the text real Keras 3 prints line for line:
Functional models that are not a plain chain (two inputs merged, a residual Add, a shared
layer, a nested multi-output model, several outputs, keyword tensor arguments, graph
operations, an unused input and a layer also called in another model), and a chain with two
outputs, which Keras still prints without the column."""

import pytest

import amber
from test_framework_reference import keras_reference
from test_summary_nested import summary_lines


@pytest.fixture(scope="module")
def keras():
    return keras_reference()


def two_inputs(lib):
    L = lib.layers
    a = lib.Input((4,), name="left_input")
    b = lib.Input((6,), name="right_input_with_a_long_name")
    x = L.Concatenate(name="joined")([L.Dense(3, name="left_dense")(a), L.Dense(5, name="right_dense")(b)])
    return lib.Model([a, b], L.Dense(1, name="head")(x), name="two_inputs")


def residual(lib):
    L = lib.layers
    x = lib.Input((8,), name="x")
    h = L.Dense(8, activation="relu", name="branch_a")(x)
    h = L.Dense(8, name="branch_b")(h)
    y = L.Add(name="skip")([x, h])
    return lib.Model(x, L.Activation("relu", name="out")(y), name="residual")


def shared(lib):
    L = lib.layers
    a, b = lib.Input((4,), name="a"), lib.Input((4,), name="b")
    dense = L.Dense(3, name="shared_dense")
    return lib.Model([a, b], L.Subtract(name="diff")([dense(a), dense(b)]), name="shared")


def nested(lib):
    """A Functional model with two outputs called inside another: its row reads x, the merge
    reads its tensors 0 and 1, its own layers (another graph) show "-"."""
    L = lib.layers
    i = lib.Input((5,), name="inner_in")
    inner = lib.Model(i, [L.Dense(2, name="inner_a")(i), L.Dense(3, name="inner_b")(i)], name="inner")
    inner.layers[1].trainable = False
    x = lib.Input((5,), name="x")
    p, q = inner(x)
    return lib.Model(x, L.Concatenate(name="cat")([p, q]), name="outer")


def multi_output(lib):
    L = lib.layers
    x = lib.Input((7,), name="features")
    h = L.Dense(6, name="trunk")(x)
    return lib.Model(x, [L.Dense(1, name="score")(h), L.Dense(3, activation="softmax", name="klass")(h)],
                     name="multi_output")


def chain_two_outputs(lib):
    """Outputs at two depths, one node per depth: still a chain for Keras (no fourth column)."""
    L = lib.layers
    x = lib.Input((4,), name="x")
    h = L.Dense(3, name="d1")(x)
    return lib.Model(x, [h, L.Dense(2, name="d2")(h)], name="chain_two_outputs")


def keyword_tensors(lib):
    q, v = lib.Input((3, 4), name="q"), lib.Input((5, 4), name="v")
    out = lib.layers.MultiHeadAttention(2, 2, name="mha")(query=q, value=v, key=v)
    return lib.Model([q, v], out, name="keyword_tensors")


def graph_operations(lib):
    x = lib.Input((4,), name="x")
    y = lib.layers.Dense(4, name="d")(x)
    return lib.Model(x, lib.layers.Dense(1, name="h")(lib.ops.add(y * 2.0, x)), name="graph_operations")


def unused_input_and_reuse(lib):
    """``reused`` is also called twice in another model: only this model's call is listed."""
    L = lib.layers
    a = lib.Input((4,), name="a")
    reused = L.Dense(4, name="reused")
    lib.Model(a, reused(reused(a)), name="other")
    c, unused = lib.Input((4,), name="c"), lib.Input((2,), name="unused")
    return lib.Model([c, unused], L.Dense(1, name="h")(reused(c)), name="unused_input_and_reuse")


def shared_sequential(lib):
    """A nested Sequential called on two inputs (nodes 0 and 1), a 1-D output, which Keras
    prints as "(None)"."""
    L = lib.layers
    encoder = lib.Sequential([lib.Input((4,)), L.Dense(3, name="e1"), L.Dense(2, name="e2")], name="encoder")
    a, b = lib.Input((4,), name="a"), lib.Input((4,), name="b")
    both = L.Add(name="plus")([encoder(a), encoder(b)])
    score = lib.ops.squeeze(L.Dense(1, name="score")(both), axis=-1)
    return lib.Model([a, b], [score, both], name="shared_sequential")


def fresh(build, lib):
    """The model built with name counters reset, so auto-generated names (``multiply``,
    ``squeeze``) do not depend on what other tests built before in either library."""
    lib.utils.clear_session()
    return build(lib)


MODELS = [two_inputs, residual, shared, nested, multi_output, chain_two_outputs, keyword_tensors,
          graph_operations, unused_input_and_reuse, shared_sequential]

CASES = [
    dict(),
    dict(expand_nested=True),
    dict(expand_nested=True, show_trainable=True),
    dict(show_trainable=True, positions=[0.25, 0.5, 0.6, 1.0]),
]

PAIRS = [(columns, build, kwargs) for columns in (60, 80, 200) for build in MODELS for kwargs in CASES]


@pytest.mark.parametrize("columns,build,kwargs", PAIRS, ids=[
    f"{columns}cols-{build.__name__}-" + (",".join(f"{k}={v}" for k, v in kw.items()) or "default")
    for columns, build, kw in PAIRS])
def test_summary_text_equals_keras(keras, monkeypatch, columns, build, kwargs):
    monkeypatch.setenv("COLUMNS", str(columns))  # both read the terminal width
    theirs = summary_lines(fresh(build, keras), **kwargs)
    ours = summary_lines(fresh(build, amber), **kwargs)
    assert ours == theirs


@pytest.mark.parametrize("kwargs", [dict(line_length=150), dict(line_length=70, show_trainable=True),
                                    dict(layer_range=["joined", "left_dense"]), dict(layer_range=["head", "head"])])
def test_line_length_and_layer_range_like_keras(keras, monkeypatch, kwargs):
    monkeypatch.setenv("COLUMNS", "200")
    assert summary_lines(two_inputs(amber), **kwargs) == summary_lines(two_inputs(keras), **kwargs)


@pytest.mark.parametrize("build", [shared_sequential, two_inputs, nested])
def test_loaded_model_summary_like_keras(keras, monkeypatch, tmp_path, build):
    """A branching model saved and loaded back: the rebuilt graph prints the same table."""
    monkeypatch.setenv("COLUMNS", "80")
    texts = []
    for lib in (amber, keras):
        path = tmp_path / f"{lib.__name__}.keras"
        fresh(build, lib).save(path)
        texts.append(summary_lines(lib.models.load_model(path), expand_nested=True))
    assert texts[0] == texts[1]


def test_connections_name_keras_inbound_tensors(keras, monkeypatch):
    """The column read back from amber's wide table equals the (layer, node, tensor) history
    of the tensors each Keras layer was called on."""
    monkeypatch.setenv("COLUMNS", "300")
    for build in (shared, nested, two_inputs):  # wide enough that no cell wraps
        rows = [line.strip("│").split("│") for line in summary_lines(build(amber), line_length=250)
                if line.startswith("│") and line.split("│")[1].strip()]
        ours = {cells[0].split(" (")[0].strip(): cells[3].strip() for cells in rows}
        model = build(keras)
        graph = [node for nodes in model._nodes_by_depth.values() for node in nodes]
        for layer in model.layers:
            history = [t._keras_history for node in layer._inbound_nodes if node in graph
                       for t in node.input_tensors]
            expected = ", ".join(f"{h.operation.name}[{h.node_index}][{h.tensor_index}]" for h in history)
            assert ours[layer.name] == (expected or "-")
