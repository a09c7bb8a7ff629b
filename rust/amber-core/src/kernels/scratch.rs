//! Per-thread packing buffers, kept between products: allocating and zeroing them on every
//! call cost more than the arithmetic of a small Dense layer. Buffers start at 64-byte
//! boundaries so packed panels sit on whole cache lines.

use std::cell::RefCell;

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

thread_local! {
    static SCRATCH: RefCell<Vec<Line>> = const { RefCell::new(Vec::new()) };
    /// The calling thread's B packed once for all threads of a product (see `gemm::run`);
    /// separate from `SCRATCH`, which the caller's own chunks use meanwhile.
    static SHARED: RefCell<Vec<Line>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with a buffer of `len` elements of `T` kept on this thread between products
/// (a fresh one if re-entered), 64-byte aligned, contents unspecified. Kept rather than
/// allocated per product: a fresh multi-megabyte buffer costs a page fault per 4 KiB.
pub(crate) fn with_shared<T: Copy, R>(len: usize, f: impl FnOnce(*mut T) -> R) -> R {
    let lines = (len * std::mem::size_of::<T>().max(1)).div_ceil(64);
    SHARED.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buffer) => {
            if buffer.len() < lines {
                *buffer = vec![Line([0; 64]); lines];
            }
            f(buffer.as_mut_ptr() as *mut T)
        }
        Err(_) => {
            let mut buffer = vec![Line([0; 64]); lines];
            f(buffer.as_mut_ptr() as *mut T)
        }
    })
}

/// Runs `f` with one buffer of `lens[i]` elements of `T` per requested length. The contents
/// are unspecified (left over from earlier products): callers write before they read.
pub(crate) fn with<T: Copy, R>(lens: &[usize; 3], f: impl FnOnce([*mut T; 3]) -> R) -> R {
    let size = std::mem::size_of::<T>().max(1);
    let lines = lens.map(|len| (len * size).div_ceil(64));
    let total: usize = lines.iter().sum();
    let carve = |base: *mut Line| {
        let mut out = [std::ptr::null_mut::<T>(); 3];
        let mut offset = 0;
        for (slot, &count) in out.iter_mut().zip(&lines) {
            // Safety: `offset + count <= total`, the length of the buffer at `base`.
            *slot = unsafe { base.add(offset) } as *mut T;
            offset += count;
        }
        out
    };
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buffer) => {
            if buffer.len() < total {
                *buffer = vec![Line([0; 64]); total];
            }
            f(carve(buffer.as_mut_ptr()))
        }
        // Re-entered on this thread (not done by the kernels today): use a fresh buffer.
        Err(_) => {
            let mut buffer = vec![Line([0; 64]); total];
            f(carve(buffer.as_mut_ptr()))
        }
    })
}
