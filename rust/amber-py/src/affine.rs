//! Bindings of `amber_core::affine`: aligned, C-contiguous float32 numpy arrays (the caller
//! makes them so), the output written in place, the GIL released while computing.

use numpy::{PyReadonlyArrayDyn, PyReadwriteArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use amber_core::affine as core;

use crate::layout::check_flat_f32;
use crate::to_py_err;

/// `out = x * scale + shift` with `scale` and `shift` broadcast over the last axis of `x`.
#[pyfunction]
fn scale_shift_f32(
    py: Python<'_>,
    x: PyReadonlyArrayDyn<'_, f32>,
    scale: PyReadonlyArrayDyn<'_, f32>,
    shift: PyReadonlyArrayDyn<'_, f32>,
    mut out: PyReadwriteArrayDyn<'_, f32>,
) -> PyResult<()> {
    check_flat_f32(&x, "x")?;
    check_flat_f32(&scale, "scale")?;
    check_flat_f32(&shift, "shift")?;
    check_flat_f32(&out, "out")?;
    if x.shape() != out.shape() || x.shape().last() != Some(&scale.len()) {
        return Err(PyValueError::new_err(format!(
            "scale_shift_f32: `x` of shape {:?} and `out` of shape {:?} must be equal, with a last axis of {} (the size of `scale`)",
            x.shape(),
            out.shape(),
            scale.len()
        )));
    }
    let (x, scale, shift) = (x.as_slice()?, scale.as_slice()?, shift.as_slice()?);
    let out = out.as_slice_mut()?;
    py.detach(|| core::scale_shift_f32(x, scale, shift, out)).map_err(to_py_err)
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(scale_shift_f32, m)?)?;
    Ok(())
}
