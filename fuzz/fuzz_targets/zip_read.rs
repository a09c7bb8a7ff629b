//! Any bytes as a zip archive: opening and reading every entry may fail, never panic, and
//! never inflate past an entry's declared size.
#![no_main]

use amber_core::archive::Archive;
use amber_core::storage::Storage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(archive) = Archive::from_storage(Storage::from_vec(data.to_vec(), "fuzz.zip")) else {
        return;
    };
    let entries = archive.entries().to_vec();
    for entry in &entries {
        // Every validated entry lies inside the input.
        assert!(entry.data_offset + entry.compressed_size <= data.len() as u64);
        if let Ok(bytes) = archive.read(&entry.name, Some(1 << 24)) {
            assert_eq!(bytes.len() as u64, entry.size);
        }
        let _ = archive.verify_crc(&entry.name);
        if let Ok(range) = archive.stored_range(&entry.name) {
            assert_eq!(range.len(), entry.compressed_size);
        }
    }
});
