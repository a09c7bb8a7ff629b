//! NEON kernels (aarch64): 8 x 12 f32 and 8 x 6 f64 register tiles, 24 accumulators of the
//! 32 vector registers, fed by 3 vector loads of B and 8 broadcast loads of A per step.
//!
//! The tile shape follows from the register file (24 accumulators plus three B vectors and
//! the broadcasts fit in 32; the usual shape of aarch64 BLAS kernels). It is checked for
//! correctness under emulation (`qemu-aarch64`, `scripts/test-aarch64.sh`); no aarch64
//! machine was at hand to tune its speed, so the blocking follows the other paths.

use std::arch::aarch64::*;

use super::microkernel::{buffered_partial_access, isa_epilogues, kernels_by_rows, simd_microkernel, Kernel, MicroKernel};
use super::pack::pack_b_any;

// NEON has no lane masks: partial vectors go through a stack buffer.
buffered_partial_access!(load_part_f32, store_part_f32, f32, float32x4_t, 4, vld1q_f32, vst1q_f32);
buffered_partial_access!(load_part_f64, store_part_f64, f64, float64x2_t, 2, vld1q_f64, vst1q_f64);

/// `acc + a * b` with one rounding (`fmla`); the argument order of the x86 FMA intrinsics,
/// which the shared microkernel is written for (`vfmaq` takes the addend first).
#[inline(always)]
pub(crate) unsafe fn fma_f32(a: float32x4_t, b: float32x4_t, acc: float32x4_t) -> float32x4_t {
    vfmaq_f32(acc, a, b)
}
#[inline(always)]
unsafe fn fma_f64(a: float64x2_t, b: float64x2_t, acc: float64x2_t) -> float64x2_t {
    vfmaq_f64(acc, a, b)
}
#[inline(always)]
unsafe fn zero_f32() -> float32x4_t {
    vdupq_n_f32(0.0)
}
#[inline(always)]
unsafe fn zero_f64() -> float64x2_t {
    vdupq_n_f64(0.0)
}

// `fmax` returns NaN when either operand is NaN, so ReLU lets NaN through as numpy does.
simd_microkernel!(microkernel_f32, "neon", f32, float32x4_t, 4, 3,
    zero = zero_f32, load = vld1q_f32, store = vst1q_f32,
    splat = vdupq_n_f32, fma = fma_f32, add = vaddq_f32, max = vmaxq_f32,
    load_part = load_part_f32, store_part = store_part_f32);

simd_microkernel!(microkernel_f64, "neon", f64, float64x2_t, 2, 3,
    zero = zero_f64, load = vld1q_f64, store = vst1q_f64,
    splat = vdupq_n_f64, fma = fma_f64, add = vaddq_f64, max = vmaxq_f64,
    load_part = load_part_f64, store_part = store_part_f64);

isa_epilogues!("neon");

// Column blocks are whole panels (384 = 32 x 12, 192 = 32 x 6); the A block (128 rows) and a
// depth block of 256 keep the packed panels within the 1 MB L2 of current aarch64 cores.
pub(crate) static F32: Kernel<f32> = Kernel {
    mr: 8,
    nr: 12,
    mc: 128,
    kc: 256,
    nc: 384,
    column_cost: 5,
    align: 16,
    by_rows: kernels_by_rows!(microkernel_f32, true; 1 2 3 4 5 6 7 8),
    by_rows_strided: kernels_by_rows!(microkernel_f32, false; 1 2 3 4 5 6 7 8),
    pack_b: pack_b_any::<f32>,
    finish_row: finish_row_f32,
    backward: backward_f32,
};

pub(crate) static F64: Kernel<f64> = Kernel {
    mr: 8,
    nr: 6,
    mc: 128,
    kc: 256,
    nc: 192,
    column_cost: 5,
    align: 16,
    by_rows: kernels_by_rows!(microkernel_f64, true; 1 2 3 4 5 6 7 8),
    by_rows_strided: kernels_by_rows!(microkernel_f64, false; 1 2 3 4 5 6 7 8),
    pack_b: pack_b_any::<f64>,
    finish_row: finish_row_f64,
    backward: backward_f64,
};

/// The only tile of each type on this path.
pub(crate) static F32_TILES: [&Kernel<f32>; 1] = [&F32];
pub(crate) static F64_TILES: [&Kernel<f64>; 1] = [&F64];
