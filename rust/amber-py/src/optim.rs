//! Bindings of `amber_core::optim`: contiguous float32 numpy arrays, slots and the output
//! written in place, the GIL released while computing. numpy's borrow tracking refuses an
//! array passed twice (or overlapping views of one buffer) as a writable argument.

use numpy::{PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyReadwriteArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use amber_core::optim::{
    self as core, AdadeltaCoefficients, AdagradCoefficients, AdamCoefficients, AdamaxCoefficients, FtrlCoefficients,
    FtrlPower, LionCoefficients, NadamCoefficients, RmspropCoefficients, SgdCoefficients,
};

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

fn write_optional<'a>(array: &'a mut Option<PyReadwriteArrayDyn<'_, f32>>, name: &str) -> PyResult<Option<&'a mut [f32]>> {
    array.as_mut().map(|array| write(array, name)).transpose()
}

/// One SGD step: `momentum` (unless None) updated in place, the new values written to
/// `value_out`.
#[pyfunction]
#[pyo3(signature = (value_out, value_in, grad, momentum, learning_rate, momentum_factor, nesterov))]
#[allow(clippy::too_many_arguments)]
fn sgd_step_f32(
    py: Python<'_>,
    mut value_out: PyReadwriteArrayDyn<'_, f32>,
    value_in: PyReadonlyArrayDyn<'_, f32>,
    grad: PyReadonlyArrayDyn<'_, f32>,
    mut momentum: Option<PyReadwriteArrayDyn<'_, f32>>,
    learning_rate: f32,
    momentum_factor: f32,
    nesterov: bool,
) -> PyResult<()> {
    let coefficients = SgdCoefficients { learning_rate, momentum: momentum_factor, nesterov };
    let out = write(&mut value_out, "value_out")?;
    let value = read(&value_in, "value_in")?;
    let grad = read(&grad, "grad")?;
    let momentum = write_optional(&mut momentum, "momentum")?;
    py.detach(|| core::sgd_step_f32(out, value, grad, momentum, coefficients)).map_err(to_py_err)
}

/// One Adam step: `m`, `v` (and `v_hat` under AMSGrad, unless None) updated in place, the
/// new values written to `value_out`. The coefficients are the float32 values the update
/// rule uses.
#[pyfunction]
#[pyo3(signature = (value_out, value_in, grad, m, v, v_hat, alpha, one_minus_beta_1, one_minus_beta_2, epsilon))]
#[allow(clippy::too_many_arguments)]
fn adam_step_f32(
    py: Python<'_>,
    mut value_out: PyReadwriteArrayDyn<'_, f32>,
    value_in: PyReadonlyArrayDyn<'_, f32>,
    grad: PyReadonlyArrayDyn<'_, f32>,
    mut m: PyReadwriteArrayDyn<'_, f32>,
    mut v: PyReadwriteArrayDyn<'_, f32>,
    mut v_hat: Option<PyReadwriteArrayDyn<'_, f32>>,
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
    let v_hat = write_optional(&mut v_hat, "v_hat")?;
    py.detach(|| core::adam_step_f32(out, value, grad, m, v, v_hat, coefficients)).map_err(to_py_err)
}

/// One RMSprop step: `velocity` (and `average_gradient` when centered, `momentum`, each
/// unless None) updated in place, the new values written to `value_out`.
#[pyfunction]
#[pyo3(signature = (value_out, value_in, grad, velocity, average_gradient, momentum, learning_rate, rho, one_minus_rho, epsilon, momentum_factor))]
#[allow(clippy::too_many_arguments)]
fn rmsprop_step_f32(
    py: Python<'_>,
    mut value_out: PyReadwriteArrayDyn<'_, f32>,
    value_in: PyReadonlyArrayDyn<'_, f32>,
    grad: PyReadonlyArrayDyn<'_, f32>,
    mut velocity: PyReadwriteArrayDyn<'_, f32>,
    mut average_gradient: Option<PyReadwriteArrayDyn<'_, f32>>,
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
    let average_gradient = write_optional(&mut average_gradient, "average_gradient")?;
    let momentum = write_optional(&mut momentum, "momentum")?;
    py.detach(|| core::rmsprop_step_f32(out, value, grad, velocity, average_gradient, momentum, coefficients))
        .map_err(to_py_err)
}

/// One Adagrad step: `accumulator` updated in place, the new values written to `value_out`.
#[pyfunction]
fn adagrad_step_f32(
    py: Python<'_>,
    mut value_out: PyReadwriteArrayDyn<'_, f32>,
    value_in: PyReadonlyArrayDyn<'_, f32>,
    grad: PyReadonlyArrayDyn<'_, f32>,
    mut accumulator: PyReadwriteArrayDyn<'_, f32>,
    learning_rate: f32,
    epsilon: f32,
) -> PyResult<()> {
    let coefficients = AdagradCoefficients { learning_rate, epsilon };
    let out = write(&mut value_out, "value_out")?;
    let value = read(&value_in, "value_in")?;
    let grad = read(&grad, "grad")?;
    let accumulator = write(&mut accumulator, "accumulator")?;
    py.detach(|| core::adagrad_step_f32(out, value, grad, accumulator, coefficients)).map_err(to_py_err)
}

/// One Nadam step: `m`, `v` updated in place, the new values written to `value_out`; the
/// per-step scalars are the float32 values Keras's rule computes.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn nadam_step_f32(
    py: Python<'_>,
    mut value_out: PyReadwriteArrayDyn<'_, f32>,
    value_in: PyReadonlyArrayDyn<'_, f32>,
    grad: PyReadonlyArrayDyn<'_, f32>,
    mut m: PyReadwriteArrayDyn<'_, f32>,
    mut v: PyReadwriteArrayDyn<'_, f32>,
    learning_rate: f32,
    one_minus_beta_1: f32,
    one_minus_beta_2: f32,
    epsilon: f32,
    next_momentum: f32,
    one_minus_next_product: f32,
    one_minus_momentum: f32,
    one_minus_product: f32,
    one_minus_beta_2_power: f32,
) -> PyResult<()> {
    let coefficients = NadamCoefficients {
        learning_rate,
        one_minus_beta_1,
        one_minus_beta_2,
        epsilon,
        next_momentum,
        one_minus_next_product,
        one_minus_momentum,
        one_minus_product,
        one_minus_beta_2_power,
    };
    let out = write(&mut value_out, "value_out")?;
    let value = read(&value_in, "value_in")?;
    let grad = read(&grad, "grad")?;
    let m = write(&mut m, "m")?;
    let v = write(&mut v, "v")?;
    py.detach(|| core::nadam_step_f32(out, value, grad, m, v, coefficients)).map_err(to_py_err)
}

/// One Adamax step: `m`, `u` updated in place, the new values written to `value_out`.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn adamax_step_f32(
    py: Python<'_>,
    mut value_out: PyReadwriteArrayDyn<'_, f32>,
    value_in: PyReadonlyArrayDyn<'_, f32>,
    grad: PyReadonlyArrayDyn<'_, f32>,
    mut m: PyReadwriteArrayDyn<'_, f32>,
    mut u: PyReadwriteArrayDyn<'_, f32>,
    learning_rate: f32,
    one_minus_beta_1: f32,
    beta_2: f32,
    epsilon: f32,
    one_minus_beta_1_power: f32,
) -> PyResult<()> {
    let coefficients = AdamaxCoefficients { learning_rate, one_minus_beta_1, beta_2, epsilon, one_minus_beta_1_power };
    let out = write(&mut value_out, "value_out")?;
    let value = read(&value_in, "value_in")?;
    let grad = read(&grad, "grad")?;
    let m = write(&mut m, "m")?;
    let u = write(&mut u, "u")?;
    py.detach(|| core::adamax_step_f32(out, value, grad, m, u, coefficients)).map_err(to_py_err)
}

/// One Lion step: `m` updated in place, the new values written to `value_out`.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn lion_step_f32(
    py: Python<'_>,
    mut value_out: PyReadwriteArrayDyn<'_, f32>,
    value_in: PyReadonlyArrayDyn<'_, f32>,
    grad: PyReadonlyArrayDyn<'_, f32>,
    mut m: PyReadwriteArrayDyn<'_, f32>,
    learning_rate: f32,
    beta_1: f32,
    one_minus_beta_1: f32,
    beta_2: f32,
    one_minus_beta_2: f32,
) -> PyResult<()> {
    let coefficients = LionCoefficients { learning_rate, beta_1, one_minus_beta_1, beta_2, one_minus_beta_2 };
    let out = write(&mut value_out, "value_out")?;
    let value = read(&value_in, "value_in")?;
    let grad = read(&grad, "grad")?;
    let m = write(&mut m, "m")?;
    py.detach(|| core::lion_step_f32(out, value, grad, m, coefficients)).map_err(to_py_err)
}

/// One Adadelta step: both accumulators updated in place, the new values written to
/// `value_out`.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn adadelta_step_f32(
    py: Python<'_>,
    mut value_out: PyReadwriteArrayDyn<'_, f32>,
    value_in: PyReadonlyArrayDyn<'_, f32>,
    grad: PyReadonlyArrayDyn<'_, f32>,
    mut accumulated_grad: PyReadwriteArrayDyn<'_, f32>,
    mut accumulated_delta: PyReadwriteArrayDyn<'_, f32>,
    learning_rate: f32,
    rho: f32,
    one_minus_rho: f32,
    epsilon: f32,
) -> PyResult<()> {
    let coefficients = AdadeltaCoefficients { learning_rate, rho, one_minus_rho, epsilon };
    let out = write(&mut value_out, "value_out")?;
    let value = read(&value_in, "value_in")?;
    let grad = read(&grad, "grad")?;
    let accumulated_grad = write(&mut accumulated_grad, "accumulated_grad")?;
    let accumulated_delta = write(&mut accumulated_delta, "accumulated_delta")?;
    py.detach(|| core::adadelta_step_f32(out, value, grad, accumulated_grad, accumulated_delta, coefficients))
        .map_err(to_py_err)
}

/// One Ftrl step: `accumulator` and `linear` updated in place, the new values written to
/// `value_out`; `power` (`-learning_rate_power`) must be 0, 0.5, 1 or 2.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn ftrl_step_f32(
    py: Python<'_>,
    mut value_out: PyReadwriteArrayDyn<'_, f32>,
    value_in: PyReadonlyArrayDyn<'_, f32>,
    grad: PyReadonlyArrayDyn<'_, f32>,
    mut accumulator: PyReadwriteArrayDyn<'_, f32>,
    mut linear: PyReadwriteArrayDyn<'_, f32>,
    learning_rate: f32,
    power: f32,
    two_l2_shrinkage: f32,
    l1: f32,
    two_l2: f32,
) -> PyResult<()> {
    let power = FtrlPower::from_exponent(power).map_err(to_py_err)?;
    let coefficients = FtrlCoefficients { learning_rate, power, two_l2_shrinkage, l1, two_l2 };
    let out = write(&mut value_out, "value_out")?;
    let value = read(&value_in, "value_in")?;
    let grad = read(&grad, "grad")?;
    let accumulator = write(&mut accumulator, "accumulator")?;
    let linear = write(&mut linear, "linear")?;
    py.detach(|| core::ftrl_step_f32(out, value, grad, accumulator, linear, coefficients)).map_err(to_py_err)
}

/// Decoupled weight decay: `value_out = value_in - (value_in * weight_decay) * learning_rate`.
#[pyfunction]
fn weight_decay_f32(
    py: Python<'_>,
    mut value_out: PyReadwriteArrayDyn<'_, f32>,
    value_in: PyReadonlyArrayDyn<'_, f32>,
    weight_decay: f32,
    learning_rate: f32,
) -> PyResult<()> {
    let out = write(&mut value_out, "value_out")?;
    let value = read(&value_in, "value_in")?;
    py.detach(|| core::weight_decay_f32(out, value, weight_decay, learning_rate)).map_err(to_py_err)
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(sgd_step_f32, m)?)?;
    m.add_function(wrap_pyfunction!(adam_step_f32, m)?)?;
    m.add_function(wrap_pyfunction!(rmsprop_step_f32, m)?)?;
    m.add_function(wrap_pyfunction!(adagrad_step_f32, m)?)?;
    m.add_function(wrap_pyfunction!(nadam_step_f32, m)?)?;
    m.add_function(wrap_pyfunction!(adamax_step_f32, m)?)?;
    m.add_function(wrap_pyfunction!(lion_step_f32, m)?)?;
    m.add_function(wrap_pyfunction!(adadelta_step_f32, m)?)?;
    m.add_function(wrap_pyfunction!(ftrl_step_f32, m)?)?;
    m.add_function(wrap_pyfunction!(weight_decay_f32, m)?)?;
    Ok(())
}
