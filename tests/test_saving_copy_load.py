"""Copied loads (``load_model(mmap=False)``, and Keras files whose datasets sit at unaligned
addresses): the arrays equal h5py's reading of the same entry, are private and writable, and
the copy does not keep the mapped file resident next to it."""

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FIXTURES = SHARED / "interop" / "fixtures"


def _h5py_datasets(keras_path):
    """Every dataset of the archive's weights entry, read by h5py through zipfile."""
    with zipfile.ZipFile(keras_path) as z:
        data = z.read("model.weights.h5")
    out = {}
    with h5py.File(io.BytesIO(data), "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


def _is_mapped_view(array):
    base = array
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    return type(base).__name__ == "MappedView"


def _big_model(keras, units):
    model = keras.Sequential([keras.Input((units,)), keras.layers.Dense(units), keras.layers.Dense(3)])
    rng = np.random.default_rng(0)
    model.set_weights([rng.standard_normal(w.shape).astype("float32") for w in model.weights])
    return model


def test_copied_load_equals_h5py_and_owns_its_arrays(tmp_path, native_io):
    import amber as keras

    # 2048 x 2048 float32 is 16 MiB: more than one copy step, and large enough for huge pages.
    model = _big_model(keras, 2048)
    path = tmp_path / "big.keras"
    model.save(str(path))
    reference = _h5py_datasets(path)
    copied = keras.saving.load_model(str(path), mmap=False)
    mapped = keras.saving.load_model(str(path))
    for i, layer in enumerate(copied.layers):
        group = "layers/dense" + (f"_{i}" if i else "")
        for j, variable in enumerate(layer.weights):
            value = np.asarray(variable.value)
            np.testing.assert_array_equal(value, reference[f"{group}/vars/{j}"])
            assert value.flags.writeable and value.flags.aligned and value.flags.c_contiguous
            assert not _is_mapped_view(value)
    # The mapped load still hands out read-only views of the same bytes.
    kernel = np.asarray(mapped.layers[0].kernel.value)
    assert _is_mapped_view(kernel) and not kernel.flags.writeable
    np.testing.assert_array_equal(kernel, reference["layers/dense/vars/0"])
    # Writing into a copy changes neither the file nor the mapped model.
    np.asarray(copied.layers[0].kernel.value)[0, 0] += 1.0
    np.testing.assert_array_equal(kernel, reference["layers/dense/vars/0"])


def test_native_copy_read_matches_view_and_h5py(tmp_path, native_io):
    rng = np.random.default_rng(3)
    arrays = {
        "a": rng.standard_normal((1500, 1500)).astype("float32"),  # 9 MB, crosses a copy step
        "b": rng.integers(-5, 5, (7, 3)).astype("int64"),
        "c": np.zeros((0, 4), "float64"),
    }
    writer = native_io.H5Writer()
    for name, value in arrays.items():
        writer.create_dataset(name, value)
    archive_path = tmp_path / "x.keras"
    archive = native_io.ArchiveWriter(str(archive_path))
    archive.add_h5("model.weights.h5", writer)
    archive.finish()
    reference = _h5py_datasets(archive_path)
    h5 = native_io.Archive.open(str(archive_path)).open_h5("model.weights.h5")
    for name in arrays:
        view, copy = h5.read(name), h5.read(name, copy=True)
        assert copy.dtype == reference[name].dtype and copy.shape == reference[name].shape
        np.testing.assert_array_equal(copy, reference[name])
        np.testing.assert_array_equal(view, copy)
        assert copy.flags.writeable
    # The view is still intact after its pages were copied (and dropped from this process).
    np.testing.assert_array_equal(h5.read("a"), arrays["a"])


def test_unaligned_keras_datasets_are_copied_aligned(native_io):
    if not FIXTURES.is_dir():
        pytest.skip(f"shared corpus not found at {FIXTURES}")
    import amber as keras

    path = FIXTURES / "cnn_small.keras"
    reference = _h5py_datasets(path)
    h5 = native_io.Archive.open(str(path)).open_h5("model.weights.h5")
    unaligned = [name for name in reference if not h5.read(name).flags.aligned]
    # Mapped loads keep such views in place (tests/test_unaligned_*); copied loads align.
    model = keras.saving.load_model(str(path), compile=False, mmap=False)
    for name, value in reference.items():
        copy = h5.read(name, copy=True)
        np.testing.assert_array_equal(copy, value)
        assert copy.flags.aligned
    for variable in model.weights:
        assert np.asarray(variable.value).flags.aligned
    # Keras places this file's float32 datasets at odd offsets: the case being tested.
    assert unaligned


_PEAK_SCRIPT = r"""
import json, sys
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
import amber, amber.saving
import numpy as np
before = hwm()
model = amber.saving.load_model(sys.argv[1], mmap=False)
peak = hwm() - before
print(json.dumps({"peak": peak, "nbytes": sum(np.asarray(w.value).nbytes for w in model.weights)}))
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="VmHWM is read from Linux's /proc")
def test_copied_load_keeps_one_copy_resident(tmp_path, native_io):
    import amber as keras

    model = _big_model(keras, 4096)  # 64 MiB of weights
    path = tmp_path / "big.keras"
    model.save(str(path))
    out = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, str(path)], capture_output=True, text=True,
                         check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    # Copying through the mapping used to keep every mapped page resident too (2x).
    assert result["peak"] < 1.4 * result["nbytes"], result
