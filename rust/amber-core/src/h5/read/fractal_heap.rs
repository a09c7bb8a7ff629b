//! Fractal heaps: where dense storage keeps link and attribute messages. amber reads managed,
//! tiny and huge objects of unfiltered heaps (huge ones are what libhdf5 writes for attributes
//! past 64 KiB); filtered heaps are refused by name.

use std::collections::HashSet;

use super::btree_v2;
use super::cursor::{bytes_for, le_uint, verify_checksum, UNDEFINED};
use super::superblock::Space;
use crate::error::{Error, Result};
use crate::storage::ByteRange;

/// Nested indirect blocks deeper than this would address more than 2^64 bytes anyway.
const MAX_DEPTH: u32 = 64;
const MAX_BLOCKS: usize = 1 << 20;

pub(crate) struct FractalHeap {
    id_len: u64,
    offset_bytes: u8,
    length_bytes: u8,
    /// Direct blocks sorted by their offset in the heap's address space: (offset, block).
    blocks: Vec<(u64, ByteRange)>,
    /// v2 B-tree of huge objects whose address does not fit in their heap ID.
    huge_index: u64,
    space: Space,
    at: u64,
}

struct Geometry {
    addr: u64,
    width: u64,
    start_size: u64,
    max_direct: u64,
    offset_bytes: u8,
    checksummed: bool,
}

impl FractalHeap {
    pub fn parse(space: &Space, addr: u64) -> Result<FractalHeap> {
        let o = space.sizes.offsets as u64;
        let l = space.sizes.lengths as u64;
        let len = 4 + 1 + 2 + 2 + 1 + 4 + l + o + l + o + 4 * l + 4 * l + 2 + l + l + 2 + 2 + o + 2 + 4;
        let block = space.block(addr, len, "fractal heap header")?;
        let at = block.start();
        let mut c = space.cursor(&block);
        c.signature(b"FRHP", "fractal heap header")?;
        let version = c.u8()?;
        if version != 0 {
            return Err(Error::corrupt(format!("fractal heap version {version}")).at(at));
        }
        let id_len = c.u16()? as u64;
        let filters_len = c.u16()?;
        if filters_len != 0 {
            return Err(Error::unsupported("fractal heap with I/O filters").at(at));
        }
        let flags = c.u8()?;
        let max_managed = c.u32()? as u64;
        let _next_huge_id = c.length()?;
        let huge_index = c.offset()?;
        c.skip(l + o + 4 * l + 4 * l)?; // free-space bookkeeping and counters
        let width = c.u16()? as u64;
        let start_size = c.length()?;
        let max_direct = c.length()?;
        let max_heap_bits = c.u16()?;
        let _start_rows = c.u16()?;
        let root = c.offset()?;
        let root_rows = c.u16()? as u64;
        verify_checksum(&block, "fractal heap header")?;
        if width == 0 || !start_size.is_power_of_two() || !max_direct.is_power_of_two() || max_direct < start_size || max_heap_bits > 64 {
            return Err(Error::corrupt("fractal heap header has an impossible doubling table").at(at));
        }
        let offset_bytes = (max_heap_bits as u32).div_ceil(8) as u8;
        let g = Geometry { addr, width, start_size, max_direct, offset_bytes, checksummed: flags & 0x02 != 0 };
        let mut heap = FractalHeap {
            id_len,
            offset_bytes,
            length_bytes: bytes_for(max_direct.min(max_managed)),
            blocks: Vec::new(),
            huge_index,
            space: space.clone(),
            at,
        };
        if root != UNDEFINED {
            let mut seen = HashSet::new();
            if root_rows == 0 {
                heap.direct(space, &g, root, start_size, &mut seen)?;
            } else {
                heap.indirect(space, &g, root, root_rows, 0, &mut seen)?;
            }
        }
        heap.blocks.sort_by_key(|(off, _)| *off);
        Ok(heap)
    }

    fn direct(&mut self, space: &Space, g: &Geometry, addr: u64, size: u64, seen: &mut HashSet<u64>) -> Result<()> {
        self.visit(addr, seen)?;
        let block = space.block(addr, size, "fractal heap direct block")?;
        let mut c = space.cursor(&block);
        c.signature(b"FHDB", "fractal heap direct block")?;
        c.skip(1)?;
        let heap = c.offset()?;
        if heap != g.addr {
            return Err(Error::corrupt("fractal heap direct block belongs to another heap").at(block.start()));
        }
        let offset = c.uint(g.offset_bytes)?;
        // An optional checksum follows (libhdf5 does not write it by default); objects are
        // bounds-checked against the block either way, so it is not needed for safety.
        let _ = g.checksummed;
        self.blocks.push((offset, block));
        Ok(())
    }

    fn indirect(&mut self, space: &Space, g: &Geometry, addr: u64, rows: u64, depth: u32, seen: &mut HashSet<u64>) -> Result<()> {
        if depth > MAX_DEPTH || rows > 64 {
            return Err(Error::corrupt("fractal heap indirect blocks nest too deeply").at(addr));
        }
        self.visit(addr, seen)?;
        let o = space.sizes.offsets as u64;
        let max_direct_rows = (g.max_direct.trailing_zeros() - g.start_size.trailing_zeros()) as u64 + 2;
        let entries = rows * g.width;
        let len = 4 + 1 + o + g.offset_bytes as u64 + entries * o + 4;
        let block = space.block(addr, len, "fractal heap indirect block")?;
        verify_checksum(&block, "fractal heap indirect block")?;
        let mut c = space.cursor(&block);
        c.signature(b"FHIB", "fractal heap indirect block")?;
        c.skip(1)?;
        if c.offset()? != g.addr {
            return Err(Error::corrupt("fractal heap indirect block belongs to another heap").at(block.start()));
        }
        c.skip(g.offset_bytes as u64)?;
        for i in 0..entries {
            let child = c.offset()?;
            if child == UNDEFINED {
                continue;
            }
            let row = i / g.width;
            let size = if row == 0 { g.start_size } else { g.start_size.checked_shl(row as u32 - 1).unwrap_or(u64::MAX) };
            if row < max_direct_rows {
                self.direct(space, g, child, size, seen)?;
            } else {
                // A child indirect block spans `size` bytes: enough rows for that.
                let child_rows = (size.trailing_zeros() as u64).saturating_sub((g.start_size * g.width).trailing_zeros() as u64) + 1;
                self.indirect(space, g, child, child_rows, depth + 1, seen)?;
            }
        }
        Ok(())
    }

    fn visit(&self, addr: u64, seen: &mut HashSet<u64>) -> Result<()> {
        if !seen.insert(addr) || seen.len() > MAX_BLOCKS {
            return Err(Error::corrupt(format!("fractal heap block at address {addr} is reached twice or the heap is too large")).at(self.at));
        }
        Ok(())
    }

    /// A huge object lives outside the heap's blocks: its address and length are in the ID
    /// when they fit, else the ID is a key into the huge-object B-tree.
    fn huge(&self, rest: &[u8]) -> Result<ByteRange> {
        let o = self.space.sizes.offsets as usize;
        let l = self.space.sizes.lengths as usize;
        let (addr, len) = if rest.len() >= o + l {
            let addr = le_uint(rest.get(..o).unwrap_or(&[]));
            (addr, le_uint(rest.get(o..o + l).unwrap_or(&[])))
        } else {
            let key = le_uint(rest.get(..rest.len().min(8)).unwrap_or(&[]));
            // Type 1 records: address, length, object ID.
            let mut found = None;
            for record in btree_v2::records(&self.space, self.huge_index, 1)? {
                let mut c = self.space.cursor(&record);
                let (addr, len, id) = (c.offset()?, c.length()?, c.length()?);
                if id == key {
                    found = Some((addr, len));
                    break;
                }
            }
            found.ok_or_else(|| Error::corrupt(format!("huge heap object {key} is not in the heap's index")).at(self.at))?
        };
        self.space.block(addr, len, "huge fractal heap object")
    }

    /// The object a heap ID names.
    pub fn object(&self, id: &[u8]) -> Result<ByteRange> {
        if id.len() as u64 != self.id_len {
            return Err(Error::corrupt(format!("heap ID of {} bytes, heap uses {}", id.len(), self.id_len)).at(self.at));
        }
        let first = id.first().copied().unwrap_or(0);
        if first >> 6 != 0 {
            return Err(Error::corrupt(format!("heap ID version {}", first >> 6)).at(self.at));
        }
        match (first >> 4) & 0x03 {
            0 => {
                let ob = self.offset_bytes as usize;
                let lb = self.length_bytes as usize;
                let offset = le_uint(id.get(1..1 + ob).ok_or_else(|| Error::corrupt("heap ID too short").at(self.at))?);
                let len = le_uint(id.get(1 + ob..1 + ob + lb).ok_or_else(|| Error::corrupt("heap ID too short").at(self.at))?);
                let i = self.blocks.partition_point(|(start, _)| *start <= offset);
                let (start, block) = i
                    .checked_sub(1)
                    .and_then(|i| self.blocks.get(i))
                    .ok_or_else(|| Error::corrupt(format!("heap offset {offset} lies in no direct block")).at(self.at))?;
                block.sub(offset - start, len).map_err(|_| {
                    Error::corrupt(format!("heap object at offset {offset} ({len} bytes) runs past its direct block")).at(block.start())
                })
            }
            2 => {
                // Tiny: the data lives in the ID itself; the low nibble is its length minus one.
                let len = (first & 0x0f) as usize + 1;
                let data = id.get(1..1 + len).ok_or_else(|| Error::corrupt("tiny heap object longer than its ID").at(self.at))?;
                Ok(crate::storage::Storage::from_vec(data.to_vec(), "tiny heap object").full())
            }
            1 => self.huge(id.get(1..).unwrap_or(&[])),
            t => Err(Error::corrupt(format!("heap ID of unknown type {t}")).at(self.at)),
        }
    }
}
