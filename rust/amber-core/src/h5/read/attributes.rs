//! Attributes of groups and datasets: attribute messages in the object header (compact) or
//! in a fractal heap indexed by a v2 B-tree (dense, past 8 attributes or with libver latest).

use super::btree_v2;
use super::cursor::UNDEFINED;
use super::dataspace::Dataspace;
use super::datatype::Datatype;
use super::fractal_heap::FractalHeap;
use super::object_header::{Message, ObjectHeader, FLAG_SHARED, MSG_ATTRIBUTE, MSG_ATTRIBUTE_INFO};
use super::superblock::Space;
use super::values::attr_value;
use crate::error::{Error, Result};
use crate::h5::AttrValue;
use crate::storage::ByteRange;

/// Type of the v2 B-tree indexing dense attributes by name hash.
const BTREE_ATTR_NAMES: u8 = 8;

/// All attributes, in name order, or creation order when the object tracks it.
pub(crate) fn attributes(space: &Space, h: &ObjectHeader) -> Result<Vec<(String, AttrValue)>> {
    let mut found: Vec<(Option<u64>, String, AttrValue)> = Vec::new();
    for msg in h.all(MSG_ATTRIBUTE) {
        let (name, value) = parse(space, msg)?;
        found.push((msg.creation_order.map(u64::from), name, value));
    }
    if let Some(info) = h.find(MSG_ATTRIBUTE_INFO) {
        let mut c = space.cursor(&info.body);
        let version = c.u8()?;
        if version != 0 {
            return Err(Error::corrupt(format!("attribute info message version {version}")).at(info.body.start()));
        }
        let flags = c.u8()?;
        let tracked = flags & 0x01 != 0;
        if tracked {
            c.skip(2)?; // maximum creation index
        }
        let heap_addr = c.offset()?;
        let names = c.offset()?;
        if heap_addr != UNDEFINED {
            let heap = FractalHeap::parse(space, heap_addr)?;
            for record in btree_v2::records(space, names, BTREE_ATTR_NAMES)? {
                // Record: heap ID (8 bytes), message flags (1), creation order (4), name hash (4).
                let mut c = space.cursor(&record);
                let id = c.bytes(8)?;
                let flags = c.u8()?;
                let order = c.u32()?;
                if flags & FLAG_SHARED != 0 {
                    return Err(Error::unsupported("shared attribute message").at(record.start()));
                }
                let body = heap.object(id)?;
                let msg = Message { mtype: MSG_ATTRIBUTE, flags: 0, body, creation_order: None };
                let (name, value) = parse(space, &msg)?;
                found.push((tracked.then_some(order as u64), name, value));
            }
        }
    }
    if found.iter().all(|(o, _, _)| o.is_some()) {
        found.sort_by_key(|(o, _, _)| *o);
    } else {
        found.sort_by(|a, b| a.1.as_bytes().cmp(b.1.as_bytes()));
    }
    Ok(found.into_iter().map(|(_, n, v)| (n, v)).collect())
}

fn parse(space: &Space, msg: &Message) -> Result<(String, AttrValue)> {
    if msg.flags & FLAG_SHARED != 0 {
        return Err(Error::unsupported("shared attribute message").at(msg.body.start()));
    }
    let mut c = space.cursor(&msg.body);
    let version = c.u8()?;
    let flags = c.u8()?;
    let name_len = c.u16()? as u64;
    let dt_len = c.u16()? as u64;
    let ds_len = c.u16()? as u64;
    if version == 3 {
        c.skip(1)?; // name character set
    } else if version != 1 && version != 2 {
        return Err(Error::unsupported(format!("attribute message version {version}")).at(msg.body.start()));
    }
    if version >= 2 && flags & 0x03 != 0 {
        return Err(Error::unsupported("attribute with a shared (committed) datatype or dataspace").at(msg.body.start()));
    }
    let pad = |n: u64| if version == 1 { n.div_ceil(8) * 8 } else { n };
    let raw_name = c.bytes(name_len)?;
    c.skip(pad(name_len) - name_len)?;
    let name = String::from_utf8(raw_name.split(|&b| b == 0).next().unwrap_or(&[]).to_vec())
        .map_err(|_| Error::corrupt("attribute name is not valid UTF-8").at(msg.body.start()))?;
    let dt_range: ByteRange = c.range(dt_len)?;
    c.skip(pad(dt_len) - dt_len)?;
    let ds_range = c.range(ds_len)?;
    c.skip(pad(ds_len) - ds_len)?;
    let data = c.range(c.remaining())?;
    let value = (|| {
        let dt = Datatype::parse(&mut space.cursor(&dt_range))?;
        let ds = Dataspace::parse(&mut space.cursor(&ds_range))?;
        attr_value(space, &dt, &ds, &data)
    })()
    .map_err(|e| Error { message: format!("attribute '{name}': {}", e.message), ..e })?;
    Ok((name, value))
}

