//! Fuzz the HDF5 reader: any input must open, walk and read without panicking, hanging or
//! allocating without bound; errors are fine.
#![no_main]

use amber_core::h5::read::{H5File, Kind};
use amber_core::storage::Storage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = H5File::from_range(Storage::from_vec(data.to_vec(), "fuzz.h5").full()) else {
        return;
    };
    let _ = file.attrs("/");
    let _ = file.members("/");
    let Ok(objects) = file.visit() else {
        return;
    };
    for (path, kind) in objects {
        let _ = file.kind(&path);
        let _ = file.attrs(&path);
        match kind {
            Kind::Group => {
                let _ = file.members(&path);
            }
            Kind::Dataset => {
                let _ = file.dataset(&path);
                let _ = file.read(&path);
            }
        }
    }
});
