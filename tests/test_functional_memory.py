"""A Functional model's forward pass drops each intermediate output once its last reader has
run (``Functional._release_schedule``), instead of holding every activation until the end.

Observed with a weak reference to an intermediate array: a probe layer later in the graph
records whether that array still exists when it runs."""

import weakref

import numpy as np

import amber
from amber import layers


class Tracked(np.ndarray):
    """An ndarray view that can be weakly referenced."""


class Mark(layers.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.refs = []

    def call(self, x):
        marked = np.asarray(x).view(Tracked)
        self.refs.append(weakref.ref(marked))
        return marked


class Probe(layers.Layer):
    """Identity that records, when it runs, whether the marked arrays are still alive."""

    def __init__(self, mark, **kwargs):
        super().__init__(**kwargs)
        self.mark = mark
        self.seen_alive = []

    def call(self, x):
        self.seen_alive.append([ref() is not None for ref in self.mark.refs])
        return x


def build(branch_reads_mark_late):
    inputs = amber.Input((6,))
    mark = Mark()
    marked = mark(inputs)
    hidden = layers.Dense(5, name="first")(marked)
    hidden = layers.Dense(4, name="second")(hidden)
    probe = Probe(mark)
    probed = probe(hidden)
    if branch_reads_mark_late:
        # The marked array is read again after the probe: it must still be there.
        outputs = layers.Concatenate()([probed, layers.Dense(2, name="late")(marked)])
    else:
        outputs = probed
    return amber.Model(inputs, outputs), mark, probe


def test_an_intermediate_is_dropped_after_its_last_reader():
    model, mark, probe = build(branch_reads_mark_late=False)
    x = np.random.default_rng(0).normal(size=(3, 6)).astype("float32")
    mark.refs.clear()
    probe.seen_alive.clear()
    model(x)
    assert probe.seen_alive == [[False]]


def test_an_intermediate_read_later_is_kept_until_then_and_results_are_unchanged():
    model, mark, probe = build(branch_reads_mark_late=True)
    x = np.random.default_rng(1).normal(size=(3, 6)).astype("float32")
    mark.refs.clear()
    probe.seen_alive.clear()
    y = np.asarray(model(x))
    assert probe.seen_alive == [[True]]
    first, second, late = (model.get_layer(name) for name in ("first", "second", "late"))
    h = (x @ first.kernel.numpy() + first.bias.numpy()) @ second.kernel.numpy() + second.bias.numpy()
    expected = np.concatenate([h, x @ late.kernel.numpy() + late.bias.numpy()], axis=1)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)
