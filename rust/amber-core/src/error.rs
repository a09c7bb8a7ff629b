//! The one error type of amber-core.
//!
//! Every failure says what was wrong and where: the file, the entry or object inside it, and
//! the byte offset when one applies. Parsers never panic on bad input; they return one of these.

use std::fmt;

/// Where in the input a problem was found. Every part is optional; `Display` prints the parts
/// that are known, so messages read like `file 'm.keras', entry 'model.weights.h5', object
/// '/layers/dense/vars/0', offset 4096: ...`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    pub file: Option<String>,
    pub entry: Option<String>,
    pub object: Option<String>,
    pub offset: Option<u64>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(file) = &self.file {
            parts.push(format!("file '{file}'"));
        }
        if let Some(entry) = &self.entry {
            parts.push(format!("entry '{entry}'"));
        }
        if let Some(object) = &self.object {
            parts.push(format!("object '{object}'"));
        }
        if let Some(offset) = self.offset {
            parts.push(format!("offset {offset}"));
        }
        f.write_str(&parts.join(", "))
    }
}

/// What kind of problem it is; the Python binding maps `Io` to `OSError` and the rest to
/// `ValueError` subclasses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The operating system refused a read, write, open or map.
    Io,
    /// The bytes do not follow the format (truncated, out of bounds, bad signature, cycles...).
    Corrupt,
    /// Valid for the format, but a feature amber does not read (named in the message).
    Unsupported,
    /// Refused on purpose: a safety limit or policy (path traversal, decompression bound...).
    Refused,
    /// The caller asked for something impossible (bad argument, wrong shape or dtype).
    Invalid,
    /// A name that does not exist in the file.
    NotFound,
}

/// The error type of every fallible amber-core function.
#[derive(Debug, thiserror::Error)]
pub struct Error {
    pub kind: ErrorKind,
    pub location: Location,
    pub message: String,
    #[source]
    pub source: Option<std::io::Error>,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let loc = self.location.to_string();
        if loc.is_empty() {
            write!(f, "{}", self.message)?;
        } else {
            write!(f, "{loc}: {}", self.message)?;
        }
        if let Some(src) = &self.source {
            write!(f, " ({src})")?;
        }
        Ok(())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, location: Location::default(), message: message.into(), source: None }
    }
    pub fn corrupt(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Corrupt, message)
    }
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }
    pub fn refused(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Refused, message)
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
    pub fn io(err: std::io::Error, message: impl Into<String>) -> Self {
        Error { kind: ErrorKind::Io, location: Location::default(), message: message.into(), source: Some(err) }
    }

    /// Fill in the file, unless an inner layer already named one.
    pub fn in_file(mut self, file: impl Into<String>) -> Self {
        self.location.file.get_or_insert_with(|| file.into());
        self
    }
    /// Fill in the archive entry, unless already known.
    pub fn in_entry(mut self, entry: impl Into<String>) -> Self {
        self.location.entry.get_or_insert_with(|| entry.into());
        self
    }
    /// Fill in the object path (HDF5 path or tensor name), unless already known.
    pub fn in_object(mut self, object: impl Into<String>) -> Self {
        self.location.object.get_or_insert_with(|| object.into());
        self
    }
    /// Fill in the byte offset, unless already known.
    pub fn at(mut self, offset: u64) -> Self {
        self.location.offset.get_or_insert(offset);
        self
    }
}

/// Adds location context to any `Result<T, Error>`.
pub trait ResultExt<T> {
    fn in_file(self, file: impl Into<String>) -> Result<T>;
    fn in_entry(self, entry: impl Into<String>) -> Result<T>;
    fn in_object(self, object: impl Into<String>) -> Result<T>;
    fn at(self, offset: u64) -> Result<T>;
}

impl<T> ResultExt<T> for Result<T> {
    fn in_file(self, file: impl Into<String>) -> Result<T> {
        self.map_err(|e| e.in_file(file))
    }
    fn in_entry(self, entry: impl Into<String>) -> Result<T> {
        self.map_err(|e| e.in_entry(entry))
    }
    fn in_object(self, object: impl Into<String>) -> Result<T> {
        self.map_err(|e| e.in_object(object))
    }
    fn at(self, offset: u64) -> Result<T> {
        self.map_err(|e| e.at(offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_names_every_known_part() {
        let e = Error::corrupt("bad signature").at(12).in_object("/a").in_entry("w.h5").in_file("m.keras");
        assert_eq!(e.to_string(), "file 'm.keras', entry 'w.h5', object '/a', offset 12: bad signature");
    }

    #[test]
    fn inner_context_wins() {
        let e = Error::corrupt("x").at(5).at(9);
        assert_eq!(e.location.offset, Some(5));
    }
}
