//! Packing: copy blocks of A and B into the contiguous panel order the microkernels stream,
//! reading the operands through any strides (this is where transposes cost nothing).
//!
//! Safety of every function here: the source pointer with its strides addresses only
//! elements inside a view checked by `MatRef`, and `dst` has room for the packed block. The
//! source may be misaligned (a mapped file), so it is read only with unaligned reads; `dst`
//! is our own buffer.

/// The row panels of a block of `mb` rows, as (first row, rows): as few panels as tiles of
/// `mr` rows need, with the rows spread evenly over them (32 rows in tiles of 6 are 6, 6, 5, 5,
/// 5, 5 rather than 6 x 5 and 2: a 2-row tile has too few accumulators to hide the FMA
/// latency and runs at half speed).
pub(crate) fn row_panels(mb: usize, mr: usize) -> impl Iterator<Item = (usize, usize)> {
    let panels = mb.div_ceil(mr);
    let (base, extra) = mb.checked_div(panels).map_or((0, 0), |base| (base, mb % panels));
    (0..panels).map(move |q| (q * base + q.min(extra), base + usize::from(q < extra)))
}

/// Packs an `mb x kb` block of A into the panels of `row_panels(mb, mr)`: the panel of `r`
/// rows starting at row `i0` is at `i0 * kb` and holds `kb` steps of `r` values (no padding:
/// a microkernel of exactly `r` rows handles it).
pub(crate) unsafe fn pack_a<T: Copy>(a: *const T, rs: usize, cs: usize, mb: usize, kb: usize, mr: usize, dst: *mut T) {
    for (i0, r) in row_panels(mb, mr) {
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
    }
}

/// Packs a `kb x nb` block of B into panels of `nr` columns, each `kb` rows of `nr` values;
/// the last panel is padded with zeros so the microkernel can always load full vectors.
/// Rows are read whole, one after another: B can be far larger than the caches (a 4096 x
/// 4096 Dense kernel), and reading it panel by panel touched a new page per row and left
/// the packing waiting on memory (4x slower for a 32 x 4096 x 4096 product).
pub(crate) unsafe fn pack_b<T: Copy>(b: *const T, rs: usize, cs: usize, kb: usize, nb: usize, nr: usize, zero: T, dst: *mut T) {
    if cs == 1 && rs == nr && nb == nr {
        std::ptr::copy_nonoverlapping(b as *const u8, dst as *mut u8, kb * nr * std::mem::size_of::<T>());
        return;
    }
    for p in 0..kb {
        let row = b.add(p * rs);
        let mut j0 = 0;
        while j0 < nb {
            let w = nr.min(nb - j0);
            let out = dst.add(j0 * kb + p * nr);
            if cs == 1 {
                // Copied as bytes: a typed copy would require an aligned source.
                std::ptr::copy_nonoverlapping(row.add(j0) as *const u8, out as *mut u8, w * std::mem::size_of::<T>());
            } else {
                for j in 0..w {
                    *out.add(j) = row.add((j0 + j) * cs).read_unaligned();
                }
            }
            for j in w..nr {
                *out.add(j) = zero;
            }
            j0 += nr;
        }
    }
}

/// `pack_b` padding with `T::ZERO`, as a `PackB` for the kernel tables.
pub(crate) unsafe fn pack_b_any<T: super::element::Element>(b: *const T, rs: usize, cs: usize, kb: usize, nb: usize, nr: usize, dst: *mut T) {
    pack_b(b, rs, cs, kb, nb, nr, T::ZERO, dst)
}
