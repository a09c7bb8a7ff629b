"""model.summary(expand_nested=..., show_trainable=..., layer_range=...) against the text real
Keras 3 prints (its rich table captured through print_fn), line for line, for a model holding a
nested Sequential (itself holding a Sequential) and a nested Functional."""

import numpy as np
import pytest

import amber
from test_framework_reference import keras_reference


@pytest.fixture(scope="module")
def keras():
    return keras_reference()


def build(lib):
    L = lib.layers
    deep = lib.Sequential([lib.Input((6,)), L.Dense(5, name="deep_dense_with_a_name_longer_than_its_column"),
                           L.Dropout(0.1, name="deep_drop")], name="deep")
    inner_seq = lib.Sequential([lib.Input((8,)), L.Dense(6, name="s_dense"), deep,
                                L.BatchNormalization(name="s_bn")], name="inner_seq")
    a = lib.Input((5,), name="fa")
    inner_fn = lib.Model(a, L.Dense(4, name="f_dense")(a), name="inner_fn")
    x = lib.Input((8,), name="x")
    out = L.Dense(1, name="head")(inner_fn(inner_seq(x)))
    model = lib.Model(x, out, name="outer")
    inner_fn.trainable = False
    deep.layers[0].trainable = False
    return model


def summary_lines(model, **kwargs):
    lines = []
    model.summary(print_fn=lambda text, **_: lines.extend(text.split("\n")), **kwargs)
    while lines and not lines[-1]:
        lines.pop()  # Keras hands print_fn the whole table ending in a newline
    return lines


CASES = [
    dict(expand_nested=True, show_trainable=True),
    dict(expand_nested=True),
    dict(show_trainable=True),
    dict(),
    dict(expand_nested=True, show_trainable=True, line_length=120),
    dict(expand_nested=True, line_length=50),
    dict(expand_nested=True, show_trainable=True, line_length=60),
    dict(expand_nested=True, positions=[0.3, 0.7, 1.0]),
    dict(positions=[0.5, 0.8, 0.9], line_length=100),
    dict(expand_nested=True, layer_range=["inner.*", "inner_fn"]),
    dict(expand_nested=True, show_trainable=True, layer_range=["head", "x"]),
]


# rich crops a table wider than the terminal, amber prints the width asked for: those
# combinations are compared in test_line_length_wider_than_terminal instead.
PAIRS = [(columns, kwargs) for columns in (80, 200, 60) for kwargs in CASES
         if kwargs.get("line_length", 0) <= columns]


@pytest.mark.parametrize("columns,kwargs", PAIRS, ids=[
    f"{columns}cols-" + (",".join(f"{k}={v}" for k, v in kw.items()) or "default") for columns, kw in PAIRS])
def test_summary_text_equals_keras(keras, monkeypatch, columns, kwargs):
    monkeypatch.setenv("COLUMNS", str(columns))  # both read the terminal width
    theirs = summary_lines(build(keras), **kwargs)
    ours = summary_lines(build(amber), **kwargs)
    assert ours == theirs


def test_expand_nested_structure(keras, monkeypatch):
    """The numbers and the nesting marks, stated independently of the exact layout."""
    monkeypatch.setenv("COLUMNS", "200")
    text = "\n".join(summary_lines(build(amber), expand_nested=True, show_trainable=True))
    rows = [line for line in text.splitlines() if line.startswith("│") and "(" in line]
    cells = [[cell.strip() for cell in row.strip("│").split("│")] for row in rows]
    named = {c[0].lstrip("└ ").split(" (")[0]: c for c in cells if c[0]}
    model = build(keras)
    for layer in (model.get_layer("inner_seq"), model.get_layer("inner_fn")):
        assert named[layer.name][2] == f"{layer.count_params():,}"
    assert named["deep_drop"][3] == "-" and named["f_dense"][3] == "N" and named["s_dense"][3] == "Y"
    assert "      └ deep_drop (Dropout)" in text  # two levels deep: 2 x 3 spaces, then the mark
    assert "   └ fa (InputLayer)" in text
    assert np.isclose(model.count_params(), build(amber).count_params())


def test_summary_argument_errors_like_keras(keras):
    for bad in (["x"], [1, 2], ["nothing_matches", "x"]):
        for lib in (amber, keras):
            with pytest.raises(ValueError):
                build(lib).summary(layer_range=bad, print_fn=lambda *a, **k: None)
    for lib in (amber, keras):
        with pytest.raises(ValueError, match="Insufficient console width"):
            build(lib).summary(line_length=10, print_fn=lambda *a, **k: None)


def test_line_length_wider_than_terminal(keras, monkeypatch):
    """Keras's table for line_length=120 in an 80-column terminal, uncropped: the same as
    Keras prints in a wide terminal."""
    monkeypatch.setenv("COLUMNS", "200")
    theirs = summary_lines(build(keras), expand_nested=True, show_trainable=True, line_length=120)
    monkeypatch.setenv("COLUMNS", "80")
    ours = summary_lines(build(amber), expand_nested=True, show_trainable=True, line_length=120)
    assert ours == theirs
    assert max(len(line) for line in ours) == 120
