//! The machine's floating-point peak, measured: independent FMA chains that never touch
//! memory, on every worker thread at once. Benchmarks report GEMM speed as a share of it.

use std::time::Instant;

use super::dispatch::Isa;

/// f32 FLOP/s of `threads` threads each running `iterations` rounds of 12 independent
/// vector FMAs on `isa` (AVX-512, AVX2 or NEON; the portable path reports 0).
pub fn peak_f32_flops(isa: Isa, threads: usize, iterations: u64) -> f64 {
    if !isa.is_supported() {
        return 0.0;
    }
    let start = Instant::now();
    let flops_each: f64 = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.max(1)).map(|_| scope.spawn(move || one_thread(isa, iterations))).collect();
        workers.into_iter().map(|w| w.join().unwrap_or(0.0)).sum()
    });
    flops_each / start.elapsed().as_secs_f64()
}

fn one_thread(isa: Isa, iterations: u64) -> f64 {
    // Safety: `peak_f32_flops` checked that the CPU supports `isa`.
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { fma_loop_avx512(iterations) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { fma_loop_avx2(iterations) },
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => unsafe { fma_loop_neon(iterations) },
        _ => 0.0,
    }
}

/// Twelve chains hide the FMA latency (4 cycles) on two pipes; the result is kept alive
/// through `black_box` so the loop is not removed.
macro_rules! fma_loop {
    ($name:ident, $arch:literal, $feature:literal, $v:ty, $lanes:expr, $set:path, $fma:path) => {
        #[cfg(target_arch = $arch)]
        #[target_feature(enable = $feature)]
        unsafe fn $name(iterations: u64) -> f64 {
            #[cfg(target_arch = "x86_64")]
            use std::arch::x86_64::*;
            #[cfg(target_arch = "aarch64")]
            use std::arch::aarch64::*;
            let x = $set(std::hint::black_box(0.999_999));
            let y = $set(std::hint::black_box(1e-7));
            let mut acc: [$v; 12] = [$set(1.0); 12];
            for _ in 0..iterations {
                for a in acc.iter_mut() {
                    *a = $fma(*a, x, y);
                }
            }
            std::hint::black_box(acc);
            iterations as f64 * 12.0 * 2.0 * $lanes as f64
        }
    };
}

fma_loop!(fma_loop_avx512, "x86_64", "avx512f", __m512, 16, _mm512_set1_ps, _mm512_fmadd_ps);
fma_loop!(fma_loop_avx2, "x86_64", "avx2,fma", __m256, 8, _mm256_set1_ps, _mm256_fmadd_ps);
fma_loop!(fma_loop_neon, "aarch64", "neon", float32x4_t, 4, vdupq_n_f32, super::neon::fma_f32);

