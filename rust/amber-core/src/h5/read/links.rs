//! Group membership in its three encodings: symbol tables (v1 B-tree + local heap + symbol
//! table nodes), compact link messages in the object header, and dense links (fractal heap
//! indexed by a v2 B-tree). All three produce the same list of links, in the file's order.

use super::btree_v1;
use super::btree_v2;
use super::cursor::Cursor;
use super::fractal_heap::FractalHeap;
use super::heaps::LocalHeap;
use super::object_header::{ObjectHeader, MSG_GROUP_INFO, MSG_LINK, MSG_LINK_INFO, MSG_SYMBOL_TABLE};
use super::superblock::Space;
use crate::error::{Error, Result};
use crate::storage::ByteRange;

/// Type of the v2 B-tree indexing dense links by name hash.
const BTREE_LINK_NAMES: u8 = 5;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Hard(u64),
    Soft(String),
    External,
}

#[derive(Debug, Clone)]
pub(crate) struct Link {
    pub name: String,
    pub target: Target,
    pub creation_order: Option<u64>,
}

/// Whether an object header describes a group.
pub(crate) fn is_group(h: &ObjectHeader) -> bool {
    [MSG_SYMBOL_TABLE, MSG_LINK_INFO, MSG_LINK, MSG_GROUP_INFO].iter().any(|&t| h.find(t).is_some())
}

/// The links of a group, in link order: B-tree (name) order for symbol tables; creation order
/// when the group tracks it, else name order, for link-message groups.
pub(crate) fn links(space: &Space, h: &ObjectHeader) -> Result<Vec<Link>> {
    if let Some(msg) = h.find(MSG_SYMBOL_TABLE) {
        let mut c = space.cursor(&msg.body);
        let btree = c.offset()?;
        let heap = c.offset()?;
        return symbol_table(space, btree, heap);
    }
    let mut out = Vec::new();
    if let Some(msg) = h.find(MSG_LINK_INFO) {
        let mut c = space.cursor(&msg.body);
        let version = c.u8()?;
        if version != 0 {
            return Err(Error::corrupt(format!("link info message version {version}")).at(msg.body.start()));
        }
        let flags = c.u8()?;
        if flags & 0x01 != 0 {
            c.skip(8)?; // maximum creation index
        }
        let heap_addr = c.offset()?;
        let names = c.offset()?;
        if heap_addr != super::cursor::UNDEFINED {
            let heap = FractalHeap::parse(space, heap_addr)?;
            for record in btree_v2::records(space, names, BTREE_LINK_NAMES)? {
                // Record: name hash (4 bytes), then the heap ID of the link message.
                let id = record.bytes().get(4..).unwrap_or(&[]);
                let object = heap.object(id)?;
                out.push(parse_link(space, &object)?);
            }
        }
    }
    for msg in h.all(MSG_LINK) {
        out.push(parse_link(space, &msg.body)?);
    }
    if out.iter().all(|l| l.creation_order.is_some()) {
        out.sort_by_key(|l| l.creation_order);
    } else {
        out.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    }
    Ok(out)
}

fn symbol_table(space: &Space, btree: u64, heap_addr: u64) -> Result<Vec<Link>> {
    let heap = LocalHeap::parse(space, heap_addr)?;
    let o = space.sizes.offsets as u64;
    let entry_size = 2 * o + 4 + 4 + 16;
    let mut out = Vec::new();
    for node_addr in btree_v1::group_nodes(space, btree)? {
        let head = space.block(node_addr, 8, "symbol table node")?;
        let mut c = space.cursor(&head);
        c.signature(b"SNOD", "symbol table node")?;
        let version = c.u8()?;
        if version != 1 {
            return Err(Error::corrupt(format!("symbol table node version {version}")).at(head.start()));
        }
        c.skip(1)?;
        let count = c.u16()? as u64;
        let node = space.block(node_addr, 8 + count * entry_size, "symbol table node")?;
        let mut c = space.cursor(&node);
        c.skip(8)?;
        for _ in 0..count {
            let name_offset = c.offset()?;
            let header = c.offset()?;
            let cache_type = c.u32()?;
            c.skip(4)?;
            let scratch = c.range(16)?;
            let name = heap.name(name_offset)?;
            let target = if cache_type == 2 {
                // Soft link: the scratch pad holds the heap offset of its value.
                let value_offset = Cursor::new(&scratch, space.sizes).u32()? as u64;
                Target::Soft(heap.name(value_offset)?)
            } else {
                Target::Hard(header)
            };
            out.push(Link { name, target, creation_order: None });
        }
    }
    Ok(out)
}

/// A link message (in an object header or a fractal heap).
fn parse_link(space: &Space, body: &ByteRange) -> Result<Link> {
    let mut c = space.cursor(body);
    let version = c.u8()?;
    if version != 1 {
        return Err(Error::corrupt(format!("link message version {version}")).at(body.start()));
    }
    let flags = c.u8()?;
    let link_type = if flags & 0x08 != 0 { c.u8()? } else { 0 };
    let creation_order = if flags & 0x04 != 0 { Some(c.u64()?) } else { None };
    if flags & 0x10 != 0 {
        c.skip(1)?; // name character set
    }
    let name_len = c.uint(1 << (flags & 0x03))?;
    let name = String::from_utf8(c.bytes(name_len)?.to_vec())
        .map_err(|_| Error::corrupt("link name is not valid UTF-8").at(body.start()))?;
    let target = match link_type {
        0 => Target::Hard(c.offset()?),
        1 => {
            let len = c.u16()? as u64;
            Target::Soft(String::from_utf8_lossy(c.bytes(len)?).into_owned())
        }
        64 => Target::External,
        t => return Err(Error::unsupported(format!("user-defined link type {t} for '{name}'")).at(body.start())),
    };
    Ok(Link { name, target, creation_order })
}
