//! Object headers (versions 1 and 2) and their continuation blocks, split into messages.
//!
//! A header is only parsed into (type, flags, body) triples here; each message kind is decoded
//! by the module that owns its concept.

use std::collections::HashSet;

use super::cursor::verify_checksum;
use super::superblock::Space;
use crate::error::{Error, Result};
use crate::storage::ByteRange;

pub(crate) const MSG_NIL: u16 = 0x0000;
pub(crate) const MSG_DATASPACE: u16 = 0x0001;
pub(crate) const MSG_LINK_INFO: u16 = 0x0002;
pub(crate) const MSG_DATATYPE: u16 = 0x0003;
pub(crate) const MSG_FILL_VALUE_OLD: u16 = 0x0004;
pub(crate) const MSG_FILL_VALUE: u16 = 0x0005;
pub(crate) const MSG_LINK: u16 = 0x0006;
pub(crate) const MSG_EXTERNAL_FILES: u16 = 0x0007;
pub(crate) const MSG_LAYOUT: u16 = 0x0008;
pub(crate) const MSG_GROUP_INFO: u16 = 0x000A;
pub(crate) const MSG_FILTERS: u16 = 0x000B;
pub(crate) const MSG_ATTRIBUTE: u16 = 0x000C;
pub(crate) const MSG_CONTINUATION: u16 = 0x0010;
pub(crate) const MSG_SYMBOL_TABLE: u16 = 0x0011;
pub(crate) const MSG_ATTRIBUTE_INFO: u16 = 0x0015;

/// Message flag: the body is a reference to a shared message stored elsewhere.
pub(crate) const FLAG_SHARED: u8 = 0x02;

/// A bound on messages per object, far above anything a real writer produces, so a hostile
/// header cannot make us build huge lists.
const MAX_MESSAGES: usize = 1 << 16;
const MAX_CHUNKS: usize = 1 << 12;

#[derive(Debug, Clone)]
pub(crate) struct Message {
    pub mtype: u16,
    pub flags: u8,
    pub body: ByteRange,
    /// Present when the object tracks the creation order of its attributes.
    pub creation_order: Option<u16>,
}

#[derive(Debug)]
pub(crate) struct ObjectHeader {
    pub messages: Vec<Message>,
}

impl ObjectHeader {
    pub fn parse(space: &Space, addr: u64) -> Result<ObjectHeader> {
        let head = space.tail(addr, "object header")?;
        let mut parser = Parser { space, messages: Vec::new(), seen_chunks: HashSet::new() };
        if head.bytes().starts_with(b"OHDR") {
            parser.parse_v2(&head)?;
        } else {
            parser.parse_v1(&head)?;
        }
        Ok(ObjectHeader { messages: parser.messages })
    }

    pub fn find(&self, mtype: u16) -> Option<&Message> {
        self.messages.iter().find(|m| m.mtype == mtype)
    }

    pub fn all(&self, mtype: u16) -> impl Iterator<Item = &Message> {
        self.messages.iter().filter(move |m| m.mtype == mtype)
    }
}

struct Parser<'s> {
    space: &'s Space,
    messages: Vec<Message>,
    seen_chunks: HashSet<u64>,
}

impl Parser<'_> {
    fn parse_v1(&mut self, head: &ByteRange) -> Result<()> {
        let mut c = self.space.cursor(head);
        let version = c.u8()?;
        if version != 1 {
            return Err(Error::corrupt(format!("object header: unknown version {version} (no OHDR signature either)")).at(head.start()));
        }
        c.skip(1)?;
        let _count = c.u16()?;
        let _refs = c.u32()?;
        let size = c.u32()? as u64;
        c.skip(4)?; // padding to an 8-byte boundary
        let first = c.range(size)?;
        let mut pending = vec![first];
        while let Some(chunk) = pending.pop() {
            self.count_chunk(chunk.start())?;
            let mut c = self.space.cursor(&chunk);
            // v1 messages: type(2) size(2) flags(1) reserved(3), 8-byte aligned bodies.
            while c.remaining() >= 8 {
                let mtype = c.u16()?;
                let len = c.u16()? as u64;
                let flags = c.u8()?;
                c.skip(3)?;
                let body = c.range(len)?;
                self.push(mtype, flags, body, None, &mut pending)?;
            }
        }
        Ok(())
    }

    fn parse_v2(&mut self, head: &ByteRange) -> Result<()> {
        let mut c = self.space.cursor(head);
        c.skip(4)?;
        let version = c.u8()?;
        if version != 2 {
            return Err(Error::unsupported(format!("object header version {version}")).at(head.start()));
        }
        let flags = c.u8()?;
        if flags & 0x20 != 0 {
            c.skip(16)?; // access, modification, change, birth times
        }
        if flags & 0x10 != 0 {
            c.skip(4)?; // attribute storage phase change values
        }
        let size = c.uint(1 << (flags & 0x03))?;
        let body_start = c.pos();
        let body_end = body_start.checked_add(size).ok_or_else(|| Error::corrupt("object header size overflows"))?;
        let whole = head.sub(0, body_end.checked_add(4).ok_or_else(|| Error::corrupt("object header size overflows"))?)
            .map_err(|e| Error::corrupt(format!("object header chunk runs past the end of the file: {}", e.message)).at(head.start()))?;
        verify_checksum(&whole, "object header")?;
        let track_order = flags & 0x04 != 0;
        let mut pending = vec![(whole.sub(body_start, size)?, track_order)];
        let mut conts = Vec::new();
        while let Some((chunk, track)) = pending.pop() {
            self.count_chunk(chunk.start())?;
            let mut c = self.space.cursor(&chunk);
            let header_len = if track { 6 } else { 4 };
            // A gap smaller than a message header may end the chunk.
            while c.remaining() >= header_len {
                let mtype = c.u8()? as u16;
                let len = c.u16()? as u64;
                let flags = c.u8()?;
                let order = if track { Some(c.u16()?) } else { None };
                let body = c.range(len)?;
                self.push(mtype, flags, body, order, &mut conts)?;
            }
            for block in conts.drain(..) {
                let mut c = self.space.cursor(&block);
                c.signature(b"OCHK", "object header continuation block")?;
                verify_checksum(&block, "object header continuation block")?;
                let inner = block.sub(4, block.len().saturating_sub(8))?;
                pending.push((inner, track));
            }
        }
        Ok(())
    }

    /// Record a message; a continuation message queues the block it points to.
    fn push(&mut self, mtype: u16, flags: u8, body: ByteRange, creation_order: Option<u16>, pending: &mut Vec<ByteRange>) -> Result<()> {
        if self.messages.len() >= MAX_MESSAGES {
            return Err(Error::refused(format!("object header has more than {MAX_MESSAGES} messages")).at(body.start()));
        }
        match mtype {
            MSG_NIL => {}
            MSG_CONTINUATION => {
                let mut c = self.space.cursor(&body);
                let addr = c.offset()?;
                let len = c.length()?;
                pending.push(self.space.block(addr, len, "object header continuation")?);
            }
            _ => self.messages.push(Message { mtype, flags, body, creation_order }),
        }
        Ok(())
    }

    fn count_chunk(&mut self, start: u64) -> Result<()> {
        if !self.seen_chunks.insert(start) {
            return Err(Error::corrupt("object header continuation chain loops back on itself").at(start));
        }
        if self.seen_chunks.len() > MAX_CHUNKS {
            return Err(Error::refused(format!("object header has more than {MAX_CHUNKS} continuation blocks")).at(start));
        }
        Ok(())
    }
}
