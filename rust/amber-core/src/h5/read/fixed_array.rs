//! Fixed-array chunk index (layout versions 4 and 5, written with libver 'latest' for chunked
//! datasets of fixed shape): one address (plus stored size and filter mask when filtered) per
//! chunk, in row-major order of the chunk grid, possibly split into checksummed pages.

use super::btree_v1::ChunkEntry;
use super::cursor::{verify_checksum, UNDEFINED};
use super::superblock::Space;
use crate::error::{Error, Result};

pub(crate) fn chunks(space: &Space, addr: u64, shape: &[u64], chunk: &[u64], chunk_bytes: u64) -> Result<Vec<ChunkEntry>> {
    let o = space.sizes.offsets as u64;
    let l = space.sizes.lengths as u64;
    let head = space.block(addr, 4 + 4 + l + o + 4, "fixed array header")?;
    verify_checksum(&head, "fixed array header")?;
    let mut c = space.cursor(&head);
    c.signature(b"FAHD", "fixed array header")?;
    let version = c.u8()?;
    let client = c.u8()?;
    let entry_size = c.u8()? as u64;
    let page_bits = c.u8()?;
    let count = c.length()?;
    let data_addr = c.offset()?;
    if version != 0 || client > 1 || page_bits > 32 {
        return Err(Error::corrupt(format!("fixed array header (version {version}, client {client}, page bits {page_bits})")).at(head.start()));
    }
    let grid: Vec<u64> = shape.iter().zip(chunk).map(|(&d, &c)| d.div_ceil(c)).collect();
    let expected = grid.iter().try_fold(1u64, |n, &g| n.checked_mul(g)).unwrap_or(u64::MAX);
    if count != expected {
        return Err(Error::corrupt(format!("fixed array holds {count} chunks, the chunk grid {grid:?} has {expected}")).at(head.start()));
    }
    let filtered = client == 1;
    let size_bytes = if filtered {
        entry_size.checked_sub(o + 4).filter(|&n| (1..=8).contains(&n)).ok_or_else(|| Error::corrupt("fixed array entry size").at(head.start()))?
    } else {
        if entry_size != o {
            return Err(Error::corrupt("fixed array entry size").at(head.start()));
        }
        0
    };
    let entries_bytes = count.checked_mul(entry_size).filter(|&n| n <= space.data.len()).ok_or_else(|| {
        Error::corrupt(format!("fixed array of {count} entries cannot fit in the file")).at(head.start())
    })?;
    let page = 1u64 << page_bits;
    let pages = count.div_ceil(page);
    let prefix = 4 + 1 + 1 + o;
    let mut out = Vec::new();
    let mut read_entries = |c: &mut super::cursor::Cursor<'_>, first: u64, n: u64| -> Result<()> {
        for i in first..first + n {
            let addr = c.offset()?;
            let (size, mask) = if filtered { (c.uint(size_bytes as u8)?, c.u32()?) } else { (chunk_bytes, 0) };
            if addr == UNDEFINED {
                continue; // never written: reads as the fill value
            }
            out.push(ChunkEntry { offsets: super::layout::grid_offsets(i, shape, chunk), size, filter_mask: mask, addr });
        }
        Ok(())
    };
    if pages <= 1 {
        let block = space.block(data_addr, prefix + entries_bytes + 4, "fixed array data block")?;
        verify_checksum(&block, "fixed array data block")?;
        let mut c = space.cursor(&block);
        c.signature(b"FADB", "fixed array data block")?;
        c.skip(2 + o)?;
        read_entries(&mut c, 0, count)?;
    } else {
        let bitmap = pages.div_ceil(8);
        let head = space.block(data_addr, prefix + bitmap + 4, "fixed array data block")?;
        verify_checksum(&head, "fixed array data block")?;
        let mut c = space.cursor(&head);
        c.signature(b"FADB", "fixed array data block")?;
        c.skip(2 + o)?;
        let bits = c.bytes(bitmap)?;
        let mut at = data_addr + prefix + bitmap + 4;
        for p in 0..pages {
            let n = page.min(count - p * page);
            let len = n * entry_size + 4;
            let initialised = bits.get((p / 8) as usize).is_some_and(|b| b & (0x80 >> (p % 8)) != 0);
            if initialised {
                let block = space.block(at, len, "fixed array page")?;
                verify_checksum(&block, "fixed array page")?;
                let mut c = space.cursor(&block);
                read_entries(&mut c, p * page, n)?;
            }
            at += len;
        }
    }
    Ok(out)
}
