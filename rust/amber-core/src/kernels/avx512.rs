//! AVX-512F kernels (x86-64), two register tiles per type. The main one is 6 rows x 4
//! vectors (6 x 64 f32, 6 x 32 f64): 24 accumulators fed by 10 loads per 24 FMAs. On an Ice
//! Lake Xeon, whose two load ports are the limit, it ran 10-35% faster than 12 x 2 vectors
//! (14 loads per 24 FMAs) and 9 x 3 (12 per 27) from 32x784x64 to 1024^3. The narrow tile
//! (12 x 2 vectors) serves outputs whose width the main tile would mostly pad.

use std::arch::x86_64::*;

use super::activation::{backward_slice, finish_row, Activation};
use super::microkernel::{kernels_by_rows, simd_microkernel, Kernel, MicroKernel};

simd_microkernel!(microkernel_f32, "avx512f", f32, __m512, 16, 4,
    zero = _mm512_setzero_ps, load = _mm512_loadu_ps, store = _mm512_storeu_ps,
    splat = _mm512_set1_ps, fma = _mm512_fmadd_ps, add = _mm512_add_ps);

simd_microkernel!(microkernel_f32_narrow, "avx512f", f32, __m512, 16, 2,
    zero = _mm512_setzero_ps, load = _mm512_loadu_ps, store = _mm512_storeu_ps,
    splat = _mm512_set1_ps, fma = _mm512_fmadd_ps, add = _mm512_add_ps);

simd_microkernel!(microkernel_f64, "avx512f", f64, __m512d, 8, 4,
    zero = _mm512_setzero_pd, load = _mm512_loadu_pd, store = _mm512_storeu_pd,
    splat = _mm512_set1_pd, fma = _mm512_fmadd_pd, add = _mm512_add_pd);

simd_microkernel!(microkernel_f64_narrow, "avx512f", f64, __m512d, 8, 2,
    zero = _mm512_setzero_pd, load = _mm512_loadu_pd, store = _mm512_storeu_pd,
    splat = _mm512_set1_pd, fma = _mm512_fmadd_pd, add = _mm512_add_pd);

#[target_feature(enable = "avx512f")]
unsafe fn finish_row_f32(act: Activation, row: &mut [f32], bias: Option<&[f32]>) {
    finish_row(act, row, bias)
}
#[target_feature(enable = "avx512f")]
unsafe fn finish_row_f64(act: Activation, row: &mut [f64], bias: Option<&[f64]>) {
    finish_row(act, row, bias)
}
#[target_feature(enable = "avx512f")]
unsafe fn backward_f32(act: Activation, z: &[f32], dy: &[f32], out: &mut [f32]) {
    backward_slice(act, z, dy, out)
}
#[target_feature(enable = "avx512f")]
unsafe fn backward_f64(act: Activation, z: &[f64], dy: &[f64], out: &mut [f64]) {
    backward_slice(act, z, dy, out)
}

// Depth blocks of 256 (was 128) halve the passes over C; the B micro-panel then no longer
// fits L1 beside everything else, but it streams from L2 fast enough for these tiles. Column
// blocks of 384 are whole panels of both tiles.
pub(crate) static F32: Kernel<f32> = Kernel {
    mr: 6,
    nr: 64,
    mc: 144,
    kc: 256,
    nc: 384,
    by_rows: kernels_by_rows!(microkernel_f32, true; 1 2 3 4 5 6),
    by_rows_strided: kernels_by_rows!(microkernel_f32, false; 1 2 3 4 5 6),
    finish_row: finish_row_f32,
    backward: backward_f32,
};

pub(crate) static F32_NARROW: Kernel<f32> = Kernel {
    mr: 12,
    nr: 32,
    mc: 144,
    kc: 256,
    nc: 384,
    by_rows: kernels_by_rows!(microkernel_f32_narrow, true; 1 2 3 4 5 6 7 8 9 10 11 12),
    by_rows_strided: kernels_by_rows!(microkernel_f32_narrow, false; 1 2 3 4 5 6 7 8 9 10 11 12),
    finish_row: finish_row_f32,
    backward: backward_f32,
};

pub(crate) static F64: Kernel<f64> = Kernel {
    mr: 6,
    nr: 32,
    mc: 144,
    kc: 256,
    nc: 192,
    by_rows: kernels_by_rows!(microkernel_f64, true; 1 2 3 4 5 6),
    by_rows_strided: kernels_by_rows!(microkernel_f64, false; 1 2 3 4 5 6),
    finish_row: finish_row_f64,
    backward: backward_f64,
};

pub(crate) static F64_NARROW: Kernel<f64> = Kernel {
    mr: 12,
    nr: 16,
    mc: 144,
    kc: 256,
    nc: 192,
    by_rows: kernels_by_rows!(microkernel_f64_narrow, true; 1 2 3 4 5 6 7 8 9 10 11 12),
    by_rows_strided: kernels_by_rows!(microkernel_f64_narrow, false; 1 2 3 4 5 6 7 8 9 10 11 12),
    finish_row: finish_row_f64,
    backward: backward_f64,
};
