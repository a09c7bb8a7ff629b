//! Checked little-endian reads over a byte range, and the check of the lookup3 checksum that
//! HDF5 puts at the end of every version-2 metadata block.
//!
//! Every read returns a `Result`: running off the end of a structure is a corrupt-file error
//! naming the absolute offset, never a panic.

use crate::error::{Error, Result};
use crate::storage::ByteRange;
use crate::h5::checksum::lookup3;

/// The "undefined address" of HDF5: all bits set, whatever the size of offsets.
pub(crate) const UNDEFINED: u64 = u64::MAX;

/// Sizes of file addresses ("offsets") and of lengths, from the superblock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sizes {
    pub offsets: u8,
    pub lengths: u8,
}

/// A read position inside one structure.
pub(crate) struct Cursor<'a> {
    range: &'a ByteRange,
    pos: u64,
    sizes: Sizes,
}

impl<'a> Cursor<'a> {
    pub fn new(range: &'a ByteRange, sizes: Sizes) -> Self {
        Cursor { range, pos: 0, sizes }
    }

    pub fn sizes(&self) -> Sizes {
        self.sizes
    }

    pub fn pos(&self) -> u64 {
        self.pos
    }

    pub fn remaining(&self) -> u64 {
        self.range.len().saturating_sub(self.pos)
    }

    /// Absolute offset of the read position within the underlying storage (for messages).
    pub fn abs(&self) -> u64 {
        self.range.start().saturating_add(self.pos)
    }

    pub fn seek(&mut self, pos: u64) -> Result<()> {
        if pos > self.range.len() {
            return Err(Error::corrupt(format!("seek to {pos} past a {}-byte structure", self.range.len())).at(self.abs()));
        }
        self.pos = pos;
        Ok(())
    }

    pub fn skip(&mut self, n: u64) -> Result<()> {
        let to = self.pos.checked_add(n).ok_or_else(|| Error::corrupt("length overflows").at(self.abs()))?;
        self.seek(to)
    }

    /// The next `n` bytes as a sub-range (keeps the storage alive, no copy).
    pub fn range(&mut self, n: u64) -> Result<ByteRange> {
        let r = self.range.sub(self.pos, n).map_err(|e| e.at(self.abs()))?;
        self.pos += n;
        Ok(r)
    }

    pub fn bytes(&mut self, n: u64) -> Result<&'a [u8]> {
        let start = self.pos;
        let end = start
            .checked_add(n)
            .filter(|&e| e <= self.range.len())
            .ok_or_else(|| {
                Error::corrupt(format!(
                    "structure needs {n} more bytes at position {start} but only {} remain",
                    self.remaining()
                ))
                .at(self.abs())
            })?;
        self.pos = end;
        // In bounds: end <= range.len() was checked above.
        self.range.bytes().get(start as usize..end as usize).ok_or_else(|| Error::corrupt("range out of bounds"))
    }

    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.bytes(1)?.first().copied().unwrap_or(0))
    }

    pub fn u16(&mut self) -> Result<u16> {
        Ok(self.uint(2)? as u16)
    }

    pub fn u32(&mut self) -> Result<u32> {
        Ok(self.uint(4)? as u32)
    }

    pub fn u64(&mut self) -> Result<u64> {
        self.uint(8)
    }

    /// A little-endian unsigned integer of 0 to 8 bytes.
    pub fn uint(&mut self, n: u8) -> Result<u64> {
        if n > 8 {
            return Err(Error::corrupt(format!("integer field of {n} bytes (at most 8 supported)")).at(self.abs()));
        }
        Ok(le_uint(self.bytes(n as u64)?))
    }

    /// A file address; all-ones (any width) becomes `UNDEFINED`.
    pub fn offset(&mut self) -> Result<u64> {
        let n = self.sizes.offsets;
        let v = self.uint(n)?;
        Ok(if n < 8 && v == (1u64 << (8 * n as u32)) - 1 { UNDEFINED } else { v })
    }

    pub fn length(&mut self) -> Result<u64> {
        self.uint(self.sizes.lengths)
    }

    /// Expect a 4-byte signature such as `OHDR`.
    pub fn signature(&mut self, sig: &[u8; 4], what: &str) -> Result<()> {
        let at = self.abs();
        let got = self.bytes(4)?;
        if got != sig {
            return Err(Error::corrupt(format!(
                "{what}: expected signature '{}', found {:?}",
                String::from_utf8_lossy(sig),
                String::from_utf8_lossy(got)
            ))
            .at(at));
        }
        Ok(())
    }
}

pub(crate) fn le_uint(b: &[u8]) -> u64 {
    b.iter().rev().fold(0u64, |acc, &x| (acc << 8) | x as u64)
}

/// Bytes needed to store `n` as an unsigned integer (at least 1).
pub(crate) fn bytes_for(n: u64) -> u8 {
    ((64 - n.leading_zeros()) as u8).div_ceil(8).max(1)
}

/// Verify the checksum stored in the last 4 bytes of `block` over everything before it.
pub(crate) fn verify_checksum(block: &ByteRange, what: &str) -> Result<()> {
    let bytes = block.bytes();
    let split = bytes.len().checked_sub(4).ok_or_else(|| Error::corrupt(format!("{what} too short for its checksum")).at(block.start()))?;
    let (body, stored) = bytes.split_at(split);
    let stored = le_uint(stored) as u32;
    let computed = lookup3(body, 0);
    if stored != computed {
        return Err(Error::corrupt(format!("{what}: checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"))
            .at(block.start()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Storage;

    #[test]
    fn reads_are_checked() {
        let s = Storage::from_vec(vec![1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff], "mem");
        let r = s.full();
        let mut c = Cursor::new(&r, Sizes { offsets: 4, lengths: 4 });
        assert_eq!(c.u32().unwrap(), 1);
        assert_eq!(c.offset().unwrap(), UNDEFINED);
        assert!(c.u8().is_err());
        assert_eq!(bytes_for(255), 1);
        assert_eq!(bytes_for(256), 2);
        assert_eq!(bytes_for(0), 1);
    }
}
