//! The filter pipeline of chunked datasets: deflate and shuffle are decoded, fletcher32
//! checksums verified, other filters refused by name. Decompression never produces more than the chunk's expected size.

use std::io::Read;

use super::cursor::Cursor;
use crate::error::{Error, Result};

const FILTER_DEFLATE: u16 = 1;
const FILTER_SHUFFLE: u16 = 2;
const FILTER_FLETCHER32: u16 = 3;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Filter {
    Deflate,
    Shuffle { element_size: usize },
    Fletcher32,
}

pub(crate) fn parse_pipeline(c: &mut Cursor<'_>) -> Result<Vec<Filter>> {
    let at = c.abs();
    let version = c.u8()?;
    let count = c.u8()?;
    if version == 1 {
        c.skip(6)?;
    } else if version != 2 {
        return Err(Error::unsupported(format!("filter pipeline message version {version}")).at(at));
    }
    let mut out = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let id = c.u16()?;
        let name_len = if version == 1 || id >= 256 { c.u16()? as u64 } else { 0 };
        let _flags = c.u16()?;
        let nvalues = c.u16()? as u64;
        let name = if name_len > 0 {
            let raw = c.bytes(name_len)?;
            if version == 1 {
                c.skip((8 - name_len % 8) % 8)?;
            }
            String::from_utf8_lossy(raw.split(|&b| b == 0).next().unwrap_or(&[])).into_owned()
        } else {
            String::new()
        };
        let mut values = Vec::with_capacity(nvalues.min(64) as usize);
        for _ in 0..nvalues {
            values.push(c.u32()?);
        }
        if version == 1 && nvalues % 2 == 1 {
            c.skip(4)?;
        }
        out.push(match id {
            FILTER_DEFLATE => Filter::Deflate,
            FILTER_SHUFFLE => {
                let element_size = values.first().copied().unwrap_or(0) as usize;
                if element_size == 0 {
                    return Err(Error::corrupt("shuffle filter without an element size").at(at));
                }
                Filter::Shuffle { element_size }
            }
            FILTER_FLETCHER32 => Filter::Fletcher32,
            4 => return Err(Error::unsupported("szip filter").at(at)),
            5 => return Err(Error::unsupported("n-bit filter").at(at)),
            6 => return Err(Error::unsupported("scale-offset filter").at(at)),
            other => {
                let label = if name.is_empty() { String::new() } else { format!(" ('{name}')") };
                return Err(Error::unsupported(format!("filter {other}{label}")).at(at));
            }
        });
    }
    Ok(out)
}

/// Undo the pipeline on one stored chunk (filters run in reverse order; bit i of `mask`
/// set means filter i was skipped). The result is exactly `expected` bytes or an error.
pub(crate) fn decode(pipeline: &[Filter], mask: u32, stored: &[u8], expected: usize) -> Result<Vec<u8>> {
    let mut data = stored.to_vec();
    for (i, f) in pipeline.iter().enumerate().rev() {
        if i < 32 && mask & (1 << i) != 0 {
            continue;
        }
        data = match f {
            Filter::Deflate => inflate(&data, expected)?,
            Filter::Shuffle { element_size } => unshuffle(&data, *element_size),
            Filter::Fletcher32 => strip_fletcher32(data)?,
        };
    }
    if data.len() != expected {
        return Err(Error::corrupt(format!("chunk decodes to {} bytes, expected {expected}", data.len())));
    }
    Ok(data)
}

fn inflate(input: &[u8], expected: usize) -> Result<Vec<u8>> {
    // Grow as data arrives: `expected` comes from the file and is only an upper bound.
    let mut out = Vec::with_capacity(expected.min(input.len().saturating_mul(4)));
    let limit = expected as u64 + 1;
    flate2::read::ZlibDecoder::new(input)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| Error::corrupt(format!("deflate stream is corrupt: {e}")))?;
    if out.len() > expected {
        return Err(Error::refused(format!("deflated chunk inflates past its expected {expected} bytes")));
    }
    Ok(out)
}

/// The filter appends a 4-byte checksum of the data before it; libhdf5 before 1.8 stored it
/// byte-swapped, so either order is accepted.
fn strip_fletcher32(mut data: Vec<u8>) -> Result<Vec<u8>> {
    let body_len = data.len().checked_sub(4).ok_or_else(|| Error::corrupt("chunk too short for its fletcher32 checksum"))?;
    let stored = super::cursor::le_uint(data.get(body_len..).unwrap_or(&[])) as u32;
    let computed = fletcher32(data.get(..body_len).unwrap_or(&[]));
    // libhdf5 folds sums with end-around carry, so a sum of 0 may be stored as 0xffff.
    let same = |v: u32| (v & 0xffff) % 65535 == computed & 0xffff && (v >> 16) % 65535 == computed >> 16;
    if !same(stored) && !same(stored.swap_bytes()) {
        return Err(Error::corrupt(format!("chunk fails its fletcher32 checksum (stored {stored:#010x}, computed {computed:#010x})")));
    }
    data.truncate(body_len);
    Ok(data)
}

/// Fletcher's checksum over big-endian 16-bit words (an odd last byte is the high half).
fn fletcher32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (0u64, 0u64);
    for word in data.chunks(2) {
        let hi = word.first().copied().unwrap_or(0) as u64;
        let lo = word.get(1).copied().unwrap_or(0) as u64;
        a = (a + ((hi << 8) | lo)) % 65535;
        b = (b + a) % 65535;
    }
    ((b as u32) << 16) | a as u32
}

/// Shuffle stores byte 0 of every element, then byte 1, ...; trailing bytes that do not
/// make a whole element are stored as they are.
fn unshuffle(data: &[u8], size: usize) -> Vec<u8> {
    if size <= 1 {
        return data.to_vec();
    }
    let n = data.len() / size;
    let mut out = vec![0u8; data.len()];
    for (b, plane) in data.chunks(n.max(1)).take(size).enumerate() {
        if n == 0 {
            break;
        }
        for (e, &byte) in plane.iter().enumerate() {
            if let Some(slot) = out.get_mut(e * size + b) {
                *slot = byte;
            }
        }
    }
    let whole = n * size;
    if let (Some(dst), Some(src)) = (out.get_mut(whole..), data.get(whole..)) {
        dst.copy_from_slice(src);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unshuffle_inverts_shuffle() {
        // Elements [1,2,3],[4,5,6] of size 3 shuffled: 1 4 2 5 3 6, plus a trailing byte.
        assert_eq!(unshuffle(&[1, 4, 2, 5, 3, 6, 9], 3), vec![1, 2, 3, 4, 5, 6, 9]);
    }

    #[test]
    fn inflate_is_bounded() {
        use std::io::Write;
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&[0u8; 10_000]).unwrap();
        let z = enc.finish().unwrap();
        assert!(decode(&[Filter::Deflate], 0, &z, 100).is_err());
        assert_eq!(decode(&[Filter::Deflate], 0, &z, 10_000).unwrap().len(), 10_000);
    }
}
