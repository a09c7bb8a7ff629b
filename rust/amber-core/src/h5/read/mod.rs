//! The HDF5 reader: superblock versions 0-3, object headers v1/v2, symbol-table, compact and
//! dense groups, contiguous/compact/chunked datasets (deflate, shuffle), numeric, bool and
//! string types, attributes. Every address and length is checked against the input; anything
//! outside that subset is refused with an error naming the feature and the object.
//!
//! One module per format concept; `H5File` in `file` ties them together.

// No indexing, unwrap or panic on file data anywhere in the reader (tests may assert freely).
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod attributes;
mod btree_v1;
mod btree_v2;
mod cursor;
mod dataspace;
mod datatype;
mod extensible_array;
mod file;
mod fixed_array;
mod filters;
mod fractal_heap;
mod heaps;
mod layout;
mod links;
mod object_header;
mod superblock;
mod values;

#[cfg(test)]
mod corpus_tests;

pub use file::H5File;

use crate::dtype::DType;
use crate::storage::ByteRange;

/// What an object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Group,
    Dataset,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Group => "group",
            Kind::Dataset => "dataset",
        }
    }
}

/// Element type and shape of a dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetInfo {
    pub dtype: DType,
    pub shape: Vec<u64>,
}

/// A dataset's bytes, little-endian and row-major.
#[derive(Debug, Clone)]
pub enum Data {
    /// Zero-copy: the bytes as stored in the (mapped) input.
    View(ByteRange),
    /// Decoded: decompressed, assembled from chunks, byte-swapped or filled.
    Owned(Vec<u8>),
}

impl Data {
    pub fn bytes(&self) -> &[u8] {
        match self {
            Data::View(r) => r.bytes(),
            Data::Owned(v) => v,
        }
    }
}
