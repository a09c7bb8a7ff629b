//! Version-2 B-trees: the name and creation-order indexes of dense link and attribute storage.
//! Only full traversal is needed (every record, in tree order).

use std::collections::HashSet;

use super::cursor::{bytes_for, verify_checksum};
use super::superblock::Space;
use crate::error::{Error, Result};
use crate::storage::ByteRange;

const MAX_DEPTH: u16 = 64;
/// Signature, version, type and checksum around every node's records.
const NODE_OVERHEAD: u64 = 10;

struct Header {
    tree_type: u8,
    node_size: u64,
    record_size: u64,
    /// Per depth: bytes of the "records in child" and "total records in subtree" fields.
    count_sizes: Vec<(u8, u8)>,
}

/// All records of the tree at `addr`, with the type the caller expects.
pub(crate) fn records(space: &Space, addr: u64, expected_type: u8) -> Result<Vec<ByteRange>> {
    let o = space.sizes.offsets as u64;
    let l = space.sizes.lengths as u64;
    let block = space.block(addr, 4 + 1 + 1 + 4 + 2 + 2 + 1 + 1 + o + 2 + l + 4, "v2 B-tree header")?;
    let mut c = space.cursor(&block);
    c.signature(b"BTHD", "v2 B-tree header")?;
    let version = c.u8()?;
    if version != 0 {
        return Err(Error::corrupt(format!("v2 B-tree header version {version}")).at(block.start()));
    }
    let tree_type = c.u8()?;
    if tree_type != expected_type {
        return Err(Error::corrupt(format!("v2 B-tree of type {tree_type} where type {expected_type} was expected")).at(block.start()));
    }
    let node_size = c.u32()? as u64;
    let record_size = c.u16()? as u64;
    let depth = c.u16()?;
    c.skip(2)?; // split and merge percents
    let root = c.offset()?;
    let root_records = c.u16()? as u64;
    let total = c.length()?;
    verify_checksum(&block, "v2 B-tree header")?;
    if depth > MAX_DEPTH {
        return Err(Error::corrupt(format!("v2 B-tree depth {depth} exceeds {MAX_DEPTH}")).at(block.start()));
    }
    if record_size == 0 || node_size <= NODE_OVERHEAD {
        return Err(Error::corrupt("v2 B-tree with empty records or nodes").at(block.start()));
    }
    // Every record must be stored somewhere in the file; this also bounds the list below.
    if total.saturating_mul(record_size) > space.data.len() {
        return Err(Error::corrupt(format!("v2 B-tree claims {total} records, more than the file can hold")).at(block.start()));
    }
    let header = Header { tree_type, node_size, record_size, count_sizes: count_sizes(node_size, record_size, o, depth)? };
    let mut out = Vec::new();
    if root == super::cursor::UNDEFINED || total == 0 {
        return Ok(out);
    }
    let mut seen = HashSet::new();
    walk(space, &header, root, depth, root_records, &mut seen, &mut out)?;
    if out.len() as u64 != total {
        return Err(Error::corrupt(format!("v2 B-tree holds {} records but its header says {total}", out.len())).at(block.start()));
    }
    Ok(out)
}

/// The widths of the child-count fields at each depth follow from how many records fit in a
/// node at that depth (the format stores them in the fewest bytes that can hold the maximum).
fn count_sizes(node_size: u64, record_size: u64, o: u64, depth: u16) -> Result<Vec<(u8, u8)>> {
    let mut sizes = Vec::with_capacity(depth as usize + 1);
    let leaf_max = (node_size - NODE_OVERHEAD) / record_size;
    let mut max_here = leaf_max;
    let mut cum_here = leaf_max;
    sizes.push((bytes_for(max_here), bytes_for(cum_here)));
    for d in 1..=depth {
        let (child_n, child_cum) = sizes.last().copied().unwrap_or((1, 1));
        let pointer = o + child_n as u64 + if d > 1 { child_cum as u64 } else { 0 };
        let avail = node_size.checked_sub(NODE_OVERHEAD + pointer).ok_or_else(|| Error::corrupt("v2 B-tree node too small for its pointers"))?;
        max_here = avail / (record_size + pointer);
        cum_here = max_here.saturating_add(1).saturating_mul(cum_here).saturating_add(max_here);
        sizes.push((bytes_for(max_here), bytes_for(cum_here)));
    }
    Ok(sizes)
}

fn walk(
    space: &Space,
    h: &Header,
    addr: u64,
    depth: u16,
    nrec: u64,
    seen: &mut HashSet<u64>,
    out: &mut Vec<ByteRange>,
) -> Result<()> {
    if !seen.insert(addr) {
        return Err(Error::corrupt(format!("v2 B-tree node at address {addr} is reached twice (a cycle)")));
    }
    let node = space.block(addr, h.node_size, "v2 B-tree node")?;
    let mut c = space.cursor(&node);
    let (sig, what) = if depth == 0 { (b"BTLF", "v2 B-tree leaf node") } else { (b"BTIN", "v2 B-tree internal node") };
    c.signature(sig, what)?;
    let _version = c.u8()?;
    let t = c.u8()?;
    if t != h.tree_type {
        return Err(Error::corrupt(format!("{what} of type {t} in a tree of type {}", h.tree_type)).at(node.start()));
    }
    let mut records = Vec::new();
    for _ in 0..nrec {
        records.push(c.range(h.record_size)?);
    }
    if depth == 0 {
        let end = c.pos();
        verify_checksum(&node.sub(0, end + 4)?, what)?;
        out.extend(records);
        return Ok(());
    }
    let (n_size, cum_size) = h.count_sizes.get(depth as usize - 1).copied().unwrap_or((1, 1));
    let mut children = Vec::new();
    for _ in 0..=nrec {
        let child = c.offset()?;
        let n = c.uint(n_size)?;
        if depth > 1 {
            c.uint(cum_size)?;
        }
        children.push((child, n));
    }
    let end = c.pos();
    verify_checksum(&node.sub(0, end + 4)?, what)?;
    // In-order: child 0, record 0, child 1, record 1, ..., child n.
    let mut records = records.into_iter();
    for (child, n) in children {
        walk(space, h, child, depth - 1, n, seen, out)?;
        if let Some(r) = records.next() {
            out.push(r);
        }
    }
    Ok(())
}
