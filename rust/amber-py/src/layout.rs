//! The layout check every float32 binding makes before handing an array's buffer to the core
//! as one flat slice: C-ordered (a Fortran-ordered array would pair the wrong elements) and
//! aligned for `f32` (numpy can hold misaligned views, which a slice must not be).

use numpy::ndarray::Dimension;
use numpy::{PyArray, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// Whether the array's buffer can be read as one `&[f32]`.
pub(crate) fn is_flat_f32<D: Dimension>(array: &Bound<'_, PyArray<f32, D>>) -> bool {
    array.is_c_contiguous() && (array.data() as usize).is_multiple_of(std::mem::align_of::<f32>())
}

/// `Ok` for a flat float32 array, else a ValueError naming the argument.
pub(crate) fn check_flat_f32<D: Dimension>(array: &Bound<'_, PyArray<f32, D>>, name: &str) -> PyResult<()> {
    if is_flat_f32(array) {
        Ok(())
    } else {
        Err(PyValueError::new_err(format!("`{name}` must be an aligned, C-contiguous float32 array")))
    }
}
