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

impl PyH5File {
    /// Wrap a core reader (used by `Archive.open_h5`).
    pub(crate) fn from_core(inner: H5File) -> Self {
        PyH5File { inner }
    }
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

    #[pyo3(signature = (path, copy = false))]
    fn read<'py>(&self, py: Python<'py>, path: &str, copy: bool) -> PyResult<Bound<'py, PyAny>> {
        let (info, data) = py
            .detach(|| {
                let info = self.inner.dataset(path)?;
                let data = match self.inner.read(path)? {
                    Data::View(range) if copy => {
                        crate::views::expect_len(&range, info.dtype, &info.shape)?;
                        Data::Owned(crate::views::copy_releasing(&range))
                    }
                    other => other,
                };
                Ok::<_, Error>((info, data))
            })
            .map_err(to_py_err)?;
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

fn view_array<'py>(py: Python<'py>, range: ByteRange, dtype: DType, shape: &[u64]) -> PyResult<Bound<'py, PyAny>> {
    Ok(crate::views::array_from_range(py, range, dtype, shape)?.into_bound(py))
}

fn owned_array<'py>(py: Python<'py>, bytes: Vec<u8>, dtype: DType, shape: &[u64]) -> PyResult<Bound<'py, PyAny>> {
    let ts = crate::views::typestr(dtype).ok_or_else(|| {
        to_py_err(Error::unsupported("bfloat16 data (numpy has no bfloat16 dtype)"))
    })?;
    let flat = PyArray1::<u8>::from_vec(py, bytes);
    flat.call_method1("view", (ts,))?.call_method1("reshape", (PyTuple::new(py, shape)?,))
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyH5File>()?;
    Ok(())
}
