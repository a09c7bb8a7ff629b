//! Datatype messages: the element types amber reads (IEEE floats, integers, h5py's bool enum,
//! fixed- and variable-length strings). Everything else is named and refused.

use super::cursor::Cursor;
use crate::dtype::DType;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StrPad {
    NullTerm,
    NullPad,
    SpacePad,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Datatype {
    /// A number (or h5py's bool), possibly big-endian in the file.
    Number { dtype: DType, big_endian: bool },
    /// Fixed-length strings of `size` bytes.
    FixedString { size: u64, pad: StrPad },
    /// Variable-length strings stored in the global heap.
    VlenString,
}

impl Datatype {
    /// Bytes per element as stored in the file (a vlen element is a length and a heap ID).
    pub fn stored_size(&self, offset_size: u8) -> u64 {
        match self {
            Datatype::Number { dtype, .. } => dtype.size() as u64,
            Datatype::FixedString { size, .. } => *size,
            Datatype::VlenString => 4 + offset_size as u64 + 4,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Datatype::Number { dtype, .. } => dtype.numpy_name().to_string(),
            Datatype::FixedString { size, .. } => format!("fixed-length string ({size} bytes)"),
            Datatype::VlenString => "variable-length string".to_string(),
        }
    }

    pub fn parse(c: &mut Cursor<'_>) -> Result<Datatype> {
        let at = c.abs();
        let class_version = c.u8()?;
        let class = class_version & 0x0f;
        let version = class_version >> 4;
        let bits = c.bytes(3)?;
        let (b0, b1) = (bits.first().copied().unwrap_or(0), bits.get(1).copied().unwrap_or(0));
        let size = c.u32()? as u64;
        let t = match class {
            0 => {
                let _offset = c.u16()?;
                let precision = c.u16()? as u64;
                let signed = b0 & 0x08 != 0;
                let dtype = match (size, signed) {
                    (1, true) => DType::I8,
                    (2, true) => DType::I16,
                    (4, true) => DType::I32,
                    (8, true) => DType::I64,
                    (1, false) => DType::U8,
                    (2, false) => DType::U16,
                    (4, false) => DType::U32,
                    (8, false) => DType::U64,
                    _ => return Err(Error::unsupported(format!("{size}-byte integer datatype")).at(at)),
                };
                if precision != size * 8 {
                    return Err(Error::unsupported(format!("integer datatype with {precision} bits of precision in {size} bytes")).at(at));
                }
                Datatype::Number { dtype, big_endian: b0 & 0x01 != 0 }
            }
            1 => {
                let _offset = c.u16()?;
                let precision = c.u16()? as u64;
                let _exp_loc = c.u8()?;
                let exp_size = c.u8()?;
                let _mant_loc = c.u8()?;
                let mant_size = c.u8()?;
                let _bias = c.u32()?;
                if b0 & 0x40 != 0 {
                    return Err(Error::unsupported("VAX-order floating-point datatype").at(at));
                }
                let dtype = match (size, exp_size, mant_size) {
                    (2, 5, 10) => DType::F16,
                    (2, 8, 7) => DType::BF16,
                    (4, 8, 23) => DType::F32,
                    (8, 11, 52) => DType::F64,
                    _ => {
                        return Err(Error::unsupported(format!(
                            "{size}-byte float datatype with {exp_size}-bit exponent and {mant_size}-bit mantissa"
                        ))
                        .at(at))
                    }
                };
                if precision != size * 8 {
                    return Err(Error::unsupported(format!("float datatype with {precision} bits of precision in {size} bytes")).at(at));
                }
                Datatype::Number { dtype, big_endian: b0 & 0x01 != 0 }
            }
            3 => {
                if size == 0 {
                    return Err(Error::corrupt("fixed-length string datatype of 0 bytes").at(at));
                }
                Datatype::FixedString { size, pad: pad_of(b0 & 0x0f, at)? }
            }
            8 => {
                let members = u16::from_le_bytes([b0, b1]) as usize;
                // Only integer bases are read; checking before recursing also keeps a chain of
                // nested enums from recursing deeply.
                let base_class = c.bytes(1).map(|b| b.first().copied().unwrap_or(0) & 0x0f)?;
                if base_class != 0 {
                    return Err(Error::unsupported("enum datatype over a non-integer base").at(at));
                }
                c.seek(c.pos() - 1)?;
                let base = Datatype::parse(c)?;
                let (base_dtype, big_endian) = match base {
                    Datatype::Number { dtype, big_endian } => (dtype, big_endian),
                    _ => return Err(Error::unsupported("enum datatype over a non-integer base").at(at)),
                };
                let mut names = Vec::new();
                for _ in 0..members.min(3) {
                    names.push(read_enum_name(c, version)?);
                }
                let mut values = Vec::new();
                for _ in 0..members.min(3) {
                    values.push(c.uint(base_dtype.size() as u8)?);
                }
                // h5py's bool: an enum of one-byte integers with FALSE = 0 and TRUE = 1.
                let is_bool = members == 2
                    && base_dtype.size() == 1
                    && names.first().map(Vec::as_slice) == Some(b"FALSE".as_slice())
                    && names.get(1).map(Vec::as_slice) == Some(b"TRUE".as_slice())
                    && values == [0, 1];
                if !is_bool || size != 1 {
                    return Err(Error::unsupported("enum datatype other than h5py's bool (FALSE=0, TRUE=1)").at(at));
                }
                Datatype::Number { dtype: DType::Bool, big_endian }
            }
            9 => {
                let vtype = b0 & 0x0f;
                if vtype != 1 {
                    return Err(Error::unsupported("variable-length sequence datatype (only variable-length strings are read)").at(at));
                }
                Datatype::VlenString
            }
            2 => return Err(Error::unsupported("time datatype").at(at)),
            4 => return Err(Error::unsupported("bitfield datatype").at(at)),
            5 => return Err(Error::unsupported("opaque datatype").at(at)),
            6 => return Err(Error::unsupported("compound datatype").at(at)),
            7 => return Err(Error::unsupported("reference datatype").at(at)),
            10 => return Err(Error::unsupported("array datatype").at(at)),
            11 => return Err(Error::unsupported("complex datatype").at(at)),
            other => return Err(Error::corrupt(format!("unknown datatype class {other}")).at(at)),
        };
        Ok(t)
    }
}

fn pad_of(code: u8, at: u64) -> Result<StrPad> {
    match code {
        0 => Ok(StrPad::NullTerm),
        1 => Ok(StrPad::NullPad),
        2 => Ok(StrPad::SpacePad),
        other => Err(Error::corrupt(format!("unknown string padding {other}")).at(at)),
    }
}

/// Enum member names are NUL-terminated; versions 1 and 2 pad them to 8 bytes.
fn read_enum_name(c: &mut Cursor<'_>, version: u8) -> Result<Vec<u8>> {
    let start = c.pos();
    let mut name = Vec::new();
    loop {
        let b = c.u8()?;
        if b == 0 {
            break;
        }
        if name.len() > 1024 {
            return Err(Error::corrupt("enum member name longer than 1024 bytes").at(c.abs()));
        }
        name.push(b);
    }
    if version < 3 {
        let used = c.pos() - start;
        c.skip((8 - used % 8) % 8)?;
    }
    Ok(name)
}

/// Trim a fixed-length string's padding and decode it as UTF-8.
pub(crate) fn decode_fixed(raw: &[u8], pad: StrPad) -> Result<String> {
    let text = match pad {
        StrPad::NullTerm => raw.split(|&b| b == 0).next().unwrap_or(&[]),
        StrPad::NullPad => trim_end(raw, 0),
        StrPad::SpacePad => trim_end(raw, b' '),
    };
    String::from_utf8(text.to_vec()).map_err(|e| Error::corrupt(format!("string is not valid UTF-8: {e}")))
}

fn trim_end(raw: &[u8], pad: u8) -> &[u8] {
    let end = raw.iter().rposition(|&b| b != pad).map_or(0, |i| i + 1);
    raw.get(..end).unwrap_or(&[])
}
