//! The superblock: where the file's address space starts, how wide addresses are, and where
//! the root group's object header lives.

use super::cursor::{verify_checksum, Cursor, Sizes, UNDEFINED};
use crate::error::{Error, Result, ResultExt};
use crate::storage::ByteRange;

const SIGNATURE: [u8; 8] = [0x89, b'H', b'D', b'F', b'\r', b'\n', 0x1a, b'\n'];

/// The file's address space: every HDF5 address is relative to the superblock (the "base
/// address"), so a userblock before it, or a zip entry around it, changes nothing.
#[derive(Clone, Debug)]
pub(crate) struct Space {
    /// From the base address to the end of the input.
    pub data: ByteRange,
    pub sizes: Sizes,
}

impl Space {
    /// `len` bytes at address `addr`, checked against the input.
    pub fn block(&self, addr: u64, len: u64, what: &str) -> Result<ByteRange> {
        if addr == UNDEFINED {
            return Err(Error::corrupt(format!("{what} has an undefined address")));
        }
        self.data.sub(addr, len).map_err(|e| {
            Error::corrupt(format!("{what} at address {addr} ({len} bytes) lies past the end of the file ({} bytes)", self.data.len()))
                .at(e.location.offset.unwrap_or(addr).saturating_add(self.data.start()))
        })
    }

    /// Everything from `addr` to the end: for structures whose length is only known once read.
    pub fn tail(&self, addr: u64, what: &str) -> Result<ByteRange> {
        let len = self.data.len().checked_sub(addr).ok_or_else(|| {
            Error::corrupt(format!("{what} at address {addr} lies past the end of the file ({} bytes)", self.data.len()))
        });
        if addr == UNDEFINED {
            return Err(Error::corrupt(format!("{what} has an undefined address")));
        }
        self.block(addr, len?, what)
    }

    pub fn cursor<'a>(&self, range: &'a ByteRange) -> Cursor<'a> {
        Cursor::new(range, self.sizes)
    }
}

/// What the rest of the reader needs from the superblock.
#[derive(Debug)]
pub(crate) struct Superblock {
    pub space: Space,
    pub root: u64,
}

impl Superblock {
    /// Find the signature (at 0, 512, 1024, 2048, ...) and parse the superblock there.
    pub fn find(input: &ByteRange) -> Result<Superblock> {
        let mut at: u64 = 0;
        loop {
            let head = input.sub(at, 8).map_err(|_| {
                Error::corrupt("not an HDF5 file: no HDF5 signature at offset 0, 512, 1024, ... (or the file is truncated)")
                    .at(input.start())
            })?;
            if head.bytes() == SIGNATURE {
                return Self::parse(input, at).at(input.start() + at);
            }
            at = if at == 0 { 512 } else { at * 2 };
        }
    }

    fn parse(input: &ByteRange, at: u64) -> Result<Superblock> {
        let data = input.sub(at, input.len() - at)?;
        let bootstrap = Sizes { offsets: 8, lengths: 8 };
        let mut c = Cursor::new(&data, bootstrap);
        c.skip(8)?;
        let version = c.u8()?;
        let (sizes, root) = match version {
            0 | 1 => {
                c.skip(4)?; // free-space, root symbol table entry, reserved, shared header versions
                let sizes = Sizes { offsets: c.u8()?, lengths: c.u8()? };
                check_sizes(sizes)?;
                c.skip(1 + 2 + 2 + 4)?; // reserved, group leaf K, group internal K, flags
                if version == 1 {
                    c.skip(4)?; // indexed storage K, reserved
                }
                let mut c2 = Cursor::new(&data, sizes);
                c2.seek(c.pos())?;
                let _base = c2.offset()?;
                let _free_space = c2.offset()?;
                let _eof = c2.offset()?;
                let _driver = c2.offset()?;
                // Root group symbol table entry: link name offset, then the object header.
                let _name = c2.offset()?;
                let root = c2.offset()?;
                (sizes, root)
            }
            2 | 3 => {
                let sizes = Sizes { offsets: c.u8()?, lengths: c.u8()? };
                check_sizes(sizes)?;
                c.skip(1)?; // file consistency flags
                let mut c2 = Cursor::new(&data, sizes);
                c2.seek(c.pos())?;
                let _base = c2.offset()?;
                let extension = c2.offset()?;
                let _eof = c2.offset()?;
                let root = c2.offset()?;
                let end = c2.pos() + 4;
                verify_checksum(&data.sub(0, end)?, "superblock")?;
                if extension != UNDEFINED {
                    // The extension only carries tuning (B-tree K values, free-space settings);
                    // nothing a reader of these files needs.
                }
                (sizes, root)
            }
            v => return Err(Error::unsupported(format!("HDF5 superblock version {v} (amber reads 0 to 3)"))),
        };
        if root == UNDEFINED {
            return Err(Error::corrupt("superblock names no root group"));
        }
        Ok(Superblock { space: Space { data, sizes }, root })
    }
}

fn check_sizes(s: Sizes) -> Result<()> {
    let ok = |n: u8| matches!(n, 2 | 4 | 8);
    if !ok(s.offsets) || !ok(s.lengths) {
        return Err(Error::unsupported(format!(
            "HDF5 superblock with {}-byte addresses and {}-byte lengths (amber reads 2, 4 or 8)",
            s.offsets, s.lengths
        )));
    }
    Ok(())
}
