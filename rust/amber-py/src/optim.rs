//! Bindings of `amber_core::optim`: contiguous float32 numpy arrays, slots and the output
//! written in place, the GIL released while computing. numpy's borrow tracking refuses an
//! array passed twice (or overlapping views of one buffer) as a writable argument.

use numpy::{PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyReadwriteArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use amber_core::optim::{self as core, AdamCoefficients, RmspropCoefficients};

use crate::to_py_err;

/// Slots, values and gradients are walked in one flat order, so every operand must be
/// C-ordered (a Fortran-ordered one would pair the wrong elements) and aligned.
fn check_layout(array: &Bound<'_, PyArrayDyn<f32>>, name: &str) -> PyResult<()> {
    let aligned = (array.data() as usize) % std::mem::align_of::<f32>() == 0;
    if array.is_c_contiguous() && aligned {
        Ok(())
    } else {
        Err(PyValueError::new_err(format!("`{name}` must be an aligned, C-contiguous float32 array")))
    }
}

fn read<'a>(array: &'a PyReadonlyArrayDyn<'_, f32>, name: &str) -> PyResult<&'a [f32]> {
    check_layout(array, name)?;
    array.as_slice().map_err(|_| PyValueError::new_err(format!("`{name}` must be a C-contiguous float32 array")))
}

fn write<'a>(array: &'a mut PyReadwriteArrayDyn<'_, f32>, name: &str) -> PyResult<&'a mut [f32]> {
    check_layout(array, name)?;
    array.as_slice_mut().map_err(|_| PyValueError::new_err(format!("`{name}` must be a C-contiguous float32 array")))
}

/// One Adam step (no AMSGrad): `m`, `v` updated in place, the new values written to
/// `value_out`. The coefficients are the float32 values the update rule uses.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn adam_step_f32(
    py: Python<'_>,
    mut value_out: PyReadwriteArrayDyn<'_, f32>,
    value_in: PyReadonlyArrayDyn<'_, f32>,
    grad: PyReadonlyArrayDyn<'_, f32>,
    mut m: PyReadwriteArrayDyn<'_, f32>,
    mut v: PyReadwriteArrayDyn<'_, f32>,
    alpha: f32,
    one_minus_beta_1: f32,
    one_minus_beta_2: f32,
    epsilon: f32,
) -> PyResult<()> {
    let coefficients = AdamCoefficients { alpha, one_minus_beta_1, one_minus_beta_2, epsilon };
    let out = write(&mut value_out, "value_out")?;
    let value = read(&value_in, "value_in")?;
    let grad = read(&grad, "grad")?;
    let m = write(&mut m, "m")?;
    let v = write(&mut v, "v")?;
    py.detach(|| core::adam_step_f32(out, value, grad, m, v, coefficients)).map_err(to_py_err)
}

/// One uncentered RMSprop step: `velocity` (and `momentum` unless None) updated in place,
/// the new values written to `value_out`.
#[pyfunction]
#[pyo3(signature = (value_out, value_in, grad, velocity, momentum, learning_rate, rho, one_minus_rho, epsilon, momentum_factor))]
#[allow(clippy::too_many_arguments)]
fn rmsprop_step_f32(
    py: Python<'_>,
    mut value_out: PyReadwriteArrayDyn<'_, f32>,
    value_in: PyReadonlyArrayDyn<'_, f32>,
    grad: PyReadonlyArrayDyn<'_, f32>,
    mut velocity: PyReadwriteArrayDyn<'_, f32>,
    mut momentum: Option<PyReadwriteArrayDyn<'_, f32>>,
    learning_rate: f32,
    rho: f32,
    one_minus_rho: f32,
    epsilon: f32,
    momentum_factor: f32,
) -> PyResult<()> {
    let coefficients = RmspropCoefficients { learning_rate, rho, one_minus_rho, epsilon, momentum: momentum_factor };
    let out = write(&mut value_out, "value_out")?;
    let value = read(&value_in, "value_in")?;
    let grad = read(&grad, "grad")?;
    let velocity = write(&mut velocity, "velocity")?;
    let momentum = match momentum.as_mut() {
        Some(array) => Some(write(array, "momentum")?),
        None => None,
    };
    py.detach(|| core::rmsprop_step_f32(out, value, grad, velocity, momentum, coefficients)).map_err(to_py_err)
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(adam_step_f32, m)?)?;
    m.add_function(wrap_pyfunction!(rmsprop_step_f32, m)?)?;
    Ok(())
}
