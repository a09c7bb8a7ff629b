//! The microkernel contract shared by every ISA, and the table of one ISA's kernels.
//!
//! A microkernel computes an `MR x NR` tile of C from a packed A micro-panel (`k` steps of
//! `MR` values) and a B micro-panel (`k` steps of `NR` values, `rs_b` apart, so B can be
//! packed or read in place when its rows are contiguous). It writes the first `cols` columns
//! of the tile to C at row stride `rs_c` and unit column stride, adding to C when
//! `accumulate` (later k-blocks), and on the last k-block it can add the bias and apply ReLU
//! while the tile is still in registers.

use super::activation::Activation;

/// Where and how a microkernel writes its tile.
#[derive(Clone, Copy)]
pub struct TileOut<T> {
    pub c: *mut T,
    pub rs_c: usize,
    /// Columns written, `1..=NR`; the rest of the register tile is padding.
    pub cols: usize,
    /// Add the tile to what C holds (depth blocks after the first).
    pub accumulate: bool,
    /// `cols` bias values added to each row, or null.
    pub bias: *const T,
    /// `max(0, z)` after the bias (NaN passes through, as numpy's `maximum`).
    pub relu: bool,
}

/// `(k, a, rs_a, cs_a, b, rs_b, out)`; packed kernels ignore the A strides.
/// Safety: `a` addresses `MR x k` readable values, `b` holds `k` rows of `NR` readable
/// values `rs_b` apart, and C has `MR` rows of `out.cols` writable values `rs_c` apart that
/// no other thread touches. `a` and `b` may be misaligned for `T` (read in place from a
/// mapped file), so kernels read them with unaligned loads only.
pub type MicroKernel<T> = unsafe fn(usize, *const T, usize, usize, *const T, usize, TileOut<T>);

/// Packs a `kb x nb` block of B into `nr`-wide panels (see `pack::pack_b`):
/// `(b, rs, cs, kb, nb, nr, dst)`. Safety: as `pack::pack_b`, and the CPU supports the ISA.
pub type PackB<T> = unsafe fn(*const T, usize, usize, usize, usize, usize, *mut T);

/// `act(row * scale + bias)` over a row, compiled for the ISA. Safety: the CPU supports the ISA.
pub type RowEpilogue<T> = unsafe fn(Activation, &mut [T], Option<&[T]>, Option<&[T]>);

/// `out = dy * act'(z)`, compiled for the ISA. Safety: the CPU supports the ISA.
pub type SliceBackward<T> = unsafe fn(Activation, &[T], &[T], &mut [T]);

/// One ISA's kernels and cache blocking for one element type.
pub struct Kernel<T: 'static> {
    /// Register block: rows of A per microkernel (at most) and columns of B.
    pub mr: usize,
    pub nr: usize,
    /// Cache blocks: rows of A per block (L2; packed only when A has no unit stride), depth
    /// per pass, and columns of B packed at once.
    pub mc: usize,
    pub kc: usize,
    pub nc: usize,
    /// Relative time per (padded) output column, for choosing among an ISA's tiles.
    pub column_cost: usize,
    /// Bytes of one vector load. B read in place whose rows start at multiples of it never
    /// has a load straddle two cache lines (see `gemm::b_aligned`).
    pub align: usize,
    /// `by_rows[r - 1]` computes tiles of `r` rows from packed A, so the last rows of A need
    /// no padding; `by_rows_strided` reads A in place (used when packing A would not pay).
    pub by_rows: &'static [MicroKernel<T>],
    pub by_rows_strided: &'static [MicroKernel<T>],
    pub pack_b: PackB<T>,
    pub finish_row: RowEpilogue<T>,
    pub backward: SliceBackward<T>,
}

/// Asks for the cache line holding `p` in L1 (a hint: it never faults, whatever `p` is).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) unsafe fn prefetch_l1(p: *const i8) {
    std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p);
}
#[cfg(target_arch = "aarch64")]
#[inline(always)]
pub(crate) unsafe fn prefetch_l1(p: *const i8) {
    // `prfm` is a hint like x86's prefetch; the stable intrinsic for it does not exist yet.
    std::arch::asm!("prfm pldl1keep, [{0}]", in(reg) p, options(nostack, readonly, preserves_flags));
}

/// Declares a SIMD microkernel generic over its row count `R` for one ISA. `$nv` vectors of
/// `$lanes` lanes make up a row of the tile; accumulators stay in registers for all `k` steps.
/// `load_part`/`store_part` move the first `count` lanes (a tile's last, partial vector).
macro_rules! simd_microkernel {
    (
        $name:ident, $feature:literal, $t:ty, $v:ty, $lanes:expr, $nv:expr,
        zero = $zero:path, load = $load:path, store = $store:path, splat = $splat:path,
        fma = $fma:path, add = $add:path, max = $max:path,
        load_part = $load_part:path, store_part = $store_part:path
    ) => {
        #[target_feature(enable = $feature)]
        pub(crate) unsafe fn $name<const R: usize, const PACKED: bool>(
            k: usize,
            a: *const $t,
            rs_a: usize,
            cs_a: usize,
            b: *const $t,
            rs_b: usize,
            out: $crate::kernels::microkernel::TileOut<$t>,
        ) {
            // Fetch the C tile early: its rows are often a power of two apart and would
            // otherwise miss at the final loads and stores.
            for i in 0..R {
                let row = out.c.add(i * out.rs_c) as *const i8;
                $crate::kernels::microkernel::prefetch_l1(row);
                $crate::kernels::microkernel::prefetch_l1(row.add(out.cols * std::mem::size_of::<$t>() - 1));
            }
            let mut acc: [[$v; $nv]; R] = [[$zero(); $nv]; R];
            // A read in place: one base pointer per three rows, each row at base + 0, 1 or 2
            // row strides (a scaled-index address). Stepping one pointer through all R rows
            // made a chain of R dependent adds per step, slower than the FMAs of thin tiles.
            let mut bases: [*const $t; 4] = [a; 4];
            for (g, base) in bases.iter_mut().enumerate() {
                *base = a.wrapping_add(if PACKED { 3 * g } else { 3 * g * rs_a });
            }
            let row_step = if PACKED { 1 } else { rs_a };
            let mut b = b;
            for _ in 0..k {
                let mut bv: [$v; $nv] = [$zero(); $nv];
                for v in 0..$nv {
                    bv[v] = $load(b.add(v * $lanes));
                }
                for i in 0..R {
                    let ai = $splat(bases[i / 3].add((i % 3) * row_step).read_unaligned());
                    for v in 0..$nv {
                        acc[i][v] = $fma(ai, bv[v], acc[i][v]);
                    }
                }
                for base in bases.iter_mut().take(R.div_ceil(3)) {
                    *base = base.wrapping_add(if PACKED { R } else { cs_a });
                }
                b = b.add(rs_b);
            }
            for i in 0..R {
                let row = out.c.add(i * out.rs_c);
                for v in 0..$nv {
                    let first = v * $lanes;
                    if first >= out.cols {
                        break;
                    }
                    let count = (out.cols - first).min($lanes);
                    let p = row.add(first);
                    let full = count == $lanes;
                    let mut value = acc[i][v];
                    if out.accumulate {
                        value = $add(value, if full { $load(p) } else { $load_part(p, count) });
                    }
                    if !out.bias.is_null() {
                        let bias = out.bias.add(first);
                        value = $add(value, if full { $load(bias) } else { $load_part(bias, count) });
                    }
                    if out.relu {
                        // Zero first: on NaN the instruction returns its second operand.
                        value = $max($zero(), value);
                    }
                    if full {
                        $store(p, value)
                    } else {
                        $store_part(p, value, count)
                    }
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

/// Declares one ISA's epilogue entry points, `finish_row_f32/f64` and `backward_f32/f64`: the
/// generic `finish_row` / `backward_slice` compiled with the ISA's target feature, so their
/// loops vectorise for it.
macro_rules! isa_epilogues {
    ($feature:literal) => {
        #[target_feature(enable = $feature)]
        unsafe fn finish_row_f32(act: $crate::kernels::activation::Activation, row: &mut [f32], scale: Option<&[f32]>, bias: Option<&[f32]>) {
            $crate::kernels::activation::finish_row(act, row, scale, bias)
        }
        #[target_feature(enable = $feature)]
        unsafe fn finish_row_f64(act: $crate::kernels::activation::Activation, row: &mut [f64], scale: Option<&[f64]>, bias: Option<&[f64]>) {
            $crate::kernels::activation::finish_row(act, row, scale, bias)
        }
        #[target_feature(enable = $feature)]
        unsafe fn backward_f32(act: $crate::kernels::activation::Activation, z: &[f32], dy: &[f32], out: &mut [f32]) {
            $crate::kernels::activation::backward_slice(act, z, dy, out)
        }
        #[target_feature(enable = $feature)]
        unsafe fn backward_f64(act: $crate::kernels::activation::Activation, z: &[f64], dy: &[f64], out: &mut [f64]) {
            $crate::kernels::activation::backward_slice(act, z, dy, out)
        }
    };
}
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) use isa_epilogues;

/// Declares `$load_part` / `$store_part` for an ISA without lane masks: the first `count`
/// lanes of a partial vector go through a zeroed stack buffer of `$lanes` values. They run
/// once per tile edge, not per step.
macro_rules! buffered_partial_access {
    ($load_part:ident, $store_part:ident, $t:ty, $v:ty, $lanes:expr, $load:path, $store:path) => {
        #[inline(always)]
        unsafe fn $load_part(p: *const $t, count: usize) -> $v {
            let mut lanes = [0.0 as $t; $lanes];
            std::ptr::copy_nonoverlapping(p, lanes.as_mut_ptr(), count);
            $load(lanes.as_ptr())
        }
        #[inline(always)]
        unsafe fn $store_part(p: *mut $t, v: $v, count: usize) {
            let mut lanes = [0.0 as $t; $lanes];
            $store(lanes.as_mut_ptr(), v);
            std::ptr::copy_nonoverlapping(lanes.as_ptr(), p, count);
        }
    };
}
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) use buffered_partial_access;
