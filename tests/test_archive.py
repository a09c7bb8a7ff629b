"""Zip archives: amber's writer and reader against Python's zipfile, and the Keras corpus."""

import os
import struct
import zipfile
import zlib

import pytest
from hypothesis import given, settings, strategies as st

from amber import _native
from _shared_corpus import find_shared


SHARED = find_shared()
FIXTURES = SHARED / "interop" / "fixtures"


def local_data_offset(path, info):
    """Where an entry's data starts, from its local header (independent of amber)."""
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        header = f.read(30)
    sig, *_, name_len, extra_len = struct.unpack("<IHHHHHIIIHH", header)
    assert sig == 0x04034B50
    return info.header_offset + 30 + name_len + extra_len


def write_with_amber(path, entries):
    w = _native.ArchiveWriter(str(path))
    for name, data, deflate in entries:
        w.add_bytes(name, data, deflate)
    w.finish()


def test_zipfile_reads_what_amber_writes(tmp_path):
    path = tmp_path / "m.keras"
    payload = bytes(range(256)) * 400
    entries = [
        ("metadata.json", b'{"keras_version": "3"}', False),
        ("config.json", b'{"class_name": "Sequential"}' * 50, True),
        ("model.weights.h5", payload, False),
        ("assets/empty.bin", b"", False),
    ]
    write_with_amber(path, entries)
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None  # every CRC checks out
        assert zf.namelist() == [e[0] for e in entries]
        for name, data, deflate in entries:
            info = zf.getinfo(name)
            assert zf.read(name) == data
            assert info.CRC == zlib.crc32(data)
            assert info.compress_type == (zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED)
            if not deflate:
                assert local_data_offset(path, info) % 64 == 0, name
    # amber's own table agrees with zipfile's
    a = _native.Archive.open(str(path))
    with zipfile.ZipFile(path) as zf:
        for e in a.entries():
            info = zf.getinfo(e["name"])
            assert e["data_offset"] == local_data_offset(path, info)
            assert (e["size"], e["compressed_size"], e["crc32"]) == (info.file_size, info.compress_size, info.CRC)
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_amber_reads_what_zipfile_writes(tmp_path):
    path = tmp_path / "z.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("stored.txt", b"plain " * 100, compress_type=zipfile.ZIP_STORED)
        zf.writestr("deflated.txt", b"squash " * 1000, compress_type=zipfile.ZIP_DEFLATED)
        zf.writestr("dir/", b"")
        zf.writestr("dir/inner.bin", os.urandom(3000), compress_type=zipfile.ZIP_DEFLATED)
        with zf.open("forced64.bin", "w", force_zip64=True) as f:
            f.write(b"zip64 local header" * 10)
        zf.comment = b"an archive comment"
    a = _native.Archive.open(str(path))
    assert a.path == str(path)
    with zipfile.ZipFile(path) as zf:
        assert a.names() == zf.namelist()
        for e in a.entries():
            info = zf.getinfo(e["name"])
            assert a.read(e["name"]) == zf.read(info)
            assert e["is_dir"] == info.is_dir()
            assert e["method"] == {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}[info.compress_type]
            assert e["data_offset"] == local_data_offset(path, info)
            assert (e["size"], e["compressed_size"], e["crc32"]) == (info.file_size, info.compress_size, info.CRC)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.text(alphabet="abcxyz_.-0123456789", min_size=1, max_size=12).filter(lambda s: s not in (".", "..")),
            st.binary(max_size=5000),
            st.booleans(),
        ),
        max_size=8,
        unique_by=lambda t: t[0],
    )
)
def test_round_trip_any_entries(tmp_path_factory, entries):
    path = tmp_path_factory.mktemp("rt") / "a.zip"
    write_with_amber(path, entries)
    a = _native.Archive.open(str(path))
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
        assert zf.namelist() == a.names() == [e[0] for e in entries]
        for name, data, deflate in entries:
            assert zf.read(name) == data == a.read(name)
            if not deflate:
                assert local_data_offset(path, zf.getinfo(name)) % 64 == 0


def test_read_limit_missing_name_and_bad_names(tmp_path):
    path = tmp_path / "a.zip"
    write_with_amber(path, [("big", b"x" * 10_000, True)])
    a = _native.Archive.open(str(path))
    with pytest.raises(_native.FormatError, match=r"entry 'big'.*read limit"):
        a.read("big", limit=100)
    assert a.read("big", limit=10_000) == b"x" * 10_000
    with pytest.raises(KeyError, match="nope"):
        a.read("nope")
    w = _native.ArchiveWriter(str(tmp_path / "b.zip"))
    for bad in ["../x", "/abs", "a\\b"]:
        with pytest.raises(_native.FormatError):
            w.add_bytes(bad, b"")
    w.add_bytes("a", b"1")
    with pytest.raises(_native.FormatError, match="already added"):
        w.add_bytes("a", b"2")
    w.abort()
    assert not (tmp_path / "b.zip").exists()


def test_abort_and_unfinished_writers_leave_the_target_alone(tmp_path):
    path = tmp_path / "m.keras"
    path.write_bytes(b"old contents")
    w = _native.ArchiveWriter(str(path))
    w.add_bytes("config.json", b"{}")
    w.abort()
    with pytest.raises(_native.FormatError):
        w.finish()
    w2 = _native.ArchiveWriter(str(path))
    w2.add_bytes("config.json", b"{}")
    del w2
    assert path.read_bytes() == b"old contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras"]


def test_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(_native.FileIOError, match="nothing.keras"):
        _native.Archive.open(str(tmp_path / "nothing.keras"))
    (tmp_path / "junk.keras").write_bytes(b"not a zip at all" * 10)
    with pytest.raises(_native.FormatError, match="junk.keras"):
        _native.Archive.open(str(tmp_path / "junk.keras"))


def keras_fixtures():
    if not FIXTURES.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"shared corpus not found at {FIXTURES}"))]
    return sorted(FIXTURES.glob("*.keras"), key=lambda p: p.name)


@pytest.mark.parametrize("path", keras_fixtures(), ids=lambda p: getattr(p, "name", "none"))
def test_keras_corpus_reads_like_zipfile(path):
    a = _native.Archive.open(str(path))
    with zipfile.ZipFile(path) as zf:
        assert a.names() == zf.namelist()
        for e in a.entries():
            info = zf.getinfo(e["name"])
            assert a.read(e["name"]) == zf.read(info)
            assert (e["size"], e["crc32"]) == (info.file_size, info.CRC)
            assert e["data_offset"] == local_data_offset(path, info)
