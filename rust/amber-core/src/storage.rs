//! Mapped storage and byte ranges: one mapping per opened file, shared by every view of it.
//!
//! A `Storage` is either a read-only memory map of a file or an owned buffer (decoded data, or
//! bytes handed in by a caller). A `ByteRange` is a checked window into one; it keeps its
//! storage alive, so a view stays valid after the archive or HDF5 object that produced it is
//! dropped.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use memmap2::Mmap;

use crate::error::{Error, Result};

enum Backing {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

/// Shared, immutable bytes: a whole mapped file or an owned buffer.
#[derive(Clone)]
pub struct Storage {
    backing: Arc<Backing>,
    label: Arc<str>,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Storage({}, {} bytes)", self.label, self.len())
    }
}

impl Storage {
    /// Map `path` read-only. An empty file maps to an empty owned buffer (mmap of length 0 is
    /// not portable).
    pub fn map(path: impl AsRef<Path>) -> Result<Storage> {
        let path = path.as_ref();
        let label: Arc<str> = path.display().to_string().into();
        let file = File::open(path).map_err(|e| Error::io(e, "cannot open").in_file(&*label))?;
        let len = file.metadata().map_err(|e| Error::io(e, "cannot stat").in_file(&*label))?.len();
        if len == 0 {
            return Ok(Storage { backing: Arc::new(Backing::Owned(Vec::new())), label });
        }
        // SAFETY: the map is read-only. amber never writes a file in place (it writes a
        // temporary file and renames it), so the mapped bytes stay as they were for amber's own
        // files; another process truncating the file under us is outside what mmap can guard.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(e, "cannot map").in_file(&*label))?;
        Ok(Storage { backing: Arc::new(Backing::Mapped(map)), label })
    }

    /// Wrap owned bytes (decoded data, tests, in-memory files).
    pub fn from_vec(bytes: Vec<u8>, label: impl Into<String>) -> Storage {
        Storage { backing: Arc::new(Backing::Owned(bytes)), label: label.into().into() }
    }

    /// The file path (or a description) used in error messages.
    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn bytes(&self) -> &[u8] {
        match &*self.backing {
            Backing::Mapped(m) => m,
            Backing::Owned(v) => v,
        }
    }

    pub fn len(&self) -> u64 {
        self.bytes().len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_mapped(&self) -> bool {
        matches!(&*self.backing, Backing::Mapped(_))
    }

    /// The whole storage as a range.
    pub fn full(&self) -> ByteRange {
        ByteRange { storage: self.clone(), start: 0, len: self.len() }
    }

    /// A checked window `[start, start+len)`.
    pub fn range(&self, start: u64, len: u64) -> Result<ByteRange> {
        self.full().sub(start, len)
    }
}

/// A window into a `Storage`, bounds-checked at creation. Cloning is cheap (an `Arc` bump).
#[derive(Clone, Debug)]
pub struct ByteRange {
    storage: Storage,
    start: u64,
    len: u64,
}

impl ByteRange {
    pub fn storage(&self) -> &Storage {
        &self.storage
    }
    /// Offset of this range within its storage (the absolute file offset for a mapped file).
    pub fn start(&self) -> u64 {
        self.start
    }
    pub fn len(&self) -> u64 {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn bytes(&self) -> &[u8] {
        // In bounds by construction (checked in `sub`).
        &self.storage.bytes()[self.start as usize..(self.start + self.len) as usize]
    }

    /// A sub-window `[offset, offset+len)` relative to this range; refuses anything that does
    /// not fit, naming both the requested and the available extent.
    pub fn sub(&self, offset: u64, len: u64) -> Result<ByteRange> {
        offset.checked_add(len).filter(|&end| end <= self.len).ok_or_else(|| {
            Error::corrupt(format!(
                "range of {len} bytes at offset {offset} runs past the end ({} bytes available)",
                self.len
            ))
            .at(offset)
        })?;
        Ok(ByteRange { storage: self.storage.clone(), start: self.start + offset, len })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_checked() {
        let s = Storage::from_vec((0u8..100).collect(), "mem");
        let r = s.range(10, 20).unwrap();
        assert_eq!(r.bytes()[0], 10);
        let inner = r.sub(5, 5).unwrap();
        assert_eq!(inner.bytes(), &[15, 16, 17, 18, 19]);
        assert_eq!(inner.start(), 15);
        assert!(r.sub(15, 6).is_err());
        assert!(r.sub(u64::MAX, 2).is_err());
        assert!(s.range(0, 101).is_err());
    }

    #[test]
    fn mapped_file_outlives_handle() {
        let dir = std::env::temp_dir().join(format!("amber-storage-{}", std::process::id()));
        std::fs::write(&dir, b"hello world").unwrap();
        let r = Storage::map(&dir).unwrap().range(6, 5).unwrap();
        std::fs::remove_file(&dir).unwrap();
        assert_eq!(r.bytes(), b"world");
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = Storage::map("/nonexistent/x.keras").unwrap_err();
        assert!(err.to_string().contains("x.keras"), "{err}");
    }
}
