//! Packing: copy blocks of A and B into the contiguous panel order the microkernels stream,
//! reading the operands through any strides (this is where transposes cost nothing).
//!
//! Safety of every function here: the source pointer with its strides addresses only
//! elements inside a view checked by `MatRef`, and `dst` has room for the packed block. The
//! source may be misaligned (a mapped file), so it is read only with unaligned reads; `dst`
//! is our own buffer.

/// Packs an `mb x kb` block of A into panels of `mr` rows. Panel `q` starts at `q * mr * kb`
/// and holds `kb` steps of `r = min(mr, mb - q * mr)` values: the last panel is not padded,
/// because a microkernel of exactly `r` rows handles it.
pub(crate) unsafe fn pack_a<T: Copy>(a: *const T, rs: usize, cs: usize, mb: usize, kb: usize, mr: usize, dst: *mut T) {
    let mut i0 = 0;
    while i0 < mb {
        let r = mr.min(mb - i0);
        let panel = dst.add(i0 * kb);
        let src = a.add(i0 * rs);
        if cs == 1 && rs != 1 {
            // Row-major A: read each row contiguously, scatter into the panel.
            for i in 0..r {
                let row = src.add(i * rs);
                for p in 0..kb {
                    *panel.add(p * r + i) = row.add(p).read_unaligned();
                }
            }
        } else {
            // Column-major (transposed) or general strides: one column of the panel at a time.
            for p in 0..kb {
                let col = src.add(p * cs);
                let out = panel.add(p * r);
                for i in 0..r {
                    *out.add(i) = col.add(i * rs).read_unaligned();
                }
            }
        }
        i0 += mr;
    }
}

/// Packs a `kb x nb` block of B into panels of `nr` columns, each `kb` rows of `nr` values;
/// the last panel is padded with zeros so the microkernel can always load full vectors.
pub(crate) unsafe fn pack_b<T: Copy>(b: *const T, rs: usize, cs: usize, kb: usize, nb: usize, nr: usize, zero: T, dst: *mut T) {
    let mut j0 = 0;
    while j0 < nb {
        let w = nr.min(nb - j0);
        let panel = dst.add(j0 * kb);
        let src = b.add(j0 * cs);
        if cs == 1 {
            for p in 0..kb {
                let row = src.add(p * rs);
                let out = panel.add(p * nr);
                // Copied as bytes: a typed copy would require an aligned source.
                std::ptr::copy_nonoverlapping(row as *const u8, out as *mut u8, w * std::mem::size_of::<T>());
                for j in w..nr {
                    *out.add(j) = zero;
                }
            }
        } else {
            for p in 0..kb {
                let row = src.add(p * rs);
                let out = panel.add(p * nr);
                for j in 0..w {
                    *out.add(j) = row.add(j * cs).read_unaligned();
                }
                for j in w..nr {
                    *out.add(j) = zero;
                }
            }
        }
        j0 += nr;
    }
}
