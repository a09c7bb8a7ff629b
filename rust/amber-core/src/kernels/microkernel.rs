//! The microkernel contract shared by every ISA, and the table of one ISA's kernels.
//!
//! A microkernel computes an `MR x NR` tile of C from a packed A micro-panel (`k` steps of
//! `MR` values) and a B micro-panel (`k` steps of `NR` values, `rs_b` apart, so B can be
//! packed or read in place when its rows are contiguous). It writes the tile to C at row
//! stride `rs_c` and unit column stride, adding to C when `accumulate` (later k-blocks).

use super::activation::Activation;

/// `(k, a, rs_a, cs_a, b, rs_b, c, rs_c, accumulate)`; packed kernels ignore the A strides.
/// Safety: `a` addresses `MR x k` readable values, `b`
/// holds `k` rows of `NR` readable values `rs_b` apart, and C has `MR` rows of `NR` writable
/// values `rs_c` apart that no other thread touches. `a` and `b` may be misaligned for `T`
/// (read in place from a mapped file), so kernels read them with unaligned loads only.
pub type MicroKernel<T> = unsafe fn(usize, *const T, usize, usize, *const T, usize, *mut T, usize, bool);

/// Packs a `kb x nb` block of B into `nr`-wide panels (see `pack::pack_b`):
/// `(b, rs, cs, kb, nb, nr, dst)`. Safety: as `pack::pack_b`, and the CPU supports the ISA.
pub type PackB<T> = unsafe fn(*const T, usize, usize, usize, usize, usize, *mut T);

/// `act(row + bias)` over a row, compiled for the ISA. Safety: the CPU supports the ISA.
pub type RowEpilogue<T> = unsafe fn(Activation, &mut [T], Option<&[T]>);

/// `out = dy * act'(z)`, compiled for the ISA. Safety: the CPU supports the ISA.
pub type SliceBackward<T> = unsafe fn(Activation, &[T], &[T], &mut [T]);

/// One ISA's kernels and cache blocking for one element type.
pub struct Kernel<T: 'static> {
    /// Register block: rows of A per microkernel (at most) and columns of B.
    pub mr: usize,
    pub nr: usize,
    /// Cache blocks: rows of A packed at once (L2), depth per pass (keeps the B micro-panel in
    /// L1), and columns of B packed at once (L3).
    pub mc: usize,
    pub kc: usize,
    pub nc: usize,
    /// `by_rows[r - 1]` computes tiles of `r` rows from packed A, so the last rows of A need
    /// no padding; `by_rows_strided` reads A in place (used when packing A would not pay).
    pub by_rows: &'static [MicroKernel<T>],
    pub by_rows_strided: &'static [MicroKernel<T>],
    pub pack_b: PackB<T>,
    pub finish_row: RowEpilogue<T>,
    pub backward: SliceBackward<T>,
}

/// Declares a SIMD microkernel generic over its row count `R` for one ISA. `$nv` vectors of
/// `$lanes` lanes make up a row of the tile; accumulators stay in registers for all `k` steps.
macro_rules! simd_microkernel {
    (
        $name:ident, $feature:literal, $t:ty, $v:ty, $lanes:expr, $nv:expr,
        zero = $zero:path, load = $load:path, store = $store:path, splat = $splat:path,
        fma = $fma:path, add = $add:path
    ) => {
        #[target_feature(enable = $feature)]
        pub(crate) unsafe fn $name<const R: usize, const PACKED: bool>(
            k: usize,
            a: *const $t,
            rs_a: usize,
            cs_a: usize,
            b: *const $t,
            rs_b: usize,
            c: *mut $t,
            rs_c: usize,
            accumulate: bool,
        ) {
            // Fetch the C tile early: its rows are often a power of two apart and would
            // otherwise miss at the final loads and stores.
            for i in 0..R {
                let row = c.add(i * rs_c) as *const i8;
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(row);
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                    row.add($nv * $lanes * std::mem::size_of::<$t>() - 1),
                );
            }
            let mut acc: [[$v; $nv]; R] = [[$zero(); $nv]; R];
            let mut a = a;
            let mut b = b;
            for _ in 0..k {
                let mut bv: [$v; $nv] = [$zero(); $nv];
                for v in 0..$nv {
                    bv[v] = $load(b.add(v * $lanes));
                }
                for i in 0..R {
                    let ai = $splat(a.add(if PACKED { i } else { i * rs_a }).read_unaligned());
                    for v in 0..$nv {
                        acc[i][v] = $fma(ai, bv[v], acc[i][v]);
                    }
                }
                a = a.add(if PACKED { R } else { cs_a });
                b = b.add(rs_b);
            }
            for i in 0..R {
                let row = c.add(i * rs_c);
                for v in 0..$nv {
                    let p = row.add(v * $lanes);
                    let value = if accumulate { $add(acc[i][v], $load(p)) } else { acc[i][v] };
                    $store(p, value);
                }
            }
        }
    };
}
pub(crate) use simd_microkernel;

/// Lists `$kernel::<1, PACKED>` .. `$kernel::<N, PACKED>` as microkernel pointers.
macro_rules! kernels_by_rows {
    ($kernel:ident, $packed:literal; $($r:literal)*) => {
        &[$($kernel::<$r, $packed> as MicroKernel<_>),*]
    };
}
pub(crate) use kernels_by_rows;
