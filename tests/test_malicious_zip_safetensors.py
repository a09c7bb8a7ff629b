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

import numpy as np
import pytest

from amber import _native
from _shared_corpus import find_shared


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
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork+exec, so a child of a big pytest
# process would report its parent's peak.
out["peak_mb"] = int(next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM:"))) / 1024
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


# ---------------------------------------------------------------- synthetic hostile files
# Built here with zipfile/struct/json (not with amber), for the rules the corpus has no file for.


def zip_bytes(entries, **kw):
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data, method in entries:
            zf.writestr(zipfile.ZipInfo(name) if isinstance(name, str) else name, data, compress_type=method)
        for k, v in kw.items():
            setattr(zf, k, v)
    return bytearray(buf.getvalue())


def central_record(raw, nth=0):
    at = -1
    for _ in range(nth + 1):
        at = raw.index(b"PK\x01\x02", at + 1)
    return at


def many_entries():
    return zip_bytes([(str(i), b"", zipfile.ZIP_STORED) for i in range(20_000)])


def crc_flipped():
    raw = zip_bytes([("model.weights.h5", b"\x89HDF\r\n" + bytes(200), zipfile.ZIP_STORED)])
    raw[raw.index(b"\x89HDF") + 10] ^= 0xFF
    return raw


def encrypted_flag():
    raw = zip_bytes([("config.json", b"{}", zipfile.ZIP_STORED)])
    raw[6] |= 1
    raw[central_record(raw) + 8] |= 1
    return raw


def local_name_differs():
    raw = zip_bytes([("config.json", b"{}", zipfile.ZIP_STORED)])
    raw[30] = ord("C")
    return raw


def local_method_differs():
    raw = zip_bytes([("config.json", b"{}" * 100, zipfile.ZIP_DEFLATED)])
    raw[8] = 0
    return raw


def declared_size_absurd():
    raw = zip_bytes([("model.weights.h5", bytes(5000), zipfile.ZIP_DEFLATED)])
    cd = central_record(raw)
    raw[cd + 24 : cd + 28] = (0xFFFFFFF0).to_bytes(4, "little")
    raw[22:26] = (0xFFFFFFF0).to_bytes(4, "little")
    return raw


def zip64_size_absurd():
    # A zip64 extra field in the central directory claiming an exabyte for a tiny entry.
    raw = zip_bytes([("model.weights.h5", bytes(100), zipfile.ZIP_DEFLATED)])
    cd = central_record(raw)
    name_len = int.from_bytes(raw[cd + 28 : cd + 30], "little")
    extra = (1).to_bytes(2, "little") + (8).to_bytes(2, "little") + (1 << 60).to_bytes(8, "little")
    raw[cd + 24 : cd + 28] = b"\xff\xff\xff\xff"
    raw[cd + 30 : cd + 32] = len(extra).to_bytes(2, "little")
    at = cd + 46 + name_len
    raw[at:at] = extra
    eocd = raw.rindex(b"PK\x05\x06")
    cd_size = int.from_bytes(raw[eocd + 12 : eocd + 16], "little") + len(extra)
    raw[eocd + 12 : eocd + 16] = cd_size.to_bytes(4, "little")
    return raw


def compressed_past_end():
    raw = zip_bytes([("a", b"x" * 100, zipfile.ZIP_STORED)])
    cd = central_record(raw)
    for off in (cd + 20, cd + 24, 18, 22):
        raw[off : off + 4] = (10_000_000).to_bytes(4, "little")
    return raw


def truncated_directory():
    raw = zip_bytes([("config.json", b"{}", zipfile.ZIP_STORED), ("b", b"1", zipfile.ZIP_STORED)])
    return raw[: central_record(raw, 1) + 10]


def odd_names(name):
    return lambda: zip_bytes([("ok.txt", b"1", zipfile.ZIP_STORED), (name, b"x", zipfile.ZIP_STORED)])


SYNTHETIC_ZIPS = {
    "many_entries": (many_entries, "at most 10000"),
    "crc_flipped": (crc_flipped, "CRC32 mismatch"),
    "encrypted_flag": (encrypted_flag, "encrypted"),
    "local_name_differs": (local_name_differs, "local header disagrees"),
    "local_method_differs": (local_method_differs, "local header disagrees"),
    "declared_size_absurd": (declared_size_absurd, "decompression bomb"),
    "zip64_size_absurd": (zip64_size_absurd, "decompression bomb"),
    "compressed_past_end": (compressed_past_end, "past the end of the file"),
    "truncated_directory": (truncated_directory, "not a readable zip archive"),
    "absolute_name": (odd_names("/etc/passwd"), "absolute entry name"),
    "backslash_name": (odd_names("..\\evil"), "backslash"),
    "drive_letter_name": (odd_names("C:/evil"), "drive letter"),
}


@pytest.mark.parametrize("case", sorted(SYNTHETIC_ZIPS))
def test_synthetic_hostile_zip(tmp_path, case):
    import time

    build, needle = SYNTHETIC_ZIPS[case]
    path = tmp_path / f"{case}.keras"
    path.write_bytes(bytes(build()))
    t0 = time.perf_counter()
    with pytest.raises(_native.FormatError) as info:
        a = _native.Archive.open(str(path))
        for name in a.names():
            a.read(name)
    assert time.perf_counter() - t0 < 2.0
    message = str(info.value)
    assert needle in message and f"{case}.keras" in message, message


def st_file(header, data=b""):
    body = header if isinstance(header, bytes) else json.dumps(header).encode()
    return (len(body)).to_bytes(8, "little") + body + data


F32_2 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
SYNTHETIC_ST = {
    "header_over_limit": ((200_000_000).to_bytes(8, "little") + b"{}", "exceeds the limit"),
    "too_short": (b"\x01\x02", "too short"),
    "not_json": (st_file(b"{not json"), "not a valid JSON object"),
    "not_an_object": (st_file([1, 2]), "not a valid JSON object"),
    "duplicate_key": (st_file(b'{"a":' + json.dumps(F32_2).encode() + b',"a":' + json.dumps(F32_2).encode() + b"}", bytes(8)), "duplicate key 'a'"),
    "unknown_dtype": (st_file({"a": {"dtype": "Q7", "shape": [1], "data_offsets": [0, 1]}}, bytes(1)), "'Q7' is not supported"),
    "negative_dim": (st_file({"a": {"dtype": "U8", "shape": [-1], "data_offsets": [0, 1]}}, bytes(1)), "non-negative"),
    "size_mismatch": (st_file({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, bytes(8)), "needs 12 bytes"),
    "shape_overflow": (st_file({"a": {"dtype": "F64", "shape": [2**32, 2**32], "data_offsets": [0, 8]}}, bytes(8)), "2^64"),
    "offsets_past_data": (st_file({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, bytes(8)), "run past the data section"),
    "gap": (st_file({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, bytes(8)), "gap"),
    "trailing_bytes": (st_file({"a": F32_2}, bytes(12)), "trailing bytes"),
    "reversed_offsets": (st_file({"a": {"dtype": "U8", "shape": [0], "data_offsets": [4, 0]}}, bytes(4)), "end before they begin"),
    "metadata_not_strings": (st_file({"__metadata__": {"k": 1}}), "not a string"),
}


@pytest.mark.parametrize("case", sorted(SYNTHETIC_ST))
def test_synthetic_hostile_safetensors(tmp_path, case):
    content, needle = SYNTHETIC_ST[case]
    path = tmp_path / f"{case}.safetensors"
    path.write_bytes(content)
    with pytest.raises(_native.FormatError) as info:
        _native.safetensors_load(str(path))
    message = str(info.value)
    assert needle in message and f"{case}.safetensors" in message, message
