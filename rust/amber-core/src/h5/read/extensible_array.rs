//! Extensible-array chunk index (layout versions 4 and 5, libver 'latest', datasets with one
//! unlimited dimension). Elements (chunk addresses) live first in the index block, then in
//! data blocks grouped into "super blocks" whose sizes double every other step; the first few
//! super blocks' data blocks are listed in the index block, later ones through super block
//! structures. Paged data blocks (past about 131,000 chunks with the default parameters) are
//! refused by name.

use super::btree_v1::ChunkEntry;
use super::cursor::{verify_checksum, Cursor, UNDEFINED};
use super::superblock::Space;
use crate::error::{Error, Result};

struct Params {
    header: u64,
    client: u8,
    element_size: u64,
    offset_bytes: u64,
    page_elements: u64,
}

/// Everything the index lists, as chunk entries. `unlimited` is the dimension that grows.
pub(crate) fn chunks(space: &Space, addr: u64, shape: &[u64], chunk: &[u64], unlimited: usize, chunk_bytes: u64) -> Result<Vec<ChunkEntry>> {
    let o = space.sizes.offsets as u64;
    let l = space.sizes.lengths as u64;
    let head = space.block(addr, 12 + 6 * l + o + 4, "extensible array header")?;
    verify_checksum(&head, "extensible array header")?;
    let mut c = space.cursor(&head);
    c.signature(b"EAHD", "extensible array header")?;
    let version = c.u8()?;
    let client = c.u8()?;
    let element_size = c.u8()? as u64;
    let max_bits = c.u8()?;
    let idx_blk_elmts = c.u8()? as u64;
    let data_blk_min = c.u8()? as u64;
    let sblk_min_ptrs = c.u8()? as u64;
    let page_bits = c.u8()?;
    c.skip(6 * l)?; // statistics
    let iblock = c.offset()?;
    let bad = version != 0
        || client > 1
        || !(1..=64).contains(&max_bits)
        || !data_blk_min.is_power_of_two()
        || !sblk_min_ptrs.is_power_of_two()
        || page_bits >= 64
        || (data_blk_min.trailing_zeros() as u8) > max_bits;
    if bad {
        return Err(Error::corrupt("extensible array header has impossible parameters").at(head.start()));
    }
    let expected_size = if client == 1 { o + 1 + 4 } else { o };
    if (client == 0 && element_size != o) || element_size < expected_size || element_size > o + 8 + 4 {
        return Err(Error::corrupt(format!("extensible array elements of {element_size} bytes")).at(head.start()));
    }
    let p = Params { header: addr, client, element_size, offset_bytes: (max_bits as u64).div_ceil(8), page_elements: 1 << page_bits };
    let mut out = Vec::new();
    if iblock == UNDEFINED {
        return Ok(out);
    }
    // Geometry: super block u holds 2^(u/2) data blocks of data_blk_min * 2^((u+1)/2) elements.
    let nsblks = 1 + (max_bits as u64 - data_blk_min.trailing_zeros() as u64);
    let iblock_nsblks = (2 * sblk_min_ptrs.trailing_zeros() as u64).min(nsblks);
    let ndblk_addrs = 2 * (sblk_min_ptrs - 1);
    let nsblk_addrs = nsblks - iblock_nsblks;
    let ndblks = |u: u64| 1u64 << (u / 2);
    let dblk_elements = |u: u64| data_blk_min << u.div_ceil(2);

    let len = 6 + o + idx_blk_elmts * element_size + ndblk_addrs * o + nsblk_addrs * o + 4;
    let block = space.block(iblock, len, "extensible array index block")?;
    verify_checksum(&block, "extensible array index block")?;
    let mut c = space.cursor(&block);
    prefix(&mut c, &p, b"EAIB", "extensible array index block", false)?;
    let mut map = Mapper { shape, chunk, unlimited, chunk_bytes, out: &mut out };
    read_elements(&mut c, &p, 0, idx_blk_elmts, &mut map)?;
    let mut dblk_addrs = Vec::new();
    for _ in 0..ndblk_addrs {
        dblk_addrs.push(c.offset()?);
    }
    let mut sblk_addrs = Vec::new();
    for _ in 0..nsblk_addrs {
        sblk_addrs.push(c.offset()?);
    }
    // Data blocks of the first super blocks, straight from the index block.
    let mut start = idx_blk_elmts;
    let mut direct = dblk_addrs.into_iter();
    for u in 0..iblock_nsblks {
        for _ in 0..ndblks(u) {
            if let Some(a) = direct.next() {
                data_block(space, &p, a, start, dblk_elements(u), &mut map)?;
            }
            start = start.saturating_add(dblk_elements(u));
        }
    }
    // Later super blocks, each listing its own data blocks.
    for (k, sblk) in sblk_addrs.into_iter().enumerate() {
        let u = iblock_nsblks + k as u64;
        let (n, size) = (ndblks(u), dblk_elements(u));
        if sblk != UNDEFINED {
            if size > p.page_elements {
                return Err(Error::unsupported("extensible array with paged data blocks (more than about 131,000 chunks)").at(head.start()));
            }
            let block = space.block(sblk, 6 + o + p.offset_bytes + n * o + 4, "extensible array super block")?;
            verify_checksum(&block, "extensible array super block")?;
            let mut c = space.cursor(&block);
            prefix(&mut c, &p, b"EASB", "extensible array super block", true)?;
            for i in 0..n {
                let a = c.offset()?;
                data_block(space, &p, a, start.saturating_add(i.saturating_mul(size)), size, &mut map)?;
            }
        }
        start = start.saturating_add(n.saturating_mul(size));
    }
    Ok(out)
}

fn prefix(c: &mut Cursor<'_>, p: &Params, sig: &[u8; 4], what: &str, has_offset: bool) -> Result<()> {
    let at = c.abs();
    c.signature(sig, what)?;
    let version = c.u8()?;
    let client = c.u8()?;
    let header = c.offset()?;
    if version != 0 || client != p.client || header != p.header {
        return Err(Error::corrupt(format!("{what} does not belong to its extensible array")).at(at));
    }
    if has_offset {
        c.skip(p.offset_bytes)?; // block offset: informational
    }
    Ok(())
}

fn data_block(space: &Space, p: &Params, addr: u64, first: u64, count: u64, map: &mut Mapper<'_>) -> Result<()> {
    if addr == UNDEFINED {
        return Ok(()); // never written: its chunks read as the fill value
    }
    if count > p.page_elements {
        return Err(Error::unsupported("extensible array with paged data blocks (more than about 131,000 chunks)"));
    }
    let o = space.sizes.offsets as u64;
    let len = 6 + o + p.offset_bytes + count * p.element_size + 4;
    let block = space.block(addr, len, "extensible array data block")?;
    verify_checksum(&block, "extensible array data block")?;
    let mut c = space.cursor(&block);
    prefix(&mut c, p, b"EADB", "extensible array data block", true)?;
    read_elements(&mut c, p, first, count, map)
}

fn read_elements(c: &mut Cursor<'_>, p: &Params, first: u64, count: u64, map: &mut Mapper<'_>) -> Result<()> {
    for i in 0..count {
        let addr = c.offset()?;
        let (size, mask) = if p.client == 1 {
            // Filtered element: address, stored size (the remaining width), filter mask.
            let width = p.element_size - c.sizes().offsets as u64 - 4;
            (c.uint(width as u8)?, c.u32()?)
        } else {
            (map.chunk_bytes, 0)
        };
        if addr != UNDEFINED {
            map.add(first.saturating_add(i), addr, size, mask);
        }
    }
    Ok(())
}

/// Turns element indexes into chunk offsets: row-major over the chunk grid with the unlimited
/// dimension moved first (libhdf5 "swizzles" it so the array can grow at its end).
struct Mapper<'a> {
    shape: &'a [u64],
    chunk: &'a [u64],
    unlimited: usize,
    chunk_bytes: u64,
    out: &'a mut Vec<ChunkEntry>,
}

impl Mapper<'_> {
    fn add(&mut self, index: u64, addr: u64, size: u64, filter_mask: u32) {
        let rank = self.shape.len();
        let mut order: Vec<usize> = vec![self.unlimited];
        order.extend((0..rank).filter(|&d| d != self.unlimited));
        let mut offsets = vec![0u64; rank];
        let mut rest = index;
        for (k, &d) in order.iter().enumerate().rev() {
            let c = self.chunk.get(d).copied().unwrap_or(1).max(1);
            let scaled = if k == 0 {
                rest
            } else {
                let g = self.shape.get(d).copied().unwrap_or(0).div_ceil(c).max(1);
                let s = rest % g;
                rest /= g;
                s
            };
            if let Some(slot) = offsets.get_mut(d) {
                *slot = scaled.saturating_mul(c);
            }
        }
        // Chunks past the current extent (left by a shrinking resize) hold no visible data.
        if offsets.iter().zip(self.shape).all(|(&o, &d)| o < d) {
            self.out.push(ChunkEntry { offsets, size, filter_mask, addr });
        }
    }
}
