//! Binding for `amber_core::safetensors`: load as read-only views, save from numpy arrays.

use std::collections::HashMap;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyMapping};

use amber_core::dtype::DType;
use amber_core::safetensors::{self, TensorRef};

use crate::to_py_err;
use crate::views::array_from_range;

#[pyfunction]
fn safetensors_load(
    py: Python<'_>,
    path: std::path::PathBuf,
) -> PyResult<(Py<PyDict>, Option<HashMap<String, String>>)> {
    let loaded = py.detach(|| safetensors::load(&path)).map_err(to_py_err)?;
    let label = path.display().to_string();
    let tensors = PyDict::new(py);
    for t in loaded.tensors {
        let array = array_from_range(py, t.data, t.dtype, &t.shape).map_err(|e| {
            // Say which tensor of which file could not be viewed.
            let msg = format!("file '{label}', object '{}': {}", t.name, e.value(py));
            PyErr::from_type(e.get_type(py), msg)
        })?;
        tensors.set_item(&t.name, array)?;
    }
    let metadata = loaded.metadata.map(|m| m.into_iter().collect());
    Ok((tensors.unbind(), metadata))
}

/// A caller's array prepared for writing: C-contiguous, little-endian, kept alive by `array`.
struct Prepared<'py> {
    name: String,
    dtype: DType,
    shape: Vec<u64>,
    array: Bound<'py, PyAny>,
    address: usize,
    nbytes: usize,
}

fn prepare<'py>(np: &Bound<'py, PyModule>, name: String, value: &Bound<'py, PyAny>) -> PyResult<Prepared<'py>> {
    // Not `ascontiguousarray`: it turns 0-d arrays into 1-d ones.
    let mut array = np.call_method1("asarray", (value,))?;
    if !array.getattr("flags")?.getattr("c_contiguous")?.extract::<bool>()? {
        array = array.call_method1("copy", ("C",))?;
    }
    let dtype = array.getattr("dtype")?;
    if dtype.getattr("byteorder")?.extract::<String>()? == ">" {
        array = array.call_method1("astype", (dtype.call_method1("newbyteorder", ("<",))?,))?;
    }
    let dtype_name: String = array.getattr("dtype")?.getattr("name")?.extract()?;
    let dtype = DType::from_numpy_name(&dtype_name).map_err(|e| to_py_err(e.in_object(&name)))?;
    let shape: Vec<u64> = array.getattr("shape")?.extract()?;
    let nbytes: usize = array.getattr("nbytes")?.extract()?;
    let address: usize = array
        .getattr("__array_interface__")?
        .get_item("data")?
        .get_item(0)?
        .extract()?;
    Ok(Prepared {
        name,
        dtype,
        shape,
        array,
        address,
        nbytes,
    })
}

#[pyfunction]
#[pyo3(signature = (path, tensors, metadata=None))]
fn safetensors_save(
    py: Python<'_>,
    path: std::path::PathBuf,
    tensors: &Bound<'_, PyMapping>,
    metadata: Option<HashMap<String, String>>,
) -> PyResult<()> {
    let np = py.import("numpy")?;
    let mut prepared = Vec::new();
    for item in tensors.items()?.iter() {
        let (name, value): (String, Bound<'_, PyAny>) = item.extract()?;
        prepared.push(prepare(&np, name, &value)?);
    }
    let refs: Vec<TensorRef<'_>> = prepared
        .iter()
        .map(|p| {
            let data: &[u8] = if p.nbytes == 0 {
                &[]
            } else {
                // SAFETY: `p.array` is a C-contiguous array of `nbytes` bytes at `address`, and
                // `prepared` keeps it alive until the write below has finished.
                unsafe { std::slice::from_raw_parts(p.address as *const u8, p.nbytes) }
            };
            let _ = &p.array;
            TensorRef {
                name: &p.name,
                dtype: p.dtype,
                shape: &p.shape,
                data,
            }
        })
        .collect();
    let result = py.detach(|| safetensors::save(&path, &refs, metadata.as_ref()));
    drop(refs);
    drop(prepared);
    result.map_err(to_py_err)
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(safetensors_load, m)?)?;
    m.add_function(wrap_pyfunction!(safetensors_save, m)?)?;
    Ok(())
}
