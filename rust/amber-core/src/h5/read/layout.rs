//! Where a dataset's bytes are (data layout message) and how to get them out: compact (inside
//! the header), contiguous (one extent, handed out as a zero-copy range) and chunked (a v1
//! B-tree of chunks, a fixed or extensible array, a v2 B-tree, implicit or single chunk, each possibly deflated/shuffled, assembled into one
//! buffer).

use super::btree_v1::{self, ChunkEntry};
use super::extensible_array;
use super::fixed_array;
use super::cursor::{Cursor, UNDEFINED};
use super::filters::{self, Filter};
use super::superblock::Space;
use crate::error::{Error, Result};
use crate::storage::ByteRange;

/// A chunk may hold at most 4 GiB (the format stores chunk sizes in 32 bits).
const MAX_CHUNK_BYTES: u64 = u32::MAX as u64;
/// Deflate cannot compress better than about 1032:1; data declared larger than that ratio
/// over what is stored (plus room for small fill-only datasets) is refused before allocating.
const MAX_RATIO: u64 = 1032;
const FILL_ALLOWANCE: u64 = 16 << 20;

#[derive(Debug, Clone)]
pub(crate) enum Layout {
    Compact(ByteRange),
    Contiguous { addr: u64, size: u64 },
    /// Chunk shape (one entry per dataset dimension) and how the chunks are indexed.
    Chunked { chunk: Vec<u64>, index: ChunkIndex },
}

#[derive(Debug, Clone)]
pub(crate) enum ChunkIndex {
    BTreeV1(u64),
    Single { addr: u64, filtered_size: Option<u64>, mask: u32 },
    FixedArray(u64),
    ExtensibleArray(u64),
    /// Chunks stored back to back in grid order (unfiltered, allocated early).
    Implicit(u64),
    /// v2 B-tree of chunk records (datasets with more than one unlimited dimension).
    BTreeV2(u64),
}

impl Layout {
    pub fn parse(c: &mut Cursor<'_>) -> Result<Layout> {
        let at = c.abs();
        let version = c.u8()?;
        // Version 5 (HDF5 2.0 with libver 'latest') encodes these layouts as version 4 does.
        if !(3..=5).contains(&version) {
            return Err(Error::unsupported(format!("data layout message version {version} (written by HDF5 before 1.6)")).at(at));
        }
        let class = c.u8()?;
        match class {
            0 => {
                let size = c.u16()? as u64;
                Ok(Layout::Compact(c.range(size)?))
            }
            1 => Ok(Layout::Contiguous { addr: c.offset()?, size: c.length()? }),
            2 if version == 3 => {
                let dims = c.u8()?;
                let addr = c.offset()?;
                let mut chunk = Vec::new();
                for _ in 0..dims {
                    chunk.push(c.u32()? as u64);
                }
                chunk.pop(); // the last "dimension" is the element size
                Ok(Layout::Chunked { chunk, index: ChunkIndex::BTreeV1(addr) })
            }
            2 => {
                let flags = c.u8()?;
                let dims = c.u8()?;
                let width = c.u8()?;
                let mut chunk = Vec::new();
                for _ in 0..dims {
                    chunk.push(c.uint(width)?);
                }
                chunk.pop();
                let index_type = c.u8()?;
                let index = match index_type {
                    1 => {
                        let (filtered_size, mask) = if flags & 0x02 != 0 { (Some(c.length()?), c.u32()?) } else { (None, 0) };
                        ChunkIndex::Single { addr: c.offset()?, filtered_size, mask }
                    }
                    2 => ChunkIndex::Implicit(c.offset()?),
                    3 => {
                        c.skip(1)?; // page bits, repeated in the array's header
                        ChunkIndex::FixedArray(c.offset()?)
                    }
                    4 => {
                        c.skip(5)?; // array parameters, repeated in the array's header
                        ChunkIndex::ExtensibleArray(c.offset()?)
                    }
                    5 => {
                        c.skip(6)?; // node size, split and merge percents, repeated in the tree's header
                        ChunkIndex::BTreeV2(c.offset()?)
                    }
                    t => return Err(Error::corrupt(format!("unknown chunk index type {t}")).at(at)),
                };
                Ok(Layout::Chunked { chunk, index })
            }
            3 => Err(Error::unsupported("virtual dataset (data mapped from other datasets or files)").at(at)),
            k => Err(Error::corrupt(format!("unknown data layout class {k}")).at(at)),
        }
    }
}

/// The dataset's bytes as stored, in file byte order: a range into the input when they are
/// stored in one piece, else a decoded buffer.
pub(crate) enum Raw {
    Range(ByteRange),
    Owned(Vec<u8>),
}

pub(crate) fn read(
    space: &Space,
    layout: &Layout,
    pipeline: &[Filter],
    shape: &[u64],
    element_size: u64,
    fill: Option<&[u8]>,
    unlimited: Option<usize>,
) -> Result<Raw> {
    let count = shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d));
    let nbytes = count
        .and_then(|n| n.checked_mul(element_size))
        .ok_or_else(|| Error::corrupt(format!("shape {shape:?} overflows 64 bits of bytes")))?;
    match layout {
        Layout::Compact(data) => {
            if data.len() < nbytes {
                return Err(Error::corrupt(format!("compact data holds {} bytes, the shape needs {nbytes}", data.len())).at(data.start()));
            }
            Ok(Raw::Range(data.sub(0, nbytes)?))
        }
        Layout::Contiguous { addr, size } => {
            if *addr == UNDEFINED {
                return filled(nbytes, element_size, fill);
            }
            if *size < nbytes {
                return Err(Error::corrupt(format!("contiguous data holds {size} bytes, the shape needs {nbytes}")));
            }
            Ok(Raw::Range(space.block(*addr, nbytes, "dataset data")?))
        }
        Layout::Chunked { chunk, index } => {
            if chunk.len() != shape.len() {
                return Err(Error::corrupt(format!("chunk shape {chunk:?} does not match dataset shape {shape:?}")));
            }
            if chunk.contains(&0) {
                return Err(Error::corrupt(format!("chunk shape {chunk:?} has a zero dimension")));
            }
            let chunk_bytes = chunk
                .iter()
                .try_fold(element_size, |n, &d| n.checked_mul(d))
                .filter(|&n| n <= MAX_CHUNK_BYTES)
                .ok_or_else(|| Error::corrupt(format!("chunk shape {chunk:?} exceeds 4 GiB")))?;
            let entries = match index {
                ChunkIndex::BTreeV1(addr) if *addr == UNDEFINED => Vec::new(),
                ChunkIndex::BTreeV1(addr) => btree_v1::chunks(space, *addr, shape.len())?,
                ChunkIndex::FixedArray(addr) if *addr == UNDEFINED => Vec::new(),
                ChunkIndex::FixedArray(addr) => fixed_array::chunks(space, *addr, shape, chunk, chunk_bytes)?,
                ChunkIndex::Implicit(addr) | ChunkIndex::BTreeV2(addr) | ChunkIndex::ExtensibleArray(addr) if *addr == UNDEFINED => Vec::new(),
                ChunkIndex::ExtensibleArray(addr) => {
                    let dim = unlimited.unwrap_or(0);
                    extensible_array::chunks(space, *addr, shape, chunk, dim, chunk_bytes)?
                }
                ChunkIndex::Implicit(addr) => implicit_chunks(space, *addr, shape, chunk, chunk_bytes)?,
                ChunkIndex::BTreeV2(addr) => btree_v2_chunks(space, *addr, shape, chunk, chunk_bytes, !pipeline.is_empty())?,
                ChunkIndex::Single { addr, .. } if *addr == UNDEFINED => Vec::new(),
                ChunkIndex::Single { addr, filtered_size, mask } => {
                    vec![ChunkEntry { offsets: vec![0; shape.len()], size: filtered_size.unwrap_or(chunk_bytes), filter_mask: *mask, addr: *addr }]
                }
            };
            // Every chunk must lie in the file; chunks may overlap, so what they can decode to
            // is bounded by the file's size, not by the sum of what they claim.
            let mut stored: u64 = 0;
            for e in &entries {
                space.block(e.addr, e.size, "chunk")?;
                if !pipeline.is_empty() && chunk_bytes > e.size.saturating_mul(MAX_RATIO).saturating_add(4096) {
                    return Err(Error::refused(format!(
                        "a chunk of {} stored bytes claims to decode to {chunk_bytes} bytes",
                        e.size
                    )));
                }
                stored = stored.saturating_add(e.size);
            }
            let stored = stored.min(space.data.len());
            if nbytes > stored.saturating_mul(MAX_RATIO).saturating_add(FILL_ALLOWANCE) {
                return Err(Error::refused(format!(
                    "shape {shape:?} needs {nbytes} bytes but only {stored} bytes of chunks are stored"
                )));
            }
            assemble(space, &entries, pipeline, shape, chunk, element_size, chunk_bytes, nbytes, fill)
        }
    }
}

/// Offsets of the chunk with row-major grid index `i`.
pub(crate) fn grid_offsets(i: u64, shape: &[u64], chunk: &[u64]) -> Vec<u64> {
    let mut offsets = vec![0u64; shape.len()];
    let mut rest = i;
    for ((slot, &d), &c) in offsets.iter_mut().zip(shape).zip(chunk).rev() {
        let g = d.div_ceil(c).max(1);
        *slot = (rest % g) * c;
        rest /= g;
    }
    offsets
}

fn implicit_chunks(space: &Space, addr: u64, shape: &[u64], chunk: &[u64], chunk_bytes: u64) -> Result<Vec<ChunkEntry>> {
    let count = shape.iter().zip(chunk).try_fold(1u64, |n, (&d, &c)| n.checked_mul(d.div_ceil(c)));
    let count = count.ok_or_else(|| Error::corrupt(format!("chunk grid of shape {shape:?} overflows")))?;
    // The whole run of chunks must be in the file before any entry is listed.
    let total = count.checked_mul(chunk_bytes).ok_or_else(|| Error::corrupt("implicit chunk index overflows"))?;
    space.block(addr, total, "implicitly indexed chunks")?;
    (0..count)
        .map(|i| {
            let at = i.checked_mul(chunk_bytes).and_then(|o| o.checked_add(addr));
            let at = at.ok_or_else(|| Error::corrupt("implicit chunk address overflows"))?;
            Ok(ChunkEntry { offsets: grid_offsets(i, shape, chunk), size: chunk_bytes, filter_mask: 0, addr: at })
        })
        .collect()
}

/// Records of type 10 (address, scaled offsets) or 11 (address, stored size, filter mask,
/// scaled offsets); scaled offsets count chunks, not elements.
fn btree_v2_chunks(space: &Space, addr: u64, shape: &[u64], chunk: &[u64], chunk_bytes: u64, filtered: bool) -> Result<Vec<ChunkEntry>> {
    let record_type = if filtered { 11 } else { 10 };
    let o = space.sizes.offsets as u64;
    let rank = shape.len() as u64;
    let mut out = Vec::new();
    for record in super::btree_v2::records(space, addr, record_type)? {
        let mut c = space.cursor(&record);
        let at = c.offset()?;
        let (size, filter_mask) = if filtered {
            let width = record.len().checked_sub(o + 4 + 8 * rank).filter(|w| (1..=8).contains(w));
            let width = width.ok_or_else(|| Error::corrupt("v2 B-tree chunk record has the wrong size").at(record.start()))?;
            (c.uint(width as u8)?, c.u32()?)
        } else {
            (chunk_bytes, 0)
        };
        let mut offsets = Vec::with_capacity(shape.len());
        for &cd in chunk {
            offsets.push(c.u64()?.checked_mul(cd).ok_or_else(|| Error::corrupt("chunk offset overflows").at(record.start()))?);
        }
        if at != UNDEFINED {
            out.push(ChunkEntry { offsets, size, filter_mask, addr: at });
        }
    }
    Ok(out)
}

fn filled(nbytes: u64, element_size: u64, fill: Option<&[u8]>) -> Result<Raw> {
    if nbytes > FILL_ALLOWANCE {
        return Err(Error::refused(format!("dataset of {nbytes} bytes has no stored data")));
    }
    Ok(Raw::Owned(fill_buffer(nbytes as usize, element_size, fill)))
}

fn fill_buffer(nbytes: usize, element_size: u64, fill: Option<&[u8]>) -> Vec<u8> {
    match fill {
        Some(v) if v.len() as u64 == element_size && v.iter().any(|&b| b != 0) => v.iter().copied().cycle().take(nbytes).collect(),
        _ => vec![0u8; nbytes],
    }
}

#[allow(clippy::too_many_arguments)]
fn assemble(
    space: &Space,
    entries: &[ChunkEntry],
    pipeline: &[Filter],
    shape: &[u64],
    chunk: &[u64],
    es: u64,
    chunk_bytes: u64,
    nbytes: u64,
    fill: Option<&[u8]>,
) -> Result<Raw> {
    let mut out = fill_buffer(nbytes as usize, es, fill);
    let rank = shape.len();
    // Row-major strides in bytes of the dataset and of one chunk.
    let mut dstride = vec![es; rank];
    let mut cstride = vec![es; rank];
    for i in (0..rank.saturating_sub(1)).rev() {
        let (dn, cn) = (dstride.get(i + 1).copied().unwrap_or(es), cstride.get(i + 1).copied().unwrap_or(es));
        if let (Some(d), Some(c)) = (dstride.get_mut(i), cstride.get_mut(i)) {
            *d = dn * shape.get(i + 1).copied().unwrap_or(1);
            *c = cn * chunk.get(i + 1).copied().unwrap_or(1);
        }
    }
    for e in entries {
        for ((&o, &d), &c) in e.offsets.iter().zip(shape).zip(chunk) {
            if o >= d || o % c != 0 {
                return Err(Error::corrupt(format!("chunk at offsets {:?} lies outside shape {shape:?} or off the chunk grid", e.offsets)));
            }
        }
        let stored = space.block(e.addr, e.size, "chunk")?;
        let decoded;
        let bytes: &[u8] = if pipeline.is_empty() {
            if e.size < chunk_bytes {
                return Err(Error::corrupt(format!("chunk holds {} bytes, expected {chunk_bytes}", e.size)).at(stored.start()));
            }
            stored.bytes().get(..chunk_bytes as usize).unwrap_or(&[])
        } else {
            decoded = filters::decode(pipeline, e.filter_mask, stored.bytes(), chunk_bytes as usize).map_err(|err| err.at(stored.start()))?;
            &decoded
        };
        copy_chunk(bytes, &mut out, &e.offsets, shape, chunk, &dstride, &cstride, es);
    }
    Ok(Raw::Owned(out))
}

/// Copy the part of one decoded chunk that lies inside the dataset, one innermost run at a time.
#[allow(clippy::too_many_arguments)]
fn copy_chunk(src: &[u8], dst: &mut [u8], offsets: &[u64], shape: &[u64], chunk: &[u64], dstride: &[u64], cstride: &[u64], es: u64) {
    let rank = shape.len();
    let Some(last) = rank.checked_sub(1) else { return };
    let extent: Vec<u64> = (0..rank)
        .map(|i| {
            let (o, d, c) = (offsets.get(i).copied().unwrap_or(0), shape.get(i).copied().unwrap_or(0), chunk.get(i).copied().unwrap_or(0));
            c.min(d.saturating_sub(o))
        })
        .collect();
    let run = (extent.get(last).copied().unwrap_or(0) * es) as usize;
    let mut idx = vec![0u64; last];
    if extent.iter().take(last).any(|&n| n == 0) {
        return;
    }
    loop {
        let mut s = 0u64;
        let mut d = offsets.get(last).copied().unwrap_or(0) * es;
        for (i, &k) in idx.iter().enumerate() {
            s += k * cstride.get(i).copied().unwrap_or(0);
            d += (offsets.get(i).copied().unwrap_or(0) + k) * dstride.get(i).copied().unwrap_or(0);
        }
        if let (Some(from), Some(to)) = (src.get(s as usize..s as usize + run), dst.get_mut(d as usize..d as usize + run)) {
            to.copy_from_slice(from);
        }
        // Advance the multi-index over the leading dimensions.
        let mut i = last;
        loop {
            if i == 0 {
                return;
            }
            i -= 1;
            if let (Some(k), Some(&n)) = (idx.get_mut(i), extent.get(i)) {
                *k += 1;
                if *k < n {
                    break;
                }
                *k = 0;
            }
        }
    }
}

/// The fill value message's value, if the dataset defines one.
pub(crate) fn fill_value(c: &mut Cursor<'_>) -> Result<Option<Vec<u8>>> {
    let version = c.u8()?;
    let value = match version {
        1 | 2 => {
            c.skip(2)?;
            let defined = c.u8()?;
            if version == 2 && defined == 0 {
                return Ok(None);
            }
            let size = c.u32()? as u64;
            c.bytes(size)?.to_vec()
        }
        3 => {
            let flags = c.u8()?;
            if flags & 0x20 == 0 {
                return Ok(None);
            }
            let size = c.u32()? as u64;
            c.bytes(size)?.to_vec()
        }
        v => return Err(Error::unsupported(format!("fill value message version {v}")).at(c.abs())),
    };
    Ok(if value.is_empty() { None } else { Some(value) })
}
