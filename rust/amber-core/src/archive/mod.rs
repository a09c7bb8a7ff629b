//! Zip archives (`.keras` files): a validated entry table over a mapped file.
//!
//! The `zip` crate parses the end-of-central-directory records (zip64 included) and the
//! central directory. Local headers are parsed here: the crate does not report where they
//! disagree with the central directory in a way we can locate (offset, field), and the data
//! offset of each entry is what zero-copy views need. Every entry is checked once on open, so
//! later reads only slice ranges that are known to be inside the file and disjoint.

mod write;
pub(crate) mod writeback;

pub use write::ArchiveWriter;

use std::collections::HashMap;
use std::io::{Cursor, Read};
use std::path::Path;

use zip::CompressionMethod;

use crate::error::{Error, Result, ResultExt};
use crate::storage::{ByteRange, Storage};

/// More entries than any Keras file has; bounds the work an archive can ask for on open.
pub const MAX_ENTRIES: usize = 10_000;
/// Declared sizes above this must also stay within `MAX_RATIO` of their compressed size.
pub const BOMB_MIN_SIZE: u64 = 1 << 30;
/// Deflate tops out near 1032:1, so a larger declared ratio is a lie or a bomb.
pub const MAX_RATIO: u64 = 1000;

const LOCAL_HEADER_SIG: u32 = 0x0403_4b50;
const CENTRAL_HEADER_SIG: u32 = 0x0201_4b50;
const LOCAL_HEADER_LEN: u64 = 30;
const ZIP64_EXTRA_ID: u16 = 0x0001;
const FLAG_ENCRYPTED: u16 = 1;
const FLAG_DATA_DESCRIPTOR: u16 = 1 << 3;

/// How an entry's bytes are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Stored,
    Deflated,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Stored => "stored",
            Method::Deflated => "deflated",
        }
    }
}

/// One validated entry of the central directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub method: Method,
    /// Offset of the local header in the file.
    pub header_offset: u64,
    /// Absolute offset of the (possibly compressed) data in the file.
    pub data_offset: u64,
    pub compressed_size: u64,
    pub size: u64,
    pub crc32: u32,
    pub is_dir: bool,
}

/// A zip archive whose entry table was validated on open.
#[derive(Debug)]
pub struct Archive {
    storage: Storage,
    entries: Vec<Entry>,
    by_name: HashMap<String, usize>,
}

impl Archive {
    /// Map the file at `path` and validate its entry table.
    pub fn open(path: impl AsRef<Path>) -> Result<Archive> {
        Archive::from_storage(Storage::map(path)?)
    }

    /// Validate the entry table of an archive already in memory (mapped or owned).
    pub fn from_storage(storage: Storage) -> Result<Archive> {
        let label = storage.label().to_string();
        let entries = read_entry_table(&storage).in_file(&label)?;
        let by_name = entries.iter().enumerate().map(|(i, e)| (e.name.clone(), i)).collect();
        Ok(Archive {
            storage,
            entries,
            by_name,
        })
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// The path (or label) of the archive, as used in messages.
    pub fn path(&self) -> &str {
        self.storage.label()
    }

    /// Entries in central-directory order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.name.as_str())
    }

    pub fn entry(&self, name: &str) -> Result<&Entry> {
        self.by_name
            .get(name)
            .and_then(|&i| self.entries.get(i))
            .ok_or_else(|| {
                Error::not_found("no such entry in the archive")
                    .in_entry(name)
                    .in_file(self.path())
            })
    }

    /// The raw (possibly compressed) bytes of an entry; in bounds since open checked it.
    fn raw_range(&self, entry: &Entry) -> Result<ByteRange> {
        self.storage
            .range(entry.data_offset, entry.compressed_size)
            .in_entry(&entry.name)
            .in_file(self.path())
    }

    /// Zero-copy view of a stored entry's bytes (CRC not checked; see `verify_crc`).
    pub fn stored_range(&self, name: &str) -> Result<ByteRange> {
        let entry = self.entry(name)?;
        if entry.method != Method::Stored {
            return Err(
                Error::invalid("entry is deflated, so it has no in-place view; read it instead")
                    .at(entry.data_offset)
                    .in_entry(name)
                    .in_file(self.path()),
            );
        }
        self.raw_range(entry)
    }

    /// The entry's bytes, inflated if needed. Fails as soon as more than
    /// `min(limit, declared size)` bytes come out; the CRC32 is verified.
    pub fn read(&self, name: &str, limit: Option<u64>) -> Result<Vec<u8>> {
        let entry = self.entry(name)?;
        let locate = |e: Error| e.at(entry.data_offset).in_entry(name).in_file(self.path());
        if let Some(limit) = limit {
            if entry.size > limit {
                return Err(locate(Error::refused(format!(
                    "declared size {} bytes exceeds the read limit of {limit} bytes",
                    entry.size
                ))));
            }
        }
        let raw = self.raw_range(entry)?;
        let mut out = Vec::new();
        // Never trust the declared size for a large up-front allocation.
        out.try_reserve(entry.size.min(64 << 20) as usize)
            .map_err(|_| locate(Error::refused("cannot allocate the output buffer")))?;
        let crc = copy_entry_data(entry, raw.bytes(), &mut out).map_err(locate)?;
        check_crc(entry, crc).map_err(locate)?;
        Ok(out)
    }

    /// Check an entry's CRC32 without keeping its bytes (inflated in a bounded stream).
    pub fn verify_crc(&self, name: &str) -> Result<()> {
        let entry = self.entry(name)?;
        let raw = self.raw_range(entry)?;
        let locate = |e: Error| e.at(entry.data_offset).in_entry(name).in_file(self.path());
        let crc = copy_entry_data(entry, raw.bytes(), &mut std::io::sink()).map_err(locate)?;
        check_crc(entry, crc).map_err(locate)
    }
}

fn check_crc(entry: &Entry, crc: u32) -> Result<()> {
    if crc != entry.crc32 {
        return Err(Error::corrupt(format!(
            "CRC32 mismatch: expected {:#010x} (central directory), got {crc:#010x}",
            entry.crc32
        )));
    }
    Ok(())
}

/// Copy the entry's decoded bytes to `sink`, refusing more than its declared size (so a lying
/// header cannot make us inflate without bound) or fewer; returns their CRC32.
fn copy_entry_data(entry: &Entry, raw: &[u8], sink: &mut dyn std::io::Write) -> Result<u32> {
    let mut hasher = crc32fast::Hasher::new();
    let mut produced: u64 = 0;
    let mut emit = |chunk: &[u8], produced: &mut u64| -> Result<()> {
        *produced += chunk.len() as u64;
        if *produced > entry.size {
            return Err(Error::refused(format!(
                "data inflates past its declared size of {} bytes; stopped",
                entry.size
            )));
        }
        hasher.update(chunk);
        sink.write_all(chunk)
            .map_err(|e| Error::io(e, "cannot store the entry's bytes"))
    };
    match entry.method {
        Method::Stored => emit(raw, &mut produced)?,
        Method::Deflated => {
            let mut decoder = flate2::read::DeflateDecoder::new(raw);
            let mut buf = vec![0u8; 256 << 10];
            loop {
                let n = decoder
                    .read(&mut buf)
                    .map_err(|e| Error::corrupt(format!("invalid deflate data after {produced} bytes: {e}")))?;
                if n == 0 {
                    break;
                }
                emit(buf.get(..n).unwrap_or_default(), &mut produced)?;
            }
        }
    }
    if produced != entry.size {
        return Err(Error::corrupt(format!(
            "data ends after {produced} bytes; the central directory declares {}",
            entry.size
        )));
    }
    Ok(hasher.finalize())
}

/// Parse and validate every entry of the archive in `storage`.
fn read_entry_table(storage: &Storage) -> Result<Vec<Entry>> {
    let bytes = storage.bytes();
    let file_len = storage.len();
    let zip = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| Error::corrupt(format!("not a readable zip archive: {e}")))?;
    if zip.len() > MAX_ENTRIES {
        return Err(Error::refused(format!(
            "{} entries; at most {MAX_ENTRIES} are accepted",
            zip.len()
        )));
    }
    let cd_start = zip.central_directory_start();
    if zip.has_duplicate_names() {
        let name = first_duplicate_name(bytes, cd_start).unwrap_or_else(|| "<unknown>".into());
        return Err(Error::refused("duplicate entry name in the central directory")
            .in_entry(name)
            .at(cd_start));
    }

    let mut entries = Vec::with_capacity(zip.len());
    for index in 0..zip.len() {
        let file = zip
            .by_index_data(index)
            .map_err(|e| Error::corrupt(format!("central directory record {index}: {e}")))?;
        let name_raw = file.name_raw().to_vec();
        let name = file
            .name()
            .map_err(|e| Error::corrupt(format!("entry name is not valid text: {e}")).at(file.central_header_start()))?
            .into_owned();
        let entry = check_entry(&file, &name, &name_raw, bytes, file_len, cd_start)
            .in_entry(&name)
            .at(file.header_start())?;
        entries.push(entry);
    }
    check_disjoint(&entries)?;
    Ok(entries)
}

fn check_entry(
    file: &zip::read::ZipFileEntry<'_>,
    name: &str,
    name_raw: &[u8],
    bytes: &[u8],
    file_len: u64,
    cd_start: u64,
) -> Result<Entry> {
    check_name(name)?;
    if file.encrypted() {
        return Err(Error::refused("encrypted entries are not supported"));
    }
    if file.unix_mode().is_some_and(|mode| mode & 0o170000 == 0o120000) || file.is_symlink() {
        return Err(Error::refused("symbolic-link entries are refused"));
    }
    let method = match file.compression() {
        CompressionMethod::Stored => Method::Stored,
        CompressionMethod::Deflated => Method::Deflated,
        other => {
            return Err(Error::unsupported(format!(
                "compression method {other:?}; only stored and deflated are read"
            )))
        }
    };
    let (compressed_size, size) = (file.compressed_size(), file.size());
    if method == Method::Stored && compressed_size != size {
        return Err(Error::corrupt(format!(
            "stored entry declares {compressed_size} stored bytes but a size of {size}"
        )));
    }
    if size > BOMB_MIN_SIZE && size / MAX_RATIO >= compressed_size.max(1) {
        return Err(Error::refused(format!(
            "declared size {size} bytes is over {MAX_RATIO}x its compressed size of {compressed_size} bytes \
             (decompression bomb)"
        )));
    }
    let header_offset = file.header_start();
    let data_offset = check_local_header(bytes, header_offset, name_raw, method, compressed_size, size)?;
    let data_end = data_offset
        .checked_add(compressed_size)
        .filter(|&end| end <= file_len)
        .ok_or_else(|| {
            Error::corrupt(format!(
                "{compressed_size} bytes of data at offset {data_offset} run past the end of the file ({file_len} bytes)"
            ))
        })?;
    if data_end > cd_start {
        return Err(Error::corrupt(format!(
            "data ending at offset {data_end} runs into the central directory at offset {cd_start}"
        )));
    }
    Ok(Entry {
        name: name.to_string(),
        method,
        header_offset,
        data_offset,
        compressed_size,
        size,
        crc32: file.crc32(),
        is_dir: file.is_dir(),
    })
}

/// Names that would escape an extraction folder or mean different things on different systems.
fn check_name(name: &str) -> Result<()> {
    let why = if name.is_empty() {
        Some("empty entry name")
    } else if name.starts_with('/') {
        Some("absolute entry name")
    } else if name.contains('\\') {
        Some("backslash in entry name")
    } else if name.contains('\0') {
        Some("NUL byte in entry name")
    } else if name.as_bytes().get(1) == Some(&b':') {
        Some("drive letter in entry name")
    } else if name.split('/').any(|segment| segment == "..") {
        Some("'..' segment in entry name")
    } else {
        None
    };
    match why {
        Some(why) => Err(Error::refused(format!("{why} (path traversal)"))),
        None => Ok(()),
    }
}

fn le_u16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at.checked_add(2)?)?.try_into().ok()?))
}
fn le_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at.checked_add(4)?)?.try_into().ok()?))
}
fn le_u64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at.checked_add(8)?)?.try_into().ok()?))
}

/// Check the local header at `offset` against the central directory; return the data offset.
fn check_local_header(
    bytes: &[u8],
    offset: u64,
    name_raw: &[u8],
    method: Method,
    compressed_size: u64,
    size: u64,
) -> Result<u64> {
    let truncated = || Error::corrupt("local header runs past the end of the file").at(offset);
    let start = usize::try_from(offset).map_err(|_| truncated())?;
    let header = bytes.get(start..).ok_or_else(truncated)?;
    if le_u32(header, 0).ok_or_else(truncated)? != LOCAL_HEADER_SIG {
        return Err(Error::corrupt("no local header signature where the central directory points").at(offset));
    }
    let field = |at: usize| le_u16(header, at).ok_or_else(truncated);
    let flags = field(6)?;
    let local_method = field(8)?;
    let local_csize32 = le_u32(header, 18).ok_or_else(truncated)?;
    let local_usize32 = le_u32(header, 22).ok_or_else(truncated)?;
    let name_len = usize::from(field(26)?);
    let extra_len = usize::from(field(28)?);
    let name_end = 30 + name_len;
    let local_name = header.get(30..name_end).ok_or_else(truncated)?;
    let extra = header.get(name_end..name_end + extra_len).ok_or_else(truncated)?;
    let mismatch =
        |what: String| Error::corrupt(format!("local header disagrees with the central directory: {what}")).at(offset);

    if local_name != name_raw {
        return Err(mismatch(format!("name '{}'", String::from_utf8_lossy(local_name))));
    }
    if flags & FLAG_ENCRYPTED != 0 {
        return Err(Error::refused("encrypted entries are not supported").at(offset));
    }
    let expected_method = match method {
        Method::Stored => 0,
        Method::Deflated => 8,
    };
    if local_method != expected_method {
        return Err(mismatch(format!("method {local_method} vs {expected_method}")));
    }
    if flags & FLAG_DATA_DESCRIPTOR == 0 {
        let local_csize = u64::from(local_csize32);
        let local_usize = u64::from(local_usize32);
        // 0xFFFFFFFF means "see the zip64 extra field" (uncompressed size first, then compressed).
        let zip64 = find_zip64_extra(extra);
        let mut zip64_at = 0;
        let mut resolve = |value32: u64| -> Result<u64> {
            if value32 != 0xFFFF_FFFF {
                return Ok(value32);
            }
            let value = zip64
                .and_then(|z| le_u64(z, zip64_at))
                .ok_or_else(|| mismatch("size is 0xFFFFFFFF but there is no zip64 extra field for it".into()))?;
            zip64_at += 8;
            Ok(value)
        };
        let local_usize = resolve(local_usize)?;
        let local_csize = resolve(local_csize)?;
        if local_usize != size || local_csize != compressed_size {
            return Err(mismatch(format!(
                "sizes {local_csize}/{local_usize} (compressed/uncompressed) vs {compressed_size}/{size}"
            )));
        }
    }
    offset
        .checked_add(LOCAL_HEADER_LEN + name_len as u64 + extra_len as u64)
        .ok_or_else(truncated)
}

fn find_zip64_extra(mut extra: &[u8]) -> Option<&[u8]> {
    while let (Some(id), Some(len)) = (le_u16(extra, 0), le_u16(extra, 2)) {
        let body = extra.get(4..4 + usize::from(len))?;
        if id == ZIP64_EXTRA_ID {
            return Some(body);
        }
        extra = extra.get(4 + usize::from(len)..)?;
    }
    None
}

/// Local header plus data of each entry must not share bytes with another entry's.
fn check_disjoint(entries: &[Entry]) -> Result<()> {
    let mut spans: Vec<(u64, u64, &str)> = entries
        .iter()
        .map(|e| (e.header_offset, e.data_offset + e.compressed_size, e.name.as_str()))
        .collect();
    spans.sort_unstable();
    for pair in spans.windows(2) {
        if let [(_, end_a, name_a), (start_b, _, name_b)] = pair {
            if start_b < end_a {
                return Err(Error::refused(format!("entry overlaps the data of entry '{name_a}'"))
                    .in_entry(*name_b)
                    .at(*start_b));
            }
        }
    }
    Ok(())
}

/// The zip crate folds duplicate names into one; walk the raw central directory to name one.
fn first_duplicate_name(bytes: &[u8], cd_start: u64) -> Option<String> {
    let mut seen = std::collections::HashSet::new();
    let mut at = usize::try_from(cd_start).ok()?;
    for _ in 0..=MAX_ENTRIES {
        if le_u32(bytes, at)? != CENTRAL_HEADER_SIG {
            return None;
        }
        let name_len = usize::from(le_u16(bytes, at + 28)?);
        let extra_len = usize::from(le_u16(bytes, at + 30)?);
        let comment_len = usize::from(le_u16(bytes, at + 32)?);
        let name = bytes.get(at + 46..at + 46 + name_len)?;
        if !seen.insert(name) {
            return Some(String::from_utf8_lossy(name).into_owned());
        }
        at = at.checked_add(46 + name_len + extra_len + comment_len)?;
    }
    None
}

#[cfg(test)]
mod tests;
