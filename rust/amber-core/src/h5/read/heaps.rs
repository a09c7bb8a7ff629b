//! Local heaps (names of symbol-table groups) and global heap collections (the bytes of
//! variable-length strings).

use std::collections::HashMap;

use super::superblock::Space;
use crate::error::{Error, Result};
use crate::storage::ByteRange;

/// A local heap's data segment.
pub(crate) struct LocalHeap {
    data: ByteRange,
}

impl LocalHeap {
    pub fn parse(space: &Space, addr: u64) -> Result<LocalHeap> {
        let head = space.block(addr, 8 + 2 * space.sizes.lengths as u64 + space.sizes.offsets as u64, "local heap")?;
        let mut c = space.cursor(&head);
        c.signature(b"HEAP", "local heap")?;
        let version = c.u8()?;
        if version != 0 {
            return Err(Error::corrupt(format!("local heap version {version}")).at(head.start()));
        }
        c.skip(3)?;
        let size = c.length()?;
        let _free = c.length()?;
        let data_addr = c.offset()?;
        Ok(LocalHeap { data: space.block(data_addr, size, "local heap data segment")? })
    }

    /// The NUL-terminated string at `offset`.
    pub fn name(&self, offset: u64) -> Result<String> {
        let bytes = self.data.bytes();
        let rest = usize::try_from(offset).ok().and_then(|o| bytes.get(o..)).ok_or_else(|| {
            Error::corrupt(format!("name offset {offset} lies outside the local heap ({} bytes)", bytes.len())).at(self.data.start())
        })?;
        let end = rest.iter().position(|&b| b == 0).ok_or_else(|| {
            Error::corrupt(format!("name at local heap offset {offset} is not NUL-terminated")).at(self.data.start())
        })?;
        let raw = rest.get(..end).unwrap_or(&[]);
        String::from_utf8(raw.to_vec()).map_err(|_| Error::corrupt("link name is not valid UTF-8").at(self.data.start() + offset))
    }
}

/// Objects of one global heap collection, by index.
pub(crate) struct GlobalHeap {
    objects: HashMap<u16, ByteRange>,
    at: u64,
}

impl GlobalHeap {
    pub fn parse(space: &Space, addr: u64) -> Result<GlobalHeap> {
        let head = space.block(addr, 8 + space.sizes.lengths as u64, "global heap collection")?;
        let mut c = space.cursor(&head);
        c.signature(b"GCOL", "global heap collection")?;
        let version = c.u8()?;
        if version != 1 {
            return Err(Error::corrupt(format!("global heap collection version {version}")).at(head.start()));
        }
        c.skip(3)?;
        let size = c.length()?;
        let block = space.block(addr, size, "global heap collection")?;
        let mut c = space.cursor(&block);
        c.skip(8 + space.sizes.lengths as u64)?;
        let mut objects = HashMap::new();
        // Each object header is 8 + size-of-lengths bytes; index 0 marks the free space.
        while c.remaining() >= 8 + space.sizes.lengths as u64 {
            let index = c.u16()?;
            if index == 0 {
                break;
            }
            c.skip(6)?; // reference count, reserved
            let len = c.length()?;
            let data = c.range(len)?;
            c.skip(((8 - len % 8) % 8).min(c.remaining()))?;
            objects.insert(index, data);
        }
        Ok(GlobalHeap { objects, at: block.start() })
    }

    pub fn object(&self, index: u16) -> Result<&ByteRange> {
        self.objects
            .get(&index)
            .ok_or_else(|| Error::corrupt(format!("global heap collection has no object {index}")).at(self.at))
    }
}
