//! AVX-512F kernels (x86-64), three register tiles per type. The main one is 6 rows x 4
//! vectors (6 x 64 f32, 6 x 32 f64): 24 accumulators fed by 10 loads per 24 FMAs. On an Ice
//! Lake Xeon, whose two load ports are the limit, it ran 10-35% faster than 12 x 2 vectors
//! (14 loads per 24 FMAs) and 9 x 3 (12 per 27) from 32x784x64 to 1024^3. The narrow (12 x 2
//! vectors) and slim (12 x 1) tiles serve outputs whose width the main tile would mostly pad
//! (a 10-unit Dense layer); partial vectors are written with lane masks.

use std::arch::x86_64::*;

use super::pack::pack_b_any;
use super::microkernel::{isa_epilogues, kernels_by_rows, simd_microkernel, Kernel, MicroKernel};

/// The first `count` lanes (1..=16) of a partial vector; the rest read as zero.
#[inline(always)]
unsafe fn load_part_f32(p: *const f32, count: usize) -> __m512 {
    _mm512_maskz_loadu_ps(((1u32 << count) - 1) as __mmask16, p)
}
#[inline(always)]
unsafe fn store_part_f32(p: *mut f32, v: __m512, count: usize) {
    _mm512_mask_storeu_ps(p, ((1u32 << count) - 1) as __mmask16, v)
}
#[inline(always)]
unsafe fn load_part_f64(p: *const f64, count: usize) -> __m512d {
    _mm512_maskz_loadu_pd(((1u32 << count) - 1) as __mmask8, p)
}
#[inline(always)]
unsafe fn store_part_f64(p: *mut f64, v: __m512d, count: usize) {
    _mm512_mask_storeu_pd(p, ((1u32 << count) - 1) as __mmask8, v)
}

simd_microkernel!(microkernel_f32, "avx512f", f32, __m512, 16, 4,
    zero = _mm512_setzero_ps, load = _mm512_loadu_ps, store = _mm512_storeu_ps,
    splat = _mm512_set1_ps, fma = _mm512_fmadd_ps, add = _mm512_add_ps, max = _mm512_max_ps,
    load_part = load_part_f32, store_part = store_part_f32);

simd_microkernel!(microkernel_f32_narrow, "avx512f", f32, __m512, 16, 2,
    zero = _mm512_setzero_ps, load = _mm512_loadu_ps, store = _mm512_storeu_ps,
    splat = _mm512_set1_ps, fma = _mm512_fmadd_ps, add = _mm512_add_ps, max = _mm512_max_ps,
    load_part = load_part_f32, store_part = store_part_f32);

simd_microkernel!(microkernel_f32_slim, "avx512f", f32, __m512, 16, 1,
    zero = _mm512_setzero_ps, load = _mm512_loadu_ps, store = _mm512_storeu_ps,
    splat = _mm512_set1_ps, fma = _mm512_fmadd_ps, add = _mm512_add_ps, max = _mm512_max_ps,
    load_part = load_part_f32, store_part = store_part_f32);

simd_microkernel!(microkernel_f64, "avx512f", f64, __m512d, 8, 4,
    zero = _mm512_setzero_pd, load = _mm512_loadu_pd, store = _mm512_storeu_pd,
    splat = _mm512_set1_pd, fma = _mm512_fmadd_pd, add = _mm512_add_pd, max = _mm512_max_pd,
    load_part = load_part_f64, store_part = store_part_f64);

simd_microkernel!(microkernel_f64_narrow, "avx512f", f64, __m512d, 8, 2,
    zero = _mm512_setzero_pd, load = _mm512_loadu_pd, store = _mm512_storeu_pd,
    splat = _mm512_set1_pd, fma = _mm512_fmadd_pd, add = _mm512_add_pd, max = _mm512_max_pd,
    load_part = load_part_f64, store_part = store_part_f64);

simd_microkernel!(microkernel_f64_slim, "avx512f", f64, __m512d, 8, 1,
    zero = _mm512_setzero_pd, load = _mm512_loadu_pd, store = _mm512_storeu_pd,
    splat = _mm512_set1_pd, fma = _mm512_fmadd_pd, add = _mm512_add_pd, max = _mm512_max_pd,
    load_part = load_part_f64, store_part = store_part_f64);

isa_epilogues!("avx512f");

/// Packs B for the f32 tiles. A B with unit row stride (a transposed view, as `w.t()` in
/// Dense's `dz·wᵀ`) is packed by 16 x 16 in-register transposes: the element-wise copy reads
/// each column with a stride and took as long as the product itself for a 32x64x784 `dz·wᵀ`.
#[target_feature(enable = "avx512f")]
unsafe fn pack_b_f32(b: *const f32, rs: usize, cs: usize, kb: usize, nb: usize, nr: usize, dst: *mut f32) {
    if rs != 1 || cs == 1 || !nr.is_multiple_of(16) {
        return pack_b_any::<f32>(b, rs, cs, kb, nb, nr, dst);
    }
    let mut j0 = 0;
    while j0 < nb {
        let w = nr.min(nb - j0);
        let panel = dst.add(j0 * kb);
        // Column blocks of 16 across the panel (zero rows beyond `w` give the padding),
        // depth blocks of 16 down it.
        for jj in (0..nr).step_by(16) {
            let cols = w.saturating_sub(jj).min(16);
            let mut p0 = 0;
            while p0 < kb {
                let depth = (kb - p0).min(16);
                let mask: __mmask16 = if depth == 16 { 0xffff } else { (1u16 << depth) - 1 };
                let mut rows = [_mm512_setzero_ps(); 16];
                for (q, row) in rows.iter_mut().enumerate().take(cols) {
                    // Column j0 + jj + q of B, depths p0 .. p0 + depth (contiguous).
                    *row = _mm512_maskz_loadu_ps(mask, b.add((j0 + jj + q) * cs + p0));
                }
                let out = transpose16(rows);
                for (q, value) in out.iter().enumerate().take(depth) {
                    _mm512_storeu_ps(panel.add((p0 + q) * nr + jj), *value);
                }
                p0 += 16;
            }
        }
        j0 += nr;
    }
}

/// Transposes 16 rows of 16 floats: unpacks interleave pairs of rows and then pairs of
/// pairs inside each 128-bit lane, and two lane shuffles transpose the 4 x 4 grid of lanes.
#[target_feature(enable = "avx512f")]
unsafe fn transpose16(r: [__m512; 16]) -> [__m512; 16] {
    let mut t = [_mm512_setzero_ps(); 16];
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    // u[4g + e], lane L: element 4L + e of rows 4g .. 4g + 3.
    let mut u = [_mm512_setzero_ps(); 16];
    for g in 0..4 {
        let (lo0, hi0) = (_mm512_castps_pd(t[4 * g]), _mm512_castps_pd(t[4 * g + 2]));
        let (lo1, hi1) = (_mm512_castps_pd(t[4 * g + 1]), _mm512_castps_pd(t[4 * g + 3]));
        u[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(lo0, hi0));
        u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(lo0, hi0));
        u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(lo1, hi1));
        u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(lo1, hi1));
    }
    // Output row 4L + e gathers lane L of u[e], u[4 + e], u[8 + e], u[12 + e].
    let mut out = [_mm512_setzero_ps(); 16];
    for e in 0..4 {
        let w0 = _mm512_shuffle_f32x4::<0x88>(u[e], u[4 + e]);
        let w1 = _mm512_shuffle_f32x4::<0xDD>(u[e], u[4 + e]);
        let w2 = _mm512_shuffle_f32x4::<0x88>(u[8 + e], u[12 + e]);
        let w3 = _mm512_shuffle_f32x4::<0xDD>(u[8 + e], u[12 + e]);
        out[e] = _mm512_shuffle_f32x4::<0x88>(w0, w2);
        out[8 + e] = _mm512_shuffle_f32x4::<0xDD>(w0, w2);
        out[4 + e] = _mm512_shuffle_f32x4::<0x88>(w1, w3);
        out[12 + e] = _mm512_shuffle_f32x4::<0xDD>(w1, w3);
    }
    out
}

// f32 depth blocks of 512 (was 256, before that 128): each halving of the passes over C
// paid, since a large product's C tile comes from L3 at the end of every depth block.
// Interleaved two-thread runs: +7-13% at 512^3-2048^3, single thread +10-20% at 1024^3 and
// up, level within noise at Dense shapes (256x784->64, 32x784->32). The B micro-panel no
// longer fits L1 beside everything else; it streams from L2 fast enough for these tiles.
// Column blocks of 384 are whole panels of both tiles.
pub(crate) static F32: Kernel<f32> = Kernel {
    mr: 6,
    nr: 64,
    mc: 144,
    kc: 512,
    nc: 384,
    column_cost: 5,
    align: 64,
    by_rows: kernels_by_rows!(microkernel_f32, true; 1 2 3 4 5 6),
    by_rows_strided: kernels_by_rows!(microkernel_f32, false; 1 2 3 4 5 6),
    pack_b: pack_b_f32,
    finish_row: finish_row_f32,
    backward: backward_f32,
};

pub(crate) static F32_NARROW: Kernel<f32> = Kernel {
    mr: 12,
    nr: 32,
    mc: 144,
    kc: 512,
    nc: 384,
    column_cost: 6,
    align: 64,
    by_rows: kernels_by_rows!(microkernel_f32_narrow, true; 1 2 3 4 5 6 7 8 9 10 11 12),
    by_rows_strided: kernels_by_rows!(microkernel_f32_narrow, false; 1 2 3 4 5 6 7 8 9 10 11 12),
    pack_b: pack_b_f32,
    finish_row: finish_row_f32,
    backward: backward_f32,
};

pub(crate) static F32_SLIM: Kernel<f32> = Kernel {
    mr: 12,
    nr: 16,
    mc: 144,
    kc: 512,
    nc: 384,
    column_cost: 8,
    align: 64,
    by_rows: kernels_by_rows!(microkernel_f32_slim, true; 1 2 3 4 5 6 7 8 9 10 11 12),
    by_rows_strided: kernels_by_rows!(microkernel_f32_slim, false; 1 2 3 4 5 6 7 8 9 10 11 12),
    pack_b: pack_b_f32,
    finish_row: finish_row_f32,
    backward: backward_f32,
};

pub(crate) static F64: Kernel<f64> = Kernel {
    mr: 6,
    nr: 32,
    mc: 144,
    kc: 256,
    nc: 192,
    column_cost: 5,
    align: 64,
    by_rows: kernels_by_rows!(microkernel_f64, true; 1 2 3 4 5 6),
    by_rows_strided: kernels_by_rows!(microkernel_f64, false; 1 2 3 4 5 6),
    pack_b: pack_b_any::<f64>,
    finish_row: finish_row_f64,
    backward: backward_f64,
};

pub(crate) static F64_NARROW: Kernel<f64> = Kernel {
    mr: 12,
    nr: 16,
    mc: 144,
    kc: 256,
    nc: 192,
    column_cost: 6,
    align: 64,
    by_rows: kernels_by_rows!(microkernel_f64_narrow, true; 1 2 3 4 5 6 7 8 9 10 11 12),
    by_rows_strided: kernels_by_rows!(microkernel_f64_narrow, false; 1 2 3 4 5 6 7 8 9 10 11 12),
    pack_b: pack_b_any::<f64>,
    finish_row: finish_row_f64,
    backward: backward_f64,
};

pub(crate) static F64_SLIM: Kernel<f64> = Kernel {
    mr: 12,
    nr: 8,
    mc: 144,
    kc: 256,
    nc: 192,
    column_cost: 8,
    align: 64,
    by_rows: kernels_by_rows!(microkernel_f64_slim, true; 1 2 3 4 5 6 7 8 9 10 11 12),
    by_rows_strided: kernels_by_rows!(microkernel_f64_slim, false; 1 2 3 4 5 6 7 8 9 10 11 12),
    pack_b: pack_b_any::<f64>,
    finish_row: finish_row_f64,
    backward: backward_f64,
};

/// The f32 tiles, main first.
pub(crate) static F32_TILES: [&Kernel<f32>; 3] = [&F32, &F32_NARROW, &F32_SLIM];
/// The f64 tiles, main first.
pub(crate) static F64_TILES: [&Kernel<f64>; 3] = [&F64, &F64_NARROW, &F64_SLIM];
