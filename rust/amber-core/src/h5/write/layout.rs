//! Where every byte of the file goes. The file is laid out as
//!
//! ```text
//! superblock (v2, 48 bytes) | object headers, root first, in plan order
//! | global heap collections | dataset data, each start aligned to 64 bytes
//! ```
//!
//! Metadata first and data last lets the writer emit the file in one sequential pass and keeps
//! the metadata a reader needs in the first pages. Message sizes do not depend on addresses, so
//! the layout is computed in two passes: size everything with placeholder addresses, assign
//! offsets, then encode for real.

use crate::h5::checksum::lookup3;
use super::global_heap::{GlobalHeap, HeapRef};
use super::messages::{self, Message, UNDEFINED_ADDRESS};
use super::object_header::{encode_header, header_size};
use super::plan::{AttrData, Body, Node};

/// Dataset data starts at multiples of this, so mapped views are aligned for any dtype and SIMD.
pub const DATA_ALIGNMENT: u64 = 64;
const SUPERBLOCK_SIZE: u64 = 48;
const SIGNATURE: &[u8; 8] = b"\x89HDF\r\n\x1a\n";

/// One dataset's bytes and the file offset they go to.
pub struct Placement<'a> {
    pub offset: u64,
    pub data: &'a [u8],
}

/// The complete file: encoded metadata (offset 0 onwards) and the data placements after it.
pub struct FileImage<'a> {
    pub metadata: Vec<u8>,
    pub data: Vec<Placement<'a>>,
    pub size: u64,
}

fn align(offset: u64, to: u64) -> u64 {
    offset.div_ceil(to) * to
}

/// Addresses of everything the messages point at.
struct Addresses {
    headers: Vec<u64>,
    collections: Vec<u64>,
    data: Vec<u64>,
}

/// The messages of node `id`'s object header.
fn node_messages(nodes: &[Node<'_>], id: usize, heap_refs: &[Option<HeapRef>], at: &Addresses) -> Vec<Message> {
    let Some(node) = nodes.get(id) else { return Vec::new() };
    let mut out = Vec::new();
    match &node.body {
        Body::Group { members } => {
            out.push(Message::new(messages::MSG_LINK_INFO, messages::link_info()));
            out.push(Message::new(messages::MSG_GROUP_INFO, messages::group_info()));
            for (name, child) in members {
                let target = at.headers.get(*child).copied().unwrap_or(UNDEFINED_ADDRESS);
                out.push(Message::new(messages::MSG_LINK, messages::hard_link(name, target)));
            }
        }
        Body::Dataset { stored, shape, data } => {
            out.push(Message::new(messages::MSG_DATASPACE, messages::dataspace(shape)));
            out.push(Message::constant(messages::MSG_DATATYPE, stored.encode()));
            out.push(Message::constant(messages::MSG_FILL_VALUE, messages::default_fill_value()));
            let address = at.data.get(id).copied().unwrap_or(UNDEFINED_ADDRESS);
            out.push(Message::new(messages::MSG_LAYOUT, messages::contiguous_layout(address, data.len() as u64)));
        }
    }
    out.push(Message::new(messages::MSG_ATTRIBUTE_INFO, messages::attribute_info()));
    for (attr, heap_ref) in node.attrs.iter().zip(heap_refs) {
        let (address, index) = match heap_ref {
            Some(r) => (at.collections.get(r.collection).copied().unwrap_or(UNDEFINED_ADDRESS), r.index),
            None => (UNDEFINED_ADDRESS, 0),
        };
        // Encoding was checked when the attribute was planned, and the size of the body does
        // not depend on the address, so this cannot fail here.
        match attr.message_body(address, index) {
            Ok(body) => out.push(Message::new(messages::MSG_ATTRIBUTE, body)),
            Err(e) => debug_assert!(false, "planned attribute failed to encode: {e}"),
        }
    }
    out
}

fn superblock(end_of_file: u64, root: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(SUPERBLOCK_SIZE as usize);
    out.extend_from_slice(SIGNATURE);
    // version 2, 8-byte offsets, 8-byte lengths, no consistency flags
    out.extend_from_slice(&[2, 8, 8, 0]);
    out.extend_from_slice(&0u64.to_le_bytes()); // base address
    out.extend_from_slice(&UNDEFINED_ADDRESS.to_le_bytes()); // no superblock extension
    out.extend_from_slice(&end_of_file.to_le_bytes());
    out.extend_from_slice(&root.to_le_bytes());
    let sum = lookup3(&out, 0);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

pub fn lay_out<'a>(nodes: &[Node<'a>]) -> FileImage<'a> {
    // Variable-length strings into the global heap, in plan order.
    let mut heap = GlobalHeap::default();
    let heap_refs: Vec<Vec<Option<HeapRef>>> = nodes
        .iter()
        .map(|n| {
            n.attrs
                .iter()
                .map(|a| match &a.data {
                    AttrData::VlenStr(s) => Some(heap.insert(s.as_bytes())),
                    AttrData::Inline(_) => None,
                })
                .collect()
        })
        .collect();

    // Pass 1: sizes, with every address a placeholder.
    let mut at = Addresses {
        headers: vec![0; nodes.len()],
        collections: vec![0; heap.collection_count()],
        data: vec![0; nodes.len()],
    };
    let mut cursor = SUPERBLOCK_SIZE;
    for (id, refs) in heap_refs.iter().enumerate() {
        let size = header_size(&node_messages(nodes, id, refs, &at));
        at.headers[id] = cursor;
        cursor += size;
    }
    cursor = align(cursor, 8);
    for k in 0..heap.collection_count() {
        at.collections[k] = cursor;
        cursor += heap.collection_size(k);
    }
    let metadata_end = cursor;
    let mut placements = Vec::new();
    for (id, node) in nodes.iter().enumerate() {
        if let Body::Dataset { data, .. } = &node.body {
            if data.is_empty() {
                at.data[id] = UNDEFINED_ADDRESS; // nothing stored: HDF5 reads it as empty/fill
            } else {
                cursor = align(cursor, DATA_ALIGNMENT);
                at.data[id] = cursor;
                placements.push(Placement { offset: cursor, data });
                cursor += data.len() as u64;
            }
        }
    }
    let size = cursor;

    // Pass 2: encode with the real addresses.
    let mut metadata = Vec::with_capacity(metadata_end as usize);
    metadata.extend_from_slice(&superblock(size, at.headers.first().copied().unwrap_or(SUPERBLOCK_SIZE)));
    for (id, (refs, &address)) in heap_refs.iter().zip(&at.headers).enumerate() {
        encode_header(&node_messages(nodes, id, refs, &at), address, &mut metadata);
    }
    metadata.resize(align(metadata.len() as u64, 8) as usize, 0);
    for k in 0..heap.collection_count() {
        heap.encode_collection(k, &mut metadata);
    }
    debug_assert_eq!(metadata.len() as u64, metadata_end);
    FileImage { metadata, data: placements, size }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn superblock_layout() {
        let sb = superblock(1234, 48);
        assert_eq!(sb.len(), 48);
        assert_eq!(&sb[..8], SIGNATURE);
        assert_eq!(sb[8], 2);
        assert_eq!(u64::from_le_bytes(sb[28..36].try_into().unwrap()), 1234);
        assert_eq!(u32::from_le_bytes(sb[44..48].try_into().unwrap()), lookup3(&sb[..44], 0));
    }

    #[test]
    fn alignment() {
        assert_eq!(align(0, 64), 0);
        assert_eq!(align(1, 64), 64);
        assert_eq!(align(128, 64), 128);
    }
}
