"""Keras-written ``.keras`` files load with no copy: Keras places float32 datasets 2 bytes off a
multiple of 4 inside its zips, and a mapped ``load_model`` hands those misaligned read-only
views of the file straight to the model. References: the file's own bytes (read with Python's
zipfile offsets and plain file reads), h5py, and Keras's recorded outputs in the corpus."""

import json
from pathlib import Path

import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FIXTURES = SHARED / "interop" / "fixtures"

pytestmark = pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"shared interop corpus not found at {FIXTURES}")

# Written by Keras 3 with float32 weights at misaligned places (whether Keras's layout
# misaligns a file's data depends on its entry's offset in the zip; these do).
KERAS_FILES = ["cnn_small.keras", "mobilenetv2_small.keras", "seq_bn_dropout.keras", "text_lstm.keras"]
# Cases with Keras's after-fit outputs, misaligned as above.
FIT_FILES = ["opt_sgd.keras", "opt_adam_amsgrad.keras", "opt_nadam.keras"]


def _case(model_file):
    cases = json.loads((FIXTURES / "MANIFEST.json").read_text())["cases"]
    return next(c for c in cases if any(f["file"] == model_file for f in c["model_files"]))


def _mapped_view(array):
    """The ``MappedView`` at the end of ``array``'s base chain, or None."""
    from amber import _native

    base = array
    while base is not None:
        if isinstance(base, _native.MappedView):
            return base
        base = getattr(base, "base", None)
    return None


def _file_offset(array, view):
    """Where ``array``'s first byte lies in the mapped file."""
    return view.offset + (array.__array_interface__["data"][0] - view.__array_interface__["data"][0])


def _h5py_weights(path):
    import io
    import zipfile

    h5py = pytest.importorskip("h5py")
    with zipfile.ZipFile(path) as z:
        data = z.read("model.weights.h5")
    out = []
    with h5py.File(io.BytesIO(data), "r") as f:
        f.visititems(lambda name, obj: out.append(obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


@pytest.mark.parametrize("model_file", KERAS_FILES)
def test_keras_file_weights_are_views_of_the_file(model_file, native_io):
    import amber as keras

    path = FIXTURES / model_file
    model = keras.saving.load_model(str(path), compile=False)
    file_bytes = path.read_bytes()
    misaligned = 0
    for variable in model.weights:
        value = variable.value
        assert isinstance(value, np.ndarray)
        view = _mapped_view(value)
        assert view is not None, f"{variable.path}: not a view of the mapped file (copied)"
        assert not value.flags.writeable, variable.path
        # The array's memory is the file's bytes at the offset the view reports.
        start = _file_offset(value, view)
        assert 0 <= start and start + value.nbytes <= len(file_bytes)
        stored = np.frombuffer(file_bytes, dtype=value.dtype, count=value.size, offset=start)
        np.testing.assert_array_equal(stored.reshape(value.shape), value)
        misaligned += not value.flags.aligned
    # The case under test: Keras's layout leaves float32 data misaligned in the mapping.
    assert misaligned > 0
    # Every stored dataset (h5py's reading) is what the model holds, in some order.
    ours = sorted(np.asarray(v.value).tobytes() for v in model.weights)
    theirs = [a.tobytes() for a in _h5py_weights(path)]
    assert set(ours) <= set(theirs)


@pytest.mark.parametrize("model_file", KERAS_FILES)
def test_mapped_keras_file_predicts_kerass_outputs(model_file, native_io):
    import amber as keras

    case = _case(model_file)
    model = keras.saving.load_model(str(FIXTURES / model_file), compile=False)
    assert any(not np.asarray(v.value).flags.aligned for v in model.weights)
    x = np.load(FIXTURES / f"{case['name']}.input.npy")
    expected = np.load(FIXTURES / f"{case['name']}.expected.npy")
    tol = case.get("tolerance", {"rtol": 1e-5, "atol": 1e-5})
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=tol["rtol"], atol=tol["atol"])


@pytest.mark.parametrize("model_file", FIT_FILES)
def test_fit_after_mapped_load_copies_on_write(model_file, native_io):
    """Training a mapped Keras file reproduces Keras's after-fit outputs and leaves the
    mapped views (and the file) unchanged."""
    import amber as keras

    case = _case(model_file)
    after = case["after_fit"]
    path = FIXTURES / model_file
    before_file = path.read_bytes()
    model = keras.saving.load_model(str(path))
    loaded = {v.path: v.value for v in model.trainable_weights}
    snapshots = {name: np.array(value) for name, value in loaded.items()}
    assert any(not value.flags.aligned for value in loaded.values())
    x, y = np.load(FIXTURES / after["fit_x"]), np.load(FIXTURES / after["fit_y"])
    model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
    np.testing.assert_allclose(
        model.predict(np.load(FIXTURES / f"{case['name']}.input.npy"), verbose=0),
        np.load(FIXTURES / after["expected"]),
        rtol=after["tolerance"]["rtol"],
        atol=after["tolerance"]["atol"],
    )
    for v in model.trainable_weights:
        assert not np.array_equal(np.asarray(v.value), snapshots[v.path]), f"{v.path} did not train"
        np.testing.assert_array_equal(loaded[v.path], snapshots[v.path])
    assert path.read_bytes() == before_file


def test_copied_load_still_aligns(native_io):
    import amber as keras

    model = keras.saving.load_model(str(FIXTURES / "cnn_small.keras"), compile=False, mmap=False)
    for variable in model.weights:
        value = np.asarray(variable.value)
        assert value.flags.aligned and _mapped_view(value) is None, variable.path
