//! The blocked GEMM driver: C = A·B (+ bias, activation), in the five-loop order of
//! Goto/BLIS. Columns of B in blocks of `nc`, depth in blocks of `kc` (B block packed once
//! per pass), rows of A in blocks of `mc` (packed), then `nr`-wide B micro-panels (held in
//! L1) against `mr`-row A micro-panels. The epilogue (bias, activation) runs on each tile
//! right after its last depth block, while the tile is still in L1.

use super::activation::Activation;
use super::element::Element;
use super::microkernel::Kernel;
use super::pack::{pack_a, pack_b};

/// A strided operand. Raw so that threads can share it; every element it addresses was
/// bounds-checked by the view it came from.
#[derive(Clone, Copy)]
pub(crate) struct Strided<T> {
    pub ptr: *const T,
    pub rs: usize,
    pub cs: usize,
}

#[derive(Clone, Copy)]
pub(crate) struct StridedMut<T> {
    pub ptr: *mut T,
    pub rs: usize,
    pub cs: usize,
}

// Safety: the driver hands each thread a disjoint set of C tiles; A, B and bias are only read.
unsafe impl<T: Send> Send for Strided<T> {}
unsafe impl<T: Sync> Sync for Strided<T> {}
unsafe impl<T: Send> Send for StridedMut<T> {}
unsafe impl<T: Sync> Sync for StridedMut<T> {}

/// One product to compute: `C[m x n] = act(A[m x k] · B[k x n] + bias[n])`.
#[derive(Clone, Copy)]
pub(crate) struct Problem<T> {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub a: Strided<T>,
    pub b: Strided<T>,
    pub c: StridedMut<T>,
    /// `n` contiguous values, or null.
    pub bias: *const T,
    pub act: Activation,
}

unsafe impl<T: Send> Send for Problem<T> {}
unsafe impl<T: Sync> Sync for Problem<T> {}

/// Below this many flops one thread is faster than starting another.
const MIN_FLOPS_PER_THREAD: usize = 3_000_000;

/// Chunks per thread when splitting: enough that a thread slowed by other work on its core
/// (the machine may be shared) leaves its share to the others instead of stalling the call.
const CHUNKS_PER_THREAD: usize = 6;

/// Splits the product into a grid of C chunks that threads take from a shared counter, each
/// chunk computed by the serial blocked algorithm.
///
/// Safety: the problem's pointers satisfy the `Strided` invariants and C is not aliased.
pub(crate) unsafe fn run<T: Element>(kernel: &Kernel<T>, problem: Problem<T>, max_threads: usize) {
    let Problem { m, n, k, .. } = problem;
    if m == 0 || n == 0 {
        return;
    }
    let flops = 2usize.saturating_mul(m).saturating_mul(n).saturating_mul(k);
    let threads = max_threads.min(flops / MIN_FLOPS_PER_THREAD).max(1);
    if threads == 1 {
        serial(kernel, problem);
        return;
    }
    // Grid of whole register blocks: rows in steps of `mr`, columns in steps of `nr`, cut
    // finer along the longer side until there are enough chunks.
    let target = threads * CHUNKS_PER_THREAD;
    let (row_units, col_units) = (m.div_ceil(kernel.mr), n.div_ceil(kernel.nr));
    let (mut row_parts, mut col_parts) = (1usize, 1usize);
    while row_parts * col_parts < target && (row_parts < row_units || col_parts < col_units) {
        let rows_each = row_units.div_ceil(row_parts) * kernel.mr;
        let cols_each = col_units.div_ceil(col_parts) * kernel.nr;
        if (rows_each >= cols_each && row_parts < row_units) || col_parts >= col_units {
            row_parts += 1;
        } else {
            col_parts += 1;
        }
    }
    let chunk_m = row_units.div_ceil(row_parts) * kernel.mr;
    let chunk_n = col_units.div_ceil(col_parts) * kernel.nr;
    let (grid_m, grid_n) = (m.div_ceil(chunk_m), n.div_ceil(chunk_n));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let work = || loop {
        let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if index >= grid_m * grid_n {
            break;
        }
        let (i0, j0) = ((index / grid_n) * chunk_m, (index % grid_n) * chunk_n);
        let mut part = problem;
        part.m = chunk_m.min(m - i0);
        part.n = chunk_n.min(n - j0);
        part.a.ptr = problem.a.ptr.add(i0 * problem.a.rs);
        part.b.ptr = problem.b.ptr.add(j0 * problem.b.cs);
        part.c.ptr = problem.c.ptr.add(i0 * problem.c.rs + j0 * problem.c.cs);
        if !problem.bias.is_null() {
            part.bias = problem.bias.add(j0);
        }
        serial(kernel, part);
    };
    std::thread::scope(|scope| {
        for _ in 1..threads.min(grid_m * grid_n) {
            scope.spawn(work);
        }
        work(); // the calling thread works too
    });
}

/// Packing B costs a pass over it; it pays back only when several A micro-panels reuse it.
/// With few rows (small batches) B is read in place when its rows are contiguous.
fn should_pack_b<T>(kernel: &Kernel<T>, problem: &Problem<T>) -> bool {
    problem.b.cs != 1 || problem.m > 4 * kernel.mr
}

/// Packing A pays when each A micro-panel meets several B micro-panels; a product one
/// panel wide (Dense layers with few units) reads A in place instead.
fn should_pack_a<T>(kernel: &Kernel<T>, problem: &Problem<T>) -> bool {
    problem.n > kernel.nr
}

unsafe fn serial<T: Element>(kernel: &Kernel<T>, p: Problem<T>) {
    let (mr, nr) = (kernel.mr, kernel.nr);
    let (m, n, k) = (p.m, p.n, p.k);
    if k == 0 {
        // An empty sum: C is zero, then the epilogue.
        for i in 0..m {
            for j in 0..n {
                *p.c.ptr.add(i * p.c.rs + j * p.c.cs) = T::ZERO;
            }
        }
        epilogue(kernel, &p, 0, 0, m, n);
        return;
    }
    let kc = kernel.kc.min(k);
    let mc = kernel.mc.min(m);
    let nc = kernel.nc.min(n);
    let pack_whole_b = should_pack_b(kernel, &p);
    let packed_a = should_pack_a(kernel, &p);
    let mut a_buf = vec![T::ZERO; if packed_a { mc * kc } else { 0 }];
    let micro_by_rows = if packed_a { kernel.by_rows } else { kernel.by_rows_strided };
    let b_cols = if pack_whole_b { nc.div_ceil(nr) * nr } else { nr };
    let mut b_buf = vec![T::ZERO; kc * b_cols];
    // Staging tile for tiles narrower than `nr` or a C without unit column stride.
    let mut tile = vec![T::ZERO; mr * nr];

    let mut jc = 0;
    while jc < n {
        let nb = nc.min(n - jc);
        let mut pc = 0;
        while pc < k {
            let kb = kc.min(k - pc);
            let accumulate = pc > 0;
            let last_depth = pc + kb == k;
            let b_block = p.b.ptr.add(pc * p.b.rs + jc * p.b.cs);
            let full_panels = nb / nr;
            if pack_whole_b {
                pack_b(b_block, p.b.rs, p.b.cs, kb, nb, nr, T::ZERO, b_buf.as_mut_ptr());
            } else if nb % nr != 0 {
                // Only the ragged last panel needs padding into the buffer.
                let tail = b_block.add(full_panels * nr * p.b.cs);
                pack_b(tail, p.b.rs, p.b.cs, kb, nb % nr, nr, T::ZERO, b_buf.as_mut_ptr());
            }
            let mut ic = 0;
            while ic < m {
                let mb = mc.min(m - ic);
                let a_block = p.a.ptr.add(ic * p.a.rs + pc * p.a.cs);
                if packed_a {
                    pack_a(a_block, p.a.rs, p.a.cs, mb, kb, mr, a_buf.as_mut_ptr());
                }
                let mut jr = 0;
                while jr < nb {
                    let w = nr.min(nb - jr);
                    let (b_panel, rs_b) = if pack_whole_b {
                        (b_buf.as_ptr().add(jr * kb) as *const T, nr)
                    } else if w == nr {
                        (b_block.add(jr), p.b.rs)
                    } else {
                        (b_buf.as_ptr(), nr)
                    };
                    let direct = w == nr && p.c.cs == 1;
                    let mut ir = 0;
                    while ir < mb {
                        let r = mr.min(mb - ir);
                        let micro = micro_by_rows[r - 1];
                        let a_panel =
                            if packed_a { a_buf.as_ptr().add(ir * kb) } else { a_block.add(ir * p.a.rs) };
                        let c_tile = p.c.ptr.add((ic + ir) * p.c.rs + (jc + jr) * p.c.cs);
                        if direct {
                            micro(kb, a_panel, p.a.rs, p.a.cs, b_panel, rs_b, c_tile, p.c.rs, accumulate);
                        } else {
                            micro(kb, a_panel, p.a.rs, p.a.cs, b_panel, rs_b, tile.as_mut_ptr(), nr, false);
                            for i in 0..r {
                                for j in 0..w {
                                    let dst = c_tile.add(i * p.c.rs + j * p.c.cs);
                                    let value = *tile.get_unchecked(i * nr + j);
                                    *dst = if accumulate { *dst + value } else { value };
                                }
                            }
                        }
                        if last_depth {
                            epilogue(kernel, &p, ic + ir, jc + jr, r, w);
                        }
                        ir += mr;
                    }
                    jr += nr;
                }
                ic += mc;
            }
            pc += kb;
        }
        jc += nb;
    }
}

/// Bias and activation over the `rows x cols` tile of C at (`i0`, `j0`).
unsafe fn epilogue<T: Element>(kernel: &Kernel<T>, p: &Problem<T>, i0: usize, j0: usize, rows: usize, cols: usize) {
    if p.act == Activation::Linear && p.bias.is_null() {
        return;
    }
    let bias = if p.bias.is_null() { None } else { Some(std::slice::from_raw_parts(p.bias.add(j0), cols)) };
    for i in 0..rows {
        let row = p.c.ptr.add((i0 + i) * p.c.rs + j0 * p.c.cs);
        if p.c.cs == 1 {
            (kernel.finish_row)(p.act, std::slice::from_raw_parts_mut(row, cols), bias);
        } else {
            for j in 0..cols {
                let dst = row.add(j * p.c.cs);
                let z = match bias {
                    Some(b) => *dst + *b.get_unchecked(j),
                    None => *dst,
                };
                *dst = p.act.apply(z);
            }
        }
    }
}
