//! Bindings of `amber_core::optim`: contiguous float32 numpy arrays, slots and the output
//! written in place, the GIL released while computing. numpy's borrow tracking refuses an
//! array passed twice (or overlapping views of one buffer) as a writable argument.

use numpy::{PyReadonlyArrayDyn, PyReadwriteArrayDyn};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use amber_core::optim::{
    self as core, AdadeltaCoefficients, AdagradCoefficients, AdamCoefficients, AdamaxCoefficients, FtrlCoefficients,
    FtrlPower, LionCoefficients, NadamCoefficients, RmspropCoefficients, SgdCoefficients,
};

use crate::layout::check_flat_f32;
use crate::to_py_err;

fn read<'a>(array: &'a PyReadonlyArrayDyn<'_, f32>, name: &str) -> PyResult<&'a [f32]> {
    check_flat_f32(array, name)?;
    array.as_slice().map_err(|_| PyValueError::new_err(format!("`{name}` must be a C-contiguous float32 array")))
}

fn write<'a>(array: &'a mut PyReadwriteArrayDyn<'_, f32>, name: &str) -> PyResult<&'a mut [f32]> {
    check_flat_f32(array, name)?;
    array.as_slice_mut().map_err(|_| PyValueError::new_err(format!("`{name}` must be a C-contiguous float32 array")))
}

fn write_optional<'a>(array: &'a mut Option<PyReadwriteArrayDyn<'_, f32>>, name: &str) -> PyResult<Option<&'a mut [f32]>> {
    array.as_mut().map(|array| write(array, name)).transpose()
}

/// Defines the binding of the core step of the same name:
/// `name(value_out, value_in, grad, <slots>, <optional slots>, <scalars>)`. Every array is
/// checked and borrowed under its Python name, then the core step runs with the GIL released
/// on the coefficients built from the scalars.
macro_rules! step_binding {
    (
        $(#[doc = $doc:literal])*
        fn $name:ident(slots: [$($slot:ident),*], optional: [$($optional:ident),*], $($scalar:ident: $ty:ty),* $(,)?)
            -> $coefficients:expr;
    ) => {
        $(#[doc = $doc])*
        #[pyfunction]
        #[pyo3(signature = (value_out, value_in, grad, $($slot,)* $($optional,)* $($scalar),*))]
        #[allow(clippy::too_many_arguments)]
        fn $name(
            py: Python<'_>,
            mut value_out: PyReadwriteArrayDyn<'_, f32>,
            value_in: PyReadonlyArrayDyn<'_, f32>,
            grad: PyReadonlyArrayDyn<'_, f32>,
            $(mut $slot: PyReadwriteArrayDyn<'_, f32>,)*
            $(mut $optional: Option<PyReadwriteArrayDyn<'_, f32>>,)*
            $($scalar: $ty,)*
        ) -> PyResult<()> {
            let coefficients = $coefficients;
            let out = write(&mut value_out, "value_out")?;
            let value = read(&value_in, "value_in")?;
            let grad = read(&grad, "grad")?;
            $(let $slot = write(&mut $slot, stringify!($slot))?;)*
            $(let $optional = write_optional(&mut $optional, stringify!($optional))?;)*
            py.detach(|| core::$name(out, value, grad, $($slot,)* $($optional,)* coefficients)).map_err(to_py_err)
        }
    };
}

step_binding! {
    /// One SGD step: `momentum` (unless None) updated in place, the new values written to
    /// `value_out`.
    fn sgd_step_f32(slots: [], optional: [momentum], learning_rate: f32, momentum_factor: f32, nesterov: bool)
        -> SgdCoefficients { learning_rate, momentum: momentum_factor, nesterov };
}

step_binding! {
    /// One Adam step: `m`, `v` (and `v_hat` under AMSGrad, unless None) updated in place, the
    /// new values written to `value_out`. The coefficients are the float32 values the update
    /// rule uses.
    fn adam_step_f32(slots: [m, v], optional: [v_hat], alpha: f32, one_minus_beta_1: f32, one_minus_beta_2: f32, epsilon: f32)
        -> AdamCoefficients { alpha, one_minus_beta_1, one_minus_beta_2, epsilon };
}

step_binding! {
    /// One RMSprop step: `velocity` (and `average_gradient` when centered, `momentum`, each
    /// unless None) updated in place, the new values written to `value_out`.
    fn rmsprop_step_f32(
        slots: [velocity], optional: [average_gradient, momentum],
        learning_rate: f32, rho: f32, one_minus_rho: f32, epsilon: f32, momentum_factor: f32,
    ) -> RmspropCoefficients { learning_rate, rho, one_minus_rho, epsilon, momentum: momentum_factor };
}

step_binding! {
    /// One Adagrad step: `accumulator` updated in place, the new values written to `value_out`.
    fn adagrad_step_f32(slots: [accumulator], optional: [], learning_rate: f32, epsilon: f32)
        -> AdagradCoefficients { learning_rate, epsilon };
}

step_binding! {
    /// One Nadam step: `m`, `v` updated in place, the new values written to `value_out`; the
    /// per-step scalars are the float32 values Keras's rule computes.
    fn nadam_step_f32(
        slots: [m, v], optional: [],
        learning_rate: f32, one_minus_beta_1: f32, one_minus_beta_2: f32, epsilon: f32, next_momentum: f32,
        one_minus_next_product: f32, one_minus_momentum: f32, one_minus_product: f32, one_minus_beta_2_power: f32,
    ) -> NadamCoefficients {
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
}

step_binding! {
    /// One Adamax step: `m`, `u` updated in place, the new values written to `value_out`.
    fn adamax_step_f32(
        slots: [m, u], optional: [],
        learning_rate: f32, one_minus_beta_1: f32, beta_2: f32, epsilon: f32, one_minus_beta_1_power: f32,
    ) -> AdamaxCoefficients { learning_rate, one_minus_beta_1, beta_2, epsilon, one_minus_beta_1_power };
}

step_binding! {
    /// One Lion step: `m` updated in place, the new values written to `value_out`.
    fn lion_step_f32(
        slots: [m], optional: [],
        learning_rate: f32, beta_1: f32, one_minus_beta_1: f32, beta_2: f32, one_minus_beta_2: f32,
    ) -> LionCoefficients { learning_rate, beta_1, one_minus_beta_1, beta_2, one_minus_beta_2 };
}

step_binding! {
    /// One Adadelta step: both accumulators updated in place, the new values written to
    /// `value_out`.
    fn adadelta_step_f32(
        slots: [accumulated_grad, accumulated_delta], optional: [],
        learning_rate: f32, rho: f32, one_minus_rho: f32, epsilon: f32,
    ) -> AdadeltaCoefficients { learning_rate, rho, one_minus_rho, epsilon };
}

step_binding! {
    /// One Ftrl step: `accumulator` and `linear` updated in place, the new values written to
    /// `value_out`; `power` (`-learning_rate_power`) must be 0, 0.5, 1 or 2.
    fn ftrl_step_f32(
        slots: [accumulator, linear], optional: [],
        learning_rate: f32, power: f32, two_l2_shrinkage: f32, l1: f32, two_l2: f32,
    ) -> FtrlCoefficients {
        learning_rate,
        power: FtrlPower::from_exponent(power).map_err(to_py_err)?,
        two_l2_shrinkage,
        l1,
        two_l2,
    };
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
