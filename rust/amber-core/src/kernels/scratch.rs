//! Per-thread packing buffers, kept between products: allocating and zeroing them on every
//! call cost more than the arithmetic of a small Dense layer. Buffers start at 64-byte
//! boundaries so packed panels sit on whole cache lines.

use std::cell::RefCell;

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

thread_local! {
    static SCRATCH: RefCell<Vec<Line>> = const { RefCell::new(Vec::new()) };
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
