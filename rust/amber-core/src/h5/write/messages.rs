//! Encoders for the object-header messages amber writes, per the HDF5 File Format
//! Specification (section IV.A.2). Every address is 8 bytes and every length 8 bytes, so a
//! message's size never depends on the addresses it holds: the layout can size everything
//! first and fill addresses in afterwards.

use crate::dtype::DType;
use crate::error::{Error, Result};

/// HDF5's "undefined address": all bits set.
pub const UNDEFINED_ADDRESS: u64 = u64::MAX;

// Message type numbers (version-2 object headers store them in one byte).
pub const MSG_DATASPACE: u8 = 0x01;
pub const MSG_LINK_INFO: u8 = 0x02;
pub const MSG_DATATYPE: u8 = 0x03;
pub const MSG_FILL_VALUE: u8 = 0x05;
pub const MSG_LINK: u8 = 0x06;
pub const MSG_LAYOUT: u8 = 0x08;
pub const MSG_GROUP_INFO: u8 = 0x0A;
pub const MSG_ATTRIBUTE: u8 = 0x0C;
pub const MSG_CONTINUATION: u8 = 0x10;
pub const MSG_ATTRIBUTE_INFO: u8 = 0x15;

/// Message flag: the message never changes (libhdf5 marks datatype and fill value so).
pub const FLAG_CONSTANT: u8 = 0x01;

/// One encoded message: its type, flags and body.
#[derive(Debug, Clone)]
pub struct Message {
    pub kind: u8,
    pub flags: u8,
    pub body: Vec<u8>,
}

impl Message {
    pub fn new(kind: u8, body: Vec<u8>) -> Self {
        Message { kind, flags: 0, body }
    }
    pub fn constant(kind: u8, body: Vec<u8>) -> Self {
        Message { kind, flags: FLAG_CONSTANT, body }
    }
}

/// The element types amber stores, each with its exact HDF5 datatype encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredType {
    /// Two's complement or unsigned little-endian integer of 1, 2, 4 or 8 bytes.
    Integer { size: u8, signed: bool },
    /// IEEE little-endian float of 2, 4 or 8 bytes.
    Float { size: u8 },
    /// h5py's boolean: an enum over int8 with members FALSE = 0 and TRUE = 1.
    Bool,
    /// Fixed-length string of `len` bytes, null-padded (numpy `S` arrays).
    FixedString { len: u32, utf8: bool },
    /// Variable-length UTF-8 string stored in the global heap (Python `str`).
    VlenUtf8,
}

impl StoredType {
    /// The stored form of a tensor dtype; bfloat16 has no HDF5 type that h5py reads back.
    pub fn of(dtype: DType) -> Result<StoredType> {
        Ok(match dtype {
            DType::Bool => StoredType::Bool,
            DType::I8 | DType::I16 | DType::I32 | DType::I64 => {
                StoredType::Integer { size: dtype.size() as u8, signed: true }
            }
            DType::U8 | DType::U16 | DType::U32 | DType::U64 => {
                StoredType::Integer { size: dtype.size() as u8, signed: false }
            }
            DType::F16 | DType::F32 | DType::F64 => StoredType::Float { size: dtype.size() as u8 },
            DType::BF16 => {
                return Err(Error::unsupported("bfloat16 cannot be written to HDF5 (h5py has no such type); cast to float32 first"))
            }
        })
    }

    /// The datatype message body.
    pub fn encode(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32);
        self.encode_into(&mut out);
        out
    }

    fn encode_into(self, out: &mut Vec<u8>) {
        // First byte: class in the low nibble, datatype version 1 in the high nibble.
        match self {
            StoredType::Integer { size, signed } => {
                out.extend_from_slice(&[0x10, if signed { 0x08 } else { 0x00 }, 0, 0]);
                out.extend_from_slice(&u32::from(size).to_le_bytes());
                out.extend_from_slice(&0u16.to_le_bytes()); // bit offset
                out.extend_from_slice(&(u16::from(size) * 8).to_le_bytes()); // bit precision
            }
            StoredType::Float { size } => {
                // (sign bit, exponent location, exponent bits, mantissa bits, exponent bias)
                let (sign, exp_loc, exp_bits, mant_bits, bias): (u8, u8, u8, u8, u32) = match size {
                    2 => (15, 10, 5, 10, 15),
                    4 => (31, 23, 8, 23, 127),
                    _ => (63, 52, 11, 52, 1023),
                };
                // 0x20: mantissa normalization "most significant bit implied"; little-endian.
                out.extend_from_slice(&[0x11, 0x20, sign, 0]);
                out.extend_from_slice(&u32::from(size).to_le_bytes());
                out.extend_from_slice(&0u16.to_le_bytes());
                out.extend_from_slice(&(u16::from(size) * 8).to_le_bytes());
                out.extend_from_slice(&[exp_loc, exp_bits, 0, mant_bits]);
                out.extend_from_slice(&bias.to_le_bytes());
            }
            StoredType::Bool => {
                // Enum class (8) with two members; version-1 names are null-terminated and
                // padded to a multiple of eight bytes.
                out.extend_from_slice(&[0x18, 2, 0, 0]);
                out.extend_from_slice(&1u32.to_le_bytes());
                StoredType::Integer { size: 1, signed: true }.encode_into(out);
                out.extend_from_slice(b"FALSE\0\0\0");
                out.extend_from_slice(b"TRUE\0\0\0\0");
                out.extend_from_slice(&[0, 1]);
            }
            StoredType::FixedString { len, utf8 } => {
                // Padding type 1 (null pad) in bits 0-3, character set in bits 4-7.
                let cset = if utf8 { 0x10 } else { 0x00 };
                out.extend_from_slice(&[0x13, 0x01 | cset, 0, 0]);
                out.extend_from_slice(&len.to_le_bytes());
            }
            StoredType::VlenUtf8 => {
                // Variable-length class (9): type 1 = string, padding 0 = null terminate,
                // character set 1 = UTF-8; the base type is one unsigned byte, as libhdf5 writes.
                out.extend_from_slice(&[0x19, 0x01, 0x01, 0]);
                out.extend_from_slice(&16u32.to_le_bytes());
                StoredType::Integer { size: 1, signed: false }.encode_into(out);
            }
        }
    }
}

/// Dataspace message, version 2: scalar for an empty shape, simple otherwise (no max dims).
pub fn dataspace(shape: &[u64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 8 * shape.len());
    let kind = if shape.is_empty() { 0 } else { 1 };
    // rank fits in a byte: shapes are checked against MAX_RANK before they get here
    out.extend_from_slice(&[2, shape.len() as u8, 0, kind]);
    for &d in shape {
        out.extend_from_slice(&d.to_le_bytes());
    }
    out
}

/// HDF5 allows at most 32 dimensions.
pub const MAX_RANK: usize = 32;

/// Link info message: no creation order, compact storage (no fractal heap, no name index).
pub fn link_info() -> Vec<u8> {
    let mut out = vec![0u8, 0];
    out.extend_from_slice(&UNDEFINED_ADDRESS.to_le_bytes());
    out.extend_from_slice(&UNDEFINED_ADDRESS.to_le_bytes());
    out
}

/// Attribute info message: compact attribute storage, no creation order. libhdf5 counts a
/// version-2 header's attributes through this message, so every header carries one (as
/// libhdf5's own version-2 headers do).
pub fn attribute_info() -> Vec<u8> {
    let mut out = vec![0u8, 0];
    out.extend_from_slice(&UNDEFINED_ADDRESS.to_le_bytes()); // no fractal heap: attributes are compact
    out.extend_from_slice(&UNDEFINED_ADDRESS.to_le_bytes()); // no name index
    out
}

/// Group info message with default phase-change and size estimates.
pub fn group_info() -> Vec<u8> {
    vec![0, 0]
}

/// Link message (version 1) for a hard link named `name` (UTF-8) to the header at `target`.
pub fn hard_link(name: &str, target: u64) -> Vec<u8> {
    let name = name.as_bytes();
    let (width_flag, len_bytes): (u8, Vec<u8>) = if name.len() <= 0xFF {
        (0, vec![name.len() as u8])
    } else if name.len() <= 0xFFFF {
        (1, (name.len() as u16).to_le_bytes().to_vec())
    } else {
        (2, (name.len() as u32).to_le_bytes().to_vec())
    };
    // Bit 4: a character-set byte follows (1 = UTF-8). No link-type byte means "hard link".
    let mut out = Vec::with_capacity(4 + len_bytes.len() + name.len() + 8);
    out.extend_from_slice(&[1, width_flag | 0x10, 1]);
    out.extend_from_slice(&len_bytes);
    out.extend_from_slice(name);
    out.extend_from_slice(&target.to_le_bytes());
    out
}

/// Data layout message, version 3, contiguous storage at `address` of `size` bytes.
pub fn contiguous_layout(address: u64, size: u64) -> Vec<u8> {
    let mut out = vec![3u8, 1];
    out.extend_from_slice(&address.to_le_bytes());
    out.extend_from_slice(&size.to_le_bytes());
    out
}

/// Fill value message, version 3: late allocation, fill written only if set, no value set
/// (libhdf5's defaults for a contiguous dataset).
pub fn default_fill_value() -> Vec<u8> {
    vec![3, 0x02 | (0x02 << 2)]
}

/// Attribute message, version 3 (UTF-8 name, no padding between parts).
pub fn attribute(name: &str, datatype: &[u8], dataspace: &[u8], data: &[u8]) -> Result<Vec<u8>> {
    let too_big = || Error::invalid(format!("attribute '{name}' does not fit an HDF5 attribute message"));
    let name_len = u16::try_from(name.len() + 1).map_err(|_| too_big())?;
    let type_len = u16::try_from(datatype.len()).map_err(|_| too_big())?;
    let space_len = u16::try_from(dataspace.len()).map_err(|_| too_big())?;
    let mut out = Vec::with_capacity(9 + name.len() + datatype.len() + dataspace.len() + data.len());
    out.extend_from_slice(&[3, 0]);
    out.extend_from_slice(&name_len.to_le_bytes());
    out.extend_from_slice(&type_len.to_le_bytes());
    out.extend_from_slice(&space_len.to_le_bytes());
    out.push(1); // name character set: UTF-8
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    out.extend_from_slice(datatype);
    out.extend_from_slice(dataspace);
    out.extend_from_slice(data);
    Ok(out)
}

/// Object header continuation message: the next chunk's address and total length.
pub fn continuation(address: u64, length: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    out.extend_from_slice(&address.to_le_bytes());
    out.extend_from_slice(&length.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float32_type_matches_spec_layout() {
        let t = StoredType::of(DType::F32).unwrap().encode();
        assert_eq!(t.len(), 20);
        assert_eq!(t[0], 0x11); // version 1, class 1
        assert_eq!(&t[4..8], &4u32.to_le_bytes());
        assert_eq!(t[2], 31); // sign bit
        assert_eq!(&t[12..16], &[23, 8, 0, 23]);
        assert_eq!(&t[16..20], &127u32.to_le_bytes());
    }

    #[test]
    fn integer_sign_bit() {
        assert_eq!(StoredType::of(DType::I16).unwrap().encode()[1], 0x08);
        assert_eq!(StoredType::of(DType::U16).unwrap().encode()[1], 0x00);
        assert_eq!(StoredType::of(DType::U64).unwrap().encode()[10..12], 64u16.to_le_bytes());
    }

    #[test]
    fn bfloat16_is_refused() {
        let e = StoredType::of(DType::BF16).unwrap_err();
        assert!(e.to_string().contains("bfloat16"));
    }

    #[test]
    fn sizes_do_not_depend_on_addresses() {
        assert_eq!(hard_link("a", 0).len(), hard_link("a", u64::MAX).len());
        assert_eq!(contiguous_layout(0, 0).len(), 18);
        assert_eq!(link_info().len(), 18);
        let long = "x".repeat(300);
        assert_eq!(hard_link(&long, 7).len(), 3 + 2 + 300 + 8);
        assert_eq!(hard_link(&long, 7)[1], 0x11);
    }

    #[test]
    fn dataspace_scalar_and_simple() {
        assert_eq!(dataspace(&[]), vec![2, 0, 0, 0]);
        let d = dataspace(&[3, 0]);
        assert_eq!(&d[..4], &[2, 2, 0, 1]);
        assert_eq!(d.len(), 4 + 16);
    }

    #[test]
    fn attribute_parts_are_counted() {
        let body = attribute("name", &[1, 2], &[3], &[4, 5, 6]).unwrap();
        assert_eq!(&body[2..4], &5u16.to_le_bytes()); // "name" + null
        assert_eq!(body.len(), 9 + 5 + 2 + 1 + 3);
        assert!(attribute(&"n".repeat(70_000), &[], &[], &[]).is_err());
    }
}
