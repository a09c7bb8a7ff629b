//! Early writeback for files that are fsynced once complete.
//!
//! Without it the kernel keeps every written page dirty in memory and the final fsync writes
//! the whole file while the caller waits. Asking it to start writing each stretch as soon as
//! it is complete lets the disk work while the rest of the file is still being copied, so the
//! fsync only waits for the tail. Durability still comes from that fsync alone; these requests
//! are hints and their failures are ignored.

use std::fs::File;
use std::io::Write;

/// Bytes written between two writeback requests: large enough that the requests cost nothing,
/// small enough that the disk starts early.
const WRITEBACK_EVERY: u64 = 32 << 20;

/// Passes writes to `inner` and asks the kernel to start writeback of `file` (another handle
/// on the file `inner` ends in) every `WRITEBACK_EVERY` bytes.
pub(crate) struct Writeback<'f, W: Write> {
    inner: W,
    file: Option<&'f File>,
    pending: u64,
}

impl<'f, W: Write> Writeback<'f, W> {
    /// `file: None` passes writes through with no requests.
    pub(crate) fn new(inner: W, file: Option<&'f File>) -> Self {
        Writeback { inner, file, pending: 0 }
    }
}

impl<W: Write> Write for Writeback<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.pending += n as u64;
        if self.pending >= WRITEBACK_EVERY {
            self.pending = 0;
            if let Some(file) = self.file {
                start_writeback(file);
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Queue the file's dirty pages for writing and return without waiting for them.
#[cfg(target_os = "linux")]
fn start_writeback(file: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: a syscall on a descriptor that `file` keeps open; offset 0 with length 0 means
    // the whole file, and SYNC_FILE_RANGE_WRITE only starts writeback of pages that are dirty
    // and not already being written. It touches no memory of ours.
    let _ = unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
}

/// Elsewhere the final fsync does all the work.
#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &File) {}
