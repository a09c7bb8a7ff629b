//! Bindings of `amber_core::kernels`: numpy arrays in, numpy arrays out. Operands are read in
//! place through their strides (transposed and sliced views cost no copy) and at any address
//! (weights mapped from a file may be misaligned; the kernels read them with unaligned
//! loads); only negative or non-element strides, a dtype that needs casting, or an input that
//! overlaps the caller's `out` are copied first. Small operands handed to slice-based code
//! (bias, activation inputs) are copied when misaligned. Compute runs with the GIL released.

use numpy::{Element as NpElement, PyArrayDescrMethods, PyArray1, PyArray2, PyArrayDyn, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use amber_core::kernels::{self as core, Activation, Float, Isa, MatMut, MatRef};

use crate::to_py_err;

/// The precision of a product: float32 only when every operand is float32 (numpy's rule).
#[derive(Clone, Copy, PartialEq)]
enum Precision {
    F32,
    F64,
}

fn precision(what: &str, arrays: &[&Bound<'_, PyAny>]) -> PyResult<Precision> {
    let mut result = Precision::F32;
    for array in arrays {
        let Ok(untyped) = array.cast::<PyUntypedArray>() else {
            return Err(PyTypeError::new_err(format!("{what}: expected numpy arrays, got {}", array.get_type().name()?)));
        };
        let dtype = untyped.dtype();
        if dtype.is_equiv_to(&numpy::dtype::<f32>(array.py())) {
            continue;
        } else if dtype.is_equiv_to(&numpy::dtype::<f64>(array.py())) {
            result = Precision::F64;
        } else {
            return Err(PyTypeError::new_err(format!("{what}: dtype {dtype} is not supported (float32 or float64)")));
        }
    }
    Ok(result)
}

fn numpy<'py>(py: Python<'py>) -> PyResult<Bound<'py, PyModule>> {
    py.import("numpy")
}

/// The array as `PyArray2<T>` whose strides the kernels can use, casting or copying only
/// when they cannot.
pub(crate) fn operand<'py, T: Float + NpElement>(obj: &Bound<'py, PyAny>, what: &str) -> PyResult<Bound<'py, PyArray2<T>>> {
    let py = obj.py();
    let target = numpy::dtype::<T>(py);
    let obj = match obj.cast::<PyUntypedArray>() {
        Ok(array) if array.dtype().is_equiv_to(&target) => obj.clone(),
        _ => obj.call_method1("astype", (target,))?,
    };
    let array = obj.cast_into::<PyArray2<T>>().map_err(|e| {
        PyValueError::new_err(format!("{what}: expected a 2-D array ({})", e.into_inner().getattr("shape").map(|s| s.to_string()).unwrap_or_default()))
    })?;
    let item = std::mem::size_of::<T>() as isize;
    let usable = array.strides().iter().all(|&s| s >= 0 && s % item == 0);
    if usable {
        Ok(array)
    } else {
        Ok(numpy(py)?.call_method1("ascontiguousarray", (array,))?.cast_into::<PyArray2<T>>()?)
    }
}

/// Element strides and the extent of memory a usable 2-D array addresses.
fn layout<T>(array: &Bound<'_, PyArray2<T>>) -> (usize, usize, usize, usize, usize) {
    let shape = array.shape();
    let item = std::mem::size_of::<T>() as isize;
    let strides = array.strides();
    let (rows, cols) = (shape[0], shape[1]);
    let (rs, cs) = ((strides[0] / item) as usize, (strides[1] / item) as usize);
    let span = if rows == 0 || cols == 0 { 0 } else { (rows - 1) * rs + (cols - 1) * cs + 1 };
    (rows, cols, rs, cs, span)
}

pub(crate) fn byte_range<T>(array: &Bound<'_, PyArray2<T>>) -> (usize, usize) {
    let start = array.data() as usize;
    (start, start + layout(array).4 * std::mem::size_of::<T>())
}

pub(crate) fn overlaps(a: (usize, usize), b: (usize, usize)) -> bool {
    a.0 < a.1 && b.0 < b.1 && a.0 < b.1 && b.0 < a.1
}

/// A read view of a usable array, possibly misaligned. Safety: the caller keeps `array`
/// alive and unmodified while the view is used (Python code writing to an input from
/// another thread during the call races, as it would with numpy itself).
pub(crate) unsafe fn read_view<'a, T: Copy>(array: &'a Bound<'_, PyArray2<T>>) -> PyResult<MatRef<'a, T>> {
    let (rows, cols, rs, cs, span) = layout(array);
    MatRef::from_raw_parts(array.data(), span, rows, cols, rs, cs).map_err(to_py_err)
}

fn is_aligned<T>(ptr: *const T) -> bool {
    (ptr as usize) % std::mem::align_of::<T>() == 0
}

/// A write view of an aligned array (checked by the caller). Safety: as `read_view`, and
/// nothing else reads or writes `array` while the view is used.
unsafe fn write_view<'a, T: Copy>(array: &'a Bound<'_, PyArray2<T>>) -> PyResult<MatMut<'a, T>> {
    let (rows, cols, rs, cs, span) = layout(array);
    let data: &'a mut [T] = if span == 0 { &mut [] } else { std::slice::from_raw_parts_mut(array.data(), span) };
    MatMut::new(data, rows, cols, rs, cs).map_err(to_py_err)
}

/// A contiguous 1-D copy-or-view of `obj` as `T`.
fn vector<'py, T: Float + NpElement>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyArray1<T>>> {
    if let Ok(array) = obj.cast::<PyArray1<T>>() {
        if array.is_contiguous() && is_aligned(array.data()) {
            return Ok(array.clone());
        }
    }
    let py = obj.py();
    let kwargs = [("dtype", numpy::dtype::<T>(py))].into_py_dict(py)?;
    let array = numpy(py)?.getattr("ascontiguousarray")?.call((obj,), Some(&kwargs))?;
    aligned_copy(array)?.cast_into::<PyArray1<T>>().map_err(|_| PyValueError::new_err("dense: the bias must be 1-D"))
}

/// `array`, or an aligned copy when numpy reports it misaligned: the callers build slices
/// over it, which must be aligned. Used only for operands small beside the work done on them.
fn aligned_copy<'py>(array: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    if array.getattr("flags")?.getattr("aligned")?.extract::<bool>()? {
        Ok(array)
    } else {
        array.call_method0("copy")
    }
}

/// A contiguous array of any shape as `T`.
fn any_shape<'py, T: Float + NpElement>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    let py = obj.py();
    let kwargs = [("dtype", numpy::dtype::<T>(py))].into_py_dict(py)?;
    let array = numpy(py)?.getattr("ascontiguousarray")?.call((obj,), Some(&kwargs))?;
    Ok(aligned_copy(array)?.cast_into::<PyArrayDyn<T>>()?)
}

use pyo3::types::IntoPyDict;

#[allow(clippy::too_many_arguments)]
fn product<'py, T: Float + NpElement>(
    a: &Bound<'py, PyAny>,
    b: &Bound<'py, PyAny>,
    scale: Option<&Bound<'py, PyAny>>,
    bias: Option<&Bound<'py, PyAny>>,
    act: Activation,
    out: Option<&Bound<'py, PyAny>>,
    what: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let py = a.py();
    let mut a = operand::<T>(a, what)?;
    let mut b = operand::<T>(b, what)?;
    let bias = bias.map(vector::<T>).transpose()?;
    let scale = scale.map(vector::<T>).transpose()?;
    let (m, n) = (a.shape()[0], b.shape()[1]);
    // A misaligned `out` cannot be written through a slice: compute into a fresh array and
    // let numpy copy the result over.
    let mut misaligned_out = None;
    let out = match out {
        Some(out) => {
            let out = out.cast::<PyArray2<T>>().map_err(|_| {
                PyTypeError::new_err(format!("{what}: out must be a 2-D {} array", numpy::dtype::<T>(py)))
            })?;
            if !out.getattr("flags")?.getattr("writeable")?.extract::<bool>()? {
                return Err(PyValueError::new_err(format!("{what}: out is read-only")));
            }
            if out.strides().iter().any(|&s| s < 0 || s % std::mem::size_of::<T>() as isize != 0) {
                return Err(PyValueError::new_err(format!("{what}: out must have non-negative element strides")));
            }
            // Inputs that share memory with the output are read from a copy.
            let out_range = byte_range(out);
            if overlaps(byte_range(&a), out_range) {
                a = a.call_method0("copy")?.cast_into()?;
            }
            if overlaps(byte_range(&b), out_range) {
                b = b.call_method0("copy")?.cast_into()?;
            }
            if is_aligned(out.data()) {
                out.clone()
            } else {
                misaligned_out = Some(out.clone());
                PyArray2::<T>::zeros(py, [out.shape()[0], out.shape()[1]], false)
            }
        }
        None => PyArray2::<T>::zeros(py, [m, n], false),
    };
    let bias_guard = bias.as_ref().map(|b| b.readonly());
    let scale_guard = scale.as_ref().map(|s| s.readonly());
    // Safety: the arrays live until the end of this function and the output's memory is
    // disjoint from both inputs (copied above when not).
    let (av, bv, ov) = unsafe { (read_view(&a)?, read_view(&b)?, write_view(&out)?) };
    let bias_slice = match &bias_guard {
        Some(g) => Some(g.as_slice().map_err(|e| PyValueError::new_err(e.to_string()))?),
        None => None,
    };
    let scale_slice = match &scale_guard {
        Some(g) => Some(g.as_slice().map_err(|e| PyValueError::new_err(e.to_string()))?),
        None => None,
    };
    let isa = core::active_isa();
    py.detach(|| core::gemm_scaled_on(isa, av, bv, scale_slice, bias_slice, act, ov)).map_err(to_py_err)?;
    if let Some(target) = misaligned_out {
        numpy(py)?.call_method1("copyto", (&target, &out))?;
        return Ok(target.into_any());
    }
    Ok(out.into_any())
}

/// `a @ b` for 2-D float32/float64 arrays of any strides, into `out` when given.
#[pyfunction]
#[pyo3(signature = (a, b, out=None))]
fn matmul<'py>(a: &Bound<'py, PyAny>, b: &Bound<'py, PyAny>, out: Option<&Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
    match precision("matmul", &[a, b])? {
        Precision::F32 => product::<f32>(a, b, None, None, Activation::Linear, out, "matmul"),
        Precision::F64 => product::<f64>(a, b, None, None, Activation::Linear, out, "matmul"),
    }
}

/// `act(x @ w * scale + b)` in one pass over the output.
#[pyfunction]
#[pyo3(signature = (x, w, b=None, activation="linear", out=None, scale=None))]
fn dense<'py>(
    x: &Bound<'py, PyAny>,
    w: &Bound<'py, PyAny>,
    b: Option<&Bound<'py, PyAny>>,
    activation: &str,
    out: Option<&Bound<'py, PyAny>>,
    scale: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let act = Activation::from_name(activation).map_err(to_py_err)?;
    match precision("dense", &[x, w])? {
        Precision::F32 => product::<f32>(x, w, scale, b, act, out, "dense"),
        Precision::F64 => product::<f64>(x, w, scale, b, act, out, "dense"),
    }
}

fn elementwise<'py, T: Float + NpElement>(
    act: Activation,
    z: &Bound<'py, PyAny>,
    dy: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = z.py();
    let z = any_shape::<T>(z)?;
    let dy = dy.map(any_shape::<T>).transpose()?;
    if let Some(dy) = &dy {
        if dy.shape() != z.shape() {
            return Err(PyValueError::new_err(format!(
                "activation_grad: dy has shape {:?}, z has {:?}",
                dy.shape(),
                z.shape()
            )));
        }
    }
    let out = PyArrayDyn::<T>::zeros(py, z.shape(), false);
    {
        let zg = z.readonly();
        let dyg = dy.as_ref().map(|d| d.readonly());
        let mut og = out.readwrite();
        let zs = zg.as_slice().map_err(|e| PyValueError::new_err(e.to_string()))?;
        let dys = match &dyg {
            Some(g) => Some(g.as_slice().map_err(|e| PyValueError::new_err(e.to_string()))?),
            None => None,
        };
        let os = og.as_slice_mut().map_err(|e| PyValueError::new_err(e.to_string()))?;
        py.detach(|| match dys {
            Some(dys) => core::activation_backward(act, zs, dys, os),
            None => core::activation_forward(act, zs, os),
        })
        .map_err(to_py_err)?;
    }
    Ok(out.into_any())
}

/// `act(z)` elementwise.
#[pyfunction]
fn activation<'py>(name: &str, z: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let act = Activation::from_name(name).map_err(to_py_err)?;
    match precision("activation", &[z])? {
        Precision::F32 => elementwise::<f32>(act, z, None),
        Precision::F64 => elementwise::<f64>(act, z, None),
    }
}

/// `dy * act'(z)` from the pre-activation `z`.
#[pyfunction]
fn activation_grad<'py>(name: &str, z: &Bound<'py, PyAny>, dy: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let act = Activation::from_name(name).map_err(to_py_err)?;
    match precision("activation_grad", &[z, dy])? {
        Precision::F32 => elementwise::<f32>(act, z, Some(dy)),
        Precision::F64 => elementwise::<f64>(act, z, Some(dy)),
    }
}

fn backward<'py, T: Float + NpElement>(x: &Bound<'py, PyAny>, w: &Bound<'py, PyAny>, dz: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyTuple>> {
    let py = x.py();
    let (x, w, dz) = (operand::<T>(x, "dense_grad")?, operand::<T>(w, "dense_grad")?, operand::<T>(dz, "dense_grad")?);
    let (m, k, n) = (x.shape()[0], x.shape()[1], w.shape()[1]);
    let dx = PyArray2::<T>::zeros(py, [m, k], false);
    let dw = PyArray2::<T>::zeros(py, [w.shape()[0], n], false);
    let db = PyArray1::<T>::zeros(py, [dz.shape()[1]], false);
    {
        let mut dbg = db.readwrite();
        let dbs = dbg.as_slice_mut().map_err(|e| PyValueError::new_err(e.to_string()))?;
        // Safety: all arrays live to the end of this block; the outputs are fresh.
        let (xv, wv, dzv, dxv, dwv) = unsafe { (read_view(&x)?, read_view(&w)?, read_view(&dz)?, write_view(&dx)?, write_view(&dw)?) };
        py.detach(|| core::dense_backward(xv, wv, dzv, Some(dxv), Some(dwv), Some(dbs))).map_err(to_py_err)?;
    }
    PyTuple::new(py, [dx.into_any(), dw.into_any(), db.into_any()])
}

/// Dense backward from the gradient at the pre-activation: `(dz @ w.T, x.T @ dz, dz.sum(0))`.
#[pyfunction]
fn dense_grad<'py>(x: &Bound<'py, PyAny>, w: &Bound<'py, PyAny>, dz: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyTuple>> {
    match precision("dense_grad", &[x, w, dz])? {
        Precision::F32 => backward::<f32>(x, w, dz),
        Precision::F64 => backward::<f64>(x, w, dz),
    }
}

/// Force a kernel path ('avx512', 'avx2', 'neon', 'generic'), or `None` for the default.
#[pyfunction]
#[pyo3(signature = (name=None))]
fn set_isa(name: Option<&str>) -> PyResult<()> {
    let isa = name.map(Isa::from_name).transpose().map_err(to_py_err)?;
    core::set_isa(isa).map_err(to_py_err)
}

/// Measured f32 FLOP/s of a pure-FMA loop on `threads` threads (benchmark reference).
#[pyfunction]
#[pyo3(signature = (isa, threads=1, iterations=200_000_000))]
fn peak_f32_flops(py: Python<'_>, isa: &str, threads: usize, iterations: u64) -> PyResult<f64> {
    let isa = Isa::from_name(isa).map_err(to_py_err)?;
    Ok(py.detach(|| core::peak_f32_flops(isa, threads, iterations)))
}

/// The kernel path in use now.
#[pyfunction]
fn kernel_isa() -> &'static str {
    core::active_isa().name()
}

/// The kernel paths this CPU can run, best first.
#[pyfunction]
fn supported_isas() -> Vec<&'static str> {
    core::supported_isas().into_iter().map(|i| i.name()).collect()
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(matmul, m)?)?;
    m.add_function(wrap_pyfunction!(dense, m)?)?;
    m.add_function(wrap_pyfunction!(activation, m)?)?;
    m.add_function(wrap_pyfunction!(activation_grad, m)?)?;
    m.add_function(wrap_pyfunction!(dense_grad, m)?)?;
    m.add_function(wrap_pyfunction!(set_isa, m)?)?;
    m.add_function(wrap_pyfunction!(kernel_isa, m)?)?;
    m.add_function(wrap_pyfunction!(peak_f32_flops, m)?)?;
    m.add_function(wrap_pyfunction!(supported_isas, m)?)?;
    Ok(())
}
