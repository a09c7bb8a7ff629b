"""amber's HDF5 reader against h5py (libhdf5) as the reference.

Every dataset, attribute and member list of the shared Keras corpus, and of files generated
here with h5py to cover the format variants users' files contain (libver earliest/latest,
track_order, chunked + gzip + shuffle, compact layout, big-endian, every int/float width,
bool, strings, scalar and empty datasets, deep B-trees, dense attributes, userblocks), must
read back exactly as h5py reads it.
"""

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")
from amber import _native  # noqa: E402
from amber._native import H5File  # noqa: E402
from _shared_corpus import find_shared  # noqa: E402


SHARED = find_shared("interop")
FIXTURES = SHARED / "interop" / "fixtures"


def needs_fixtures():
    if not FIXTURES.is_dir():
        pytest.skip(f"shared corpus not present at {FIXTURES}")


# ---------------------------------------------------------------------------- comparison


def expected_attr(value):
    """h5py's attribute value in amber's representation (str, list[str] or ndarray)."""
    if isinstance(value, h5py.Empty):
        return "EMPTY"
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, str):
        return value
    arr = np.asarray(value)
    if arr.dtype.kind in "SOU":
        return [x.decode() if isinstance(x, bytes) else str(x) for x in arr.reshape(-1).tolist()]
    return arr


def assert_attr_equal(got, want, where):
    if isinstance(want, str) and want == "EMPTY":
        assert (isinstance(got, np.ndarray) and got.size == 0) or got == [], where
        return
    if isinstance(want, (str, list)):
        assert got == want, where
        return
    assert isinstance(got, np.ndarray), f"{where}: {type(got)}"
    # amber hands out little-endian values whatever the file's byte order.
    assert got.dtype == want.dtype.newbyteorder("="), f"{where}: {got.dtype} != {want.dtype}"
    assert got.shape == want.shape, f"{where}: {got.shape} != {want.shape}"
    np.testing.assert_array_equal(got, want, err_msg=where)


def assert_same_as_h5py(amber: H5File, ref: "h5py.File"):
    """Members, kinds, attributes and data of every object equal what h5py reads."""
    walked = []
    ref.visititems(lambda name, obj: walked.append((name, "group" if isinstance(obj, h5py.Group) else "dataset")))
    assert sorted(amber.visit()) == sorted(walked)
    for name, kind in [("/", "group")] + walked:
        obj = ref[name]
        assert amber.kind(name) == kind, name
        got_attrs = amber.attrs(name)
        assert list(got_attrs) == list(obj.attrs.keys()), name
        for key in obj.attrs:
            assert_attr_equal(got_attrs[key], expected_attr(obj.attrs[key]), f"{name}@{key}")
        if kind == "group":
            assert amber.keys(name) == list(obj.keys()), name
        else:
            want = obj[()]
            want = np.asarray(want)
            got = amber.read(name)
            assert amber.shape(name) == obj.shape, name
            assert amber.dtype(name) == want.dtype.newbyteorder("=").name, name
            assert got.dtype == want.dtype.newbyteorder("="), name
            assert got.shape == want.shape, name
            np.testing.assert_array_equal(got, want, err_msg=name)


def check_file(path):
    with h5py.File(path, "r") as ref:
        assert_same_as_h5py(H5File.open(str(path)), ref)
    with h5py.File(path, "r") as ref:
        assert_same_as_h5py(H5File.from_bytes(Path(path).read_bytes(), label=str(path)), ref)


# ---------------------------------------------------------------------------- the corpus


def corpus_h5_files():
    if not FIXTURES.is_dir():
        return []
    return sorted(p.name for p in FIXTURES.iterdir() if p.name.endswith(".h5"))


def corpus_keras_files():
    if not FIXTURES.is_dir():
        return []
    return sorted(p.name for p in FIXTURES.iterdir() if p.name.endswith(".keras"))


def test_corpus_is_not_empty():
    needs_fixtures()
    assert len(corpus_h5_files()) >= 5 and len(corpus_keras_files()) >= 5


@pytest.mark.parametrize("name", corpus_h5_files())
def test_corpus_h5_file_reads_like_h5py(name):
    check_file(FIXTURES / name)


@pytest.mark.parametrize("name", corpus_keras_files())
def test_corpus_keras_weights_entry_reads_like_h5py(name):
    with zipfile.ZipFile(FIXTURES / name) as z:
        data = z.read("model.weights.h5")
    amber = H5File.from_bytes(data, label=f"{name}:model.weights.h5")
    with h5py.File(io.BytesIO(data), "r") as ref:
        assert_same_as_h5py(amber, ref)


# ---------------------------------------------------------------------------- generated files

INT_AND_FLOAT = ["i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8"]


def fill_everything(f: "h5py.File", rng):
    """Every element type in both byte orders, bools, scalars, empties and all attribute kinds."""
    g = f.create_group("types")
    for code in INT_AND_FLOAT:
        for order in "<>":
            dt = np.dtype(order + code)
            if dt.kind == "f":
                data = rng.standard_normal((3, 5)).astype(dt)
                data[0, 0] = np.nan
                data[0, 1] = -np.inf
            else:
                info = np.iinfo(dt)
                data = rng.integers(info.min, info.max, size=(3, 5), dtype=dt.newbyteorder("="), endpoint=True).astype(dt)
            g.create_dataset(f"{code}_{'le' if order == '<' else 'be'}", data=data)
    g.create_dataset("bool", data=np.array([[True, False, True], [False, False, True]]))
    g.create_dataset("scalar_f8", data=np.float64(2.5))
    g.create_dataset("scalar_i4", data=np.int32(-7))
    g.create_dataset("empty_1d", data=np.zeros((0,), "f4"))
    g.create_dataset("empty_2d", data=np.zeros((0, 3), "i2"))
    g.create_dataset("big_3d", data=rng.standard_normal((4, 5, 6)).astype("f4"))
    a = f["types"].attrs
    a["vlen_str"] = "hello, wörld"
    a["empty_str"] = ""
    a["fixed_str"] = np.bytes_(b"fixed")
    a["fixed_str_array"] = np.array([b"dense", b"dense_1", b""], dtype="S10")
    a["vlen_str_array"] = np.array(["a", "bé", "ccc"], dtype=h5py.string_dtype())
    a["int_scalar"] = np.int64(42)
    a["float_array"] = np.arange(6, dtype="f4").reshape(2, 3)
    a["be_array"] = np.arange(4, dtype=">i4")
    a["bool_attr"] = np.bool_(True)
    a["bool_array"] = np.array([True, False])
    a["u8_scalar"] = np.uint8(200)
    a["empty_attr"] = h5py.Empty("f4")
    f.attrs["backend"] = "numpy"
    f.attrs["keras_version"] = "3.15.0"
    nested = f.create_group("a/b/c")
    nested.create_dataset("w", data=np.ones((2, 2), "f4"))
    nested.attrs["weight_names"] = [b"dense/kernel:0", b"dense/bias:0"]


@pytest.mark.parametrize("libver", ["earliest", "latest"])
def test_generated_every_type_and_attribute(tmp_path, libver):
    path = tmp_path / f"types_{libver}.h5"
    with h5py.File(path, "w", libver=libver) as f:
        fill_everything(f, np.random.default_rng(0))
    check_file(path)


@pytest.mark.parametrize("libver", ["earliest", "latest"])
def test_generated_track_order(tmp_path, libver):
    path = tmp_path / "ordered.h5"
    names = ["zeta", "alpha", "mid", "Beta", "_under", "10", "9"]
    with h5py.File(path, "w", libver=libver, track_order=True) as f:
        g = f.create_group("ordered", track_order=True)
        for i, n in enumerate(names):
            g.create_dataset(n, data=np.full((2,), i, "i4"))
            g.attrs[n] = i
        for i in range(20):  # past the compact limit: dense links and attributes
            g.create_group(f"z{19 - i:02d}", track_order=True)
            f.attrs[f"k{19 - i:02d}"] = float(i)
    amber = H5File.open(str(path))
    assert amber.keys("ordered")[: len(names)] == names
    assert list(amber.attrs("ordered")) == names
    check_file(path)


@pytest.mark.parametrize("libver", ["earliest", "latest"])
@pytest.mark.parametrize("count", [9, 2000])
def test_generated_many_members(tmp_path, libver, count):
    """2000 members: a symbol-table B-tree of depth > 1 (earliest) or dense links (latest)."""
    path = tmp_path / "many.h5"
    with h5py.File(path, "w", libver=libver) as f:
        for i in range(count):
            f.create_group(f"g{i:05d}")
        f.create_dataset(f"g{count // 2:05d}/x", data=np.arange(3))
    amber = H5File.open(str(path))
    assert len(amber.keys()) == count
    assert amber.read(f"g{count // 2:05d}/x").tolist() == [0, 1, 2]
    check_file(path)


@pytest.mark.parametrize("libver", ["earliest", "latest"])
def test_generated_dense_attributes(tmp_path, libver):
    path = tmp_path / "attrs.h5"
    with h5py.File(path, "w", libver=libver) as f:
        g = f.create_group("g")
        for i in range(100):
            g.attrs[f"attr_{i:03d}"] = np.arange(i % 7, dtype="f8") + i
            g.attrs[f"s_{i:03d}"] = "v" * (i + 1)
        d = f.create_dataset("d", data=np.arange(4.0))
        for i in range(30):
            d.attrs[f"n{i}"] = i
    check_file(path)


@pytest.mark.parametrize("libver", ["earliest", "latest"])
@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("compression", [None, "gzip"])
def test_generated_chunked(tmp_path, shuffle, compression, libver):
    """earliest: chunks indexed by a v1 B-tree; latest: by a fixed array (paged past 1024)."""
    path = tmp_path / "chunked.h5"
    rng = np.random.default_rng(1)
    with h5py.File(path, "w", libver=libver) as f:
        kw = dict(compression=compression, shuffle=shuffle)
        # Edge chunks that stick out of the dataset, several chunk B-tree levels.
        f.create_dataset("f4", data=rng.standard_normal((37, 23)).astype("f4"), chunks=(8, 5), **kw)
        f.create_dataset("i8_be", data=rng.integers(-1000, 1000, (50,)).astype(">i8"), chunks=(7,), **kw)
        f.create_dataset("big", data=rng.standard_normal((300, 300)).astype("f8"), chunks=(16, 16), **kw)
        f.create_dataset("cube", data=rng.integers(0, 255, (9, 10, 11)).astype("u1"), chunks=(4, 3, 5), **kw)
        f.create_dataset("bool", data=rng.integers(0, 2, (33,)).astype(bool), chunks=(4,), **kw)
        # Chunks never written read as the fill value.
        part = f.create_dataset("partial", shape=(20, 20), dtype="f4", chunks=(5, 5), fillvalue=-1.5, **kw)
        part[0:5, 0:5] = 3.0
        f.create_dataset("unwritten", shape=(10,), dtype="i4", chunks=(5,), fillvalue=7, **kw)
        paged = f.create_dataset("many_chunks", shape=(3000,), dtype="i2", chunks=(1,), fillvalue=-2, **kw)
        paged[:1500] = np.arange(1500)
        paged[2500:2600] = 5
    check_file(path)


@pytest.mark.parametrize("libver", ["earliest", "latest"])
def test_generated_fletcher32(tmp_path, libver):
    path = tmp_path / "fletcher.h5"
    with h5py.File(path, "w", libver=libver) as f:
        f.create_dataset("plain", data=np.arange(1001.0), chunks=(100,), fletcher32=True)
        f.create_dataset("gz", data=np.arange(999, dtype="u1"), chunks=(333,), fletcher32=True, compression="gzip", shuffle=True)
        f.create_dataset("odd", data=np.arange(7, dtype="u1"), chunks=(7,), fletcher32=True)
    check_file(path)
    # A flipped data byte fails the checksum instead of reading wrong values.
    with h5py.File(path, "r") as f:
        offset = f["plain"].id.get_chunk_info(0).byte_offset
    raw = bytearray(path.read_bytes())
    raw[offset + 3] ^= 0x10
    with pytest.raises(_native.FormatError, match="fletcher32"):
        H5File.from_bytes(bytes(raw)).read("plain")


def test_generated_huge_attributes_latest(tmp_path):
    """Attributes past 64 KiB live in dense storage as huge heap objects."""
    path = tmp_path / "huge_attrs.h5"
    with h5py.File(path, "w", libver="latest") as f:
        f.attrs["big"] = np.arange(30000, dtype="f8")
        f.attrs["json"] = "{" + "x" * 200000 + "}"
        f.attrs["small"] = 1
        g = f.create_group("g", track_order=True)
        g.attrs["z"] = np.ones(20000, "i8")
        g.attrs["a"] = "short"
    check_file(path)


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_generated_other_chunk_indexes_latest(tmp_path, compression):
    """libver='latest': a v2 B-tree index (two unlimited dimensions) and the implicit index
    (early allocation, no filters)."""
    path = tmp_path / "indexes.h5"
    rng = np.random.default_rng(3)
    with h5py.File(path, "w", libver="latest") as f:
        kw = dict(compression=compression, shuffle=compression is not None)
        f.create_dataset("bt2", data=rng.standard_normal((13, 17)).astype("f4"), chunks=(4, 5), maxshape=(None, None), **kw)
        part = f.create_dataset("bt2_part", shape=(20, 20), dtype="i4", chunks=(6, 6), maxshape=(None, None), fillvalue=3, **kw)
        part[7:9, 13:15] = 9
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_chunk((3, 4))
        dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
        dsid = h5py.h5d.create(f.id, b"implicit", h5py.h5t.IEEE_F64LE, h5py.h5s.create_simple((10, 9)), dcpl=dcpl)
        dsid.write(h5py.h5s.ALL, h5py.h5s.ALL, rng.standard_normal((10, 9)))
        dsid.close()
    check_file(path)


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_generated_extensible_array_index(tmp_path, compression):
    """libver='latest' with one unlimited dimension: an extensible array, with data blocks
    in the index block and in super blocks, the unlimited dimension first or not, sparse
    writes and a shrinking resize."""
    path = tmp_path / "ea.h5"
    rng = np.random.default_rng(4)
    with h5py.File(path, "w", libver="latest") as f:
        kw = dict(compression=compression)
        f.create_dataset("small", data=np.arange(12.0).reshape(4, 3), chunks=(2, 3), maxshape=(None, 3), **kw)
        f.create_dataset("n3000", data=np.arange(3000, dtype="i4"), chunks=(1,), maxshape=(None,), **kw)
        f.create_dataset("second_dim", data=rng.standard_normal((5, 40)).astype("f4"), chunks=(2, 3), maxshape=(5, None), **kw)
        sparse = f.create_dataset("sparse", shape=(400, 7), dtype="f8", chunks=(3, 4), maxshape=(None, 7), fillvalue=2.0, **kw)
        sparse[100:110, :] = 1
        sparse[390:, 5:] = 3
        shrunk = f.create_dataset("shrunk", data=np.arange(100.0), chunks=(5,), maxshape=(None,), **kw)
        shrunk.resize((37,))
    check_file(path)


def test_extensible_array_with_paged_blocks_is_refused_by_name(tmp_path):
    path = tmp_path / "paged.h5"
    with h5py.File(path, "w", libver="latest") as f:
        f.create_dataset("grow", data=np.arange(140000, dtype="i1"), chunks=(1,), maxshape=(None,))
    with pytest.raises(_native.FormatError, match="paged data blocks") as err:
        H5File.open(str(path)).read("grow")
    assert "/grow" in str(err.value)


def test_generated_single_chunk_latest(tmp_path):
    """libver='latest' stores a dataset that is one chunk with a 'single chunk' index."""
    path = tmp_path / "single.h5"
    data = np.arange(24, dtype="f4").reshape(4, 6)
    with h5py.File(path, "w", libver="latest") as f:
        f.create_dataset("one", data=data, chunks=(4, 6))
        f.create_dataset("one_gz", data=data, chunks=(4, 6), compression="gzip", shuffle=True)
    check_file(path)


def test_generated_compact_layout(tmp_path):
    path = tmp_path / "compact.h5"
    data = np.arange(12, dtype="<i2").reshape(3, 4)
    with h5py.File(path, "w") as f:
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_layout(h5py.h5d.COMPACT)
        space = h5py.h5s.create_simple(data.shape)
        dsid = h5py.h5d.create(f.id, b"compact", h5py.h5t.STD_I16LE, space, dcpl=dcpl)
        dsid.write(h5py.h5s.ALL, h5py.h5s.ALL, data)
        dsid.close()
    with h5py.File(path, "r") as f:
        assert f["compact"].id.get_create_plist().get_layout() == h5py.h5d.COMPACT
    assert H5File.open(str(path)).read("compact").tolist() == data.tolist()
    check_file(path)


@pytest.mark.parametrize("size", [512, 1024, 4096])
def test_generated_userblock(tmp_path, size):
    path = tmp_path / "ub.h5"
    with h5py.File(path, "w", userblock_size=size) as f:
        f["x"] = np.arange(10, dtype="f4")
        f["g/y"] = np.arange(3)
        f["g"].attrs["name"] = "with userblock"
    with open(path, "r+b") as fh:
        fh.write(b"user data, not HDF5")
    check_file(path)


def test_unallocated_contiguous_dataset_reads_as_fill(tmp_path):
    path = tmp_path / "fill.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("never_written", shape=(3, 4), dtype="f8", fillvalue=0.25)
        f.create_dataset("zeros", shape=(5,), dtype="i2")
    check_file(path)


# ---------------------------------------------------------------------------- zero copy


def test_contiguous_little_endian_read_is_a_read_only_view(tmp_path):
    path = tmp_path / "view.h5"
    data = np.arange(1000, dtype="<f4").reshape(10, 100)
    with h5py.File(path, "w") as f:
        f["w"] = data
        f["be"] = data.astype(">f4")
        offset = f["w"].id.get_offset()
    amber = H5File.open(str(path))
    view = amber.read("w")
    assert not view.flags.writeable and view.base is not None
    with pytest.raises(ValueError):
        view[0, 0] = 1
    # The view sees the file's bytes at the dataset's offset (libhdf5 reports the offset).
    raw = np.frombuffer(path.read_bytes()[offset : offset + data.nbytes], "<f4").reshape(10, 100)
    np.testing.assert_array_equal(view, raw)
    del amber
    np.testing.assert_array_equal(view, data)  # the mapping outlives the file object
    swapped = amber_be = H5File.open(str(path)).read("be")
    assert swapped.flags.writeable and swapped.dtype == np.dtype("<f4")
    np.testing.assert_array_equal(amber_be, data)


# ---------------------------------------------------------------------------- refusals and lookups


def test_missing_names_and_kinds(tmp_path):
    path = tmp_path / "k.h5"
    with h5py.File(path, "w") as f:
        f["g/d"] = np.arange(3)
    amber = H5File.open(str(path))
    assert amber.kind("/") == "group"
    assert amber.kind("g") == "group"
    assert amber.kind("/g/d") == "dataset"
    assert amber.kind("g/nope") is None
    with pytest.raises(KeyError, match="nope"):
        amber.read("g/nope")
    with pytest.raises(_native.FormatError):
        amber.read("g")
    with pytest.raises(_native.FormatError):
        amber.keys("g/d")


def test_soft_and_external_links_are_refused(tmp_path):
    path = tmp_path / "links.h5"
    with h5py.File(path, "w") as f:
        f["real"] = np.arange(3)
        f["soft"] = h5py.SoftLink("/real")
        f["ext"] = h5py.ExternalLink("other.h5", "/x")
    amber = H5File.open(str(path))
    assert amber.keys() == ["ext", "real", "soft"]
    with pytest.raises(_native.FormatError, match="soft link 'soft'"):
        amber.read("soft")
    with pytest.raises(_native.FormatError, match="external link 'ext'"):
        amber.read("ext")
    with pytest.raises(_native.FormatError, match="link"):
        amber.visit()


def test_link_cycle_is_refused(tmp_path):
    path = tmp_path / "cycle.h5"
    with h5py.File(path, "w") as f:
        f.create_group("a/b")
        f["a/b/loop"] = f["a"]
        f["a/b/d"] = np.arange(2)
    amber = H5File.open(str(path))
    assert amber.keys("a/b") == ["d", "loop"]
    with pytest.raises(_native.FormatError, match="cycle"):
        amber.visit()
    with pytest.raises(_native.FormatError, match="cycle"):
        amber.read("a/b/loop/b/d")


def test_shared_hard_links_are_listed_once(tmp_path):
    path = tmp_path / "shared.h5"
    with h5py.File(path, "w") as f:
        f["x/d"] = np.arange(3)
        f["y"] = f["x/d"]
    amber = H5File.open(str(path))
    assert amber.read("y").tolist() == [0, 1, 2]
    # y is the same object as x/d: listed once, as h5py's visit does.
    assert amber.visit() == [("x", "group"), ("x/d", "dataset")]
    check_file(path)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda f: f.create_dataset("c", data=np.zeros(3, dtype=[("a", "i4"), ("b", "f4")])), "compound"),
        (lambda f: f.create_dataset("s", data=np.array([b"ab", b"cd"])), "string"),
        (lambda f: f.create_dataset("z", data=np.zeros(4, "c8")), "datatype"),
        (lambda f: f.create_dataset("n", data=np.arange(8.0), chunks=(4,), scaleoffset=2), "scale-offset"),
    ],
)
def test_unsupported_features_are_named(tmp_path, make, message):
    path = tmp_path / "u.h5"
    with h5py.File(path, "w") as f:
        make(f)
        name = list(f.keys())[0]
    with pytest.raises(_native.FormatError, match=message) as err:
        H5File.open(str(path)).read(name)
    assert f"/{name}" in str(err.value)


def test_opening_reads_only_the_root(tmp_path):
    """Opening must not touch every object: a corrupt object far away only fails when used."""
    path = tmp_path / "lazy.h5"
    with h5py.File(path, "w") as f:
        f["ok"] = np.arange(3)
        f.create_group("bad").attrs["x"] = 1
        bad_addr = h5py.h5o.get_info(f["bad"].id).addr
    raw = bytearray(path.read_bytes())
    raw[bad_addr] = 0x7F  # object header version byte
    path.write_bytes(bytes(raw))
    amber = H5File.open(str(path))
    assert amber.read("ok").tolist() == [0, 1, 2]
    with pytest.raises(_native.FormatError, match="bad"):
        amber.attrs("bad")


# ---------------------------------------------------------------------------- random trees

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

NAMES = st.text(alphabet="abcXYZ_019 .é", min_size=1, max_size=6).filter(lambda s: s not in (".", ".."))
DTYPES = st.sampled_from(["<f4", ">f4", "<f8", "<f2", "<i1", "<i2", ">i4", "<i8", "<u1", ">u2", "<u4", "<u8", "?"])
SHAPES = st.lists(st.integers(0, 5), min_size=0, max_size=3).map(tuple)
ATTR_VALUES = st.one_of(
    st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=8),  # h5py refuses NULs and lone surrogates
    st.integers(-(2**31), 2**31 - 1).map(np.int32),
    st.floats(allow_nan=False, width=64).map(np.float64),
    st.lists(st.text(alphabet="abc", max_size=3), min_size=1, max_size=4).map(lambda v: np.array(v, dtype=h5py.string_dtype())),
)
TREES = st.recursive(
    st.tuples(DTYPES, SHAPES, st.sampled_from([None, "gzip"])),
    lambda children: st.dictionaries(NAMES, children, max_size=5),
    max_leaves=12,
)


def build(group, tree, rng, track_order):
    for name, node in tree.items():
        if isinstance(node, dict):
            build(group.create_group(name, track_order=track_order), node, rng, track_order)
        else:
            dtype, shape, compression = node
            data = (rng.standard_normal(shape) * 50).astype(np.dtype(dtype))
            chunked = compression is not None and 0 not in shape and len(shape) > 0
            group.create_dataset(name, data=data, compression=compression if chunked else None)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    tree=st.dictionaries(NAMES, TREES, min_size=1, max_size=5),
    attrs=st.dictionaries(NAMES, ATTR_VALUES, max_size=12),
    libver=st.sampled_from(["earliest", "latest"]),
    track_order=st.booleans(),
)
def test_random_trees_read_like_h5py(tmp_path, tree, attrs, libver, track_order):
    path = tmp_path / "random.h5"
    with h5py.File(path, "w", libver=libver, track_order=track_order) as f:
        build(f, tree, np.random.default_rng(0), track_order)
        for k, v in attrs.items():
            f.attrs[k] = v
    check_file(path)
