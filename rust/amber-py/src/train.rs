//! Binding of `amber_core::train`: float32 numpy arrays in (any strides, read in place), the
//! gradients written into the caller's flat vector, the GIL released while computing.

use numpy::{PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyReadwriteArray1, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use amber_core::kernels::{Activation, MatRef};
use amber_core::train::{self as core, ChainGradients, ChainLayer};

use crate::kernels::{byte_range, operand, overlaps, read_view};
use crate::to_py_err;

/// The kernel and bias gradients of a chain of Dense layers, written end to end into `out`
/// (a C-contiguous float32 vector) in the order `dW0, db0, dW1, ...` (no bias part for a
/// layer whose `has_bias` is False), from each layer's input, the dropout factor that input
/// carries (or None), kernel, post-activation output and activation name ('linear' or
/// 'relu'), and the gradient at the last output.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn dense_chain_backward<'py>(
    py: Python<'py>,
    inputs: Vec<Bound<'py, PyAny>>,
    input_scales: Vec<Option<Bound<'py, PyAny>>>,
    kernels: Vec<Bound<'py, PyAny>>,
    outputs: Vec<Bound<'py, PyAny>>,
    activations: Vec<String>,
    has_bias: Vec<bool>,
    output_gradient: &Bound<'py, PyAny>,
    mut out: PyReadwriteArray1<'py, f32>,
) -> PyResult<()> {
    let count = kernels.len();
    let lengths = [inputs.len(), input_scales.len(), outputs.len(), activations.len(), has_bias.len()];
    if lengths.iter().any(|&n| n != count) {
        return Err(PyValueError::new_err(format!(
            "dense_chain_backward: {count} kernels but {} inputs, {} input scales, {} outputs, {} activations and {} bias flags",
            lengths[0], lengths[1], lengths[2], lengths[3], lengths[4]
        )));
    }
    let what = "dense_chain_backward";
    let output_gradient = operand::<f32>(output_gradient, what)?;
    let convert = |arrays: &[Bound<'py, PyAny>]| arrays.iter().map(|a| operand::<f32>(a, what)).collect::<PyResult<Vec<_>>>();
    let inputs = convert(&inputs)?;
    let kernels = convert(&kernels)?;
    let outputs = convert(&outputs)?;
    let input_scales = input_scales
        .iter()
        .map(|s| s.as_ref().map(|s| operand::<f32>(s, what)).transpose())
        .collect::<PyResult<Vec<_>>>()?;
    let activations = activations.iter().map(|a| Activation::from_name(a)).collect::<Result<Vec<_>, _>>().map_err(to_py_err)?;
    let sizes: Vec<(usize, usize)> = kernels
        .iter()
        .zip(&has_bias)
        .map(|(k, &b)| (k.shape()[0] * k.shape()[1], if b { k.shape()[1] } else { 0 }))
        .collect();
    let total: usize = sizes.iter().map(|(k, b)| k + b).sum();
    let aligned = (out.data() as usize) % std::mem::align_of::<f32>() == 0;
    let out_start = out.data() as usize;
    let out_range = (out_start, out_start + out.len() * std::mem::size_of::<f32>());
    let mut read = vec![&output_gradient];
    read.extend(inputs.iter().chain(&kernels).chain(&outputs).chain(input_scales.iter().flatten()));
    if read.into_iter().any(|array| overlaps(byte_range(array), out_range)) {
        return Err(PyValueError::new_err("dense_chain_backward: `out` overlaps one of the inputs"));
    }
    let flat = match out.as_slice_mut() {
        Ok(flat) if aligned => flat,
        _ => return Err(PyValueError::new_err("dense_chain_backward: `out` must be an aligned, C-contiguous float32 vector")),
    };
    if flat.len() != total {
        return Err(PyValueError::new_err(format!(
            "dense_chain_backward: `out` has {} values, the gradients take {total}",
            flat.len()
        )));
    }
    let mut targets = Vec::with_capacity(count);
    let mut rest = flat;
    for (&(kernel_size, bias_size), &bias) in sizes.iter().zip(&has_bias) {
        let (kernel, tail) = rest.split_at_mut(kernel_size);
        let (bias_part, tail) = tail.split_at_mut(bias_size);
        targets.push(ChainGradients { kernel, bias: bias.then_some(bias_part) });
        rest = tail;
    }
    // Safety: every array read lives to the end of this function and is not written during
    // the call; `out` is disjoint from all of them (checked above).
    let gv = unsafe { read_view(&output_gradient)? };
    let mut layers = Vec::with_capacity(count);
    for index in 0..count {
        let (input, kernel, output) = unsafe { (read_view(&inputs[index])?, read_view(&kernels[index])?, read_view(&outputs[index])?) };
        let input_scale = match &input_scales[index] {
            Some(scale) => Some(unsafe { read_view(scale)? }),
            None => None,
        };
        layers.push(ChainLayer { input, input_scale, kernel, output, activation: activations[index] });
    }
    py.detach(|| core::dense_chain_backward(&layers, gv, &mut targets)).map_err(to_py_err)
}

/// Sparse softmax cross-entropy of float32 `logits` (rows x classes, any strides) against
/// int64 `labels` (one per row): `(losses, probabilities)`, the softmax kept for the gradient.
#[pyfunction]
fn sparse_softmax_crossentropy<'py>(
    py: Python<'py>,
    logits: &Bound<'py, PyAny>,
    labels: PyReadonlyArray1<'py, i64>,
) -> PyResult<(Bound<'py, PyArray1<f32>>, Bound<'py, PyArray2<f32>>)> {
    let logits = operand::<f32>(logits, "sparse_softmax_crossentropy")?;
    let (rows, classes) = (logits.shape()[0], logits.shape()[1]);
    let losses = PyArray1::<f32>::zeros(py, [rows], false);
    let probabilities = PyArray2::<f32>::zeros(py, [rows, classes], false);
    {
        let labels = labels.as_slice().map_err(|e| PyValueError::new_err(e.to_string()))?;
        let mut losses_guard = losses.readwrite();
        let mut probabilities_guard = probabilities.readwrite();
        let losses_out = losses_guard.as_slice_mut().map_err(|e| PyValueError::new_err(e.to_string()))?;
        let probabilities_out = probabilities_guard.as_slice_mut().map_err(|e| PyValueError::new_err(e.to_string()))?;
        // Safety: `logits` lives to the end of this function and is not written during the call.
        let view = unsafe { read_view(&logits)? };
        py.detach(|| core::sparse_softmax_crossentropy(view, labels, losses_out, probabilities_out)).map_err(to_py_err)?;
    }
    Ok((losses, probabilities))
}

/// The gradient at the logits of `sparse_softmax_crossentropy` for the per-row output
/// gradients `row_gradients` (float32), from its `probabilities` and the `labels`.
#[pyfunction]
fn sparse_softmax_crossentropy_backward<'py>(
    py: Python<'py>,
    probabilities: PyReadonlyArray2<'py, f32>,
    labels: PyReadonlyArray1<'py, i64>,
    row_gradients: PyReadonlyArray1<'py, f32>,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let shape = [probabilities.shape()[0], probabilities.shape()[1]];
    let out = PyArray2::<f32>::zeros(py, shape, false);
    {
        let err = |e: numpy::AsSliceError| PyValueError::new_err(e.to_string());
        let (rows, classes) = (shape[0], shape[1]);
        let probabilities = MatRef::row_major(probabilities.as_slice().map_err(err)?, rows, classes).map_err(to_py_err)?;
        let labels = labels.as_slice().map_err(err)?;
        let row_gradients = row_gradients.as_slice().map_err(err)?;
        let mut guard = out.readwrite();
        let out_slice = guard.as_slice_mut().map_err(|e| PyValueError::new_err(e.to_string()))?;
        py.detach(|| core::sparse_softmax_crossentropy_backward(probabilities, labels, row_gradients, out_slice)).map_err(to_py_err)?;
    }
    Ok(out)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(dense_chain_backward, m)?)?;
    m.add_function(wrap_pyfunction!(sparse_softmax_crossentropy, m)?)?;
    m.add_function(wrap_pyfunction!(sparse_softmax_crossentropy_backward, m)?)?;
    Ok(())
}
