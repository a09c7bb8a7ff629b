"""amber's HDF5 writer (``amber._native.H5Writer``) checked against independent readers:
h5py (libhdf5) for every value, dtype, shape, attribute and member name, and real Keras 3
(numpy backend) loading the weights files it writes."""

import io
import os
import re
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from amber._native import FileIOError, FormatError, H5Writer

DTYPES = [
    np.bool_, np.int8, np.int16, np.int32, np.int64,
    np.uint8, np.uint16, np.uint32, np.uint64,
    np.float16, np.float32, np.float64,
]

# Link and attribute names: letters, digits, punctuation Keras uses, and non-ASCII text.
NAMES = st.text(alphabet="abzAZ09_-:é中", min_size=1, max_size=5)
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)


def arrays(max_rank=4):
    shapes = hnp.array_shapes(min_dims=0, max_dims=max_rank, min_side=0, max_side=4)
    return st.tuples(st.sampled_from(DTYPES), shapes).flatmap(lambda t: hnp.arrays(t[0], t[1]))


ATTR_VALUES = st.one_of(
    TEXT,
    st.lists(TEXT.filter(lambda s: len(s.encode()) < 30), max_size=5),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    arrays(max_rank=2),
)
ATTRS = st.dictionaries(NAMES, ATTR_VALUES, max_size=3)


def trees():
    """A root group of ('dataset', array, attrs) leaves inside ('group', {name: child}, attrs)
    nodes."""
    leaf = st.tuples(st.just("dataset"), arrays(), ATTRS)
    node = st.recursive(
        leaf,
        lambda children: st.tuples(st.just("group"), st.dictionaries(NAMES, children, max_size=4), ATTRS),
        max_leaves=10,
    )
    return st.tuples(st.just("group"), st.dictionaries(NAMES, node, max_size=5), ATTRS)


def build(writer, node, path="/"):
    kind, content, attrs = node
    if kind == "group":
        if path != "/":
            writer.create_group(path)
        for name, child in content.items():
            build(writer, child, path.rstrip("/") + "/" + name)
    else:
        writer.create_dataset(path, content)
    for name, value in attrs.items():
        writer.set_attr(path, name, value)


def expected_attr(value):
    """What h5py should return for an attribute set to ``value``."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return np.array([s.encode() for s in value], dtype="S") if value else np.array([], dtype="S1")
    if isinstance(value, bool):
        return np.bool_(value)
    if isinstance(value, int):
        return np.int64(value)
    if isinstance(value, float):
        return np.float64(value)
    return value


def assert_same_array(got, want):
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert got.tobytes() == want.tobytes()


def check(h5obj, node):
    kind, content, attrs = node
    assert sorted(h5obj.attrs.keys()) == sorted(attrs)
    assert len(h5obj.attrs) == len(attrs)
    for name, value in attrs.items():
        got, want = h5obj.attrs[name], expected_attr(value)
        if isinstance(want, str):
            assert isinstance(got, str) and got == want
        elif isinstance(value, list):
            assert got.dtype.kind == "S" and got.shape == (len(value),)
            assert [g.decode() for g in got] == value
        else:
            assert_same_array(got, want)
    if kind == "group":
        assert isinstance(h5obj, h5py.Group)
        # h5py lists compact links in name order (byte order of the UTF-8 names).
        assert list(h5obj.keys()) == sorted(content, key=lambda s: s.encode())
        assert len(h5obj) == len(content)
        for name, child in content.items():
            check(h5obj[name], child)
    else:
        assert isinstance(h5obj, h5py.Dataset)
        assert_same_array(h5obj[()], content)
        if content.nbytes:
            assert h5obj.id.get_offset() % 64 == 0
        else:
            assert h5obj.id.get_offset() is None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(trees())
def test_random_trees_read_back_equal_in_h5py(tmp_path_factory, tree):
    path = tmp_path_factory.mktemp("tree") / "t.h5"
    w = H5Writer()
    build(w, tree)
    w.write(str(path))
    with h5py.File(path, "r") as f:
        check(f, tree)
    assert w.to_bytes() == path.read_bytes()


def test_every_dtype_scalar_to_4d(tmp_path):
    rng = np.random.default_rng(0)
    w = H5Writer()
    want = {}
    for dt in DTYPES:
        for rank in range(5):
            shape = tuple(int(s) for s in rng.integers(1, 4, size=rank))
            a = (rng.standard_normal(shape) * 100).astype(dt)
            name = f"{np.dtype(dt).name}/r{rank}"
            w.create_dataset(name, a)
            want[name] = a
        empty = np.zeros((2, 0, 3), dt)
        w.create_dataset(f"{np.dtype(dt).name}/empty", empty)
        want[f"{np.dtype(dt).name}/empty"] = empty
    w.write(tmp_path / "all.h5")
    with h5py.File(tmp_path / "all.h5", "r") as f:
        for name, a in want.items():
            assert_same_array(f[name][()], a)
            if a.nbytes:
                assert f[name].id.get_offset() % 64 == 0
        assert f["bool/r2"].dtype == np.bool_


def test_file_from_bytes_opens_in_h5py():
    w = H5Writer()
    w.create_dataset("x", np.arange(10, dtype=np.float32))
    w.set_attr("/", "note", "in memory")
    with h5py.File(io.BytesIO(w.to_bytes()), "r") as f:
        assert f.attrs["note"] == "in memory"
        assert_same_array(f["x"][()], np.arange(10, dtype=np.float32))


def test_dataset_keeps_a_reference_not_a_copy(tmp_path):
    a = np.zeros((4, 4), np.float32)
    w = H5Writer()
    w.create_dataset("a", a)
    a[...] = 7  # written at write time from the array's own buffer
    w.write(tmp_path / "ref.h5")
    with h5py.File(tmp_path / "ref.h5", "r") as f:
        assert (f["a"][()] == 7).all()


def test_non_contiguous_and_big_endian_inputs(tmp_path):
    base = np.arange(24, dtype=np.float64).reshape(4, 6)
    strided = base[:, ::2]
    fortran = np.asfortranarray(base)
    big = np.arange(5, dtype=">i4")
    w = H5Writer()
    w.create_dataset("strided", strided)
    w.create_dataset("fortran", fortran)
    w.create_dataset("big", big)
    w.create_dataset("scalar", np.float16(1.5))
    w.write(tmp_path / "c.h5")
    with h5py.File(tmp_path / "c.h5", "r") as f:
        assert_same_array(f["strided"][()], np.ascontiguousarray(strided))
        assert_same_array(f["fortran"][()], base)
        assert_same_array(f["big"][()], np.arange(5, dtype="<i4"))
        assert_same_array(f["scalar"][()], np.float16(1.5))


def test_large_string_attribute_and_large_headers(tmp_path):
    config = '{"class_name": "Functional", "config": "' + "é" * (1 << 20) + '"}'
    w = H5Writer()
    w.set_attr("/", "model_config", config)
    # thousands of attributes force continuation chunks in one object header
    w.create_group("many_attrs")
    for i in range(3000):
        w.set_attr("many_attrs", f"a{i}", np.full(16, i, np.int64))
    # thousands of links in one group
    for i in range(3000):
        w.create_dataset(f"vars/{i}", np.full(3, i, np.float32))
    w.write(tmp_path / "big.h5")
    with h5py.File(tmp_path / "big.h5", "r") as f:
        assert f.attrs["model_config"] == config
        attrs = f["many_attrs"].attrs
        assert len(attrs) == 3000
        assert_same_array(attrs["a2999"], np.full(16, 2999, np.int64))
        assert sorted(f["vars"].keys(), key=int) == [str(i) for i in range(3000)]
        assert_same_array(f["vars/1234"][()], np.full(3, 1234, np.float32))
    # Every object header's first chunk stays under 64 KiB; the attributes spilled into
    # continuation chunks ("OCHK").
    data = (tmp_path / "big.h5").read_bytes()
    headers = [m.start() for m in re.finditer(b"OHDR", data)]
    assert len(headers) == 1 + 1 + 1 + 3000  # root, many_attrs, vars, datasets
    for p in headers:
        width = 1 << (data[p + 5] & 3)
        assert int.from_bytes(data[p + 6 : p + 6 + width], "little") < 65_600
    assert data.count(b"OCHK") >= 2


def test_attribute_kinds_as_h5py_reads_them(tmp_path):
    w = H5Writer()
    w.set_attr("/", "s", "dense_1")
    w.set_attr("/", "b", b"keras")
    w.set_attr("/", "names", ["dense", "dense_1"])
    w.set_attr("/", "names_np", np.array([b"a", b"bcd"]))
    w.set_attr("/", "names_obj", np.array(["x", "yz"], dtype=object))  # as h5py reads Keras 3 files
    w.set_attr("/", "names_u", np.array(["é", "b"]))
    w.set_attr("/", "s0", np.array("zero-d"))
    w.create_dataset("n" * 300, np.arange(2))  # a name longer than 255 bytes
    w.set_attr("/", "empty_names", [])
    w.set_attr("/", "t", True)
    w.set_attr("/", "i", -5)
    w.set_attr("/", "u", 2**64 - 1)
    w.set_attr("/", "f", 0.25)
    w.set_attr("/", "arr", np.arange(6, dtype=np.int16).reshape(2, 3))
    w.set_attr("/", "f32", np.float32(2.5))
    w.set_attr("/", "s", "replaced")
    w.write(tmp_path / "a.h5")
    with h5py.File(tmp_path / "a.h5", "r") as f:
        a = f.attrs
        assert a["s"] == "replaced" and a["b"] == "keras"
        assert h5py.check_string_dtype(a.get_id("s").dtype).length is None  # variable length
        assert a["names"].dtype == np.dtype("S7") and list(a["names"]) == [b"dense", b"dense_1"]
        assert list(a["names_np"]) == [b"a", b"bcd"]
        assert list(a["names_obj"]) == [b"x", b"yz"]
        assert [n.decode() for n in a["names_u"]] == ["é", "b"]
        assert a["s0"] == "zero-d"
        assert list(f.keys()) == ["n" * 300]
        assert a["empty_names"].shape == (0,)
        assert a["t"] is np.True_ or a["t"] == np.True_
        assert_same_array(a["i"], np.int64(-5))
        assert_same_array(a["u"], np.uint64(2**64 - 1))
        assert_same_array(a["f"], np.float64(0.25))
        assert_same_array(a["arr"], np.arange(6, dtype=np.int16).reshape(2, 3))
        assert_same_array(a["f32"], np.float32(2.5))


def test_bad_plans_are_refused_with_the_path(tmp_path):
    target = tmp_path / "bad.h5"
    w = H5Writer()
    w.create_dataset("a/d", np.zeros(2))
    w.create_group("a/d/inner")  # a group below a dataset
    with pytest.raises(FormatError, match="/a/d"):
        w.write(target)
    assert list(tmp_path.iterdir()) == []

    w = H5Writer()
    w.create_dataset("x", np.zeros(2))
    w.create_dataset("x", np.zeros(2))
    with pytest.raises(FormatError, match="/x.*already exists"):
        w.to_bytes()

    w = H5Writer()
    w.set_attr("missing/group", "name", "x")
    with pytest.raises(KeyError, match="missing/group"):
        w.to_bytes()

    w = H5Writer()
    w.set_attr("/", "names", ["n" * 100] * 1000)  # 100 KB of fixed-length strings
    with pytest.raises(FormatError, match="65535"):
        w.to_bytes()

    w = H5Writer()
    for bad in (np.zeros(2, np.complex64), np.array(["a"], dtype=object), np.zeros(1, "M8[s]")):
        with pytest.raises(TypeError):
            w.create_dataset("bad", bad)
    for bad in (np.array([1, "a"], dtype=object), np.zeros(2, np.complex128), {"a": 1}, np.array([["a"]])):
        with pytest.raises(TypeError):
            w.set_attr("/", "bad", bad)


def test_missing_directory_is_an_os_error(tmp_path):
    w = H5Writer()
    w.create_dataset("x", np.zeros(3))
    with pytest.raises(FileIOError, match="no_such_dir"):
        w.write(tmp_path / "no_such_dir" / "x.h5")


def test_failed_write_leaves_old_target_and_no_temp(tmp_path):
    """The OS refuses the write midway (file size limit): the error is an OSError, the old
    file is intact and no temporary file is left behind."""
    target = tmp_path / "model.weights.h5"
    target.write_bytes(b"old contents")
    script = textwrap.dedent(
        f"""
        import resource, signal, sys
        import numpy as np
        from amber._native import H5Writer, FileIOError
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
        w = H5Writer()
        w.create_dataset("big", np.ones((1 << 20,), np.float32))
        try:
            w.write({str(target)!r})
        except FileIOError as e:
            print("refused:", e)
            sys.exit(0)
        sys.exit("write did not fail")
        """
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr + run.stdout
    assert "model.weights.h5" in run.stdout
    assert target.read_bytes() == b"old contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.weights.h5"]


def test_successful_write_replaces_target(tmp_path):
    target = tmp_path / "m.h5"
    target.write_bytes(b"old")
    w = H5Writer()
    w.create_dataset("x", np.arange(3))
    w.write(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.h5"]
    with h5py.File(target, "r") as f:
        assert_same_array(f["x"][()], np.arange(3))


# ------------------------------------------------------------------ real Keras


@pytest.fixture(scope="module")
def keras():
    os.environ["KERAS_BACKEND"] = "numpy"
    import keras as real_keras

    assert real_keras.backend.backend() == "numpy", "another test imported Keras with a different backend"
    return real_keras


def small_model(keras):
    inp = keras.Input((4,))
    x = keras.layers.Dense(3)(inp)
    out = keras.layers.Dense(2)(x)
    return keras.Model(inp, out)


def snake_case(name):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def walk(f):
    """Every object of an h5py file as path -> (kind, attrs, shape, dtype)."""
    out = {"/": ("group", {k: f.attrs[k] for k in f.attrs}, None, None)}

    def visit(name, obj):
        attrs = {k: obj.attrs[k] for k in obj.attrs}
        if isinstance(obj, h5py.Dataset):
            out[name] = ("dataset", attrs, obj.shape, obj.dtype)
        else:
            out[name] = ("group", attrs, None, None)

    f.visititems(visit)
    return out


def test_keras3_weights_file_loads_in_keras(keras, tmp_path):
    model = small_model(keras)
    reference = tmp_path / "keras.weights.h5"
    model.save_weights(reference)  # the layout Keras itself writes

    rng = np.random.default_rng(1)
    new_weights = [rng.standard_normal(np.shape(v)).astype(np.float32) for v in model.weights]

    # Mimic model.save_weights: layers/<snake_case class name, numbered>/vars/<i>, each vars
    # group named after its layer, and the model's own (empty) vars group.
    w = H5Writer()
    counts = {}
    k = 0
    for layer in model.layers:
        base = snake_case(type(layer).__name__)
        n = counts.get(base, 0)
        counts[base] = n + 1
        key = base if n == 0 else f"{base}_{n}"
        w.create_group(f"layers/{key}/vars")
        w.set_attr(f"layers/{key}/vars", "name", layer.name)
        for i, _ in enumerate(layer.weights):
            w.create_dataset(f"layers/{key}/vars/{i}", new_weights[k])
            k += 1
    w.create_group("vars")
    w.set_attr("vars", "name", model.name)
    ours = tmp_path / "amber.weights.h5"
    w.write(ours)

    with h5py.File(reference, "r") as ref, h5py.File(ours, "r") as got:
        assert walk(got) == walk(ref)

    fresh = small_model(keras)
    fresh.load_weights(ours)
    for got, want in zip(fresh.get_weights(), new_weights):
        assert_same_array(got, want)
    x = rng.standard_normal((5, 4)).astype(np.float32)
    model.load_weights(ours)
    np.testing.assert_allclose(fresh.predict(x, verbose=0), model.predict(x, verbose=0))


def test_legacy_layout_with_fixed_length_names_loads_in_keras(keras, tmp_path):
    model = small_model(keras)
    rng = np.random.default_rng(2)
    w = H5Writer()
    w.set_attr("/", "backend", "numpy")
    w.set_attr("/", "keras_version", keras.__version__)
    w.set_attr("/", "layer_names", [layer.name for layer in model.layers])
    expected = []
    for layer in model.layers:
        names = [f"{layer.name}/{v.name}" for v in layer.weights]
        w.create_group(layer.name)
        w.set_attr(layer.name, "weight_names", names)
        for name, v in zip(names, layer.weights):
            value = rng.standard_normal(np.shape(v)).astype(np.float32)
            w.create_dataset(f"{layer.name}/{name}", value)
            expected.append(value)
    path = tmp_path / "legacy_weights.h5"
    w.write(path)

    with h5py.File(path, "r") as f:
        names = f.attrs["layer_names"]
        assert names.dtype.kind == "S"  # fixed-length, as legacy Keras 2 files store them
        assert [n.decode("utf8") for n in names] == [layer.name for layer in model.layers]
        inp, dense = model.layers[0].name, model.layers[1].name
        dense_names = f[dense].attrs["weight_names"]
        assert [n.decode("utf8") for n in dense_names] == [f"{dense}/kernel", f"{dense}/bias"]
        assert f[inp].attrs["weight_names"].shape == (0,)

    model.load_weights(path)
    for got, want in zip(model.get_weights(), expected):
        assert_same_array(got, want)


SHARED = __import__("pathlib").Path(__file__).resolve().parents[1].parent / "shared"
FIXTURES = SHARED / "interop" / "fixtures"


def rewrite_with_amber(src, dst):
    """Recreate every group, dataset and attribute of an h5py-readable file with H5Writer."""
    w = H5Writer()
    with h5py.File(src, "r") as f:
        for k in f.attrs:
            w.set_attr("/", k, f.attrs[k])

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                w.create_dataset(name, obj[()])
            else:
                w.create_group(name)
            for k in obj.attrs:
                w.set_attr(name, k, obj.attrs[k])

        f.visititems(visit)
    w.write(dst)


@pytest.mark.parametrize("case", ["mlp_3layer", "nested_pretrained"])
def test_corpus_weights_rewritten_by_amber_reproduce_keras_outputs(keras, tmp_path, case):
    if not FIXTURES.is_dir():
        pytest.skip(f"shared corpus not found at {FIXTURES}")
    import json

    manifest = json.loads((FIXTURES / "MANIFEST.json").read_text())
    tol = next(c for c in manifest["cases"] if c["name"] == case)["tolerance"]
    ours = tmp_path / f"{case}.weights.h5"
    rewrite_with_amber(FIXTURES / f"{case}.weights.h5", ours)
    with h5py.File(FIXTURES / f"{case}.weights.h5", "r") as ref, h5py.File(ours, "r") as got:
        assert walk(got) == walk(ref)
        for name, (kind, *_rest) in walk(ref).items():
            if kind == "dataset":
                assert_same_array(got[name][()], ref[name][()])

    model = keras.saving.load_model(FIXTURES / f"{case}.keras", compile=False)
    x = np.load(FIXTURES / f"{case}.input.npy")
    for v in model.weights:  # make sure the weights really come from our file
        v.assign(np.zeros(v.shape, v.dtype))
    model.load_weights(ours)
    np.testing.assert_allclose(
        model.predict(x, verbose=0), np.load(FIXTURES / f"{case}.expected.npy"), rtol=tol["rtol"], atol=tol["atol"]
    )
