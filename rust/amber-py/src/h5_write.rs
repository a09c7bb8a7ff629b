//! `H5Writer`: records the caller's plan (groups, attributes, owned references to numpy arrays)
//! and, when asked to write, builds an `amber_core` `H5Builder` over the arrays' own buffers and
//! writes with the GIL released. No weight bytes are copied on the way to the file.

use std::path::PathBuf;

use numpy::{PyArrayDescrMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyFloat, PyInt, PyList, PyString, PyTuple};

use amber_core::dtype::DType;
use amber_core::h5::write::H5Builder;
use amber_core::h5::AttrValue;

use crate::to_py_err;

enum Step {
    Group(String),
    Dataset { path: String, dtype: DType, shape: Vec<u64>, array: Py<PyUntypedArray> },
    Attr { path: String, name: String, value: AttrValue },
}

/// Plan of an HDF5 file; see `H5Writer` in `_native.pyi`.
#[pyclass(name = "H5Writer", module = "amber._native")]
pub struct H5Writer {
    steps: Vec<Step>,
}

/// The core dtype of a numpy dtype, or a TypeError naming it.
fn dtype_of(array: &Bound<'_, PyUntypedArray>) -> PyResult<DType> {
    let descr = array.dtype();
    let dtype = match (descr.kind(), descr.itemsize()) {
        (b'b', 1) => DType::Bool,
        (b'i', 1) => DType::I8,
        (b'i', 2) => DType::I16,
        (b'i', 4) => DType::I32,
        (b'i', 8) => DType::I64,
        (b'u', 1) => DType::U8,
        (b'u', 2) => DType::U16,
        (b'u', 4) => DType::U32,
        (b'u', 8) => DType::U64,
        (b'f', 2) => DType::F16,
        (b'f', 4) => DType::F32,
        (b'f', 8) => DType::F64,
        _ => {
            return Err(PyTypeError::new_err(format!(
                "cannot store numpy dtype {} in HDF5 (supported: bool, int8-64, uint8-64, float16/32/64)",
                descr.str()?
            )))
        }
    };
    Ok(dtype)
}

/// `value` as a C-contiguous, native-byte-order numpy array: the same object when it already
/// is one, otherwise a converted copy (numpy does the conversion).
fn contiguous_array<'py>(value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyUntypedArray>> {
    let py = value.py();
    let np = py.import("numpy")?;
    let array = match value.cast::<PyUntypedArray>() {
        Ok(a) => a.clone(),
        Err(_) => np.call_method1("asarray", (value,))?.cast_into::<PyUntypedArray>()?,
    };
    let native = array.dtype().is_native_byteorder().unwrap_or(true);
    if array.is_c_contiguous() && native {
        return Ok(array);
    }
    let dtype = array.getattr("dtype")?.call_method1("newbyteorder", ("=",))?;
    let kwargs = pyo3::types::PyDict::new(py);
    kwargs.set_item("dtype", dtype)?;
    Ok(np.call_method("ascontiguousarray", (array,), Some(&kwargs))?.cast_into::<PyUntypedArray>()?)
}

/// The bytes of a C-contiguous array, borrowed for as long as the array reference is.
///
/// SAFETY (of the raw slice): the array is C-contiguous with `itemsize * prod(shape)` bytes at
/// its data pointer, and numpy does not move or free that buffer while a reference to the array
/// is held (resizing an array that others reference is refused).
fn array_bytes<'b>(array: &'b Bound<'_, PyUntypedArray>) -> &'b [u8] {
    let count: usize = array.shape().iter().product();
    let nbytes = count * array.dtype().itemsize();
    if nbytes == 0 {
        return &[];
    }
    unsafe { std::slice::from_raw_parts((*array.as_array_ptr()).fields.data as *const u8, nbytes) }
}

fn shape_of(array: &Bound<'_, PyUntypedArray>) -> Vec<u64> {
    array.shape().iter().map(|&d| d as u64).collect()
}

/// Items of a list/tuple of `str` or UTF-8 `bytes`; `None` when some item is neither.
fn string_items(seq: &Bound<'_, PyAny>) -> PyResult<Option<Vec<String>>> {
    let mut out = Vec::new();
    for item in seq.try_iter()? {
        let item = item?;
        if let Ok(s) = item.cast::<PyString>() {
            out.push(s.extract::<String>()?);
        } else if let Ok(b) = item.cast::<PyBytes>() {
            out.push(utf8(b.as_bytes())?);
        } else {
            return Ok(None);
        }
    }
    Ok(Some(out))
}

fn utf8(bytes: &[u8]) -> PyResult<String> {
    String::from_utf8(bytes.to_vec()).map_err(|e| PyTypeError::new_err(format!("string attribute is not UTF-8: {e}")))
}

/// Translate a Python attribute value to the core's `AttrValue`.
fn attr_value(value: &Bound<'_, PyAny>) -> PyResult<AttrValue> {
    if let Ok(s) = value.cast::<PyString>() {
        return Ok(AttrValue::Str(s.extract::<String>()?));
    }
    if let Ok(b) = value.cast::<PyBytes>() {
        return Ok(AttrValue::Str(utf8(b.as_bytes())?));
    }
    if let Ok(b) = value.cast::<PyBool>() {
        return Ok(AttrValue::Numeric { dtype: DType::Bool, shape: vec![], data: vec![u8::from(b.is_true())] });
    }
    if value.is_instance_of::<PyInt>() {
        if let Ok(i) = value.extract::<i64>() {
            return Ok(AttrValue::Numeric { dtype: DType::I64, shape: vec![], data: i.to_le_bytes().to_vec() });
        }
        let u: u64 = value.extract()?;
        return Ok(AttrValue::Numeric { dtype: DType::U64, shape: vec![], data: u.to_le_bytes().to_vec() });
    }
    if let Ok(f) = value.cast::<PyFloat>() {
        return Ok(AttrValue::Numeric { dtype: DType::F64, shape: vec![], data: f.value().to_le_bytes().to_vec() });
    }
    if value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>() {
        if let Some(items) = string_items(value)? {
            return Ok(AttrValue::StrArray(items));
        }
    }
    // numpy arrays and scalars (and numeric sequences, through numpy)
    let array = contiguous_array(value)?;
    match array.dtype().kind() {
        // bytes, str, or object arrays of strings (h5py returns Keras's vlen string arrays so)
        b'S' | b'U' | b'O' => {
            let list = array.call_method0("tolist")?;
            if array.ndim() == 0 {
                // a 0-d string array is one string
                if let Some(mut one) = string_items(&PyList::new(value.py(), [list])?.into_any())? {
                    if let Some(s) = one.pop() {
                        return Ok(AttrValue::Str(s));
                    }
                }
            } else if array.ndim() == 1 {
                if let Some(items) = string_items(&list)? {
                    return Ok(AttrValue::StrArray(items));
                }
            }
            Err(PyTypeError::new_err(
                "string attributes must be a str or a 1-D array of strings; object arrays must hold only str or bytes",
            ))
        }
        _ => {
            let dtype = dtype_of(&array)?;
            Ok(AttrValue::Numeric { dtype, shape: shape_of(&array), data: array_bytes(&array).to_vec() })
        }
    }
}

impl H5Writer {
    /// Build the core plan over the held arrays' buffers and hand it to `f`. The builder borrows
    /// the arrays for the duration of `f` only; this is also how a zip entry streams the file.
    pub(crate) fn with_builder<R>(&self, py: Python<'_>, f: impl FnOnce(&H5Builder<'_>) -> R) -> PyResult<R> {
        let arrays: Vec<Option<&Py<PyUntypedArray>>> =
            self.steps.iter().map(|s| if let Step::Dataset { array, .. } = s { Some(array) } else { None }).collect();
        let bound: Vec<Option<&Bound<'_, PyUntypedArray>>> = arrays.iter().map(|a| a.map(|a| a.bind(py))).collect();
        let mut builder = H5Builder::new();
        for (step, array) in self.steps.iter().zip(&bound) {
            match (step, array) {
                (Step::Group(path), _) => builder.create_group(path),
                (Step::Dataset { path, dtype, shape, .. }, Some(array)) => {
                    builder.create_dataset(path, *dtype, shape, array_bytes(array))
                }
                (Step::Attr { path, name, value }, _) => builder.set_attr(path, name, value.clone()),
                (Step::Dataset { .. }, None) => Ok(()),
            }
            .map_err(to_py_err)?;
        }
        Ok(f(&builder))
    }
}

#[pymethods]
impl H5Writer {
    #[new]
    fn new() -> Self {
        H5Writer { steps: Vec::new() }
    }

    fn create_group(&mut self, path: &str) {
        self.steps.push(Step::Group(path.to_owned()));
    }

    fn create_dataset(&mut self, path: &str, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let array = contiguous_array(data)?;
        let dtype = dtype_of(&array)?;
        let shape = shape_of(&array);
        self.steps.push(Step::Dataset { path: path.to_owned(), dtype, shape, array: array.unbind() });
        Ok(())
    }

    fn set_attr(&mut self, path: &str, name: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let value = attr_value(value)?;
        self.steps.push(Step::Attr { path: path.to_owned(), name: name.to_owned(), value });
        Ok(())
    }

    fn write(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        self.with_builder(py, |b| py.detach(|| b.write_file(&path)))?.map_err(to_py_err)
    }

    fn to_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        self.with_builder(py, |b| {
            let total = usize::try_from(b.total_size())
                .map_err(|_| PyTypeError::new_err("file too large for memory"))?;
            PyBytes::new_with(py, total, |buf| py.detach(|| b.write_to(buf)).map_err(to_py_err))
        })?
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<H5Writer>()
}
