//! Version-2 object headers ("OHDR" chunk plus "OCHK" continuation chunks).
//!
//! Messages are packed greedily into chunks of at most `CHUNK_BUDGET` bytes of messages; each
//! chunk but the last ends with a continuation message pointing at the next one, and the
//! chunks of one header are laid out back to back. That keeps every chunk under 64 KiB while a
//! header may hold any number of attributes or links.

use crate::h5::checksum::lookup3;
use super::messages::{continuation, Message, MSG_CONTINUATION};

/// Message bytes one chunk may hold (including message headers). A single message is at most
/// 4 + 65535 bytes, so it always fits an empty chunk with room for a continuation.
const CHUNK_BUDGET: usize = 65_600;
/// A message header in a version-2 object header: type (1), size (2), flags (1).
const MESSAGE_HEADER: usize = 4;
/// A continuation message with its header.
const CONTINUATION_SIZE: usize = MESSAGE_HEADER + 16;

/// Which messages go to which chunk, and each chunk's total size in bytes.
struct ChunkPlan {
    /// (first message, end message) per chunk
    ranges: Vec<(usize, usize)>,
    /// message bytes per chunk (continuation message included)
    areas: Vec<usize>,
    /// total bytes per chunk (signature, prefix, messages, checksum)
    sizes: Vec<u64>,
}

/// Width in bytes of chunk 0's size field, and the flag bits that announce it.
fn size_field(area: usize) -> (usize, u8) {
    if area <= 0xFF {
        (1, 0)
    } else if area <= 0xFFFF {
        (2, 1)
    } else if area <= 0xFFFF_FFFF {
        (4, 2)
    } else {
        (8, 3)
    }
}

fn plan_chunks(messages: &[Message]) -> ChunkPlan {
    let mut ranges = Vec::new();
    let mut start = 0;
    let mut used = 0;
    for (i, m) in messages.iter().enumerate() {
        let need = MESSAGE_HEADER + m.body.len();
        let reserve = if i + 1 < messages.len() { CONTINUATION_SIZE } else { 0 };
        if i > start && used + need + reserve > CHUNK_BUDGET {
            ranges.push((start, i));
            start = i;
            used = 0;
        }
        used += need;
    }
    ranges.push((start, messages.len()));
    let last = ranges.len() - 1;
    let areas: Vec<usize> = ranges
        .iter()
        .enumerate()
        .map(|(k, &(a, b))| {
            let area: usize = messages[a..b].iter().map(|m| MESSAGE_HEADER + m.body.len()).sum();
            if k < last {
                area + CONTINUATION_SIZE
            } else {
                area
            }
        })
        .collect();
    let sizes = areas
        .iter()
        .enumerate()
        .map(|(k, &area)| {
            // chunk 0: "OHDR", version, flags, size field; later chunks: "OCHK"; both + checksum
            let prefix = if k == 0 { 4 + 1 + 1 + size_field(area).0 } else { 4 };
            (prefix + area + 4) as u64
        })
        .collect();
    ChunkPlan { ranges, areas, sizes }
}

/// Total bytes of the header holding `messages`, all chunks included.
pub fn header_size(messages: &[Message]) -> u64 {
    plan_chunks(messages).sizes.iter().sum()
}

fn put_message(out: &mut Vec<u8>, kind: u8, flags: u8, body: &[u8]) {
    out.push(kind);
    // Bodies are at most 65535 bytes: attribute messages are checked when they are planned,
    // and every other message is small.
    out.extend_from_slice(&(body.len() as u16).to_le_bytes());
    out.push(flags);
    out.extend_from_slice(body);
}

/// Append the header holding `messages`, placed at file offset `address`, to `out`.
pub fn encode_header(messages: &[Message], address: u64, out: &mut Vec<u8>) {
    let plan = plan_chunks(messages);
    let mut chunk_address = address;
    let count = plan.ranges.len();
    for (k, &(a, b)) in plan.ranges.iter().enumerate() {
        let chunk_size = plan.sizes[k];
        let begin = out.len();
        if k == 0 {
            let area = plan.areas[0];
            let (width, flag) = size_field(area);
            out.extend_from_slice(b"OHDR");
            out.push(2); // version
            out.push(flag); // no times, no attribute creation order, no phase-change values
            out.extend_from_slice(&(area as u64).to_le_bytes()[..width]);
        } else {
            out.extend_from_slice(b"OCHK");
        }
        for m in &messages[a..b] {
            put_message(out, m.kind, m.flags, &m.body);
        }
        let next_address = chunk_address + chunk_size;
        if k + 1 < count {
            put_message(out, MSG_CONTINUATION, 0, &continuation(next_address, plan.sizes[k + 1]));
        }
        let sum = lookup3(&out[begin..], 0);
        out.extend_from_slice(&sum.to_le_bytes());
        debug_assert_eq!((out.len() - begin) as u64, chunk_size);
        chunk_address = next_address;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(len: usize) -> Message {
        Message::new(0x0C, vec![7u8; len])
    }

    #[test]
    fn small_header_layout_and_checksum() {
        let ms = vec![msg(3), msg(5)];
        let mut out = Vec::new();
        encode_header(&ms, 1000, &mut out);
        assert_eq!(out.len() as u64, header_size(&ms));
        assert_eq!(&out[..4], b"OHDR");
        assert_eq!(out[4], 2);
        assert_eq!(out[5], 0); // one-byte size field
        assert_eq!(out[6] as usize, 4 + 3 + 4 + 5);
        let body_end = out.len() - 4;
        assert_eq!(u32::from_le_bytes(out[body_end..].try_into().unwrap()), lookup3(&out[..body_end], 0));
    }

    #[test]
    fn two_byte_size_field() {
        let ms = vec![msg(300)];
        let mut out = Vec::new();
        encode_header(&ms, 0, &mut out);
        assert_eq!(out[5], 1);
        assert_eq!(u16::from_le_bytes([out[6], out[7]]), 304);
        assert_eq!(out.len() as u64, header_size(&ms));
    }

    #[test]
    fn many_messages_spill_into_continuation_chunks() {
        let ms: Vec<Message> = (0..100).map(|_| msg(2000)).collect();
        let mut out = Vec::new();
        encode_header(&ms, 4096, &mut out);
        assert_eq!(out.len() as u64, header_size(&ms));
        let plan = plan_chunks(&ms);
        assert!(plan.ranges.len() >= 4);
        // Chunk 0 ends with a continuation naming where chunk 1 starts and its length.
        let c0 = plan.sizes[0] as usize;
        assert!(c0 <= CHUNK_BUDGET + 16);
        let cont = &out[c0 - 4 - 16..c0 - 4];
        assert_eq!(u64::from_le_bytes(cont[..8].try_into().unwrap()), 4096 + c0 as u64);
        assert_eq!(u64::from_le_bytes(cont[8..].try_into().unwrap()), plan.sizes[1]);
        assert_eq!(&out[c0..c0 + 4], b"OCHK");
        let c1_end = c0 + plan.sizes[1] as usize;
        let sum = u32::from_le_bytes(out[c1_end - 4..c1_end].try_into().unwrap());
        assert_eq!(sum, lookup3(&out[c0..c1_end - 4], 0));
    }

    #[test]
    fn largest_message_fits_one_chunk() {
        let ms = vec![msg(10), msg(65_535), msg(65_535), msg(10)];
        let mut out = Vec::new();
        encode_header(&ms, 0, &mut out);
        assert_eq!(out.len() as u64, header_size(&ms));
        let plan = plan_chunks(&ms);
        assert_eq!(plan.ranges, vec![(0, 2), (2, 4)]);
        assert!(plan.areas.iter().all(|&a| a <= CHUNK_BUDGET));
    }
}
