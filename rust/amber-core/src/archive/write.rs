//! Writing zip archives: entries go to a temporary file beside the target, which `finish`
//! renames into place, so readers (and mappings of the old file) never see a half-written one.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use tempfile::TempPath;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use super::writeback::Writeback;
use crate::error::{Error, Result, ResultExt};

/// Stored entries start on this boundary so mapped views of their contents are aligned.
pub const STORED_ALIGNMENT: u16 = 64;
/// Sizes from here on need zip64 records.
const ZIP64_THRESHOLD: u64 = 0xFFFF_FFFF;
/// Streamed entries reach the zip writer in pieces of at most this many bytes. The crate
/// computes the CRC of each piece right after handing it to the file, so a piece this small is
/// still in cache when it is checksummed; whole 64 MiB datasets made the CRC a second pass over
/// main memory.
const STREAM_PIECE: usize = 1 << 20;

/// A zip archive being written. Dropping it without `finish` removes the temporary file.
pub struct ArchiveWriter {
    // Both are `Some` until `finish` or `abort` takes them.
    zip: Option<ZipWriter<BufWriter<File>>>,
    temp: Option<TempPath>,
    // A second descriptor on the temporary file, for writeback requests while streaming;
    // `None` when it could not be opened (saving works the same, only slower to fsync).
    sync_handle: Option<File>,
    target: PathBuf,
    names: HashSet<String>,
}

impl ArchiveWriter {
    /// Start an archive that `finish` will move to `path`.
    pub fn create(path: impl AsRef<Path>) -> Result<ArchiveWriter> {
        let target = path.as_ref().to_path_buf();
        let label = target.display().to_string();
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let temp = tempfile::Builder::new()
            .prefix(".amber-")
            .suffix(".tmp")
            .tempfile_in(&dir)
            .map_err(|e| Error::io(e, "cannot create a temporary file beside the target").in_file(&label))?;
        let (file, temp) = temp.into_parts();
        let sync_handle = file.try_clone().ok();
        Ok(ArchiveWriter {
            zip: Some(ZipWriter::new(BufWriter::with_capacity(1 << 20, file))),
            temp: Some(temp),
            sync_handle,
            target,
            names: HashSet::new(),
        })
    }

    fn label(&self) -> String {
        self.target.display().to_string()
    }

    fn start_entry(&mut self, name: &str, len: u64, deflate: bool) -> Result<()> {
        let label = self.label();
        super::check_name(name).in_entry(name).in_file(&label)?;
        if !self.names.insert(name.to_string()) {
            return Err(Error::invalid("an entry with this name was already added")
                .in_entry(name)
                .in_file(&label));
        }
        let mut options = SimpleFileOptions::default()
            .large_file(len >= ZIP64_THRESHOLD)
            .unix_permissions(0o644);
        options = if deflate {
            options.compression_method(CompressionMethod::Deflated)
        } else {
            options
                .compression_method(CompressionMethod::Stored)
                .with_alignment(STORED_ALIGNMENT)
        };
        let zip = self
            .zip
            .as_mut()
            .ok_or_else(|| Error::invalid("the archive was already finished or aborted").in_file(&label))?;
        zip.start_file(name, options)
            .map_err(|e| zip_error(e, "cannot start the entry").in_entry(name).in_file(&label))
    }

    fn current(&mut self) -> Result<&mut ZipWriter<BufWriter<File>>> {
        let label = self.label();
        self.zip
            .as_mut()
            .ok_or_else(|| Error::invalid("the archive was already finished or aborted").in_file(&label))
    }

    /// Add an entry from memory, stored (aligned) or deflated.
    pub fn add_bytes(&mut self, name: &str, data: &[u8], deflate: bool) -> Result<()> {
        let label = self.label();
        self.start_entry(name, data.len() as u64, deflate)?;
        self.current()?
            .write_all(data)
            .map_err(|e| Error::io(e, "cannot write the entry").in_entry(name).in_file(&label))
    }

    /// Add a stored entry of exactly `len` bytes that `fill` writes; nothing is buffered
    /// beyond the writer's own buffer, the CRC is computed as the bytes pass, and the disk
    /// starts writing them while the rest is still coming.
    pub fn add_stored_stream(
        &mut self,
        name: &str,
        len: u64,
        fill: impl FnOnce(&mut dyn Write) -> Result<()>,
    ) -> Result<()> {
        let label = self.label();
        self.start_entry(name, len, false)?;
        let zip = self
            .zip
            .as_mut()
            .ok_or_else(|| Error::invalid("the archive was already finished or aborted").in_file(&label))?;
        let mut counted = ExactLen {
            inner: Writeback::new(zip, self.sync_handle.as_ref()),
            expected: len,
            written: 0,
        };
        let outcome = fill(&mut counted).and_then(|()| {
            if counted.written != len {
                return Err(Error::invalid(format!(
                    "the writer produced {} bytes but {len} were announced",
                    counted.written
                )));
            }
            Ok(())
        });
        if let Err(e) = outcome {
            // Drop the partial entry so the archive stays consistent if the caller goes on.
            if let Some(zip) = self.zip.as_mut() {
                let _ = zip.abort_file();
            }
            self.names.remove(name);
            return Err(e.in_entry(name).in_file(&label));
        }
        Ok(())
    }

    /// Write the central directory, flush and fsync, then rename into place.
    pub fn finish(mut self) -> Result<()> {
        let label = self.label();
        let (zip, temp) = match (self.zip.take(), self.temp.take()) {
            (Some(zip), Some(temp)) => (zip, temp),
            _ => return Err(Error::invalid("the archive was already finished or aborted").in_file(&label)),
        };
        self.sync_handle.take();
        let buffered = zip
            .finish()
            .map_err(|e| zip_error(e, "cannot write the central directory").in_file(&label))?;
        let file = buffered
            .into_inner()
            .map_err(|e| Error::io(e.into_error(), "cannot flush").in_file(&label))?;
        file.sync_all()
            .map_err(|e| Error::io(e, "cannot fsync").in_file(&label))?;
        drop(file);
        temp.persist(&self.target)
            .map_err(|e| Error::io(e.error, "cannot rename the temporary file into place").in_file(&label))?;
        // The rename itself is durable only once the folder is synced; best effort.
        if let Some(dir) = self.target.parent().filter(|p| !p.as_os_str().is_empty()) {
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }

    /// Discard everything written; the target is untouched.
    pub fn abort(mut self) {
        self.discard();
    }

    fn discard(&mut self) {
        // The zip writer's own drop may still write a central directory into the temporary
        // file; it is removed right after, when the path is dropped.
        self.zip.take();
        self.temp.take();
        self.sync_handle.take();
    }
}

impl Drop for ArchiveWriter {
    fn drop(&mut self) {
        self.discard();
    }
}

fn zip_error(err: zip::result::ZipError, what: &str) -> Error {
    match err {
        zip::result::ZipError::Io(io) => Error::io(io, what),
        other => Error::invalid(format!("{what}: {other}")),
    }
}

/// Passes bytes through in pieces while refusing more than the announced length.
struct ExactLen<W: Write> {
    inner: W,
    expected: u64,
    written: u64,
}

impl<W: Write> Write for ExactLen<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let room = self.expected - self.written;
        if buf.len() as u64 > room {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "more than the announced {} bytes written to a stored entry",
                    self.expected
                ),
            ));
        }
        // A short write is allowed by `Write`; `write_all` comes back for the rest.
        let piece = &buf[..buf.len().min(STREAM_PIECE)];
        let n = self.inner.write(piece)?;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
