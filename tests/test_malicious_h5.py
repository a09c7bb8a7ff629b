"""Hostile and damaged HDF5 files: refused with a clear error, within 2 s and 300 MB, never a
crash, hang or panic; whatever still reads must read correctly.

Cases: the `h5_*` files of the shared malicious corpus (with their controls), plus
truncations and bit flips of valid files generated here with h5py.
"""

import json
import subprocess
import sys
import time

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")
from amber import _native  # noqa: E402
from amber._native import H5File  # noqa: E402
from _shared_corpus import find_shared  # noqa: E402


MALICIOUS = find_shared("malicious") / "malicious"

# What each refusal must name, beyond the file: the object or the problem.
EXPECTED_MESSAGES = {
    "h5_group_cycle.weights.h5": ["cycle", "/layers/dense/vars/loop"],
    "h5_huge_shape.weights.h5": ["/layers/dense/vars/0", "1000000000000", "bytes"],
    "h5_not_hdf5.weights.h5": ["not an HDF5 file", "offset 0"],
    "h5_truncated_legacy.h5": ["past the end", "offset"],
}

# Reads every object of a file in a fresh interpreter and reports the outcome, the time it
# took and the process's peak memory, so a crash or a memory blow-up cannot hide.
WALKER = r"""
import json, resource, sys, time
from amber._native import H5File
path = sys.argv[1]
start = time.perf_counter()
outcome = {"ok": True}
try:
    f = H5File.open(path)
    for name, kind in [("/", "group")] + f.visit():
        f.attrs(name)
        if kind == "group":
            f.keys(name)
        else:
            f.read(name)
except Exception as e:
    outcome = {"ok": False, "type": type(e).__name__, "message": str(e)}
outcome["seconds"] = time.perf_counter() - start
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork+exec, so a child of a big pytest
# process would report its parent's peak.
outcome["peak_mb"] = int(next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM:"))) / 1024
print(json.dumps(outcome))
"""


def walk_in_subprocess(path):
    proc = subprocess.run([sys.executable, "-c", WALKER, str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"walker died (code {proc.returncode}): {proc.stderr[-2000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def manifest_cases():
    if not (MALICIOUS / "MANIFEST.json").is_file():
        return []
    cases = json.loads((MALICIOUS / "MANIFEST.json").read_text())["cases"]
    return [c for c in cases if c["file"].startswith(("h5_", "ok_")) and c["file"].endswith(".h5")]


def test_corpus_has_hdf5_cases():
    if not MALICIOUS.is_dir():
        pytest.skip(f"shared malicious corpus not present at {MALICIOUS}")
    names = {c["file"] for c in manifest_cases()}
    assert set(EXPECTED_MESSAGES) <= names


@pytest.mark.parametrize("case", manifest_cases(), ids=lambda c: c["id"])
def test_malicious_corpus_case(case):
    path = MALICIOUS / case["file"]
    outcome = walk_in_subprocess(path)
    assert outcome["seconds"] < 2.0, outcome
    assert outcome["peak_mb"] < 300, outcome
    if case["expected"] == "refuse":
        assert not outcome["ok"], f"{case['file']} was read without complaint"
        assert outcome["type"] == "FormatError", outcome
        assert str(path) in outcome["message"], outcome
        for needle in EXPECTED_MESSAGES[case["file"]]:
            assert needle in outcome["message"], (needle, outcome["message"])
    else:
        assert outcome["ok"], outcome


@pytest.mark.parametrize("name", ["ok_valid_weights.weights.h5", "ok_valid_legacy.h5"])
def test_malicious_corpus_controls_hold_the_control_values(name):
    path = MALICIOUS / name
    if not path.is_file():
        pytest.skip(f"{path} not present")
    f = H5File.open(str(path))
    datasets = {p: f.read(p) for p, k in f.visit() if k == "dataset"}
    kernels = [a for a in datasets.values() if a.shape == (32, 1)]
    biases = [a for a in datasets.values() if a.shape == (1,) and a.dtype == np.float32]
    assert kernels and biases
    np.testing.assert_array_equal(kernels[0], (np.arange(32) / 32).reshape(32, 1).astype("f4"))
    np.testing.assert_array_equal(biases[0], np.array([0.5], "f4"))


# ---------------------------------------------------------------------------- damaged valid files


def make_valid(path, libver):
    rng = np.random.default_rng(7)
    with h5py.File(path, "w", libver=libver) as f:
        f.attrs["keras_version"] = "3.15.0"
        f.attrs["layer_names"] = [b"dense", b"dense_1"]
        g = f.create_group("layers/dense/vars")
        g.create_dataset("0", data=rng.standard_normal((16, 8)).astype("f4"))
        g.create_dataset("1", data=np.arange(8, dtype=">f8"))
        g.create_dataset("z", data=rng.standard_normal((40, 30)).astype("f4"), chunks=(8, 8), compression="gzip", shuffle=True)
        g.create_dataset("b", data=np.array([True, False, True]))
        # Growable: an extensible-array (latest) or v1 B-tree (earliest) chunk index.
        g.create_dataset("grow", data=np.arange(300, dtype="i2"), chunks=(2,), maxshape=(None,), fletcher32=True)
        for i in range(12):
            g.attrs[f"a{i}"] = np.arange(i + 1, dtype="i4")
            f.create_group(f"many/g{i}")
        f["many"].attrs["names"] = np.array(["x", "yy", "zzz"], dtype=h5py.string_dtype())


def full_walk(f: H5File):
    """Everything readable, by path; raises on the first refusal."""
    seen = {}
    for name, kind in [("/", "group")] + f.visit():
        seen[(name, "attrs")] = f.attrs(name)
        if kind == "group":
            seen[(name, "keys")] = f.keys(name)
        else:
            seen[(name, "data")] = np.array(f.read(name))
    return seen


def walk_damaged(data: bytes):
    """Open and walk; only amber's own refusals are acceptable failures (a panic surfaces as
    pyo3's PanicException, which is not an Exception subclass and fails the test)."""
    start = time.perf_counter()
    try:
        f = H5File.from_bytes(data, label="damaged.h5")
    except (_native.FormatError, KeyError) as e:
        assert "damaged.h5" in str(e)
        return None
    results = {}
    for step in ("visit", "objects"):
        try:
            if step == "visit":
                f.visit()
            else:
                results = full_walk(f)
        except (_native.FormatError, KeyError) as e:
            assert str(e), "refusal without a message"
    assert time.perf_counter() - start < 2.0
    return results


def same(a, b):
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


@pytest.mark.parametrize("libver", ["earliest", "latest"])
def test_truncated_files_are_refused_or_read_correctly(tmp_path, libver):
    path = tmp_path / "valid.h5"
    make_valid(path, libver)
    data = path.read_bytes()
    original = full_walk(H5File.open(str(path)))
    for cut in sorted(set(np.linspace(0, len(data) - 1, 150).astype(int).tolist())):
        results = walk_damaged(data[:cut])
        for key, value in (results or {}).items():
            # Whatever reads from a truncated file reads exactly as from the whole file.
            assert key in original and same(value, original[key]), (cut, key)


@pytest.mark.parametrize("libver", ["earliest", "latest"])
def test_bit_flips_never_crash_or_hang(tmp_path, libver):
    path = tmp_path / "valid.h5"
    make_valid(path, libver)
    data = path.read_bytes()
    rng = np.random.default_rng(123 if libver == "earliest" else 456)
    for _ in range(400):
        damaged = bytearray(data)
        for pos in rng.integers(0, len(data), size=rng.integers(1, 4)):
            damaged[pos] ^= 1 << int(rng.integers(0, 8))
        walk_damaged(bytes(damaged))


def test_corrupted_fields_name_the_problem(tmp_path):
    """Targeted damage to structures h5py reports the addresses of."""
    path = tmp_path / "valid.h5"
    make_valid(path, "latest")
    with h5py.File(path, "r") as f:
        header = h5py.h5o.get_info(f["layers/dense/vars/0"].id).addr
        data_offset = f["layers/dense/vars/0"].id.get_offset()
    raw = path.read_bytes()
    # A v2 object header is checksummed: one flipped byte inside it is caught.
    damaged = bytearray(raw)
    damaged[header + 6] ^= 0x01
    f = H5File.from_bytes(bytes(damaged), label="hdr.h5")
    with pytest.raises(_native.FormatError, match="checksum"):
        f.read("layers/dense/vars/0")
    # Cut in the middle of the dataset's data: metadata written after it (a header
    # continuation of the root or a parent group) or the data itself is found missing, and named.
    with pytest.raises(_native.FormatError, match=r"cut\.h5.*object '/.*past the end of the file"):
        H5File.from_bytes(raw[: data_offset + 10], label="cut.h5").read("layers/dense/vars/0")


def test_deep_nesting_is_bounded(tmp_path):
    """Groups nested past the walk's depth bound are refused, not followed until the stack ends."""
    path = tmp_path / "deep.h5"
    with h5py.File(path, "w") as f:
        g = f
        for _ in range(1100):
            g = g.create_group("g")
        g["d"] = np.arange(2)
    f = H5File.open(str(path))
    start = time.perf_counter()
    with pytest.raises(_native.FormatError, match="deeper than"):
        f.visit()
    # A direct path walk is finite and works.
    assert f.read("/".join(["g"] * 1100) + "/d").tolist() == [0, 1]
    assert time.perf_counter() - start < 2.0


def test_chunk_claiming_a_huge_decoded_size_is_refused(tmp_path):
    """A deflated dataset whose chunk shape is enlarged in the layout message (so one small
    stored chunk claims gigabytes) is refused before inflating or allocating."""
    path = tmp_path / "claim.h5"
    with h5py.File(path, "w", libver="earliest") as f:
        f.create_dataset("d", data=np.zeros((64,), "f4"), chunks=(64,), compression="gzip", maxshape=(None,))
        header = h5py.h5o.get_info(f["d"].id).addr
    raw = bytearray(path.read_bytes())
    # Layout message v3, chunked class: version 3, class 2, rank+1, address, then 4-byte dims.
    at = raw.find(bytes([3, 2, 2]), header)
    assert at > 0
    dims_at = at + 3 + 8
    assert int.from_bytes(raw[dims_at : dims_at + 4], "little") == 64
    raw[dims_at : dims_at + 4] = (1 << 28).to_bytes(4, "little")
    f = H5File.from_bytes(bytes(raw), label="claim.h5")
    start = time.perf_counter()
    with pytest.raises(_native.FormatError, match="claims to decode|shape"):
        f.read("d")
    assert time.perf_counter() - start < 2.0
