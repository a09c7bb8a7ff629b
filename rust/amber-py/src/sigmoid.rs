//! Bindings of `amber_core::sigmoid`: aligned, C-contiguous float32 numpy arrays (the caller
//! makes them so), the output written in place, the GIL released while computing.

use numpy::{PyArrayDyn, PyReadonlyArrayDyn, PyReadwriteArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use amber_core::sigmoid as core;

use crate::layout::is_flat_f32;
use crate::to_py_err;

fn check_layout(name: &str, array: &Bound<'_, PyArrayDyn<f32>>, which: &str) -> PyResult<()> {
    if is_flat_f32(array) {
        Ok(())
    } else {
        Err(PyValueError::new_err(format!("{name}: `{which}` must be an aligned, C-contiguous float32 array")))
    }
}

fn checked<'a>(
    name: &str,
    x: &'a PyReadonlyArrayDyn<'_, f32>,
    out: &'a mut PyReadwriteArrayDyn<'_, f32>,
) -> PyResult<(&'a [f32], &'a mut [f32])> {
    check_layout(name, x, "x")?;
    check_layout(name, out, "out")?;
    if x.shape() != out.shape() {
        return Err(PyValueError::new_err(format!(
            "{name}: `x` has shape {:?} and `out` {:?}; expected equal shapes",
            x.shape(),
            out.shape()
        )));
    }
    Ok((x.as_slice()?, out.as_slice_mut()?))
}

/// `out = 1 / (1 + exp(-x))` in one pass.
#[pyfunction]
fn sigmoid_f32(py: Python<'_>, x: PyReadonlyArrayDyn<'_, f32>, mut out: PyReadwriteArrayDyn<'_, f32>) -> PyResult<()> {
    let (x, out) = checked("sigmoid_f32", &x, &mut out)?;
    py.detach(|| core::sigmoid_f32(x, out)).map_err(to_py_err)
}

/// `out = x * sigmoid(x)` in one pass.
#[pyfunction]
fn silu_f32(py: Python<'_>, x: PyReadonlyArrayDyn<'_, f32>, mut out: PyReadwriteArrayDyn<'_, f32>) -> PyResult<()> {
    let (x, out) = checked("silu_f32", &x, &mut out)?;
    py.detach(|| core::silu_f32(x, out)).map_err(to_py_err)
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(sigmoid_f32, m)?)?;
    m.add_function(wrap_pyfunction!(silu_f32, m)?)?;
    Ok(())
}
