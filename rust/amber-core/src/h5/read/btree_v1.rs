//! Version-1 B-trees: the index of symbol-table groups (node type 0) and of chunked datasets
//! (node type 1). Walked in key order; depth, node count and cycles are bounded.

use std::collections::HashSet;

use super::superblock::Space;
use crate::error::{Error, Result};

const MAX_DEPTH: u8 = 64;
const MAX_NODES: usize = 1 << 20;

/// One chunk of a chunked dataset, as its B-tree key describes it.
#[derive(Debug, Clone)]
pub(crate) struct ChunkEntry {
    /// Element offsets of the chunk's first element, one per dataset dimension.
    pub offsets: Vec<u64>,
    /// Bytes stored (after filters).
    pub size: u64,
    /// Bit i set: filter i of the pipeline was skipped for this chunk.
    pub filter_mask: u32,
    pub addr: u64,
}

/// Addresses of the symbol table nodes of a group, in name order.
pub(crate) fn group_nodes(space: &Space, root: u64) -> Result<Vec<u64>> {
    let mut out = Vec::new();
    let key_size = space.sizes.lengths as u64;
    walk(space, root, 0, key_size, &mut |_key, child| {
        out.push(child);
        Ok(())
    })?;
    Ok(out)
}

/// Every chunk of a dataset of rank `rank` (keys carry `rank + 1` offsets; the last is the
/// byte offset within the element and always 0).
pub(crate) fn chunks(space: &Space, root: u64, rank: usize) -> Result<Vec<ChunkEntry>> {
    let mut out = Vec::new();
    let key_size = 8 + 8 * (rank as u64 + 1);
    walk(space, root, 1, key_size, &mut |key, child| {
        let mut c = space.cursor(key);
        let size = c.u32()? as u64;
        let filter_mask = c.u32()?;
        let mut offsets = Vec::with_capacity(rank);
        for _ in 0..rank {
            offsets.push(c.u64()?);
        }
        out.push(ChunkEntry { offsets, size, filter_mask, addr: child });
        Ok(())
    })?;
    Ok(out)
}

type Visit<'v> = dyn FnMut(&crate::storage::ByteRange, u64) -> Result<()> + 'v;

fn walk(space: &Space, root: u64, node_type: u8, key_size: u64, visit: &mut Visit<'_>) -> Result<()> {
    let mut seen = HashSet::new();
    walk_node(space, root, node_type, key_size, None, &mut seen, visit)
}

fn walk_node(
    space: &Space,
    addr: u64,
    node_type: u8,
    key_size: u64,
    expected_level: Option<u8>,
    seen: &mut HashSet<u64>,
    visit: &mut Visit<'_>,
) -> Result<()> {
    if !seen.insert(addr) {
        return Err(Error::corrupt(format!("B-tree node at address {addr} is reached twice (a cycle)")));
    }
    if seen.len() > MAX_NODES {
        return Err(Error::refused(format!("B-tree has more than {MAX_NODES} nodes")));
    }
    let o = space.sizes.offsets as u64;
    let head = space.block(addr, 8 + 2 * o, "B-tree node")?;
    let mut c = space.cursor(&head);
    c.signature(b"TREE", "B-tree node")?;
    let ntype = c.u8()?;
    let level = c.u8()?;
    let entries = c.u16()? as u64;
    if ntype != node_type {
        return Err(Error::corrupt(format!("B-tree node of type {ntype} where type {node_type} was expected")).at(head.start()));
    }
    if level > MAX_DEPTH || expected_level.is_some_and(|e| e != level) {
        return Err(Error::corrupt(format!("B-tree node at level {level} breaks the tree's depth")).at(head.start()));
    }
    // Keys and children interleave: key0 child0 key1 child1 ... keyN.
    let body_len = entries * (key_size + o) + key_size;
    let node = space.block(addr, 8 + 2 * o + body_len, "B-tree node")?;
    let mut c = space.cursor(&node);
    c.skip(8 + 2 * o)?;
    for _ in 0..entries {
        let key = c.range(key_size)?;
        let child = c.offset()?;
        if level == 0 {
            visit(&key, child)?;
        } else {
            walk_node(space, child, node_type, key_size, Some(level - 1), seen, visit)?;
        }
    }
    Ok(())
}
