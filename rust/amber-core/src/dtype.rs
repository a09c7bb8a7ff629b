//! Element types shared by every format amber reads and writes.

use crate::error::{Error, Result};

/// An element type of a tensor. All are little-endian in memory; readers convert big-endian
/// file data into owned buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    Bool,
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    F16,
    BF16,
    F32,
    F64,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::Bool | DType::I8 | DType::U8 => 1,
            DType::I16 | DType::U16 | DType::F16 | DType::BF16 => 2,
            DType::I32 | DType::U32 | DType::F32 => 4,
            DType::I64 | DType::U64 | DType::F64 => 8,
        }
    }

    /// The numpy name (`"float32"`, `"int64"`, `"bool"`, ...); `bfloat16` has no numpy
    /// built-in and is named as such.
    pub fn numpy_name(self) -> &'static str {
        match self {
            DType::Bool => "bool",
            DType::I8 => "int8",
            DType::I16 => "int16",
            DType::I32 => "int32",
            DType::I64 => "int64",
            DType::U8 => "uint8",
            DType::U16 => "uint16",
            DType::U32 => "uint32",
            DType::U64 => "uint64",
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            DType::F32 => "float32",
            DType::F64 => "float64",
        }
    }

    /// Parse a numpy name, as produced by `numpy_name`.
    pub fn from_numpy_name(name: &str) -> Result<DType> {
        Ok(match name {
            "bool" => DType::Bool,
            "int8" => DType::I8,
            "int16" => DType::I16,
            "int32" => DType::I32,
            "int64" => DType::I64,
            "uint8" => DType::U8,
            "uint16" => DType::U16,
            "uint32" => DType::U32,
            "uint64" => DType::U64,
            "float16" => DType::F16,
            "bfloat16" => DType::BF16,
            "float32" => DType::F32,
            "float64" => DType::F64,
            other => return Err(Error::invalid(format!("unsupported dtype '{other}'"))),
        })
    }
}

/// Number of elements of `shape` and its size in bytes for `dtype`, refusing overflow.
pub fn checked_nbytes(shape: &[u64], dtype: DType) -> Result<u64> {
    let mut n: u64 = 1;
    for &d in shape {
        n = n
            .checked_mul(d)
            .ok_or_else(|| Error::corrupt(format!("shape {shape:?} has more elements than 2^64")))?;
    }
    n.checked_mul(dtype.size() as u64)
        .ok_or_else(|| Error::corrupt(format!("shape {shape:?} of {} overflows 2^64 bytes", dtype.numpy_name())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for d in [DType::Bool, DType::I8, DType::U64, DType::F16, DType::BF16, DType::F32, DType::F64] {
            assert_eq!(DType::from_numpy_name(d.numpy_name()).unwrap(), d);
        }
    }

    #[test]
    fn overflow_is_refused() {
        assert!(checked_nbytes(&[u64::MAX, 2], DType::U8).is_err());
        assert!(checked_nbytes(&[u64::MAX / 2, 1], DType::F32).is_err());
        assert_eq!(checked_nbytes(&[3, 4], DType::F32).unwrap(), 48);
        assert_eq!(checked_nbytes(&[], DType::F64).unwrap(), 8);
    }
}
