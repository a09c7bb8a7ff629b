//! AVX2 + FMA kernels (x86-64): 6 x 16 f32 and 6 x 8 f64 register tiles, 12 accumulators in
//! 16 ymm registers, which hides the FMA latency of two pipes.

use std::arch::x86_64::*;

use super::pack::pack_b_any;
use super::microkernel::{buffered_partial_access, isa_epilogues, kernels_by_rows, simd_microkernel, Kernel, MicroKernel};

// AVX2 has no per-lane masks for every type: partial vectors go through a stack buffer.
buffered_partial_access!(load_part_f32, store_part_f32, f32, __m256, 8, _mm256_loadu_ps, _mm256_storeu_ps);
buffered_partial_access!(load_part_f64, store_part_f64, f64, __m256d, 4, _mm256_loadu_pd, _mm256_storeu_pd);

simd_microkernel!(microkernel_f32, "avx2,fma", f32, __m256, 8, 2,
    zero = _mm256_setzero_ps, load = _mm256_loadu_ps, store = _mm256_storeu_ps,
    splat = _mm256_set1_ps, fma = _mm256_fmadd_ps, add = _mm256_add_ps, max = _mm256_max_ps,
    load_part = load_part_f32, store_part = store_part_f32);

simd_microkernel!(microkernel_f64, "avx2,fma", f64, __m256d, 4, 2,
    zero = _mm256_setzero_pd, load = _mm256_loadu_pd, store = _mm256_storeu_pd,
    splat = _mm256_set1_pd, fma = _mm256_fmadd_pd, add = _mm256_add_pd, max = _mm256_max_pd,
    load_part = load_part_f64, store_part = store_part_f64);

isa_epilogues!("avx2,fma");

pub(crate) static F32: Kernel<f32> = Kernel {
    mr: 6,
    nr: 16,
    mc: 144,
    kc: 256,
    nc: 512,
    column_cost: 5,
    align: 32,
    by_rows: kernels_by_rows!(microkernel_f32, true; 1 2 3 4 5 6),
    by_rows_strided: kernels_by_rows!(microkernel_f32, false; 1 2 3 4 5 6),
    pack_b: pack_b_any::<f32>,
    finish_row: finish_row_f32,
    backward: backward_f32,
};

pub(crate) static F64: Kernel<f64> = Kernel {
    mr: 6,
    nr: 8,
    mc: 144,
    kc: 256,
    nc: 256,
    column_cost: 5,
    align: 32,
    by_rows: kernels_by_rows!(microkernel_f64, true; 1 2 3 4 5 6),
    by_rows_strided: kernels_by_rows!(microkernel_f64, false; 1 2 3 4 5 6),
    pack_b: pack_b_any::<f64>,
    finish_row: finish_row_f64,
    backward: backward_f64,
};

/// The only tile of each type on this path.
pub(crate) static F32_TILES: [&Kernel<f32>; 1] = [&F32];
pub(crate) static F64_TILES: [&Kernel<f64>; 1] = [&F64];
