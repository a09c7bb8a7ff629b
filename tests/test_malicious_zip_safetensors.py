"""The archive and safetensors cases of the shared hostile-file corpus, at the format level.

Each case runs in a fresh interpreter so its peak memory is its own; the contract is a clear
refusal (or a correct load for the controls) within 2 s and 300 MB. Content-level rules (a
missing ``config.json``, what the weights member holds) belong to the saving layer: here we
check that the archive layer hands it exactly what is in the file.
"""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from amber import _native


def find_shared():
    for parent in Path(__file__).resolve().parents[1:]:
        if (parent / "shared").is_dir():
            return parent / "shared"
    return Path(__file__).resolve().parents[1].parent / "shared"


MALICIOUS = find_shared() / "malicious"

# What the refusal message must name, per case: the problem, and the entry or tensor.
REFUSALS = {
    "zip_traversal_dotdot.keras": ["'..' segment", "entry '../"],
    "zip_symlink_entry.keras": ["symbolic-link", "entry 'assets/link'"],
    "zip_bomb_weights_1g.keras": ["decompression bomb", "entry 'model.weights.h5'", "declared size 1090519040"],
    "zip_duplicate_config.keras": ["duplicate entry name", "entry 'config.json'"],
    "st_header_len_gt_file.safetensors": ["header length 1000000 runs past the end"],
    "st_overlapping_offsets.safetensors": ["overlaps", "object 'dense/kernel'"],
}
# Left to the saving layer: the archive itself is well formed.
CONTENT_LEVEL = {"zip_missing_config.keras"}
CONTROLS = {"ok_extra_entries.keras", "ok_valid_safetensors.safetensors"}

RUNNER = r"""
import json, resource, sys, time
from amber import _native
path, kind = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
out = {}
try:
    if kind == "zip":
        a = _native.Archive.open(path)
        out["names"] = a.names()
        out["sizes"] = [len(a.read(n)) for n in a.names()]
    else:
        tensors, meta = _native.safetensors_load(path)
        out["tensors"] = {k: v.tolist() for k, v in tensors.items()}
        out["metadata"] = meta
except Exception as e:
    out["error"] = [type(e).__name__, str(e)]
out["seconds"] = time.perf_counter() - t0
out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def cases():
    if not (MALICIOUS / "MANIFEST.json").is_file():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"hostile corpus not found at {MALICIOUS}"))]
    manifest = json.loads((MALICIOUS / "MANIFEST.json").read_text())
    chosen = [c for c in manifest["cases"] if c["file"].startswith(("zip_", "st_")) or c["file"] in CONTROLS]
    known = set(REFUSALS) | CONTENT_LEVEL | CONTROLS
    assert {c["file"] for c in chosen} <= known, "a new corpus case needs an expectation here"
    return chosen


def run_case(path, kind):
    proc = subprocess.run([sys.executable, "-c", RUNNER, str(path), kind], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"process died ({proc.returncode}): {proc.stderr[-2000:]}"
    return json.loads(proc.stdout)


@pytest.mark.parametrize("case", cases(), ids=lambda c: c["file"] if c else "none")
def test_case(case):
    path = MALICIOUS / case["file"]
    kind = "st" if path.suffix == ".safetensors" else "zip"
    out = run_case(path, kind)
    assert out["seconds"] < 2.0, out
    assert out["peak_mb"] < 300, out
    name = case["file"]
    if name in REFUSALS:
        assert case["expected"] == "refuse"
        assert "error" in out, f"{name} was accepted: {out}"
        err_type, message = out["error"]
        assert err_type == "FormatError"
        assert name in message  # names the file
        for needle in REFUSALS[name]:
            assert needle in message, message
    elif name in CONTENT_LEVEL:
        # The archive is well formed; the saving layer refuses it for lacking config.json.
        assert "error" not in out, out
        assert "config.json" not in out["names"]
        with zipfile.ZipFile(path) as zf:
            assert out["names"] == zf.namelist()
    else:
        assert case["expected"] == "load"
        assert "error" not in out, out
        if kind == "zip":
            with zipfile.ZipFile(path) as zf:
                assert out["names"] == zf.namelist()
                assert out["sizes"] == [len(zf.read(n)) for n in zf.namelist()]
            assert "extra/empty/" in out["names"]
        else:
            kernel = np.array(out["tensors"]["dense/kernel"], dtype=np.float32)
            np.testing.assert_array_equal(kernel, (np.arange(32) / 32).astype(np.float32).reshape(32, 1))
            assert out["tensors"]["dense/bias"] == [0.5]
            assert out["metadata"]


def test_bomb_is_refused_before_inflating():
    """Even asked for directly, the bomb's member is never inflated past its bound."""
    path = MALICIOUS / "zip_bomb_weights_1g.keras"
    if not path.is_file():
        pytest.skip(f"hostile corpus not found at {MALICIOUS}")
    with pytest.raises(_native.FormatError, match="decompression bomb"):
        _native.Archive.open(str(path))
