//! amber's f32 GEMM against the `gemm` (x86-64) and `matrixmultiply` crates on square products
//! (64 to 2048), the Dense shapes (batch x 784->64, 64->64, 64->10, 4096->4096) and the two
//! backward products of the guide MLP's first layer at batch 32 (`xᵀ·dz` and `dz·wᵀ`, through
//! transposed views: strides, no copies), all with their default threading
//! (AMBER_NUM_THREADS caps amber's). The throughput "elements" are flops (2 m k n per
//! product), so Gelem/s reads as GFLOP/s.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use amber_core::kernels::{matmul, MatMut, MatRef};

fn inputs(m: usize, k: usize, n: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let a = (0..m * k).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect();
    let b = (0..k * n).map(|i| ((i * 104_729) % 1000) as f32 / 1000.0 - 0.5).collect();
    (a, b, vec![0.0; m * n])
}

/// How an operand is stored: row-major, or row-major transposed (its view swaps strides).
#[derive(Clone, Copy)]
enum Stored {
    RowMajor,
    Transposed,
}

impl Stored {
    /// (row stride, column stride) of a `rows x cols` operand stored this way.
    fn strides(self, rows: usize, cols: usize) -> (usize, usize) {
        match self {
            Stored::RowMajor => (cols, 1),
            Stored::Transposed => (1, rows),
        }
    }
}

fn bench_shape(c: &mut Criterion, group_name: &str, label: String, m: usize, k: usize, n: usize) {
    bench_layout(c, group_name, label, (m, k, n), Stored::RowMajor, Stored::RowMajor);
}

fn bench_layout(c: &mut Criterion, group_name: &str, label: String, (m, k, n): (usize, usize, usize), sa: Stored, sb: Stored) {
    let mut group = c.benchmark_group(group_name);
    group.throughput(Throughput::Elements((2 * m * k * n) as u64));
    if m * k * n >= 512 * 512 * 512 {
        group.sample_size(10);
    }
    let (a, b, mut out) = inputs(m, k, n);
    let ((rsa, csa), (rsb, csb)) = (sa.strides(m, k), sb.strides(k, n));
    group.bench_function(BenchmarkId::new("amber", &label), |bench| {
        bench.iter(|| {
            let av = MatRef::new(&a, m, k, rsa, csa).unwrap();
            let bv = MatRef::new(&b, k, n, rsb, csb).unwrap();
            matmul(av, bv, MatMut::row_major(&mut out, m, n).unwrap()).unwrap();
            black_box(&out);
        })
    });
    #[cfg(target_arch = "x86_64")]
    let threads = std::thread::available_parallelism().map(|t| t.get()).unwrap_or(1);
    #[cfg(target_arch = "x86_64")]
    group.bench_function(BenchmarkId::new("gemm", &label), |bench| {
        bench.iter(|| unsafe {
            gemm::gemm(
                m, n, k,
                out.as_mut_ptr(), 1, n as isize,
                false,
                a.as_ptr(), csa as isize, rsa as isize,
                b.as_ptr(), csb as isize, rsb as isize,
                0.0f32, 1.0f32,
                false, false, false,
                gemm::Parallelism::Rayon(threads),
            );
            black_box(&out);
        })
    });
    group.bench_function(BenchmarkId::new("matrixmultiply", &label), |bench| {
        bench.iter(|| unsafe {
            matrixmultiply::sgemm(
                m, k, n, 1.0,
                a.as_ptr(), rsa as isize, csa as isize,
                b.as_ptr(), rsb as isize, csb as isize,
                0.0, out.as_mut_ptr(), n as isize, 1,
            );
            black_box(&out);
        })
    });
    group.finish();
}

fn squares(c: &mut Criterion) {
    for n in [64, 128, 256, 512, 1024, 2048] {
        bench_shape(c, "square_f32", n.to_string(), n, n, n);
    }
}

fn dense_shapes(c: &mut Criterion) {
    for (din, dout) in [(784, 64), (64, 64), (64, 10), (4096, 4096)] {
        let batches: &[usize] = if din == 4096 { &[1, 32, 256] } else { &[1, 32, 256, 1024] };
        for &batch in batches {
            bench_shape(c, "dense_f32", format!("{batch}x{din}->{dout}"), batch, din, dout);
        }
    }
}

/// Backward of the guide MLP's first Dense layer (784 -> 64) at batch 32: `dw = xᵀ·dz`
/// (A a transposed view) and `dx = dz·wᵀ` (B a transposed view).
fn dense_backward_shapes(c: &mut Criterion) {
    let (batch, din, dout) = (32, 784, 64);
    bench_layout(c, "dense_backward_f32", format!("xT.dz {din}x{batch}x{dout}"), (din, batch, dout), Stored::Transposed, Stored::RowMajor);
    bench_layout(c, "dense_backward_f32", format!("dz.wT {batch}x{dout}x{din}"), (batch, dout, din), Stored::RowMajor, Stored::Transposed);
}

criterion_group!(benches, squares, dense_shapes, dense_backward_shapes);
criterion_main!(benches);
