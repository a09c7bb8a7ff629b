//! Bindings of `amber_core::conv`: C-ordered, aligned float32 numpy arrays (the caller makes
//! them so), the output written in place, the GIL released while computing.

use numpy::{PyArray4, PyReadonlyArray1, PyReadonlyArray4, PyReadwriteArray4, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use amber_core::conv::{self as core, DepthwiseGeometry};
use amber_core::kernels::Activation;

use crate::layout::check_flat_f32;
use crate::to_py_err;

fn check_layout(array: &Bound<'_, PyArray4<f32>>, name: &str) -> PyResult<[usize; 4]> {
    check_flat_f32(array, name)?;
    let shape = array.shape();
    Ok([shape[0], shape[1], shape[2], shape[3]])
}

/// The slice of an optional gradient output, which must have the shape of the input it
/// belongs to.
fn gradient_target<'a>(
    array: Option<&'a mut PyReadwriteArray4<'_, f32>>,
    name: &str,
    of: &str,
    shape: [usize; 4],
) -> PyResult<Option<&'a mut [f32]>> {
    let Some(array) = array else { return Ok(None) };
    if check_layout(array, name)? != shape {
        return Err(PyValueError::new_err(format!("`{name}` must have the shape of `{of}`, {shape:?}")));
    }
    Ok(Some(array.as_slice_mut()?))
}

/// Depthwise 2-D convolution: `x` (batch, height, width, channels), `kernel`
/// (kh, kw, channels, multiplier), written to `out` (batch, out_h, out_w, channels * multiplier).
/// `pads` is ((top, bottom), (left, right)). With `scale` and/or `bias` (one value per
/// output channel each) and/or an `activation`, each output is `activation(y * scale + bias)`.
#[pyfunction]
#[pyo3(signature = (x, kernel, out, strides, dilation, pads, bias=None, activation="linear", scale=None))]
#[allow(clippy::too_many_arguments)]
fn depthwise_conv2d_f32(
    py: Python<'_>,
    x: PyReadonlyArray4<'_, f32>,
    kernel: PyReadonlyArray4<'_, f32>,
    mut out: PyReadwriteArray4<'_, f32>,
    strides: [usize; 2],
    dilation: [usize; 2],
    pads: [[usize; 2]; 2],
    bias: Option<PyReadonlyArray1<'_, f32>>,
    activation: &str,
    scale: Option<PyReadonlyArray1<'_, f32>>,
) -> PyResult<()> {
    let act = Activation::from_name(activation).map_err(to_py_err)?;
    let x_shape = check_layout(&x, "x")?;
    let kernel_shape = check_layout(&kernel, "kernel")?;
    let out_shape = check_layout(&out, "out")?;
    for (name, values) in [("bias", &bias), ("scale", &scale)] {
        if let Some(values) = values {
            check_flat_f32(values, name)?;
        }
    }
    let x = x.as_slice()?;
    let kernel = kernel.as_slice()?;
    let bias = bias.as_ref().map(|b| b.as_slice()).transpose()?;
    let scale = scale.as_ref().map(|s| s.as_slice()).transpose()?;
    let out = out.as_slice_mut()?;
    let geometry = DepthwiseGeometry { strides, dilation, pads };
    py.detach(|| core::depthwise_conv2d_f32_fused(x, x_shape, kernel, kernel_shape, geometry, scale, bias, act, out, out_shape))
        .map_err(to_py_err)
}

/// The gradients of `depthwise_conv2d_f32` for the output gradient `grad`: written to `dx`
/// (the shape of `x`) and `dkernel` (the shape of `kernel`) when given.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn depthwise_conv2d_backward_f32(
    py: Python<'_>,
    x: PyReadonlyArray4<'_, f32>,
    kernel: PyReadonlyArray4<'_, f32>,
    grad: PyReadonlyArray4<'_, f32>,
    mut dx: Option<PyReadwriteArray4<'_, f32>>,
    mut dkernel: Option<PyReadwriteArray4<'_, f32>>,
    strides: [usize; 2],
    dilation: [usize; 2],
    pads: [[usize; 2]; 2],
) -> PyResult<()> {
    let x_shape = check_layout(&x, "x")?;
    let kernel_shape = check_layout(&kernel, "kernel")?;
    let grad_shape = check_layout(&grad, "grad")?;
    let dx = gradient_target(dx.as_mut(), "dx", "x", x_shape)?;
    let dkernel = gradient_target(dkernel.as_mut(), "dkernel", "kernel", kernel_shape)?;
    let (x, kernel, grad) = (x.as_slice()?, kernel.as_slice()?, grad.as_slice()?);
    let geometry = DepthwiseGeometry { strides, dilation, pads };
    py.detach(|| core::depthwise_conv2d_backward_f32(x, x_shape, kernel, kernel_shape, geometry, grad, grad_shape, dx, dkernel))
        .map_err(to_py_err)
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(depthwise_conv2d_f32, m)?)?;
    m.add_function(wrap_pyfunction!(depthwise_conv2d_backward_f32, m)?)?;
    Ok(())
}
