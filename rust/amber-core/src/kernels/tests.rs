//! Every ISA path this CPU has against a naive f64 triple loop, on edge and random shapes,
//! any strides, with and without the fused epilogue.

use super::*;

/// Deterministic values in [-1, 1) (a 64-bit LCG; no test dependency needed).
fn values(len: usize, seed: u64) -> Vec<f64> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

/// Reference `act(a·b + bias)` in f64 from views read element by element.
fn reference<T: Float>(a: MatRef<'_, T>, b: MatRef<'_, T>, bias: Option<&[T]>, act: Activation) -> Vec<f64> {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut sum = 0.0;
            for p in 0..k {
                sum += a.get(i, p).unwrap().to_f64() * b.get(p, j).unwrap().to_f64();
            }
            if let Some(bias) = bias {
                sum += bias[j].to_f64();
            }
            out[i * n + j] = act.apply(sum);
        }
    }
    out
}

/// Layouts of an operand: row-major, column-major (a transposed view), and a strided window.
#[derive(Clone, Copy, Debug)]
enum Layout {
    RowMajor,
    ColMajor,
    Strided,
}

fn make<T: Float>(rows: usize, cols: usize, layout: Layout, seed: u64) -> (Vec<T>, usize, usize) {
    let (rs, cs, len) = match layout {
        Layout::RowMajor => (cols, 1, rows * cols),
        Layout::ColMajor => (1, rows, rows * cols),
        Layout::Strided => (3 * cols + 1, 2, rows * (3 * cols + 1) + 1),
    };
    let data = values(len, seed).into_iter().map(T::from_f64).collect();
    (data, rs, cs)
}

fn check<T: Float>(isa: Isa, m: usize, k: usize, n: usize, la: Layout, lb: Layout, with_bias: bool, act: Activation, tol: f64) {
    let (ad, ars, acs) = make::<T>(m, k, la, 1 + m as u64);
    let (bd, brs, bcs) = make::<T>(k, n, lb, 7 + n as u64);
    let a = MatRef::new(&ad, m, k, ars, acs).unwrap();
    let b = MatRef::new(&bd, k, n, brs, bcs).unwrap();
    let bias: Vec<T> = values(n, 99).into_iter().map(T::from_f64).collect();
    let bias = if with_bias { Some(&bias[..]) } else { None };
    let want = reference(a, b, bias, act);
    // Output with a padded row stride, prefilled with garbage the kernel must overwrite.
    let ldc = n + 3;
    let mut out = vec![T::from_f64(1234.5); m * ldc];
    gemm_on(isa, a, b, bias, act, MatMut::new(&mut out, m, n, ldc, 1).unwrap()).unwrap();
    let bound = tol * (k as f64 + 1.0);
    for i in 0..m {
        for j in 0..n {
            let got = out[i * ldc + j].to_f64();
            let w = want[i * n + j];
            assert!(
                (got - w).abs() <= bound * (1.0 + w.abs()),
                "{isa:?} {m}x{k}x{n} {la:?}/{lb:?} bias={with_bias} {act:?}: C[{i},{j}] = {got}, want {w}"
            );
        }
        // The padding between rows is untouched.
        for j in n..ldc {
            assert_eq!(out[i * ldc + j].to_f64(), 1234.5);
        }
    }
}

const SHAPES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (1, 17, 1),
    (1, 64, 40),
    (40, 64, 1),
    (7, 13, 11),
    (12, 256, 32),
    (13, 257, 33),
    (37, 300, 71),
    (150, 70, 1030),
    (0, 5, 3),
    (3, 0, 4),
    (4, 5, 0),
];

#[test]
fn matmul_matches_reference_on_every_isa_and_layout() {
    for isa in supported_isas() {
        for &(m, k, n) in SHAPES {
            for la in [Layout::RowMajor, Layout::ColMajor, Layout::Strided] {
                for lb in [Layout::RowMajor, Layout::ColMajor, Layout::Strided] {
                    check::<f32>(isa, m, k, n, la, lb, false, Activation::Linear, 2e-7);
                    check::<f64>(isa, m, k, n, la, lb, false, Activation::Linear, 1e-15);
                }
            }
        }
    }
}

#[test]
fn fused_dense_matches_reference_for_every_activation() {
    for isa in supported_isas() {
        for act in Activation::ALL {
            for &(m, k, n) in &[(1, 784, 64), (33, 64, 10), (5, 0, 7), (64, 300, 70)] {
                check::<f32>(isa, m, k, n, Layout::RowMajor, Layout::RowMajor, true, act, 4e-7);
                check::<f64>(isa, m, k, n, Layout::RowMajor, Layout::ColMajor, true, act, 1e-14);
            }
            check::<f32>(isa, 9, 20, 5, Layout::RowMajor, Layout::RowMajor, false, act, 4e-7);
        }
    }
}

#[test]
fn strided_output_and_large_threaded_products() {
    let isa = detected_isa();
    // Column-major output (col stride > 1) goes through the staging tile.
    let (m, k, n) = (70, 90, 50);
    let (ad, _, _) = make::<f32>(m, k, Layout::RowMajor, 3);
    let (bd, _, _) = make::<f32>(k, n, Layout::RowMajor, 4);
    let a = MatRef::row_major(&ad, m, k).unwrap();
    let b = MatRef::row_major(&bd, k, n).unwrap();
    let mut out = vec![0.0f32; m * n];
    gemm_on(isa, a, b, None, Activation::Relu, MatMut::new(&mut out, m, n, 1, m).unwrap()).unwrap();
    let want = reference(a, b, None, Activation::Relu);
    for i in 0..m {
        for j in 0..n {
            assert!((out[j * m + i] as f64 - want[i * n + j]).abs() < 1e-4);
        }
    }
    // Large enough to be split across threads, with more than one depth block.
    check::<f32>(isa, 300, 600, 260, Layout::RowMajor, Layout::RowMajor, true, Activation::Tanh, 3e-7);
    check::<f32>(isa, 520, 300, 90, Layout::ColMajor, Layout::RowMajor, false, Activation::Linear, 3e-7);
}

#[test]
fn dense_backward_matches_reference() {
    let (m, k, n) = (9, 14, 6);
    let x: Vec<f64> = values(m * k, 5);
    let w: Vec<f64> = values(k * n, 6);
    let dz: Vec<f64> = values(m * n, 8);
    let mut dx = vec![0.0; m * k];
    let mut dw = vec![0.0; k * n];
    let mut db = vec![0.0; n];
    dense_backward(
        MatRef::row_major(&x, m, k).unwrap(),
        MatRef::row_major(&w, k, n).unwrap(),
        MatRef::row_major(&dz, m, n).unwrap(),
        Some(MatMut::row_major(&mut dx, m, k).unwrap()),
        Some(MatMut::row_major(&mut dw, k, n).unwrap()),
        Some(&mut db),
    )
    .unwrap();
    for i in 0..m {
        for p in 0..k {
            let want: f64 = (0..n).map(|j| dz[i * n + j] * w[p * n + j]).sum();
            assert!((dx[i * k + p] - want).abs() < 1e-12);
        }
    }
    for p in 0..k {
        for j in 0..n {
            let want: f64 = (0..m).map(|i| x[i * k + p] * dz[i * n + j]).sum();
            assert!((dw[p * n + j] - want).abs() < 1e-12);
        }
    }
    for j in 0..n {
        let want: f64 = (0..m).map(|i| dz[i * n + j]).sum();
        assert!((db[j] - want).abs() < 1e-12);
    }
}

#[test]
fn activation_backward_is_dy_times_derivative() {
    let z: Vec<f32> = values(100, 11).into_iter().map(|v| (v * 8.0) as f32).collect();
    let dy: Vec<f32> = values(100, 12).into_iter().map(|v| v as f32).collect();
    for act in Activation::ALL {
        let mut out = vec![0.0f32; 100];
        activation_backward(act, &z, &dy, &mut out).unwrap();
        for i in 0..100 {
            let want = dy[i] as f64 * act.derivative(z[i] as f64);
            assert!((out[i] as f64 - want).abs() < 1e-5, "{act:?} z={}", z[i]);
        }
    }
}

#[test]
fn shape_errors_are_reported() {
    let a = [0.0f32; 6];
    let b = [0.0f32; 6];
    let mut c = [0.0f32; 4];
    let err = matmul(
        MatRef::row_major(&a, 2, 3).unwrap(),
        MatRef::row_major(&b, 2, 3).unwrap(),
        MatMut::row_major(&mut c, 2, 2).unwrap(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("inner dimensions differ"), "{err}");
    let err = dense(
        MatRef::row_major(&a, 2, 3).unwrap(),
        MatRef::row_major(&b, 3, 2).unwrap(),
        Some(&[1.0, 2.0, 3.0]),
        Activation::Relu,
        MatMut::row_major(&mut c, 2, 2).unwrap(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("bias has 3 values, expected 2"), "{err}");
    assert!(set_isa(Some(Isa::Generic)).is_ok());
    set_isa(None).unwrap();
}

#[test]
fn the_peak_loop_runs_on_every_simd_path() {
    for isa in supported_isas() {
        let flops = peak_f32_flops(isa, 1, 20_000);
        if isa == Isa::Generic {
            assert_eq!(flops, 0.0, "the portable path has no FMA loop");
        } else {
            assert!(flops.is_finite() && flops > 0.0, "{isa:?}: {flops}");
        }
    }
}

/// Every test that loops over `supported_isas()` runs the SIMD path of the build's
/// architecture: were detection to fail, they would check only the portable path.
#[test]
fn the_architectures_simd_path_is_detected() {
    assert_eq!(Isa::from_name("NEON").unwrap(), Isa::Neon);
    let isas = supported_isas();
    assert_eq!(isas.last(), Some(&Isa::Generic));
    #[cfg(target_arch = "aarch64")]
    assert_eq!(isas, vec![Isa::Neon, Isa::Generic]);
    #[cfg(target_arch = "x86_64")]
    {
        assert!(!isas.contains(&Isa::Neon));
        assert!(set_isa(Some(Isa::Neon)).unwrap_err().to_string().contains("not supported by this CPU"));
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            assert!(isas.contains(&Isa::Avx2));
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            assert_eq!(isas[0], Isa::Avx512);
        }
    }
}

/// `values` copied into a byte buffer at `offset` bytes past an 8-aligned start, so every
/// element sits at an address that is not a multiple of its alignment (as weights mapped
/// from a Keras-written file do). Returns the backing buffer, which must outlive the pointer.
fn misaligned_copy<T: Float>(values: &[T], offset: usize) -> (Vec<u64>, *const T) {
    let size = std::mem::size_of::<T>();
    let mut backing = vec![0u64; (values.len() * size + offset).div_ceil(8) + 1];
    let base = backing.as_mut_ptr() as *mut u8;
    for (i, &v) in values.iter().enumerate() {
        // Safety: the buffer holds `offset + len * size` bytes.
        unsafe { (base.add(offset + i * size) as *mut T).write_unaligned(v) };
    }
    let ptr = unsafe { base.add(offset) as *const T };
    (backing, ptr)
}

/// Misaligned operands give bit-identical results to the same operands aligned, on every
/// ISA and on each way an operand is read: packed A and B, A in place (one-panel-wide
/// products), B in place (few rows), and through strided and transposed layouts.
fn check_misaligned<T: Float>(isa: Isa, m: usize, k: usize, n: usize, la: Layout, lb: Layout, offset: usize) {
    let (ad, ars, acs) = make::<T>(m, k, la, 21 + m as u64);
    let (bd, brs, bcs) = make::<T>(k, n, lb, 22 + n as u64);
    let bias: Vec<T> = values(n, 23).into_iter().map(T::from_f64).collect();
    let mut want = vec![T::ZERO; m * n];
    let aligned_a = MatRef::new(&ad, m, k, ars, acs).unwrap();
    let aligned_b = MatRef::new(&bd, k, n, brs, bcs).unwrap();
    gemm_on(isa, aligned_a, aligned_b, Some(&bias), Activation::Relu, MatMut::row_major(&mut want, m, n).unwrap()).unwrap();

    let (_keep_a, a_ptr) = misaligned_copy(&ad, offset);
    let (_keep_b, b_ptr) = misaligned_copy(&bd, offset);
    assert_ne!(a_ptr as usize % std::mem::align_of::<T>(), 0);
    // Safety: the pointers address `len` elements of the live backing buffers.
    let a = unsafe { MatRef::from_raw_parts(a_ptr, ad.len(), m, k, ars, acs).unwrap() };
    let b = unsafe { MatRef::from_raw_parts(b_ptr, bd.len(), k, n, brs, bcs).unwrap() };
    let mut got = vec![T::ZERO; m * n];
    gemm_on(isa, a, b, Some(&bias), Activation::Relu, MatMut::row_major(&mut got, m, n).unwrap()).unwrap();
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g.to_f64().to_bits(), w.to_f64().to_bits(), "{isa:?} {m}x{k}x{n} {la:?}/{lb:?}: element {i}");
    }
    // The aligned result itself is right (so equality above is not vacuous).
    let reference = reference(aligned_a, aligned_b, Some(&bias), Activation::Relu);
    for (g, r) in got.iter().zip(&reference) {
        assert!((g.to_f64() - r).abs() <= 1e-4 * (1.0 + r.abs()));
    }
}

#[test]
fn misaligned_operands_match_aligned_on_every_isa() {
    for isa in supported_isas() {
        // (1, 64, 40): B in place; (40, 64, 1): A in place; the rest pack both.
        for &(m, k, n) in &[(1, 64, 40), (3, 33, 17), (40, 64, 1), (37, 300, 71), (150, 70, 1030)] {
            for la in [Layout::RowMajor, Layout::ColMajor, Layout::Strided] {
                for lb in [Layout::RowMajor, Layout::ColMajor, Layout::Strided] {
                    check_misaligned::<f32>(isa, m, k, n, la, lb, 2);
                    check_misaligned::<f64>(isa, m, k, n, la, lb, 4);
                }
            }
        }
    }
}

#[test]
fn dense_backward_reads_misaligned_views() {
    let (m, k, n) = (5, 7, 3);
    let x: Vec<f32> = values(m * k, 31).into_iter().map(|v| v as f32).collect();
    let w: Vec<f32> = values(k * n, 32).into_iter().map(|v| v as f32).collect();
    let dz: Vec<f32> = values(m * n, 33).into_iter().map(|v| v as f32).collect();
    let (_kx, xp) = misaligned_copy(&x, 2);
    let (_kw, wp) = misaligned_copy(&w, 1);
    let (_kd, dp) = misaligned_copy(&dz, 3);
    let mut db = vec![0.0f32; n];
    let mut dw = vec![0.0f32; k * n];
    // Safety: each pointer addresses its vector's length in a live buffer.
    unsafe {
        dense_backward(
            MatRef::from_raw_parts(xp, x.len(), m, k, k, 1).unwrap(),
            MatRef::from_raw_parts(wp, w.len(), k, n, n, 1).unwrap(),
            MatRef::from_raw_parts(dp, dz.len(), m, n, n, 1).unwrap(),
            None,
            Some(MatMut::row_major(&mut dw, k, n).unwrap()),
            Some(&mut db),
        )
        .unwrap();
    }
    for j in 0..n {
        let want: f64 = (0..m).map(|i| dz[i * n + j] as f64).sum();
        assert!((db[j] as f64 - want).abs() < 1e-5);
    }
    for p in 0..k {
        for j in 0..n {
            let want: f64 = (0..m).map(|i| x[i * k + p] as f64 * dz[i * n + j] as f64).sum();
            assert!((dw[p * n + j] as f64 - want).abs() < 1e-5);
        }
    }
}

#[test]
fn every_tile_width_with_fused_bias_and_relu() {
    // Widths around each tile's (16, 32, 64 lanes of f32; 8, 16, 32 of f64) so that every
    // register tile, its masked last vector and the ragged panels all run, with more than one
    // depth block so the fused epilogue meets accumulated tiles.
    for isa in supported_isas() {
        for n in [1, 9, 10, 16, 17, 24, 31, 33, 64, 65, 100, 130] {
            check::<f32>(isa, 14, 300, n, Layout::RowMajor, Layout::RowMajor, true, Activation::Relu, 4e-7);
            check::<f32>(isa, 14, 40, n, Layout::ColMajor, Layout::ColMajor, true, Activation::Linear, 4e-7);
            check::<f64>(isa, 14, 300, n, Layout::RowMajor, Layout::RowMajor, true, Activation::Relu, 1e-14);
        }
    }
}

#[test]
fn fused_relu_passes_nan_and_clamps_negatives() {
    // x row 0 holds a NaN, so its sums are NaN: numpy's `maximum(z, 0)` keeps NaN, and so must
    // the in-register ReLU. Row 1 sums to a negative value, clamped to zero.
    for isa in supported_isas() {
        for n in [10, 32, 64, 70] {
            let k = 5;
            let mut x = vec![0.5f32; 3 * k];
            x[2] = f32::NAN;
            for v in &mut x[k..2 * k] {
                *v = -1.0;
            }
            let w = vec![1.0f32; k * n];
            let bias = vec![0.25f32; n];
            let mut out = vec![7.0f32; 3 * n];
            let xv = MatRef::row_major(&x, 3, k).unwrap();
            let wv = MatRef::row_major(&w, k, n).unwrap();
            gemm_on(isa, xv, wv, Some(&bias), Activation::Relu, MatMut::row_major(&mut out, 3, n).unwrap()).unwrap();
            for j in 0..n {
                assert!(out[j].is_nan(), "{isa:?} n={n}: relu(NaN) = {}, numpy's maximum keeps NaN", out[j]);
                assert_eq!(out[n + j].to_bits(), 0.0f32.to_bits(), "{isa:?} n={n}: relu(-4.75)");
                assert_eq!(out[2 * n + j], 2.75, "{isa:?} n={n}");
            }
        }
    }
}

#[test]
fn fused_sigmoid_and_silu_keep_their_accuracy_far_below_zero() {
    // e^z for z < -87 is below f32's normal range: the epilogue must follow it into the
    // subnormals (as numpy's float32 sigmoid does) rather than floor it at e^-87.
    let zs = [-30.0f32, -87.5, -95.0, -100.0, -103.0, -110.0];
    for isa in supported_isas() {
        let n = zs.len();
        let x = [1.0f32];
        let mut out = vec![0.0f32; n];
        let xv = MatRef::row_major(&x, 1, 1).unwrap();
        let wv = MatRef::row_major(&zs, 1, n).unwrap();
        gemm_on(isa, xv, wv, None, Activation::Sigmoid, MatMut::row_major(&mut out, 1, n).unwrap()).unwrap();
        let mut silu = vec![0.0f32; n];
        gemm_on(isa, xv, wv, None, Activation::Silu, MatMut::row_major(&mut silu, 1, n).unwrap()).unwrap();
        for (j, &z) in zs.iter().enumerate() {
            let want = 1.0 / (1.0 + (-(z as f64)).exp());
            // a subnormal keeps fewer bits: compare within one unit of the smallest subnormal
            let tolerance = (want * 1e-6).max(f32::from_bits(1) as f64);
            assert!((out[j] as f64 - want).abs() <= tolerance, "{isa:?}: sigmoid({z}) = {:e}, want {want:e}", out[j]);
            // silu multiplies z by the float32 sigmoid, whose subnormal rounding (half a unit
            // of the smallest subnormal) the product scales by |z|.
            let want_silu = z as f64 * want;
            let tolerance = (want_silu.abs() * 1e-6).max(z.abs() as f64 * f32::from_bits(1) as f64);
            assert!((silu[j] as f64 - want_silu).abs() <= tolerance, "{isa:?}: silu({z}) = {:e}, want {want_silu:e}", silu[j]);
        }
    }
}

#[test]
fn results_are_identical_call_to_call() {
    // Training relies on it: same shape, ISA and thread count give the same bits, including
    // products split across threads (which may take their chunks in any order).
    for isa in supported_isas() {
        for &(m, k, n) in &[(32, 784, 64), (300, 600, 260), (257, 513, 129), (1, 4096, 300)] {
            let (ad, _, _) = make::<f32>(m, k, Layout::RowMajor, 11);
            let (bd, _, _) = make::<f32>(k, n, Layout::RowMajor, 12);
            let a = MatRef::row_major(&ad, m, k).unwrap();
            let b = MatRef::row_major(&bd, k, n).unwrap();
            let run = || {
                let mut out = vec![0.0f32; m * n];
                gemm_on(isa, a, b, None, Activation::Linear, MatMut::row_major(&mut out, m, n).unwrap()).unwrap();
                out.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            };
            let first = run();
            for _ in 0..3 {
                assert!(run() == first, "{isa:?} {m}x{k}x{n}: results differ between calls");
            }
        }
    }
}

#[test]
fn large_b_streamed_in_place_for_few_rows() {
    // Over 1 MB of row-major B with at most four tiles of rows: B is streamed in place in
    // shallow depth blocks (many accumulation passes over C), with a ragged last panel.
    for isa in supported_isas() {
        for m in [1, 3, 13] {
            check::<f32>(isa, m, 1100, 300, Layout::RowMajor, Layout::RowMajor, true, Activation::Relu, 4e-7);
            check::<f64>(isa, m, 700, 300, Layout::RowMajor, Layout::RowMajor, true, Activation::Sigmoid, 1e-14);
        }
    }
}

/// `act(a·b + bias)` through the GEMM driver with at most `threads` threads.
fn gemm_threads<T: Float>(isa: Isa, a: MatRef<'_, T>, b: MatRef<'_, T>, bias: Option<&[T]>, act: Activation, threads: usize) -> Vec<T> {
    let (m, n) = (a.rows(), b.cols());
    let mut out = vec![T::ZERO; m * n];
    let problem = gemm::Problem {
        m,
        n,
        k: a.cols(),
        a: gemm::Strided { ptr: a.ptr(), rs: a.row_stride(), cs: a.col_stride() },
        b: gemm::Strided { ptr: b.ptr(), rs: b.row_stride(), cs: b.col_stride() },
        c: gemm::StridedMut { ptr: out.as_mut_ptr(), rs: n, cs: 1 },
        scale: std::ptr::null(),
        bias: bias.map_or(std::ptr::null(), |b| b.as_ptr()),
        act,
    };
    // Safety: the views checked their elements; `out` is ours and unaliased.
    let kernel = kernel_for::<T>(isa, n).unwrap();
    unsafe { gemm::run(kernel, problem, threads, gemm::streams_b(kernel, &problem)) };
    out
}

#[test]
fn shared_packed_b_gives_the_single_thread_bits() {
    // Products whose B is packed once for all threads (several rows of chunks): ragged depth
    // blocks and panels, transposed and strided B, every tile width. Each thread count must
    // give the serial product's exact bits, and those must match the f64 reference.
    for isa in supported_isas() {
        for &(m, k, n, lb) in &[
            (300, 600, 260, Layout::RowMajor),
            (257, 1100, 700, Layout::RowMajor),
            (200, 530, 130, Layout::ColMajor),
            (190, 300, 90, Layout::Strided),
            (400, 200, 20, Layout::RowMajor),
        ] {
            let (ad, ars, acs) = make::<f32>(m, k, Layout::RowMajor, 21);
            let (bd, brs, bcs) = make::<f32>(k, n, lb, 22);
            let a = MatRef::new(&ad, m, k, ars, acs).unwrap();
            let b = MatRef::new(&bd, k, n, brs, bcs).unwrap();
            let bias: Vec<f32> = values(n, 23).into_iter().map(f32::from_f64).collect();
            let kernel = kernel_for::<f32>(isa, n).unwrap();
            let p = gemm::Problem {
                m,
                n,
                k,
                a: gemm::Strided { ptr: a.ptr(), rs: ars, cs: acs },
                b: gemm::Strided { ptr: b.ptr(), rs: brs, cs: bcs },
                c: gemm::StridedMut { ptr: std::ptr::null_mut(), rs: n, cs: 1 },
                scale: std::ptr::null(),
                bias: std::ptr::null(),
                act: Activation::Relu,
            };
            assert!(gemm::shares_packed_b(kernel, &p, false), "{isa:?} {m}x{k}x{n}: B not shared");
            let (chunk_m, _) = gemm::split(kernel, &p, 2, true);
            assert!(m.div_ceil(chunk_m) > 1, "{isa:?} {m}x{k}x{n}: one row of chunks, nothing shared");
            let serial = gemm_threads(isa, a, b, Some(&bias), Activation::Relu, 1);
            let want = reference(a, b, Some(&bias), Activation::Relu);
            for (got, want) in serial.iter().zip(&want) {
                assert!((*got as f64 - want).abs() <= 3e-7 * k as f64, "{isa:?} {m}x{k}x{n}: {got} vs {want}");
            }
            for threads in [2, 3, 8] {
                let split = gemm_threads(isa, a, b, Some(&bias), Activation::Relu, threads);
                assert!(
                    split.iter().zip(&serial).all(|(x, y)| x.to_bits() == y.to_bits()),
                    "{isa:?} {m}x{k}x{n} on {threads} threads differs from one thread"
                );
            }
        }
    }
}

#[test]
fn a_large_packed_b_is_split_by_columns_only() {
    // 256 x 4096 x 4096: B (64 MB) does not fit the caches or the shared buffer, so every row
    // of chunks would pack all of it from memory again; the split must keep one row of chunks
    // (each chunk packing only its own columns) yet still give both threads work.
    let (m, k, n) = (256, 4096, 4096);
    for isa in supported_isas() {
        let kernel = kernel_for::<f32>(isa, n).unwrap();
        let p = gemm::Problem::<f32> {
            m,
            n,
            k,
            a: gemm::Strided { ptr: std::ptr::null(), rs: k, cs: 1 },
            b: gemm::Strided { ptr: std::ptr::null(), rs: n, cs: 1 },
            c: gemm::StridedMut { ptr: std::ptr::null_mut(), rs: n, cs: 1 },
            scale: std::ptr::null(),
            bias: std::ptr::null(),
            act: Activation::Linear,
        };
        assert!(!gemm::shares_packed_b(kernel, &p, false));
        let (chunk_m, chunk_n) = gemm::split(kernel, &p, 2, false);
        assert!(chunk_m >= m, "{isa:?}: rows cut into chunks of {chunk_m}: B packed {} times", m.div_ceil(chunk_m));
        assert!(n.div_ceil(chunk_n) >= 2, "{isa:?}: one chunk for two threads");
    }
}

#[test]
fn streamed_products_give_the_same_bits_on_any_thread_count() {
    // Few rows against over 1 MB of B: its two depth halves go to two threads and are added at
    // the end; one thread must compute the same halves, so the bits match, and they match the
    // reference, with bias and an activation applied after the halves are added.
    for isa in supported_isas() {
        for &(m, k, n) in &[(1, 1100, 300), (3, 4097, 70), (13, 700, 600), (16, 130, 2100)] {
            let (ad, _, _) = make::<f32>(m, k, Layout::RowMajor, 31);
            let (bd, _, _) = make::<f32>(k, n, Layout::RowMajor, 32);
            let a = MatRef::row_major(&ad, m, k).unwrap();
            let b = MatRef::row_major(&bd, k, n).unwrap();
            let bias: Vec<f32> = values(n, 33).into_iter().map(f32::from_f64).collect();
            let p = gemm::Problem {
                m,
                n,
                k,
                a: gemm::Strided { ptr: a.ptr(), rs: k, cs: 1 },
                b: gemm::Strided { ptr: b.ptr(), rs: n, cs: 1 },
                c: gemm::StridedMut { ptr: std::ptr::null_mut(), rs: n, cs: 1 },
                scale: std::ptr::null(),
                bias: std::ptr::null(),
                act: Activation::Tanh,
            };
            assert!(gemm::streams_b(kernel_for::<f32>(isa, n).unwrap(), &p), "{isa:?} {m}x{k}x{n}: not streamed");
            let one = gemm_threads(isa, a, b, Some(&bias), Activation::Tanh, 1);
            let want = reference(a, b, Some(&bias), Activation::Tanh);
            for (got, want) in one.iter().zip(&want) {
                assert!((*got as f64 - want).abs() <= 3e-7 * k as f64, "{isa:?} {m}x{k}x{n}: {got} vs {want}");
            }
            for threads in [2, 3] {
                let split = gemm_threads(isa, a, b, Some(&bias), Activation::Tanh, threads);
                assert!(
                    split.iter().zip(&one).all(|(x, y)| x.to_bits() == y.to_bits()),
                    "{isa:?} {m}x{k}x{n} on {threads} threads differs from one thread"
                );
            }
        }
    }
}

/// `act(a·b * scale + bias)` through every driver path: several depth blocks (the scale
/// applied once, after the last), threaded chunks, a column-strided output (staging tile),
/// and a streamed B (few rows, B over 1 MB: the depth halves).
#[test]
fn per_column_scale_in_the_epilogue() {
    let cases: &[(usize, usize, usize, bool)] = &[
        (37, 1100, 70, false),  // three depth blocks of the f32 tiles
        (300, 200, 260, false), // large enough for two threads
        (9, 40, 21, true),      // column-strided C
        (3, 4096, 96, false),   // streamed B (1.5 MB)
    ];
    for isa in supported_isas() {
        for &(m, k, n, strided_c) in cases {
            let (ad, _, _) = make::<f32>(m, k, Layout::RowMajor, 11);
            let (bd, _, _) = make::<f32>(k, n, Layout::RowMajor, 12);
            let a = MatRef::row_major(&ad, m, k).unwrap();
            let b = MatRef::row_major(&bd, k, n).unwrap();
            let bias: Vec<f32> = values(n, 13).into_iter().map(|v| v as f32).collect();
            let scale: Vec<f32> = values(n, 14).into_iter().map(|v| (0.25 + v.abs() * 3.0) as f32).collect();
            for act in [Activation::Linear, Activation::Relu6, Activation::Silu] {
                let plain = reference(a, b, None, Activation::Linear);
                let mut out = vec![f32::NAN; m * n];
                let view = if strided_c { MatMut::new(&mut out, m, n, 1, m) } else { MatMut::row_major(&mut out, m, n) };
                gemm_scaled_on(isa, a, b, Some(&scale), Some(&bias), act, view.unwrap()).unwrap();
                for i in 0..m {
                    for j in 0..n {
                        let got = if strided_c { out[j * m + i] } else { out[i * n + j] } as f64;
                        let z = plain[i * n + j] * scale[j] as f64 + bias[j] as f64;
                        let want = act.apply(z);
                        assert!(
                            (got - want).abs() <= 4e-7 * (k as f64 + 1.0) * (1.0 + z.abs()),
                            "{isa:?} {m}x{k}x{n} {act:?} strided={strided_c}: C[{i},{j}] = {got}, want {want}"
                        );
                    }
                }
            }
        }
    }
    let (m, k, n) = (2, 3, 4);
    let (a, b) = ([0f32; 6], [0f32; 12]);
    let mut out = [0f32; 8];
    let error = gemm_scaled_on(
        detected_isa(),
        MatRef::row_major(&a, m, k).unwrap(),
        MatRef::row_major(&b, k, n).unwrap(),
        Some(&[1.0; 3]),
        None,
        Activation::Linear,
        MatMut::row_major(&mut out, m, n).unwrap(),
    )
    .unwrap_err();
    assert!(error.to_string().contains("scale has 3 values, expected 4"), "{error}");
}

/// A cache line, for buffers that start on a 64-byte boundary.
#[repr(C, align(64))]
struct Line([u8; 64]);

/// `values` copied into a buffer at `offset` bytes past a 64-byte boundary: element-aligned
/// but, unless `offset` is 0, not on a vector boundary (a numpy array is 16-byte aligned).
/// Returns the backing buffer, which must outlive the pointer.
fn placed_copy<T: Float>(values: &[T], offset: usize) -> (Vec<Line>, *const T) {
    let size = std::mem::size_of::<T>();
    assert_eq!(offset % size, 0);
    let lines = (values.len() * size + offset).div_ceil(64) + 1;
    let mut backing: Vec<Line> = (0..lines).map(|_| Line([0; 64])).collect();
    // Safety: the buffer holds `offset + len * size` bytes, and `offset` keeps `T` aligned.
    let ptr = unsafe { (backing.as_mut_ptr() as *mut u8).add(offset) } as *mut T;
    unsafe { std::ptr::copy_nonoverlapping(values.as_ptr(), ptr, values.len()) };
    (backing, ptr as *const T)
}

/// B on or off a vector boundary takes different paths: read in place when it is in the
/// panel layout already (`n == nr`, aligned), copied to an aligned buffer when it is small
/// and read by four or more row panels, or with its first columns split off so the rest is
/// aligned (`gemm::alignment_peel`). Each gives the bits of the aligned product (the split
/// does not change any element's order of summation), with the scale and bias of the split
/// columns kept with them, and that product matches the f64 reference.
#[test]
fn b_off_a_vector_boundary_gives_the_aligned_bits() {
    for isa in supported_isas() {
        for kernel in <f32 as sealed::Sealed>::tiles(isa) {
            let nr = kernel.nr;
            // (m, k, n): n == nr (in place when aligned, at any m), a small B read by many
            // row panels, a wide B read by a few (the peel: rows a whole number of vectors
            // apart; the second one over 1 MB, streamed), one row (in place), several depth
            // blocks with threads.
            let cases = [
                (1, 70, nr),
                (50, 1100, nr),
                (3 * kernel.mr + 2, 90, nr + 3),
                (kernel.mr + 2, 300, 5 * nr + 16),
                (kernel.mr + 2, 1500, 3 * nr + 16),
                (1, 40, 4 * nr),
                (260, 700, 3 * nr + 1),
            ];
            for (m, k, n) in cases {
                let (ad, _, _) = make::<f32>(m, k, Layout::RowMajor, 41);
                let (bd, _, _) = make::<f32>(k, n, Layout::RowMajor, 42);
                let a = MatRef::row_major(&ad, m, k).unwrap();
                let bias: Vec<f32> = values(n, 43).into_iter().map(|v| v as f32).collect();
                let scale: Vec<f32> = values(n, 44).into_iter().map(|v| (0.5 + v.abs()) as f32).collect();
                let mut results = Vec::new();
                for offset in [0, 4, 16, 32, 48] {
                    let (_keep, ptr) = placed_copy(&bd, offset);
                    // Safety: `ptr` addresses `bd.len()` elements of the live `_keep`.
                    let b = unsafe { MatRef::from_raw_parts(ptr, bd.len(), k, n, n, 1).unwrap() };
                    let mut out = vec![f32::NAN; m * n];
                    let view = MatMut::row_major(&mut out, m, n).unwrap();
                    gemm_scaled_on(isa, a, b, Some(&scale), Some(&bias), Activation::Relu, view).unwrap();
                    results.push((offset, out));
                }
                let b = MatRef::row_major(&bd, k, n).unwrap();
                let plain = reference(a, b, None, Activation::Linear);
                let (_, aligned) = &results[0];
                for (i, (&got, z)) in aligned.iter().zip(&plain).enumerate() {
                    let z = z * scale[i % n] as f64 + bias[i % n] as f64;
                    let want = Activation::Relu.apply(z);
                    assert!((got as f64 - want).abs() <= 4e-7 * (k as f64 + 1.0) * (1.0 + z.abs()), "{isa:?} nr={nr} {m}x{k}x{n}: C[{i}] = {got}, want {want}");
                }
                for (offset, out) in &results[1..] {
                    for (i, (g, w)) in out.iter().zip(aligned).enumerate() {
                        assert_eq!(g.to_bits(), w.to_bits(), "{isa:?} nr={nr} {m}x{k}x{n}, B {offset} bytes off: C[{i}]");
                    }
                }
            }
        }
    }
}

/// Which of those paths a product takes (so the test above cannot pass by never taking one).
#[test]
fn b_alignment_decides_packing_and_the_peel() {
    use super::gemm::{alignment_peel, should_pack_b, Problem, Strided, StridedMut};
    for isa in supported_isas() {
        let kernel = <f32 as sealed::Sealed>::kernel(isa);
        let (mr, nr, align) = (kernel.mr, kernel.nr, kernel.align);
        let (k, n) = (64, 8 * nr);
        let data = vec![0f32; k * n + 64];
        let (_keep, base) = placed_copy(&data, 0);
        let problem = |offset: usize, m: usize, n: usize| Problem {
            m,
            n,
            k,
            a: Strided { ptr: std::ptr::null(), rs: k, cs: 1 },
            b: Strided { ptr: base.wrapping_add(offset / 4), rs: n, cs: 1 },
            c: StridedMut { ptr: std::ptr::null_mut(), rs: n, cs: 1 },
            scale: std::ptr::null(),
            bias: std::ptr::null(),
            act: Activation::Linear,
        };
        // B in the panel layout, aligned: read in place even for many rows.
        let p = problem(0, 300, nr);
        assert!(!should_pack_b(kernel, &p.b, p.m, p.n, p.k), "{isa:?}");
        if align > 4 {
            // The same B off the boundary: copied for many rows, read in place for one.
            let p = problem(align / 2, 300, nr);
            assert!(should_pack_b(kernel, &p.b, p.m, p.n, p.k), "{isa:?}");
            let p = problem(align / 2, 1, nr);
            assert!(!should_pack_b(kernel, &p.b, p.m, p.n, p.k), "{isa:?}");
            // A wide B off the boundary read by two row panels: the columns before the next
            // boundary are split off.
            let p = problem(4, mr + 1, n);
            assert_eq!(alignment_peel(kernel, &p), Some((align - 4) / 4), "{isa:?}");
            // Not for one row panel, an aligned B, or an element-misaligned B.
            assert_eq!(alignment_peel(kernel, &problem(4, mr, n)), None, "{isa:?}");
            assert_eq!(alignment_peel(kernel, &problem(0, mr + 1, n)), None, "{isa:?}");
            let mut odd = problem(4, mr + 1, n);
            odd.b.ptr = (base as *const u8).wrapping_add(2) as *const f32;
            assert_eq!(alignment_peel(kernel, &odd), None, "{isa:?}");
        }
    }
}
