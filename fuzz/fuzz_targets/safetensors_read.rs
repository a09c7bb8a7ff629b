//! Any bytes as a safetensors file: validation may fail, never panic; accepted tensors tile
//! the data section exactly.
#![no_main]

use amber_core::dtype::checked_nbytes;
use amber_core::safetensors::from_storage;
use amber_core::storage::Storage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = from_storage(Storage::from_vec(data.to_vec(), "fuzz.safetensors")) else {
        return;
    };
    let mut total = 0u64;
    for t in &file.tensors {
        assert_eq!(checked_nbytes(&t.shape, t.dtype).ok(), Some(t.data.len()));
        assert!(t.data.start() + t.data.len() <= data.len() as u64);
        total += t.data.len();
    }
    if let Some(first) = file.tensors.first() {
        assert_eq!(first.data.start() + total, data.len() as u64);
    }
});
