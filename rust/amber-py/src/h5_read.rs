//! `H5File`: the HDF5 reader, translated. Views of contiguous data are numpy arrays over the
//! mapped bytes (read-only; their `.base` keeps the mapping alive).

use std::path::PathBuf;

use numpy::PyArray1;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use amber_core::dtype::DType;
use amber_core::error::Error;
use amber_core::h5::read::{Data, H5File};
use amber_core::h5::AttrValue;
use amber_core::storage::{ByteRange, Storage};

use crate::to_py_err;

#[pyclass(name = "H5File", module = "amber._native", frozen)]
pub struct PyH5File {
    inner: H5File,
}

#[pymethods]
impl PyH5File {
    #[staticmethod]
    fn open(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let inner = py.detach(|| H5File::open(&path)).map_err(to_py_err)?;
        Ok(PyH5File { inner })
    }

    #[staticmethod]
    #[pyo3(signature = (data, label = "<memory>"))]
    fn from_bytes(py: Python<'_>, data: Vec<u8>, label: &str) -> PyResult<Self> {
        let storage = Storage::from_vec(data, label);
        let inner = py.detach(|| H5File::from_range(storage.full())).map_err(to_py_err)?;
        Ok(PyH5File { inner })
    }

    fn kind(&self, py: Python<'_>, path: &str) -> PyResult<Option<&'static str>> {
        let kind = py.detach(|| self.inner.kind(path)).map_err(to_py_err)?;
        Ok(kind.map(|k| k.name()))
    }

    #[pyo3(signature = (path = "/"))]
    fn keys(&self, py: Python<'_>, path: &str) -> PyResult<Vec<String>> {
        py.detach(|| self.inner.members(path)).map_err(to_py_err)
    }

    #[pyo3(signature = (path = "/"))]
    fn attrs<'py>(&self, py: Python<'py>, path: &str) -> PyResult<Bound<'py, PyDict>> {
        let attrs = py.detach(|| self.inner.attrs(path)).map_err(to_py_err)?;
        let out = PyDict::new(py);
        for (name, value) in attrs {
            let v: Bound<'py, PyAny> = match value {
                AttrValue::Str(s) => s.into_pyobject(py)?.into_any(),
                AttrValue::StrArray(list) => PyList::new(py, list)?.into_any(),
                AttrValue::Numeric { dtype, shape, data } => owned_array(py, data, dtype, &shape)?,
            };
            out.set_item(name, v)?;
        }
        Ok(out)
    }

    fn shape<'py>(&self, py: Python<'py>, path: &str) -> PyResult<Bound<'py, PyTuple>> {
        let info = py.detach(|| self.inner.dataset(path)).map_err(to_py_err)?;
        PyTuple::new(py, info.shape)
    }

    fn dtype(&self, py: Python<'_>, path: &str) -> PyResult<&'static str> {
        let info = py.detach(|| self.inner.dataset(path)).map_err(to_py_err)?;
        Ok(info.dtype.numpy_name())
    }

    fn read<'py>(&self, py: Python<'py>, path: &str) -> PyResult<Bound<'py, PyAny>> {
        let (info, data) = py.detach(|| Ok::<_, Error>((self.inner.dataset(path)?, self.inner.read(path)?))).map_err(to_py_err)?;
        match data {
            Data::View(range) => view_array(py, range, info.dtype, &info.shape),
            Data::Owned(bytes) => owned_array(py, bytes, info.dtype, &info.shape),
        }
    }

    fn visit(&self, py: Python<'_>) -> PyResult<Vec<(String, &'static str)>> {
        let items = py.detach(|| self.inner.visit()).map_err(to_py_err)?;
        Ok(items.into_iter().map(|(p, k)| (p, k.name())).collect())
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.inner)
    }
}

/// Owns the mapped range a zero-copy array looks at; numpy reads the pointer, shape and type
/// from `__array_interface__` and keeps this object as the array's base.
/// (Private stand-in for the shared `views` helper; the two can be merged.)
#[pyclass(frozen)]
struct MappedBytes {
    range: ByteRange,
    typestr: &'static str,
    shape: Vec<u64>,
}

#[pymethods]
impl MappedBytes {
    #[getter]
    fn __array_interface__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("version", 3)?;
        d.set_item("shape", PyTuple::new(py, &self.shape)?)?;
        d.set_item("typestr", self.typestr)?;
        // Read-only: the bytes belong to a shared, possibly mapped, file.
        d.set_item("data", (self.range.bytes().as_ptr() as usize, true))?;
        Ok(d)
    }
}

fn typestr(dtype: DType) -> PyResult<&'static str> {
    Ok(match dtype {
        DType::Bool => "|b1",
        DType::I8 => "|i1",
        DType::I16 => "<i2",
        DType::I32 => "<i4",
        DType::I64 => "<i8",
        DType::U8 => "|u1",
        DType::U16 => "<u2",
        DType::U32 => "<u4",
        DType::U64 => "<u8",
        DType::F16 => "<f2",
        DType::F32 => "<f4",
        DType::F64 => "<f8",
        DType::BF16 => return Err(to_py_err(Error::unsupported("bfloat16 data (numpy has no bfloat16 dtype)"))),
    })
}

fn view_array<'py>(py: Python<'py>, range: ByteRange, dtype: DType, shape: &[u64]) -> PyResult<Bound<'py, PyAny>> {
    let holder = Bound::new(py, MappedBytes { range, typestr: typestr(dtype)?, shape: shape.to_vec() })?;
    py.import("numpy")?.call_method1("asarray", (holder,))
}

fn owned_array<'py>(py: Python<'py>, bytes: Vec<u8>, dtype: DType, shape: &[u64]) -> PyResult<Bound<'py, PyAny>> {
    let ts = typestr(dtype)?;
    let flat = PyArray1::<u8>::from_vec(py, bytes);
    flat.call_method1("view", (ts,))?.call_method1("reshape", (PyTuple::new(py, shape)?,))
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyH5File>()?;
    Ok(())
}
