use std::io::Write;

use super::*;

fn write_archive(entries: &[(&str, &[u8], bool)]) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.keras");
    let mut w = ArchiveWriter::create(&path).unwrap();
    for (name, data, deflate) in entries {
        w.add_bytes(name, data, *deflate).unwrap();
    }
    w.finish().unwrap();
    (dir, path)
}

fn open_bytes(bytes: Vec<u8>) -> Result<Archive> {
    Archive::from_storage(Storage::from_vec(bytes, "m.keras"))
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> usize {
    from + hay[from..].windows(needle.len()).position(|w| w == needle).unwrap()
}

/// Offsets of the central directory record of the `nth` entry.
fn central_record(bytes: &[u8], nth: usize) -> usize {
    let mut at = 0;
    for _ in 0..=nth {
        at = find(bytes, &CENTRAL_HEADER_SIG.to_le_bytes(), at + 1);
    }
    at
}

#[test]
fn round_trip_stored_deflated_and_streamed() {
    let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.keras");
    let mut w = ArchiveWriter::create(&path).unwrap();
    w.add_bytes("config.json", b"{\"a\": 1}", true).unwrap();
    w.add_bytes("metadata.json", b"{}", false).unwrap();
    w.add_stored_stream("model.weights.h5", big.len() as u64, |out| {
        for chunk in big.chunks(4096) {
            out.write_all(chunk).map_err(|e| Error::io(e, "write"))?;
        }
        Ok(())
    })
    .unwrap();
    w.finish().unwrap();

    let a = Archive::open(&path).unwrap();
    assert_eq!(
        a.names().collect::<Vec<_>>(),
        ["config.json", "metadata.json", "model.weights.h5"]
    );
    assert_eq!(a.read("config.json", None).unwrap(), b"{\"a\": 1}");
    assert_eq!(a.entry("config.json").unwrap().method, Method::Deflated);
    let weights = a.stored_range("model.weights.h5").unwrap();
    assert_eq!(weights.bytes(), &big[..]);
    assert_eq!(weights.start() % u64::from(write::STORED_ALIGNMENT), 0);
    assert_eq!(a.entry("metadata.json").unwrap().data_offset % 64, 0);
    a.verify_crc("model.weights.h5").unwrap();
    a.verify_crc("config.json").unwrap();
    assert!(a.stored_range("config.json").is_err());
    assert_eq!(a.read("nope", None).unwrap_err().kind, crate::ErrorKind::NotFound);
    // Only the target is left in the folder.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn read_limit_is_enforced() {
    let (_d, path) = write_archive(&[("x", &[7u8; 5000], true)]);
    let a = Archive::open(&path).unwrap();
    let err = a.read("x", Some(100)).unwrap_err().to_string();
    assert!(err.contains("read limit") && err.contains("entry 'x'"), "{err}");
    assert_eq!(a.read("x", Some(5000)).unwrap().len(), 5000);
}

#[test]
fn stream_length_must_match() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.keras");
    let mut w = ArchiveWriter::create(&path).unwrap();
    let short = w.add_stored_stream("w.h5", 10, |out| out.write_all(b"abc").map_err(|e| Error::io(e, "w")));
    assert!(short.unwrap_err().to_string().contains("produced 3 bytes but 10"));
    let long = w.add_stored_stream("w.h5", 2, |out| out.write_all(b"abc").map_err(|e| Error::io(e, "w")));
    assert!(long.is_err());
    w.add_stored_stream("w.h5", 3, |out| out.write_all(b"abc").map_err(|e| Error::io(e, "w")))
        .unwrap();
    w.finish().unwrap();
    let a = Archive::open(&path).unwrap();
    assert_eq!(a.names().collect::<Vec<_>>(), ["w.h5"]);
    assert_eq!(a.read("w.h5", None).unwrap(), b"abc");
}

#[test]
fn dropped_writer_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.keras");
    let mut w = ArchiveWriter::create(&path).unwrap();
    w.add_bytes("a", b"1", false).unwrap();
    drop(w);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    let w = ArchiveWriter::create(&path).unwrap();
    w.abort();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn writer_refuses_bad_and_duplicate_names() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = ArchiveWriter::create(dir.path().join("m.keras")).unwrap();
    for bad in ["../x", "/abs", "a\\b", "a/../b", "", "C:x"] {
        assert!(w.add_bytes(bad, b"", false).is_err(), "{bad}");
    }
    w.add_bytes("a", b"", false).unwrap();
    assert!(w.add_bytes("a", b"", false).is_err());
}

fn refused(bytes: Vec<u8>, needle: &str) {
    let err = open_bytes(bytes).unwrap_err().to_string();
    assert!(err.contains(needle), "expected '{needle}' in: {err}");
    assert!(err.contains("m.keras"), "{err}");
}

#[test]
fn refuses_traversal_names() {
    // Written with the zip crate directly, since our writer refuses these names.
    for (name, why) in [
        ("../evil", "'..' segment"),
        ("/etc/x", "absolute"),
        ("a\\b", "backslash"),
    ] {
        let mut z = zip::ZipWriter::new(Cursor::new(Vec::new()));
        z.start_file(name, SimpleFileOptions()).unwrap();
        z.write_all(b"x").unwrap();
        let bytes = z.finish().unwrap().into_inner();
        refused(bytes, why);
    }
}

#[allow(non_snake_case)]
fn SimpleFileOptions() -> zip::write::SimpleFileOptions {
    zip::write::SimpleFileOptions::default().compression_method(CompressionMethod::Stored)
}

#[test]
fn refuses_symlinks() {
    let mut z = zip::ZipWriter::new(Cursor::new(Vec::new()));
    z.add_symlink("assets/link", "/tmp", SimpleFileOptions()).unwrap();
    refused(z.finish().unwrap().into_inner(), "symbolic-link");
}

#[test]
fn refuses_duplicates_naming_them() {
    let (_d, path) = write_archive(&[("config.json", b"1", false), ("configXjson", b"2", false)]);
    let mut bytes = std::fs::read(path).unwrap();
    let mut at = 0;
    while let Some(pos) = bytes[at..].windows(11).position(|w| w == b"configXjson") {
        bytes[at + pos + 6] = b'.';
        at += pos + 11;
    }
    let err = open_bytes(bytes).unwrap_err().to_string();
    assert!(
        err.contains("duplicate") && err.contains("entry 'config.json'"),
        "{err}"
    );
}

#[test]
fn refuses_encrypted_flag() {
    let (_d, path) = write_archive(&[("a", b"hello", false)]);
    let mut bytes = std::fs::read(path).unwrap();
    let cd = central_record(&bytes, 0);
    bytes[cd + 8] |= 1;
    bytes[6] |= 1;
    refused(bytes, "encrypted");
}

#[test]
fn refuses_local_header_mismatch() {
    let (_d, path) = write_archive(&[("abc", b"hello", false)]);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[30] = b'x'; // local name "xbc"
    refused(bytes, "local header disagrees");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[22] ^= 1; // local uncompressed size
    refused(bytes, "sizes");
}

#[test]
fn refuses_declared_bomb() {
    let (_d, path) = write_archive(&[("w", &[0u8; 1000], true)]);
    let mut bytes = std::fs::read(path).unwrap();
    let cd = central_record(&bytes, 0);
    bytes[cd + 24..cd + 28].copy_from_slice(&0xF000_0000u32.to_le_bytes());
    refused(bytes, "decompression bomb");
}

#[test]
fn refuses_data_past_end_and_truncation() {
    let (_d, path) = write_archive(&[("a", &[1u8; 300], false)]);
    let bytes = std::fs::read(path).unwrap();
    for cut in [0, 10, 200, bytes.len() - 30, bytes.len() - 1] {
        assert!(open_bytes(bytes[..cut].to_vec()).is_err(), "cut at {cut}");
    }
    let mut big = bytes.clone();
    let cd = central_record(&big, 0);
    big[cd + 20..cd + 24].copy_from_slice(&100_000u32.to_le_bytes());
    big[cd + 24..cd + 28].copy_from_slice(&100_000u32.to_le_bytes());
    assert!(open_bytes(big).is_err());
}

#[test]
fn refuses_overlapping_entries() {
    // 'b' alone, then an archive whose entry 'a' holds a byte-exact copy of b's local header and
    // data; pointing b's central record into a's data gives a consistent but overlapping entry.
    let (_d1, inner) = write_archive(&[("b", b"payload", false)]);
    let inner = std::fs::read(inner).unwrap();
    let b_local = &inner[..central_record(&inner, 0)];
    let (_d2, outer) = write_archive(&[("a", b_local, false), ("b", b"payload", false)]);
    let mut bytes = std::fs::read(outer).unwrap();
    let a_data = Archive::from_storage(Storage::from_vec(bytes.clone(), "x"))
        .unwrap()
        .entries()[0]
        .data_offset;
    let cd_b = central_record(&bytes, 1);
    bytes[cd_b + 42..cd_b + 46].copy_from_slice(&(a_data as u32).to_le_bytes());
    refused(bytes, "overlaps");
}

#[test]
fn refuses_crc_mismatch_on_read() {
    let (_d, path) = write_archive(&[("a", b"hello", false), ("d", &[5u8; 4000], true)]);
    let mut bytes = std::fs::read(path).unwrap();
    let at = find(&bytes, b"hello", 0);
    bytes[at] = b'j';
    let a = open_bytes(bytes).unwrap();
    let err = a.read("a", None).unwrap_err().to_string();
    assert!(err.contains("CRC32 mismatch") && err.contains("entry 'a'"), "{err}");
    assert!(a.verify_crc("a").is_err());
    a.verify_crc("d").unwrap();
}

#[test]
fn refuses_lying_uncompressed_size() {
    // Central and local headers both claim 100 bytes for data that inflates to 4000.
    let (_d, path) = write_archive(&[("d", &[5u8; 4000], true)]);
    let mut bytes = std::fs::read(path).unwrap();
    let cd = central_record(&bytes, 0);
    bytes[cd + 24..cd + 28].copy_from_slice(&100u32.to_le_bytes());
    bytes[22..26].copy_from_slice(&100u32.to_le_bytes());
    let a = open_bytes(bytes).unwrap();
    let err = a.read("d", None).unwrap_err().to_string();
    assert!(err.contains("inflates past its declared size of 100"), "{err}");
}

#[test]
fn directories_and_comments_are_fine() {
    let mut z = zip::ZipWriter::new(Cursor::new(Vec::new()));
    z.add_directory("extra/empty/", SimpleFileOptions()).unwrap();
    z.start_file("extra/x.txt", SimpleFileOptions()).unwrap();
    z.write_all(b"x").unwrap();
    z.set_comment("hello").unwrap();
    let a = open_bytes(z.finish().unwrap().into_inner()).unwrap();
    assert!(a.entries()[0].is_dir);
    assert_eq!(a.read("extra/x.txt", None).unwrap(), b"x");
}

#[test]
fn too_many_entries() {
    let mut z = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for i in 0..=MAX_ENTRIES {
        z.start_file(format!("{i}"), SimpleFileOptions()).unwrap();
    }
    refused(z.finish().unwrap().into_inner(), "at most 10000");
}

/// Writes 4 GiB to a temporary folder, so it is opt-in: `cargo test --release -- --ignored`.
#[test]
#[ignore = "writes a 4 GiB file; run explicitly with --ignored"]
fn zip64_past_4_gib() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.keras");
    let len: u64 = (4 << 30) + 100;
    let chunk: Vec<u8> = (0..1u32 << 20).map(|i| (i % 253) as u8).collect();
    let started = std::time::Instant::now();
    let mut w = ArchiveWriter::create(&path).unwrap();
    w.add_bytes("config.json", b"{}", true).unwrap();
    w.add_stored_stream("model.weights.h5", len, |out| {
        let mut left = len;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            out.write_all(&chunk[..n]).map_err(|e| Error::io(e, "write"))?;
            left -= n as u64;
        }
        Ok(())
    })
    .unwrap();
    w.add_bytes("after.txt", b"tail", false).unwrap();
    w.finish().unwrap();
    eprintln!("wrote {len} bytes in {:?}", started.elapsed());

    let started = std::time::Instant::now();
    let a = Archive::open(&path).unwrap();
    eprintln!("opened in {:?}", started.elapsed());
    let big = a.entry("model.weights.h5").unwrap().clone();
    assert_eq!((big.size, big.compressed_size), (len, len));
    assert_eq!(big.data_offset % 64, 0);
    let after = a.entry("after.txt").unwrap();
    assert!(after.header_offset > len, "the last entry's offset needs zip64");
    assert_eq!(a.read("after.txt", None).unwrap(), b"tail");
    let range = a.stored_range("model.weights.h5").unwrap();
    let last = (len - 1) % chunk.len() as u64;
    assert_eq!(range.bytes()[(len - 1) as usize], chunk[last as usize]);
    let started = std::time::Instant::now();
    a.verify_crc("model.weights.h5").unwrap();
    eprintln!("CRC of {len} bytes verified in {:?}", started.elapsed());
}

#[test]
fn stored_views_outlive_the_archive_and_the_file() {
    let (_d, path) = write_archive(&[("w.h5", b"weights in place", false)]);
    let archive = Archive::open(&path).unwrap();
    assert!(archive.storage().is_mapped());
    let view = archive.stored_range("w.h5").unwrap();
    drop(archive);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(view.bytes(), b"weights in place");
}

#[test]
fn large_streamed_writes_pass_in_pieces_with_the_right_crc() {
    // One write far larger than a stream piece and than a writeback stretch: the entry must
    // hold exactly these bytes, and its CRC (checked on read) must be that of all of them.
    let big: Vec<u8> = (0..(40u32 << 20) + 5).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.keras");
    let mut w = ArchiveWriter::create(&path).unwrap();
    w.add_stored_stream("w.h5", big.len() as u64, |out| out.write_all(&big).map_err(|e| Error::io(e, "write")))
        .unwrap();
    w.finish().unwrap();
    let a = Archive::open(&path).unwrap();
    assert_eq!(a.stored_range("w.h5").unwrap().bytes(), &big[..]);
    assert_eq!(a.entry("w.h5").unwrap().crc32, crc32fast::hash(&big));
    a.verify_crc("w.h5").unwrap();
}
