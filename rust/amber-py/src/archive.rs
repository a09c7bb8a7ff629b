//! Binding for `amber_core::archive`: `Archive` (read) and `ArchiveWriter`.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use amber_core::archive::{Archive, ArchiveWriter, Method};
use amber_core::error::{Error, ResultExt};
use amber_core::h5::read::H5File;
use amber_core::storage::Storage;

use crate::h5_read::PyH5File;
use crate::h5_write::H5Writer;

use crate::to_py_err;

#[pyclass(frozen, module = "amber._native", name = "Archive")]
pub(crate) struct PyArchive {
    inner: Archive,
}

impl PyArchive {
    /// The core archive, for other bindings (e.g. opening an entry as HDF5).
    #[allow(dead_code)]
    pub(crate) fn inner(&self) -> &Archive {
        &self.inner
    }
}

#[pymethods]
impl PyArchive {
    #[staticmethod]
    fn open(py: Python<'_>, path: std::path::PathBuf) -> PyResult<PyArchive> {
        let inner = py.detach(|| Archive::open(&path)).map_err(to_py_err)?;
        Ok(PyArchive { inner })
    }

    #[getter]
    fn path(&self) -> &str {
        self.inner.path()
    }

    fn names(&self) -> Vec<&str> {
        self.inner.names().collect()
    }

    fn entries<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        self.inner
            .entries()
            .iter()
            .map(|e| {
                let d = PyDict::new(py);
                d.set_item("name", &e.name)?;
                d.set_item("method", e.method.name())?;
                d.set_item("data_offset", e.data_offset)?;
                d.set_item("compressed_size", e.compressed_size)?;
                d.set_item("size", e.size)?;
                d.set_item("crc32", e.crc32)?;
                d.set_item("is_dir", e.is_dir)?;
                Ok(d)
            })
            .collect()
    }

    #[pyo3(signature = (name, limit=None))]
    fn read<'py>(&self, py: Python<'py>, name: &str, limit: Option<u64>) -> PyResult<Bound<'py, PyBytes>> {
        let data = py.detach(|| self.inner.read(name, limit)).map_err(to_py_err)?;
        Ok(PyBytes::new(py, &data))
    }

    /// Open an entry as HDF5: in place (zero-copy) when stored, inflated (bounded by its
    /// declared size) into memory when deflated.
    fn open_h5(&self, py: Python<'_>, name: &str) -> PyResult<PyH5File> {
        let inner = py
            .detach(|| {
                let entry = self.inner.entry(name)?;
                let range = if entry.method == Method::Stored {
                    self.inner.stored_range(name)?
                } else {
                    let bytes = self.inner.read(name, None)?;
                    Storage::from_vec(bytes, self.inner.path()).full()
                };
                H5File::from_range(range).in_entry(name).in_file(self.inner.path())
            })
            .map_err(to_py_err)?;
        Ok(PyH5File::from_core(inner))
    }

    fn __repr__(&self) -> String {
        format!(
            "<amber Archive '{}' ({} entries)>",
            self.inner.path(),
            self.inner.entries().len()
        )
    }
}

#[pyclass(module = "amber._native", name = "ArchiveWriter")]
pub(crate) struct PyArchiveWriter {
    // `None` once finished or aborted.
    inner: Option<ArchiveWriter>,
}

impl PyArchiveWriter {
    /// The open core writer, for other bindings that stream entries into it.
    pub(crate) fn writer(&mut self) -> PyResult<&mut ArchiveWriter> {
        self.inner
            .as_mut()
            .ok_or_else(|| to_py_err(Error::invalid("the archive writer was already finished or aborted")))
    }
}

#[pymethods]
impl PyArchiveWriter {
    #[new]
    fn new(py: Python<'_>, path: std::path::PathBuf) -> PyResult<PyArchiveWriter> {
        let inner = py.detach(|| ArchiveWriter::create(&path)).map_err(to_py_err)?;
        Ok(PyArchiveWriter { inner: Some(inner) })
    }

    #[pyo3(signature = (name, data, deflate=false))]
    fn add_bytes(&mut self, py: Python<'_>, name: &str, data: &[u8], deflate: bool) -> PyResult<()> {
        let writer = self.writer()?;
        py.detach(|| writer.add_bytes(name, data, deflate)).map_err(to_py_err)
    }

    /// Stream an HDF5 file into a stored entry, straight from the writer's arrays.
    fn add_h5(&mut self, py: Python<'_>, name: &str, writer: PyRef<'_, H5Writer>) -> PyResult<()> {
        let archive = self.writer()?;
        writer
            .with_builder(py, |b| {
                let len = b.total_size();
                py.detach(|| archive.add_stored_stream(name, len, |w| b.write_to(w)))
            })?
            .map_err(to_py_err)
    }

    fn finish(&mut self, py: Python<'_>) -> PyResult<()> {
        self.writer()?;
        let writer = self.inner.take();
        match writer {
            Some(w) => py.detach(|| w.finish()).map_err(to_py_err),
            None => Ok(()),
        }
    }

    fn abort(&mut self) {
        if let Some(w) = self.inner.take() {
            w.abort();
        }
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyArchive>()?;
    m.add_class::<PyArchiveWriter>()?;
    Ok(())
}
