//! `amber._native`: the thin PyO3 translation layer over `amber-core`. No logic lives here:
//! each function converts arguments, calls the core with the GIL released, and converts back.
//! One file per core module; each has a `register` function called below.

use pyo3::create_exception;
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;

use amber_core::error::{Error, ErrorKind};

mod affine;
mod archive;
mod conv;
mod h5_read;
mod h5_write;
mod kernels;
mod layout;
mod optim;
mod safetensors;
mod sigmoid;
mod train;
mod views;

create_exception!(_native, FormatError, PyValueError, "A file does not follow its format, or uses a feature amber refuses or does not read.");
create_exception!(_native, FileIOError, PyOSError, "The operating system refused a read, write, open or map.");

/// Map a core error to the Python exception for its kind, keeping the located message.
pub(crate) fn to_py_err(err: Error) -> PyErr {
    let msg = err.to_string();
    match err.kind {
        ErrorKind::Io => FileIOError::new_err(msg),
        ErrorKind::NotFound => pyo3::exceptions::PyKeyError::new_err(msg),
        _ => FormatError::new_err(msg),
    }
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("FormatError", m.py().get_type::<FormatError>())?;
    m.add("FileIOError", m.py().get_type::<FileIOError>())?;
    affine::register(m)?;
    archive::register(m)?;
    conv::register(m)?;
    h5_read::register(m)?;
    h5_write::register(m)?;
    safetensors::register(m)?;
    sigmoid::register(m)?;
    kernels::register(m)?;
    optim::register(m)?;
    train::register(m)?;
    views::register(m)?;
    Ok(())
}
