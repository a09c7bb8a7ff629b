"""The command line: demo, inspect, diff, convert. References: h5py, numpy, real Keras."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "interop" / "fixtures"
needs_corpus = pytest.mark.skipif(not FIXTURES.is_dir(), reason="shared interop corpus not present")


def amber(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "amber", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_demo_runs_and_reports_equal_predictions(tmp_path):
    out = amber("demo", "--dir", tmp_path)
    assert out.returncode == 0, out.stderr
    assert "predictions equal to the original model's: True" in out.stdout
    assert "read-only view of the file: True" in out.stdout
    with h5py.File(tmp_path / "mlp.weights.h5", "r") as f:
        assert f["layers/dense/vars/0"].shape == (784, 64)


@needs_corpus
def test_inspect_lists_what_h5py_sees():
    path = FIXTURES / "mlp_3layer.weights.h5"
    out = amber("inspect", path)
    assert out.returncode == 0, out.stderr
    with h5py.File(path, "r") as f:
        names = []
        f.visititems(lambda n, o: names.append((n, o.shape)) if isinstance(o, h5py.Dataset) else None)
    for name, shape in names:
        assert any(line.split()[0] == name and line.endswith(str(tuple(shape))) for line in out.stdout.splitlines()), name


@needs_corpus
def test_diff_finds_exactly_the_changed_tensor(tmp_path):
    a = tmp_path / "a.weights.h5"
    b = tmp_path / "b.weights.h5"
    shutil.copy(FIXTURES / "mlp_3layer.weights.h5", a)
    shutil.copy(a, b)
    assert amber("diff", a, b).returncode == 0
    with h5py.File(b, "r+") as f:
        f["layers/dense_1/vars/1"][3] += 0.5
    out = amber("diff", a, b)
    assert out.returncode == 1
    assert "layers/dense_1/vars/1: max |A-B| = 0.5" in out.stdout
    assert "1 differ" in out.stdout


@needs_corpus
def test_convert_legacy_h5_to_keras_loads_in_keras(tmp_path):
    os.environ.setdefault("KERAS_BACKEND", "numpy")
    keras = pytest.importorskip("keras")
    dst = tmp_path / "k2.keras"
    out = amber("convert", FIXTURES / "keras2_mlp_adam.h5", dst)
    assert out.returncode == 0, out.stderr
    model = keras.models.load_model(dst)
    x = np.load(FIXTURES / "keras2_mlp_adam.input.npy")
    np.testing.assert_allclose(model.predict(x, verbose=0), np.load(FIXTURES / "keras2_mlp_adam.expected.npy"),
                               rtol=1e-5, atol=1e-5)


def test_bad_file_is_a_clear_error_not_a_traceback(tmp_path):
    bad = tmp_path / "x.weights.h5"
    bad.write_bytes(b"not an hdf5 file at all" * 4)
    out = amber("inspect", bad)
    assert out.returncode == 2
    assert "not an HDF5 file" in out.stderr and "Traceback" not in out.stderr
