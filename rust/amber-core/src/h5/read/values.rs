//! Turning stored element bytes into values: byte-swapping big-endian numbers, checking
//! h5py's bools, and decoding fixed- and variable-length strings.

use std::collections::HashMap;

use super::cursor::Cursor;
use super::dataspace::Dataspace;
use super::datatype::{decode_fixed, Datatype};
use super::heaps::GlobalHeap;
use super::superblock::Space;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::h5::AttrValue;
use crate::storage::ByteRange;

/// Reverse the bytes of every element in place (file big-endian -> memory little-endian).
pub(crate) fn swap_in_place(data: &mut [u8], size: usize) {
    if size > 1 {
        for element in data.chunks_exact_mut(size) {
            element.reverse();
        }
    }
}

/// h5py's bool enum only has members 0 and 1; anything else is not a valid value.
pub(crate) fn check_bools(data: &[u8]) -> Result<()> {
    match data.iter().position(|&b| b > 1) {
        Some(i) => Err(Error::corrupt(format!("boolean element {i} holds {}, not 0 or 1", data.get(i).copied().unwrap_or(0)))),
        None => Ok(()),
    }
}

/// Decode `count` strings stored as `dt` in `raw`.
pub(crate) fn strings(space: &Space, dt: &Datatype, count: u64, raw: &ByteRange) -> Result<Vec<String>> {
    let mut out = Vec::with_capacity(count.min(1 << 16) as usize);
    match dt {
        Datatype::FixedString { size, pad } => {
            let mut c = space.cursor(raw);
            for _ in 0..count {
                out.push(decode_fixed(c.bytes(*size)?, *pad).map_err(|e| e.at(raw.start()))?);
            }
        }
        Datatype::VlenString => {
            let mut heaps: HashMap<u64, GlobalHeap> = HashMap::new();
            let mut c: Cursor<'_> = space.cursor(raw);
            for _ in 0..count {
                let at = c.abs();
                let len = c.u32()? as u64;
                let collection = c.offset()?;
                let index = c.u32()?;
                if len == 0 {
                    out.push(String::new());
                    continue;
                }
                let heap = match heaps.entry(collection) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(e) => e.insert(GlobalHeap::parse(space, collection)?),
                };
                let index = u16::try_from(index).map_err(|_| Error::corrupt(format!("global heap index {index} out of range")).at(at))?;
                let object = heap.object(index)?;
                let bytes = object.bytes().get(..len as usize).ok_or_else(|| {
                    Error::corrupt(format!("string of {len} bytes but its heap object holds {}", object.len())).at(object.start())
                })?;
                out.push(String::from_utf8(bytes.to_vec()).map_err(|_| Error::corrupt("string is not valid UTF-8").at(object.start()))?);
            }
        }
        Datatype::Number { .. } => return Err(Error::invalid("not a string datatype")),
    }
    Ok(out)
}

/// An attribute's value: strings as `Str`/`StrArray`, numbers as little-endian `Numeric`.
pub(crate) fn attr_value(space: &Space, dt: &Datatype, ds: &Dataspace, raw: &ByteRange) -> Result<AttrValue> {
    let count = ds.count()?;
    let stored = count
        .checked_mul(dt.stored_size(space.sizes.offsets))
        .filter(|&n| n <= raw.len())
        .ok_or_else(|| Error::corrupt(format!("attribute data holds {} bytes, too few for {count} elements of {}", raw.len(), dt.describe())).at(raw.start()))?;
    let raw = raw.sub(0, stored)?;
    match dt {
        Datatype::Number { dtype, big_endian } => {
            let mut data = raw.bytes().to_vec();
            if *big_endian {
                swap_in_place(&mut data, dtype.size());
            }
            if *dtype == DType::Bool {
                check_bools(&data).map_err(|e| e.at(raw.start()))?;
            }
            Ok(AttrValue::Numeric { dtype: *dtype, shape: ds.shape(), data })
        }
        _ => {
            let mut list = strings(space, dt, count, &raw)?;
            match ds {
                Dataspace::Scalar => Ok(AttrValue::Str(list.pop().unwrap_or_default())),
                Dataspace::Simple(dims) if dims.len() == 1 => Ok(AttrValue::StrArray(list)),
                Dataspace::Null => Ok(AttrValue::StrArray(Vec::new())),
                Dataspace::Simple(dims) => Err(Error::unsupported(format!("string attribute of shape {dims:?} (only scalars and 1-D arrays)"))),
            }
        }
    }
}
