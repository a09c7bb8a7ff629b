//! Read-only numpy arrays over mapped bytes, with no copy.
//!
//! The brief's first choice, a buffer-protocol object fed to `numpy.frombuffer`, is not
//! available here: the module targets the stable ABI for Python 3.9 (`abi3-py39`), and the
//! buffer slots only joined the stable ABI in 3.11. numpy's `__array_interface__` protocol
//! gives the same result: `numpy.asarray(holder)` wraps the holder's pointer, marks the array
//! read-only, accepts unaligned data, and keeps the holder as the array's `.base`; the holder
//! owns the `ByteRange`, which keeps the mapping alive.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use amber_core::dtype::{checked_nbytes, DType};
use amber_core::error::Error;
use amber_core::storage::ByteRange;

use crate::to_py_err;

/// Owns a window of a mapped file and presents it to numpy as a read-only array.
#[pyclass(frozen, module = "amber._native", name = "MappedView")]
pub(crate) struct MappedView {
    range: ByteRange,
    typestr: &'static str,
    shape: Vec<u64>,
}

#[pymethods]
impl MappedView {
    #[getter]
    fn __array_interface__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("version", 3)?;
        d.set_item("typestr", self.typestr)?;
        d.set_item("shape", PyTuple::new(py, &self.shape)?)?;
        // (address, read_only=True)
        d.set_item("data", (self.range.bytes().as_ptr() as usize, true))?;
        Ok(d)
    }

    /// Bytes of the file this view covers, and where they start (for diagnostics).
    #[getter]
    fn offset(&self) -> u64 {
        self.range.start()
    }
    fn __len__(&self) -> usize {
        self.range.bytes().len()
    }
}

pub(crate) fn typestr(dtype: DType) -> Option<&'static str> {
    Some(match dtype {
        DType::Bool => "|b1",
        DType::I8 => "|i1",
        DType::U8 => "|u1",
        DType::I16 => "<i2",
        DType::U16 => "<u2",
        DType::F16 => "<f2",
        DType::I32 => "<i4",
        DType::U32 => "<u4",
        DType::F32 => "<f4",
        DType::I64 => "<i8",
        DType::U64 => "<u8",
        DType::F64 => "<f8",
        DType::BF16 => return None,
    })
}

/// A read-only numpy array of `shape` and `dtype` viewing `range` in place. bfloat16 is
/// refused: numpy has no such type, and handing out its bits as another type would be silent
/// wrong data.
pub(crate) fn array_from_range(py: Python<'_>, range: ByteRange, dtype: DType, shape: &[u64]) -> PyResult<Py<PyAny>> {
    let typestr = typestr(dtype).ok_or_else(|| {
        to_py_err(Error::unsupported("bfloat16 data cannot be viewed: numpy has no bfloat16 type").at(range.start()))
    })?;
    expect_len(&range, dtype, shape).map_err(to_py_err)?;
    let holder = Py::new(
        py,
        MappedView {
            range,
            typestr,
            shape: shape.to_vec(),
        },
    )?;
    let array = py.import("numpy")?.call_method1("asarray", (holder,))?;
    Ok(array.unbind())
}

/// The data of a `shape` x `dtype` array must fill `range` exactly.
pub(crate) fn expect_len(range: &ByteRange, dtype: DType, shape: &[u64]) -> Result<(), Error> {
    let nbytes = checked_nbytes(shape, dtype)?;
    if nbytes != range.len() {
        return Err(Error::corrupt(format!(
            "shape {shape:?} of {} needs {nbytes} bytes but the data holds {}",
            dtype.numpy_name(),
            range.len()
        ))
        .at(range.start()));
    }
    Ok(())
}

/// Bytes copied per step by `copy_releasing`.
const COPY_STEP: usize = 8 << 20;

/// A private copy of `range`'s bytes. When the range lies in a mapped file, each step's source
/// pages are dropped from this process once copied: they stay in the page cache (a later view
/// faults them back in from there, unchanged), but they no longer count towards its resident
/// memory, so copying a whole model peaks near one copy of it instead of two.
pub(crate) fn copy_releasing(range: &ByteRange) -> Vec<u8> {
    let src = range.bytes();
    let mut out = Vec::with_capacity(src.len());
    prefer_huge_pages(out.spare_capacity_mut());
    let mapped = range.storage().is_mapped();
    for step in src.chunks(COPY_STEP) {
        out.extend_from_slice(step);
        if mapped {
            release_pages(step);
        }
    }
    out
}

/// Drop this process's mappings of the whole pages inside `bytes`, which must lie in a file
/// mapping (never in owned memory, whose contents this would discard).
#[cfg(target_os = "linux")]
fn release_pages(bytes: &[u8]) {
    const PAGE: usize = 4096; // the smallest page size; larger ones are multiples of it
    let start = bytes.as_ptr() as usize;
    let first = start.div_ceil(PAGE) * PAGE;
    let end = (start + bytes.len()) / PAGE * PAGE;
    if end > first {
        // SAFETY: the pages lie inside a live read-only shared file mapping (the caller holds
        // the range, which keeps it mapped); MADV_DONTNEED only unmaps them here, and the next
        // access reads the same file bytes back from the page cache. Failure changes nothing.
        unsafe {
            libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_DONTNEED);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn release_pages(_bytes: &[u8]) {}

/// Ask for transparent huge pages under a large fresh buffer, as numpy does for its own
/// arrays: where the kernel grants them only on request, filling a model's weights through
/// 4 KiB pages took twice as long, most of it in page faults.
#[cfg(target_os = "linux")]
fn prefer_huge_pages(buffer: &mut [std::mem::MaybeUninit<u8>]) {
    const PAGE: usize = 4096;
    const HUGE: usize = 2 << 20;
    if buffer.len() < 2 * HUGE {
        return;
    }
    // madvise wants a page-aligned start; the allocator's pointer is only 16-byte aligned.
    let start = buffer.as_mut_ptr() as usize;
    let first = start.div_ceil(PAGE) * PAGE;
    let end = (start + buffer.len()) / PAGE * PAGE;
    // SAFETY: the pages lie inside an allocation we own and have not handed out; the advice
    // changes how they are backed, never their contents. Failure changes nothing.
    unsafe {
        libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE);
    }
}

#[cfg(not(target_os = "linux"))]
fn prefer_huge_pages(_buffer: &mut [std::mem::MaybeUninit<u8>]) {}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<MappedView>()
}
