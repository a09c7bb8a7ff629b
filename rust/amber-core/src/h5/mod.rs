//! HDF5, the subset Keras files use, read and written by amber itself.
//!
//! Written by hand rather than through libhdf5: libhdf5 cannot hand out views into a mapped zip
//! entry, and it would put a C library into every wheel.

pub(crate) mod checksum;
pub mod read;

use crate::dtype::DType;

pub mod write;

/// An attribute value as amber reads and writes it.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    /// A scalar string (written as variable-length UTF-8, as h5py does for `str`).
    Str(String),
    /// A 1-D array of strings (written fixed-length, as legacy Keras `layer_names`/`weight_names`).
    StrArray(Vec<String>),
    /// Numbers: dtype, shape (empty for a scalar) and little-endian bytes.
    Numeric { dtype: DType, shape: Vec<u64>, data: Vec<u8> },
}
