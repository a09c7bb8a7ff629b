//! AVX-512F kernels (x86-64), two register tiles per type. The wide one (9 rows x 3 vectors,
//! 27 accumulators) needs 12 loads per 27 FMAs and ran 10-25% faster than the narrow one (12
//! x 2, 14 loads per 24 FMAs) on an Ice Lake Xeon, whose two load ports are then the limit;
//! the narrow one wastes less on padding when the output has few columns (a Dense layer with
//! 64 units is two narrow panels but one and a third wide ones).

use std::arch::x86_64::*;

use super::activation::{backward_slice, finish_row, Activation};
use super::microkernel::{kernels_by_rows, simd_microkernel, Kernel, MicroKernel};

simd_microkernel!(microkernel_f32, "avx512f", f32, __m512, 16, 2,
    zero = _mm512_setzero_ps, load = _mm512_loadu_ps, store = _mm512_storeu_ps,
    splat = _mm512_set1_ps, fma = _mm512_fmadd_ps, add = _mm512_add_ps);

simd_microkernel!(microkernel_f64, "avx512f", f64, __m512d, 8, 2,
    zero = _mm512_setzero_pd, load = _mm512_loadu_pd, store = _mm512_storeu_pd,
    splat = _mm512_set1_pd, fma = _mm512_fmadd_pd, add = _mm512_add_pd);

simd_microkernel!(microkernel_f32_wide, "avx512f", f32, __m512, 16, 3,
    zero = _mm512_setzero_ps, load = _mm512_loadu_ps, store = _mm512_storeu_ps,
    splat = _mm512_set1_ps, fma = _mm512_fmadd_ps, add = _mm512_add_ps);

simd_microkernel!(microkernel_f64_wide, "avx512f", f64, __m512d, 8, 3,
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

// Depth blocks of 256 halve the passes over C of the former 128 (B panels stream from L2
// well enough); column blocks of 384 are whole panels of both tiles.
pub(crate) static F32: Kernel<f32> = Kernel {
    mr: 12,
    nr: 32,
    mc: 144,
    kc: 256,
    nc: 384,
    by_rows: kernels_by_rows!(microkernel_f32, true; 1 2 3 4 5 6 7 8 9 10 11 12),
    by_rows_strided: kernels_by_rows!(microkernel_f32, false; 1 2 3 4 5 6 7 8 9 10 11 12),
    finish_row: finish_row_f32,
    backward: backward_f32,
};

pub(crate) static F32_WIDE: Kernel<f32> = Kernel {
    mr: 9,
    nr: 48,
    mc: 144,
    kc: 256,
    nc: 384,
    by_rows: kernels_by_rows!(microkernel_f32_wide, true; 1 2 3 4 5 6 7 8 9),
    by_rows_strided: kernels_by_rows!(microkernel_f32_wide, false; 1 2 3 4 5 6 7 8 9),
    finish_row: finish_row_f32,
    backward: backward_f32,
};

pub(crate) static F64: Kernel<f64> = Kernel {
    mr: 12,
    nr: 16,
    mc: 144,
    kc: 256,
    nc: 192,
    by_rows: kernels_by_rows!(microkernel_f64, true; 1 2 3 4 5 6 7 8 9 10 11 12),
    by_rows_strided: kernels_by_rows!(microkernel_f64, false; 1 2 3 4 5 6 7 8 9 10 11 12),
    finish_row: finish_row_f64,
    backward: backward_f64,
};

pub(crate) static F64_WIDE: Kernel<f64> = Kernel {
    mr: 9,
    nr: 24,
    mc: 144,
    kc: 256,
    nc: 192,
    by_rows: kernels_by_rows!(microkernel_f64_wide, true; 1 2 3 4 5 6 7 8 9),
    by_rows_strided: kernels_by_rows!(microkernel_f64_wide, false; 1 2 3 4 5 6 7 8 9),
    finish_row: finish_row_f64,
    backward: backward_f64,
};
